#!/usr/bin/env python3
"""JSON-RPC throughput: getblockcount and getblock (verbosity 2, on a block with 2,000
transactions) calls/s with 1 and 32 concurrent keep-alive clients, beside a bare aiohttp
handler answering a fixed JSON reply, measured by the same client in the same run.

Run: .venv/bin/python scripts/bench/rpc.py [--seconds 3]
The ratio to the bare handler is the machine-independent figure (1.0 = no overhead beyond
aiohttp itself).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from consensus.amounts import COIN  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from node.rpc.jsonutil import dumps  # noqa: E402
from tests.chainbuilder import ChainBuilder, spend_tx  # noqa: E402
from tests.functional.framework import NodeProcess, free_port  # noqa: E402
from tests.unit.test_reorg import write_blk_file  # noqa: E402


def build_chain(path: Path) -> str:
    """101 blocks, a fan-out, then one block of 2,000 transactions; returns its hash."""
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    fan = spend_tx([(blocks[0].txs[0].txid, 0)], [(50 * COIN - 100_000) // 2000] * 2000)
    blocks.append(cb.next_block(blocks[-1], [fan], fees=50 * COIN - fan.total_out()))
    txs = [spend_tx([(fan.txid, i)], [fan.vout[i].value - 1000]) for i in range(2000)]
    blocks.append(cb.next_block(blocks[-1], txs, fees=2000 * 1000))
    write_blk_file(path, blocks)
    return blocks[-1].hash_hex()


async def hammer(url: str, auth: str | None, payload: bytes, clients: int, seconds: float
                 ) -> float:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    count = 0
    deadline = time.perf_counter() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            async with session.post(url, data=payload, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            count += 1

    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(session) for _ in range(clients)))
        return count / (time.perf_counter() - t0)


def _serve(reply: bytes, port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, headers={"Content-Type": "application/json"})

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(run())


def bare_server(reply: bytes) -> tuple[int, multiprocessing.Process]:
    """An aiohttp app answering every POST with `reply`, in its own process (as the node is),
    so that it does not share the client's interpreter lock."""
    port = free_port()
    proc = multiprocessing.Process(target=_serve, args=(reply, port), daemon=True)
    proc.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return port, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        blk = Path(d) / "chain.dat"
        big = build_chain(blk)
        node = NodeProcess(Path(d) / "n", f"-loadblock={blk}")
        with node:
            while node.call("getblockcount") < 103:
                time.sleep(0.1)
            user, pw = node.auth()
            auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
            calls = {
                "getblockcount": json.dumps({"method": "getblockcount", "id": 1}).encode(),
                "getblock v2": json.dumps({"method": "getblock", "params": [big, 2],
                                           "id": 1}).encode(),
            }
            replies = {}
            for name, payload in calls.items():
                status, body = node.request(json.loads(payload))
                replies[name] = dumps(body).encode()
            print(f"getblock v2 reply: {len(replies['getblock v2']) / 1e6:.1f} MB")
            print(f"{'call':16} {'clients':>7} {'node calls/s':>13} {'bare aiohttp':>13} "
                  f"{'ratio':>6}")
            for name, payload in calls.items():
                port, proc = bare_server(replies[name])
                for clients in (1, 32):
                    ours = asyncio.run(hammer(node.url, auth, payload, clients, args.seconds))
                    bare = asyncio.run(hammer(f"http://127.0.0.1:{port}/", None, payload,
                                              clients, args.seconds))
                    print(f"{name:16} {clients:>7} {ours:>13,.1f} {bare:>13,.1f} "
                          f"{ours / bare:>6.2f}")
                proc.terminate()


if __name__ == "__main__":
    main()
