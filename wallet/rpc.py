"""The wallet's JSON-RPC methods with Bitcoin Core's names, parameters, result fields and error
codes (src/wallet/rpc/*.cpp). Each method is declared once with its parameters (positional or
named); results use Decimal for BTC amounts, written as plain numbers by the servers.

A method gets a Call: the manager (for wallet-level methods), the wallet the request is for,
and the node client.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from consensus.hashes import hash_to_hex, hex_to_hash
from consensus.params import CHAINS
from consensus.script.script import is_p2sh, witness_program
from consensus.tx import SEQUENCE_FINAL, Transaction
from wallet import spend
from wallet.address import AddressError, decode_address, is_valid_address, script_to_address
from wallet.amounts import parse_btc, parse_fee_rate_sat_vb, to_btc
from wallet.bip32 import format_path
from wallet.descriptors import SigningProvider, infer_descriptor
from wallet.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.psbt import PSBT, PSBTError
from wallet.signer import parse_sighash, sign, update
from wallet.wallet import Wallet, WalletTx

WALLET_VERSION = 169900  # Core's FEATURE_LATEST

# Parameter types
STR, NUM, BOOL, AMOUNT, OBJ, ARR, ANY = "string", "number", "bool", "amount", "object", \
    "array", "any"
REQUIRED = object()


@dataclass
class Param:
    name: str
    type: str
    default: Any = REQUIRED


@dataclass
class Method:
    name: str
    func: Callable
    params: list[Param]
    needs_wallet: bool
    syncs: bool  # bring the wallet up to the node's chain first

    def bind(self, params: Any) -> list[Any]:
        if params is None:
            params = []
        if isinstance(params, dict):
            index = {p.name: i for i, p in enumerate(self.params)}
            values: list[Any] = [_MISSING] * len(self.params)
            params = dict(params)
            # bitcoin-cli -named sends the arguments given without a name as "args"
            extra = params.pop("args", [])
            if not isinstance(extra, list) or len(extra) > len(self.params):
                raise WalletError(RPC_INVALID_PARAMETER, "args must be an array of at most "
                                  f"{len(self.params)} values")
            values[:len(extra)] = extra
            for k, v in params.items():
                if k not in index:
                    raise WalletError(RPC_INVALID_PARAMETER, f"Unknown named parameter {k}")
                if values[index[k]] is not _MISSING:
                    raise WalletError(RPC_INVALID_PARAMETER, f"Parameter {k} specified twice "
                                      "both as positional and named argument")
                values[index[k]] = v
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise WalletError(RPC_MISC_ERROR, f"{self.name}: too many parameters "
                                  f"(takes at most {len(self.params)})")
            values = list(params) + [_MISSING] * (len(self.params) - len(params))
        else:
            raise WalletError(RPC_INVALID_PARAMETER, "Params must be an array or object")
        out = []
        for p, v in zip(self.params, values, strict=True):
            if v is _MISSING or v is None:
                if p.default is REQUIRED:
                    raise WalletError(RPC_MISC_ERROR, f"{self.name}: missing required "
                                      f"parameter '{p.name}'")
                out.append(p.default)
                continue
            if not _type_ok(p.type, v):
                raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {_json_type(v)} for "
                                  f"'{p.name}' is not of expected type {p.type}")
            out.append(v)
        return out


_MISSING = object()


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float, Decimal)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return "null" if v is None else type(v).__name__


def _type_ok(t: str, v: Any) -> bool:
    jt = _json_type(v)
    return {STR: jt == "string", NUM: jt == "number", BOOL: jt == "bool",
            AMOUNT: jt in ("number", "string"), OBJ: jt == "object", ARR: jt == "array"
            }.get(t, True)


METHODS: dict[str, Method] = {}


def method(name: str, *params: Param, needs_wallet: bool = True, syncs: bool = True
           ) -> Callable[[Callable], Callable]:
    def wrap(func: Callable) -> Callable:
        METHODS[name] = Method(name, func, list(params), needs_wallet, syncs)
        return func
    return wrap


def json_arg_table() -> dict[str, tuple[tuple[int, str], ...]]:
    """For minibtc-cli: positions and names of the arguments it must parse as JSON."""
    out = {}
    for m in METHODS.values():
        entries = tuple((i, p.name) for i, p in enumerate(m.params) if p.type != STR)
        if entries:
            out[m.name] = entries
    return out


@dataclass
class Call:
    manager: Any  # wallet.service.WalletManager
    wallet: Wallet | None
    node: Any  # wallet.nodeclient.NodeClient

    @property
    def w(self) -> Wallet:
        assert self.wallet is not None
        return self.wallet


# -- helpers ---------------------------------------------------------------------------------


def _address_script(w: Wallet, address: str) -> bytes:
    try:
        return decode_address(address, w.params).script
    except AddressError as err:
        for other in CHAINS.values():
            if other.name != w.params.name and is_valid_address(address, other):
                raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, f"Invalid address '{address}': "
                                  f"it is a {other.name} address, and this wallet is on "
                                  f"{w.params.name}") from None
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, f"Invalid address '{address}': "
                          f"{err.message}") from None


def _txid(s: str, name: str = "txid") -> bytes:
    if not isinstance(s, str) or len(s) != 64 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise WalletError(RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not "
                          f"{len(s) if isinstance(s, str) else 0}, for '{s}')"
                          if isinstance(s, str) and len(s) != 64 else
                          f"{name} must be hexadecimal string (not '{s}')")
    return hex_to_hash(s)


def _lastblock(w: Wallet) -> dict:
    return {"hash": hash_to_hex(w.tip_hash) if w.tip_hash else "", "height": w.tip_height}


def _fee_rate(call: Call, fee_rate: Any, conf_target: Any, estimate_mode: str | None) -> int:
    """sat/kvB from an explicit sat/vB rate, or from the node's estimate."""
    if fee_rate is not None:
        if conf_target is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both conf_target and "
                              "fee_rate. Please provide either a confirmation target in blocks "
                              "for automatic fee estimation, or an explicit fee rate.")
        return parse_fee_rate_sat_vb(fee_rate)
    target = spend.DEFAULT_CONF_TARGET if conf_target is None else int(conf_target)
    return spend.fee_rate_from_node(call.node, target, estimate_mode or "unset")


