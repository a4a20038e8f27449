#!/usr/bin/env python3
"""Start-up time against chain length: builds datadirs of N regtest blocks (cached in
--cache) and times opening them (loading the block index, checking the last blocks, putting
the UTXO set's best block at the tip), best of --rounds.

Run: .venv/bin/python scripts/bench/startup.py [--sizes 25000,50000,100000]

The figure to watch is milliseconds per 1,000 blocks: it must stay flat as the chain grows
(start-up linear in the number of blocks, not worse).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from consensus.amounts import block_subsidy  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from node.chain import ChainState  # noqa: E402
from node.scriptcheck import ScriptChecker  # noqa: E402
from tests.blocktools import make_block, make_coinbase  # noqa: E402


def build(datadir: Path, n: int) -> None:
    chain = ChainState(datadir, REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
    chain.load()
    prev = chain.tip.hash
    t = 1_600_000_000
    start = chain.height + 1
    for h in range(start, n + 1):
        b = make_block(prev, h, time=t + h,
                       coinbase=make_coinbase(h, block_subsidy(h, 150)))
        chain.process_block(b)
        prev = b.hash
        if h % 10_000 == 0:
            print(f"  built {h}/{n}", flush=True)
    chain.close()


def time_open(datadir: Path, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        chain = ChainState(datadir, REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
        chain.load()
        best = min(best, time.perf_counter() - t0)
        chain.close()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(args.cache) / "startup"
    for n in sizes:
        d = base / f"chain_{n}"
        marker = d / "built"
        if not marker.exists():
            print(f"building a datadir with {n} blocks ...", flush=True)
            build(d, n)
            marker.write_text("ok")
    print(f"{'blocks':>8} {'start-up s':>11} {'ms per 1k blocks':>17}")
    for n in sizes:
        t = time_open(base / f"chain_{n}", args.rounds)
        print(f"{n:>8} {t:>11.2f} {1000 * t / (n / 1000):>17.1f}")


if __name__ == "__main__":
    main()
