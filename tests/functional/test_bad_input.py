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