def _replaceable_str(w: Wallet, wtx: WalletTx) -> str:
    if wtx.height is not None:
        return "no"
    if not wtx.in_mempool:
        return "unknown"
    return "yes" if any(i.sequence < SEQUENCE_FINAL - 1 for i in wtx.tx.vin) else "no"


def _tx_fields(w: Wallet, wtx: WalletTx) -> dict:
    """Core's WalletTxToJSON."""
    depth = w.depth(wtx)
    out: dict = {"confirmations": depth}
    if wtx.tx.is_coinbase():
        out["generated"] = True
    if depth <= 0 and not wtx.tx.is_coinbase():
        out["trusted"] = w.is_trusted(wtx)
    if wtx.height is not None:
        out["blockhash"] = hash_to_hex(wtx.block_hash)
        out["blockheight"] = wtx.height
        out["blockindex"] = wtx.block_pos
        out["blocktime"] = wtx.block_time
    out["txid"] = hash_to_hex(wtx.txid)
    out["wtxid"] = hash_to_hex(wtx.tx.wtxid)
    out["walletconflicts"] = [hash_to_hex(t) for t in w.conflicts(wtx)]
    if wtx.replaced_by is not None:
        out["replaced_by_txid"] = hash_to_hex(wtx.replaced_by)
    if wtx.replaces is not None:
        out["replaces_txid"] = hash_to_hex(wtx.replaces)
    if wtx.comment:
        out["comment"] = wtx.comment
    out["time"] = min(wtx.received, wtx.block_time) if wtx.block_time else wtx.received
    out["timereceived"] = wtx.received
    out["bip125-replaceable"] = _replaceable_str(w, wtx)
    return out


