"""PSBT RPCs of the node (Core's rpc/rawtransaction.cpp): decodepsbt, combinepsbt,
finalizepsbt, createpsbt, converttopsbt, utxoupdatepsbt, joinpsbts, analyzepsbt and
descriptorprocesspsbt. They need no wallet (they work with -disablewallet); the PSBT format,
the signer and the finalizer are wallet.psbt's pure code."""

from __future__ import annotations

import random
from typing import Any

from consensus.script.script import witness_program
from consensus.script.standard import SCRIPTHASH, script_to_asm, solver
from node.rpc.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc
from node.rpc.params import as_int
from node.rpc.rawtransactions import construct_transaction, decode_tx, find_tx
from node.rpc.registry import ANY, ARR, BOOL, NUM, STR, Arg, json_type, rpc
from node.rpc.txjson import script_pubkey_json, tx_json
from wallet.base58 import b58check_encode
from wallet.bip32 import format_path
from wallet.descriptors import DescriptorError, parse_descriptors, parse_range
from wallet.psbt import (
    PSBT,
    Provider,
    PSBTError,
    PSBTInput,
    SighashMismatch,
    TxData,
    analyze,
    finalize_and_extract,
    finalize_psbt,
    input_signed_and_verified,
    remove_unnecessary_transactions,
    sighash_name,
    sign_psbt_input,
    update_psbt_output,
)

SIGHASH_HELP = ('The signature hash type to sign with if not specified by the PSBT. Must be one '
                'of "DEFAULT", "ALL", "NONE", "SINGLE", "ALL|ANYONECANPAY", '
                '"NONE|ANYONECANPAY", "SINGLE|ANYONECANPAY"')
SIGHASHES = {
    "DEFAULT": 0x00, "ALL": 0x01, "NONE": 0x02, "SINGLE": 0x03, "ALL|ANYONECANPAY": 0x81,
    "NONE|ANYONECANPAY": 0x82, "SINGLE|ANYONECANPAY": 0x83,
}


def decode_psbt(text: Any) -> PSBT:
    if not isinstance(text, str):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(text)} is not of "
                       "expected type string")
    try:
        return PSBT.from_base64(text)
    except PSBTError as err:
        raise RPCError(RPC_DESERIALIZATION_ERROR, str(err)) from None


