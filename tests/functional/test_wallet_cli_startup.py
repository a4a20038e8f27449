"""minibtc-wallet against minibtcd: a wallet it creates (or loads) is loaded again at every
start of the node (load_on_startup, as Core's), one it unloads is not; minibtcd itself
creates none."""

from __future__ import annotations

import contextlib
import subprocess
import sys

from tests.functional.framework import ROOT, NodeProcess, cli_env


def test_created_and_loaded_wallets_come_back_after_a_restart(tmp_path):
    node = NodeProcess(tmp_path / "n")

    def wcli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "wallet.cli", "--datadir", str(node.datadir),
                            "--server", node.url, *args], cwd=ROOT, env=cli_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    with node:
        assert node.call("listwallets") == []
        assert "created wallet 'alice'" in wcli("create", "alice")
    with node:
        assert node.call("listwallets") == ["alice"]
        assert "unloaded wallet 'alice'" in wcli("unload", "alice")
    with node:
        assert node.call("listwallets") == []
        assert "loaded wallet 'alice'" in wcli("load", "alice")
        assert node.call("listwallets") == ["alice"]
    with node:
        assert node.call("listwallets") == ["alice"]


def test_wallet_cli_everyday(folder):
    """The wallet CLI as a user meets it, against a minibtc-net node: the server's cookie
    found without being named, options after the command, `show`, `history` with fees and
    states in words, help without --no-no- or bare type labels, errors in the CLI's terms
    (locked wallet, insufficient funds with what waits to confirm, a negative amount)."""
    import json

    from regtest.network import Network
    from tests.functional.netutil import net_cli, wait_until

    net_cli(folder, "up", "--nodes", "2", "--miners", "0", "--detach")
    net = Network(folder)
    url = f"http://127.0.0.1:{net.spec.rpc_ports[1]}"

    def w(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "wallet.cli", *args], cwd=ROOT,
                           env=cli_env(), capture_output=True, text=True, timeout=60)
        assert (r.returncode == 0) == ok, (args, r.stdout, r.stderr)
        return r

    # no --datadir, no --server-cookie: found from the process serving the port
    address = w("receive", "--server", url, "-w", "default").stdout.strip()
    assert address.startswith("bcrt1")
    net.mine(0, 101)
    # Node 1 must have the blocks first: a payment from a coinbase it does not yet see as
    # mature is refused (premature spend) and, announced once, never asked for again.
    wait_until(lambda: net.call(1, "getblockcount") == 101, 30, "node 1 has the blocks")
    txid = net.send(0, 1, "3")
    wait_until(lambda: net.call(1, "getbalances", wallet=True)["mine"]["untrusted_pending"]
               == 3, 30, "node 1's wallet sees the payment")
    out = w("--server", url, "send", address, "5", ok=False).stderr
    assert "Insufficient funds" in out and "3.00000000 BTC unconfirmed" in out
    assert "Error" not in out
    out = w("--server", url, "send", address, "-1", ok=False).stderr
    assert "Amount out of range" in out and "No such option" not in out
    shown = w("show", txid, "--server", url).stdout
    assert f"txid:     {txid}" in shown and "state:    unconfirmed" in shown
    # a replaced transaction in words, with its fee
    sent = net_cli(folder, "wallet", "0", "send", address, "1").split()[1]
    bumped = net_cli(folder, "wallet", "0", "bumpfee", sent).split()[2]
    history = net_cli(folder, "wallet", "0", "history", "--count", "3")
    assert "fee" in history.splitlines()[0] and "state" in history.splitlines()[0]
    row = next(line for line in history.splitlines() if sent in line)
    assert f"replaced by {bumped[:16]}" in row and "0.0000" in row
    assert "-1" not in row.split()
    info = json.loads(w("info", "--json", "--server", url).stdout)
    assert "paytxfee" in info
    assert "0E-8" not in w("info", "--server", url).stdout
    # encrypted: the CLI's words, and the passphrase
    net.mine(0, 1)
    wait_until(lambda: net.call(1, "getbalances", wallet=True)["mine"]["trusted"] > 0, 30,
               "node 1's coins confirmed")
    out = w("encrypt", "--passphrase", "pw", "--server", url).stdout
    assert "`minibtc-wallet backup FILE`" in out and "backupwallet" not in out
    out = w("send", address, "0.1", "--server", url, ok=False).stderr
    assert out.startswith("error: the wallet is locked") and "walletpassphrase" not in out
    assert "Error" not in out
    assert "sent:" in w("send", address, "0.1", "--passphrase", "pw", "--server", url).stdout
    # on a terminal it asks for the passphrase, and does not echo it
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # (the child: the CLI on the terminal)
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "wallet.cli", "send", address, "0.1",
                                   "--server", url], cli_env())
    seen = b""
    while b"passphrase:" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, b"pw-typed\n")
    with contextlib.suppress(OSError):  # (EIO once the CLI has exited)
        while chunk := os.read(fd, 1024):
            seen += chunk
    os.waitpid(pid, 0)
    assert b"wallet passphrase:" in seen and b"pw-typed" not in seen
    assert b"incorrect" in seen  # (asked, and used: a wrong one)
    # help texts
    help_text = w("send", "--help").stdout
    assert "--no-no-" not in help_text and "<bool>" not in help_text
    assert "<str>" not in help_text and "--fee-rate SAT/VB" in help_text
    assert "<str>" not in w("--help").stdout
