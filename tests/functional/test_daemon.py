"""minibtcd as a process: -daemon, clean shutdown on SIGTERM/SIGINT keeping state,
-debug categories, and a getblocktemplate long poll woken by a new block."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from consensus.params import REGTEST
from tests.chainbuilder import Wallet
from tests.functional.framework import ROOT, NodeProcess
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_and_keeps_state(tmp_path, sig):
    node = NodeProcess(tmp_path / "n")
    node.start()
    node.call("generatetoaddress", 20, ADDR)
    best = node.call("getbestblockhash")
    node.proc.send_signal(sig)
    assert node.proc.wait(60) == 0
    log = (node.chain_dir / "debug.log").read_text()
    assert "Shutdown: done" in log
    assert not (node.chain_dir / ".cookie").exists()
    node.proc = None
    with NodeProcess(tmp_path / "n") as again:
        assert again.call("getbestblockhash") == best


def test_daemon_mode(tmp_path):
    node = NodeProcess(tmp_path / "n")
    p = subprocess.run([sys.executable, "-m", "node.daemon", *node.args(), "-daemon"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "minibtcd starting" in p.stdout
    deadline = time.time() + 60
    while True:
        try:
            assert node.call("getblockcount") == 0
            break
        except Exception:
            assert time.time() < deadline
            time.sleep(0.2)
    assert node.call("stop") == "minibtcd stopping"
    # The background process exits and releases the datadir lock.
    deadline = time.time() + 30
    while not _lock_free(node.chain_dir / ".lock"):
        assert time.time() < deadline, "daemon did not exit"
        time.sleep(0.2)
    # A second daemon start on a running node's datadir reports the lock failure.
    with NodeProcess(tmp_path / "m") as running:
        p = subprocess.run([sys.executable, "-m", "node.daemon", *running.args(), "-daemon"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "Cannot obtain a lock" in p.stderr


def _lock_free(path) -> bool:
    import fcntl

    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False


def test_debug_category_flag(tmp_path):
    with NodeProcess(tmp_path / "n", "-debug=rpc") as node:
        cats = node.call("logging")
        assert cats["rpc"] is True and cats["net"] is False
        node.call("getblockcount")
        assert "ThreadRPCServer method=getblockcount" in (
            node.chain_dir / "debug.log").read_text()


def test_getblocktemplate_long_poll(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 1, ADDR)
        first = node.call("getblocktemplate", {"rules": ["segwit"]})
        result = {}

        def poll():
            result["t"] = node.call("getblocktemplate",
                                    {"rules": ["segwit"], "longpollid": first["longpollid"]})

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(1.0)
        assert t.is_alive()  # waiting for a change
        [h] = node.call("generatetoaddress", 1, ADDR)
        t.join(30)
        assert not t.is_alive() and result["t"]["previousblockhash"] == h


def test_reindex_flags_rebuild_the_same_state(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 30, ADDR)
        ref = node.call("gettxoutsetinfo")
        best = node.call("getbestblockhash")
    for flag in ("-reindex-chainstate", "-reindex"):
        with NodeProcess(tmp_path / "n", flag) as node:
            assert node.call("getbestblockhash") == best
            got = node.call("gettxoutsetinfo")
            assert got["hash_serialized_3"] == ref["hash_serialized_3"]
            assert got["txouts"] == ref["txouts"]


def test_corrupt_block_file_stops_startup_with_a_clear_error(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 5, ADDR)
    blk = tmp_path / "n" / "regtest" / "blocks" / "blk00000.dat"
    with open(blk, "r+b") as f:
        f.truncate(blk.stat().st_size - 30)
    node = NodeProcess(tmp_path / "n")
    with pytest.raises(RuntimeError) as e:
        node.start()
    assert "blk00000.dat" in str(e.value) and "-reindex" in str(e.value)
    with NodeProcess(tmp_path / "n", "-reindex") as node:
        assert node.call("getblockcount") == 4  # the damaged last block is gone, rest intact


def test_damaged_database_is_a_clear_error(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 3, ADDR)
    index = tmp_path / "n" / "regtest" / "blocks" / "index"
    for f in index.iterdir():  # wreck the LevelDB block index's files
        if f.suffix in (".ldb", ".log") or f.name.startswith("MANIFEST"):
            f.write_bytes(b"\xff" * 64)
    node = NodeProcess(tmp_path / "n")
    with pytest.raises(RuntimeError) as e:
        node.start()
    assert "Error:" in str(e.value) and "-reindex" in str(e.value)
    assert "Traceback" not in str(e.value)
    with NodeProcess(tmp_path / "n", "-reindex") as node:  # rebuilt from the block files
        assert node.call("getblockcount") == 3


def test_reindex_resumes_after_a_crash_midway(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 7, ADDR)
        best = node.call("getbestblockhash")
    # As if -reindex had written its marker and deleted the databases, then died.
    chain_dir = tmp_path / "n" / "regtest"
    (chain_dir / ".reindexing").write_text("reindex in progress\n")
    import shutil

    shutil.rmtree(chain_dir / "blocks" / "index")
    shutil.rmtree(chain_dir / "chainstate")
    with NodeProcess(tmp_path / "n") as node:  # no -reindex: it carries on by itself
        assert node.call("getbestblockhash") == best
    assert not (chain_dir / ".reindexing").exists()


def _descendants(pid: int) -> set[int]:
    """The processes below pid (Linux: from /proc)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_script_workers_start_once_rpc_is_ready(tmp_path):
    """The script-check workers (-par=2: one for blocks, one for the mempool's batches, and
    the fork server they come from) start in the background once RPC is ready, not before
    (their start took CPU from the start-up), and without waiting for a first big block."""
    with NodeProcess(tmp_path / "n", "-par=2") as node:
        deadline = time.time() + 30
        while len(_descendants(node.proc.pid)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(_descendants(node.proc.pid)) >= 3
        assert node.call("getblockcount") == 0
