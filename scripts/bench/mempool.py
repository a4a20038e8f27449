#!/usr/bin/env python3
"""Mempool and mining speed on a real node over JSON-RPC:

1. accept N (default 5,000) independent signed P2WPKH transactions through
   sendrawtransaction (in JSON-RPC batches), printed as transactions/s beside raw coincurve
   ECDSA verifies/s measured in the same run (goal: at least 0.4 of the raw rate);
2. time getblocktemplate over that full mempool;
3. time generatetoaddress of 1,000 blocks;
4. calls one transaction per call, as wallets, apps and bitcoin-cli send them:
   sendrawtransaction over 1 and 8 keep-alive connections, testmempoolaccept and
   getrawtransaction (on the node) and gettransaction (on a second node with a wallet, with
   its mempool empty and then holding --wallet-mempool transactions not the wallet's: every
   wallet call syncs with the mempool first), each beside a bare aiohttp handler answering
   the same reply to the same requests, measured by the same client in the same run (as
   rpc.py does). Goals: sendrawtransaction over one connection >= 0.5 x the bare handler;
   over eight >= 1.5 x over one.

The node runs without its mounted wallet (-disablewallet; --wallet keeps it): this measures
the node's acceptance. A mounted wallet follows the mempool over JSON-RPC, fetching every
new transaction, which costs about a sixth of this rate when thousands arrive at once.

Run: .venv/bin/python scripts/bench/mempool.py [--txs 5000] [--batch 1000] [--clients 1]
     [--blocks 1000] [--wallet] [--single 3000] [--wallet-mempool 5000] [--only-single]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from _common import raw_ecdsa_rate  # noqa: E402
from rpc import bare_server  # noqa: E402

from consensus.params import REGTEST  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from tests.chainbuilder import Wallet  # noqa: E402
from tests.functional.framework import NodeProcess, coinbase_out  # noqa: E402
from wallet.address import script_to_address  # noqa: E402


async def _send_all(url: str, auth: str | None, payloads: list[bytes], clients: int
                    ) -> tuple[float, list[bytes]]:
    """Each payload POSTed once, over `clients` keep-alive connections that take the next
    payload as soon as their previous reply is read: (calls/s, the replies)."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    replies: list[bytes] = [b""] * len(payloads)
    it = iter(range(len(payloads)))

    async def one(session: aiohttp.ClientSession) -> None:
        for i in it:
            async with session.post(url, data=payloads[i], headers=headers) as r:
                replies[i] = await r.read()
                assert r.status == 200, (r.status, replies[i][:200])

    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(session) for _ in range(clients)))
        return len(payloads) / (time.perf_counter() - t0), replies


def per_call(node: NodeProcess, name: str, payloads: list[bytes], clients: int,
             path: str = "/") -> tuple[float, float]:
    """(node calls/s, bare aiohttp calls/s) for the payloads, one call each; the bare handler
    answers every request with the node's first reply."""
    user, pw = node.auth()
    auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
    ours, replies = asyncio.run(_send_all(node.url.rstrip("/") + path, auth, payloads,
                                          clients))
    for r in replies:
        err = json.loads(r).get("error")
        assert err is None, (name, err)
    port, proc = bare_server(replies[0])
    try:
        bare, _ = asyncio.run(_send_all(f"http://127.0.0.1:{port}/", None, payloads, clients))
    finally:
        proc.terminate()
    return ours, bare


def _payload(method: str, *params) -> bytes:
    return json.dumps({"jsonrpc": "1.0", "id": 1, "method": method,
                       "params": list(params)}).encode()


