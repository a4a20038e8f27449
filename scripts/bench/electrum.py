#!/usr/bin/env python3
"""The Electrum server (ElectrumX run beside minibtcd by regtest/electrum.py): how fast it
answers a busy address's history, and how long its cold index of a chain takes beside the
node's own import of it.

1. History: a chain where one P2WPKH address has --history transactions (default 10,000: a
   fan-out, then blocks of payments to it) is loaded into minibtcd (-loadblock, with
   -txindex -txospenderindex as ElectrumX needs), ElectrumX indexes it, then
   blockchain.scripthash.get_history for that address is timed: the first (cold) call and the
   median of --calls more, beside server.ping's median on the same connection (the round trip
   itself) and a JSON encode+decode of the same answer in this process (what its size costs).
   Goal: median under 50 ms.
2. Cold index: connect.py's chain of signed transactions (--blocks/--txs, default its 200
   blocks of 100,000 transactions, cached in --cache) imported by minibtcd -loadblock
   (until the chain and its indexes are at the last block), then indexed by a fresh
   ElectrumX (until it serves); printed as the ratio of the two.

Run: .venv/bin/python scripts/bench/electrum.py [--history 10000] [--blocks 200] [--txs 100000]
     (--skip-cold for part 1 alone, --skip-history for part 2 alone)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
from connect import FEE, Key, generate, mine, sign  # noqa: E402

from consensus.params import REGTEST  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from regtest.electrum import ElectrumClient, ElectrumService  # noqa: E402
from tests.functional.framework import NodeProcess, free_port  # noqa: E402


def history_chain(path: Path, n: int, per_block: int = 1000) -> tuple[int, str]:
    """Blocks in which one address receives `n` payments; returns (height, its scripthash)."""
    funder = Key(hashlib.sha256(b"electrum-bench-funder").digest(), "p2wpkh")
    target = Key(hashlib.sha256(b"electrum-bench-target").digest(), "p2wpkh")
    t, prev, height, blocks = 1_700_000_000, REGTEST.genesis.hash, 0, []
    coinbases = []
    for _ in range(100 + -(-n // 5000)):
        height += 1
        t += 1
        b = mine(prev, height, [], t, funder.spk, 0)
        blocks.append(b.serialize())
        prev = b.hash
        coinbases.append((b.txs[0].txid, b.txs[0].vout[0].value))
    # fan-outs of up to 5,000 outputs each (from the mature coinbases), one block
    coins, fans = [], []
    left = n
    for txid, value in coinbases[:-(-n // 5000)]:
        k = min(5000, left)
        left -= k
        each = (value - FEE * 10) // k
        tx = Transaction(2, [TxIn(OutPoint(txid, 0), b"", 0xFFFFFFFD)],
                         [TxOut(each, funder.spk) for _ in range(k)])
        sign(tx, [(funder, value, funder.spk)])
        fans.append(tx)
        coins.extend((tx.txid, j, each) for j in range(k))
    height += 1
    t += 1
    fees = sum(v for _, v in coinbases[:len(fans)]) - sum(o.value for f in fans for o in f.vout)
    b = mine(prev, height, fans, t, funder.spk, fees)
    blocks.append(b.serialize())
    prev = b.hash
    for start in range(0, n, per_block):
        txs = []
        for txid, j, value in coins[start:start + per_block]:
            tx = Transaction(2, [TxIn(OutPoint(txid, j), b"", 0xFFFFFFFD)],
                             [TxOut(value - FEE, target.spk)])
            sign(tx, [(funder, value, funder.spk)])
            txs.append(tx)
        height += 1
        t += 1
        b = mine(prev, height, txs, t, funder.spk, FEE * len(txs))
        blocks.append(b.serialize())
        prev = b.hash
    with open(path, "wb") as f:
        for raw in blocks:
            f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
    return height, hashlib.sha256(target.spk).digest()[::-1].hex()


def node_import(datadir: Path, blk: Path, height: int) -> tuple[NodeProcess, float]:
    """minibtcd -loadblock with ElectrumX's indexes; seconds until the chain and the indexes
    are at `height`. The node is left running."""
    node = NodeProcess(datadir, f"-loadblock={blk}", "-txindex", "-txospenderindex")
    t0 = time.perf_counter()
    node.start()
    while node.call("getblockcount") < height:
        time.sleep(0.05)
    while not all(v["synced"] and v["best_block_height"] == height
                  for v in node.call("getindexinfo").values()):
        time.sleep(0.05)
    return node, time.perf_counter() - t0


def electrum_cold(node: NodeProcess, db: Path, **kw) -> tuple[ElectrumService, float]:
    svc = ElectrumService(node.chain_dir, node.rpcport, node.chain_dir / ".cookie",
                          free_port(), db, **kw)
    t0 = time.perf_counter()
    svc.start(timeout=7200)
    return svc, time.perf_counter() - t0


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_history(cache: Path, n: int, calls: int) -> None:
    blk = cache / f"electrum_history_{n}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating a chain with an address of {n:,} transactions ...", flush=True)
        height, sh = history_chain(blk, n)
        meta.write_text(f"{height} {sh}")
    height_s, sh = meta.read_text().split()
    height = int(height_s)
    d = Path(tempfile.mkdtemp(prefix="f-electrum-bench-"))
    try:
        node, t_node = node_import(d / "node", blk, height)
        try:
            svc, t_ex = electrum_cold(node, d / "ex")
            try:
                with ElectrumClient("127.0.0.1", svc.port, timeout=120) as c:
                    ping = timed(lambda: c.call("server.ping"), calls)
                    t0 = time.perf_counter()
                    hist = c.call("blockchain.scripthash.get_history", sh)
                    cold = time.perf_counter() - t0
                    if len(hist) != n:
                        raise SystemExit(f"history has {len(hist)} entries, not {n}")
                    warm = timed(lambda: c.call("blockchain.scripthash.get_history", sh), calls)
                    raw = json.dumps(hist)  # stdlib json: what ElectrumX's aiorpcx encodes with
                    codec = timed(lambda: orjson.loads(json.dumps(orjson.loads(raw))), calls)
            finally:
                svc.stop()
            # the same, with aiorpcx's own (stdlib json) encoding of answers, alternating
            plain_svc, _ = electrum_cold(node, d / "ex", fast_json=False)
            fast_svc, _ = electrum_cold(node, d / "ex2", fast_json=True)
            try:
                with ElectrumClient("127.0.0.1", plain_svc.port, timeout=120) as p, \
                        ElectrumClient("127.0.0.1", fast_svc.port, timeout=120) as f:
                    ab_plain, ab_fast = [], []
                    for _ in range(calls):
                        ab_plain += timed(lambda: p.call("blockchain.scripthash.get_history",
                                                         sh), 1)
                        ab_fast += timed(lambda: f.call("blockchain.scripthash.get_history",
                                                        sh), 1)
            finally:
                plain_svc.stop()
                fast_svc.stop()
        finally:
            node.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    med, med_ping, med_codec = (statistics.median(x) for x in (warm, ping, codec))
    med_plain, med_fast = statistics.median(ab_plain), statistics.median(ab_fast)
    print(f"history chain: {height} blocks; node import {t_node:.1f} s, ElectrumX cold index "
          f"{t_ex:.1f} s = {t_ex / t_node:.2f} x the import")
    print(f"get_history of {n:,} transactions ({len(raw) / 1e6:.2f} MB of JSON): first call "
          f"{cold * 1e3:.0f} ms; median of {calls} {med * 1e3:.1f} ms (goal < 50 ms), "
          f"p90 {sorted(warm)[int(calls * 0.9)] * 1e3:.1f} ms")
    print(f"  = {med / med_ping:.0f} x server.ping's round trip ({med_ping * 1e3:.2f} ms), "
          f"{med / med_codec:.1f} x a JSON encode (json) + decode (orjson) of the answer here "
          f"({med_codec * 1e3:.1f} ms)")
    print(f"  answers encoded with orjson (the service's default) {med_fast * 1e3:.1f} ms vs "
          f"aiorpcx's stdlib json {med_plain * 1e3:.1f} ms, alternating: "
          f"{med_fast / med_plain:.2f} x")


def bench_cold(cache: Path, blocks: int, txs: int) -> None:
    blk = cache / f"connect_{blocks}_{txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {blocks} blocks with {txs} signed transactions ...", flush=True)
        counts = generate(blk, blocks, txs)
        meta.write_text(" ".join(map(str, counts)))
    n_blocks, n_txs, n_inputs = map(int, meta.read_text().split())
    height = 200 + n_blocks
    d = Path(tempfile.mkdtemp(prefix="f-electrum-bench-"))
    try:
        node, t_node = node_import(d / "node", blk, height)
        try:
            svc, t_ex = electrum_cold(node, d / "ex")
            svc.stop()
        finally:
            node.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"chain: {height} blocks, {n_txs:,} txs, {n_inputs:,} inputs")
    print(f"node import (-loadblock, -txindex -txospenderindex synced): {t_node:.1f} s = "
          f"{n_txs / t_node:,.0f} tx/s")
    print(f"ElectrumX cold index until it serves: {t_ex:.1f} s = {n_txs / t_ex:,.0f} tx/s "
          f"= {t_ex / t_node:.2f} x the node's import")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--skip-history", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not args.skip_history:
        bench_history(cache, args.history, args.calls)
    if not args.skip_cold:
        bench_cold(cache, args.blocks, args.txs)


if __name__ == "__main__":
    main()
