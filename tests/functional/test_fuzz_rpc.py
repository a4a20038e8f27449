"""The RPC fuzzer, bounded: every registered method, the wallet's included, called with junk
of every JSON type (wrong types, huge and odd numbers, odd strings, deep nesting), by position
and by name; then byte-mutated transactions and blocks submitted. Every call must get an
ordinary JSON-RPC answer (never -32603, the internal error), the node must answer throughout,
debug.log must hold no traceback and stay small (the log rate limit), the chain must hold, and
a follower node must take what the node mines afterwards.

Seeded: the seed is printed; MINIBTC_FUZZ_SEED=<n> replays a run (or tries another), and
MINIBTC_FUZZ_ROUNDS=<n> makes more calls per method (20 by default)."""

from __future__ import annotations

import os
import random
import time
from decimal import Decimal

from consensus.params import REGTEST
from node.rpc import methods  # noqa: F401  (registers every method)
from node.rpc.jsonutil import dumps_bytes
from node.rpc.registry import REGISTRY
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
from wallet.address import script_to_address
from wallet.rpc import METHODS as WALLET_METHODS

SEED = int(os.environ.get("MINIBTC_FUZZ_SEED", "20261206"))
ROUNDS = int(os.environ.get("MINIBTC_FUZZ_ROUNDS", "20"))  # calls per method (more: longer)
ADDR = script_to_address(Wallet().p2wpkh, REGTEST)
KEY = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
JUNK = [
    None, 0, -1, 1, 2, 2**40, -(2**70), 2**63, 2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e300,
    -1e-300, Decimal("0.1"), Decimal("1e-9"), Decimal("21000001"), Decimal("-0.00000001"),
    Decimal("1E+30"), Decimal("1E+1000000"), Decimal("-1E+1000000"), Decimal("0E+1000000"),
    "", "x", "00", "zz" * 32, "ab" * 32, "0" * 64, "f" * 64, "abc", "-1",
    "1e400", "nan", "inf", "0x10", " 1", "true", "null", "[]", "{}", "\x00", "\ud800", "\U0001f600",
    "é" * 300, "a" * 100_000, "1" * 1000, True, False, [], [1], ["a"], [[[[[[[[[[]]]]]]]]]],
    [0] * 1000, {}, {"a": 1}, {"": None}, {"txid": "00" * 32, "vout": 0},
    {"txid": "00" * 32, "vout": -1}, {"txid": "00" * 32, "vout": 2**32}, {"address": 1},
    {"data": "zz"}, {"desc": 5}, {"fee_rate": -1}, {"conf_target": 10**9},
    {ADDR: Decimal("0.1")}, {ADDR: -1}, [{"txid": 5}], [{ADDR: 1}], ADDR, ADDR.upper(),
    "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", f"addr({ADDR})", f"wpkh({KEY})",
    f"wpkh({KEY})#aaaaaaaa", "wsh(multi(1,xpub/*))", "tr(" + "0" * 64 + ")", "cHNidP8B",
    "cHNidP8BAAoCAAAAAAAAAAAAAAAA", "01000000000000000000", "ffff" * 100, "fd" + "00" * 40,
]
# Methods a junk call could make run for ever or touch files outside the test's folder.
NEVER = {"stop"}
LAST = {"encryptwallet", "unloadwallet"}  # they change what the other calls see: at the end
PATHS = {"backupwallet", "dumptxoutset"}  # their path argument is put in the test's folder


DEEP = "\x00deep"  # written as 5000 nested arrays (more than JSON encoders take)


def deep(n: int):
    out: list = []
    for _ in range(n):
        out = [out]
    return out


def of_type(kind: str) -> list:
    """The junk of a JSON type (from an argument's type text), to get past type checks."""
    if "array" in kind:
        return [v for v in JUNK if isinstance(v, list)]
    if "object" in kind:
        return [v for v in JUNK if isinstance(v, dict)]
    if "bool" in kind:
        return [True, False]
    if "num" in kind or "amount" in kind:
        return [v for v in JUNK if isinstance(v, (int, float, Decimal))
                and not isinstance(v, bool)] + (["1", "0.5", "-3"] if "string" in kind else [])
    if "string" in kind:
        return [v for v in JUNK if isinstance(v, str)]
    return JUNK