def parse_sighash(value: Any) -> int | None:
    """Core's ParseSighashString: None when not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       "expected type string")
    if value not in SIGHASHES:
        raise RPCError(RPC_INVALID_PARAMETER, f"'{value}' is not a valid sighash parameter.")
    return SIGHASHES[value]


def psbt_version_of(value: Any) -> int:
    v = 2 if value is None else as_int(value, "psbt_version")
    if v not in (0, 2):
        raise RPCError(RPC_INVALID_PARAMETER, "The PSBT version can only be 2 or 0")
    return v


def _origin(fp: bytes, path) -> tuple[str, str]:  # noqa: ANN001
    return fp.hex(), format_path(path, apostrophe=True, prefix="m")


def _keypaths(d: dict) -> list[dict]:
    out = []
    for pk, (fp, path) in sorted(d.items()):
        f, p = _origin(fp, path)
        out.append({"pubkey": pk.hex(), "master_fingerprint": f, "path": p})
    return out


def _tap_keypaths(d: dict) -> list[dict]:
    out = []
    for x, (leaves, (fp, path)) in sorted(d.items()):
        f, p = _origin(fp, path)
        out.append({"pubkey": x.hex(), "master_fingerprint": f, "path": p,
                    "leaf_hashes": [h.hex() for h in sorted(leaves)]})
    return out


def _proprietary(d: dict) -> list[dict]:
    return [{"identifier": ident.hex(), "subtype": sub, "key": k.hex(), "value": v.hex()}
            for k, (ident, sub, v) in sorted(d.items())]


def _script(script: bytes, params) -> dict:  # noqa: ANN001
    return script_pubkey_json(script, params, include_hex=True, include_address=False)


def _musig_participants(d: dict) -> list[dict]:
    return [{"aggregate_pubkey": agg.hex(), "participant_pubkeys": [p.hex() for p in parts]}
            for agg, parts in sorted(d.items())]


def _musig_values(d: dict, name: str) -> list[dict]:
    out = []
    for (agg, leaf), per in sorted(d.items()):
        for part, value in sorted(per.items()):
            info = {"participant_pubkey": part.hex(), "aggregate_pubkey": agg.hex()}
            if leaf:
                info["leaf_hash"] = leaf.hex()
            info[name] = value.hex()
            out.append(info)
    return out


def decode_json(psbt: PSBT, params) -> dict:  # noqa: ANN001, C901
    """decodepsbt's result."""
    from consensus.hashes import hash160

    out: dict = {}
    if psbt.psbt_version < 2:
        out["tx"] = tx_json(psbt.tx, params, include_hex=False)
    xpubs = []
    for xpub, (fp, path) in sorted(psbt.xpubs.items(), key=lambda kv: (kv[1], kv[0])):
        f, p = _origin(fp, path)
        xpubs.append({"xpub": b58check_encode(xpub), "master_fingerprint": f, "path": p})
    out["global_xpubs"] = xpubs
    if psbt.psbt_version >= 2:
        out["tx_version"] = psbt.tx_version
        if psbt.fallback_locktime is not None:
            out["fallback_locktime"] = psbt.fallback_locktime
        out["input_count"] = len(psbt.inputs)
        out["output_count"] = len(psbt.outputs)
        if psbt.tx_modifiable is not None:
            out["inputs_modifiable"] = bool(psbt.tx_modifiable & 1)
            out["outputs_modifiable"] = bool(psbt.tx_modifiable & 2)
            out["has_sighash_single"] = bool(psbt.tx_modifiable & 4)
    out["psbt_version"] = psbt.psbt_version
    out["proprietary"] = _proprietary(psbt.proprietary)
    out["unknown"] = {k.hex(): v.hex() for k, v in sorted(psbt.unknown.items())}
    total_in = 0
    have_all = True
    inputs = []
    for inp in psbt.inputs:
        d: dict = {}
        txout = None
        if inp.witness_utxo is not None:
            txout = inp.witness_utxo
            d["witness_utxo"] = {"amount": btc(txout.value),
                                 "scriptPubKey": script_pubkey_json(txout.script_pubkey,
                                                                    params)}
        if inp.non_witness_utxo is not None:
            txout = inp.non_witness_utxo.vout[inp.prev_out]
            d["non_witness_utxo"] = tx_json(inp.non_witness_utxo, params, include_hex=False)
        if txout is not None and 0 <= txout.value <= 21_000_000 * 10**8 and \
                total_in + txout.value <= 21_000_000 * 10**8:
            total_in += txout.value
        else:
            have_all = False
        if inp.partial_sigs:
            d["partial_signatures"] = {pk.hex(): sig.hex() for pk, sig in sorted(
                inp.partial_sigs.items(), key=lambda kv: hash160(kv[0]))}
        if inp.sighash_type is not None:
            d["sighash"] = sighash_name(inp.sighash_type)
        if inp.redeem_script:
            d["redeem_script"] = _script(inp.redeem_script, params)
        if inp.witness_script:
            d["witness_script"] = _script(inp.witness_script, params)
        if inp.bip32_derivs:
            d["bip32_derivs"] = _keypaths(inp.bip32_derivs)
        if inp.final_script_sig:
            d["final_scriptSig"] = {"asm": script_to_asm(inp.final_script_sig, True),
                                    "hex": inp.final_script_sig.hex()}
        if inp.final_script_witness:
            d["final_scriptwitness"] = [x.hex() for x in inp.final_script_witness]
        for name, pre in (("ripemd160_preimages", inp.ripemd160_preimages),
                          ("sha256_preimages", inp.sha256_preimages),
                          ("hash160_preimages", inp.hash160_preimages),
                          ("hash256_preimages", inp.hash256_preimages)):
            if pre:
                d[name] = {h.hex(): v.hex() for h, v in sorted(pre.items())}
        if psbt.psbt_version >= 2:
            d["previous_txid"] = inp.prev_txid[::-1].hex()
            d["previous_vout"] = inp.prev_out
            if inp.sequence is not None:
                d["sequence"] = inp.sequence
            if inp.time_locktime is not None:
                d["time_locktime"] = inp.time_locktime
            if inp.height_locktime is not None:
                d["height_locktime"] = inp.height_locktime
        if inp.tap_key_sig:
            d["taproot_key_path_sig"] = inp.tap_key_sig.hex()
        if inp.tap_script_sigs:
            d["taproot_script_path_sigs"] = [
                {"pubkey": x.hex(), "leaf_hash": lh.hex(), "sig": s.hex()}
                for (x, lh), s in sorted(inp.tap_script_sigs.items())]
        if inp.tap_scripts:
            d["taproot_scripts"] = [
                {"script": s.hex(), "leaf_ver": v,
                 "control_blocks": [c.hex() for c in sorted(cbs, key=lambda c: (len(c), c))]}
                for (s, v), cbs in sorted(inp.tap_scripts.items())]
        if inp.tap_bip32_derivs:
            d["taproot_bip32_derivs"] = _tap_keypaths(inp.tap_bip32_derivs)
        if inp.tap_internal_key:
            d["taproot_internal_key"] = inp.tap_internal_key.hex()
        if inp.tap_merkle_root:
            d["taproot_merkle_root"] = inp.tap_merkle_root.hex()
        if inp.musig2_participants:
            d["musig2_participant_pubkeys"] = _musig_participants(inp.musig2_participants)
        if inp.musig2_pubnonces:
            d["musig2_pubnonces"] = _musig_values(inp.musig2_pubnonces, "pubnonce")
        if inp.musig2_partial_sigs:
            d["musig2_partial_sigs"] = _musig_values(inp.musig2_partial_sigs, "partial_sig")
        if inp.proprietary:
            d["proprietary"] = _proprietary(inp.proprietary)
        if inp.unknown:
            d["unknown"] = {k.hex(): v.hex() for k, v in sorted(inp.unknown.items())}
        inputs.append(d)
    out["inputs"] = inputs
    outputs = []
    total_out = 0
    for o in psbt.outputs:
        d = {}
        if o.redeem_script:
            d["redeem_script"] = _script(o.redeem_script, params)
        if o.witness_script:
            d["witness_script"] = _script(o.witness_script, params)
        if o.bip32_derivs:
            d["bip32_derivs"] = _keypaths(o.bip32_derivs)
        if psbt.psbt_version >= 2:
            d["amount"] = btc(o.amount)
            d["script"] = script_pubkey_json(o.script, params)
        if o.tap_internal_key:
            d["taproot_internal_key"] = o.tap_internal_key.hex()
        if o.tap_tree:
            d["taproot_tree"] = [{"depth": dp, "leaf_ver": v, "script": s.hex()}
                                 for dp, v, s in o.tap_tree]
        if o.tap_bip32_derivs:
            d["taproot_bip32_derivs"] = _tap_keypaths(o.tap_bip32_derivs)
        if o.musig2_participants:
            d["musig2_participant_pubkeys"] = _musig_participants(o.musig2_participants)
        if o.proprietary:
            d["proprietary"] = _proprietary(o.proprietary)
        if o.unknown:
            d["unknown"] = {k.hex(): v.hex() for k, v in sorted(o.unknown.items())}
        outputs.append(d)
        if 0 <= o.amount <= 21_000_000 * 10**8 and total_out + o.amount <= 21_000_000 * 10**8:
            total_out += o.amount
        else:
            have_all = False
    out["outputs"] = outputs
    if have_all:
        out["fee"] = btc(total_in - total_out)
    return out


