"""Wallet RPCs: PSBTs (Core's walletcreatefundedpsbt, walletprocesspsbt, and the
node-level finalizepsbt, combinepsbt, decodepsbt)."""

from __future__ import annotations

from wallet.address import script_to_address
from wallet.amounts import parse_btc, to_btc
from wallet.bip32 import format_path
from wallet.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_PARAMETER,
    WalletError,
)
from wallet.psbt import PSBT, PSBTError
from wallet.rpc import (
    ANY,
    ARR,
    BOOL,
    NUM,
    OBJ,
    STR,
    Call,
    Param,
    fee_rate_of,
    method,
)
from wallet.rpc_send import fund
from wallet.signer import SIGHASH_NAMES, parse_sighash, sign, update

# -- PSBT ------------------------------------------------------------------------------------


def _psbt(text: str) -> PSBT:
    try:
        return PSBT.from_base64(text)
    except PSBTError as err:
        raise WalletError(RPC_DESERIALIZATION_ERROR, str(err)) from None


@method("walletcreatefundedpsbt", Param("inputs", ARR, None), Param("outputs", ANY),
        Param("locktime", NUM, None), Param("options", OBJ, None),
        Param("bip32derivs", BOOL, True))
def walletcreatefundedpsbt(call: Call, inputs, outputs, locktime, options, bip32derivs):
    w = call.w
    o = options or {}
    rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    if o.get("feeRate") is not None:
        rate = parse_btc(o["feeRate"])
    built = fund(w, inputs, outputs, rate, locktime=locktime,
                 change_address=o.get("changeAddress"), change_type=o.get("change_type"),
                 subtract=o.get("subtractFeeFromOutputs", []),
                 lock=bool(o.get("lockUnspents")), add_inputs=o.get("add_inputs"),
                 replaceable=bool(o.get("replaceable", True)))
    psbt = PSBT.from_tx(built.tx)
    update(w, psbt, bip32derivs)
    return {"psbt": psbt.to_base64(), "fee": to_btc(built.fee), "changepos": built.change_pos}


@method("walletprocesspsbt", Param("psbt", STR), Param("sign", BOOL, True),
        Param("sighashtype", STR, "DEFAULT"), Param("bip32derivs", BOOL, True),
        Param("finalize", BOOL, True))
def walletprocesspsbt(call: Call, text, do_sign, sighashtype, bip32derivs, finalize):
    w = call.w
    psbt = _psbt(text)
    ht = parse_sighash(sighashtype)
    update(w, psbt, bip32derivs)
    if do_sign:
        sign(w, psbt, None if ht == 0 else ht)
    complete = psbt.finalize() if finalize else psbt.is_complete()
    out: dict = {"psbt": psbt.to_base64(), "complete": complete}
    if complete and finalize:
        out["hex"] = psbt.extract().serialize().hex()
    return out


@method("finalizepsbt", Param("psbt", STR), Param("extract", BOOL, True), needs_wallet=False,
        syncs=False)
def finalizepsbt(call: Call, text, extract):
    psbt = _psbt(text)
    complete = psbt.finalize()
    out: dict = {}
    if complete and extract:
        out["hex"] = psbt.extract().serialize().hex()
    else:
        out["psbt"] = psbt.to_base64()
    out["complete"] = complete
    return out


@method("combinepsbt", Param("txs", ARR), needs_wallet=False, syncs=False)
def combinepsbt(call: Call, txs):
    if not txs:
        raise WalletError(RPC_INVALID_PARAMETER, "Parameter 'txs' cannot be empty")
    psbts = [_psbt(t) for t in txs]
    merged = psbts[0]
    for p in psbts[1:]:
        try:
            merged.combine(p)
        except PSBTError as err:
            raise WalletError(RPC_INVALID_PARAMETER, str(err)) from None
    return merged.to_base64()


def _origin_json(pubkey: bytes, origin, leaves=None) -> dict:  # noqa: ANN001
    fp, path = origin
    d = {"pubkey": pubkey.hex(), "master_fingerprint": fp.hex(),
         "path": format_path(path, apostrophe=True, prefix="m")}
    if leaves is not None:
        d["leaf_hashes"] = [h.hex() for h in leaves]
    return d


def _script_json(call: Call, script: bytes) -> dict:
    d = call.node.call("decodescript", script.hex())
    return {k: d[k] for k in ("asm", "hex", "type") if k in d}


