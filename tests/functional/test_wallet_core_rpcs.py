"""The wallet's Core methods as Bitcoin Core's functional tests use them, against a real
minibtcd with -keypool=1 (as Core's test framework runs it): the keypool (a window that
getnewaddress tops up, -12 when hardened steps cannot be derived while locked,
keypoolrefill), importdescriptors' checks, listreceivedby*/getreceivedby*, signmessage,
fundrawtransaction and signrawtransactionwithwallet, data outputs, sendmany's
subtract-fee-from-outputs, listsinceblock's errors, a transaction the mempool refuses kept
out of it (nonmempool), and the rejection of too long unconfirmed chains.

One node for the module; the tests run in order on a shared chain."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from consensus.params import CHAINS
from tests.functional.framework import funded_wallet_node, rpc_error
from wallet.bip32 import ExtKey
from wallet.descriptors import add_checksum

REGTEST = CHAINS["regtest"]
ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with funded_wallet_node(tmp_path_factory.mktemp("corerpc") / "n", "-keypool=1") as n:
        yield n


_err = rpc_error


def _xprv() -> str:
    return ExtKey.from_seed(secrets.token_bytes(32)).serialize(REGTEST)


def test_keypool_window_and_refill(node):
    node.call("createwallet", "kp")
    # with -keypool=1 each active descriptor holds one script ahead
    descs = node.call("listdescriptors", wallet="kp")["descriptors"]
    assert all(d["range"] == [0, 0] and d["next_index"] == 0 for d in descs)
    node.call("encryptwallet", "pw", wallet="kp")
    node.call("walletpassphrase", "pw", 30, wallet="kp")
    res = node.call("importdescriptors", [{
        "desc": add_checksum(f"wpkh({_xprv()}/0h/*h)"), "timestamp": "now", "range": [0, 0],
        "active": True}], wallet="kp")
    assert res == [{"success": True}]
    node.call("walletlock", wallet="kp")
    node.call("getnewaddress", wallet="kp")  # the one derived while unlocked
    code, msg = _err(node.call, "getnewaddress", wallet="kp")
    assert code == -12 and msg == "Error: Keypool ran out, please call keypoolrefill first"
    assert _err(node.call, "keypoolrefill", 3, wallet="kp")[0] == -13
    node.call("walletpassphrase", "pw", 30, wallet="kp")
    node.call("keypoolrefill", 3, wallet="kp")
    info = node.call("getwalletinfo", wallet="kp")
    assert info["keypoolsize"] == 4 * 3 and info["keypoolsize_hd_internal"] == 4 * 3
    node.call("walletlock", wallet="kp")
    for _ in range(3):  # hardened scripts derived while unlocked are kept for the lock
        node.call("getnewaddress", wallet="kp")
    assert _err(node.call, "getnewaddress", wallet="kp")[0] == -12


def test_importdescriptors_checks_as_core(node):
    node.call("createwallet", "imp", True, True)  # watch-only, blank
    imp = {"wallet": "imp"}
    pub = ExtKey.from_seed(secrets.token_bytes(32)).neuter().serialize(REGTEST)
    res = node.call("importdescriptors", [
        {"timestamp": "now"},
        {"desc": add_checksum(f"wpkh({pub}/0/*)"), "timestamp": "now", "label": "x"},
        {"desc": add_checksum(f"wpkh({pub}/1/*)"), "timestamp": "now", "range": [2, 1]},
        {"desc": add_checksum(f"wpkh({pub}/0h/*)"), "timestamp": "now"},
        {"desc": add_checksum(f"wpkh({_xprv()}/*)"), "timestamp": "now"},
        {"desc": add_checksum(f"wpkh({pub}/2/*)"), "timestamp": "now", "range": [5, 10],
         "active": True},
    ], **imp)
    errors = [(r.get("error") or {}).get("code") for r in res]
    assert errors == [-8, -8, -8, -4, -4, None]
    assert res[0]["error"]["message"] == "Descriptor not found."
    assert res[1]["error"]["message"] == "Ranged descriptors should not have a label"
    assert res[1]["warnings"] == ["Range not given, using default keypool range"]
    assert node.call("getwalletinfo", **imp)["keypoolsize"] == 6
    shrink = node.call("importdescriptors", [{
        "desc": add_checksum(f"wpkh({pub}/2/*)"), "timestamp": "now", "range": [6, 10],
        "active": True}], **imp)[0]
    assert shrink["error"]["message"].endswith("new range must include current range = [5,10]")
    code, msg = _err(node.call, "importdescriptors", [{"desc": "x"}], **imp)
    assert (code, msg) == (-3, "Missing required timestamp field for key")
    # keypoolrefill works on a watch-only descriptor wallet
    node.call("keypoolrefill", 20, **imp)
    assert node.call("getwalletinfo", **imp)["keypoolsize"] == 20
    # listdescriptors shows an xprv descriptor with hardened steps in its importable form
    node.call("createwallet", "norm", False, True)
    xprv = _xprv()
    node.call("importdescriptors", [{"desc": add_checksum(f"wpkh({xprv}/84h/1h/0h/0/*)"),
                                     "timestamp": 1}], wallet="norm")
    listed = node.call("listdescriptors", wallet="norm")["descriptors"][0]["desc"]
    assert listed.startswith("wpkh([") and "/84h/1h/0h]tpub" in listed
    assert node.call("listdescriptors", True, wallet="norm")["descriptors"][0]["desc"] == \
        add_checksum(f"wpkh({xprv}/84h/1h/0h/0/*)")


def test_received_by_address_and_label(node):
    node.call("createwallet", "recv")
    addr = node.call("getnewaddress", "lbl", wallet="recv")
    empty = node.call("getnewaddress", wallet="recv")
    txid = node.call("sendtoaddress", addr, Decimal("0.5"), wallet="w")
    assert node.call("getreceivedbyaddress", addr, wallet="recv") == 0
    assert node.call("getreceivedbyaddress", addr, 0, wallet="recv") == Decimal("0.5")
    node.call("generatetoaddress", 2, ELSEWHERE)
    rows = node.call("listreceivedbyaddress", wallet="recv")
    assert rows == [{"address": addr, "amount": Decimal("0.5"), "confirmations": 2,
                     "label": "lbl", "txids": [txid]}]
    with_empty = node.call("listreceivedbyaddress", 0, True, wallet="recv")
    assert {r["address"] for r in with_empty} == {addr, empty}
    assert node.call("listreceivedbyaddress", 0, True, True, addr, wallet="recv") == rows
    assert _err(node.call, "listreceivedbyaddress", 0, True, True, "bamboozling",
                wallet="recv") == (-4, "address_filter parameter was invalid")
    by_label = node.call("listreceivedbylabel", 0, True, wallet="recv")
    assert {r["label"]: r["amount"] for r in by_label} == {"lbl": Decimal("0.5"), "": 0}
    assert node.call("getreceivedbylabel", "lbl", wallet="recv") == Decimal("0.5")
    assert _err(node.call, "getreceivedbylabel", "nope", wallet="recv") == \
        (-4, "Label not found in wallet")
    assert _err(node.call, "getreceivedbyaddress", "nope", wallet="recv")[0] == -5


def test_labels_by_purpose(node):
    """Core's address book: the wallet's own labelled addresses have purpose "receive", a label
    given to someone else's address "send"; getaddressesbylabel and listlabels by purpose."""
    w = dict(wallet="w")
    mine = node.call("getnewaddress", "shop", **w)
    node.call("setlabel", ELSEWHERE, "shop", **w)
    assert node.call("getaddressesbylabel", "shop", **w) == {
        mine: {"purpose": "receive"}, ELSEWHERE: {"purpose": "send"}}
    assert "shop" in node.call("listlabels", "receive", **w)
    assert "shop" in node.call("listlabels", "send", **w)
    only_mine = node.call("getnewaddress", "till", **w)
    assert "till" not in node.call("listlabels", "send", **w)
    assert node.call("getaddressesbylabel", "till", **w) == {only_mine: {"purpose": "receive"}}
    assert _err(node.call, "getaddressesbylabel", "nobody", **w) == (
        -11, "No addresses with label nobody")
    assert _err(node.call, "getaddressesbylabel", "*", **w) == (-11, "Invalid label name")
    assert _err(node.call, "setlabel", mine, "*", **w) == (-11, "Invalid label name")
    assert _err(node.call, "listlabels", "spend", **w) == (
        -8, "Invalid 'purpose' argument, must be a known purpose string, typically 'send', "
        "or 'receive'.")


