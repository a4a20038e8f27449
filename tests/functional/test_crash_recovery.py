"""Kill -9 a process importing blocks at many random moments; after each kill a restart must
recover by itself, keep every block it reported as connected, and the final UTXO set must
equal that of an uninterrupted import."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from consensus.amounts import COIN
from consensus.params import REGTEST
from tests.chainbuilder import ChainBuilder, spend_tx
from tests.unit.test_reorg import write_blk_file

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24


def importer(datadir: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "node.importer", f"-datadir={datadir}", "-par=0", *args],
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
