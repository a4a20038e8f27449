"""Helpers shared by the P2P and network functional tests: waiting, connecting nodes,
spending coinbases of a known key, driving minibtc-net and finding what it left running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal

from consensus.amounts import COIN
from consensus.hashes import hex_to_hash
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import ROOT, NodeProcess, cli_env
from wallet.address import script_to_address

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)
# Miners on different sides pay to different addresses: otherwise two blocks mined on the
# same parent in the same second are the same block.
ADDR2 = script_to_address(Wallet(b"other side").p2wpkh, REGTEST)


def wait_until(pred, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def connect(a: NodeProcess, b: NodeProcess) -> None:
    """a dials b; returns once both see the connection."""
    before_a, before_b = a.call("getconnectioncount"), b.call("getconnectioncount")
    a.call("addnode", b.p2p_addr, "onetry")
    wait_until(lambda: a.call("getconnectioncount") > before_a
               and b.call("getconnectioncount") > before_b, 10, "connection")


def tips(nodes) -> list[str]:
    return [n.call("getbestblockhash") for n in nodes]


def coinbase_spend(node: NodeProcess, height: int, fee: int = 10_000,
                   outputs: int = 1) -> Transaction:
    """A signed transaction spending the coinbase at `height` (mined to ADDR) back to W."""
    cb = node.call("getblock", node.call("getblockhash", height), 2)["tx"][0]
    value = int(Decimal(cb["vout"][0]["value"]) * COIN)
    return spend_outputs([(OutPoint(hex_to_hash(cb["txid"]), 0), value)], fee, outputs)


def spend_outputs(prevs: list[tuple[OutPoint, int]], fee: int = 10_000,
                  outputs: int = 1) -> Transaction:
    """Spend W's P2WPKH outputs (outpoint, value) into `outputs` equal outputs to W."""
    total = sum(v for _, v in prevs) - fee
    each = total // outputs
    tx = Transaction(2, [TxIn(p, b"", 0xFFFFFFFD) for p, _ in prevs],
                     [TxOut(each, W.p2wpkh) for _ in range(outputs)])
    return W.sign(tx, [TxOut(v, W.p2wpkh) for _, v in prevs])


def net_cli(folder, *args: str, check: bool = True) -> str:
    r = subprocess.run([sys.executable, "-m", "regtest.cli", *args, "--dir", str(folder)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"minibtc-net {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def daemons_of(folder) -> list[int]:
    """pids of minibtcd, miner or ElectrumX processes working in this folder."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in cmd and ("node.daemon" in cmd or "regtest.miner" in cmd):
            out.append(int(pid))
        elif "electrumx" in cmd:  # an Electrum service: its database is in the folder
            try:
                env = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if f"DB_DIRECTORY={folder}" in env:
                out.append(int(pid))
    return out