PSBT_ARG = Arg("psbt", STR, help="A base64 string of a PSBT")


@rpc("decodepsbt", "Rawtransactions", [Arg("psbt", STR, help="The PSBT base64 string")],
     description="Return a JSON object representing the serialized, base64-encoded partially "
                 "signed Bitcoin transaction.")
def decodepsbt(node, psbt):
    return decode_json(decode_psbt(psbt), node.params)


@rpc("combinepsbt", "Rawtransactions",
     [Arg("txs", ARR, help="The base64 strings of partially signed transactions")],
     description="Combine multiple partially signed Bitcoin transactions into one transaction."
                 "\nImplements the Combiner role.")
def combinepsbt(node, txs):
    if not txs:
        raise RPCError(RPC_INVALID_PARAMETER, "Parameter 'txs' cannot be empty")
    psbts = [decode_psbt(t) for t in txs]
    merged = psbts[0]
    for p in psbts[1:]:
        try:
            merged.combine(p)
        except PSBTError:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "PSBTs not compatible (different transactions)") from None
    return merged.to_base64()


@rpc("finalizepsbt", "Rawtransactions",
     [PSBT_ARG, Arg("extract", BOOL, False, True,
                    "If true and the transaction is complete, extract and return the complete "
                    "transaction in normal network serialization instead of the PSBT.")],
     description="Finalize the inputs of a PSBT. If the transaction is fully signed, it will "
                 "produce a network serialized transaction which can be broadcast with "
                 "sendrawtransaction. Otherwise a PSBT will be created which has the "
                 "final_scriptSig and final_scriptwitness fields filled for inputs that are "
                 "complete.\nImplements the Finalizer and Extractor roles.")
