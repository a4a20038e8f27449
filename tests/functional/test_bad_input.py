"""Bad RPC input gets Core's error, never an internal one (issue 18 #5)."""

from __future__ import annotations

from tests.functional.framework import NodeProcess


def test_wallet_bad_input_gets_clear_errors(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        n.create_wallet()
        for method, params, code in [
            ("listunspent", [0, 9999, [5]], -3),  # an address that is no string
            ("listsinceblock", ["abc"], -8),  # a short hash
            ("combinepsbt", [[5]], -3),
        ]:
            _, reply = n.request({"method": method, "params": params, "id": 1},
                                 path="/wallet/default")
            assert reply["error"]["code"] == code, (method, reply)
        _, reply = n.request(None, path="/wallet/default",
                             raw=b'{"method":"getnewaddress","params":["\\ud800"],"id":1}')
        assert reply["error"]["code"] == -11  # a label that is no Unicode text
        assert n.call("getwalletinfo", wallet="default")["walletname"] == "default"


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
