"""The wallet's RPC layer without a node: argument binding as Core's (positional, named,
bitcoin-cli's "args"), type errors, exact BTC amounts in and out, and wallet resolution."""

from decimal import Decimal

import pytest

from consensus.params import REGTEST
from wallet.amounts import format_btc, parse_btc, parse_fee_rate_sat_vb, to_btc
from wallet.errors import WalletError
from wallet.jsonrpc import dumps, loads
from wallet.nodeclient import NodeClient
from wallet.rpc import METHODS, json_arg_table
from wallet.service import WalletManager


def test_bind_positional_named_and_args():
    m = METHODS["sendtoaddress"]
    pos = m.bind(["bcrt1qxyz", "0.5"])
    assert pos[:2] == ["bcrt1qxyz", "0.5"] and pos[4] is False and pos[5] is True
    named = m.bind({"address": "a", "amount": 1, "fee_rate": 3})
    assert named[0] == "a" and named[9] == 3
    mixed = m.bind({"args": ["a", 1], "replaceable": False})
    assert mixed[:2] == ["a", 1] and mixed[5] is False
    with pytest.raises(WalletError, match="specified twice"):
        m.bind({"args": ["a"], "address": "b", "amount": 1})
    with pytest.raises(WalletError) as e:
        m.bind({"address": "a", "amount": 1, "nosuch": 1})
    assert e.value.code == -8
    with pytest.raises(WalletError) as e:
        m.bind(["a"])
    assert e.value.code == -1 and "amount" in e.value.message
    with pytest.raises(WalletError) as e:
        m.bind(["a", 1, None, None, "yes"])
    assert e.value.code == -3 and "subtractfeefromamount" in e.value.message
    with pytest.raises(WalletError):
        m.bind(["a"] * 20)


def test_amounts_exact():
    assert parse_btc("0.00000001") == 1 and parse_btc(Decimal("21000000")) == 21_000_000 * 10**8
    for bad in ("0.000000001", "-1", "21000000.00000001", "abc", True, None):
        with pytest.raises(WalletError):
            parse_btc(bad)
    with pytest.raises(WalletError, match="Invalid amount for send"):
        parse_btc(0, allow_zero=False)
    assert f"{to_btc(0):f}" == "0.00000000" and f"{to_btc(-1):f}" == "-0.00000001"
    assert dumps([to_btc(0)]) == "[0.00000000]"
    assert format_btc(123456789) == "1.23456789"
    assert parse_fee_rate_sat_vb("2.5") == 2500
    with pytest.raises(WalletError):
        parse_fee_rate_sat_vb("0.0001")  # below 1 sat/kvB resolution
    text = dumps({"a": to_btc(5_000_000_000), "b": [to_btc(1)], "s": '"\x00x:1"'})
    assert '"a": 50.00000000' in text and "[0.00000001]" in text
    assert loads(text)["a"] == Decimal("50.00000000")


def test_cli_table_lists_non_string_arguments():
    t = json_arg_table()
    assert (1, "amount") in t["sendtoaddress"] and (9, "fee_rate") in t["sendtoaddress"]
    assert all(name != "address" for _, name in t["sendtoaddress"])
    assert "walletlock" not in t  # no arguments


def test_wallet_resolution(tmp_path):
    m = WalletManager(tmp_path, REGTEST, NodeClient("http://127.0.0.1:1"))
    with pytest.raises(WalletError) as e:
        m.call(None, "getnewaddress")
    assert e.value.code == -18 and "No wallet is loaded" in e.value.message
    with pytest.raises(WalletError) as e:
        m.call(None, "nosuchmethod")
    assert e.value.code == -32601
    with pytest.raises(WalletError) as e:
        m.call(None, "createwallet", ["../escape"])
    assert e.value.code == -8
    # creating needs the node (the wallet's birthday): a dead node is named in the error
    with pytest.raises(WalletError) as e:
        m.call(None, "createwallet", ["a"])
    assert e.value.code == -9 and "http://127.0.0.1:1/" in e.value.message
    assert not (tmp_path / "a").exists()
    # a restore from genesis needs no node to start
    words = "abandon " * 11 + "about"
    m.call(None, "createwallet", {"wallet_name": "r", "mnemonic": words})
    assert m.call(None, "getnewaddress", ["", "bech32"]).startswith("bcrt1q")
    assert m.call("r", "listwallets") == ["r"]
    with pytest.raises(WalletError) as e:
        m.call(None, "getbalances")  # needs the chain: the node is unreachable
    assert e.value.code == -9
    with pytest.raises(WalletError) as e:
        m.call(None, "loadwallet", ["r"])
    assert e.value.code == -35
    m.close()
