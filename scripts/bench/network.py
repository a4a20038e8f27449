#!/usr/bin/env python3
"""Block propagation on a local network: 10 nodes (a ring), two miners on opposite sides
finding blocks at random (Poisson) intervals, and a steady stream of payments between the
nodes' wallets. Every node's tip is polled; each block's arrival time at each node is when a
poll first saw it (as the tip or an ancestor of the tip).

Printed: the median and 95th-percentile time for a block to reach every node (from the first
node that had it, i.e. its miner), for the blocks that ended in the best chain; the fraction
of blocks that ended stale; and the polling interval, the resolution of these times.

Run: .venv/bin/python scripts/bench/network.py [--nodes 10] [--seconds 120] [--interval 4]
                                                [--payments 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from regtest.network import MinerSpec, Network  # noqa: E402
from tests.functional.netutil import net_cli, wait_until  # noqa: E402
from wallet.nodeclient import NodeRPCError  # noqa: E402

POLL = 0.02  # seconds between sweeps over the nodes (each sweep takes a few ms more)


class Watcher:
    """Polls every node's tip; records when each node first had each block."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.clients = [net.client(i) for i in range(net.spec.nodes)]
        self.seen: list[dict[str, float]] = [{} for _ in self.clients]
        self.parent: dict[str, str] = {}
        self.stop = False

    def _learn(self, i: int, tip: str, t: float) -> None:
        seen = self.seen[i]
        h = tip
        while h not in seen:
            seen[h] = t
            if h not in self.parent:
                hdr = self.clients[i].call("getblockheader", h)
                self.parent[h] = hdr.get("previousblockhash", "")
            h = self.parent[h]
            if not h:
                break

    def run(self) -> None:
        while not self.stop:
            for i, c in enumerate(self.clients):
                tip = c.call("getbestblockhash")
                self._learn(i, tip, time.perf_counter())
            time.sleep(POLL)


def pay(net: Network, per_second: float, stop: threading.Event, counts: list[int]) -> None:
    rng = random.Random(1)
    n = net.spec.nodes
    while not stop.is_set():
        src, dst = rng.randrange(n), rng.randrange(n)
        try:
            address = net.call(dst, "getnewaddress", wallet=True)
            net.call(src, "sendtoaddress", address, "0.01", wallet=True)
            counts[0] += 1
        except NodeRPCError:
            counts[1] += 1  # (a wallet with no mature coins yet, or all in flight)
        stop.wait(rng.expovariate(per_second))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--interval", type=float, default=4.0,
                    help="mean seconds between one miner's blocks (two miners)")
    ap.add_argument("--payments", type=float, default=4.0, help="payments per second")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "net"
        net_cli(folder, "up", "--nodes", str(args.nodes), "--topology", "ring", "--miners",
                "0", "--detach")
        net = Network(folder)
        try:
            # Coins for every wallet first: 101 blocks to each half's miner node, then a
            # share for everyone, confirmed.
            half = args.nodes // 2

            def synced() -> bool:
                return len({net.call(i, "getbestblockhash") for i in range(args.nodes)}) == 1

            for i in (0, half, 0):
                net.mine(i, 101 if i == 0 and net.call(0, "getblockcount") else 60)
                wait_until(synced, 60, "every node on the same tip")
            for i in (0, half):
                wait_until(lambda i=i: net.call(i, "getbalance", wallet=True) > 100, 60,
                           f"coins for node {i}'s wallet")
            for i in range(args.nodes):
                for _ in range(5):
                    src = 0 if i != 0 else half
                    net.call(src, "sendtoaddress", net.call(i, "getnewaddress", wallet=True),
                             "5", wallet=True)
            wait_until(lambda: net.call(0, "getmempoolinfo")["size"] == 5 * args.nodes, 60,
                       "the funding payments in node 0's mempool")
            net.mine(0, 1)
            wait_until(synced, 60, "every node on the same tip")
            for i in range(args.nodes):
                wait_until(lambda i=i: net.call(i, "getbalance", wallet=True) > 0, 60,
                           f"coins for node {i}'s wallet")
            watcher = Watcher(net)
            for i, c in enumerate(watcher.clients):  # what exists before we measure
                watcher._learn(i, c.call("getbestblockhash"), 0.0)
            before = {h for seen in watcher.seen for h in seen}
            # Two miners on opposite sides of the ring, as separate processes.
            net.spec.miners = [MinerSpec(0, args.interval), MinerSpec(half, args.interval)]
            miners = [net.start_miner(k) for k in range(2)]
            wt = threading.Thread(target=watcher.run, daemon=True)
            stop = threading.Event()
            counts = [0, 0]
            pt = threading.Thread(target=pay, args=(net, args.payments, stop, counts),
                                  daemon=True)
            wt.start()
            pt.start()
            time.sleep(args.seconds)
            for p in miners:
                p.terminate()
                p.wait(10)
            stop.set()
            pt.join()
            time.sleep(3)  # the last blocks settle everywhere
            watcher.stop = True
            wt.join()
            best_chain = []
            h = net.call(0, "getbestblockhash")
            while h not in before:
                best_chain.append(h)
                h = watcher.parent[h]
            mined = {h for seen in watcher.seen for h in seen} - before
            stale = mined - set(best_chain)
            spans = sorted(max(seen[h] for seen in watcher.seen) -
                           min(seen[h] for seen in watcher.seen) for h in best_chain)
            print(f"{args.nodes} nodes in a ring, 2 miners (a block every {args.interval:g} s "
                  f"each on average), {counts[0]} payments ({counts[0] / args.seconds:.1f}/s; "
                  f"{counts[1]} refused), {args.seconds:.0f} s")
            print(f"blocks in the best chain: {len(best_chain)}; time to reach all "
                  f"{args.nodes} nodes: median {statistics.median(spans) * 1000:.0f} ms, "
                  f"95th percentile {spans[max(0, int(len(spans) * 0.95) - 1)] * 1000:.0f} ms, "
                  f"max {spans[-1] * 1000:.0f} ms (tips polled every {POLL * 1000:.0f} ms "
                  f"plus a sweep of {args.nodes} calls)")
            total = len(best_chain) + len(stale)
            print(f"stale blocks: {len(stale)} of {total} mined = {len(stale) / total:.1%}")
        finally:
            net_cli(folder, "down")


if __name__ == "__main__":
    main()
