"""The network's explorer: a small web page served by the supervisor (`up`), showing the
nodes, the links between them (and cut ones), the tree of recent blocks with every node's
tip (forks appear as branches), the recent blocks with their transactions, the mempool and
each node's peers. The page (explorer.html) polls /api/state; everything comes from the
nodes' JSON-RPC.

    GET /                 the page
    GET /api/state        {"nodes", "links", "blocks", "mempool"}
    GET /api/block/HASH   a block with its transactions (node 0's view)
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from regtest.network import Network, edges
from wallet.nodeclient import NodeRPCError, NodeUnreachable

log = logging.getLogger("explorer")

PAGE = Path(__file__).with_name("explorer.html")
TREE_DEPTH = 12  # heights of the block tree shown below the highest tip
MEMPOOL_SHOWN = 50
_HASH = re.compile(r"^[0-9a-f]{64}$")


class State:
    """Reads the network's state from its nodes (blocking calls: run on worker threads)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.headers: dict[str, dict] = {}  # block hash -> header (blocks never change)
        self.lock = threading.Lock()


    def header(self, i: int, h: str) -> dict:
        with self.lock:
            hdr = self.headers.get(h)
        if hdr is None:
            raw = self.net.call(i, "getblockheader", h)
            hdr = {"hash": h, "height": raw["height"], "time": raw["time"],
                   "prev": raw.get("previousblockhash"), "ntx": raw["nTx"]}
            with self.lock:
                self.headers[h] = hdr
        return hdr

    def snapshot(self) -> dict:
        net = self.net
        net.reload()
        nodes = []
        tips: dict[int, list[dict]] = {}
        for s in net.status():
            i = s["node"]
            row: dict = {"node": i, "up": False, "rpc": s["rpc"], "p2p": s["p2p"]}
            if "mempool" in s:  # the node answered (its wallet may not have)
                try:
                    tips[i] = net.call(i, "getchaintips")
                    row.update(up=True, height=s["height"], tip=s["tip"],
                               mempool=s["mempool"], peers=s["peer_list"])
                except (NodeUnreachable, NodeRPCError) as err:
                    row["error"] = str(err)
            if s["up"]:
                row["balance"] = f"{s['balance']:.8f}"
                row["immature"] = f"{s['immature']:.8f}"
            else:
                row.setdefault("error", s.get("error", ""))
            nodes.append(row)
        return {"nodes": nodes, "links": self._links(nodes), "blocks": self._tree(nodes, tips),
                "mempool": self._mempool(nodes)}

    def _links(self, nodes: list[dict]) -> list[dict]:
        net = self.net
        live = set(net.links())
        out = []
        for i, j in edges(net.spec.topology, net.spec.nodes):
            peers = nodes[i].get("peers", [])
            connected = any(p["addr"] == net.p2p_addr(j) for p in peers)
            out.append({"from": i, "to": j, "connected": connected, "cut": (i, j) not in live})
        return out

    def _tree(self, nodes: list[dict], tips: dict[int, list[dict]]) -> list[dict]:
        """Every block of the last TREE_DEPTH heights on any node's chain tips."""
        top = max((n.get("height", 0) for n in nodes), default=0)
        low = max(0, top - TREE_DEPTH + 1)
        blocks: dict[str, dict] = {}
        for i, node_tips in tips.items():
            for t in node_tips:
                h = t["hash"]
                while h is not None:
                    hdr = self.header(i, h)
                    if hdr["height"] < low:
                        break
                    b = blocks.setdefault(h, {**hdr, "tip_of": [], "on_chain_of": []})
                    if h == t["hash"] and t["status"] == "active":
                        b["tip_of"].append(i)
                    if t["status"] == "active" and i not in b["on_chain_of"]:
                        b["on_chain_of"].append(i)
                    h = hdr["prev"]
        return sorted(blocks.values(), key=lambda b: (b["height"], b["hash"]))

    def _mempool(self, nodes: list[dict]) -> list[dict]:
        i = next((n["node"] for n in nodes if n["up"]), None)
        if i is None:
            return []
        entries = self.net.call(i, "getrawmempool", True)
        rows = [{"txid": t, "vsize": e["vsize"], "fee": str(e["fees"]["base"]),
                 "time": e["time"]} for t, e in entries.items()]
        rows.sort(key=lambda r: -r["time"])
        return rows[:MEMPOOL_SHOWN]

    def block(self, h: str) -> dict:
        b = self.net.call(0, "getblock", h, 2)
        return {"hash": b["hash"], "height": b["height"], "time": b["time"],
                "confirmations": b["confirmations"], "size": b["size"], "weight": b["weight"],
                "prev": b.get("previousblockhash"),
                "txs": [{"txid": t["txid"], "vsize": t["vsize"],
                         "outputs": [str(o["value"]) for o in t["vout"]]} for t in b["tx"]]}


class Explorer:
    """Serves the page on 127.0.0.1:port from a thread of its own."""

    def __init__(self, net: Network, port: int) -> None:
        own = Network(net.dir)  # its own: it re-reads network.json
        own.rpc_timeout = 10  # (a page waiting on a hung node shows it down instead)
        self.state = State(own)
        self.port = port
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="explorer")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runner: web.AppRunner | None = None
        self.ready = threading.Event()
        self.error: Exception | None = None

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def _api_state(self, request: web.Request) -> web.Response:
        data = await self.loop.run_in_executor(self.pool, self.state.snapshot)
        return web.json_response(data)

    async def _api_block(self, request: web.Request) -> web.Response:
        h = request.match_info["hash"]
        if not _HASH.match(h):
            return web.json_response({"error": "not a block hash"}, status=400)
        try:
            data = await self.loop.run_in_executor(self.pool, self.state.block, h)
        except NodeRPCError as err:
            return web.json_response({"error": str(err)}, status=404)
        return web.json_response(data)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/api/block/{hash}", self._api_block)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        def run() -> None:
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(self._serve())
            except Exception as err:  # the port is taken: the network runs without it
                self.error = err
                self.ready.set()
                return
            self.ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="explorer", daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def stop(self) -> None:
        if self.loop is None or self.runner is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False)
