"""The HTTP JSON-RPC server (aiohttp), with Bitcoin Core's conventions:

- POST to `/` or `/wallet/<name>`; Basic auth against the cookie, -rpcuser/-rpcpassword or
  -rpcauth (HMAC-SHA256); a wrong password is answered 401 after a short delay.
- Wallet methods go to the node's wallet manager when it mounts one (`node.wallets`, a
  wallet.service.WalletManager), on threads of their own; during warm-up they get -28 too.
- JSON-RPC 1.0 (legacy) replies carry both `result` and `error`, errors use HTTP 500 (404
  for an unknown method, 400 for an invalid request); JSON-RPC 2.0 replies carry one of them
  with HTTP 200, and notifications get 204. Batches are arrays, answered with HTTP 200.
- Requests are limited as Core's: 8 KiB request line and header lines (HTTP 400 above),
  32 MiB body (HTTP 413); -rpcservertimeout (30 s) closes a connection that sends nothing for
  that long, while idle between requests, in the middle of a request or while its reply is
  not read; -rpcworkqueue bounds the requests waiting for a thread (HTTP 503 past it).
- Replies are bounded (our choice, Core has no limit): one whose JSON would exceed
  MAX_REPLY (128 MiB, four times the request limit) is answered with error -7 (Core's
  RPC_OUT_OF_MEMORY) instead, per call of a batch. Legitimate replies stay far below it (a
  getblock 3 of a full block is a few tens of MB); what reaches it is amplification, e.g. a
  decodescript of a 30 MB script (its asm is 6 times its hex). Replies are written once by
  orjson, without further copies, in chunks that each must leave within the timeout; after
  a request or reply of a megabyte or more, freed memory is given back to the system
  (glibc's malloc_trim; and blocks of 1 MiB and up are unmapped when freed, see
  limit_heap_retention), so that RSS returns near its start after a burst. Requests of a
  megabyte or more run two at a time, so that a burst of them cannot multiply the peak.
- Method calls run in a thread pool (they take the chain lock), so the event loop keeps
  serving other clients meanwhile; methods marked `inline` run on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from node.rpc import jsonutil
from node.rpc.errors import (
    RPC_IN_WARMUP,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_OUT_OF_MEMORY,
    RPC_PARSE_ERROR,
    RPCError,
)
from node.rpc.registry import REGISTRY

log = logging.getLogger("rpc")

MAX_BODY = 0x02000000  # 32 MiB, Core's MAX_SIZE for an HTTP request body
MAX_HEADERS = 8192  # Core's MAX_HEADERS_SIZE (here per line: aiohttp's limits are per line)
MAX_REPLY = 4 * MAX_BODY  # our bound on one reply (Core has none): see the module's text
DEFAULT_SERVER_TIMEOUT = 30  # Core's DEFAULT_HTTP_SERVER_TIMEOUT (-rpcservertimeout), seconds
BIG = 1 << 20  # requests and replies from this size on: chunked writes, then a memory trim
WRITE_CHUNK = 1 << 20
BIG_AT_ONCE = 2  # big requests processed at the same time (the others wait their turn)
AUTH_FAIL_DELAY = 0.25
COOKIE_USER = "__cookie__"
CACHE_MAX = 1024  # entries kept of checked Authorization headers and of peers' addresses


@dataclass
class RPCRequest:
    """What a method sees of the call besides its arguments."""

    method: str
    wallet: str | None
    peer: str


class Credentials:
    """Accepted logins: the cookie, -rpcuser/-rpcpassword and every -rpcauth entry."""

    def __init__(self, user: str | None, password: str | None, rpcauth: list[str]) -> None:
        self.plain: list[tuple[str, str]] = []
        if user is not None and password is not None:
            self.plain.append((user, password))
        self.hashed: list[tuple[str, str, str]] = []
        for entry in rpcauth:
            try:
                name, rest = entry.split(":", 1)
                salt, digest = rest.split("$", 1)
            except ValueError:
                raise ValueError(
                    f"Invalid -rpcauth argument {entry!r} (expected user:salt$hash)"
                ) from None
            self.hashed.append((name, salt, digest.lower()))
        # Authorization headers found valid, by their SHA-256 (a client sends the same one
        # with every call): the HMACs of -rpcauth are worked out once, not per call.
        self._valid: dict[bytes, str] = {}

    def add_cookie(self, password: str) -> None:
        self.plain.append((COOKIE_USER, password))
        self._valid.clear()

    def check(self, header: str | None) -> str | None:
        """The user name of valid Basic credentials, None otherwise."""
        if not header or not header.startswith("Basic "):
            return None
        # (Looked up by digest: how long the lookup takes says nothing about the secrets.)
        key = hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
        user = self._valid.get(key)
        if user is None:
            user = self._check(header)
            if user is not None:
                if len(self._valid) >= CACHE_MAX:
                    self._valid.clear()
                self._valid[key] = user
        return user

    def _check(self, header: str) -> str | None:
        try:
            raw = base64.b64decode(header[6:], validate=True)
        except ValueError:
            return None
        user, _, pw = raw.partition(b":")
        ok = False
        # Compare bytes (names and passwords may be any UTF-8) against every entry in
        # constant time, so timing reveals nothing.
        for u, p in self.plain:
            ok |= hmac.compare_digest(u.encode(), user) & hmac.compare_digest(p.encode(), pw)
        for u, salt, digest in self.hashed:
            mac = hmac.new(salt.encode(), pw, "sha256").hexdigest()
            ok |= hmac.compare_digest(u.encode(), user) & hmac.compare_digest(mac, digest)
        return user.decode("utf-8", "replace") if ok else None


class Whitelist:
    """-rpcwhitelist=<user>:<method>,...: the methods a user may call (several entries for a
    user: only methods in all of them); with -rpcwhitelistdefault (on by default once any
    whitelist is given) a user without an entry may call nothing. Core's rules."""

    def __init__(self, entries: list[str], default: bool) -> None:
        self.users: dict[str, set[str]] = {}
        for entry in entries:
            user, _, methods = entry.partition(":")
            allowed = {m.strip() for m in methods.split(",") if m.strip()}
            self.users[user] = self.users[user] & allowed if user in self.users else allowed
        self.default = default

    def allowed(self, user: str) -> set[str] | None:
        """The methods `user` may call; None for all of them."""
        if user in self.users:
            return self.users[user]
        return set() if self.default else None