def finalizepsbt(node, psbt, extract):
    p = decode_psbt(psbt)
    tx = finalize_and_extract(p)
    out: dict = {}
    if tx is not None and extract is not False:
        out["hex"] = tx.serialize().hex()
    else:
        out["psbt"] = p.to_base64()
    out["complete"] = tx is not None
    return out


CREATE_ARGS = [
    Arg("inputs", ARR, help='The inputs: [{"txid":"hex","vout":n,"sequence":n},...]'),
    Arg("outputs", ANY, help='The outputs: [{"address":amount,...},{"data":"hex"},...] (an '
                             'object is also accepted)'),
    Arg("locktime", NUM, False, 0, "Raw locktime. Non-0 value also locktime-activates inputs"),
    Arg("replaceable", BOOL, False, None, "Marks this transaction as BIP125-replaceable.",
        default_hint="true"),
    Arg("version", NUM, False, 2, "Transaction version"),
    Arg("psbt_version", NUM, False, 2, "The PSBT version number to use."),
]


@rpc("createpsbt", "Rawtransactions", CREATE_ARGS,
     description="Creates a transaction in the Partially Signed Transaction format.\n"
                 "Implements the Creator role.\nNote that the transaction's inputs are not "
                 "signed, and it is not stored in the wallet or transmitted to the network.")
def createpsbt(node, inputs, outputs, locktime, replaceable, version, psbt_version):
    tx = construct_transaction(node.params, inputs, outputs, locktime, replaceable, version)
    return PSBT.from_tx(tx, psbt_version_of(psbt_version)).to_base64()


@rpc("converttopsbt", "Rawtransactions",
     [Arg("hexstring", STR, help="The hex string of a raw transaction"),
      Arg("permitsigdata", BOOL, False, False,
          "If true, any signatures in the input will be discarded and conversion will "
          "continue. If false, RPC will fail if any signatures are present."),
      Arg("iswitness", BOOL, False, None, "Whether the transaction hex is a serialized "
          "witness transaction.", default_hint="depends on heuristic tests"),
      Arg("psbt_version", NUM, False, 2, "The PSBT version number to use.")],
     description="Converts a network serialized transaction to a PSBT. This should be used "
                 "only with createrawtransaction and fundrawtransaction\ncreatepsbt and "
                 "walletcreatefundedpsbt should be used for new applications.")
def converttopsbt(node, hexstring, permitsigdata, iswitness, psbt_version):
    tx = decode_tx(hexstring, try_no_witness=iswitness is not True,
                   try_witness=iswitness is not False)
    for txin in tx.vin:
        if (txin.script_sig or txin.witness) and not permitsigdata:
            raise RPCError(RPC_DESERIALIZATION_ERROR,
                           "Inputs must not have scriptSigs and scriptWitnesses")
        txin.script_sig = b""
        txin.witness = []
    tx.rehash()
    return PSBT.from_tx(tx, psbt_version_of(psbt_version)).to_base64()


