"""Kill -9 a process importing blocks at many random moments; after each kill a restart must
recover by itself, keep every block it reported as connected, and the final UTXO set must
equal that of an uninterrupted import. And the corruption table: every kind of damaged file
stops start-up with one message naming it and the remedy, and both -reindex and
-reindex-chainstate recover from it (the lost blocks then come back from a peer)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from tests.chainbuilder import ChainBuilder, spend_tx
from tests.unit.test_reorg import write_blk_file

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24


def refused_naming(node, damaged) -> str:
    """Start-up's refusal: one message naming the damaged file and the remedy, once."""
    from tests.functional.test_core_startup import start_fails

    err = start_fails(node)
    assert damaged.name in err, err
    assert err.endswith("Please restart with -reindex or -reindex-chainstate to recover.")
    assert err.lower().count("restart with") == 1, err
    return err


def importer(datadir: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "node.importer", f"-datadir={datadir}", "-par=1", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )


def status(datadir: Path) -> tuple[int, str]:
    p = importer(datadir, "-status")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, f"recovery failed:\n{err}"
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    return int(lines["tip"].split()[0]), lines["utxo"]


def build_chain(path: Path, n_blocks: int = 300, per_block: int = 40) -> int:
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    spendable = [(b.txs[0].txid, 0, 50 * COIN) for b in blocks[:-100]]
    rng = random.Random(5)
    for _ in range(n_blocks):
        txs = []
        fees = 0
        for _ in range(min(per_block, len(spendable))):
            txid, n, value = spendable.pop(rng.randrange(len(spendable)))
            if value < 100_000:
                continue  # dust: leave it
            outs = rng.randint(1, 3) if value > 10_000_000 else 1
            each = (value - 1000) // outs
            tx = spend_tx([(txid, n)], [each] * outs)
            fees += value - each * outs
            txs.append(tx)
        blk = cb.next_block(blocks[-1], txs, fees=fees)
        blocks.append(blk)
        for tx in txs:
            spendable.extend((tx.txid, i, o.value) for i, o in enumerate(tx.vout))
    write_blk_file(path, blocks)
    return len(blocks)  # the tip's height (genesis is not in the file)


def test_kill_during_import_recovers(tmp_path):
    blk = tmp_path / "chain.dat"
    height = build_chain(blk)

    ref = tmp_path / "reference"
    p = importer(ref, f"-loadblock={blk}", "-status")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    ref_tip, ref_utxo = out.splitlines()[-2:]
    assert ref_tip.startswith(f"tip {height} ")

    node = tmp_path / "node"
    rng = random.Random(int(os.environ.get("KILL_SEED", "11")))
    reported = 0
    kills = 0
    rounds = 0
    while kills < KILLS:
        rounds += 1
        assert rounds < 200, "import kept finishing before it could be killed"
        # A tiny -dbcache makes the node flush the UTXO set often, so kills land before,
        # during and after flushes as well as between blocks.
        p = importer(node, f"-loadblock={blk}", "-printconnected", "-dbcache=1")
        time.sleep(rng.uniform(0.05, 1.0))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        out, _ = p.communicate(timeout=60)
        for line in out.splitlines():
            if line.startswith("connected "):
                reported = max(reported, int(line.split()[1]))
        tip, _ = status(node)  # restarts, recovers by itself, exits cleanly
        assert tip >= reported, f"lost blocks: reported {reported}, recovered to {tip}"
        if tip == height:
            # Start over so that every kill interrupts real work.
            node_done = tmp_path / f"done{rounds}"
            node.rename(node_done)
            reported = 0
    # Finish the last interrupted import and compare with the uninterrupted one.
    p = importer(node, f"-loadblock={blk}", "-status")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert out.splitlines()[-2:] == [ref_tip, ref_utxo]
    print(f"{kills} kills over {rounds} runs; recovered state equals the reference")


# -- the corruption table: each damage refused at start-up, recovered by either rebuild --------

DAMAGES = ["blk-flip", "blk-truncated", "blk-missing", "rev-flip", "rev-truncated",
           "chainstate-truncated", "index-truncated"]


