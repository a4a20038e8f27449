"""Bad RPC input gets Core's error, never an internal one (issue 18 #5)."""

from __future__ import annotations

import json

from tests.functional.framework import NodeProcess


def test_wallet_bad_input_gets_clear_errors(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        n.create_wallet()
        for method, params, code in [
            ("listunspent", [0, 9999, [5]], -3),  # an address that is no string
            ("listsinceblock", ["abc"], -8),  # a short hash
            ("combinepsbt", [[5]], -3),
            # found by the RPC fuzz (each was -32603):
            ("restorewallet", ["w", "x" * 5000], -8),  # a file name too long: no such file
            ("fundrawtransaction", ["01000000000000000000", 5], -3),
            ("listtransactions", ["*", 10, 1.5], -3),  # an integer argument (getInt)
        ]:
            _, reply = n.request({"method": method, "params": params, "id": 1},
                                 path="/wallet/default")
            assert reply["error"]["code"] == code, (method, reply)
        # Any JSON string is a label, one with a lone surrogate (no UTF-8 text) too: it is
        # kept, listed and found, also after the wallet is loaded again.
        _, reply = n.request(None, path="/wallet/default",
                             raw=b'{"method":"getnewaddress","params":["\\ud800"],"id":1}')
        assert reply["error"] is None, reply
        addr = reply["result"]

        def call(method, *params):  # (sent as JSON escapes: the text is no UTF-8)
            _, reply = n.request(None, path="/wallet/default", raw=json.dumps(
                {"method": method, "params": params, "id": 1}).encode())
            assert reply["error"] is None, reply
            return reply["result"]

        for _ in range(2):
            assert "\ud800" in call("listlabels")
            assert addr in call("getaddressesbylabel", "\ud800")
            assert call("getaddressinfo", addr)["labels"] == ["\ud800"]
            n.call("unloadwallet", "default")
            n.call("loadwallet", "default")
        call("setlabel", addr, "x\udfffy")
        assert call("getaddressinfo", addr)["labels"] == ["x\udfffy"]
        assert n.call("getwalletinfo", wallet="default")["walletname"] == "default"
        # Any JSON string is a passphrase, a lone surrogate too (found by the RPC fuzz).
        _, reply = n.request(None, raw=b'{"method":"createwallet","params":{"wallet_name":'
                             b'"enc","passphrase":"\\ud800x"},"id":1}')
        assert reply["error"] is None, reply
        for phrase, error in ((b"\\ud800y", -14), (b"\\ud800x", None)):
            _, reply = n.request(None, path="/wallet/enc", raw=b'{"method":"walletpassphrase",'
                                 b'"params":["' + phrase + b'",60],"id":1}')
            assert (reply["error"] or {}).get("code") == error, reply


def test_malformed_http_is_one_short_log_line(tmp_path):
    import socket
    import time

    with NodeProcess(tmp_path / "n") as n:
        for junk in (b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                     b"\x00\xff" * 100 + b"\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", n.rpcport)) as s:
                s.sendall(junk)
                time.sleep(0.2)
        time.sleep(0.3)
        log = (n.chain_dir / "debug.log").read_text()
        assert "Traceback" not in log
        assert all(len(line) < 400 for line in log.splitlines() if "aiohttp" in line)
        assert n.call("getblockcount") == 0


def _rss_mb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_rpc_request_limits_and_server_timeout(tmp_path):
    """Core's HTTP limits: 8 KiB header lines (400), 32 MiB bodies (413), and
    -rpcservertimeout closes a connection idle, stalled in its headers or in its body."""
    import socket

    with NodeProcess(tmp_path / "n", "-rpcservertimeout=1") as n:
        user, pw = n.auth()
        import base64

        auth = base64.b64encode(f"{user}:{pw}".encode())

        def exchange(data: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", n.rpcport), timeout=60) as s:
                s.sendall(data)
                out = b""
                while chunk := s.recv(65536):  # until the server closes
                    out += chunk
                return out

        # A request line over 8 KiB: 400.
        assert exchange(b"POST /" + b"x" * 10000 + b" HTTP/1.1\r\n\r\n").split(b" ")[1] == b"400"
        # A declared body over 32 MiB: 413, without reading it.
        assert exchange(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth +
                        b"\r\nContent-Length: 33554433\r\n\r\n{").split(b" ")[1] == b"413"
        # Stalled in the headers, in the body, and idle after a reply: closed by the server
        # (recv returns the end of the stream; without the timeout it would wait for ever,
        # and the socket's own 60 s timeout would raise instead).
        assert exchange(b"POST / HTTP/1.1\r\nHost: x\r\n") == b""
        assert exchange(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth +
                        b"\r\nContent-Length: 100\r\n\r\n{\"method\"") == b""
        reply = exchange(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth +
                         b"\r\nContent-Length: 26\r\n\r\n{\"method\":\"getblockcount\"}")
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'"id":null}\n')
        # The timeout is for the client's silence, not the server's work: a call that takes
        # longer (a 3 s wait for a block that does not come) still gets its answer.
        assert n.call("waitfornewblock", 3000)["height"] == 0
        assert n.call("getblockcount") == 0


def test_big_replies_are_bounded_and_memory_returns(tmp_path):
    """A request whose reply would pass MAX_REPLY (a decodescript of 12 MB: its asm is 176
    MB) gets error -7; after a burst of them the node's memory returns near its start."""
    import json
    import threading

    from node.rpc.server import MAX_REPLY

    with NodeProcess(tmp_path / "n") as n:
        # A big reply under the limit is whole (1 MB of OP_CHECKSIG: 12 MB of asm).
        assert len(n.call("decodescript", "ac" * (1 << 20))["asm"]) == 12 * (1 << 20) - 1
        start = _rss_mb(n.proc.pid)
        body = json.dumps({"method": "decodescript", "params": ["ac" * (12 << 20)],
                           "id": 7}).encode()
        replies = []

        def one():
            replies.append(n.request(None, raw=body))

        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(replies) == 3
        for status, reply in replies:
            assert status == 500 and reply["error"]["code"] == -7, (status, reply)
            assert str(MAX_REPLY) in reply["error"]["message"] and reply["id"] == 7
        assert n.call("getblockcount") == 0
        import time

        time.sleep(2)  # (the trim runs half a second after the last big request)
        after = _rss_mb(n.proc.pid)
        print(f"RSS {start} MB before the burst, {after} MB after")
        assert after < start + 150, (start, after)


def test_huge_json_numbers_are_refused_before_conversion(tmp_path):
    """A 12-byte number such as 1E+1000000 is 'JSON integer out of range' at once: converted
    to an int first, it held the GIL for half a minute (setmocktime, mockscheduler,
    deriveaddresses' range) and then got a range error of its own."""
    with NodeProcess(tmp_path / "n") as n:
        for method, params in [("setmocktime", "[1E+1000000]"),
                               ("mockscheduler", "[1E+1000000]"),
                               ("deriveaddresses", '["raw(00)", 1E+1000000]'),
                               ("getblockhash", "[-1E+1000000]")]:
            _, reply = n.request(None, raw=f'{{"method":"{method}","params":{params},'
                                           f'"id":1}}'.encode())
            assert reply["error"] == {"code": -3, "message": "JSON integer out of range"}, (
                method, reply)
        assert n.call("getblockcount") == 0
