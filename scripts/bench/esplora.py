#!/usr/bin/env python3
"""The Esplora API's speed (issue 17).

1. Latency of GET /address/:a/txs (and of its deeper pages, /txs/chain/:last_seen) for an
   address with 10,000 confirmed transactions, served by minibtcd -esplora after a -loadblock
   of a chain built for it; beside the latency of GET /blocks/tip/height on the same server
   (the HTTP round trip with no work), measured in the same run. Goal: median under 50 ms.
2. The address index's build rate against block connect rate: connect.py's chain of signed
   transactions imported with node.importer (timed), then the address index built over it by
   its own thread (timed): the most it can add to an import, as it builds beside validation.

Run: .venv/bin/python scripts/bench/esplora.py [--txs 10000] [--requests 200]
                                               [--chain-txs 20000] [--chain-blocks 100]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from connect import generate, mine  # noqa: E402

from consensus.hashes import hash160  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from consensus.script.standard import p2wpkh_script  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from node.chain import ChainState  # noqa: E402
from node.index.addrindex import AddrIndex  # noqa: E402
from node.scriptcheck import ScriptChecker  # noqa: E402
from tests.chainbuilder import OP_TRUE, P2WSH_TRUE  # noqa: E402

TARGET = p2wpkh_script(hash160(b"esplora bench target"))
FEE = 300


def address_chain(path: Path, n_txs: int, per_block: int) -> int:
    """A chain whose TARGET script is paid by n_txs transactions (a chain of spends of an
    anyone-can-spend P2WSH output, each paying TARGET 1,000 sat); returns its height."""
    t = 1_700_000_000
    prev = REGTEST.genesis.hash
    blocks = []
    height = 0
    for _ in range(101):
        height += 1
        t += 1
        b = mine(prev, height, [], t, P2WSH_TRUE, 0)
        blocks.append(b.serialize())
        prev = b.hash
        if height == 1:
            coin = (b.txs[0].txid, 0, b.txs[0].vout[0].value)
    done = 0
    while done < n_txs:
        txs = []
        fees = 0
        for _ in range(min(per_block, n_txs - done)):
            txid, n, value = coin
            change = value - 1_000 - FEE
            tx = Transaction(2, [TxIn(OutPoint(txid, n), b"", 0xFFFFFFFD, [OP_TRUE])],
                             [TxOut(1_000, TARGET), TxOut(change, P2WSH_TRUE)])
            txs.append(tx)
            fees += FEE
            coin = (tx.txid, 1, change)
            done += 1
        height += 1
        t += 1
        b = mine(prev, height, txs, t, P2WSH_TRUE, fees)
        blocks.append(b.serialize())
        prev = b.hash
    with open(path, "wb") as f:
        for raw in blocks:
            f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
    return height


def fetch(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def latency(blk: Path, height: int, n_txs: int, requests: int) -> None:
    import json

    from tests.functional.framework import NodeProcess, free_port
    from wallet.address import script_to_address

    addr = script_to_address(TARGET, REGTEST)
    d = Path(tempfile.mkdtemp(prefix="f2-esplorabench-"))
    port = free_port()
    node = NodeProcess(d, f"-loadblock={blk}", f"-esplora={port}")
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        node.start()
        while node.call("getblockcount") < height:
            time.sleep(0.05)
        while True:
            _, body = fetch(f"{base}/address/{addr}")
            if json.loads(body)["chain_stats"]["tx_count"] >= n_txs:
                break
            time.sleep(0.05)
        print(f"minibtcd -loadblock -esplora: {height} blocks and the indexes in "
              f"{time.perf_counter() - t0:.1f} s")
        # the deep pages: last_seen txids spread over the whole history
        all_pages = []
        cold = []  # first reads of pages: nothing of them in the server's caches yet
        took, body = fetch(f"{base}/address/{addr}/txs/chain")
        cold.append(took)
        first = json.loads(body)
        assert len(first) == 25
        cursor = first[-1]["txid"]
        while len(all_pages) < 40:
            took, body = fetch(f"{base}/address/{addr}/txs/chain/{cursor}")
            page = json.loads(body)
            if not page:
                break
            cold.append(took)
            all_pages.append(cursor)
            cursor = page[-1]["txid"]
            for _ in range(n_txs // 25 // 40 - 1):  # skip ahead: sample the whole history
                page = json.loads(fetch(f"{base}/address/{addr}/txs/chain/{cursor}")[1])
                if not page:
                    break
                cursor = page[-1]["txid"]
        rng = random.Random(1)
        kinds = {
            "GET /blocks/tip/height (round trip)": lambda: f"{base}/blocks/tip/height",
            "GET /address/:a (stats)": lambda: f"{base}/address/{addr}",
            "GET /address/:a/txs (25 newest)": lambda: f"{base}/address/{addr}/txs",
            "GET /address/:a/txs/chain/:last (deep pages)":
                lambda: f"{base}/address/{addr}/txs/chain/{rng.choice(all_pages)}",
        }
        utxo = sorted(fetch(f"{base}/address/{addr}/utxo")[0] for _ in range(5))
        results = {}
        for _ in range(3):  # interleaved rounds: load on the machine hits all alike
            for name, url in kinds.items():
                for _ in range(requests // 3):
                    results.setdefault(name, []).append(fetch(url())[0])
        floor = statistics.median(results["GET /blocks/tip/height (round trip)"])
        print(f"address with {n_txs} transactions ({addr}):")
        for name, times in results.items():
            times.sort()
            med = statistics.median(times)
            p95 = times[int(len(times) * 0.95) - 1]
            print(f"  {name}: median {med * 1000:.1f} ms, 95th percentile {p95 * 1000:.1f} ms "
                  f"= {med / floor:.1f} x the bare round trip")
        cold.sort()
        print(f"  pages read for the first time (cold caches, {len(cold)}): median "
              f"{statistics.median(cold) * 1000:.1f} ms, max {cold[-1] * 1000:.1f} ms "
              f"= {statistics.median(cold) / floor:.1f} x the bare round trip")
        print(f"  GET /address/:a/utxo (all {n_txs} outputs, for information): median "
              f"{statistics.median(utxo) * 1000:.0f} ms of 5")
        med = statistics.median(results["GET /address/:a/txs (25 newest)"])
        print(f"goal: /address/:a/txs median under 50 ms: {'met' if med < 0.05 else 'NOT met'} "
              f"({med * 1000:.1f} ms)")
    finally:
        node.stop()
        shutil.rmtree(d, ignore_errors=True)


def daemon_import(blk: Path, height: int, extra: list[str]) -> float:
    """Seconds until minibtcd -loadblock has the chain at `height`, and with -esplora its
    address index too (the API answers for the tip)."""
    import json

    from tests.functional.framework import NodeProcess, free_port

    d = Path(tempfile.mkdtemp(prefix="f2-esplorabench-"))
    port = free_port()
    args = [f"-loadblock={blk}", *([f"-esplora={port}"] if "-esplora" in extra else [])]
    try:
        node = NodeProcess(d, *args)
        t0 = time.perf_counter()
        node.start()
        try:
            while node.call("getblockcount") < height:
                time.sleep(0.02)
            if "-esplora" in extra:
                tip = node.call("getbestblockhash")
                while True:
                    try:
                        _, body = fetch(f"http://127.0.0.1:{port}/block/{tip}/status")
                        _, txs = fetch(f"http://127.0.0.1:{port}/block/{tip}/txs")
                        if json.loads(body)["in_best_chain"] and json.loads(txs):
                            break
                    except OSError:  # (503 while the index is first built)
                        pass
                    time.sleep(0.02)
            return time.perf_counter() - t0
        finally:
            node.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_rate(cache: Path, n_blocks: int, n_txs: int, rounds: int) -> None:
    blk = cache / f"connect_{n_blocks}_{n_txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {n_blocks} blocks with {n_txs} signed transactions ...")
        counts = generate(blk, n_blocks, n_txs)
        meta.write_text(" ".join(map(str, counts)))
    n_blocks, n_txs, n_inputs = map(int, meta.read_text().split())
    with tempfile.TemporaryDirectory(prefix="f2-esplorabench-") as d:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "node.importer", f"-datadir={d}",
                            f"-loadblock={blk}"], cwd=ROOT, capture_output=True, text=True)
        t_import = time.perf_counter() - t0
        if p.returncode != 0 or "invalid=0" not in p.stderr:
            print(p.stderr[-3000:])
            raise SystemExit("import failed")
        chain = ChainState(Path(d) / "regtest", REGTEST, scripts=ScriptChecker(0))
        chain.load()
        try:
            ix = AddrIndex(Path(d) / "regtest" / "indexes" / "addrindex" / "db", chain, True)
            t0 = time.perf_counter()
            ix.start()
            while not ix.synced:
                time.sleep(0.01)
            t_index = time.perf_counter() - t0
            ix.close()
        finally:
            chain.close()
    print(f"chain: {n_blocks} spending blocks (+200 funding), {n_txs} txs, {n_inputs} inputs")
    print(f"import (node.importer, scripts checked): {t_import:.1f} s = "
          f"{n_txs / t_import:.0f} tx/s; address index over it: {t_index:.1f} s = "
          f"{n_txs / t_index:.0f} tx/s = {t_index / t_import:.2f} x the import time")
    ratios = []
    for _ in range(rounds):
        plain = daemon_import(blk, 200 + n_blocks, [])
        served = daemon_import(blk, 200 + n_blocks, ["-esplora"])
        ratios.append(served / plain)
        print(f"  minibtcd -loadblock: {plain:.1f} s; with -esplora (-txindex, "
              f"-txospenderindex and the address index, all at the tip): {served:.1f} s",
              flush=True)
    print(f"end to end, median of {rounds}: -esplora makes the import "
          f"{statistics.median(ratios):.2f} x as long")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--per-block", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=150)
    ap.add_argument("--chain-blocks", type=int, default=100)
    ap.add_argument("--chain-txs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=1, help="end-to-end import rounds")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    blk = cache / f"esplora_addr_{args.txs}_{args.per_block}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating a chain paying one address {args.txs} times ...", flush=True)
        meta.write_text(str(address_chain(blk, args.txs, args.per_block)))
    latency(blk, int(meta.read_text()), args.txs, args.requests)
    build_rate(cache, args.chain_blocks, args.chain_txs, args.rounds)


if __name__ == "__main__":
    main()
