"""Wallet RPCs: addresses, labels and descriptors (Core's wallet/rpc/addresses.cpp)."""

from __future__ import annotations

from typing import Any

from consensus.hashes import hash160, sha256
from consensus.script.standard import (
    MULTISIG,
    PUBKEYHASH,
    SCRIPTHASH,
    WITNESS_V0_KEYHASH,
    WITNESS_V0_SCRIPTHASH,
    solver,
)
from wallet.accounts import ADDRESS_TYPES, address_type_of
from wallet.address import AddressError, decode_address, script_to_address, validate_address
from wallet.bip32 import format_path
from wallet.descriptors import (
    BIP32Key,
    ComboDescriptor,
    ConstKey,
    Descriptor,
    DescriptorError,
    KeyExpr,
    MuSigKey,
    parse_descriptors,
    parse_range,
)
from wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    RPC_WALLET_INVALID_LABEL_NAME,
    WalletError,
)
from wallet.miniscript import Fragment
from wallet.rpc import (
    ARR,
    BOOL,
    NUM,
    OBJ,
    STR,
    Call,
    Param,
    address_script,
    coin_desc,
    json_type,
    method,
)
from wallet.sync import sync
from wallet.wallet import Wallet

# -- addresses -------------------------------------------------------------------------------


def _label(label: str) -> str:
    """Core's LabelFromValue: any string but "*" (which means every label elsewhere)."""
    if label == "*":
        raise WalletError(RPC_WALLET_INVALID_LABEL_NAME, "Invalid label name")
    return label


@method("getnewaddress", Param("label", STR, ""), Param("address_type", STR, None),
        syncs=False)
def getnewaddress(call: Call, label, address_type):
    w = call.w
    return w.new_address(_output_type(address_type or w.address_type), _label(label))


@method("getrawchangeaddress", Param("address_type", STR, None), syncs=False)
def getrawchangeaddress(call: Call, address_type):
    w = call.w
    kind = address_type or w.change_type or w.address_type
    return w.new_address(_output_type(kind), internal=True)


def _output_type(name: str) -> str:
    """Core's ParseOutputType, with its error."""
    if name not in ADDRESS_TYPES:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, f"Unknown address type '{name}'")
    return name


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
    # Core's DescribeAddress (validateaddress's fields): no isscript for unknown witness versions
    described = validate_address(canonical, w.params).to_rpc()
    for key in ("isscript", "iswitness", "witness_version", "witness_program"):
        if key in described:
            out[key] = described[key]
    if owner is not None:
        acc, index = owner
        exp = acc.expansion(index)
        key = exp.keys[0]
        out.update(_describe_wallet_address(w, script, exp))
        out["ischange"] = acc.internal
        out["timestamp"] = acc.created
        out["hdkeypath"] = format_path(key.path, prefix="m")
        out["hdmasterfingerprint"] = key.fingerprint.hex()
    else:
        out["ischange"] = False
    out["labels"] = [w.labels[canonical]] if canonical in w.labels else []
    return out


def _describe_wallet_address(w, script: bytes, exp, depth: int = 0) -> dict:  # noqa: ANN001
    """Core's DescribeWalletAddress: what the wallet knows behind an address (the public
    key of a key hash; the redeem or witness script of a script hash, described in turn as
    "embedded" when it is an address itself, or its keys when it is a multisig)."""
    kind, sols = solver(script)
    out: dict = {}
    if kind in (PUBKEYHASH, WITNESS_V0_KEYHASH):
        for k in exp.keys:
            if hash160(k.pubkey) == sols[0]:
                out["pubkey"] = k.pubkey.hex()
                if kind == PUBKEYHASH:
                    out["iscompressed"] = len(k.pubkey) == 33
                break
    elif kind in (SCRIPTHASH, WITNESS_V0_SCRIPTHASH) and depth < 3:
        h = sols[0]
        sub = exp.subscripts.get(h)
        if sub is None and kind == WITNESS_V0_SCRIPTHASH:
            sub = next((s for s in exp.subscripts.values() if sha256(s) == h), None)
        if sub is None and kind == SCRIPTHASH:
            sub = next((s for s in exp.subscripts.values() if hash160(s) == h), None)
        if sub is not None:
            sub_kind, sub_sols = solver(sub)
            out["script"] = sub_kind
            out["hex"] = sub.hex()
            addr = script_to_address(sub, w.params)
            if addr is not None:
                embedded = {k: v for k, v in validate_address(addr, w.params).to_rpc().items()
                            if k in ("isscript", "iswitness", "witness_version",
                                     "witness_program")}
                embedded.update(_describe_wallet_address(w, sub, exp, depth + 1))
                embedded["address"] = addr
                embedded["scriptPubKey"] = sub.hex()
                if "pubkey" in embedded:
                    out["pubkey"] = embedded["pubkey"]
                out["embedded"] = embedded
            elif sub_kind == MULTISIG:
                out["sigsrequired"] = sub_sols[0][0]
                out["pubkeys"] = [k.hex() for k in sub_sols[1:-1]]
    return out


