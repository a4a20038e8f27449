"""The Esplora HTTP server (aiohttp): routes Blockstream's paths to EsploraQuery, which runs in
worker threads so that a big read never holds up the node's event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import orjson
from aiohttp import web

from node.esplora.query import EsploraError, EsploraQuery, parse_hash, parse_uint
from node.rpc.jsonutil import dumps  # (submitpackage's answer has exact BTC amounts)

log = logging.getLogger("http")

MAX_BODY_SIZE = 1_000_000  # electrs's
WORKERS = 4
MAX_PENDING = 256  # requests waiting for a worker; past it: 503 (a queue never grown unbounded)


def _text(status: int, text: str) -> tuple[int, str, bytes]:
    return status, "text/plain", text.encode()


def _json(value) -> tuple[int, str, bytes]:
    return 200, "application/json", orjson.dumps(value)


def _raw(data: bytes) -> tuple[int, str, bytes]:
    return 200, "application/octet-stream", data


def route(q: EsploraQuery, method: str, path: str, body: bytes,
          params: dict | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) for a request, as electrs's router answers it."""
    parts = path.split("/")[1:]
    parts += [None] * (6 - len(parts)) if len(parts) < 6 else []
    if len(parts) > 6:
        parts = parts[:5] + ["/".join(p for p in parts[5:])]
    a, b, c, d, e, f = parts[:6]
    get = method in ("GET", "HEAD")
    if get and a == "blocks" and b == "tip" and c == "hash" and d is None:
        return _text(200, q.tip().hash[::-1].hex())
    if get and a == "blocks" and b == "tip" and c == "height" and d is None:
        return _text(200, str(q.tip().height))
    if get and a == "blocks" and c is None:
        return _json(q.blocks(b))
    if get and a == "block-height" and b is not None and c is None:
        return _text(200, q.block_height(b))
    if get and a == "block" and b is not None:
        if c is None:
            return _json(q.block(b))
        if d is None:
            if c == "status":
                return _json(q.block_status(b))
            if c == "txids":
                return _json(q.block_txids(b))
            if c == "header":
                return _text(200, q.block_header(b))
            if c == "raw":
                return _raw(q.block_raw(b))
            if c == "txs":
                return _json(q.block_txs(b, None))
        if c == "txid" and d is not None and e is None:
            return _text(200, q.block_txid(b, d))
        if c == "txs" and d is not None and e is None:
            return _json(q.block_txs(b, d))
    if get and a in ("address", "scripthash") and b is not None:
        if c is None:
            return _json(q.address(a, b))
        if c == "txs" and d is None:
            return _json(q.address_txs(a, b))
        if c == "txs" and d == "chain" and f is None:
            return _json(q.address_txs_chain(a, b, e))
        if c == "txs" and d == "mempool" and e is None:
            return _json(q.address_txs_mempool(a, b))
        if c == "utxo" and d is None:
            return _json(q.address_utxo(a, b))
    if get and a == "tx" and b is not None:
        if c is None:
            return _json(q.tx(parse_hash(b)))
        if d is None and c in ("hex", "raw"):
            raw = q.tx_raw(parse_hash(b))
            return _text(200, raw.hex()) if c == "hex" else _raw(raw)
        if d is None and c == "status":
            return _json(q.tx_status(parse_hash(b)))
        if d is None and c == "merkle-proof":
            return _json(q.merkle_proof(parse_hash(b)))
        if d is None and c == "merkleblock-proof":
            return _text(200, q.merkleblock_proof(parse_hash(b)))
        if c == "outspend" and d is not None and e is None:
            txid = parse_hash(b)
            return _json(q.outspend(txid, parse_uint(d, 32)))
        if c == "outspends" and d is None:
            return _json(q.outspends(parse_hash(b)))
    if method == "POST" and a == "tx" and b is None:
        return _text(200, q.broadcast(body))
    if method == "POST" and a == "txs" and b == "package" and c is None:
        return 200, "application/json", dumps(q.submit_package(body, params or {})).encode()
    if get and a == "broadcast" and b is None:  # (electrs's older form: GET ?tx=<hex>)
        tx = (params or {}).get("tx")
        if tx is None:
            raise EsploraError(400, "Missing tx")
        return _text(200, q.broadcast(tx.encode()))
    if get and a == "mempool":
        if b is None:
            return _json(q.mempool_backlog())
        if b == "txids" and c is None:
            return _json(q.mempool_txids())
        if b == "recent" and c is None:
            return _json(q.mempool_recent())
    if get and a == "fee-estimates" and b is None:
        return _json(q.fee_estimates())
    raise EsploraError(404, f"endpoint does not exist {_debug_str(path)}")


def _debug_str(s: str) -> str:
    """A string as Rust's {:?} writes it."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class EsploraServer:
    def __init__(self, query: EsploraQuery, binds: list[tuple[str, int]], cors: str | None,
                 max_pending: int = MAX_PENDING):
        self.query = query
        self.binds = binds
        self.cors = cors
        self.max_pending = max_pending
        self.in_pool = 0  # requests handed to the workers, running or waiting
        self.bound: list[tuple[str, int]] = []
        self._runner: web.AppRunner | None = None
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="esplora")

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_SIZE)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        for host, port in self.binds:
            site = web.TCPSite(self._runner, host, port, reuse_address=True)
            await site.start()
        self.bound = [tuple(a[:2]) for a in self._runner.addresses]
        log.info("Esplora HTTP API on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        pool = self._pool
        # Requests still running finish before the node closes the indexes they read.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: pool.shutdown(wait=True, cancel_futures=True))
        self.query.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        path = request.rel_url.raw_path
        params = dict(request.rel_url.query)
        try:
            body = await request.read() if method == "POST" else b""
        except web.HTTPRequestEntityTooLarge:
            status, ctype, data = _text(413, "Request body too large")
        else:
            status, ctype, data = await self._in_pool(method, path, body, params)
        resp = web.Response(status=status, body=data if method != "HEAD" else None,
                            content_type=ctype)
        if self.cors:
            resp.headers["Access-Control-Allow-Origin"] = self.cors
        return resp

    async def _in_pool(self, method: str, path: str, body: bytes,
                       params: dict) -> tuple[int, str, bytes]:
        """The answer, made by a worker; 503 when max_pending requests wait already."""
        if self.in_pool >= WORKERS + self.max_pending:
            log.warning("esplora: request refused, %d already waiting", self.max_pending)
            return _text(503, "Too many requests waiting, try again later")
        self.in_pool += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._run, method, path, body, params)
        except RuntimeError:  # the pool is shut down: the node is stopping
            return _text(503, "shutting down")
        finally:
            self.in_pool -= 1

    def _run(self, method: str, path: str, body: bytes,
             params: dict) -> tuple[int, str, bytes]:
        try:
            return route(self.query, method, path, body, params)
        except EsploraError as err:
            return _text(err.status, err.text)
        except Exception as err:  # a bug or a damaged store: an answer, never a dead server
            log.exception("esplora: %s %s failed", method, path)
            return _text(500, f"Internal server error: {type(err).__name__}")
