"""`minibtc-wallet serve`: the wallet's JSON-RPC on a port of its own (aiohttp), with Core's
conventions: POST to / or /wallet/<name>, Basic auth (a .cookie in the wallets directory, or
the user/password given), JSON-RPC 1.0 replies with result and error (HTTP 500 on error, 404
for an unknown method), 2.0 replies with one of them (HTTP 200), batches as arrays.

Calls run on worker threads, so a slow one (a rescan) never stalls the others.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from wallet.errors import RPC_METHOD_NOT_FOUND, WalletError
from wallet.jsonrpc import dumps, loads
from wallet.service import WalletManager

log = logging.getLogger("wallet")

COOKIE_USER = "__cookie__"
RPC_INVALID_REQUEST = -32600
RPC_PARSE_ERROR = -32700
RPC_INTERNAL_ERROR = -32603


def write_cookie(path: Path) -> str:
    password = secrets.token_hex(32)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{COOKIE_USER}:{password}")
    os.replace(tmp, path)
    return password


class WalletServer:
    def __init__(self, manager: WalletManager, host: str, port: int, user: str,
                 password: str, threads: int = 4) -> None:
        self.manager = manager
        self.host, self.port = host, port
        self.expected = f"{user}:{password}"
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wallet-rpc")
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=32 << 20)
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", "/wallet/{wallet:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        log.info("wallet RPC listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.executor.shutdown(wait=True)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), self.expected.encode())

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, text="JSONRPC server handles only POST requests")
        if not self._authorized(request.headers.get("Authorization")):
            await asyncio.sleep(0.25)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        body = await request.read()
        wallet = request.match_info.get("wallet")
        wallet = unquote(wallet) if wallet is not None else None
        loop = asyncio.get_running_loop()
        status, reply = await loop.run_in_executor(self.executor, self._process, body, wallet)
        if reply is None:
            return web.Response(status=204)
        return web.Response(status=status, body=(dumps(reply) + "\n").encode(),
                            headers={"Content-Type": "application/json"})

    def _process(self, body: bytes, wallet: str | None) -> tuple[int, Any]:
        try:
            req = loads(body)
        except (ValueError, UnicodeDecodeError):
            return 500, {"result": None, "error": {"code": RPC_PARSE_ERROR,
                                                   "message": "Parse error"}, "id": None}
        if isinstance(req, list):
            return 200, [r for _, r in (self._one(x, wallet) for x in req) if r is not None]
        return self._one(req, wallet)

    def _one(self, req: Any, wallet: str | None) -> tuple[int, Any]:
        if not isinstance(req, dict):
            return 400, {"result": None, "error": {"code": RPC_INVALID_REQUEST,
                                                   "message": "Invalid Request object"},
                         "id": None}
        rid = req.get("id")
        v2 = req.get("jsonrpc") == "2.0"
        try:
            method = req.get("method")
            if not isinstance(method, str):
                raise WalletError(RPC_INVALID_REQUEST, "Method must be a string")
            result = self.manager.call(wallet, method, req.get("params"))
        except WalletError as err:
            if v2:
                return (200, {"jsonrpc": "2.0", "error": err.to_json(), "id": rid}
                        if "id" in req else None)
            status = 404 if err.code == RPC_METHOD_NOT_FOUND else (
                400 if err.code == RPC_INVALID_REQUEST else 500)
            return status, {"result": None, "error": err.to_json(), "id": rid}
        except Exception as err:  # a bug, not bad input: report it and keep serving
            log.exception("wallet RPC %s failed", req.get("method"))
            e = {"code": RPC_INTERNAL_ERROR, "message": f"Internal error: {err}"}
            return 500, {"result": None, "error": e, "id": rid}
        if v2:
            return (200, {"jsonrpc": "2.0", "result": result, "id": rid}) if "id" in req else (
                204, None)
        return 200, {"result": result, "error": None, "id": rid}


async def serve(manager: WalletManager, host: str, port: int, user: str | None,
                password: str | None, cookie: Path, ready: Any = None) -> None:
    """Run until SIGINT/SIGTERM. Without a user/password a cookie is written to `cookie`."""
    if password is None:
        user, password = COOKIE_USER, write_cookie(cookie)
    server = WalletServer(manager, host, port, user or "", password)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    manager.start_background()
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await server.stop()
        await loop.run_in_executor(None, manager.close)
        if password is not None and cookie.exists() and user == COOKIE_USER:
            cookie.unlink(missing_ok=True)
