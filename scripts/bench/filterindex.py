#!/usr/bin/env python3
"""What -blockfilterindex adds to an import: the BIP158 filter index built over a long chain,
beside the time the chain took to import.

Generates (or reuses, from --cache) connect.py's chain of signed P2WPKH/P2TR transactions,
imports it with `python -m node.importer` into a fresh datadir (timed), then builds the basic
filter index over the imported chain with the index's own thread (timed), and prints both and
their ratio: the most the index can add to an import, as it builds in the background beside
validation. Goal: ratio <= 0.2. Also times the other indexes, for information; and, end to end,
minibtcd -loadblock with and without -blockfilterindex (until the chain and the index are at
the last block; median of --rounds runs, alternated, as other load on the machine makes single
runs noisy).

With --zmq, each round also imports with every -zmqpub* notifier on (a subscriber in this
process takes every message): what publishing costs block connection.

With --kyoto N, only this: a BDK wallet on Kyoto (bdkpython's BIP157 light client) syncs a
chain of N blocks from a minibtcd with -peerblockfilters as its only peer, timed beside a bare
Python peer fetching the same headers, filter headers and filters over P2P (the least a light
client has to download).

Run: .venv/bin/python scripts/bench/filterindex.py [--blocks 100] [--txs 20000] [--zmq]
     .venv/bin/python scripts/bench/filterindex.py --kyoto 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connect import generate  # noqa: E402

from consensus.params import REGTEST  # noqa: E402
from node.chain import ChainState  # noqa: E402
from node.index import Indexes  # noqa: E402
from node.scriptcheck import ScriptChecker  # noqa: E402


def build(datadir: Path, **which) -> float:
    chain = ChainState(datadir / "regtest", REGTEST, scripts=ScriptChecker(0))
    chain.load()
    try:
        ixs = Indexes.open(datadir / "regtest", chain, wipe=True, **which)
        t0 = time.perf_counter()
        ixs.start()
        while not all(i.synced for i in ixs.all):
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        ixs.close()
        return elapsed
    finally:
        chain.close()


def daemon_import(blk: Path, height: int, extra: list[str]) -> float:
    """Seconds until minibtcd -loadblock has the chain (and its indexes) at `height`."""
    from tests.functional.framework import NodeProcess

    d = Path(tempfile.mkdtemp(prefix="filterbench-"))
    try:
        node = NodeProcess(d, f"-loadblock={blk}", *extra)
        t0 = time.perf_counter()
        node.start()
        try:
            while node.call("getblockcount") < height:
                time.sleep(0.05)
            while not all(v["synced"] and v["best_block_height"] == height
                          for v in node.call("getindexinfo").values()):
                time.sleep(0.05)
            return time.perf_counter() - t0
        finally:
            node.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


class ZmqDrain:
    """A subscriber to every topic at `address`, counting what it receives (a thread)."""

    def __init__(self, address: str) -> None:
        import threading

        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(address)
        self.count = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import zmq

        while not self.stop:
            try:
                self.sock.recv_multipart()
                self.count += 1
            except zmq.Again:
                pass

    def close(self) -> int:
        self.stop = True
        self.thread.join()
        self.sock.close(linger=0)
        self.ctx.term()
        return self.count


def zmq_import(blk: Path, height: int) -> tuple[float, int]:
    from tests.functional.framework import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    drain = ZmqDrain(address)
    try:
        t = daemon_import(blk, height, [f"-zmqpub{topic}={address}" for topic in (
            "hashblock", "hashtx", "rawblock", "rawtx", "sequence")])
    finally:
        n = drain.close()
    return t, n


def index_builds(blk: Path) -> None:
    """The import alone (python -m node.importer), then each index built over it alone."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "node.importer", f"-datadir={d}",
                            f"-loadblock={blk}"], cwd=ROOT, capture_output=True, text=True)
        t_import = time.perf_counter() - t0
        if p.returncode != 0 or "invalid=0" not in p.stderr:
            print(p.stderr[-3000:])
            raise SystemExit("import failed")
        t_filter = build(Path(d), blockfilterindex=True)
        t_others = {name: build(Path(d), **{name: True})
                    for name in ("txindex", "coinstatsindex", "txospenderindex")}
    print(f"import: {t_import:.1f} s; basic filter index over it: {t_filter:.1f} s "
          f"= {t_filter / t_import:.2f} x the import (goal <= 0.20)")
    print("other indexes: " + ", ".join(f"{k} {v:.1f} s = {v / t_import:.2f} x"
                                        for k, v in t_others.items()))