def _permitted(req: Any, allowed: set[str], user: str) -> bool:
    calls = req if isinstance(req, list) else [req]
    for c in calls:
        method = c.get("method") if isinstance(c, dict) else None
        if method not in allowed:
            log.warning("RPC User %s not allowed to call method %s", user, method)
            return False
    return True


def write_cookie(path: Path) -> str:
    password = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{COOKIE_USER}:{password}")
    os.replace(tmp, path)
    return password


class RPCServer:
    def __init__(
        self,
        node: Any,
        credentials: Credentials,
        bind: list[tuple[str, int]],
        allow: list[str],
        threads: int = 8,
        whitelist: Whitelist | None = None,
        work_queue: int = 64,
        timeout: float | None = None,
    ) -> None:
        self.node = node
        if timeout is None:
            config = getattr(node, "config", None)
            timeout = (config.arg_int("rpcservertimeout", DEFAULT_SERVER_TIMEOUT)
                       if config is not None else DEFAULT_SERVER_TIMEOUT)
        # (Core hands the value to libevent; zero or less would mean no timeout there, which
        # is no protection: the default then)
        self.timeout = float(timeout) if timeout > 0 else float(DEFAULT_SERVER_TIMEOUT)
        self._trim_pending = False
        self._big = asyncio.Semaphore(BIG_AT_ONCE)
        self.credentials = credentials
        self.whitelist = whitelist or Whitelist([], False)
        self.threads = threads
        self.work_queue = work_queue  # requests that may wait for a thread (-rpcworkqueue)
        self.in_executor = 0  # requests handed to threads, running or waiting
        self.bind = bind
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow]
        self._allowed: dict[str, bool] = {}  # peer address -> allowed by -rpcallowip
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc")
        self.warmup: str | None = "Loading block index..."
        self.active: dict[int, tuple[str, float]] = {}  # for getrpcinfo
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []
        # Wallet calls reach the node over JSON-RPC themselves, so they run on threads of
        # their own: waiting on a node call they never hold a thread the node call needs.
        self.wallet_executor: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        limit_heap_retention()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", "/wallet/{wallet:.*}", self._handle)
        from node.rest import mount  # Core's REST interface under /rest/ with -rest

        mount(app, self)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.timeout,
                                     max_line_size=MAX_HEADERS, max_field_size=MAX_HEADERS)
        await self._runner.setup()
        for host, port in self.bind:
            site = web.TCPSite(self._runner, host, port, reuse_address=True)
            await site.start()
            for sock in site._server.sockets:  # type: ignore[union-attr]
                self.bound.append(sock.getsockname()[:2])
        log.info("RPC server listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    def _wallets(self) -> Any:
        """The node's wallet.service.WalletManager, when it mounts wallets."""
        return getattr(self.node, "wallets", None)

    def _wallet_executor(self) -> ThreadPoolExecutor:
        if self.wallet_executor is None:
            self.wallet_executor = ThreadPoolExecutor(max_workers=4,
                                                      thread_name_prefix="rpc-wallet")
        return self.wallet_executor

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.wallet_executor is not None:
            wallet_executor = self.wallet_executor
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: wallet_executor.shutdown(wait=True, cancel_futures=True))
        # Let calls in progress finish (they check node.shutting_down in long loops) before
        # the chain is closed under them.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.executor.shutdown(wait=True, cancel_futures=True))

    # -- HTTP ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def work_slot(self) -> Iterator[web.Response | None]:
        """A place in Core's HTTP work queue (-rpcworkqueue; JSON-RPC and REST share it) for
        a request handed to threads, held for the block: yields None, or when the queue is
        full Core's 503 answer to send instead (a full queue is refused, not grown)."""
        if self.in_executor >= self.threads + self.work_queue:
            log.warning("WARNING: request rejected because http work queue depth exceeded, it "
                        "can be increased with the -rpcworkqueue= setting")
            yield web.Response(status=503, text="Work queue depth exceeded")
            return
        self.in_executor += 1
        try:
            yield None
        finally:
            self.in_executor -= 1

    def allowed(self, peer: str) -> bool:
        ok = self._allowed.get(peer)
        if ok is None:
            ok = self._check_allowed(peer)
            if len(self._allowed) >= CACHE_MAX:
                self._allowed.clear()
            self._allowed[peer] = ok
        return ok

    def _check_allowed(self, peer: str) -> bool:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allow)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        if not self.allowed(peer):
            log.warning("Received a request from %s, which is not allowed by -rpcallowip", peer)
            return web.Response(status=403)
        if request.method != "POST":
            return web.Response(status=405, text="JSONRPC server handles only POST requests")
        user = self.credentials.check(request.headers.get("Authorization"))
        if user is None:
            log.warning("ThreadRPCServer incorrect password attempt from %s", peer)
            await asyncio.sleep(AUTH_FAIL_DELAY)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        allowed = self.whitelist.allowed(user)
        body = await self._read_body(request, peer)
        if not isinstance(body, bytes):
            return body
        wallet = request.match_info.get("wallet")
        if wallet is not None:
            from urllib.parse import unquote

            wallet = unquote(wallet)
        req: Any = _UNPARSED
        if len(body) <= INLINE_PARSE_MAX:
            req = _parse(body)
            if allowed is not None and not _permitted(req, allowed, user):
                return web.Response(status=403)
            method = _method_of(req)
            if method is not None:
                if method.inline:
                    # Fast, lock-free methods answer on the loop without a thread hop.
                    return await self._send(request,
                                            *self._encode(*self._call(req, wallet, peer)))
                if method.inline_if_free and len(body) <= INLINE_SMALL:
                    reply = self._call_if_free(req, wallet, peer)
                    if reply is not None:
                        return await self._send(request, *reply)
        # Parsing a big body, running the method and encoding its reply all happen on a
        # worker thread, so the loop keeps serving other clients meanwhile.
        loop = asyncio.get_running_loop()
        executor = self.executor
        if self._wallets() is not None:
            if req is _UNPARSED:
                # Parsed off the loop first, so that only wallet calls go to the wallet's
                # threads: a mounted wallet's own big requests to the node (a rescan's block
                # batches) must never wait behind wallet calls that wait for them.
                req = await loop.run_in_executor(None, _parse, body)
                if allowed is not None and not _permitted(req, allowed, user):
                    return web.Response(status=403)
            if _has_wallet_call(req):
                executor = self._wallet_executor()
        with self.work_slot() as refused:
            if refused is not None:
                return refused
            if len(body) >= BIG and executor is self.executor:
                # Big requests (those that can make big replies) run BIG_AT_ONCE at a time,
                # so a burst of them cannot multiply the memory each takes. (Not the wallet's
                # calls: they may wait for node calls, which must never wait for them.)
                async with self._big:
                    status, payload = await loop.run_in_executor(
                        executor, self._process, req, body, wallet, peer, allowed, user)
            else:
                status, payload = await loop.run_in_executor(
                    executor, self._process, req, body, wallet, peer, allowed, user)
        big = len(body) >= BIG or (payload is not None and len(payload) >= BIG)
        del body, req
        try:
            return await self._send(request, status, payload)
        finally:
            if big:
                self._schedule_trim()

    async def _read_body(self, request: web.Request, peer: str) -> bytes | web.Response:
        """The request's body, read as it comes: at most MAX_BODY bytes (HTTP 413 past it, as
        Core's), and the connection is closed when the client sends nothing for the timeout."""
        length = request.content_length
        if length is not None and length > MAX_BODY:
            resp = web.Response(status=413, text="Request body too large")
            resp.force_close()
            return resp
        content = request.content
        if content.is_eof() and content.exception() is None:
            # The whole body has arrived already (a small request: most of them): taken as
            # it is, without a wait.
            data = content.read_nowait(-1)
            if len(data) > MAX_BODY:
                resp = web.Response(status=413, text="Request body too large")
                resp.force_close()
                return resp
            return data
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await asyncio.wait_for(request.content.readany(), self.timeout)
            except TimeoutError:
                log.info("RPC client %s sent nothing for %g s in a request: connection closed",
                         peer, self.timeout)
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=408)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                resp = web.Response(status=413, text="Request body too large")
                resp.force_close()
                return resp
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _send(self, request: web.Request, status: int,
                    payload: bytes | None) -> web.StreamResponse:
        """A reply; a big one is written here in chunks, each of which must be taken by the
        client within the timeout (Core's -rpcservertimeout applies to writes too), so a
        client that stops reading cannot hold a big reply in memory for ever."""
        if payload is None or status == 403 or len(payload) < BIG:
            return self._response(status, payload)
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        view = memoryview(payload)
        try:
            await asyncio.wait_for(resp.prepare(request), self.timeout)
            for i in range(0, len(view), WRITE_CHUNK):
                await asyncio.wait_for(resp.write(view[i:i + WRITE_CHUNK]), self.timeout)
            await asyncio.wait_for(resp.write_eof(), self.timeout)
        except TimeoutError:
            log.info("RPC client %s took no reply data for %g s: connection closed",
                     request.remote, self.timeout)
            if request.transport is not None:
                request.transport.close()
        finally:
            view.release()
        return resp

    def _schedule_trim(self) -> None:
        """Give freed memory back to the system soon (once for a burst of big requests)."""
        if self._trim_pending:
            return
        self._trim_pending = True
        loop = asyncio.get_running_loop()

        def run() -> None:
            self._trim_pending = False
            loop.run_in_executor(None, release_memory)

        loop.call_later(0.5, run)

    def _call_if_free(self, req: dict, wallet: str | None,
                      peer: str) -> tuple[int, bytes | None] | None:
        """A small call of an `inline_if_free` method, on the loop, when the chain's lock can
        be taken without waiting (its encoded reply); None when it cannot (a block being
        connected, other calls running): then it goes to a thread as any call. It runs inline
        even while other clients' requests wait: a hand-off to a thread costs more than the call
        (sendrawtransaction over 8 connections ran 0.70 x one connection's rate through
        threads, 1.68 x inline), and the thread's work holds the GIL as the loop's does."""
        chain = getattr(self.node, "chain", None)
        lock = getattr(chain, "lock", None)
        if self.warmup is not None or lock is None or not lock.acquire(blocking=False):
            return None
        try:
            return self._encode(*self._call(req, wallet, peer))
        finally:
            lock.release()

    def process_local(self, body: bytes, peer: str) -> tuple[int, bytes | None]:
        """A request from inside this process (the mounted wallets' client of their node,
        node/rpc/local.py): parsed, run and encoded as one over HTTP, on the caller's
        thread."""
        return self._process(_UNPARSED, body, None, peer)

    def _process(self, req: Any, body: bytes, wallet: str | None, peer: str,
                 allowed: set[str] | None = None, user: str = "") -> tuple[int, bytes | None]:
        if req is _UNPARSED:
            req = _parse(body)
            if allowed is not None and not _permitted(req, allowed, user):
                return 403, b""
        if req is _UNPARSABLE:
            return self._encode(*_v1_error(RPCError(RPC_PARSE_ERROR, "Parse error"), None))
        if isinstance(req, list):
            replies = [r for _, r in self._run_batch(req, wallet, peer) if r is not None]
            if req and not replies:  # only notifications: nothing to say (Core: 204)
                return 204, None
            return 200, self._encode_batch(replies)
        if isinstance(req, dict):
            return self._encode(*self._call(req, wallet, peer))
        return self._encode(*_v1_error(
            RPCError(RPC_PARSE_ERROR, "Top-level object parse error"), None))

    @staticmethod
    def _encode(status: int, reply: Any, limit: int | None = None) -> tuple[int, bytes | None]:
        """A reply as JSON bytes; one longer than `limit` (MAX_REPLY) becomes error -7."""
        if reply is None:
            return status, None
        try:
            # A lone surrogate (from a request's id or strings) is written as its JSON escape
            # (\ud800), so one odd id never costs the reply, or a whole batch's.
            data = jsonutil.dumps_bytes(reply)
            limit = MAX_REPLY if limit is None else limit
            if len(data) <= limit:
                return status, data
            size = len(data)
            del data
            log.info("RPC reply of %d bytes refused (limit %d)", size, limit)
            err = RPCError(RPC_OUT_OF_MEMORY,
                           f"Reply too large: {size} bytes, more than the limit of {limit}")
            rid = reply.get("id") if isinstance(reply, dict) else None
            if isinstance(reply, dict) and reply.get("jsonrpc") == "2.0":
                return status, jsonutil.dumps_bytes({"jsonrpc": "2.0", "error": err.to_json(),
                                                     "id": rid})
            status, small = _v1_error(err, rid)
            return status, jsonutil.dumps_bytes(small)
        except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as err:
            # E.g. an object a method should not have returned: still answer in JSON.
            log.warning("could not encode a reply: %s", err)
            rid = reply.get("id") if isinstance(reply, dict) else None
            fallback = _v1_error(RPCError(RPC_INTERNAL_ERROR, "Reply could not be encoded"),
                                 rid if isinstance(rid, (int, str)) and _encodable(rid) else None)
            return 500, (json.dumps(fallback[1]) + "\n").encode()

    @classmethod
    def _encode_batch(cls, replies: list) -> bytes:
        """A batch's replies, each encoded on its own: those that would take the whole past
        MAX_REPLY become error -7, the others are kept."""
        pieces: list[Any] = [b"["]
        room = MAX_REPLY
        for i, reply in enumerate(replies):
            _, data = cls._encode(200, reply, limit=room)
            assert data is not None
            if i:
                pieces.append(b",")
            pieces.append(memoryview(data)[:-1])  # (without its newline)
            room = max(0, room - len(data))
        pieces.append(b"]\n")
        return b"".join(pieces)

    @staticmethod
    def _response(status: int, payload: bytes | None) -> web.Response:
        if status == 403:
            return web.Response(status=403)
        if payload is None:
            return web.Response(status=204)  # a JSON-RPC 2.0 notification
        # Exactly "application/json", as Core sends it: some clients compare the header.
        return web.Response(status=status, body=payload,
                            headers={"Content-Type": "application/json"})

    # -- JSON-RPC --------------------------------------------------------------------------

    def _run_batch(self, items: list, wallet: str | None, peer: str) -> list[tuple[int, Any]]:
        """A JSON-RPC batch, in one worker thread. Methods with a `prepare` hook first see all
        of their calls at once (sendrawtransaction checks their scripts in parallel)."""
        by_method: dict[str, list] = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("method"), str):
                by_method.setdefault(item["method"], []).append(item.get("params"))
        cleanups = []
        try:
            for name, params in by_method.items():
                m = REGISTRY.get(name)
                if (m is not None and m.prepare is not None and len(params) > 1
                        and self.warmup is None):
                    try:
                        cleanup = m.prepare(self.node, params)
                    except Exception:  # only an optimisation: the calls themselves still run
                        log.debug("prepare for %s failed", name, exc_info=True)
                    else:
                        if cleanup is not None:
                            cleanups.append(cleanup)
            return [self._call(item, wallet, peer) for item in items]
        finally:
            for cleanup in cleanups:
                try:
                    cleanup()
                except Exception:
                    log.warning("batch cleanup failed", exc_info=True)

    def _call(self, req: Any, wallet: str | None, peer: str) -> tuple[int, Any]:
        """Execute one request object: (HTTP status, reply or None for a notification)."""
        if not isinstance(req, dict):
            return _v1_error(RPCError(RPC_INVALID_REQUEST, "Invalid Request object"), None)
        rid = req.get("id")
        version = req.get("jsonrpc")
        if version is None or version == "1.0":
            v2 = False
        elif version == "2.0":
            v2 = True
        else:
            return _v1_error(RPCError(RPC_INVALID_REQUEST, "JSON-RPC version not supported"), rid)
        notification = v2 and "id" not in req
        try:
            method = req.get("method")
            if method is None:
                raise RPCError(RPC_INVALID_REQUEST, "Missing method")
            if not isinstance(method, str):
                raise RPCError(RPC_INVALID_REQUEST, "Method must be a string")
            params = req.get("params")
            if params is not None and not isinstance(params, (list, dict)):
                raise RPCError(RPC_INVALID_REQUEST, "Params must be an array or object")
            result = self.execute(method, params, RPCRequest(method, wallet, peer))
        except RPCError as err:
            if notification:
                return 204, None
            return (200, {"jsonrpc": "2.0", "error": err.to_json(), "id": rid}) if v2 else (
                _v1_error(err, rid)
            )
        if notification:
            return 204, None
        if v2:
            return 200, {"jsonrpc": "2.0", "result": result, "id": rid}
        return 200, {"result": result, "error": None, "id": rid}

    def execute(self, name: str, params: Any, request: RPCRequest) -> Any:
        method = REGISTRY.get(name)
        if method is None:
            wallets = self._wallets()
            if _is_wallet_method(name) and (wallets is not None or self.warmup is not None):
                return self._execute_wallet(wallets, name, params, request)
            raise RPCError(RPC_METHOD_NOT_FOUND, "Method not found")
        if self.warmup is not None and name not in ("stop", "help", "uptime", "getrpcinfo"):
            raise RPCError(RPC_IN_WARMUP, self.warmup)
        args = method.bind(params)
        key = id(request)
        self.active[key] = (name, time.monotonic())
        log.debug("ThreadRPCServer method=%s user=%s", name, request.peer)
        try:
            return method.func(self.node, *args)
        except RPCError:
            raise
        except Exception as err:  # a bug, not bad input: report it without dying
            log.exception("RPC %s failed", name)
            raise RPCError(RPC_INTERNAL_ERROR, f"Internal error: {err}") from None
        finally:
            self.active.pop(key, None)


    def _execute_wallet(self, wallets: Any, name: str, params: Any, request: RPCRequest) -> Any:
        """A wallet method (the wallet of /wallet/<name>, or the only one loaded), with the
        wallet's error codes passed on as they are."""
        from wallet.errors import WalletError

        if self.warmup is not None:
            raise RPCError(RPC_IN_WARMUP, self.warmup)
        key = id(request)
        self.active[key] = (name, time.monotonic())
        try:
            return _wallet_amounts(wallets.call(request.wallet, name, params))
        except WalletError as err:
            raise RPCError(err.code, err.message) from None
        except Exception as err:  # a bug, not bad input: report it without dying
            log.exception("wallet RPC %s failed", name)
            raise RPCError(RPC_INTERNAL_ERROR, f"Internal error: {err}") from None
        finally:
            self.active.pop(key, None)


