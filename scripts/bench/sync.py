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

from consensus.block import Block  # noqa: E402
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


def wait_height(node: NodeProcess, height: int, timeout: float = 1800,
                latencies: list[float] | None = None) -> float:
    """Seconds until the node's chain reaches `height` (polled every 50 ms); the time each
    getblockcount call took goes to `latencies` (the event loop's responsiveness)."""
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        n = node.call("getblockcount")
        if latencies is not None:
            latencies.append(time.perf_counter() - t)
        if n >= height:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"height {height} not reached")
        time.sleep(0.05)


def bench_sync(tmp: Path, blk: Path, height: int, n_txs: int, par: str, rounds: int) -> None:
    """Alternate -loadblock imports and P2P syncs (this machine's speed drifts with whatever
    else runs on it), and compare the best of each."""
    loads, syncs, latencies = [], [], []
    for r in range(rounds):
        a = NodeProcess(tmp / f"a{r}", par, "-dbcache=450")
        # (Timed from the node being ready, when the import starts, as the P2P sync is.)
        a.start(f"-loadblock={blk}")
        try:
            loads.append(wait_height(a, height))
            b = NodeProcess(tmp / f"b{r}", par, "-dbcache=450", f"-connect={a.p2p_addr}")
            b.start()
            try:
                syncs.append(wait_height(b, height, latencies=latencies))
                assert b.call("getbestblockhash") == a.call("getbestblockhash")
            finally:
                b.stop()
        finally:
            a.stop()
        print(f"round {r + 1}: -loadblock {loads[-1]:.2f} s, P2P sync {syncs[-1]:.2f} s "
              f"({loads[-1] / syncs[-1]:.2f} x)", flush=True)
    t_load, t_p2p = min(loads), min(syncs)
    print(f"-loadblock: {height} blocks, {n_txs} transactions in {t_load:.2f} s "
          f"({n_txs / t_load:,.0f} tx/s), best of {rounds}")
    print(f"P2P sync:   {height} blocks, {n_txs} transactions in {t_p2p:.2f} s "
          f"({n_txs / t_p2p:,.0f} tx/s), best of {rounds}, from one peer over loopback")
    print(f"P2P sync speed = {t_load / t_p2p:.2f} x -loadblock's (goal >= 0.8)")
    latencies.sort()
    print(f"getblockcount during the sync: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"99th percentile {latencies[len(latencies) * 99 // 100] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms ({len(latencies)} calls)", flush=True)


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


def start_line(tmp: Path, prefix: Path, par: str, n_nodes: int) -> list[NodeProcess]:
    """n_nodes nodes in a line, each with the prefix chain imported."""
    nodes: list[NodeProcess] = []
    try:
        for i in range(n_nodes):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            nodes.append(NodeProcess(tmp / f"h{i}", par, f"-loadblock={prefix}", *extra).start())
        for n in nodes:
            wait_height(n, 201)
        while any(n.call("getconnectioncount") < (1 if i in (0, n_nodes - 1) else 2)
                  for i, n in enumerate(nodes)):
            time.sleep(0.05)
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes


def full_block_hops(nodes: list[NodeProcess], raw: bytes, label: str) -> None:
    blk = Block.from_bytes(raw)
    hops = len(nodes) - 1
    t0 = time.perf_counter()
    assert nodes[0].call("submitblock", raw.hex()) is None
    times = arrival_times(nodes, blk.hash_hex(), t0)
    print(f"full block ({len(blk.txs)} transactions, {len(raw):,} bytes, weight "
          f"{blk.weight:,}), {label}: {(times[-1] - times[0]) / hops * 1000:.0f} ms per hop "
          f"({times[-1]:.2f} s to the last of {len(nodes)} nodes; the first took "
          f"{times[0] * 1000:.0f} ms to accept it)", flush=True)


def bench_hops(tmp: Path, cache: Path, par: str, n_nodes: int = 8, rounds: int = 7) -> None:
    prefix, full_block = hop_chain(cache)
    # 1. A full block whose transactions no node has seen: every hop checks every script.
    nodes = start_line(tmp / "unseen", prefix, par, n_nodes)
    try:
        full_block_hops(nodes, full_block, "transactions not relayed before")
        hops = n_nodes - 1
        per_hop = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            [h] = nodes[0].call("generatetoaddress", 1, ADDR)
            times = arrival_times(nodes, h, t0)
            per_hop.append((times[-1] - times[0]) / hops)
        print(f"empty block: {statistics.median(per_hop) * 1000:.1f} ms per hop (median of "
              f"{rounds}; min {min(per_hop) * 1000:.1f}, max {max(per_hop) * 1000:.1f})",
              flush=True)
    finally:
        for n in nodes:
            n.stop()
    # 2. The usual case: its transactions were gossiped first, so every mempool has them
    # and their scripts are in each node's script cache.
    nodes = start_line(tmp / "relayed", prefix, par, n_nodes)
    try:
        txs = Block.from_bytes(full_block).txs[1:]
        for i in range(0, len(txs), 1000):
            batch = [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction",
                      "params": [tx.serialize().hex()]} for j, tx in enumerate(txs[i:i + 1000])]
            status, replies = nodes[0].request(batch)
            assert status == 200 and all("result" in r for r in replies), replies[:1]
        t0 = time.perf_counter()
        while any(n.call("getmempoolinfo")["size"] < len(txs) for n in nodes):
            time.sleep(0.1)
        print(f"{len(txs)} transactions gossiped to all {n_nodes} nodes in "
              f"{time.perf_counter() - t0:.2f} s", flush=True)
        full_block_hops(nodes, full_block, "transactions relayed before")
    finally:
        for n in nodes:
            n.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=800, help="spending blocks (plus 200)")
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--par", type=int, default=None, help="script workers (default: cores)")
    ap.add_argument("--rounds", type=int, default=2, help="sync rounds (best of them)")
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
            bench_sync(Path(d), blk, height, n_txs, par, args.rounds)
        if not args.sync_only:
            bench_hops(Path(d), cache, par)


if __name__ == "__main__":
    main()
