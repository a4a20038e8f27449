"""PSBT RPCs as Core's (rpc_psbt.py's behaviours, in the project's own suite): version 2 by
default and version 0 on request, decodepsbt's fields, converttopsbt, combine/finalize,
joinpsbts, analyzepsbt's roles, utxoupdatepsbt and descriptorprocesspsbt with descriptors,
walletprocesspsbt's sighash rules, and multisig signed by two wallets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.hashes import hash160
from consensus.params import REGTEST
from consensus.script.standard import p2wpkh_script
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.functional.framework import NodeProcess, RPCFailure
from wallet.address import encode_wif, script_to_address
from wallet.descriptors import add_checksum
from wallet.keys import pubkey_from_secret
from wallet.psbt import PSBT, PSBT_IN_SIGHASH_TYPE, PSBTInput, PSBTOutput

SECRET = bytes([7]) * 32
WIF = encode_wif(SECRET, REGTEST)
PUB = pubkey_from_secret(SECRET)
ADDR = script_to_address(p2wpkh_script(hash160(PUB)), REGTEST)
DESC = add_checksum(f"wpkh({WIF})")


def fails(code: int, text: str, node: NodeProcess, method: str, *params, **named) -> None:
    with pytest.raises(RPCFailure) as err:
        node.call(method, *params, **named)
    assert err.value.code == code and text in err.value.message, err.value.message


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("psbt") / "n")
    n.start()
    n.create_wallet()
    n.call("generatetoaddress", 101, n.call("getnewaddress"))
    yield n
    n.stop()


def _fund(node: NodeProcess, address: str, amount: int) -> dict:
    txid = node.call("sendtoaddress", address, amount, wallet="default")
    tx = node.call("getrawtransaction", txid, True)
    vout = next(o["n"] for o in tx["vout"] if o["scriptPubKey"].get("address") == address)
    return {"txid": txid, "vout": vout}


def test_create_and_decode_both_versions(node):
    utxo = {"txid": "ab" * 32, "vout": 1}
    v2 = node.call("createpsbt", [utxo], [{ADDR: 1}])
    d = node.call("decodepsbt", v2)
    assert d["psbt_version"] == 2 and "tx" not in d and d["fallback_locktime"] == 0
    assert d["input_count"] == 1 and d["output_count"] == 1 and d["tx_version"] == 2
    assert set(d["inputs"][0]) == {"previous_txid", "previous_vout", "sequence"}
    assert d["outputs"][0]["amount"] == 1 and d["outputs"][0]["script"]["address"] == ADDR
    v0 = node.call("createpsbt", [utxo], [{ADDR: 1}], 0, False, 2, 0)
    d0 = node.call("decodepsbt", v0)
    assert d0["psbt_version"] == 0 and d0["tx"]["vin"][0]["sequence"] == 0xFFFFFFFF
    assert d0["inputs"] == [{}]
    for method, args in (("createpsbt", ([utxo], [{ADDR: 1}], 0, None, 2, 1)),):
        fails(-8, "The PSBT version can only be 2 or 0", node, method, *args)
    fails(-22, "TX decode failed invalid base64", node, "decodepsbt", ";not base64;")
    # the same transaction in both versions combines with itself only
    assert node.call("combinepsbt", [v2, v2]) == v2
    fails(-8, "PSBTs not compatible", node, "combinepsbt", [v0, v2])
    fails(-8, "Parameter 'txs' cannot be empty", node, "combinepsbt", [])
    # converttopsbt refuses signatures unless told to drop them
    raw = node.call("createrawtransaction", [utxo], [{ADDR: 1}])
    assert node.call("decodepsbt", node.call("converttopsbt", raw))["psbt_version"] == 2
    fails(-8, "The PSBT version can only be 2 or 0", node, "converttopsbt", raw, False, None, 1)


def test_proprietary_and_unknown_records_pass_through(node):
    tx = Transaction(2, [TxIn(OutPoint(b"\xaa" * 32, 0))], [TxOut(0, b"")])
    a = PSBT.from_tx(tx, 0)
    b = PSBT.from_tx(tx, 0)
    ka = bytes([0xFC, 2]) + b"in" + bytes([3, 1])
    kb = bytes([0xFC, 2]) + b"in" + bytes([4, 2])
    a.inputs[0].proprietary[ka] = (b"in", 3, b"\xbb")
    b.inputs[0].proprietary[kb] = (b"in", 4, b"\xee")
    b.inputs[0].unknown[b"\xf0\x01"] = b"\x02"
    merged = node.call("combinepsbt", [a.to_base64(), b.to_base64()])
    d = node.call("decodepsbt", merged)
    assert d["inputs"][0]["proprietary"] == [
        {"identifier": b"in".hex(), "subtype": 3, "key": ka.hex(), "value": "bb"},
        {"identifier": b"in".hex(), "subtype": 4, "key": kb.hex(), "value": "ee"}]
    assert d["inputs"][0]["unknown"] == {"f001": "02"}
    assert node.call("walletprocesspsbt", merged)["psbt"] == merged


def test_anyone_can_spend_input_finalizes_by_script_execution(node):
    tx = Transaction(2, [TxIn(OutPoint(b"\xdd" * 32, 0))], [TxOut(0, b"")])
    p = PSBT([PSBTInput(b"\xdd" * 32, 0, witness_utxo=TxOut(0, b"\x51"))], [PSBTOutput(0, b"")],
             psbt_version=0, tx_version=2, fallback_locktime=0)
    assert p.tx.txid == tx.txid
    r = node.call("finalizepsbt", p.to_base64())
    assert r == {"hex": "0200000001" + "dd" * 32 + "00000000" + "00" + "ffffffff" + "01"
                 + "0000000000000000" + "00" + "00000000", "complete": True}


def test_update_sign_with_descriptors_and_analyze(node):
    utxo = _fund(node, ADDR, 2)
    psbt = node.call("createpsbt", [utxo], [{node.call("getnewaddress"): Decimal("1.9999")}])
    a = node.call("analyzepsbt", psbt)
    assert a["next"] == "updater" and a["inputs"][0]["has_utxo"] is False
    updated = node.call("utxoupdatepsbt", psbt, [DESC])
    d = node.call("decodepsbt", updated)["inputs"][0]
    assert {"witness_utxo", "non_witness_utxo", "bip32_derivs"} <= set(d)
    a = node.call("analyzepsbt", updated)
    assert a["next"] == "signer"
    assert a["inputs"][0]["missing"]["signatures"] == [hash160(PUB).hex()]
    assert a["fee"] == Decimal("0.0001") and a["estimated_vsize"] == 110
    assert a["estimated_feerate"] == Decimal("0.00090909")
    half = node.call("descriptorprocesspsbt", updated, [DESC], "ALL", True, False)
    assert half["complete"] is False and "hex" not in half
    assert node.call("analyzepsbt", half["psbt"])["next"] == "finalizer"
    fails(-8, "'all' is not a valid sighash parameter.", node, "descriptorprocesspsbt",
          updated, [DESC], "all")
    done = node.call("descriptorprocesspsbt", updated, [DESC])
    assert done["complete"] is True
    assert node.call("analyzepsbt", done["psbt"])["next"] == "extractor"
    node.call("sendrawtransaction", done["hex"])


def test_sighash_stored_in_the_psbt_must_be_asked_for(node):
    addr = node.call("getnewaddress", "", "bech32")
    node.call("sendtoaddress", addr, 3)
    node.call("generatetoaddress", 1, node.call("getnewaddress"))
    psbt = PSBT.from_base64(node.call("walletcreatefundedpsbt", [], [{ADDR: 1}])["psbt"])
    for inp in psbt.inputs:
        inp.sighash_type = 0x81
    text = psbt.to_base64()
    for sighash in ("DEFAULT", "ALL", "NONE", None):
        fails(-22, "Specified sighash value does not match value stored in PSBT", node,
              "walletprocesspsbt", text, True, sighash)
    signed = node.call("walletprocesspsbt", text, True, "ALL|ANYONECANPAY", True, False)
    d = node.call("decodepsbt", signed["psbt"])
    assert all(i["sighash"] == "ALL|ANYONECANPAY" for i in d["inputs"])
    assert node.call("finalizepsbt", signed["psbt"])["complete"] is True
    # a different type recorded after signing can no longer be finalized
    changed = PSBT.from_base64(signed["psbt"])
    changed.inputs[0].unknown.pop(bytes([PSBT_IN_SIGHASH_TYPE]), None)
    changed.inputs[0].sighash_type = 1
    assert node.call("finalizepsbt", changed.to_base64())["complete"] is False


def test_joinpsbts(node):
    u1, u2 = {"txid": "11" * 32, "vout": 0}, {"txid": "22" * 32, "vout": 1}
    p1 = node.call("createpsbt", [u1], [{ADDR: 1}], 0, False, 2, 0)
    p2 = node.call("createpsbt", [u2], [{ADDR: 2}], 0, False, 2, 0)
    v2 = node.call("createpsbt", [u2], [{ADDR: 2}])
    fails(-8, "joinpsbts only operates on version 0 PSBTs", node, "joinpsbts", [p1, v2])
    fails(-8, "exists in multiple PSBTs", node, "joinpsbts", [p1, p1])
    joined = node.call("decodepsbt", node.call("joinpsbts", [p1, p2]))
    assert len(joined["inputs"]) == 2 and len(joined["tx"]["vout"]) == 2


def test_multisig_signed_by_two_wallets(node):
    node.call("createwallet", "w1")
    node.call("createwallet", "w2")
    k1 = node.call("getaddressinfo", node.call("getnewaddress", wallet="w1"),
                   wallet="w1")["pubkey"]
    k2 = node.call("getaddressinfo", node.call("getnewaddress", wallet="w2"),
                   wallet="w2")["pubkey"]
    ms = node.call("createmultisig", 2, [k1, k2], "bech32")
    utxo = _fund(node, ms["address"], 4)
    psbt = node.call("createpsbt", [utxo], [{ADDR: Decimal("3.999")}])
    psbt = node.call("utxoupdatepsbt", psbt, [ms["descriptor"]])
    one = node.call("walletprocesspsbt", psbt, wallet="w1")
    assert one["complete"] is False
    assert len(node.call("decodepsbt", one["psbt"])["inputs"][0]["partial_signatures"]) == 1
    two = node.call("walletprocesspsbt", one["psbt"], wallet="w2")
    assert two["complete"] is True
    node.call("sendrawtransaction", two["hex"])


def test_walletcreatefundedpsbt_options(node):
    out = [{ADDR: 1}]
    fails(-8, "The PSBT version can only be 2 or 0", node, "walletcreatefundedpsbt", [], out,
          0, {}, True, 1, wallet="default")
    fails(-8, "Cannot specify both fee_rate (sat/vB) and feeRate (BTC/kvB)", node,
          "walletcreatefundedpsbt", [], out, 0, {"fee_rate": 1, "feeRate": "0.0001"},
          wallet="default")
    fails(-8, "Cannot specify both estimate_mode and feeRate", node, "walletcreatefundedpsbt",
          [], out, 0, {"estimate_mode": "economical", "feeRate": "0.0001"}, wallet="default")
    fails(-8, "both change address and address type options", node, "walletcreatefundedpsbt",
          [], out, 0, {"change_type": "legacy", "changeAddress": ADDR}, wallet="default")
    # options by name (Core's OBJ_NAMED_PARAMS), and no locktime: 0, not the tip's height
    r = node.call("walletcreatefundedpsbt", outputs=out, fee_rate=2, psbt_version=0,
                  wallet="default")
    d = node.call("decodepsbt", r["psbt"])
    assert d["psbt_version"] == 0 and d["tx"]["locktime"] == 0
    # psbtbumpfee's version
    txid = node.call("sendtoaddress", ADDR, 1, wallet="default")
    bumped = node.call("psbtbumpfee", txid, None, 0, wallet="default")
    assert node.call("decodepsbt", bumped["psbt"])["psbt_version"] == 0
    fails(-8, "The PSBT version can only be 2 or 0", node, "psbtbumpfee", txid, None, 3,
          wallet="default")
