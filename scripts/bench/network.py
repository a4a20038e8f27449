#!/usr/bin/env python3
"""Block propagation on a local network: 10 nodes (a ring), two miners on opposite sides
finding blocks at random (Poisson) intervals, and a steady stream of payments between the
nodes' wallets. Every node's tip is polled; each block's arrival time at each node is when a
poll first saw it (as the tip or an ancestor of the tip).

Printed: the median and 95th-percentile time for a block to reach every node (from the first
node that had it, i.e. its miner), for the blocks that ended in the best chain; the fraction
of blocks that ended stale; and the polling interval, the resolution of these times.

Also printed, first: the everyday tools' answer times on the same network, the median of a
few runs each, beside a Python process that does nothing (what the machine takes to start
one): `minibtc-net status` (every node asked at once) and `minibtc-net cli N getblockcount`
beside `minibtc-cli`'s own time for the same call.

With --delay 100ms (needs root) the nodes run in --hosts mode with that delay on every link,
each way, as Warnet's latency: tc netem where the kernel has sch_netem, else minibtc-net's
userspace link emulator (regtest/linkemu.py).

Run: .venv/bin/python scripts/bench/network.py [--nodes 10] [--seconds 120] [--interval 4]
                                                [--payments 4] [--delay 100ms] [--tools-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
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
    while per_second > 0 and not stop.is_set():  # (--payments 0: blocks only)
        src, dst = rng.randrange(n), rng.randrange(n)
        try:
            address = net.call(dst, "getnewaddress", wallet=True)
            net.call(src, "sendtoaddress", address, "0.01", wallet=True)
            counts[0] += 1
        except NodeRPCError:
            counts[1] += 1  # (a wallet with no mature coins yet, or all in flight)
        stop.wait(rng.expovariate(per_second))


def _median_time(argv: list[str], runs: int = 5) -> float:
    times = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr}")
    return statistics.median(times)


def measure_tools(folder: Path, net: Network) -> None:
    """status and cli answer times, beside an empty Python process and minibtc-cli."""
    py = sys.executable
    spec = json.loads((folder / "network.json").read_text())
    i = spec["nodes"] - 1
    empty = _median_time([py, "-c", "pass"])
    status = _median_time([py, "-m", "regtest.cli", "status", "--dir", str(folder)])
    ours = _median_time([py, "-m", "regtest.cli", "cli", str(i), "--dir", str(folder),
                         "getblockcount"])
    plain = _median_time([py, "-m", "node.cli", "-regtest", f"-datadir={net.datadir(i)}",
                          f"-rpcport={spec['rpc_ports'][i]}", f"-rpcconnect={net.host(i)}",
                          "getblockcount"])
    print(f"an empty Python process: {empty * 1000:.0f} ms (the unit below)")
    print(f"minibtc-net status, {spec['nodes']} nodes: {status * 1000:.0f} ms "
          f"= {status / empty:.1f} x an empty process (goal: under 1 s)")
    print(f"minibtc-net cli {i} getblockcount: {ours * 1000:.0f} ms = {ours / empty:.1f} x; "
          f"minibtc-cli getblockcount: {plain * 1000:.0f} ms = {plain / empty:.1f} x; "
          f"difference {(ours - plain) * 1000:+.0f} ms (goal: within 300 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--interval", type=float, default=4.0,
                    help="mean seconds between one miner's blocks (two miners)")
    ap.add_argument("--payments", type=float, default=4.0, help="payments per second")
    ap.add_argument("--delay", default="", help="--hosts mode with this delay on every link "
                    "(e.g. 100ms; root)")
    ap.add_argument("--tools-only", action="store_true",
                    help="only the status/cli times, no propagation run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "net"
        extra = ["--hosts", "--delay", args.delay] if args.delay else []
        net_cli(folder, "up", "--nodes", str(args.nodes), "--topology", "ring", "--miners",
                "0", *extra, "--detach")
        net = Network(folder)
        try:
            measure_tools(folder, net)
            if args.tools_only:
                return
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
            # The last blocks settle everywhere (with 100 ms links a block takes seconds to
            # go round: a fixed 3 s wait missed some), then one more sweep records them.
            wait_until(synced, 60, "every node on the same tip")
            time.sleep(0.5)
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
            print(f"{args.nodes} nodes in a ring"
                  + (f" (links delayed {args.delay} each way)" if args.delay else "")
                  + f", 2 miners (a block every {args.interval:g} s "
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