def bare_fetch(node, height: int) -> float:
    """Seconds for a raw P2P peer to fetch every header, filter header and filter."""
    from node.p2p import cfilters as cf
    from node.p2p import messages as m
    from tests.functional.p2p_peer import RawPeer

    t0 = time.perf_counter()
    peer = RawPeer(node.p2pport, timeout=60)
    peer.handshake()
    tip = bytes.fromhex(node.call("getblockhash", 0))[::-1]
    got = 0
    while got < height:  # headers, 2,000 a message
        peer.send(m.GetHeaders([tip], bytes(32)))
        headers = peer.wait_for("headers", 60).headers
        got += len(headers)
        tip = headers[-1].hash
    hashes = {}
    for start in range(1, height + 1, cf.MAX_GETCFHEADERS_SIZE):
        stop = min(start + cf.MAX_GETCFHEADERS_SIZE - 1, height)
        stop_hash = bytes.fromhex(node.call("getblockhash", stop))[::-1]
        peer.send(cf.GetCFHeaders(0, start, stop_hash))
        hashes[start] = peer.wait_for("cfheaders", 60).headers()
    for start in range(1, height + 1, cf.MAX_GETCFILTERS_SIZE):
        stop = min(start + cf.MAX_GETCFILTERS_SIZE - 1, height)
        peer.send(cf.GetCFilters(0, start, bytes.fromhex(node.call("getblockhash", stop))[::-1]))
        for _ in range(start, stop + 1):
            peer.wait_for("cfilter", 60)
    peer.close()
    return time.perf_counter() - t0


def kyoto_sync(blocks: int) -> None:
    import asyncio

    from tests.functional.bdkutil import KyotoEvents, bip84_wallet, kyoto, next_address, stop
    from tests.functional.framework import NodeProcess

    d = Path(tempfile.mkdtemp(prefix="kyotobench-"))
    node = NodeProcess(d / "n", "-blockfilterindex", "-peerblockfilters")
    node.start()
    try:
        node.create_wallet("default")
        miner = node.call("getnewaddress", wallet="default")
        node.call("generatetoaddress", 101, miner)
        wallet = bip84_wallet()
        paid = 0
        while node.call("getblockcount") < blocks:  # a payment to the wallet every 50 blocks
            node.call("sendtoaddress", next_address(wallet), 0.01, wallet="default")
            paid += 1_000_000
            node.call("generatetoaddress", min(50, blocks - node.call("getblockcount")), miner)
        while not node.call("getindexinfo")["basic block filter index"]["synced"]:
            time.sleep(0.05)
        t_bare = bare_fetch(node, blocks)
        t0 = time.perf_counter()
        parts = kyoto(wallet, node.p2pport, d / "kyoto")

        async def sync():
            async with KyotoEvents(parts.client):
                wallet.apply_update(await parts.client.update())

        asyncio.run(sync())
        t_kyoto = time.perf_counter() - t0
        stop(parts.client)
        balance = wallet.balance().total.to_sat()
        print(f"Kyoto sync of {blocks} blocks: {t_kyoto:.2f} s (balance {balance} sat, "
              f"{'right' if balance == paid else f'expected {paid}'}); a bare peer fetching "
              f"the headers, filter headers and filters: {t_bare:.2f} s; ratio "
              f"{t_kyoto / t_bare:.2f} x")
    finally:
        node.stop()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--zmq", action="store_true", help="also import with ZMQ notifications on")
    ap.add_argument("--no-index-builds", action="store_true",
                    help="skip the index builds (end-to-end imports only)")
    ap.add_argument("--kyoto", type=int, default=0, metavar="N",
                    help="only time a Kyoto light-client sync of N blocks")
    args = ap.parse_args()
    if args.kyoto:
        kyoto_sync(args.kyoto)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    blk = cache / f"connect_{args.blocks}_{args.txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {args.blocks} blocks with {args.txs} signed transactions ...")
        counts = generate(blk, args.blocks, args.txs)
        meta.write_text(" ".join(map(str, counts)))
    n_blocks, n_txs, n_inputs = map(int, meta.read_text().split())
    print(f"chain: {n_blocks} spending blocks (+200 funding), {n_txs} txs, {n_inputs} inputs")
    if not args.no_index_builds:
        index_builds(blk)
    ratios = []
    zmq_ratios = []
    for _ in range(args.rounds):
        plain = daemon_import(blk, 200 + n_blocks, [])
        filtered = daemon_import(blk, 200 + n_blocks, ["-blockfilterindex"])
        ratios.append(filtered / plain)
        print(f"  minibtcd -loadblock: {plain:.1f} s; with -blockfilterindex (index synced too): "
              f"{filtered:.1f} s", flush=True)
        if args.zmq:
            published, messages = zmq_import(blk, 200 + n_blocks)
            zmq_ratios.append(published / plain)
            print(f"  with every -zmqpub* notifier and a subscriber: {published:.1f} s "
                  f"({messages} messages received)", flush=True)
    print(f"end to end, median of {args.rounds}: -blockfilterindex makes the import "
          f"{statistics.median(ratios):.2f} x as long (goal <= 1.20)")
    if zmq_ratios:
        print(f"end to end, median of {args.rounds}: ZMQ notifications make the import "
              f"{statistics.median(zmq_ratios):.2f} x as long")


if __name__ == "__main__":
    main()