def damage(chain_dir: Path, case: str) -> Path:
    """Damage one file of a stopped node's datadir as the case says; returns that file."""
    blocks = chain_dir / "blocks"

    def largest(d: Path) -> Path:
        return max(d.glob("*.ldb"), key=lambda p: p.stat().st_size)

    f = {
        "blk-flip": lambda: sorted(blocks.glob("blk*.dat"))[-1],
        "blk-truncated": lambda: sorted(blocks.glob("blk*.dat"))[-1],
        "blk-missing": lambda: sorted(blocks.glob("blk*.dat"))[2],
        "rev-flip": lambda: sorted(blocks.glob("rev*.dat"))[-1],
        "rev-truncated": lambda: sorted(blocks.glob("rev*.dat"))[-1],
        "chainstate-truncated": lambda: largest(chain_dir / "chainstate"),
        "index-truncated": lambda: largest(blocks / "index"),
    }[case]()
    data = bytearray(f.read_bytes())
    if case == "blk-missing":
        f.unlink()
    elif case.endswith("flip"):
        data[len(data) - 300] ^= 0xFF  # inside the last block (or its undo record)
        f.write_bytes(bytes(data))
    else:
        f.write_bytes(bytes(data[:len(data) // 2]))
    return f


@pytest.fixture(scope="module")
def full_node(tmp_path_factory):
    """A stopped node's datadir holding a chain with transactions in several -fastprune
    files, and a running node with the same chain to sync from."""
    import shutil

    from tests.functional.framework import NodeProcess
    from tests.functional.test_kill_chain import build_main

    base = tmp_path_factory.mktemp("table")
    blocks = build_main(ChainBuilder(), random.Random(3), 100, 40)
    write_blk_file(base / "chain.dat", blocks)
    node = NodeProcess(base / "good", "-fastprune")
    node.start(f"-loadblock={base / 'chain.dat'}")
    deadline = time.time() + 120
    while node.call("getblockcount") < len(blocks):
        assert time.time() < deadline
        time.sleep(0.1)
    node.stop()
    with node:  # (reopened: LevelDB turns its logs into tables)
        pass
    assert len(list((node.chain_dir / "blocks").glob("blk*.dat"))) >= 4
    source = NodeProcess(base / "source")
    shutil.copytree(node.datadir, source.datadir, dirs_exist_ok=True)
    with source:
        yield node.datadir, source, blocks


@pytest.mark.parametrize("flag", ["", "-reindex", "-reindex-chainstate"])
@pytest.mark.parametrize("case", DAMAGES)
def test_damage_is_refused_and_both_rebuilds_recover(full_node, tmp_path, case, flag):
    import shutil

    from tests.functional.framework import NodeProcess
    from tests.functional.test_kill_chain import Replay

    good, source, blocks = full_node
    node = NodeProcess(tmp_path / "n", "-fastprune")
    shutil.copytree(good, node.datadir, dirs_exist_ok=True)
    damaged = damage(node.chain_dir, case)
    if not flag:  # one clear message naming the damaged file, and the remedy
        refused_naming(node, damaged)
        return
    with node.start(flag):
        # what could be read back is the node's chain, its UTXO set a replay of that chain
        replay = Replay()
        replay.add(blocks)
        best = node.call("getbestblockhash")
        assert node.call("gettxoutsetinfo")["hash_serialized_3"] == \
            replay.digest(bytes.fromhex(best)[::-1])
        if case.startswith("blk"):
            assert node.call("getblockcount") < len(blocks)
        # and the blocks lost with the damage come back from a peer
        node.call("addnode", source.p2p_addr, "onetry")
        deadline = time.time() + 120
        while node.call("getbestblockhash") != source.call("getbestblockhash"):
            assert time.time() < deadline, "the lost blocks were not downloaded again"
            time.sleep(0.2)
        assert node.call("gettxoutsetinfo")["hash_serialized_3"] == \
            source.call("gettxoutsetinfo")["hash_serialized_3"]


# -- a chainstate of several tables, one of the older ones cut short ---------------------------

def truncate_older_table(db_dir: Path) -> Path:
    """Cut in half a table of a stopped LevelDB database that reading its first record does
    not open (below level 0, not the first of its level), once its records are spread over
    several tables as a larger database's are (test_store_tables.spread_over_tables)."""
    from tests.unit.test_store_tables import older_table, spread_over_tables

    f = db_dir / f"{older_table(spread_over_tables(db_dir)):06d}.ldb"
    f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    return f


@pytest.fixture(scope="module")
def big_utxo_node(tmp_path_factory):
    """A stopped node's datadir whose UTXO set holds ~45,000 coins (about 2.5 MB in LevelDB):
    three blocks each pay one coinbase to 15,000 outputs with random (incompressible)
    scripts. Returns (datadir, blocks)."""
    from consensus.tx import OutPoint, Transaction, TxIn, TxOut
    from tests.functional.framework import NodeProcess
    from tests.functional.test_kill_chain import wait_for_height

    base = tmp_path_factory.mktemp("bigutxo")
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    rng = random.Random(7)
    for i in range(3):
        outs = [TxOut(50 * COIN // 15_000 - 10,
                      b"\x20" + rng.randbytes(32) + b"\x75\x51")  # <32 bytes> DROP TRUE
                for _ in range(15_000)]
        tx = Transaction(2, [TxIn(OutPoint(blocks[i].txs[0].txid, 0), b"", 0xFFFFFFFF, [])],
                         outs, 0)
        blocks.append(cb.next_block(blocks[-1], [tx], fees=50 * COIN - sum(o.value for o in outs)))
    blocks += cb.chain(blocks[-1], 3)
    write_blk_file(base / "chain.dat", blocks)
    node = NodeProcess(base / "n")
    node.start(f"-loadblock={base / 'chain.dat'}")
    wait_for_height(node, len(blocks))
    node.stop()
    return node.datadir, blocks


@pytest.mark.parametrize("flag", ["", "-reindex", "-reindex-chainstate"])
def test_older_chainstate_table_truncated_is_refused_and_rebuilt(big_utxo_node, tmp_path, flag):
    import shutil

    from tests.functional.framework import NodeProcess
    from tests.functional.test_kill_chain import Replay

    good, blocks = big_utxo_node
    node = NodeProcess(tmp_path / "n")
    shutil.copytree(good, node.datadir, dirs_exist_ok=True)
    damaged = truncate_older_table(node.chain_dir / "chainstate")
    if not flag:  # refused at start-up, not found later by a full read
        err = refused_naming(node, damaged)
        assert err.startswith("Error: Error opening coins database"), err
        assert "truncated" in err, err
        return
    with node.start(flag):
        replay = Replay()
        replay.add(blocks)
        assert node.call("getblockcount") == len(blocks)
        info = node.call("gettxoutsetinfo")
        assert info["txouts"] > 45_000
        assert info["hash_serialized_3"] == replay.digest(blocks[-1].hash)