def _entries(w: Wallet, wtx: WalletTx) -> list[dict]:
    """Core's ListTransactions entries (send and receive) for one transaction, without the
    transaction-wide fields."""
    debit = w.debit(wtx)
    fee = (debit - wtx.tx.total_out()) if debit > 0 else 0
    out = []
    mine = set(w.credits[wtx.txid])
    for n, txout in enumerate(wtx.tx.vout):
        if debit > 0:
            if n in mine and w.is_change(txout.script_pubkey):
                continue
            addr = script_to_address(txout.script_pubkey, w.params)
            e: dict = {}
            if addr is not None:
                e["address"] = addr
            e["category"] = "send"
            e["amount"] = to_btc(-txout.value)
            if addr is not None and addr in w.labels:
                e["label"] = w.labels[addr]
            e["vout"] = n
            e["fee"] = to_btc(-fee)
            e["abandoned"] = False
            out.append(e)
    for n in sorted(mine):
        txout = wtx.tx.vout[n]
        if debit > 0 and w.is_change(txout.script_pubkey):
            continue
        addr = script_to_address(txout.script_pubkey, w.params)
        e = {"address": addr} if addr is not None else {}
        if wtx.tx.is_coinbase():
            if w.depth(wtx) < 1:
                cat = "orphan"
            elif w.maturity_left(wtx) > 0:
                cat = "immature"
            else:
                cat = "generate"
        else:
            cat = "receive"
        e["category"] = cat
        e["amount"] = to_btc(txout.value)
        if addr is not None and addr in w.labels:
            e["label"] = w.labels[addr]
        e["vout"] = n
        owner = w.owner(txout.script_pubkey)
        if owner is not None:
            e["parent_descs"] = [owner[0].descriptor]
        out.append(e)
    return out


def _coin_desc(w: Wallet, script: bytes) -> str:
    owner = w.owner(script)
    prov = SigningProvider()
    if owner is not None:
        acc, index = owner
        prov.add_descriptor(acc.desc, index)
    return infer_descriptor(script, w.params, prov)


def _amounts_of(w: Wallet, amounts: dict) -> list[tuple[str, bytes, int]]:
    if not amounts:
        raise WalletError(RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
    out = []
    seen = set()
    for addr, amt in amounts.items():
        if addr in seen:
            raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: "
                              f"{addr}")
        seen.add(addr)
        out.append((addr, _address_script(w, addr), parse_btc(amt, allow_zero=False)))
    return out


# -- wallet management -----------------------------------------------------------------------


@method("createwallet", Param("wallet_name", STR), Param("disable_private_keys", BOOL, False),
        Param("blank", BOOL, False), Param("passphrase", STR, ""),
        Param("avoid_reuse", BOOL, False), Param("descriptors", BOOL, True),
        Param("load_on_startup", BOOL, None), Param("external_signer", BOOL, False),
        Param("mnemonic", STR, None), Param("mnemonic_passphrase", STR, ""),
        Param("birthday_height", NUM, None), needs_wallet=False, syncs=False)
def createwallet(call: Call, name, disable_private_keys, blank, passphrase, avoid_reuse,
                 descriptors, load_on_startup, external_signer, mnemonic, mnemonic_passphrase,
                 birthday_height):
    if not descriptors:
        raise WalletError(RPC_WALLET_ERROR, "Legacy (non-descriptor) wallets are not supported")
    if external_signer:
        raise WalletError(RPC_WALLET_ERROR, "External signers are not supported")
    if mnemonic is not None and (disable_private_keys or blank):
        raise WalletError(RPC_INVALID_PARAMETER, "A mnemonic needs a wallet with private keys")
    w = call.manager.create(name, disable_private_keys=disable_private_keys, blank=blank,
                            passphrase=passphrase or None, mnemonic=mnemonic,
                            mnemonic_passphrase=mnemonic_passphrase,
                            birthday_height=birthday_height, load_on_startup=load_on_startup)
    return {"name": w.name}


@method("loadwallet", Param("filename", STR), Param("load_on_startup", BOOL, None),
        needs_wallet=False, syncs=False)
def loadwallet(call: Call, name, load_on_startup):
    w = call.manager.load(name, load_on_startup=load_on_startup)
    return {"name": w.name}


@method("unloadwallet", Param("wallet_name", STR, None), Param("load_on_startup", BOOL, None),
        needs_wallet=False, syncs=False)
def unloadwallet(call: Call, name, load_on_startup):
    if name is None:
        if call.wallet is None:
            raise WalletError(RPC_INVALID_PARAMETER, "Either the RPC endpoint wallet or the "
                              "wallet name parameter must be provided")
        name = call.wallet.name
    elif call.wallet is not None and call.wallet.name != name:
        raise WalletError(RPC_INVALID_PARAMETER, "RPC endpoint wallet and wallet_name "
                          "parameter specify different wallets")
    call.manager.unload(name, load_on_startup=load_on_startup)
    return {}


@method("listwallets", needs_wallet=False, syncs=False)
def listwallets(call: Call):
    return call.manager.names()