@method("signmessage", Param("address", STR), Param("message", STR), syncs=False)
def signmessage(call: Call, address, message):
    from wallet.sign import sign_message

    w = call.w
    w.require_unlocked()
    try:
        dest = decode_address(address, w.params)
    except AddressError:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid address") from None
    if dest.kind != "pubkeyhash":
        raise WalletError(RPC_TYPE_ERROR, "Address does not refer to key")
    owner = w.owner(dest.script)
    secret = None
    if owner is not None:
        acc, index = owner
        for key in acc.expansion(index).keys:
            if hash160(key.pubkey) == dest.payload:
                secret = acc.secret_for(key.pubkey, index)
                compressed = len(key.pubkey) == 33
                break
    if secret is None:
        raise WalletError(RPC_WALLET_ERROR, "Private key not available")
    return sign_message(secret, message, compressed)


@method("keypoolrefill", Param("newsize", NUM, None), syncs=False)
def keypoolrefill(call: Call, newsize):
    w = call.w
    size = w.lookahead
    if newsize is not None:
        if newsize < 0:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, expected valid size.")
        size = int(newsize)
    w.require_unlocked()
    w.top_up_all(size)
    if w.keypool_size() < size:
        raise WalletError(RPC_WALLET_ERROR, "Error refreshing keypool.")
    return None


@method("setlabel", Param("address", STR), Param("label", STR), syncs=False)
def setlabel(call: Call, address, label):
    address_script(call.w, address)
    call.w.set_label(address, _label(label))
    return None


def _purpose(w, address: str) -> str:
    """Core's address book purpose: "receive" for the wallet's own addresses, "send" for
    others it was given a label for."""
    return "receive" if w.is_mine(decode_address(address, w.params).script) else "send"


@method("listlabels", Param("purpose", STR, None), syncs=False)
def listlabels(call: Call, purpose):
    w = call.w
    if not purpose:
        return sorted(set(w.labels.values()))
    if purpose not in ("send", "receive", "refund"):
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid 'purpose' argument, must be a known "
                          "purpose string, typically 'send', or 'receive'.")
    return sorted({label for address, label in w.labels.items()
                   if _purpose(w, address) == purpose})


@method("getaddressesbylabel", Param("label", STR), syncs=False)
def getaddressesbylabel(call: Call, label):
    """Core's getaddressesbylabel: each address with exactly this label, and its purpose."""
    w = call.w
    label = _label(label)
    found = {address: {"purpose": _purpose(w, address)}
             for address, name in sorted(w.labels.items()) if name == label}
    if not found:
        raise WalletError(RPC_WALLET_INVALID_LABEL_NAME, f"No addresses with label {label}")
    return found


@method("listdescriptors", Param("private", BOOL, False), syncs=False)
def listdescriptors(call: Call, private):
    w = call.w
    if private and not w.private_keys_enabled:
        raise WalletError(RPC_WALLET_ERROR, "Can't get private descriptor string for "
                          "watch-only wallets")
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
            d["range"] = [acc.range_start, acc.range_end - 1]
            d["next"] = acc.next_index
            d["next_index"] = acc.next_index
        out.append(d)
    return {"wallet_name": w.name, "descriptors": out}


TIMESTAMP_WINDOW = 2 * 60 * 60  # Core's: blocks this long before a key's time are scanned
MISSING_KEYS_WARNING = ("Not all private keys provided. Some wallet functionality may return "
                        "unexpected errors")


def _import_timestamp(req: Any, now: int) -> int:
    """Core's GetImportTimestamp (its errors fail the whole call)."""
    if isinstance(req, dict) and "timestamp" in req:
        ts = req["timestamp"]
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return int(ts)
        if ts == "now":
            return now
        raise WalletError(RPC_TYPE_ERROR, 'Expected number or "now" timestamp value for key. '
                          f"got type {json_type(ts)}")
    raise WalletError(RPC_TYPE_ERROR, "Missing required timestamp field for key")


