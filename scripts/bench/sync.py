#!/usr/bin/env python3
"""P2P sync and block propagation, measured on real minibtcd processes over loopback.

1. Sync: a chain of 1,000 blocks carrying 100,000 signed transactions (200 funding blocks,
   then 800 blocks of P2WPKH and P2TR spends; the generator of connect.py, cached in
   --cache) is imported by node A with -loadblock, then node B, empty, syncs it from A over
   P2P, once over BIP324's v2 transport (the default) and once over v1 (-v2transport=0).
   Printed: the times and their ratios (goals: P2P at least 0.8 as fast as -loadblock; v2
   at most 10% slower than v1).
2. Propagation: eight nodes in a line; a block is mined (or submitted) at one end and the
   time until each node has it as its tip is recorded. Printed: the per-hop delay of an
   empty block (median of several) and of a full block (about 4,000 transactions), unseen
   or with its transactions gossiped first; the latter twice: the first block after start
   (each node asks for it as a compact block, low-bandwidth BIP152), then the next one,
   once every node has asked its upstream peer for high-bandwidth compact blocks (each hop
   passes it on before connecting it). Goal: at most 50 ms per hop.

Run: .venv/bin/python scripts/bench/sync.py [--blocks 800] [--txs 100000] [--hops-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from connect import generate  # noqa: E402

from consensus.block import Block  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from node.p2p import messages as m  # noqa: E402
from node.store.blockfiles import scan_block_file  # noqa: E402
from tests.functional.framework import NodeProcess  # noqa: E402
from tests.functional.p2p_peer import RawPeer  # noqa: E402

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
    loads, syncs, syncs_v1, latencies = [], [], [], []
    for r in range(rounds):
        a = NodeProcess(tmp / f"a{r}", par, "-dbcache=450")
        # (Timed from the node being ready, when the import starts, as the P2P sync is.)
        a.start(f"-loadblock={blk}")
        try:
            loads.append(wait_height(a, height))
            # v2 and v1 in turn, the order swapped each round (the machine's speed drifts)
            order = [("v2", syncs), ("v1", syncs_v1)]
            for name, out in order if r % 2 == 0 else order[::-1]:
                extra = ["-v2transport=0"] if name == "v1" else []
                b = NodeProcess(tmp / f"b{r}{name}", par, "-dbcache=450",
                                f"-connect={a.p2p_addr}", *extra)
                b.start()
                try:
                    out.append(wait_height(b, height, latencies=latencies))
                    assert b.call("getbestblockhash") == a.call("getbestblockhash")
                    assert b.call("getpeerinfo")[0]["transport_protocol_type"] == name
                finally:
                    b.stop()
        finally:
            a.stop()
        print(f"round {r + 1}: -loadblock {loads[-1]:.2f} s, P2P sync v2 {syncs[-1]:.2f} s "
              f"({loads[-1] / syncs[-1]:.2f} x), v1 {syncs_v1[-1]:.2f} s "
              f"({loads[-1] / syncs_v1[-1]:.2f} x)", flush=True)
    t_load, t_p2p, t_v1 = min(loads), min(syncs), min(syncs_v1)
    print(f"-loadblock: {height} blocks, {n_txs} transactions in {t_load:.2f} s "
          f"({n_txs / t_load:,.0f} tx/s), best of {rounds}")
    print(f"P2P sync:   {height} blocks, {n_txs} transactions in {t_p2p:.2f} s "
          f"({n_txs / t_p2p:,.0f} tx/s), best of {rounds}, from one peer over loopback")
    print(f"P2P sync v1:   {n_txs} transactions in {t_v1:.2f} s ({n_txs / t_v1:,.0f} tx/s)")
    print(f"P2P sync speed = {t_load / t_p2p:.2f} x -loadblock's (goal >= 0.8)")
    print(f"v2 transport sync rate = {t_v1 / t_p2p:.3f} x v1's (goal >= 0.9: v2 costs at most "
          f"10%)")
    latencies.sort()
    print(f"getblockcount during the sync: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"99th percentile {latencies[len(latencies) * 99 // 100] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms ({len(latencies)} calls)", flush=True)


def hop_chain(cache: Path) -> tuple[Path, bytes, bytes]:
    """A prefix (200 funding blocks and a fan-out block) as a blk file, and two full blocks
    of about 4,000 transactions each on top of it, from connect.py's generator."""
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
    return prefix, raws[201], raws[202]


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


def start_line(tmp: Path, prefix: Path, par: str, n_nodes: int, *more: str) -> list[NodeProcess]:
    """n_nodes nodes in a line, each with the prefix chain imported."""
    nodes: list[NodeProcess] = []
    try:
        for i in range(n_nodes):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            nodes.append(NodeProcess(tmp / f"h{i}", par, f"-loadblock={prefix}", *extra,
                                     *more).start())
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


class Watcher:
    """A raw P2P peer beside a node that asked it for high-bandwidth compact blocks: the
    time the node announces a block to its peers (passes it on), whatever the message."""

    def __init__(self, node: NodeProcess) -> None:
        self.peer = RawPeer(node.p2pport, timeout=120)
        self.peer.handshake()
        self.peer.send(m.SendHeaders())
        self.peer.send(m.SendCmpct(True, 2))
        self.peer.send(m.GetHeaders([bytes.fromhex(node.call("getbestblockhash"))[::-1]]))
        self.peer.wait_for("headers")

    def start(self, block_hash: bytes) -> None:
        self.at: float | None = None

        def announced(cmd: str, msg) -> bool:
            if cmd == "cmpctblock":
                return msg.header.hash == block_hash
            if cmd == "headers":
                return any(h.hash == block_hash for h in msg.headers)
            if cmd == "inv":
                return any(i.hash == block_hash for i in msg.items)
            return False

        def run() -> None:
            try:
                while not announced(*self.peer.read_message(120)):
                    pass
                self.at = time.perf_counter()
            except Exception:
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self) -> float | None:
        self.thread.join(120)
        return self.at


