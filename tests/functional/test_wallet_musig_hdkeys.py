"""musig() descriptors, unused(KEY) and gethdkeys against a real minibtcd, as Bitcoin Core's
wallet_importdescriptors.py and wallet_listdescriptors.py use them: the import warnings of a
musig() key with some participant keys missing, private listing of musig() descriptors, a
watch-only wallet that derives musig() addresses and sees a payment to one, and gethdkeys
with unused() imports and Core's errors."""

from __future__ import annotations

import secrets

import pytest

from consensus.params import CHAINS
from tests.functional.framework import funded_wallet_node, rpc_error
from wallet.bip32 import ExtKey
from wallet.descriptors import add_checksum, parse_descriptor

REGTEST = CHAINS["regtest"]
MISSING = "Not all private keys provided. Some wallet functionality may return unexpected errors"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with funded_wallet_node(tmp_path_factory.mktemp("musig") / "n", "-keypool=1", blocks=101) as n:
        yield n


def _master() -> ExtKey:
    return ExtKey.from_seed(secrets.token_bytes(32))


_err = rpc_error


def test_musig_import_warnings(node):
    node.call("createwallet", "mw", False, True, wallet=None)  # blank
    a, b = _master(), _master()
    xa, xb = a.serialize(REGTEST), b.derive_path("84h/1h/0h")
    xb_prv, xb_pub = xb.serialize(REGTEST), xb.neuter().serialize(REGTEST)
    res = node.call("importdescriptors", [
        {"desc": add_checksum(f"rawtr(musig({xa}/84h/1h/0h/0,{xb_prv}/1))"), "timestamp": "now"},
        {"desc": add_checksum(f"rawtr(musig({xa}/84h/1h/0h/2,{xb_pub}/3))"), "timestamp": "now"},
        {"desc": add_checksum(f"rawtr(musig({xa}/84h/1h/0h,{xb_prv})/0/*)"), "timestamp": "now",
         "range": [0, 1]},
        {"desc": add_checksum(f"rawtr(musig({xa}/84h/1h/0h,{xb_pub})/1/*)"), "timestamp": "now",
         "range": [0, 1]},
    ], wallet="mw")
    assert res == [{"success": True}, {"success": True, "warnings": [MISSING]},
                   {"success": True}, {"success": True, "warnings": [MISSING]}]
    # the public forms are normalized: the hardened steps of a participant go to its origin
    public = [d["desc"] for d in node.call("listdescriptors", wallet="mw")["descriptors"]]
    assert all(f"[{a.fingerprint.hex()}/84h/1h/0h]tpub" in d for d in public)
    private = [d["desc"] for d in node.call("listdescriptors", True, wallet="mw")["descriptors"]]
    assert add_checksum(f"rawtr(musig({xa}/84h/1h/0h,{xb_pub})/1/*)") in private


def test_musig_watch_only_derives_and_watches(node):
    a, b = _master(), _master()
    pubs = [k.neuter().serialize(REGTEST) for k in (a, b)]
    text = add_checksum(f"tr(musig({pubs[0]},{pubs[1]})/0/*)")
    info = node.call("getdescriptorinfo", text)
    assert info["isrange"] and not info["hasprivatekeys"]
    want = node.call("deriveaddresses", text, [0, 2])
    assert len(set(want)) == 3 and all(x.startswith("bcrt1p") for x in want)
    node.call("createwallet", "watch", True, True)  # private keys disabled, blank
    res = node.call("importdescriptors", [{"desc": text, "timestamp": "now", "active": True,
                                           "range": [0, 5], "next_index": 0}], wallet="watch")
    assert res == [{"success": True}]
    assert node.call("getnewaddress", "", "bech32m", wallet="watch") == want[0]
    node.call("sendtoaddress", want[1], 1.5, wallet="w")
    node.call("generatetoaddress", 1, want[2])
    utxos = node.call("listunspent", wallet="watch")
    assert sorted((u["address"], float(u["amount"])) for u in utxos)[0] == (want[1], 1.5)
    listed = node.call("listdescriptors", wallet="watch")["descriptors"]
    assert [d["desc"] for d in listed] == [text]
    info = node.call("getaddressinfo", want[1], wallet="watch")
    assert info["ismine"] and info["solvable"] and info["desc"].startswith("tr(")
    # a PSBT spending it is made, and stays unsigned (no MuSig2 signing sessions here)
    psbt = node.call("walletcreatefundedpsbt", [], [{want[0]: 1}], 0, {"changeAddress": want[2]},
                     wallet="watch")
    done = node.call("walletprocesspsbt", psbt["psbt"], wallet="watch")
    assert done["complete"] is False
    # a wallet with private keys refuses a musig() descriptor with none of them
    res = node.call("importdescriptors", [{"desc": text, "timestamp": "now"}], wallet="w")
    assert res[0]["error"] == {"code": -4, "message": "Cannot import descriptor without "
                               "private keys to a wallet with private keys enabled"}