def _import_one(w: Wallet, req: dict, timestamp: int, warnings: list[str]) -> None:
    """Core's ProcessDescriptorImport: checks in Core's order, then the import."""
    if "desc" not in req:
        raise WalletError(RPC_INVALID_PARAMETER, "Descriptor not found.")
    text = req["desc"]
    if not isinstance(text, str):
        raise WalletError(RPC_TYPE_ERROR, "desc must be a string")
    active = bool(req.get("active", False))
    label = req.get("label")
    if label is not None and not isinstance(label, str):
        raise WalletError(RPC_TYPE_ERROR, "label must be a string")
    if label is not None:
        _label(label)
    try:
        descs = parse_descriptors(text, w.params, require_checksum=True)
    except DescriptorError as err:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, str(err)) from None
    desc = descs[0]
    if "internal" in req and len(descs) > 1:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Cannot have multipath descriptor while "
                          "also specifying 'internal'")
    internal = bool(req.get("internal", False))
    rng = None
    next_index = None
    if not desc.is_range() and "range" in req:
        raise WalletError(RPC_INVALID_PARAMETER, "Range should not be specified for an "
                          "un-ranged descriptor")
    if desc.is_range():
        if "range" in req:
            try:
                begin, end = parse_range(req["range"])
            except DescriptorError as err:
                raise WalletError(RPC_INVALID_PARAMETER, str(err)) from None
            rng = (begin, end + 1)
        else:
            warnings.append("Range not given, using default keypool range")
            rng = (0, w.lookahead)
        if "next_index" in req:
            next_index = int(req["next_index"])
            if not rng[0] <= next_index < rng[1]:
                raise WalletError(RPC_INVALID_PARAMETER, "next_index is out of range")
    if active and not desc.is_range():
        raise WalletError(RPC_INVALID_PARAMETER, "Active descriptors must be ranged")
    if len(descs) > 1 and "label" in req:
        raise WalletError(RPC_INVALID_PARAMETER, "Multipath descriptors should not have a "
                          "label")
    if desc.is_range() and "label" in req:
        raise WalletError(RPC_INVALID_PARAMETER, "Ranged descriptors should not have a label")
    if internal and "label" in req:
        raise WalletError(RPC_INVALID_PARAMETER, "Internal addresses should not have a label")
    if active and isinstance(desc, ComboDescriptor):
        raise WalletError(RPC_WALLET_ERROR, "Combo descriptors cannot be set to active")
    if not w.private_keys_enabled and desc.has_private_keys():
        raise WalletError(RPC_WALLET_ERROR, "Cannot import private keys to a wallet with "
                          "private keys disabled")
    for j, one in enumerate(descs):
        if len(descs) == 2:  # a <0;1> pair: receive and change
            internal = j == 1
        warnings.extend(_descriptor_warnings(one))
        try:
            one.expand_full(rng[0] if rng else 0)
        except DescriptorError:
            raise WalletError(RPC_WALLET_ERROR, "Cannot expand descriptor. Probably because "
                              "of hardened derivations without private keys provided") from None
        if w.private_keys_enabled:
            if not one.has_private_keys():
                raise WalletError(RPC_WALLET_ERROR, "Cannot import descriptor without private "
                                  "keys to a wallet with private keys enabled")
            if not _all_private(one):
                warnings.append(MISSING_KEYS_WARNING)
        if not one.has_scripts():  # unused(KEY): a key for the wallet, not yet in a script
            if not w.private_keys_enabled:
                raise WalletError(RPC_WALLET_ERROR, "Cannot import unused() to wallet without "
                                  "private keys enabled")
            if _root_pubkey(one.keys[0]) in _wallet_private_roots(w):
                raise WalletError(RPC_WALLET_ERROR, "Cannot import an unused() descriptor when "
                                  "its private key is already in the wallet")
        try:
            w.import_descriptor(one, timestamp, active, internal, rng, label, next_index)
        except WalletError as err:
            if err.code == RPC_WALLET_ERROR and err.message.startswith("new range"):
                raise WalletError(RPC_WALLET_ERROR, f"Could not add descriptor '{text}': "
                                  f"{err.message}") from None
            raise
        if active and address_type_of(one) is None:
            warnings.append("Unknown output type, cannot set descriptor to active.")


SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22


def _descriptor_warnings(desc: Descriptor) -> list[str]:
    """Core's Descriptor::Warnings: a miniscript older() whose relative lock time cannot be
    enforced as written (more than 65535 blocks, or 65535 * 512 seconds)."""
    out: list[str] = []
    todo = [desc]
    while todo:
        d = todo.pop()
        todo.extend(d.subs)
        node = getattr(d, "node", None)
        nodes = [node] if node is not None else []
        while nodes:
            n = nodes.pop()
            nodes.extend(n.subs)
            if n.frag is Fragment.OLDER:
                value = n.k & ~SEQUENCE_LOCKTIME_TYPE_FLAG
                if value > 0xFFFF:
                    out.append(f"time-based relative locktime: older({n.k}) > (65535 * 512) "
                               "seconds is unsafe" if n.k & SEQUENCE_LOCKTIME_TYPE_FLAG else
                               f"height-based relative locktime: older({n.k}) > 65535 blocks "
                               "is unsafe")
    return out


