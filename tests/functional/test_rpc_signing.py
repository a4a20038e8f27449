"""Signing without a wallet, as Core: signrawtransactionwithkey (coins from the chain or given
as prevtxs, P2PKH, multisig in P2SH-P2WSH signed in two passes, pay-to-anchor), createmultisig,
signmessagewithprivkey / verifymessage; and the raw transaction RPCs' errors as Core words
them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.hashes import hash160
from consensus.params import REGTEST
from consensus.script.standard import p2pkh_script, p2wpkh_script
from tests.functional.framework import NodeProcess, RPCFailure
from wallet.address import encode_wif, script_to_address
from wallet.keys import pubkey_from_secret

SECRETS = [bytes([i]) * 32 for i in (1, 2, 3)]
WIFS = [encode_wif(s, REGTEST) for s in SECRETS]
PUBS = [pubkey_from_secret(s) for s in SECRETS]
ADDR0 = script_to_address(p2pkh_script(hash160(PUBS[0])), REGTEST)
OTHER = script_to_address(p2wpkh_script(b"\x33" * 20), REGTEST)


def fails(code: int, text: str, node: NodeProcess, method: str, *params, **named) -> None:
    with pytest.raises(RPCFailure) as err:
        node.call(method, *params, **named)
    assert err.value.code == code and text in err.value.message, err.value.message


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("sign") / "n")
    n.start()
    n.call("generatetoaddress", 110, ADDR0)
    yield n
    n.stop()


def coinbase(node: NodeProcess, height: int) -> dict:
    block = node.call("getblock", node.call("getblockhash", height), 2)
    return block["tx"][0]


def test_sign_coin_from_the_chain_and_send(node):
    cb = coinbase(node, 1)
    raw = node.call("createrawtransaction", [{"txid": cb["txid"], "vout": 0}],
                    {OTHER: Decimal("49.999")})
    unsigned = node.call("signrawtransactionwithkey", raw, [WIFS[1]])
    assert unsigned["complete"] is False
    [err] = unsigned["errors"]
    assert err["txid"] == cb["txid"] and err["vout"] == 0
    assert err["error"] == "Unable to sign input, invalid stack size (possibly missing key)"
    signed = node.call("signrawtransactionwithkey", raw, [WIFS[0]])
    assert signed["complete"] is True and "errors" not in signed
    assert node.call("sendrawtransaction", signed["hex"]) == node.call(
        "decoderawtransaction", signed["hex"])["txid"]
    # An input not found anywhere.
    missing = node.call("createrawtransaction", [{"txid": "ab" * 32, "vout": 1}], {OTHER: 1})
    res = node.call("signrawtransactionwithkey", missing, [WIFS[0]])
    assert res["errors"][0]["error"] == "Input not found or already spent"


def test_multisig_p2sh_segwit_signed_in_two_passes(node):
    ms = node.call("createmultisig", 2, [p.hex() for p in PUBS], "p2sh-segwit")
    assert ms["descriptor"].startswith("sh(wsh(multi(2," + PUBS[0].hex())
    assert node.call("getdescriptorinfo", ms["descriptor"])["issolvable"] is True
    cb = coinbase(node, 2)
    fund = node.call("createrawtransaction", [{"txid": cb["txid"], "vout": 0}],
                     {ms["address"]: Decimal("49.999")})
    fund = node.call("signrawtransactionwithkey", fund, [WIFS[0]])["hex"]
    fund_txid = node.call("sendrawtransaction", fund)
    spk = node.call("decoderawtransaction", fund)["vout"][0]["scriptPubKey"]["hex"]
    prev = {"txid": fund_txid, "vout": 0, "scriptPubKey": spk,
            "witnessScript": ms["redeemScript"], "amount": Decimal("49.999")}
    spend = node.call("createrawtransaction", [{"txid": fund_txid, "vout": 0}],
                      {OTHER: Decimal("49.998")})
    half = node.call("signrawtransactionwithkey", spend, [WIFS[2]], [prev])
    assert half["complete"] is False
    assert "CHECK(MULTI)SIG failing" in half["errors"][0]["error"]
    full = node.call("signrawtransactionwithkey", half["hex"], [WIFS[0]], [prev])
    assert full["complete"] is True
    assert node.call("testmempoolaccept", [full["hex"]])[0]["allowed"] is True
    # The amount is needed for a segwit signature.
    no_amount = {k: v for k, v in prev.items() if k != "amount"}
    fails(-3, "Missing amount for CTxOut(nValue=21000000.00000000, scriptPubKey=a914",
          node, "signrawtransactionwithkey", spend, [WIFS[0]], [no_amount])
    fails(-8, "Missing redeemScript/witnessScript", node, "signrawtransactionwithkey",
          spend, [WIFS[0]], [{"txid": fund_txid, "vout": 0, "scriptPubKey": spk}])


def test_sign_errors(node):
    raw = node.call("createrawtransaction", [{"txid": "ab" * 32, "vout": 0}], {OTHER: 1})
    fails(-8, "'all' is not a valid sighash parameter.", node, "signrawtransactionwithkey",
          raw, [WIFS[0]], None, "all")
    fails(-5, "Invalid private key", node, "signrawtransactionwithkey", raw, ["123"])
    fails(-22, "TX decode failed. Make sure the tx has at least one input.", node,
          "signrawtransactionwithkey", raw + "00", [WIFS[0]])


def test_createmultisig_errors_and_types(node):
    keys = [p.hex() for p in PUBS]
    legacy = node.call("createmultisig", 1, keys)
    assert legacy["address"].startswith("2") and legacy["descriptor"].startswith("sh(multi(")
    assert "warnings" not in legacy
    wsh = node.call("createmultisig", 1, keys, "bech32")
    assert wsh["address"].startswith("bcrt1q") and wsh["descriptor"].startswith("wsh(multi(")
    uncompressed = pubkey_from_secret(SECRETS[0], compressed=False).hex()
    forced = node.call("createmultisig", 1, [uncompressed], "bech32")
    assert forced["address"].startswith("2") and forced["warnings"]
    fails(-8, "a multisignature address must require at least one key to redeem", node,
          "createmultisig", 0, keys)
    fails(-8, "not enough keys supplied (got 3 keys, but need at least 4 to redeem)", node,
          "createmultisig", 4, keys)
    fails(-5, "Unknown address type 'foo'", node, "createmultisig", 1, keys, "foo")
    fails(-5, "createmultisig cannot create bech32m multisig addresses", node,
          "createmultisig", 1, keys, "bech32m")
    fails(-5, 'Pubkey "zz" must be a hex string', node, "createmultisig", 1, ["zz"])
    fails(-5, 'Pubkey "00" must have a length of either 33 or 65 bytes', node,
          "createmultisig", 1, ["00"])


def test_messages(node):
    # Core's rpc_signmessagewithprivkey.py vector.
    wif = "cUeKHd5orzT3mz8P9pxyREHfsWtVfgsfDjiZZBcjUBAaGk1BTj7N"
    sig = node.call("signmessagewithprivkey", wif, "This is just a test message")
    assert sig == ("INbVnW4e6PeRmsv2Qgu8NuopvrVjkcxob+sX8OcZG0SALhWybUjzMLPdAsXI46YZGb0KQTRii+"
                   "wWIQzRpG/U+S0=")
    addr = "mpLQjfK79b7CCV4VMJWEWAj5Mpx8Up5zxB"
    assert node.call("verifymessage", addr, sig, "This is just a test message") is True
    assert node.call("verifymessage", addr, sig, "another message") is False
    fails(-3, "Address does not refer to key", node, "verifymessage", OTHER, sig, "m")
    fails(-5, "Invalid address", node, "verifymessage", "invalid_addr", sig, "m")
    fails(-3, "Malformed base64 encoding", node, "verifymessage", addr, "invalid_sig", "m")
    fails(-5, "Invalid private key", node, "signmessagewithprivkey", "invalid_key", "m")


def test_raw_transaction_errors_as_core(node):
    tx = coinbase(node, 3)["txid"]
    fails(-3, "not of expected type number", node, "getrawtransaction", txid=tx, verbose="True")
    fails(-3, "JSON value of type string is not of expected type object", node,
          "createrawtransaction", ["foo"], {})
    fails(-3, "JSON value of type null is not of expected type string", node,
          "createrawtransaction", [{}], {})
    fails(-3, "JSON value of type string is not of expected type array", node,
          "createrawtransaction", [], "foo")
    fails(-8, "Data must be hexadecimal string (not 'foo')", node, "createrawtransaction", [],
          {"data": "foo"})


def test_deriveaddresses_needs_the_checksum(node):
    desc = f"pkh({PUBS[0].hex()})"
    fails(-5, "Missing checksum", node, "deriveaddresses", desc)
    info = node.call("getdescriptorinfo", desc)
    assert node.call("deriveaddresses", info["descriptor"]) == [ADDR0]