@method("listwalletdir", needs_wallet=False, syncs=False)
def listwalletdir(call: Call):
    return {"wallets": [{"name": n} for n in call.manager.on_disk()]}


@method("restorewallet", Param("wallet_name", STR), Param("backup_file", STR),
        Param("load_on_startup", BOOL, None), needs_wallet=False, syncs=False)
def restorewallet(call: Call, name, backup_file, load_on_startup):
    w = call.manager.restore_backup(name, Path(backup_file), load_on_startup=load_on_startup)
    return {"name": w.name}


@method("getwalletinfo", syncs=True)
def getwalletinfo(call: Call):
    w = call.w
    ext = [a for a in w.accounts.values() if a.active and not a.internal and a.ranged]
    internal = [a for a in w.accounts.values() if a.active and a.internal and a.ranged]
    out: dict = {
        "walletname": w.name,
        "walletversion": WALLET_VERSION,
        "format": "sqlite",
        "txcount": len(w.txs),
        "keypoolsize": sum(a.range_end - a.next_index for a in ext),
        "keypoolsize_hd_internal": sum(a.range_end - a.next_index for a in internal),
    }
    if w.encrypted:
        out["unlocked_until"] = 0 if w.locked else int(
            time.time() + (w.unlocked_until - time.monotonic()))
    out.update({
        "paytxfee": to_btc(0),
        "private_keys_enabled": w.private_keys_enabled,
        "avoid_reuse": False,
        "scanning": False,
        "descriptors": True,
        "external_signer": False,
        "blank": not w.accounts,
        "birthtime": int(w.db.get_meta("created", 0)),
        "lastprocessedblock": _lastblock(w),
    })
    return out


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
        out["desc"] = _coin_desc(w, script)
        out["parent_desc"] = acc.descriptor
    out["iswatchonly"] = False
    wp = witness_program(script)
    out["isscript"] = is_p2sh(script) or (wp is not None and len(wp[1]) == 32)
    out["iswitness"] = wp is not None
    if wp is not None:
        out["witness_version"] = wp[0]
        out["witness_program"] = wp[1].hex()
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
    _address_script(call.w, address)
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


# -- balances and history ------------------------------------------------------------------


@method("getbalance", Param("dummy", STR, None), Param("minconf", NUM, 0),
        Param("include_watchonly", BOOL, True), Param("avoid_reuse", BOOL, True))
def getbalance(call: Call, dummy, minconf, include_watchonly, avoid_reuse):
    if dummy is not None and dummy != "*":
        raise WalletError(-32, 'dummy first argument must be excluded or set to "*".')
    w = call.w
    total = sum(c.value for c in w.coins() if c.depth >= minconf)
    return to_btc(total)


@method("getunconfirmedbalance")
def getunconfirmedbalance(call: Call):
    return to_btc(call.w.balances()["untrusted_pending"])


@method("getbalances")
def getbalances(call: Call):
    b = call.w.balances()
    return {"mine": {"trusted": to_btc(b["trusted"]),
                     "untrusted_pending": to_btc(b["untrusted_pending"]),
                     "immature": to_btc(b["immature"])},
            "lastprocessedblock": _lastblock(call.w)}


@method("listunspent", Param("minconf", NUM, 1), Param("maxconf", NUM, 9999999),
        Param("addresses", ARR, None), Param("include_unsafe", BOOL, True),
        Param("query_options", OBJ, None))
def listunspent(call: Call, minconf, maxconf, addresses, include_unsafe, query_options):
    w = call.w
    wanted = None
    if addresses:
        wanted = set()
        for a in addresses:
            s = _address_script(w, a)
            if s in wanted:
                raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated "
                                  f"address: {a}")
            wanted.add(s)
    q = query_options or {}
    min_amount = parse_btc(q["minimumAmount"]) if "minimumAmount" in q else 0
    out = []
    for c in sorted(w.coins(include_unsafe=include_unsafe),
                    key=lambda c: (-c.depth, c.txid, c.n)):
        if not minconf <= c.depth <= maxconf or c.value < min_amount:
            continue
        if wanted is not None and c.script not in wanted:
            continue
        addr = script_to_address(c.script, w.params)
        e: dict = {"txid": hash_to_hex(c.txid), "vout": c.n}
        if addr is not None:
            e["address"] = addr
            if addr in w.labels:
                e["label"] = w.labels[addr]
        e["scriptPubKey"] = c.script.hex()
        if is_p2sh(c.script):
            acc = w.accounts[c.account_id]
            e["redeemScript"] = acc.expansion(c.index).scripts[0] and \
                next(iter(acc.expansion(c.index).subscripts.values()), b"").hex()
        e["amount"] = to_btc(c.value)
        e["confirmations"] = c.depth
        acc = w.accounts[c.account_id]
        e["spendable"] = acc.private is not None or (w.encrypted and acc.secret is not None)
        e["solvable"] = True
        e["desc"] = _coin_desc(w, c.script)
        e["parent_descs"] = [acc.descriptor]
        e["safe"] = c.trusted
        out.append(e)
    return out