_UNPARSED = object()
_UNPARSABLE = object()
INLINE_PARSE_MAX = 16 * 1024  # bodies up to this size are parsed on the loop
# Bodies up to this size may run an `inline_if_free` method on the loop: a transaction of at
# most 2 kB, whose checks take a few milliseconds at worst (standard scripts' signature
# checks are bounded by their size).
INLINE_SMALL = 4 * 1024


def _parse(body: bytes) -> Any:
    """The request, or _UNPARSABLE for what Core's parser refuses too: invalid JSON, NaN and
    Infinity, nesting too deep to handle."""
    try:
        # (json_object keeps a repeated key's every value, as Core's UniValue does)
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constant,
                          object_pairs_hook=jsonutil.json_object)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _UNPARSABLE


_malloc_trim: Any = None
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def limit_heap_retention() -> None:
    """Make glibc give big blocks (1 MiB and up) back to the system when they are freed.

    By default glibc raises its mmap threshold to the size of each big block freed (up to
    32 MiB), so that after one 30 MB request body, every later block up to that size comes
    from a heap that keeps its pages: a burst of big requests left RSS hundreds of MB up for
    good, which malloc_trim does not undo. A fixed threshold keeps those blocks mapped on
    their own and unmapped when freed (a few page faults per megabyte: nothing beside the
    work on such a block)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass  # not glibc


def release_memory() -> None:
    """Give the heap's free pages back to the system (glibc keeps what Python frees, in
    every thread's arena; elsewhere nothing to do)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: str | int) -> bool:
    try:
        str(value).encode()
        return True
    except UnicodeEncodeError:
        return False