def _all_keys(desc: Descriptor, participants: bool = True) -> list[KeyExpr]:
    """Every key expression of desc and its sub-descriptors; with participants, a musig()
    expression's participant keys in its place."""
    keys: list[KeyExpr] = []
    todo = [desc]
    while todo:
        d = todo.pop()
        for k in d.keys:
            if isinstance(k, MuSigKey):
                if participants:
                    keys.extend(k.participants)
            else:
                keys.append(k)
        todo.extend(d.subs)
    return keys


def _all_private(desc: Descriptor) -> bool:
    return all(k.has_private_key() for k in _all_keys(desc))


def _root_pubkey(key: KeyExpr) -> bytes | None:
    """The public key of a key expression as written (an extended key's own key)."""
    if isinstance(key, BIP32Key):
        return key.ext.pubkey
    if isinstance(key, ConstKey):
        return key.pubkey
    return None


def _wallet_private_roots(w: Wallet) -> set[bytes]:
    """Public keys of the private keys the wallet's descriptors were given (Core's GetKey)."""
    out = set()
    for acc in w.accounts.values():
        if acc.private is None:
            continue
        for k in _all_keys(acc.private):
            if k.has_private_key():
                pub = _root_pubkey(k)
                if pub is not None:
                    out.add(pub)
    return out


@method("importdescriptors", Param("requests", ARR), syncs=True)
def importdescriptors(call: Call, requests):
    w = call.w
    w.require_unlocked()
    now = call.manager.tip_mtp(w)
    results = []
    lowest = None
    for req in requests:
        timestamp = max(_import_timestamp(req, now), 1)
        warnings: list[str] = []
        try:
            _import_one(w, req, timestamp, warnings)
            result: dict = {"success": True}
            lowest = timestamp if lowest is None else min(lowest, timestamp)
        except WalletError as err:
            result = {"success": False, "error": err.to_json()}
        if warnings:
            result["warnings"] = warnings
        results.append(result)
    if lowest is not None:
        call.manager.rescan_from_time(w, lowest - TIMESTAMP_WINDOW)
        sync(w, call.node)  # and the mempool, as Core's import scans it too
    return results


# -- HD keys ---------------------------------------------------------------------------------


@method("gethdkeys", Param("options", OBJ, None), syncs=False)
def gethdkeys(call: Call, options):
    """Core's gethdkeys: the extended keys the wallet's descriptors are written with (a
    musig() aggregate is not one), each with the descriptors that use it."""
    w = call.w
    opts = options or {}
    flags = {}
    for name in ("active_only", "private"):
        value = opts.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not "
                              "of expected type bool")
        flags[name] = value
    if flags["private"]:
        w.require_unlocked()
    found: dict[tuple[bytes, bytes], dict] = {}
    for acc in w.accounts.values():
        if flags["active_only"] and not acc.active:
            continue
        # while an encrypted wallet is locked its private descriptors are sealed: the keys
        # are the public descriptor's (an account-level xpub where the private form has the
        # master key), known to have their private keys sealed beside them
        sealed = acc.private is None and acc.secret is not None
        desc = acc.private if acc.private is not None else acc.desc
        for key in _all_keys(desc, participants=False):
            if not isinstance(key, BIP32Key):
                continue
            ext = key.ext
            entry = found.setdefault((ext.pubkey, ext.chain_code),
                                     {"xpub": ext.neuter(), "xprv": None, "descs": set()})
            entry["descs"].add((acc.descriptor, acc.active, ext.is_private or sealed))
            if ext.is_private:
                entry["xprv"] = ext
    out = []
    for _, entry in sorted(found.items(), key=lambda kv: kv[0]):
        descs = sorted(entry["descs"])
        item: dict = {"xpub": entry["xpub"].serialize(w.params),
                      "has_private": any(has for _, _, has in descs)}
        if flags["private"]:
            xprv = entry["xprv"]
            item["xprv"] = xprv.serialize(w.params) if xprv is not None else None
        item["descriptors"] = [{"desc": d, "active": a} for d, a, _ in descs]
        out.append(item)
    return out


def _named_options() -> None:
    """gethdkeys' options may also be given as named parameters (Core's OBJ_NAMED_PARAMS)."""
    from wallet.rpc import METHODS
    from wallet.rpc_psbt import _OptionsByName

    m = METHODS["gethdkeys"]
    METHODS["gethdkeys"] = _OptionsByName(m.name, m.func, m.params, m.needs_wallet, m.syncs)


_named_options()