@method("listtransactions", Param("label", STR, None), Param("count", NUM, 10),
        Param("skip", NUM, 0), Param("include_watchonly", BOOL, True))
def listtransactions(call: Call, label, count, skip, include_watchonly):
    if count < 0:
        raise WalletError(RPC_INVALID_PARAMETER, "Negative count")
    if skip < 0:
        raise WalletError(RPC_INVALID_PARAMETER, "Negative from")
    w = call.w
    rows = []
    ordered = sorted(w.txs.values(), key=lambda t: (
        _tx_fields(w, t)["time"], t.height if t.height is not None else 1 << 62,
        t.block_pos or 0))
    for wtx in ordered:
        fields = _tx_fields(w, wtx)
        for e in _entries(w, wtx):
            if label not in (None, "*") and e.get("label") != label:
                continue
            e.pop("parent_descs", None)
            rows.append({**e, **fields})
    if count == 0:
        return []
    end = len(rows) - skip
    return rows[max(0, end - count):max(0, end)]


@method("listsinceblock", Param("blockhash", STR, None), Param("target_confirmations", NUM, 1),
        Param("include_watchonly", BOOL, True), Param("include_removed", BOOL, True))
def listsinceblock(call: Call, blockhash, target_confirmations, include_watchonly,
                   include_removed):
    w = call.w
    since = -1
    if blockhash:
        h = hex_to_hash(blockhash)
        row = w.db.conn.execute("SELECT height FROM blocks WHERE hash=?", (h,)).fetchone()
        if row is None:
            raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        since = row[0]
    rows = []
    for wtx in w.txs.values():
        if wtx.height is None or wtx.height > since:
            fields = _tx_fields(w, wtx)
            for e in _entries(w, wtx):
                e.pop("parent_descs", None)
                rows.append({**e, **fields})
    last = max(0, w.tip_height - target_confirmations + 1)
    last_hash = w.block_hash_at(last)
    return {"transactions": rows, "removed": [],
            "lastblock": hash_to_hex(last_hash) if last_hash else ""}


@method("gettransaction", Param("txid", STR), Param("include_watchonly", BOOL, True),
        Param("verbose", BOOL, False))
def gettransaction(call: Call, txid, include_watchonly, verbose):
    w = call.w
    wtx = w.txs.get(_txid(txid))
    if wtx is None:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    credit, debit = w.credit(wtx), w.debit(wtx)
    fee = wtx.tx.total_out() - debit if debit > 0 else 0  # negative, as Core
    out: dict = {"amount": to_btc(credit - debit - fee)}
    if debit > 0:
        out["fee"] = to_btc(fee)
    out.update(_tx_fields(w, wtx))
    details = _entries(w, wtx)
    out["details"] = details
    out["hex"] = wtx.tx.serialize().hex()
    if verbose:
        out["decoded"] = call.node.call("decoderawtransaction", out["hex"])
    return out


@method("getreceivedbyaddress", Param("address", STR), Param("minconf", NUM, 1),
        Param("include_immature_coinbase", BOOL, False))
def getreceivedbyaddress(call: Call, address, minconf, include_immature_coinbase):
    w = call.w
    script = _address_script(w, address)
    if not w.is_mine(script):
        raise WalletError(RPC_WALLET_ERROR, "Address not found in wallet")
    total = 0
    for wtx in w.txs.values():
        if w.depth(wtx) < minconf or (wtx.tx.is_coinbase() and not include_immature_coinbase
                                      and w.maturity_left(wtx) > 0):
            continue
        total += sum(o.value for o in wtx.tx.vout if o.script_pubkey == script)
    return to_btc(total)