def _wallet_amounts(value: Any) -> Any:
    """The wallet answers BTC amounts as Decimals of 8 places: written as the node writes
    amounts (jsonutil.Amount, 0.00000000 rather than 0E-8)."""
    if isinstance(value, Decimal):
        sats = value * 100_000_000
        return jsonutil.btc(int(sats)) if sats == sats.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _wallet_amounts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wallet_amounts(v) for v in value]
    return value


def _is_wallet_method(name: str) -> bool:
    from wallet.rpc import METHODS

    return name in METHODS


def _has_wallet_call(req: Any) -> bool:
    """Whether a request (or a batch) calls a method the node's registry does not have:
    those are the wallet's."""
    items = req if isinstance(req, list) else [req]
    return any(isinstance(r, dict) and isinstance(r.get("method"), str)
               and r["method"] not in REGISTRY for r in items)


def _method_of(req: Any) -> Any:
    """The registry's method a single request calls, None for a batch or an unknown one."""
    if not isinstance(req, dict):
        return None
    name = req.get("method")
    return REGISTRY.get(name) if isinstance(name, str) else None




def _v1_error(err: RPCError, rid: Any) -> tuple[int, dict]:
    status = 500
    if err.code == RPC_INVALID_REQUEST:
        status = 400
    elif err.code == RPC_METHOD_NOT_FOUND:
        status = 404
    return status, {"result": None, "error": err.to_json(), "id": rid}
