"""Signing RPCs that need no wallet: signrawtransactionwithkey and combinerawtransaction
(rpc/rawtransaction.cpp), createmultisig (rpc/output_script.cpp), signmessagewithprivkey and
verifymessage (rpc/signmessage.cpp), with Core's arguments, results and errors."""

from __future__ import annotations

from consensus.amounts import MAX_MONEY
from consensus.hashes import hash160, sha256
from consensus.script.script import MAX_PUBKEYS_PER_MULTISIG, MAX_SCRIPT_ELEMENT_SIZE
from consensus.script.sighash import SIGHASH_ALL, PrecomputedTxData
from consensus.script.standard import (
    multisig_script,
    p2sh_script,
    p2wsh_script,
    script_to_asm,
)
from consensus.tx import TxOut
from node.rpc.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ERROR,
    RPCError,
)
from node.rpc.params import amount as parse_amount
from node.rpc.params import parse_hash, parse_hex
from node.rpc.rawtransactions import decode_tx
from node.rpc.registry import ARR, NUM, STR, Arg, json_type, rpc
from wallet.address import (
    AddressError,
    WIFError,
    decode_address,
    decode_wif,
    script_to_address,
)
from wallet.amounts import json_integer
from wallet.descriptors import SigningProvider, infer_descriptor
from wallet.keys import is_fully_valid_pubkey
from wallet.sign import (  # the parts of Core's ProduceSignature that combining reuses
    KeyStore,
    MalformedSignature,
    SighashError,
    _pushes,
    _signatures_in,
    _Signer,
    _verifies,
    produce_signature,
    recover_message_pubkey,
    sighash_from_name,
    sign_message,
    sign_transaction,
)


def _out_string(out: TxOut) -> str:
    """CTxOut::ToString."""
    return (f"CTxOut(nValue={out.value // 100_000_000}.{out.value % 100_000_000:08d}, "
            f"scriptPubKey={out.script_pubkey.hex()[:30]})")


def _check_obj_types(obj: dict, fields: dict[str, str], allow_null: bool = False) -> None:
    """RPCTypeCheckObj: each field present with its JSON type (or absent/null if allowed)."""
    for key, expected in fields.items():
        v = obj.get(key)
        if v is None:
            if allow_null:
                continue
            raise RPCError(RPC_TYPE_ERROR, f"Missing {key}")
        if json_type(v) != expected:
            raise RPCError(RPC_TYPE_ERROR,
                           f"JSON value of type {json_type(v)} for field {key} is not of "
                           f"expected type {expected}")


def parse_prevouts(prevtxs, store: KeyStore | None, coins: dict) -> None:
    """Core's ParsePrevouts: the outputs the caller vouches for (they replace what the node
    found), and for P2SH/P2WSH ones their redeem or witness scripts into the key store."""
    if prevtxs is None:
        return
    for p in prevtxs:
        if not isinstance(p, dict):
            raise RPCError(RPC_DESERIALIZATION_ERROR,
                           'expected object with {"txid\'","vout","scriptPubKey"}')
        _check_obj_types(p, {"txid": "string", "vout": "number", "scriptPubKey": "string"})
        txid = parse_hash(p["txid"], "txid")
        n = p["vout"]
        try:
            n = json_integer(n)
        except ValueError as err:
            raise RPCError(RPC_TYPE_ERROR, str(err)) from None
        if n < 0:
            raise RPCError(RPC_DESERIALIZATION_ERROR, "vout cannot be negative")
        spk = parse_hex(p["scriptPubKey"], "scriptPubKey")
        known = coins.get((txid, n))
        if known is not None and known.script_pubkey != spk:
            raise RPCError(RPC_DESERIALIZATION_ERROR,
                           "Previous output scriptPubKey mismatch:\n"
                           f"{script_to_asm(known.script_pubkey)}\nvs:\n{script_to_asm(spk)}")
        value = MAX_MONEY
        if "amount" in p:
            value = parse_amount(p["amount"])
        coins[(txid, n)] = TxOut(value, spk)
        is_p2sh = len(spk) == 23 and spk[0] == 0xA9 and spk[1] == 20 and spk[22] == 0x87
        is_p2wsh = len(spk) == 34 and spk[0] == 0 and spk[1] == 32
        if store is None or not (is_p2sh or is_p2wsh):
            continue
        _check_obj_types(p, {"redeemScript": "string", "witnessScript": "string"},
                         allow_null=True)
        rs, ws = p.get("redeemScript"), p.get("witnessScript")
        if rs is None and ws is None:
            raise RPCError(RPC_INVALID_PARAMETER, "Missing redeemScript/witnessScript")
        script = parse_hex(ws, "witnessScript") if ws is not None else parse_hex(
            rs, "redeemScript")
        store.add_script(script)
        wrapped = p2wsh_script(sha256(script))
        store.add_script(wrapped)  # for P2SH-P2WSH given as a redeemScript
        if ws is not None and rs is not None and ws != rs:
            if parse_hex(rs, "redeemScript") != wrapped:
                raise RPCError(RPC_INVALID_PARAMETER,
                               "redeemScript does not correspond to witnessScript")
        if is_p2sh:
            if spk not in (p2sh_script(hash160(script)), p2sh_script(hash160(wrapped))):
                raise RPCError(RPC_INVALID_PARAMETER,
                               "redeemScript/witnessScript does not match scriptPubKey")
        elif spk != wrapped:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "redeemScript/witnessScript does not match scriptPubKey")


