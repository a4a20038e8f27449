#!/usr/bin/env python3
"""The chain state's own cost per header and per block, without scripts: accept_header of a
chain of N regtest headers (what a headers-first sync does before any block arrives), then
process_block of empty blocks (a coinbase each), on a fresh datadir, best of --rounds.
Printed beside the raw LevelDB write rate of records of the same size, measured in the same
run (the ratio carries over to another machine). --baseline DIR (a checkout of another
commit) times that tree too, each in a fresh process, alternating.

Run: .venv/bin/python scripts/bench/headers.py [--headers 20000] [--rounds 3]
     [--baseline /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process with the tree to time first on sys.path (argv: tree, n, rounds).
_TIMER = """
import json, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from consensus.amounts import block_subsidy
from consensus.params import REGTEST
from node.chain import ChainState
from node.scriptcheck import ScriptChecker
from tests.blocktools import make_block, make_coinbase
n, rounds = int(sys.argv[2]), int(sys.argv[3])
blocks, prev = [], REGTEST.genesis_hash
for h in range(1, n + 1):
    b = make_block(prev, h, time=1_600_000_000 + h,
                   coinbase=make_coinbase(h, block_subsidy(h, 150)))
    blocks.append(b)
    prev = b.hash
best_h = best_b = float("inf")
for _ in range(rounds):
    d = Path(tempfile.mkdtemp())
    c = ChainState(d, REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
    c.load()
    t = time.perf_counter()
    for b in blocks:
        c.accept_header(b.header)
    best_h = min(best_h, time.perf_counter() - t)
    t = time.perf_counter()
    for b in blocks[: n // 4]:
        c.process_block(b)
    best_b = min(best_b, time.perf_counter() - t)
    c.close()
    shutil.rmtree(d)
print(json.dumps([n / best_h, n // 4 / best_b]))
"""


def time_tree(tree: Path, n: int, rounds: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", _TIMER, str(tree), str(n), str(rounds)],
                         cwd=tree, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tree)})
    headers, blocks = json.loads(out.stdout.strip().splitlines()[-1])
    return headers, blocks


def raw_put_rate(n: int = 50_000) -> float:
    """LevelDB writes per second of 144-byte records under random 33-byte keys."""
    import plyvel

    d = tempfile.mkdtemp()
    db = plyvel.DB(d, create_if_missing=True)
    keys = [b"b" + os.urandom(32) for _ in range(n)]
    value = os.urandom(144)
    t = time.perf_counter()
    for k in keys:
        db.put(k, value)
    rate = n / (time.perf_counter() - t)
    db.close()
    shutil.rmtree(d)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--headers", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None)
    args = ap.parse_args()
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    got: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in trees}
    puts = []
    for _ in range(2):  # alternating, so both see the same machine
        puts.append(raw_put_rate())
        for label, tree in trees:
            got[label].append(time_tree(tree, args.headers, args.rounds))
    put = max(puts)
    print(f"raw LevelDB puts (144-byte records): {put:,.0f}/s")
    for label, _ in trees:
        headers = max(h for h, _ in got[label])
        blocks = max(b for _, b in got[label])
        print(f"{label:>9}: accept_header {headers:,.0f}/s = {headers / put:.2f} x raw puts; "
              f"empty blocks {blocks:,.0f}/s = {blocks / put:.3f} x")


if __name__ == "__main__":
    main()