def signed_spends(node: NodeProcess, w: Wallet, n: int) -> list[str]:
    """n independent signed P2WPKH spends (hex), valid on `node`: mature coinbases to w, each
    fanned out into 500 outputs confirmed in one block, one spend per output."""
    addr = script_to_address(w.p2wpkh, REGTEST)
    first = node.call("getblockcount") + 1
    node.call("generatetoaddress", 100 + -(-n // 500), addr)
    per = 500
    outs: list[tuple[OutPoint, TxOut]] = []
    for h in range(first, first + -(-n // per)):
        prev, coin = coinbase_out(node, h, w.p2wpkh)
        each = (coin.value - 100_000) // per
        fan = Transaction(2, [TxIn(prev, b"", 0xFFFFFFFD)], [TxOut(each, w.p2wpkh)] * per)
        w.sign(fan, [coin])
        node.call("sendrawtransaction", fan.serialize().hex())
        outs += [(OutPoint(fan.txid, i), TxOut(each, w.p2wpkh)) for i in range(per)]
    node.call("generatetoaddress", 1, addr)
    print(f"signing {n} transactions ...", flush=True)
    raws = []
    for p, o in outs[:n]:
        tx = Transaction(2, [TxIn(p, b"", 0xFFFFFFFD)], [TxOut(o.value - 2000, w.p2tr)])
        raws.append(w.sign(tx, [o]).serialize().hex())
    return raws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=1, help="concurrent batch submitters")
    ap.add_argument("--wallet", action="store_true", help="keep the node's mounted wallet")
    ap.add_argument("--single", type=int, default=3000,
                    help="transactions sent one per call, for each connection count")
    ap.add_argument("--wallet-mempool", type=int, default=5000,
                    help="unrelated transactions in the wallet node's mempool for its second "
                         "gettransaction row (0: none)")
    ap.add_argument("--only-single", action="store_true",
                    help="only the one-per-call measures (no batches, no blocks)")
    args = ap.parse_args()
    if args.only_single:
        args.txs = 0
    total = args.txs + 2 * args.single

    w = Wallet(b"bench")
    addr = script_to_address(w.p2wpkh, REGTEST)
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        node = NodeProcess(Path(d) / "n", "-maxmempool=300",
                           f"-par={os.cpu_count() or 1}",  # the test default is -par=1
                           *([] if args.wallet else ["-disablewallet"]))
        with node:
            raws = signed_spends(node, w, total)
            raw_rate = raw_ecdsa_rate()
            raw_parse = raw_ecdsa_rate(parse_key=True)
            singles = raws[args.txs:]
            raws = raws[:args.txs]
            batches = [raws[i:i + args.batch] for i in range(0, len(raws), args.batch)]

            if args.txs:
                batch_part(node, batches, args, addr, results)
            results["single"] = single_part(node, singles[:args.single],
                                            singles[args.single:])
    if args.txs:
        print_batch(args, results, raw_rate, raw_parse)
    results["single"] += wallet_part(args.single, args.wallet_mempool)
    print_single(results["single"])


def batch_part(node: NodeProcess, batches: list, args, addr: str, results: dict) -> None:
    def submit(batch: list[str]) -> None:
        reqs = [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction",
                 "params": [r]} for j, r in enumerate(batch)]
        status, replies = node.request(reqs)
        bad = [r for r in replies if "error" in r]
        assert not bad, bad[:1]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as ex:
        list(ex.map(submit, batches))
    results["accept"] = time.perf_counter() - t0
    assert node.call("getmempoolinfo")["size"] == args.txs
    t0 = time.perf_counter()
    results["tmpl"] = node.call("getblocktemplate", {"rules": ["segwit"]})
    results["gbt"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    node.call("generatetoaddress", args.blocks, addr)
    results["gen"] = time.perf_counter() - t0


def single_part(node: NodeProcess, one: list[str], eight: list[str]) -> list[tuple]:
    """The per-call rows on the node: testmempoolaccept of the transactions about to be sent,
    sendrawtransaction over 1 and 8 connections, getrawtransaction of what was sent."""
    rows = []
    print(f"one per call: {len(one)} transactions per connection count ...", flush=True)
    tma = [_payload("testmempoolaccept", [r]) for r in one]
    rows.append(("testmempoolaccept", 1, *per_call(node, "testmempoolaccept", tma, 1)))
    for clients, txs in ((1, one), (8, eight)):
        payloads = [_payload("sendrawtransaction", r) for r in txs]
        rows.append(("sendrawtransaction", clients,
                     *per_call(node, "sendrawtransaction", payloads, clients)))
    txids = [Transaction.from_hex(r).txid_hex() for r in one]
    grt = [_payload("getrawtransaction", t) for t in txids]
    rows.append(("getrawtransaction", 1, *per_call(node, "getrawtransaction", grt, 1)))
    return rows


def wallet_part(n: int, full: int) -> list[tuple]:
    """gettransaction per call on a node with a mounted wallet (a coinbase of its own), with
    the mempool empty and then holding `full` transactions that are not the wallet's (every
    wallet call syncs with the node's mempool first)."""
    with tempfile.TemporaryDirectory() as d:
        node = NodeProcess(Path(d) / "w", "-maxmempool=300")
        with node:
            node.create_wallet("w")
            addr = node.call("getnewaddress", wallet="w")
            block = node.call("generatetoaddress", 1, addr)[0]
            txid = node.call("getblock", block)["tx"][0]
            others = signed_spends(node, Wallet(b"others"), full) if full else []
            node.call("gettransaction", txid, wallet="w")
            payloads = [_payload("gettransaction", txid)] * n
            rows = [("gettransaction", 1, *per_call(node, "gettransaction", payloads, 1,
                                                    path="/wallet/w"))]
            if others:
                for r in others:
                    node.call("sendrawtransaction", r)
                node.call("gettransaction", txid, wallet="w")
                rows.append((f"  mempool of {len(others):,}", 1,
                             *per_call(node, "gettransaction", payloads, 1,
                                       path="/wallet/w")))
            return rows


def print_single(rows: list[tuple]) -> None:
    print(f"{'one per call':20} {'conns':>5} {'node calls/s':>13} {'bare aiohttp':>13} "
          f"{'ratio':>6}")
    for name, clients, ours, bare in rows:
        print(f"{name:20} {clients:>5} {ours:>13,.0f} {bare:>13,.0f} {ours / bare:>6.2f}")
    send = {c: (o, b) for n, c, o, b in rows if n == "sendrawtransaction"}
    if 1 in send and 8 in send:
        print(f"sendrawtransaction one per call: 1 connection = {send[1][0] / send[1][1]:.2f} "
              f"x bare (goal 0.5); 8 connections = {send[8][0] / send[1][0]:.2f} x 1 "
              f"(goal 1.5)")


def print_batch(args, results: dict, raw_rate: float, raw_parse: float) -> None:
    accept, tmpl, gbt, gen = (results["accept"], results["tmpl"], results["gbt"],
                              results["gen"])
    rate = args.txs / accept
    print(f"raw coincurve ECDSA verify (1 core): {raw_rate:,.0f}/s with the key parsed once, "
          f"{raw_parse:,.0f}/s parsing the 33-byte key each time (as every real check does)")
    print(f"sendrawtransaction x {args.txs} (batches of {args.batch}, {args.clients} clients): "
          f"{accept:.2f} s = "
          f"{rate:,.0f} tx/s = {rate / raw_rate:.2f} x raw, {rate / raw_parse:.2f} x raw with "
          f"key parsing (goal 0.4)")
    print(f"getblocktemplate over {args.txs} txs: {gbt:.2f} s "
          f"({len(tmpl['transactions'])} txs selected)")
    print(f"generatetoaddress {args.blocks} blocks: {gen:.2f} s = "
          f"{args.blocks / gen:,.0f} blocks/s")


if __name__ == "__main__":
    main()