def fuzz_params(rng: random.Random, name: str, args: list[tuple[str, str]], tmp) -> list | dict:
    """Junk arguments for `name` (its arguments' names and types): positional or named, a
    few more or fewer than it takes, half of them of the right JSON type."""
    arg_names = [a for a, _ in args]
    kinds = [k for _, k in args] + ["any"]
    pick = [rng.choice(of_type(kinds[min(i, len(args))]) if rng.random() < 0.5 else JUNK)
            for i in range(rng.randint(0, len(arg_names) + 1))]
    if rng.random() < 0.05:
        pick.append(rng.choice((deep(30), deep(200), DEEP)))
    if name in PATHS and pick:
        pick[0] = str(tmp / f"out{rng.randrange(1000)}")
    if name.startswith("generate") and pick and isinstance(pick[0], int):
        pick[0] = min(abs(pick[0]), 2)  # keep the chain short
    if name == "keypoolrefill" and pick:
        pick[0] = rng.randrange(0, 20)  # (a size of 2**40 keys is a long, honest job)
    if name == "getblocktemplate":
        pick = pick[:1]  # a long poll would wait for a new block
    if name.startswith("waitfor"):  # timeout (ms, last) 1: 0 or none waits for ever
        pick = (pick + [None] * len(arg_names))[:len(arg_names) - 1] + [1]
    if name == "setmocktime":
        pick = [0]  # (a clock far away would only slow the rest down)
    if not arg_names or name in ("setmocktime", "keypoolrefill") or name.startswith(
            ("waitfor", "generate")) or rng.random() < 0.5:
        return pick
    named = dict(zip(rng.sample(arg_names, min(len(pick), len(arg_names))), pick, strict=False))
    if name in PATHS:
        named.pop(arg_names[0], None)
    if rng.random() < 0.2:
        named[rng.choice(["nonexistent", "args", "", "\ud800"])] = rng.choice(JUNK)
    return named


def http_junk(rng: random.Random, node) -> None:
    """One malformed HTTP request (bytes of every part of a request mutated or wrong)."""
    import base64
    import socket

    user, pw = node.auth()
    auth = rng.choice([base64.b64encode(f"{user}:{pw}".encode()), b"eDp5", b"!!", b""])
    body = rng.choice([b'{"method":"getblockcount"}', b"{", os.urandom(50), b""])
    request = bytearray(rng.choice([b"POST", b"GET", b"PUT", b"\xff\x00", b""]) + b" "
                        + rng.choice([b"/", b"/wallet/", b"/wallet/%zz", b"*", b"/" * 300])
                        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth + b"\r\n"
                        + rng.choice([b"Content-Length: %d\r\n" % len(body),
                                      b"Content-Length: -1\r\n", b"Content-Length: x\r\n",
                                      b"Transfer-Encoding: chunked\r\n", b""])
                        + b"\r\n" + rng.choice([body, b"zz\r\n" + body, b"5\r\nab"]))
    for _ in range(rng.randint(0, 3)):
        request[rng.randrange(len(request))] = rng.randrange(256)
    with socket.create_connection(("127.0.0.1", node.rpcport), timeout=60) as s:
        s.sendall(bytes(request))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):  # (until the node answers and hangs up: never a timeout)
            pass


def no_internal_error(node, method, params, path="/") -> dict:
    payload = {"jsonrpc": "1.0", "method": method, "params": params, "id": 1}
    raw = dumps_bytes(payload).replace(b'"\\u0000deep"', b"[" * 5000 + b"]" * 5000)
    status, reply = node.request(None, path=path, raw=raw)
    assert isinstance(reply, dict), (method, params, status, reply)
    err = reply.get("error")
    assert not err or err["code"] != -32603, (method, params, err)
    TALLY[err["code"] if err else "ok"] = TALLY.get(err["code"] if err else "ok", 0) + 1
    return reply


