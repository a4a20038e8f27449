#!/usr/bin/env python3
"""RPC latency while the node validates (issue 20): getblockcount answered by a node that is
syncing a chain over P2P.

Node A imports the chain of sync.py / connect.py (200 funding blocks, then spending blocks
of signed P2WPKH and P2TR transactions; cached in --cache) with -loadblock; node B, empty,
then syncs it from A over P2P while a client calls getblockcount on B every --interval
seconds, each call on a new connection as sync.py's (and bitcoin-cli's) are. Printed: the
median, 99th percentile and max of those calls, beside the same calls to A once it is idle
(measured in the same run: the ratio carries over to another machine). Goal: p99 <= 10 ms.

--baseline DIR (a checkout of another commit) has that tree's node sync too, in alternating
rounds against the same node A, and prints both.

Run: .venv/bin/python scripts/bench/rpc_latency.py [--blocks 800] [--txs 100000] [--rounds 1]
     [--baseline /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))  # (connect.py; after ROOT: bench/wallet.py)

from connect import generate  # noqa: E402

from tests.functional.framework import NodeProcess  # noqa: E402


def cached_chain(cache: Path, blocks: int, txs: int) -> tuple[Path, int]:
    """The generated chain's blk file (shared with sync.py's cache) and its height."""
    blk = cache / f"connect_{blocks}_{txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {blocks} spending blocks with {txs} signed transactions "
              "(cached for later runs) ...", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        meta.write_text(" ".join(map(str, generate(blk, blocks, txs))))
    n_blocks = int(meta.read_text().split()[0])
    return blk, n_blocks + 200


def timed_calls(node: NodeProcess, until_height: int | None, count: int,
                interval: float) -> tuple[list[float], int]:
    """getblockcount every `interval` s until the node reaches `until_height` (or `count`
    calls): the seconds each call took, and the height last seen."""
    out: list[float] = []
    height = -1
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        t = time.perf_counter()
        height = node.call("getblockcount")
        out.append(time.perf_counter() - t)
        if until_height is not None and height >= until_height:
            break
        if until_height is None and len(out) >= count:
            break
        time.sleep(interval)
    return out, height


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


class TreeNode(NodeProcess):
    """A minibtcd of a checkout (this one, or --baseline's), started as NodeProcess starts its
    own but with the node's own -par default."""

    def __init__(self, tree: Path, *args, node_default_par: bool = True, **kw) -> None:
        super().__init__(*args, **kw)
        self.tree = tree
        self.node_default_par = node_default_par

    def args(self) -> list[str]:
        # The test framework's -par=1 keeps every script check in the node's process; the
        # node's own default (-par=0: one checker per core) is what a user runs.
        out = super().args()
        return [a for a in out if a != "-par=1"] if self.node_default_par else out

    def start(self, *more: str, wait: bool = True) -> NodeProcess:
        log = open(self.datadir / "stdout.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "node.daemon", *self.args(), *more],
                                     cwd=self.tree, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(self.tree)})
        if wait:
            self.wait_ready()
        return self


def summary(lat: list[float]) -> str:
    """Median, p99, max, and how many calls took over 10 and 15 ms (a faster sync makes
    fewer calls: the same slow calls then weigh more in the p99)."""
    return (f"median {statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} "
            f"ms, max {max(lat) * 1000:.1f} ms ({len(lat)} calls; over 10 ms: "
            f"{sum(x > 0.010 for x in lat)}, over 15 ms: {sum(x > 0.015 for x in lat)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=800)
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--par", default=None, help="-par for both nodes (default: none, the "
                    "node's own default)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout: its node syncs too, alternating with this one's")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    blk, height = cached_chain(Path(args.cache), args.blocks, args.txs)
    par = [f"-par={args.par}"] if args.par is not None else []
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    during: dict[str, list[float]] = {label: [] for label, _ in trees}
    idle: list[float] = []
    with tempfile.TemporaryDirectory(prefix="minibtc-rpclat-") as tmp:
        a = TreeNode(ROOT, Path(tmp) / "a", "-dbcache=450")
        a.extra = [x for x in a.extra if not x.startswith("-par=")] + par
        a.start(f"-loadblock={blk}")
        try:
            timed_calls(a, height, 0, 0.2)
            for r in range(args.rounds):
                for label, tree in trees if r % 2 == 0 else trees[::-1]:
                    b = TreeNode(tree, Path(tmp) / f"b{r}{label[0]}", "-dbcache=450",
                                 f"-connect={a.p2p_addr}")
                    b.extra = [x for x in b.extra if not x.startswith("-par=")] + par
                    b.start()
                    try:
                        t0 = time.perf_counter()
                        lat, seen = timed_calls(b, height, 0, args.interval)
                        took = time.perf_counter() - t0
                    finally:
                        b.stop()
                    during[label] += lat
                    print(f"round {r + 1} {label}: synced {seen} blocks in {took:.1f} s; "
                          f"getblockcount during it {summary(lat)}", flush=True)
                # The reference: the same calls to an idle node, in the same round.
                idle += timed_calls(a, None, 300, args.interval)[0]
        finally:
            a.stop()
    imed, ip99 = statistics.median(idle), pct(idle, 0.99)
    print(f"getblockcount on an idle node: {summary(idle)}")
    for label, _ in trees:
        lat = during[label]
        print(f"{label}: getblockcount while syncing: {summary(lat)}; goal p99 <= 10 ms; "
              f"to idle: median {statistics.median(lat) / imed:.2f} x, p99 "
              f"{pct(lat, 0.99) / ip99:.2f} x")


if __name__ == "__main__":
    main()