# -- sending ---------------------------------------------------------------------------------


def _send_result(tx: Transaction, verbose: bool) -> Any:
    if verbose:
        return {"txid": tx.txid_hex(), "fee_reason": "User-specified fee rate"}
    return tx.txid_hex()


@method("sendtoaddress", Param("address", STR), Param("amount", AMOUNT),
        Param("comment", STR, None), Param("comment_to", STR, None),
        Param("subtractfeefromamount", BOOL, False), Param("replaceable", BOOL, True),
        Param("conf_target", NUM, None), Param("estimate_mode", STR, "unset"),
        Param("avoid_reuse", BOOL, True), Param("fee_rate", AMOUNT, None),
        Param("verbose", BOOL, False))
def sendtoaddress(call: Call, address, amount, comment, comment_to, subtract, replaceable,
                  conf_target, estimate_mode, avoid_reuse, fee_rate, verbose):
    w = call.w
    script = _address_script(w, address)
    sats = parse_btc(amount, allow_zero=False)
    w.require_unlocked()
    rate = _fee_rate(call, fee_rate, conf_target, estimate_mode)
    tx, _ = spend.send(w, call.node, [spend.Recipient(script, sats, subtract)], rate,
                       replaceable=replaceable, comment=comment)
    return _send_result(tx, verbose)


@method("sendmany", Param("dummy", STR, None), Param("amounts", OBJ),
        Param("minconf", NUM, None), Param("comment", STR, None),
        Param("subtractfeefrom", ARR, None), Param("replaceable", BOOL, True),
        Param("conf_target", NUM, None), Param("estimate_mode", STR, "unset"),
        Param("fee_rate", AMOUNT, None), Param("verbose", BOOL, False))
def sendmany(call: Call, dummy, amounts, minconf, comment, subtractfeefrom, replaceable,
             conf_target, estimate_mode, fee_rate, verbose):
    if dummy not in (None, ""):
        raise WalletError(RPC_INVALID_PARAMETER, 'Dummy value must be set to ""')
    w = call.w
    sub = set(subtractfeefrom or [])
    recipients = []
    for addr, script, sats in _amounts_of(w, amounts):
        recipients.append(spend.Recipient(script, sats, addr in sub))
        sub.discard(addr)
    if sub:
        raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter for 'subtract fee from "
                          f"output', destination {sorted(sub)[0]} not found in tx outputs")
    w.require_unlocked()
    rate = _fee_rate(call, fee_rate, conf_target, estimate_mode)
    tx, _ = spend.send(w, call.node, recipients, rate, replaceable=replaceable,
                       comment=comment)
    return _send_result(tx, verbose)