TALLY: dict = {}


def wait_for_tip(node, tip: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while node.call("getbestblockhash") != tip:
        assert time.time() < deadline, ("not at the tip", node.call("getpeerinfo"))
        time.sleep(0.2)


def test_every_method_with_junk_and_mutated_data(tmp_path):
    print(f"RPC fuzz seed {SEED} (MINIBTC_FUZZ_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    with NodeProcess(tmp_path / "n") as node, NodeProcess(tmp_path / "follower") as follower:
        node.create_wallet()
        mine = node.call("getnewaddress", wallet="default")
        hashes = node.call("generatetoaddress", 110, mine)
        follower.call("addnode", node.p2p_addr, "add")
        wait_for_tip(follower, hashes[-1])
        node.call("sendtoaddress", ADDR, 1, wallet="default")  # a mempool and a wallet tx
        JUNK.extend([hashes[3], mine])
        calls = []
        for name, m in REGISTRY.items():
            calls.append((name, [(a.name, a.type) for a in m.args], "/"))
        for name, m in WALLET_METHODS.items():
            calls.append((name, [(p.name, p.type) for p in m.params], "/wallet/default"))
        calls.sort()
        for name, arg_names, path in calls:
            if name in NEVER or name in LAST:
                continue
            for i in range(ROUNDS):
                where = path
                if path != "/" and i % 6 == 5:  # the only wallet by default, or none
                    where = rng.choice(["/", "/wallet/nonexistent", "/wallet/%ff"])
                no_internal_error(node, name, fuzz_params(rng, name, arg_names, tmp_path),
                                  where)
            assert isinstance(node.call("getblockcount"), int)  # answering throughout
        for name in sorted(LAST):
            for _ in range(4):
                no_internal_error(node, name, fuzz_params(
                    rng, name, [(p.name, p.type) for p in WALLET_METHODS[name].params],
                    tmp_path), "/wallet/default")
        # Mutated versions of a real block and a real transaction.
        block = bytes.fromhex(node.call("getblock", hashes[-1], 0))
        tx = bytes.fromhex(node.call("getblock", hashes[5], 2)["tx"][0]["hex"])
        for _ in range(100):
            for raw, method in ((block, "submitblock"), (tx, "sendrawtransaction"),
                                (tx, "decoderawtransaction"), (tx, "testmempoolaccept")):
                b = bytearray(raw)
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                if rng.random() < 0.3:
                    b = b[: rng.randrange(len(b))]
                arg = [b.hex()] if method != "testmempoolaccept" else [[b.hex()]]
                no_internal_error(node, method, arg)
        # Malformed HTTP, authenticated or not: an answer or a hang-up, one short log line.
        for _ in range(60):
            http_junk(rng, node)
        # The chain still holds (junk calls may have mined, invalidated or reconsidered).
        node.call("reconsiderblock", hashes[3])
        assert node.call("getblockcount") >= 110
        assert node.call("verifychain", 4, 0) is True
        # The follower is in step: what the node mines next reaches it. Junk calls may have
        # switched the network off, banned or dropped it, or moved the mock clock: undone.
        node.call("setmocktime", 0)
        node.call("setnetworkactive", True)
        node.call("clearbanned")
        follower.call("addnode", node.p2p_addr, "onetry")
        wait_for_tip(follower, node.call("generatetoaddress", 3, mine)[-1])
        assert "Traceback" not in (follower.chain_dir / "debug.log").read_text(errors="replace")
        log = (node.chain_dir / "debug.log").read_text(errors="replace")
        print("answers:", dict(sorted(TALLY.items(), key=lambda kv: -kv[1])))
        assert "Traceback" not in log
        assert all(len(line) < 400 for line in log.splitlines() if "aiohttp" in line)
        assert len(log) < 8 << 20, len(log)  # the log rate limit holds
