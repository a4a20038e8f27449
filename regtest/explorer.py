"""The network's explorer: a small web page served by the supervisor (`up`), showing the
nodes, the links between them (and cut ones), the tree of recent blocks with every node's
tip (forks appear as branches), the recent blocks with their transactions, the mempool and
each node's peers. The page (explorer.html) polls /api/state; everything comes from the
nodes' JSON-RPC.

    GET /                 the page
    GET /api/state        {"nodes", "links", "blocks", "mempool", "reorgs"}
    GET /api/block/HASH   a block with its transactions, their inputs, outputs and fees (the
                          view of the first node that answers)
    GET /esplora/PATH     the Esplora API of the first node that serves it (`up --services
                          esplora`): what the page's search, transaction and address views
                          read (#tx=TXID, #address=ADDRESS)

Amounts are strings with 8 decimals as Core prints them ("0.00000000"), fee rates in sat/vB.
Reorgs are noticed by a watcher that polls every node's tip every second while the explorer
runs (a node whose new tip does not descend from its old one went through a reorg).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from regtest.network import Network, edges
from wallet.amounts import btc_text
from wallet.nodeclient import NodeRPCError, NodeUnreachable

log = logging.getLogger("explorer")

PAGE = Path(__file__).with_name("explorer.html")
TREE_DEPTH = 12  # heights of the block tree shown below the highest tip
MEMPOOL_SHOWN = 50
_HASH = re.compile(r"^[0-9a-f]{64}$")
REORGS_KEPT = 50


def sat_per_vb(fee_btc, vsize: int) -> str:  # noqa: ANN001
    return f"{Decimal(str(fee_btc)) * 100_000_000 / vsize:.1f}" if vsize else ""


class State:
    """Reads the network's state from its nodes (blocking calls: run on worker threads)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.headers: dict[str, dict] = {}  # block hash -> header (blocks never change)
        self.lock = threading.Lock()
        self.tips: dict[int, str] = {}  # each node's last tip seen by watch()
        self.reorgs: list[dict] = []  # newest first
        self.tip_lock = threading.Lock()  # (the watcher and page requests both note tips)

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
            row: dict = {"node": i, "up": False, "rpc": s["rpc"], "p2p": s["p2p"],
                         "services": net.spec.services.get(str(i), {})}
            if "mempool" in s:  # the node answered (its wallet may not have)
                try:
                    tips[i] = net.call(i, "getchaintips")
                    row.update(up=True, height=s["height"], tip=s["tip"],
                               mempool=s["mempool"], peers=s["peer_list"])
                except (NodeUnreachable, NodeRPCError) as err:
                    row["error"] = str(err)
            if s["up"]:
                row["balance"] = btc_text(s["balance"])
                row["immature"] = btc_text(s["immature"])
            else:
                row.setdefault("error", s.get("error", ""))
            nodes.append(row)
        self._note_tips({n["node"]: n["tip"] for n in nodes if n["up"]})
        with self.lock:
            reorgs = list(self.reorgs)
        return {"nodes": nodes, "links": self._links(nodes), "blocks": self._tree(nodes, tips),
                "mempool": self._mempool(nodes), "reorgs": reorgs}

    # -- reorgs -----------------------------------------------------------------------------

    def watch(self) -> None:
        """One look at every node's tip (the watcher calls it every second)."""
        self.net.reload()
        tips = {}
        for i in range(self.net.spec.nodes):
            try:
                tips[i] = self.net.call(i, "getbestblockhash")
            except (NodeUnreachable, NodeRPCError):
                continue
        self._note_tips(tips)

    def _note_tips(self, tips: dict[int, str]) -> None:
        with self.tip_lock:
            self._note_tips_locked(tips)

    def _note_tips_locked(self, tips: dict[int, str]) -> None:
        for i, new in tips.items():
            old = self.tips.get(i)
            self.tips[i] = new
            if old is None or old == new:
                continue
            try:
                fork = self._fork_point(i, old, new)
            except (NodeUnreachable, NodeRPCError):
                continue
            if fork == old:
                continue  # the new tip extends the old one
            o, n = self.header(i, old), self.header(i, new)
            f = self.header(i, fork) if fork else {"height": -1}
            entry = {"time": int(time.time()), "node": i, "depth": o["height"] - f["height"],
                     "old_tip": old, "old_height": o["height"], "new_tip": new,
                     "new_height": n["height"], "fork_height": f["height"]}
            with self.lock:
                self.reorgs.insert(0, entry)
                del self.reorgs[REORGS_KEPT:]

    def _fork_point(self, i: int, a: str, b: str) -> str | None:
        """The last block two chains share (None if they share none we can see)."""
        ha, hb = self.header(i, a), self.header(i, b)
        while ha["hash"] != hb["hash"]:
            if ha["height"] >= hb["height"]:
                if ha["prev"] is None:
                    return None
                ha = self.header(i, ha["prev"])
            else:
                if hb["prev"] is None:
                    return None
                hb = self.header(i, hb["prev"])
        return ha["hash"]

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
        rows = [{"txid": t, "vsize": e["vsize"], "fee": btc_text(e["fees"]["base"]),
                 "feerate": sat_per_vb(e["fees"]["base"], e["vsize"]), "time": e["time"]}
                for t, e in entries.items()]
        rows.sort(key=lambda r: -r["time"])
        return rows[:MEMPOOL_SHOWN]

    def block(self, h: str) -> dict:
        b = None
        for i in range(self.net.spec.nodes):  # the first node that answers and has it
            try:
                b = self.net.call(i, "getblock", h, 3)
                break
            except NodeUnreachable:
                continue
        if b is None:
            raise NodeUnreachable("the network", "no node answers")
        txs = []
        for t in b["tx"]:
            coinbase = "coinbase" in t["vin"][0]
            ins = [{"coinbase": True}] if coinbase else [
                {"txid": x["txid"], "vout": x["vout"],
                 **({"value": btc_text(x["prevout"]["value"]),
                     "address": x["prevout"]["scriptPubKey"].get("address", "")}
                    if "prevout" in x else {})} for x in t["vin"]]
            outs = [{"value": btc_text(o["value"]), "address": o["scriptPubKey"].get("address", ""),
                     "type": o["scriptPubKey"].get("type", "")} for o in t["vout"]]
            fee = t.get("fee")
            txs.append({"txid": t["txid"], "vsize": t["vsize"], "inputs": ins, "outputs": outs,
                        "total_out": btc_text(sum(Decimal(str(o["value"])) for o in t["vout"])),
                        "fee": btc_text(fee) if fee is not None else None,
                        "feerate": sat_per_vb(fee, t["vsize"]) if fee is not None else None})
        return {"hash": b["hash"], "height": b["height"], "time": b["time"],
                "confirmations": b["confirmations"], "size": b["size"], "weight": b["weight"],
                "prev": b.get("previousblockhash"), "txs": txs}


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

    async def _esplora(self, request: web.Request) -> web.Response:
        """A GET passed on to a node's Esplora API (the first that answers)."""
        import aiohttp

        path = request.match_info["path"]
        if ".." in path.split("/"):
            return web.Response(status=400, text="bad path")
        net = self.state.net
        urls = [svc["esplora"] for _, svc in sorted(net.spec.services.items(),
                                                    key=lambda kv: int(kv[0]))
                if "esplora" in svc]
        if not urls:
            return web.Response(status=503, text="no node serves the Esplora API (start the "
                                "network with `up --services esplora`)")
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url in urls:
                try:
                    async with session.get(f"{url}/{path}", params=request.query) as r:
                        body = await r.read()
                        return web.Response(status=r.status, body=body,
                                            content_type=r.content_type)
                except (TimeoutError, aiohttp.ClientError):
                    continue  # (that node is down: the next)
        return web.Response(status=503, text="no node with the Esplora API answers")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/esplora/{path:.*}", self._esplora)
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
        self.stopped = threading.Event()
        threading.Thread(target=self._watch, name="explorer-reorgs", daemon=True).start()

    def _watch(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                self.state.watch()
            except Exception as err:  # noqa: BLE001  (a node mid-restart, ...: next time)
                log.debug("watching tips: %s", err)

    def stop(self) -> None:
        if getattr(self, "stopped", None) is not None:
            self.stopped.set()
        if self.loop is None or self.runner is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False)