def _find_coins(node, tx) -> dict:
    """Core's FindCoins: each input's output from the mempool or the UTXO set."""
    coins: dict = {}
    mempool = getattr(node, "mempool", None)
    for txin in tx.vin:
        key = (txin.prevout.hash, txin.prevout.n)
        if key in coins:
            continue
        out = mempool.get_output(*key) if mempool is not None else None
        if out is None:
            coin = node.chain.get_coin(*key)
            if coin is not None:
                out = TxOut(coin.value, coin.script_pubkey)
        if out is not None:
            coins[key] = out
    return coins


def sign_with_coins(tx, store: KeyStore, coins: dict, sighashtype) -> dict:
    """Core's SignTransaction: sign, verify each input, and report hex, complete, errors."""
    try:
        hash_type = sighash_from_name(sighashtype)
    except SighashError as err:
        raise RPCError(RPC_INVALID_PARAMETER, str(err)) from None
    spent = [coins.get((txin.prevout.hash, txin.prevout.n)) for txin in tx.vin]
    errors = sign_transaction(tx, store, spent, hash_type)
    for i, txin in enumerate(tx.vin):
        out = spent[i]
        if out is not None and out.value == MAX_MONEY and txin.witness:
            raise RPCError(RPC_TYPE_ERROR, f"Missing amount for {_out_string(out)}")
    result: dict = {"hex": tx.serialize().hex(), "complete": not errors}
    if errors:
        result["errors"] = [
            {
                "txid": tx.vin[i].prevout.hash[::-1].hex(),
                "vout": tx.vin[i].prevout.n,
                "witness": [w.hex() for w in tx.vin[i].witness],
                "scriptSig": tx.vin[i].script_sig.hex(),
                "sequence": tx.vin[i].sequence,
                "error": message,
            }
            for i, message in errors
        ]
    return result


@rpc("signrawtransactionwithkey", "Rawtransactions",
     [Arg("hexstring", STR, help="The transaction hex string"),
      Arg("privkeys", ARR, help="The base58-encoded private keys for signing"),
      Arg("prevtxs", ARR, False, None,
          "The previous dependent transaction outputs: [{\"txid\":\"hex\",\"vout\":n,"
          "\"scriptPubKey\":\"hex\",\"redeemScript\":\"hex\",\"witnessScript\":\"hex\","
          "\"amount\":amount},...]"),
      Arg("sighashtype", STR, False, "DEFAULT",
          'The signature hash type. Must be one of: "DEFAULT", "ALL", "NONE", "SINGLE", '
          '"ALL|ANYONECANPAY", "NONE|ANYONECANPAY", "SINGLE|ANYONECANPAY"')],
     description="Sign inputs for raw transaction (serialized, hex-encoded).\nThe second "
                 "argument is an array of base58-encoded private\nkeys that will be the only "
                 "keys used to sign the transaction.\nThe third optional argument (may be "
                 "null) is an array of previous transaction outputs that\nthis transaction "
                 "depends on but may not yet be in the block chain.")