def test_gethdkeys_default_wallet(node):
    node.call("createwallet", "hd")
    keys = node.call("gethdkeys", wallet="hd")
    assert len(keys) == 1 and keys[0]["has_private"] and "xprv" not in keys[0]
    assert len(keys[0]["descriptors"]) == 8
    assert all(d["active"] for d in keys[0]["descriptors"])
    priv = node.call("gethdkeys", wallet="hd", private=True)
    xprv = ExtKey.deserialize(priv[0]["xprv"], REGTEST)
    assert xprv.depth == 0 and xprv.neuter().serialize(REGTEST) == keys[0]["xpub"]
    # the descriptors listed are the public ones listdescriptors shows
    listed = {d["desc"] for d in node.call("listdescriptors", wallet="hd")["descriptors"]}
    assert {d["desc"] for d in keys[0]["descriptors"]} == listed
    assert node.call("gethdkeys", {"active_only": True}, wallet="hd") == keys
    code, msg = _err(node.call, "gethdkeys", {"private": 1}, wallet="hd")
    assert code == -3
    # an unused() descriptor of a key the wallet already has is refused
    res = node.call("importdescriptors", [{"desc": add_checksum(f"unused({priv[0]['xprv']})"),
                                           "timestamp": "now"}], wallet="hd")
    assert res[0]["error"] == {"code": -4, "message": "Cannot import an unused() descriptor "
                                                      "when its private key is already in the "
                                                      "wallet"}


def test_unused_import_and_gethdkeys(node):
    node.call("createwallet", "un", False, True)  # blank
    assert node.call("gethdkeys", wallet="un") == []
    m = _master()
    xprv, xpub = m.serialize(REGTEST), m.neuter().serialize(REGTEST)
    res = node.call("importdescriptors", [{"desc": add_checksum(f"unused({xpub})"),
                                           "timestamp": "now"}], wallet="un")
    assert res[0]["error"] == {"code": -4, "message": "Cannot import descriptor without "
                               "private keys to a wallet with private keys enabled"}
    res = node.call("importdescriptors", [{"desc": add_checksum(f"unused({xprv})"),
                                           "timestamp": "now"}], wallet="un")
    assert res == [{"success": True}]
    keys = node.call("gethdkeys", wallet="un", private=True)
    assert [(k["xpub"], k["xprv"], k["has_private"]) for k in keys] == [(xpub, xprv, True)]
    assert keys[0]["descriptors"] == [{"desc": parse_descriptor(f"unused({xpub})", REGTEST)
                                       .to_string(), "active": False}]
    assert node.call("gethdkeys", wallet="un", active_only=True) == []
    node.call("createwallet", "unw", True)  # private keys disabled
    res = node.call("importdescriptors", [{"desc": add_checksum(f"unused({xpub})"),
                                           "timestamp": "now"}], wallet="unw")
    assert res[0]["error"] == {"code": -4, "message": "Cannot import unused() to wallet "
                                                      "without private keys enabled"}


def test_gethdkeys_lone_keys_and_multisig(node):
    node.call("createwallet", "lone", False, True)  # blank
    wif = "cTe1f5rdT8A8DFgVWTjyPwACsDPJM9ff4QngFxUixCSvvbg1x6sh"
    node.call("importdescriptors", [{"desc": add_checksum(f"wpkh({wif})"), "timestamp": "now"}],
              wallet="lone")
    assert node.call("gethdkeys", wallet="lone") == []  # a lone key is no HD key
    other = node.call("gethdkeys", wallet="w", private=True)[0]
    res = node.call("importdescriptors", [{"desc": add_checksum(f"wpkh({other['xprv']})"),
                                           "timestamp": "now"}], wallet="lone")
    assert res == [{"success": True}]
    assert node.call("gethdkeys", wallet="lone") == [{
        "xpub": other["xpub"], "has_private": True,
        "descriptors": [{"desc": add_checksum(f"wpkh({other['xpub']})"), "active": False}]}]
    # both extended keys of a multisig are listed, the other wallet's without its private key
    node.call("createwallet", "ms")
    mine = node.call("gethdkeys", wallet="ms", private=True)[0]
    theirs = node.call("createwallet", "ms2") and node.call("gethdkeys", wallet="ms2")[0]["xpub"]
    text = f"wsh(multi(2,{mine['xprv']}/*,{theirs}/*))"
    node.call("importdescriptors", [{"desc": add_checksum(text), "timestamp": "now"}],
              wallet="ms")
    keys = {k["xpub"]: k for k in node.call("gethdkeys", wallet="ms")}
    public = add_checksum(f"wsh(multi(2,{mine['xpub']}/*,{theirs}/*))")
    assert keys[theirs]["has_private"] is False
    assert keys[theirs]["descriptors"] == [{"desc": public, "active": False}]
    assert {"desc": public, "active": False} in keys[mine["xpub"]]["descriptors"]
    assert keys[mine["xpub"]]["has_private"] is True
