"""Where the RPC server runs a call: `inline_if_free` methods on the event loop when the
request is small and the chain's lock is free, on a worker thread otherwise; and the cached
checks of credentials and allowed addresses give the same answers as the full ones."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import threading
from types import SimpleNamespace

import aiohttp

from node.rpc import server as server_mod
from node.rpc.registry import REGISTRY, Arg, Method
from node.rpc.server import INLINE_SMALL, Credentials, RPCServer

AUTH = "Basic " + base64.b64encode(b"u:p").decode()


def _where(node, text):
    """The test method: the name of the thread it ran on (under the chain's lock, as the
    real ones)."""
    with node.chain.lock:
        return threading.current_thread().name


async def _call(url: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(
            url, data=json.dumps(body), headers={"Authorization": AUTH}) as r:
        return r.status, await r.json()


def test_inline_if_free_runs_on_the_loop_only_when_the_lock_is_free(monkeypatch):
    monkeypatch.setitem(REGISTRY, "whereami", Method(
        "whereami", "Test", _where, [Arg("text", "string", False)], "", inline_if_free=True))
    lock = threading.RLock()
    node = SimpleNamespace(chain=SimpleNamespace(lock=lock))
    srv = RPCServer(node, Credentials("u", "p", []), [("127.0.0.1", 0)], ["127.0.0.1/32"],
                    threads=2)
    srv.warmup = None

    async def run() -> dict:
        await srv.start()
        host, port = srv.bound[0]
        url = f"http://{host}:{port}/"
        out = {"loop": threading.current_thread().name}
        try:
            _, r = await _call(url, {"method": "whereami", "params": ["x"], "id": 1})
            out["free"] = r["result"]
            # A body past INLINE_SMALL: on a thread, lock free or not.
            _, r = await _call(url, {"method": "whereami",
                                     "params": ["x" * INLINE_SMALL], "id": 2})
            out["big"] = r["result"]
            # The lock held by another thread (a block being connected): the call waits
            # on a worker thread, while the loop keeps answering.
            held, release = threading.Event(), threading.Event()

            def holder() -> None:
                with lock:
                    held.set()
                    release.wait(10)

            t = threading.Thread(target=holder)
            t.start()
            held.wait(10)
            pending = asyncio.ensure_future(
                _call(url, {"method": "whereami", "params": ["x"], "id": 3}))
            await asyncio.sleep(0.2)
            out["waiting"] = not pending.done()  # (it waits for the lock, on a thread)
            release.set()
            _, r = await pending
            t.join()
            out["held"] = r["result"]
            # During warm-up: Core's -28, as for any method.
            srv.warmup = "Loading block index..."
            status, r = await _call(url, {"method": "whereami", "id": 4})
            out["warmup"] = r["error"]["code"]
        finally:
            await srv.stop()
        return out

    out = asyncio.run(run())
    assert out["free"] == out["loop"]
    assert out["big"].startswith("rpc") and out["held"].startswith("rpc")
    assert out["waiting"]
    assert out["warmup"] == -28
    assert not lock._is_owned()  # (released after the call on the loop)


def test_credentials_checked_once_per_header(monkeypatch):
    salt = "s4lt"
    mac = hmac.new(salt.encode(), b"pw", "sha256").hexdigest()
    c = Credentials(None, None, [f"bob:{salt}${mac}"])
    calls = []
    real = server_mod.hmac.new

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(server_mod.hmac, "new", counting)
    good = "Basic " + base64.b64encode(b"bob:pw").decode()
    bad = "Basic " + base64.b64encode(b"bob:pW").decode()
    assert [c.check(good) for _ in range(5)] == ["bob"] * 5
    assert len(calls) == 1  # the HMAC of -rpcauth worked out once for this header
    assert c.check(bad) is None and c.check(bad) is None  # failures are never remembered
    assert len(calls) == 3
    c.add_cookie("cookie")
    assert c.check("Basic " + base64.b64encode(b"__cookie__:cookie").decode()) == "__cookie__"
    assert c.check(good) == "bob"


def test_allowed_is_the_same_from_the_cache():
    srv = RPCServer(None, Credentials(None, None, []), [], ["10.1.0.0/16"])
    try:
        for _ in range(2):
            assert srv.allowed("10.1.2.3") and srv.allowed("::ffff:10.1.0.9")
            assert not srv.allowed("10.2.0.1") and not srv.allowed("junk")
    finally:
        srv.executor.shutdown()


def test_inline_if_free_stays_on_the_loop_with_many_clients(monkeypatch):
    """Eight clients at once: each small call still runs on the loop (a hand-off to a
    thread costs more than the call: eight connections ran slower than one that way)."""
    monkeypatch.setitem(REGISTRY, "whereami", Method(
        "whereami", "Test", _where, [Arg("text", "string", False)], "", inline_if_free=True))
    node = SimpleNamespace(chain=SimpleNamespace(lock=threading.RLock()))
    srv = RPCServer(node, Credentials("u", "p", []), [("127.0.0.1", 0)], ["127.0.0.1/32"],
                    threads=2)
    srv.warmup = None

    async def run() -> tuple[str, list[str]]:
        await srv.start()
        host, port = srv.bound[0]
        url = f"http://{host}:{port}/"
        try:
            replies = await asyncio.gather(*[
                _call(url, {"method": "whereami", "params": ["x"], "id": i})
                for i in range(8) for _ in range(5)])
        finally:
            await srv.stop()
        return threading.current_thread().name, [r["result"] for _, r in replies]

    loop_thread, where = asyncio.run(run())
    assert where == [loop_thread] * 40


def test_local_client_is_json_rpc_without_the_socket(monkeypatch):
    """The mounted wallets' client (node/rpc/local.py): the same requests, replies and errors
    as over HTTP (amounts as Decimal, the server's codes), with no connection at all."""
    from decimal import Decimal

    from node.rpc.local import LocalNodeClient
    from node.rpc.registry import NUM
    from wallet.nodeclient import NodeRPCError

    def halve(node, amount):
        return {"half": Decimal(str(amount)) / 2, "thread": threading.current_thread().name}

    monkeypatch.setitem(REGISTRY, "halve", Method("halve", "Test", halve,
                                                  [Arg("amount", NUM, False)], ""))
    srv = RPCServer(SimpleNamespace(), Credentials("u", "p", []), [("127.0.0.1", 0)],
                    ["127.0.0.1/32"], threads=1)
    client = LocalNodeClient(srv, "http://127.0.0.1:1/")  # (nothing listens: never dialled)
    try:
        srv.warmup = "Loading block index..."
        try:
            client.call("halve", 3)
            raise AssertionError("no -28 in warm-up")
        except NodeRPCError as err:
            assert err.code == -28
        srv.warmup = None
        got = client.call("halve", Decimal("0.00000003"))
        assert got == {"half": Decimal("1.5E-8"), "thread": threading.current_thread().name}
        assert isinstance(got["half"], Decimal)
        out = client.batch([("halve", [1]), ("nosuchmethod", []), ("halve", ["x"])])
        assert out[0]["half"] == Decimal("0.5")
        assert isinstance(out[1], NodeRPCError) and out[1].code == -32601
        assert isinstance(out[2], NodeRPCError) and out[2].code == -3
    finally:
        srv.executor.shutdown()