def test_signmessage(node):
    addr = node.call("getnewaddress", "", "legacy", wallet="w")
    sig = node.call("signmessage", addr, "hello", wallet="w")
    assert node.call("verifymessage", addr, sig, "hello") is True
    seg = node.call("getnewaddress", wallet="w")
    assert _err(node.call, "signmessage", seg, "hello", wallet="w") == \
        (-3, "Address does not refer to key")


def test_fund_and_sign_raw_transactions(node):
    dest = node.call("getnewaddress", wallet="recv")
    raw = node.call("createrawtransaction", [], [{dest: 1}, {"data": "aa"}])
    funded = node.call("fundrawtransaction", raw, {"changePosition": 2}, wallet="w")
    assert funded["changepos"] == 2 and funded["fee"] > 0
    decoded = node.call("decoderawtransaction", funded["hex"])
    assert decoded["vout"][0]["scriptPubKey"]["address"] == dest
    assert decoded["vout"][1]["scriptPubKey"]["hex"] == "6a01aa"
    signed = node.call("signrawtransactionwithwallet", funded["hex"], wallet="w")
    assert signed["complete"] is True and "errors" not in signed
    txid = node.call("sendrawtransaction", signed["hex"])
    assert txid in node.call("getrawmempool")
    code, msg = _err(node.call, "fundrawtransaction", raw, {"changePosition": 3}, wallet="w")
    assert (code, msg) == (-8, "changePosition out of bounds")
    assert _err(node.call, "fundrawtransaction", raw, {"foo": 1}, wallet="w") == \
        (-3, "Unexpected key foo")