def _scripts_json(call: Call, rec) -> dict:  # noqa: ANN001  (PSBTInput or PSBTOutput)
    d = {}
    if rec.redeem_script is not None:
        d["redeem_script"] = _script_json(call, rec.redeem_script)
    if rec.witness_script is not None:
        d["witness_script"] = _script_json(call, rec.witness_script)
    return d


@method("decodepsbt", Param("psbt", STR), needs_wallet=False, syncs=False)
def decodepsbt(call: Call, text):
    psbt = _psbt(text)
    out: dict = {"tx": call.node.call("decoderawtransaction",
                                      psbt.tx.serialize(witness=False).hex())}
    out["global_xpubs"] = [{"xpub": k.hex(), "master_fingerprint": o[0].hex(),
                            "path": format_path(o[1], apostrophe=True, prefix="m")}
                           for k, o in psbt.xpubs.items()]
    out["psbt_version"] = psbt.version or 0
    out["proprietary"] = []
    out["unknown"] = {k.hex(): v.hex() for k, v in psbt.unknown.items()}
    inputs = []
    for inp in psbt.inputs:
        d: dict = {}
        if inp.non_witness_utxo is not None:
            d["non_witness_utxo"] = call.node.call("decoderawtransaction",
                                                   inp.non_witness_utxo.serialize().hex())
        if inp.witness_utxo is not None:
            spk = inp.witness_utxo.script_pubkey
            sj = call.node.call("decodescript", spk.hex())
            spk_json = {"asm": sj.get("asm"), "desc": sj.get("desc"), "hex": spk.hex()}
            addr = script_to_address(spk, call.manager.params)
            if addr:
                spk_json["address"] = addr
            spk_json["type"] = sj.get("type")
            d["witness_utxo"] = {"amount": to_btc(inp.witness_utxo.value),
                                 "scriptPubKey": spk_json}
        if inp.partial_sigs:
            d["partial_signatures"] = {k.hex(): v.hex() for k, v in inp.partial_sigs.items()}
        if inp.sighash_type is not None:
            d["sighash"] = next((n for n, v in SIGHASH_NAMES.items()
                                 if v == inp.sighash_type), str(inp.sighash_type))
        d.update(_scripts_json(call, inp))
        if inp.bip32_derivs:
            d["bip32_derivs"] = [_origin_json(k, o) for k, o in inp.bip32_derivs.items()]
        if inp.final_script_sig is not None:
            d["final_scriptSig"] = {"asm": call.node.call(
                "decodescript", inp.final_script_sig.hex()).get("asm"),
                "hex": inp.final_script_sig.hex()}
        if inp.final_script_witness is not None:
            d["final_scriptwitness"] = [x.hex() for x in inp.final_script_witness]
        if inp.tap_key_sig is not None:
            d["taproot_key_path_sig"] = inp.tap_key_sig.hex()
        if inp.tap_bip32_derivs:
            d["taproot_bip32_derivs"] = [_origin_json(k, o, leaves)
                                         for k, (leaves, o) in inp.tap_bip32_derivs.items()]
        if inp.tap_internal_key is not None:
            d["taproot_internal_key"] = inp.tap_internal_key.hex()
        if inp.tap_merkle_root is not None:
            d["taproot_merkle_root"] = inp.tap_merkle_root.hex()
        if inp.unknown:
            d["unknown"] = {k.hex(): v.hex() for k, v in inp.unknown.items()}
        inputs.append(d)
    out["inputs"] = inputs
    outputs = []
    for pout in psbt.outputs:
        d = _scripts_json(call, pout)
        if pout.bip32_derivs:
            d["bip32_derivs"] = [_origin_json(k, o) for k, o in pout.bip32_derivs.items()]
        if pout.tap_internal_key is not None:
            d["taproot_internal_key"] = pout.tap_internal_key.hex()
        if pout.tap_bip32_derivs:
            d["taproot_bip32_derivs"] = [_origin_json(k, o, leaves)
                                         for k, (leaves, o) in pout.tap_bip32_derivs.items()]
        if pout.unknown:
            d["unknown"] = {k.hex(): v.hex() for k, v in pout.unknown.items()}
        outputs.append(d)
    out["outputs"] = outputs
    fee = psbt.fee()
    if fee is not None:
        out["fee"] = to_btc(fee)
    return out
