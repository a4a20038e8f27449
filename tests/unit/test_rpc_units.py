"""The RPC layer's pure pieces: credentials, allowed subnets, exact JSON amounts, amount
parsing and argument binding with Core's errors."""

from __future__ import annotations

import base64
import hmac
import json
from decimal import Decimal

import pytest

from node.rpc.errors import RPCError
from node.rpc.jsonutil import btc, double, dumps, parse_amount
from node.rpc.registry import BOOL, NUM, STR, Arg, Method
from node.rpc.server import Credentials, RPCServer


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_credentials():
    salt = "abc123"
    mac = hmac.new(salt.encode(), b"pw2", "sha256").hexdigest()
    c = Credentials("alice", "pw1", [f"bob:{salt}${mac}"])
    c.add_cookie("cookiepw")
    assert c.check(basic("alice", "pw1"))
    assert c.check(basic("bob", "pw2"))
    assert c.check(basic("__cookie__", "cookiepw"))
    for bad in (basic("alice", "pw2"), basic("bob", "pw1"), basic("carol", "pw1"),
                "Basic !!!notbase64", "Bearer x", None, ""):
        assert not c.check(bad)
    with pytest.raises(ValueError, match="rpcauth"):
        Credentials(None, None, ["no-dollar-sign"])


def test_allowed_subnets():
    srv = RPCServer(None, Credentials(None, None, []), [], ["127.0.0.0/8", "::1/128",
                                                            "10.1.0.0/16"])
    assert srv.allowed("127.0.0.1") and srv.allowed("::1") and srv.allowed("10.1.2.3")
    assert srv.allowed("::ffff:127.0.0.1")  # IPv4-mapped
    assert not srv.allowed("10.2.0.1") and not srv.allowed("192.168.1.1")
    assert not srv.allowed("not an ip")
    srv.executor.shutdown()


def test_dumps_exact_numbers_and_no_forgery():
    out = dumps({"a": btc(2_100_000_000_000_000), "b": btc(-1), "d": double(1.0),
                 "e": double(4.6565423739069247e-10), "x": Decimal("0.1")})
    assert out == ('{"a":21000000.00000000,"b":-0.00000001,"d":1,'
                   '"e":4.656542373906925e-10,"x":0.1}')
    # A string that looks like a marker stays a string.
    evil = "\x00" + "00" * 6 + ":5"
    assert json.loads(dumps({"s": evil}))["s"] == evil
    with pytest.raises(TypeError):
        dumps({"o": object()})
    # What orjson refuses goes through the stdlib encoder, with the same exact amounts.
    assert dumps({"id": 2**70, "a": btc(1)}) == '{"id":1180591620717411303424,"a":0.00000001}'
    assert dumps({"u": "é\x00", "a": [btc(5)]}) == '{"u":"é\\u0000","a":[0.00000005]}'


@pytest.mark.parametrize("value,sats", [(1, 100_000_000), ("0.00000001", 1), (Decimal("21000000"),
                                        2_100_000_000_000_000), (0, 0), ("1e-8", 1)])
def test_parse_amount_ok(value, sats):
    assert parse_amount(value) == sats


@pytest.mark.parametrize("value", ["0.000000001", "-1", "21000000.00000001", "abc", "NaN",
                                   "Infinity"])
def test_parse_amount_bad(value):
    with pytest.raises(ValueError):
        parse_amount(value)


def test_parse_amount_type():
    for bad in (True, None, [1], {"a": 1}):
        with pytest.raises(TypeError):
            parse_amount(bad)


def method() -> Method:
    return Method("m", "Test", lambda node, a, b, c: None,
                  [Arg("a", STR), Arg("b", NUM, False, 7), Arg("c", BOOL, False, False)],
                  "A test method.")


def test_bind_positional_named_and_defaults():
    m = method()
    assert m.bind(["x"]) == ["x", 7, False]
    assert m.bind(["x", 1, True]) == ["x", 1, True]
    assert m.bind({"a": "x", "c": True}) == ["x", 7, True]
    assert m.bind({"args": ["x"], "b": 2}) == ["x", 2, False]
    assert m.bind(["x", None]) == ["x", 7, False]  # null for an optional: its default


def test_bind_errors_like_core():
    m = method()
    with pytest.raises(RPCError) as e:
        m.bind([])
    assert e.value.code == -1 and e.value.message.startswith('m "a" ( b c )')
    with pytest.raises(RPCError) as e:
        m.bind(["x", 1, True, 4])
    assert e.value.code == -1
    with pytest.raises(RPCError) as e:
        m.bind([1, "two"])
    assert e.value.code == -3
    assert e.value.message == (
        'Wrong type passed:\n{\n    "Position 1 (a)": "JSON value of type number is not of '
        'expected type string",\n    "Position 2 (b)": "JSON value of type string is not of '
        'expected type number"\n}')
    with pytest.raises(RPCError) as e:
        m.bind({"a": "x", "zz": 1})
    assert (e.value.code, e.value.message) == (-8, "Unknown named parameter zz")
    with pytest.raises(RPCError) as e:
        m.bind({"args": ["x"], "a": "y"})
    assert e.value.code == -8 and "specified twice" in e.value.message


def test_send_batch_prepare_never_leaves_its_stream_open(monkeypatch):
    """A failure while a sendrawtransaction batch is being prepared (a database error
    reading coins, say) closes the stream that holds the mempool's script-check workers."""
    from types import SimpleNamespace

    from consensus.script.pool import ScriptCheckPool, VerifyStream
    from node.rpc import mempool as rpc_mempool

    pool = ScriptCheckPool(workers=1)
    opened = []

    def start():
        opened.append(VerifyStream(pool))  # holds the workers until closed
        return opened[-1]

    def broken(stream, txs):
        raise OSError("database read failed")

    closed = []
    mempool = SimpleNamespace(start_background_checks=start, check_in_background=broken,
                              end_background_checks=lambda s: (s.close(), closed.append(s)))
    node = SimpleNamespace(mempool=mempool)
    monkeypatch.setattr(rpc_mempool, "decode_tx", lambda h: SimpleNamespace(hex=h))
    try:
        with pytest.raises(OSError):
            rpc_mempool._prepare_send(node, [[f"{i:02x}"] for i in range(150)])
        assert closed == opened and not pool._lock.locked()
    finally:
        for stream in opened:
            stream.close()  # (left open if the check above failed)
        pool.close()