def test_send_options_as_core(node):
    dest = node.call("getnewaddress", wallet="recv")
    res = node.call("send", [{"data": "bb"}], wallet="w")
    assert res["complete"]
    code, msg = _err(node.call, "send", {dest: 1}, 6, "conservative", 1, {"feeRate": 0.01},
                     wallet="w")
    assert (code, msg) == (-8, "Use fee_rate (sat/vB) instead of feeRate")
    code, msg = _err(node.call, "send", {dest: 1}, None, None, None,
                     {"conf_target": 0, "estimate_mode": "economical"}, wallet="w")
    assert (code, msg) == (-8, "Invalid conf_target, must be between 1 and 1008")
    code, msg = _err(node.call, "send", {dest: 1}, None, None, True, wallet="w")
    assert (code, msg) == (-3, "Amount is not a number or string")
    code, msg = _err(node.call, "send", {dest: 1}, None, None, "0.999", wallet="w")
    assert (code, msg) == (-4, "Fee rate (0.999 sat/vB) is lower than the minimum fee rate "
                           "setting (1.000 sat/vB)")
    a1 = node.call("getnewaddress", wallet="recv")
    a2 = node.call("getnewaddress", wallet="recv")
    code, msg = _err(node.call, "sendmany", "", {a1: 1, a2: 1}, None, None, [a1, a1],
                     wallet="w")
    assert (code, msg) == (-8, "Invalid parameter 'subtract fee from output', duplicated "
                           "position: 0")
    node.call("sendmany", "", {a1: 1, a2: 1}, None, None, [0, a2], wallet="w")


def test_listsinceblock_errors_and_change(node):
    assert _err(node.call, "listsinceblock", "invalid-hex", wallet="w") == \
        (-8, "blockhash must be of length 64 (not 11, for 'invalid-hex')")
    assert _err(node.call, "listsinceblock", "00" * 32, wallet="w") == (-5, "Block not found")
    tip = node.call("getbestblockhash")
    assert _err(node.call, "listsinceblock", tip, 0, wallet="w")[0] == -8
    change = node.call("getrawchangeaddress", wallet="w")
    node.call("sendtoaddress", change, 1, wallet="w")
    plain = node.call("listsinceblock", tip, wallet="w")["transactions"]
    assert change not in [t.get("address") for t in plain]
    withchange = node.call("listsinceblock", tip, 1, True, True, True, wallet="w")
    assert change in [t.get("address") for t in withchange["transactions"]]
    node.call("generatetoaddress", 1, ELSEWHERE)


def test_refused_transaction_is_kept_out_of_the_mempool(node):
    height = node.call("getblockcount")
    dest = node.call("getnewaddress", wallet="recv")
    res = node.call("send", {dest: 1}, None, None, None, {"locktime": height + 5}, wallet="w")
    assert res["complete"] and res["txid"] not in node.call("getrawmempool")
    tx = node.call("gettransaction", res["txid"], wallet="w")
    assert tx["confirmations"] == 0 and tx["trusted"] is False
    assert node.call("getbalances", wallet="w")["mine"]["nonmempool"] < 0
    node.call("abandontransaction", res["txid"], wallet="w")
    assert node.call("getbalances", wallet="w")["mine"]["nonmempool"] == 0


def test_long_unconfirmed_chain_rejected(node):
    node.call("createwallet", "chain")
    first = node.call("send", [{node.call("getnewaddress", wallet="chain"): 30}],
                      None, None, None, {"change_position": 0}, wallet="w")
    txid, vout = first["txid"], 1
    for i in range(1, 25):
        res = node.call("send", [{node.call("getnewaddress", wallet="chain"): 30 - i}],
                        None, None, None, {"change_position": 0, "add_inputs": False,
                                           "inputs": [{"txid": txid, "vout": vout}]},
                        wallet="chain")
        txid = res["txid"]
    code, msg = _err(node.call, "send", [{node.call("getnewaddress", wallet="chain"): 0.3}],
                     None, None, None, {"include_unsafe": True}, wallet="chain")
    assert (code, msg) == (-4, "Unconfirmed UTXOs are available, but spending them creates a "
                           "chain of transactions that will be rejected by the mempool")
    node.call("generatetoaddress", 1, ELSEWHERE)


