#!/usr/bin/env python3
"""P2P sync and block propagation, measured on real minibtcd processes over loopback.

1. Sync: a chain of 1,000 blocks carrying 100,000 signed transactions (200 funding blocks,
   then 800 blocks of P2WPKH and P2TR spends; the generator of connect.py, cached in
   --cache) is imported by node A with -loadblock, then node B, empty, syncs it from A over
   P2P. Printed: both times and their ratio (goal: P2P at least 0.8 as fast as -loadblock).
2. Propagation: eight nodes in a line; a block is mined (or submitted) at one end and the
   time until each node has it as its tip is recorded. Printed: the per-hop delay of an
   empty block (median of several) and of a full block (about 4,000 transactions).

Run: .venv/bin/python scripts/bench/sync.py [--blocks 800] [--txs 100000] [--hops-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from connect import generate  # noqa: E402

from consensus.params import REGTEST  # noqa: E402
from node.store.blockfiles import scan_block_file  # noqa: E402
from tests.functional.framework import NodeProcess  # noqa: E402

ADDR = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


def cached_chain(cache: Path, blocks: int, txs: int) -> tuple[Path, int, int]:
    """The generated chain's blk file, its block count and its transaction count."""
    blk = cache / f"connect_{blocks}_{txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {blocks} spending blocks with {txs} signed transactions "
              "(cached for later runs) ...", flush=True)
        meta.write_text(" ".join(map(str, generate(blk, blocks, txs))))
    n_blocks, n_txs, _ = map(int, meta.read_text().split())
    return blk, n_blocks + 200, n_txs


def wait_height(node: NodeProcess, height: int, timeout: float = 1800) -> float:
    """Seconds until the node's chain reaches `height` (polled every 50 ms)."""
    t0 = time.perf_counter()
    while node.call("getblockcount") < height:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"height {height} not reached")
        time.sleep(0.05)
    return time.perf_counter() - t0


def bench_sync(tmp: Path, blk: Path, height: int, n_txs: int, par: str) -> None:
    a = NodeProcess(tmp / "a", par, "-dbcache=450")
    # (Timed from the node being ready, when the import starts, as the P2P sync below is.)
    a.start(f"-loadblock={blk}")
    try:
        t_load = wait_height(a, height)
        print(f"-loadblock: {height} blocks, {n_txs} transactions in {t_load:.2f} s "
              f"({n_txs / t_load:,.0f} tx/s)", flush=True)
        b = NodeProcess(tmp / "b", par, "-dbcache=450", f"-connect={a.p2p_addr}")
        b.start()
        try:
            t_p2p = wait_height(b, height)
            assert b.call("getbestblockhash") == a.call("getbestblockhash")
            print(f"P2P sync:   {height} blocks, {n_txs} transactions in {t_p2p:.2f} s "
                  f"({n_txs / t_p2p:,.0f} tx/s)")
            print(f"P2P sync speed = {t_load / t_p2p:.2f} x -loadblock's (goal >= 0.8)",
                  flush=True)
        finally:
            b.stop()
    finally:
        a.stop()


def hop_chain(cache: Path) -> tuple[Path, bytes]:
    """A prefix (200 funding blocks and a fan-out block) as a blk file, and a full block of
    about 4,000 transactions on top of it, from connect.py's generator."""
    full = cache / "hops_3_8000.dat"
    meta = full.with_suffix(".meta")
    if not full.exists() or not meta.exists():
        print("generating the full-block chain (cached for later runs) ...", flush=True)
        meta.write_text(" ".join(map(str, generate(full, 3, 8000))))
    raws = [raw for _, raw in scan_block_file(full, REGTEST.message_start)]
    prefix = cache / "hops_prefix.dat"
    if not prefix.exists():
        with open(prefix, "wb") as f:
            for raw in raws[:201]:
                f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
    return prefix, raws[201]


def arrival_times(nodes: list[NodeProcess], block_hash: str, t0: float,
                  timeout: float = 120) -> list[float]:
    times: list[float | None] = [None] * len(nodes)
    while any(t is None for t in times):
        for i, n in enumerate(nodes):
            if times[i] is None and n.call("getbestblockhash") == block_hash:
                times[i] = time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("block did not reach every node")
    return times  # type: ignore[return-value]


def bench_hops(tmp: Path, cache: Path, par: str, n_nodes: int = 8, rounds: int = 7) -> None:
    prefix, full_block = hop_chain(cache)
    nodes: list[NodeProcess] = []
    try:
        for i in range(n_nodes):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            n = NodeProcess(tmp / f"h{i}", par, f"-loadblock={prefix}", *extra)
            nodes.append(n.start())
        for n in nodes:
            wait_height(n, 201)
        while any(n.call("getconnectioncount") < (1 if i in (0, n_nodes - 1) else 2)
                  for i, n in enumerate(nodes)):
            time.sleep(0.05)
        hops = n_nodes - 1
        from consensus.block import Block

        blk = Block.from_bytes(full_block)
        t0 = time.perf_counter()
        assert nodes[0].call("submitblock", full_block.hex()) is None
        times = arrival_times(nodes, blk.hash_hex(), t0)
        print(f"full block ({len(blk.txs)} transactions, {len(full_block):,} bytes, weight "
              f"{blk.weight:,}): {times[-1]:.2f} s over {hops} hops = "
              f"{(times[-1] - times[0]) / hops * 1000:.0f} ms per hop "
              f"(first node {times[0] * 1000:.0f} ms)")
        per_hop = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            [h] = nodes[0].call("generatetoaddress", 1, ADDR)
            times = arrival_times(nodes, h, t0)
            per_hop.append((times[-1] - times[0]) / hops)
        print(f"empty block: {statistics.median(per_hop) * 1000:.1f} ms per hop (median of "
              f"{rounds}; min {min(per_hop) * 1000:.1f}, max {max(per_hop) * 1000:.1f})")
    finally:
        for n in nodes:
            n.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=800, help="spending blocks (plus 200)")
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--par", type=int, default=None, help="script workers (default: cores)")
    ap.add_argument("--hops-only", action="store_true")
    ap.add_argument("--sync-only", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    par = f"-par={args.par if args.par is not None else (os.cpu_count() or 1)}"
    with tempfile.TemporaryDirectory() as d:
        if not args.hops_only:
            blk, height, n_txs = cached_chain(cache, args.blocks, args.txs)
            bench_sync(Path(d), blk, height, n_txs, par)
        if not args.sync_only:
            bench_hops(Path(d), cache, par)


if __name__ == "__main__":
    main()