def descriptors_provider(node, descs: list, expand_priv: bool) -> Provider:  # noqa: ANN001
    """Core's EvalDescriptorStringOrObject for each item: a descriptor string, or an object
    with "desc" and "range" (default 1000)."""
    from node.rpc.util import _descriptor_error

    prov = Provider()
    for item in descs:
        rng: Any = None
        if isinstance(item, str):
            text = item
        elif isinstance(item, dict):
            text = item.get("desc")
            if not isinstance(text, str):
                raise RPCError(RPC_INVALID_PARAMETER, "Descriptor object must have a desc "
                               "field")
            rng = item.get("range")
        else:
            raise RPCError(RPC_TYPE_ERROR, "Expected descriptor to be a string or object")
        try:
            parsed = parse_descriptors(text, node.params)
        except DescriptorError as err:
            raise _descriptor_error(err) from None
        for desc in parsed:
            if desc.is_range():
                try:
                    lo, hi = parse_range(rng if rng is not None else 1000)
                except DescriptorError as err:
                    raise _descriptor_error(err) from None
                for pos in range(lo, hi + 1):
                    prov.add_descriptor(desc, pos, desc if expand_priv else None)
            else:
                if rng is not None:
                    raise RPCError(RPC_INVALID_PARAMETER,
                                   "Range should not be specified for an un-ranged descriptor")
                prov.add_descriptor(desc, 0, desc if expand_priv else None)
    if not expand_priv:
        prov.secrets.clear()
        prov.xonly_secrets.clear()
    return prov


def _is_segwit_output(provider: Provider, script: bytes) -> bool:
    if witness_program(script) is not None:
        return True
    kind, sol = solver(script)
    if kind == SCRIPTHASH:
        sub = provider.script(sol[0])
        return sub is not None and witness_program(sub) is not None
    return False


def process_psbt(node, text: str, provider: Provider, sighash: int | None,  # noqa: ANN001
                 finalize: bool) -> PSBT:
    """Core's ProcessPSBT: previous transactions from the mempool or the txindex, else
    segwit outputs from the UTXO set; then each input signed with what the provider knows,
    and the outputs updated."""
    psbt = decode_psbt(text)
    missing: list[PSBTInput] = []
    for inp in psbt.inputs:
        if inp.non_witness_utxo is not None:
            continue
        tx, _, _ = find_tx(node, inp.prev_txid, None)
        if tx is not None:
            inp.non_witness_utxo = tx
        else:
            missing.append(inp)
    for inp in missing:
        coin = node.chain.get_coin(inp.prev_txid, inp.prev_out)
        if coin is not None and _is_segwit_output(provider, coin.script_pubkey):
            from consensus.tx import TxOut

            inp.witness_utxo = TxOut(coin.value, coin.script_pubkey)
    if psbt.unsigned_tx() is None:
        raise RPCError(RPC_DESERIALIZATION_ERROR, "PSBT is not valid: its inputs require "
                       "conflicting locktimes")
    txdata = TxData(psbt)
    for i, inp in enumerate(psbt.inputs):
        if inp.finalized:
            continue
        try:
            sign_psbt_input(provider, psbt, i, txdata, sighash, finalize)
        except SighashMismatch as err:
            raise RPCError(RPC_DESERIALIZATION_ERROR, str(err)) from None
    for i in range(len(psbt.outputs)):
        update_psbt_output(provider, psbt, i)
    remove_unnecessary_transactions(psbt)
    return psbt


@rpc("utxoupdatepsbt", "Rawtransactions",
     [PSBT_ARG, Arg("descriptors", ARR, False, None,
                    "An array of either strings or objects")],
     description="Updates all segwit inputs and outputs in a PSBT with data from output "
                 "descriptors, the UTXO set, txindex, or the mempool.")