def test_external_input_needs_solving_data(node):
    from wallet.address import encode_wif

    wif = encode_wif(secrets.token_bytes(32), REGTEST)
    node.call("createwallet", "ext")
    desc = add_checksum(f"sh(wsh(pkh({wif})))")
    assert node.call("importdescriptors", [{"desc": desc, "timestamp": "now"}],
                     wallet="ext")[0]["success"]
    addr = node.call("deriveaddresses", desc)[0]
    node.call("sendtoaddress", addr, 10, wallet="w")
    node.call("generatetoaddress", 1, ELSEWHERE)
    utxo = node.call("listunspent", 1, 9999999, [addr], wallet="ext")[0]
    dest = node.call("getnewaddress", wallet="recv")
    code, msg = _err(node.call, "send", {dest: 15}, None, None, None,
                     {"inputs": [utxo], "add_inputs": True, "psbt": True}, wallet="w")
    assert (code, msg) == (-4, f"Not solvable pre-selected input COutPoint("
                           f"{utxo['txid'][:10]}, {utxo['vout']})")
    res = node.call("send", {dest: 15}, None, None, None,
                    {"inputs": [utxo], "add_inputs": True, "psbt": True,
                     "solving_data": {"descriptors": [desc]}}, wallet="w")
    assert res["complete"] is False
    signed = node.call("walletprocesspsbt", res["psbt"], wallet="ext")
    assert signed["complete"] is True
    assert node.call("testmempoolaccept", [signed["hex"]])[0]["allowed"] is True
    info = node.call("getaddressinfo", addr, wallet="ext")
    assert info["script"] == "witness_v0_scripthash"
    assert info["embedded"]["script"] == "pubkeyhash" and "pubkey" in info


def test_multipath_and_multisig_descriptors_active(node):
    node.call("createwallet", "mp", False, True)
    xprv = _xprv()
    res = node.call("importdescriptors", [{"desc": add_checksum(f"wpkh({xprv}/<0;1>/*)"),
                                           "active": True, "range": 5, "timestamp": "now"}],
                    wallet="mp")
    assert res == [{"success": True}]
    listed = node.call("listdescriptors", wallet="mp")["descriptors"]
    assert sorted(d["internal"] for d in listed) == [False, True]
    receive = node.call("getnewaddress", wallet="mp")
    change = node.call("getrawchangeaddress", wallet="mp")
    assert node.call("getaddressinfo", receive, wallet="mp")["hdkeypath"] == "m/0/0"
    assert node.call("getaddressinfo", change, wallet="mp")["hdkeypath"] == "m/1/0"
    # a multisig descriptor can be active (its output type is bech32), and is signed for
    node.call("createwallet", "ms", False, True)
    keys = [_xprv() for _ in range(3)]
    multi = add_checksum(f"wsh(multi(2,{keys[0]}/0/*,{keys[1]}/0/*,{keys[2]}/0/*))")
    change_multi = add_checksum(f"wsh(multi(2,{keys[0]}/1/*,{keys[1]}/1/*,{keys[2]}/1/*))")
    assert node.call("importdescriptors", [
        {"desc": multi, "active": True, "range": 10, "timestamp": "now"},
        {"desc": change_multi, "active": True, "internal": True, "range": 10,
         "timestamp": "now"}], wallet="ms") == [{"success": True}, {"success": True}]
    addr = node.call("getnewaddress", "", "bech32", wallet="ms")
    assert addr == node.call("deriveaddresses", multi, [0, 0])[0]
    node.call("sendtoaddress", addr, 5, wallet="w")
    node.call("generatetoaddress", 1, ELSEWHERE)
    txid = node.call("sendtoaddress", ELSEWHERE, 1, wallet="ms")
    decoded = node.call("gettransaction", txid, True, True, wallet="ms")["decoded"]
    assert len(decoded["vin"][0]["txinwitness"]) == 4  # empty, two signatures, the script
    # an older() value no relative lock time can enforce is imported with Core's warning
    pub = ExtKey.from_seed(secrets.token_bytes(32)).neuter().serialize(REGTEST)
    node.call("createwallet", "older", True, True)
    res = node.call("importdescriptors", [{
        "desc": add_checksum(f"wsh(and_v(v:pk({pub}/*),older(65536)))"), "range": [0, 2],
        "timestamp": "now"}], wallet="older")[0]
    assert res["warnings"] == ["height-based relative locktime: older(65536) > 65535 blocks "
                               "is unsafe"]
    node.call("generatetoaddress", 1, ELSEWHERE)