def full_block_hops(nodes: list[NodeProcess], raw: bytes, label: str,
                    watchers: list[Watcher] | None = None) -> float:
    """Seconds per hop of a full block submitted at one end of the line, to each node's
    tip; with watchers, also the relay alone: per hop between successive nodes passing
    the block on (announcing it to their peers)."""
    blk = Block.from_bytes(raw)
    hops = len(nodes) - 1
    for w in watchers or []:
        w.start(blk.hash)
    t0 = time.perf_counter()
    assert nodes[0].call("submitblock", raw.hex()) is None
    times = arrival_times(nodes, blk.hash_hex(), t0)
    per_hop = (times[-1] - times[0]) / hops
    print(f"full block ({len(blk.txs)} transactions, {len(raw):,} bytes, weight "
          f"{blk.weight:,}), {label}: {per_hop * 1000:.0f} ms per hop to the tip "
          f"({times[-1]:.2f} s to the last of {len(nodes)} nodes; the first took "
          f"{times[0] * 1000:.0f} ms to accept it)", flush=True)
    if watchers:
        passed = [w.wait() for w in watchers]
        if all(t is not None for t in passed):
            relay = (passed[-1] - passed[0]) / hops
            print(f"  relayed (each node passing it on): {relay * 1000:.0f} ms per hop", flush=True)
            return relay
    return per_hop


def gossip(nodes: list[NodeProcess], raw: bytes) -> None:
    """The block's transactions sent to the first node, and relayed to every mempool."""
    txs = Block.from_bytes(raw).txs[1:]
    before = [n.call("getmempoolinfo")["size"] for n in nodes]
    for i in range(0, len(txs), 1000):
        batch = [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction",
                  "params": [tx.serialize().hex()]} for j, tx in enumerate(txs[i:i + 1000])]
        status, replies = nodes[0].request(batch)
        assert status == 200 and all("result" in r for r in replies), replies[:1]
    t0 = time.perf_counter()
    while any(n.call("getmempoolinfo")["size"] < b + len(txs) for n, b in zip(nodes, before)):
        time.sleep(0.1)
    print(f"{len(txs)} transactions gossiped to all {len(nodes)} nodes in "
          f"{time.perf_counter() - t0:.2f} s", flush=True)


def set_clock(nodes: list[NodeProcess], raw: bytes) -> None:
    """The generated chain's blocks are dated 2023: each node's clock is set just after the
    block, as if it had been mined a moment ago (out of the initial download, near the tip:
    where compact blocks are used)."""
    t = Block.from_bytes(raw).header.time + 10
    for n in nodes:
        n.call("setmocktime", t)


def bench_hops(tmp: Path, cache: Path, par: str, n_nodes: int = 8, rounds: int = 7) -> None:
    prefix, full_block, next_block = hop_chain(cache)
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
        empty_hop = statistics.median(per_hop)
        print(f"empty block: {empty_hop * 1000:.1f} ms per hop (median of "
              f"{rounds}; min {min(per_hop) * 1000:.1f}, max {max(per_hop) * 1000:.1f})",
              flush=True)
    finally:
        for n in nodes:
            n.stop()
    # 2. The usual case: its transactions were gossiped first, so every mempool has them
    # and their scripts are in each node's script cache.
    nodes = start_line(tmp / "relayed", prefix, par, n_nodes)
    try:
        set_clock(nodes, full_block)
        watchers = [Watcher(n) for n in nodes]
        gossip(nodes, full_block)
        full_block_hops(nodes, full_block, "transactions relayed before, low-bandwidth "
                                           "compact block", watchers)
        hb = [sum(p["bip152_hb_to"] for p in n.call("getpeerinfo")) for n in nodes]
        print(f"high-bandwidth compact block peers chosen: {hb}", flush=True)
        set_clock(nodes, next_block)
        gossip(nodes, next_block)

        def sent(what: str) -> int:
            return sum(p["bytessent_per_msg"].get(what, 0) for n in nodes
                       for p in n.call("getpeerinfo"))

        before = sent("block"), sent("cmpctblock")
        per_hop = full_block_hops(nodes, next_block, "transactions relayed before, "
                                                     "high-bandwidth compact block", watchers)
        print(f"relay per hop: {per_hop * 1000:.0f} ms (goal <= 50 ms), "
              f"{per_hop / empty_hop:.1f} x an empty block's; sent on the line for it: "
              f"{sent('cmpctblock') - before[1]:,} bytes of cmpctblock, "
              f"{sent('block') - before[0]:,} of full blocks", flush=True)
    finally:
        for n in nodes:
            n.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=800, help="spending blocks (plus 200)")
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--par", type=int, default=None, help="the nodes' -par, as Core's "
                    "(default: the node's, 0: one checker per core)")
    ap.add_argument("--rounds", type=int, default=2, help="sync rounds (best of them)")
    ap.add_argument("--hops-only", action="store_true")
    ap.add_argument("--sync-only", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    par = f"-par={args.par if args.par is not None else 0}"  # (0: the node's default)
    with tempfile.TemporaryDirectory() as d:
        if not args.hops_only:
            blk, height, n_txs = cached_chain(cache, args.blocks, args.txs)
            bench_sync(Path(d), blk, height, n_txs, par, args.rounds)
        if not args.sync_only:
            bench_hops(Path(d), cache, par)


if __name__ == "__main__":
    main()