def utxoupdatepsbt(node, psbt, descriptors):
    prov = descriptors_provider(node, descriptors or [], expand_priv=False)
    prov.hide_secret = True
    return process_psbt(node, psbt, prov, None, False).to_base64()


@rpc("descriptorprocesspsbt", "Rawtransactions",
     [Arg("psbt", STR, help="The transaction base64 string"),
      Arg("descriptors", ARR, help="An array of either strings or objects"),
      Arg("sighashtype", STR, False, None, SIGHASH_HELP,
          default_hint="DEFAULT for Taproot, ALL otherwise"),
      Arg("bip32derivs", BOOL, False, True,
          "Include BIP 32 derivation paths for public keys if we know them"),
      Arg("finalize", BOOL, False, True, "Also finalize inputs if possible")],
     description="Update all segwit inputs in a PSBT with information from output descriptors, "
                 "the UTXO set or the mempool. \nThen, sign the inputs we are able to with "
                 "information from the output descriptors. ")
def descriptorprocesspsbt(node, psbt, descriptors, sighashtype, bip32derivs, finalize):
    prov = descriptors_provider(node, descriptors, expand_priv=True)
    ht = parse_sighash(sighashtype)
    prov.hide_origin = bip32derivs is False
    p = process_psbt(node, psbt, prov, ht, finalize is not False)
    txdata = TxData(p)
    complete = all(input_signed_and_verified(p, i, txdata) for i in range(len(p.inputs)))
    out: dict = {"psbt": p.to_base64(), "complete": complete}
    if complete:
        copy = PSBT.parse(p.serialize())
        tx = finalize_and_extract(copy)
        if tx is not None:
            out["hex"] = tx.serialize().hex()
    return out


@rpc("joinpsbts", "Rawtransactions",
     [Arg("txs", ARR, help="The base64 strings of partially signed transactions")],
     description="Joins multiple distinct version 0 PSBTs with different inputs and outputs "
                 "into one version 0 PSBT with inputs and outputs from all of the PSBTs\nNo "
                 "input in any of the PSBTs can be in more than one of the PSBTs.")
def joinpsbts(node, txs):
    if len(txs) <= 1:
        raise RPCError(RPC_INVALID_PARAMETER, "At least two PSBTs are required to join PSBTs.")
    psbts = []
    best_version = 1
    best_locktime = 0xFFFFFFFF
    for t in txs:
        p = decode_psbt(t)
        if p.psbt_version != 0:
            raise RPCError(RPC_INVALID_PARAMETER, "joinpsbts only operates on version 0 PSBTs")
        psbts.append(p)
        best_version = max(best_version, p.tx_version)
        best_locktime = min(best_locktime, p.fallback_locktime or 0)
    merged = PSBT([], [], psbt_version=0, tx_version=best_version,
                  fallback_locktime=best_locktime)
    for p in psbts:
        for inp in p.inputs:
            if not merged.add_input(inp):
                raise RPCError(RPC_INVALID_PARAMETER, f"Input {inp.prev_txid[::-1].hex()}:"
                               f"{inp.prev_out} exists in multiple PSBTs")
        merged.outputs.extend(p.outputs)
        for k, v in p.xpubs.items():
            merged.xpubs.setdefault(k, v)
        for k, v in p.unknown.items():
            merged.unknown.setdefault(k, v)
    rng = random.SystemRandom()
    rng.shuffle(merged.inputs)
    rng.shuffle(merged.outputs)
    return merged.to_base64()


@rpc("analyzepsbt", "Rawtransactions", [PSBT_ARG],
     description="Analyzes and provides information about the current status of a PSBT and "
                 "its inputs")
def analyzepsbt(node, psbt):
    result = analyze(decode_psbt(psbt))
    if "estimated_feerate" in result:
        result["estimated_feerate"] = btc(result["estimated_feerate"])
    if "fee" in result:
        result["fee"] = btc(result["fee"])
    return result


__all__ = ["decode_json", "decode_psbt", "descriptors_provider", "finalize_psbt",
           "parse_sighash", "process_psbt", "psbt_version_of"]
