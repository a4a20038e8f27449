"""The HTTP JSON-RPC server (aiohttp), with Bitcoin Core's conventions:

- POST to `/` or `/wallet/<name>`; Basic auth against the cookie, -rpcuser/-rpcpassword or
  -rpcauth (HMAC-SHA256); a wrong password is answered 401 after a short delay.
- Wallet methods go to the node's wallet manager when it mounts one (`node.wallets`, a
  wallet.service.WalletManager), on threads of their own; during warm-up they get -28 too.
- JSON-RPC 1.0 (legacy) replies carry both `result` and `error`, errors use HTTP 500 (404
  for an unknown method, 400 for an invalid request); JSON-RPC 2.0 replies carry one of them
  with HTTP 200, and notifications get 204. Batches are arrays, answered with HTTP 200.
- Bodies above the request-size limit are refused with HTTP 413.
- Method calls run in a thread pool (they take the chain lock), so the event loop keeps
  serving other clients meanwhile; methods marked `inline` run on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
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
    RPC_PARSE_ERROR,
    RPCError,
)
from node.rpc.registry import REGISTRY

log = logging.getLogger("rpc")

MAX_BODY = 0x02000000  # 32 MiB, Core's MAX_SIZE for an HTTP request body
AUTH_FAIL_DELAY = 0.25
COOKIE_USER = "__cookie__"


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

    def add_cookie(self, password: str) -> None:
        self.plain.append((COOKIE_USER, password))

    def check(self, header: str | None) -> str | None:
        """The user name of valid Basic credentials, None otherwise."""
        if not header or not header.startswith("Basic "):
            return None
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
    ) -> None:
        self.node = node
        self.credentials = credentials
        self.whitelist = whitelist or Whitelist([], False)
        self.threads = threads
        self.work_queue = work_queue  # requests that may wait for a thread (-rpcworkqueue)
        self.in_executor = 0  # requests handed to threads, running or waiting
        self.bind = bind
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow]
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
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/", self._handle)
        app.router.add_route("*", "/wallet/{wallet:.*}", self._handle)
        from node.rest import mount  # Core's REST interface under /rest/ with -rest

        mount(app, self)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
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

    def _allowed(self, peer: str) -> bool:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allow)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        if not self._allowed(peer):
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
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="Request body too large")
        wallet = request.match_info.get("wallet")
        if wallet is not None:
            from urllib.parse import unquote

            wallet = unquote(wallet)
        req: Any = _UNPARSED
        if len(body) <= INLINE_PARSE_MAX:
            req = _parse(body)
            if allowed is not None and not _permitted(req, allowed, user):
                return web.Response(status=403)
            if isinstance(req, dict) and _is_inline(req):
                # Fast, lock-free methods answer on the loop without a thread hop.
                return self._response(*self._encode(*self._call(req, wallet, peer)))
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
        if self.in_executor >= self.threads + self.work_queue:
            # Core's -rpcworkqueue: a full queue is refused, not grown without bound.
            log.warning("WARNING: request rejected because http work queue depth exceeded, it "
                        "can be increased with the -rpcworkqueue= setting")
            return web.Response(status=503, text="Work queue depth exceeded")
        self.in_executor += 1
        try:
            status, payload = await loop.run_in_executor(executor, self._process, req, body,
                                                         wallet, peer, allowed, user)
        finally:
            self.in_executor -= 1
        return self._response(status, payload)

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
            return self._encode(200, replies)
        if isinstance(req, dict):
            return self._encode(*self._call(req, wallet, peer))
        return self._encode(*_v1_error(
            RPCError(RPC_PARSE_ERROR, "Top-level object parse error"), None))

    @staticmethod
    def _encode(status: int, reply: Any) -> tuple[int, bytes | None]:
        if reply is None:
            return status, None
        try:
            # A lone surrogate (from a request's id or strings) is written as its JSON escape
            # (\ud800): backslashreplace writes exactly that, so one odd id never costs the
            # reply, or a whole batch's.
            return status, (jsonutil.dumps(reply) + "\n").encode("utf-8", "backslashreplace")
        except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as err:
            # E.g. an object a method should not have returned: still answer in JSON.
            log.warning("could not encode a reply: %s", err)
            rid = reply.get("id") if isinstance(reply, dict) else None
            fallback = _v1_error(RPCError(RPC_INTERNAL_ERROR, "Reply could not be encoded"),
                                 rid if isinstance(rid, (int, str)) and _encodable(rid) else None)
            return 500, (json.dumps(fallback[1]) + "\n").encode()

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


def _parse(body: bytes) -> Any:
    """The request, or _UNPARSABLE for what Core's parser refuses too: invalid JSON, NaN and
    Infinity, nesting too deep to handle."""
    try:
        # (json_object keeps a repeated key's every value, as Core's UniValue does)
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constant,
                          object_pairs_hook=jsonutil.json_object)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _UNPARSABLE


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


def _is_inline(req: dict) -> bool:
    name = req.get("method")
    method = REGISTRY.get(name) if isinstance(name, str) else None
    return method is not None and method.inline




def _v1_error(err: RPCError, rid: Any) -> tuple[int, dict]:
    status = 500
    if err.code == RPC_INVALID_REQUEST:
        status = 400
    elif err.code == RPC_METHOD_NOT_FOUND:
        status = 404
    return status, {"result": None, "error": err.to_json(), "id": rid}
