"""The script execution cache on a real node: transactions accepted to the mempool are found
in it when their block connects, so the block's script checks never reach the workers;
transactions the node never saw are checked by the workers as before."""

from __future__ import annotations

import re
import time
from decimal import Decimal

from consensus.amounts import COIN
from consensus.hashes import hex_to_hash
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
from wallet.address import script_to_address

W = Wallet(b"scriptcache")
ADDR = script_to_address(W.p2wpkh, REGTEST)
LINE = re.compile(r"block scripts: (\d+) of (\d+) transactions in the script execution "
                  r"cache, (\d+) inputs checked")


def block_lines(node: NodeProcess) -> list[tuple[int, int, int]]:
    text = (node.chain_dir / "debug.log").read_text(errors="replace")
    return [tuple(map(int, m.groups())) for m in LINE.finditer(text)]  # type: ignore[misc]


def wait_for_lines(node: NodeProcess, n: int) -> list[tuple[int, int, int]]:
    # The log is written by the node's logging thread: give it a moment to land on disk.
    deadline = time.time() + 30
    while True:
        lines = block_lines(node)
        if len(lines) >= n or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_mempool_transactions_are_not_checked_again_when_mined(tmp_path) -> None:
    with NodeProcess(tmp_path / "n", "-par=2", "-debug=validation") as node:  # (a worker)
        node.call("generatetoaddress", 101, ADDR)
        cb = node.call("getblock", node.call("getblockhash", 1), 2)["tx"][0]
        value = int(Decimal(str(cb["vout"][0]["value"])) * COIN)
        # Fan the coinbase out: 140 outputs, spent two by two below.
        each = (value - 100_000) // 140
        fan = W.sign(Transaction(2, [TxIn(OutPoint(hex_to_hash(cb["txid"]), 0), b"", 0)],
                                 [TxOut(each, W.p2wpkh)] * 140),
                     [TxOut(value, W.p2wpkh)])
        node.call("sendrawtransaction", fan.serialize().hex())
        node.call("generatetoaddress", 1, ADDR)
        children = []
        for k in range(70):
            tx = Transaction(2, [TxIn(OutPoint(fan.txid, 2 * k + j), b"", 0) for j in (0, 1)],
                             [TxOut(2 * each - 2_000, W.p2wpkh)])
            children.append(W.sign(tx, [TxOut(each, W.p2wpkh)] * 2))
        before = len(block_lines(node))
        # Half through the mempool, then mined: 70 inputs, enough for the workers, but all
        # of them already checked under the block's flags when they were accepted (one by
        # one in the node's own process, or as a batch by the mempool's worker, which
        # checks under both flag sets).
        for tx in children[:10]:
            node.call("sendrawtransaction", tx.serialize().hex())
        status, replies = node.request([
            {"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction",
             "params": [tx.serialize().hex()]} for j, tx in enumerate(children[10:35])])
        assert status == 200 and all("result" in r for r in replies), replies
        node.call("generatetoaddress", 1, ADDR)
        assert node.call("getmempoolinfo")["size"] == 0
        # The other half never seen: in a block of their own, checked as before.
        node.call("generateblock", ADDR, [tx.serialize().hex() for tx in children[35:]])
        lines = wait_for_lines(node, before + 2)
        assert lines[before:before + 2] == [(35, 35, 0), (0, 35, 70)]
        assert node.call("getblockcount") == 104


def test_maxsigcachesize_bounds_the_cache(tmp_path) -> None:
    """-maxsigcachesize=0 leaves the smallest cache there is (two entries, as Core's minimum):
    most of the mempool's transactions are checked again when mined."""
    with NodeProcess(tmp_path / "n", "-debug=validation", "-maxsigcachesize=0") as node:
        node.call("generatetoaddress", 101, ADDR)
        cb = node.call("getblock", node.call("getblockhash", 1), 2)["tx"][0]
        value = int(Decimal(str(cb["vout"][0]["value"])) * COIN)
        each = (value - 100_000) // 10
        fan = W.sign(Transaction(2, [TxIn(OutPoint(hex_to_hash(cb["txid"]), 0), b"", 0)],
                                 [TxOut(each, W.p2wpkh)] * 10),
                     [TxOut(value, W.p2wpkh)])
        node.call("sendrawtransaction", fan.serialize().hex())
        node.call("generatetoaddress", 1, ADDR)
        before = len(wait_for_lines(node, 1))
        for k in range(10):
            tx = W.sign(Transaction(2, [TxIn(OutPoint(fan.txid, k), b"", 0)],
                                    [TxOut(each - 1_000, W.p2wpkh)]), [TxOut(each, W.p2wpkh)])
            node.call("sendrawtransaction", tx.serialize().hex())
        node.call("generatetoaddress", 1, ADDR)
        cached, total, inputs = wait_for_lines(node, before + 1)[before]
        assert total == 10 and cached <= 2 and inputs == 10 - cached
