"""Wallet RPCs: addresses, labels and descriptors (Core's wallet/rpc/addresses.cpp)."""

from __future__ import annotations

import time

from consensus.script.script import is_p2sh, witness_program
from wallet.address import AddressError, decode_address, script_to_address, validate_address
from wallet.bip32 import format_path
from wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.rpc import (
    ARR,
    BOOL,
    STR,
    Call,
    Param,
    address_script,
    coin_desc,
    method,
)

# -- addresses -------------------------------------------------------------------------------


@method("getnewaddress", Param("label", STR, ""), Param("address_type", STR, None),
        syncs=False)
def getnewaddress(call: Call, label, address_type):
    w = call.w
    if label == "*":
        raise WalletError(-11, "Invalid label name")
    return w.new_address(address_type or "bech32", label)


@method("getrawchangeaddress", Param("address_type", STR, None), syncs=False)
def getrawchangeaddress(call: Call, address_type):
    return call.w.new_address(address_type or "bech32", internal=True)


@method("getaddressinfo", Param("address", STR), syncs=False)
def getaddressinfo(call: Call, address):
    w = call.w
    try:
        dest = decode_address(address, w.params)
    except AddressError as err:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, f"Invalid address: {err.message}") from None
    script = dest.script
    owner = w.owner(script)
    canonical = script_to_address(script, w.params)
    out: dict = {"address": canonical, "scriptPubKey": script.hex(), "ismine": owner is not None,
                 "solvable": owner is not None}
    if owner is not None:
        acc, index = owner
        out["desc"] = coin_desc(w, script)
        out["parent_desc"] = acc.descriptor
    out["iswatchonly"] = False
    wp = witness_program(script)
    # Core's DescribeAddress (validateaddress's fields): no isscript for unknown witness versions
    described = validate_address(canonical, w.params).to_rpc()
    for key in ("isscript", "iswitness", "witness_version", "witness_program"):
        if key in described:
            out[key] = described[key]
    if owner is not None:
        acc, index = owner
        key = acc.expansion(index).keys[0]
        if is_p2sh(script):
            out["script"] = "witness_v0_keyhash"
        if wp is None or wp[0] != 1:
            out["pubkey"] = key.pubkey.hex()
        out["ischange"] = acc.internal
        out["timestamp"] = acc.created
        out["hdkeypath"] = format_path(key.path, prefix="m")
        out["hdmasterfingerprint"] = key.fingerprint.hex()
    else:
        out["ischange"] = False
    out["labels"] = [w.labels[canonical]] if canonical in w.labels else []
    return out


@method("setlabel", Param("address", STR), Param("label", STR), syncs=False)
def setlabel(call: Call, address, label):
    address_script(call.w, address)
    call.w.set_label(address, label)
    return None


@method("listlabels", Param("purpose", STR, None), syncs=False)
def listlabels(call: Call, purpose):
    return sorted(set(call.w.labels.values()))


@method("listdescriptors", Param("private", BOOL, False), syncs=False)
def listdescriptors(call: Call, private):
    w = call.w
    if private:
        w.require_unlocked()
    out = []
    for acc in sorted(w.accounts.values(), key=lambda a: a.descriptor):
        text = acc.descriptor
        if private:
            if acc.private is None:
                raise WalletError(RPC_WALLET_ERROR, "Can't get descriptor string.")
            text = acc.private.to_string(private=True)
        d: dict = {"desc": text, "timestamp": acc.created, "active": acc.active}
        if acc.active:
            d["internal"] = acc.internal
        if acc.ranged:
            d["range"] = [0, acc.range_end - 1]
            d["next"] = acc.next_index
            d["next_index"] = acc.next_index
        out.append(d)
    return {"wallet_name": w.name, "descriptors": out}


@method("importdescriptors", Param("requests", ARR), syncs=True)
def importdescriptors(call: Call, requests):
    w = call.w
    results = []
    rescan_from = None
    for req in requests:
        try:
            if not isinstance(req, dict) or "desc" not in req:
                raise WalletError(RPC_TYPE_ERROR, "Descriptor not found.")
            ts = req.get("timestamp")
            if ts is None:
                raise WalletError(RPC_TYPE_ERROR, "Missing required timestamp field for key")
            timestamp = int(time.time()) if ts == "now" else int(ts)
            rng = req.get("range")
            end = None
            if rng is not None:
                end = rng if isinstance(rng, int) else int(rng[1])
            w.import_descriptor(req["desc"], timestamp, bool(req.get("active", False)),
                                bool(req.get("internal", False)), end, req.get("label"))
            if ts != "now":
                rescan_from = 0
            results.append({"success": True})
        except WalletError as err:
            results.append({"success": False, "error": err.to_json()})
    if rescan_from is not None:
        call.manager.rescan(w, 0, None)
    return results