def signrawtransactionwithkey(node, hexstring, privkeys, prevtxs, sighashtype):
    try:
        tx = decode_tx(hexstring)
    except RPCError as err:
        if err.code != RPC_DESERIALIZATION_ERROR:
            raise
        raise RPCError(RPC_DESERIALIZATION_ERROR,
                       "TX decode failed. Make sure the tx has at least one input.") from None
    store = KeyStore()
    for k in privkeys:
        if not isinstance(k, str):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(k)} is not of "
                           "expected type string")
        try:
            secret, compressed = decode_wif(k, node.params)
        except WIFError:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid private key") from None
        store.add_key(secret, compressed)
    coins = _find_coins(node, tx)
    parse_prevouts(prevtxs, store, coins)
    return sign_with_coins(tx, store, coins, sighashtype)


# -- combinerawtransaction -------------------------------------------------------------------

def combine_transactions(variants: list, outs: list[TxOut]) -> None:
    """Combine the signatures of the variants into variants[0] (in place), as Core's
    combinerawtransaction: per input, a variant whose input already verifies is taken as
    it is; else every signature of any variant goes into one scriptSig/witness, built as
    signing with no keys builds it (a multisig's signatures in key order, OP_0 for the
    missing ones)."""
    merged = variants[0]
    data = [PrecomputedTxData(v, outs) if len(v.vin) == len(outs) else PrecomputedTxData(v)
            for v in variants]
    merged_data = data[0]
    for i, txin in enumerate(merged.vin):
        out = outs[i]
        complete = None
        sigs: dict[bytes, bytes] = {}
        store = KeyStore()
        for v, txdata in zip(variants, data, strict=True):
            if len(v.vin) <= i:
                continue
            vin = v.vin[i]
            if _verifies(v, i, outs, txdata):
                complete = (vin.script_sig, list(vin.witness))
                break
            for push in [*_pushes(vin.script_sig), *vin.witness]:
                if push:
                    store.add_script(push)
                    if len(push) in (33, 65):
                        store.pubkeys.setdefault(hash160(push), push)
            for pub, sig in _signatures_in(v, i, out, store, txdata).items():
                sigs.setdefault(pub, sig)
        if complete is None:
            signer = _Signer(store, merged, i, out.value, SIGHASH_ALL, merged_data, sigs)
            script_sig, witness, _ = produce_signature(signer, out.script_pubkey)
            complete = (script_sig, witness)
        txin.script_sig, txin.witness = complete
    merged.rehash()


@rpc("combinerawtransaction", "Rawtransactions",
     [Arg("txs", ARR, help="The hex strings of partially signed transactions")],
     description="Combine multiple partially signed transactions into one transaction.\n"
                 "The combined transaction may be another partially signed transaction or a \n"
                 "fully signed transaction.",
     result='"str"    (string) The hex-encoded raw transaction with signature(s)',
     examples=["combinerawtransaction '[\"myhex1\", \"myhex2\", \"myhex3\"]'"])
def combinerawtransaction(node, txs):
    variants = []
    for idx, text in enumerate(txs):
        if not isinstance(text, str):  # Core's get_str() on an element: -1
            raise RPCError(RPC_MISC_ERROR, f"JSON value of type {json_type(text)} is not of "
                           "expected type string")
        try:
            variants.append(decode_tx(text))
        except RPCError:
            raise RPCError(RPC_DESERIALIZATION_ERROR, f"TX decode failed for tx {idx}. Make "
                           "sure the tx has at least one input.") from None
    if not variants:
        raise RPCError(RPC_DESERIALIZATION_ERROR, "Missing transactions")
    merged = variants[0]
    with node.chain.lock:  # the coins from one view of the chain and mempool
        coins = _find_coins(node, merged)
    outs = []
    for txin in merged.vin:
        out = coins.get((txin.prevout.hash, txin.prevout.n))
        if out is None:
            raise RPCError(RPC_VERIFY_ERROR, "Input not found or already spent")
        outs.append(out)
    combine_transactions(variants, outs)
    return merged.serialize().hex()


# -- createmultisig ---------------------------------------------------------------------------

def hex_to_pubkey(text: str) -> bytes:
    """Core's HexToPubKey, with its errors."""
    try:
        data = bytes.fromhex(text) if text and " " not in text else None
    except ValueError:
        data = None
    if data is None:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, f'Pubkey "{text}" must be a hex string')
    if len(data) not in (33, 65):
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       f'Pubkey "{text}" must have a length of either 33 or 65 bytes')
    if not is_fully_valid_pubkey(data):
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       f'Pubkey "{text}" must be cryptographically valid.')
    return data