def _bump_options(call: Call, options: dict | None) -> tuple[int | None, bool]:
    o = options or {}
    for k in o:
        if k not in ("conf_target", "fee_rate", "replaceable", "estimate_mode", "outputs",
                     "original_change_index"):
            raise WalletError(RPC_INVALID_PARAMETER, f"Unexpected key {k}")
    rate = None
    if o.get("fee_rate") is not None or o.get("conf_target") is not None:
        rate = _fee_rate(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    return rate, bool(o.get("replaceable", True))


@method("bumpfee", Param("txid", STR), Param("options", OBJ, None))
def bumpfee(call: Call, txid, options):
    rate, replaceable = _bump_options(call, options)
    r = spend.bump_fee(call.w, call.node, _txid(txid), rate, replaceable)
    return {"txid": hash_to_hex(r["txid"]), "origfee": to_btc(r["origfee"]),
            "fee": to_btc(r["fee"]), "errors": r["errors"]}


@method("psbtbumpfee", Param("txid", STR), Param("options", OBJ, None))
def psbtbumpfee(call: Call, txid, options):
    rate, replaceable = _bump_options(call, options)
    r = spend.bump_fee(call.w, call.node, _txid(txid), rate, replaceable, sign_it=False)
    return {"psbt": r["psbt"].to_base64(), "origfee": to_btc(r["origfee"]),
            "fee": to_btc(r["fee"]), "errors": r["errors"]}


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
    if isinstance(outputs, dict):
        outputs = [outputs]
    if not isinstance(outputs, list):
        raise WalletError(RPC_TYPE_ERROR, "outputs must be an object or an array of objects")
    flat: dict = {}
    for item in outputs:
        if not isinstance(item, dict):
            raise WalletError(RPC_TYPE_ERROR, "Invalid parameter, output must be an object")
        for k, v in item.items():
            if k == "data":
                raise WalletError(RPC_INVALID_PARAMETER, "data outputs are not supported")
            flat[k] = v
    sub = set(o.get("subtractFeeFromOutputs", []))
    recipients = [spend.Recipient(script, sats, i in sub)
                  for i, (_, script, sats) in enumerate(_amounts_of(w, flat))]
    rate = _fee_rate(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    if o.get("feeRate") is not None:
        rate = parse_btc(o["feeRate"])
    preset = []
    for i in inputs or []:
        if not isinstance(i, dict) or "txid" not in i or "vout" not in i:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, missing txid or vout")
        key = (_txid(i["txid"]), int(i["vout"]))
        coin = next((c for c in w.coins(include_unsafe=True) if c.outpoint == key), None)
        if coin is None:
            raise WalletError(RPC_WALLET_ERROR, f"Input not found or already spent: "
                              f"{i['txid']}:{i['vout']}")
        preset.append(coin)
    change_script = None
    if o.get("changeAddress"):
        change_script = _address_script(w, o["changeAddress"])
    built = spend.create_transaction(
        w, recipients, rate, replaceable=bool(o.get("replaceable", True)),
        change_type=o.get("change_type"), change_script=change_script, preset=preset,
        add_inputs=bool(o.get("add_inputs", not preset)),
        locktime=None if locktime is None else int(locktime))
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
            d["sighash"] = next((n for n, v in {"ALL": 1, "NONE": 2, "SINGLE": 3, "DEFAULT": 0,
                                                "ALL|ANYONECANPAY": 0x81,
                                                "NONE|ANYONECANPAY": 0x82,
                                                "SINGLE|ANYONECANPAY": 0x83}.items()
                                 if v == inp.sighash_type), str(inp.sighash_type))
        if inp.redeem_script is not None:
            d["redeem_script"] = _script_json(call, inp.redeem_script)
        if inp.witness_script is not None:
            d["witness_script"] = _script_json(call, inp.witness_script)
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
        d = {}
        if pout.redeem_script is not None:
            d["redeem_script"] = _script_json(call, pout.redeem_script)
        if pout.witness_script is not None:
            d["witness_script"] = _script_json(call, pout.witness_script)
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


# -- encryption and backup -------------------------------------------------------------------


@method("encryptwallet", Param("passphrase", STR), syncs=False)
def encryptwallet(call: Call, passphrase):
    call.w.encrypt(passphrase)
    return ("wallet encrypted; the keys stay the same (your mnemonic backup remains valid), but "
            "make a new backup of the wallet file with backupwallet.")


@method("walletpassphrase", Param("passphrase", STR), Param("timeout", NUM), syncs=False)
def walletpassphrase(call: Call, passphrase, timeout):
    call.w.unlock(passphrase, int(timeout))
    return None


@method("walletlock", syncs=False)
def walletlock(call: Call):
    w = call.w
    if not w.encrypted:
        raise WalletError(-15, "Error: running with an unencrypted wallet, but walletlock was "
                          "called.")
    w.lock()
    return None


@method("walletpassphrasechange", Param("oldpassphrase", STR), Param("newpassphrase", STR),
        syncs=False)
def walletpassphrasechange(call: Call, old, new):
    call.w.change_passphrase(old, new)
    return None


@method("backupwallet", Param("destination", STR), syncs=False)
def backupwallet(call: Call, destination):
    try:
        call.w.backup(Path(destination))
    except OSError as err:
        raise WalletError(RPC_WALLET_ERROR, f"Error: Wallet backup failed! ({err})") from None
    return None


@method("getmnemonic", syncs=False)
def getmnemonic(call: Call):
    """minibtc's own: the wallet's BIP39 words (and passphrase), to write down."""
    words, passphrase = call.w.mnemonic()
    return {"mnemonic": words, "passphrase": passphrase}


@method("rescanblockchain", Param("start_height", NUM, 0), Param("stop_height", NUM, None))
def rescanblockchain(call: Call, start_height, stop_height):
    if start_height < 0 or (stop_height is not None and stop_height < start_height):
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid start_height or stop_height")
    return call.manager.rescan(call.w, int(start_height),
                               None if stop_height is None else int(stop_height))