_OUTPUT_TYPES = ("legacy", "p2sh-segwit", "bech32", "bech32m")


def multisig_destination(required, pubkeys: list[bytes], output_type: str
                         ) -> tuple[bytes, bytes, str]:
    """Core's AddAndGetMultisigDestination: (redeem script, scriptPubKey, output type made),
    with uncompressed keys forcing legacy."""
    if required < 1:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "a multisignature address must require at least one key to redeem")
    if len(pubkeys) < required:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"not enough keys supplied (got {len(pubkeys)} keys, but need at least "
                       f"{required} to redeem)")
    if len(pubkeys) > MAX_PUBKEYS_PER_MULTISIG:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Number of keys involved in the multisignature address creation > "
                       f"{MAX_PUBKEYS_PER_MULTISIG}\nReduce the number")
    script = multisig_script(required, pubkeys)
    if len(script) > MAX_SCRIPT_ELEMENT_SIZE:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"redeemScript exceeds size limit: {len(script)} > "
                       f"{MAX_SCRIPT_ELEMENT_SIZE}")
    if any(len(k) != 33 for k in pubkeys):
        output_type = "legacy"
    if output_type == "legacy":
        spk = p2sh_script(hash160(script))
    else:
        wsh = p2wsh_script(sha256(script))
        spk = wsh if output_type == "bech32" else p2sh_script(hash160(wsh))
    return script, spk, output_type


@rpc("createmultisig", "Util",
     [Arg("nrequired", NUM, help="The number of required signatures out of the n keys."),
      Arg("keys", ARR, help="The hex-encoded public keys."),
      Arg("address_type", STR, False, "legacy",
          'The address type to use. Options are "legacy", "p2sh-segwit", and "bech32".')],
     description="Creates a multi-signature address with n signatures of m keys required.\n"
                 "It returns a json object with the address and redeemScript.")
def createmultisig(node, nrequired, keys, address_type):
    required = int(nrequired)
    pubkeys = []
    for k in keys:
        if not isinstance(k, str):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(k)} is not of "
                           "expected type string")
        pubkeys.append(hex_to_pubkey(k))
    output_type = "legacy" if address_type is None else address_type
    if output_type not in _OUTPUT_TYPES:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, f"Unknown address type '{output_type}'")
    if output_type == "bech32m":
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       "createmultisig cannot create bech32m multisig addresses")
    script, spk, made = multisig_destination(required, pubkeys, output_type)
    provider = SigningProvider()
    provider.scripts[hash160(script)] = script
    wsh = p2wsh_script(sha256(script))
    provider.scripts[hash160(wsh)] = wsh
    result = {
        "address": script_to_address(spk, node.params),
        "redeemScript": script.hex(),
        "descriptor": infer_descriptor(spk, node.params, provider),
    }
    if made != output_type:
        # Only when the caller chose a type that cannot be made.
        result["warnings"] = ["Unable to make chosen address type, please ensure no "
                              "uncompressed public keys are present."]
    return result


# -- messages ---------------------------------------------------------------------------------

@rpc("signmessagewithprivkey", "Util",
     [Arg("privkey", STR, help="The private key to sign the message with."),
      Arg("message", STR, help="The message to create a signature of.")],
     description="Sign a message with the private key of an address")
def signmessagewithprivkey(node, privkey, message):
    try:
        secret, compressed = decode_wif(privkey, node.params)
    except WIFError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid private key") from None
    return sign_message(secret, message, compressed)


@rpc("verifymessage", "Util",
     [Arg("address", STR, help="The bitcoin address to use for the signature."),
      Arg("signature", STR,
          help="The signature provided by the signer in base 64 encoding (see signmessage)."),
      Arg("message", STR, help="The message that was signed.")],
     description="Verify a signed message.")
def verifymessage(node, address, signature, message):
    try:
        dest = decode_address(address, node.params)
    except AddressError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid address") from None
    if dest.kind != "pubkeyhash":
        raise RPCError(RPC_TYPE_ERROR, "Address does not refer to key")
    try:
        pub = recover_message_pubkey(signature, message)
    except MalformedSignature:
        raise RPCError(RPC_TYPE_ERROR, "Malformed base64 encoding") from None
    return pub is not None and hash160(pub) == dest.payload
