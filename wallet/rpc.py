"""The wallet's JSON-RPC methods with Bitcoin Core's names, parameters, result fields and error
codes (src/wallet/rpc/*.cpp). Each method is declared once with its parameters (positional or
named); results use Decimal for BTC amounts, written as plain numbers by the servers.

A method gets a Call: the manager (for wallet-level methods), the wallet the request is for,
and the node client. This module holds the registry and the helpers the methods share; the
methods are in rpc_wallets, rpc_addresses, rpc_history, rpc_send, rpc_psbt, rpc_coins and
rpc_settings, all registered by importing this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from consensus.hashes import hash160, hash_to_hex, hex_to_hash
from consensus.params import CHAINS
from consensus.tx import Transaction
from wallet import spend
from wallet.address import AddressError, decode_address, is_valid_address
from wallet.amounts import json_integer, parse_fee_rate_sat_vb
from wallet.descriptors import DescriptorError, SigningProvider, infer_descriptor
from wallet.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.wallet import Wallet

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
                raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(v)} for "
                                  f"'{p.name}' is not of expected type {p.type}")
            if p.type == NUM:  # every number argument is an integer (Core's getInt)
                try:
                    v = json_integer(v)
                except ValueError as err:
                    raise WalletError(RPC_TYPE_ERROR, str(err)) from None
            out.append(v)
        return out


_MISSING = object()


def json_type(v: Any) -> str:
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
    """(An AMOUNT is checked where it is parsed, with Core's AmountFromValue errors.)"""
    jt = json_type(v)
    return {STR: jt == "string", NUM: jt == "number", BOOL: jt == "bool",
            OBJ: jt == "object", ARR: jt == "array"
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


def address_script(w: Wallet, address: str) -> bytes:
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


def decode_hex_tx(text: Any, iswitness: bool | None = None) -> Transaction:
    """Core's DecodeHexTx: the serialization (with or without witness data) that parses
    completely; when both do, the extended one only if it carries witness data (a
    transaction with no inputs reads as one with the segwit marker otherwise)."""
    if not isinstance(text, str):
        raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(text)} is not of "
                          "expected type string")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise WalletError(RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
    found = []
    for allow_witness in ((True,) if iswitness else (False,) if iswitness is False
                          else (True, False)):
        try:
            found.append(Transaction.from_bytes(data, allow_witness))
        except Exception:  # noqa: BLE001  (any parse failure: try the other form)
            continue
    for tx in found:
        if iswitness is not None or len(found) == 1 or any(i.witness for i in tx.vin):
            return tx
    if found:
        return found[-1]
    raise WalletError(RPC_DESERIALIZATION_ERROR, "TX decode failed")


def parse_txid(s: str, name: str = "txid") -> bytes:
    if not isinstance(s, str) or len(s) != 64 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise WalletError(RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not "
                          f"{len(s) if isinstance(s, str) else 0}, for '{s}')"
                          if isinstance(s, str) and len(s) != 64 else
                          f"{name} must be hexadecimal string (not '{s}')")
    return hex_to_hash(s)


def last_block(w: Wallet) -> dict:
    return {"hash": hash_to_hex(w.tip_hash) if w.tip_hash else "", "height": w.tip_height}


ESTIMATE_MODES = ("unset", "economical", "conservative")
MAX_CONF_TARGET = 1008  # Core's fee estimator horizon


def check_options(o: dict, allowed: dict[str, str]) -> None:
    """Core's RPCTypeCheckObj (strict): every key known, each of its type (ANY: any)."""
    for k, v in o.items():
        want = allowed.get(k)
        if want is None:
            raise WalletError(RPC_TYPE_ERROR, f"Unexpected key {k}")
        if v is not None and want != ANY and not _type_ok(want, v):
            raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(v)} for field "
                              f"{k} is not of expected type {_TYPE_NAMES.get(want, want)}")


_TYPE_NAMES = {NUM: "number", BOOL: "bool", STR: "string", OBJ: "object", ARR: "array"}


def fee_rate_of(call: Call, fee_rate: Any, conf_target: Any, estimate_mode: str | None) -> int:
    """sat/kvB from an explicit sat/vB rate, or from the node's estimate (Core's
    SetFeeEstimateMode checks, in its order)."""
    if fee_rate is not None:
        if conf_target is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both conf_target and "
                              "fee_rate. Please provide either a confirmation target in blocks "
                              "for automatic fee estimation, or an explicit fee rate.")
        if estimate_mode is not None and estimate_mode != "unset":
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both estimate_mode and "
                              "fee_rate")
        return parse_fee_rate_sat_vb(fee_rate)
    if estimate_mode is not None and (not isinstance(estimate_mode, str)
                                      or estimate_mode.lower() not in ESTIMATE_MODES):
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid estimate_mode parameter, must be one "
                          'of: "unset", "economical", "conservative"')
    target = spend.DEFAULT_CONF_TARGET
    if conf_target is not None:
        if json_type(conf_target) != "number":
            raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(conf_target)} is "
                              "not of expected type number")
        try:
            target = json_integer(conf_target)
        except ValueError as err:
            raise WalletError(RPC_TYPE_ERROR, str(err)) from None
        if not 1 <= target <= MAX_CONF_TARGET:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid conf_target, must be between 1 "
                              f"and {MAX_CONF_TARGET}")
    w = call.wallet
    if w is not None and w.pay_tx_fee and conf_target is None:
        rate = w.pay_tx_fee
    else:
        rate = spend.fee_rate_from_node(call.node, target, estimate_mode or "unset",
                                        w.fallback_fee if w is not None
                                        else spend.DEFAULT_FALLBACK_FEE)
    if w is not None:  # Core's GetMinimumFeeRate: never under -mintxfee nor the relay minimum
        rate = max(rate, w.min_tx_fee, w.min_relay_fee)
    return rate


def avoid_reuse_flag(w: Wallet, value: bool | None) -> bool:
    """Core's GetAvoidReuseFlag: the avoid_reuse argument, by default the wallet's flag;
    true on a wallet without the flag is an error."""
    avoid = w.avoid_reuse if value is None else value
    if avoid and not w.avoid_reuse:
        raise WalletError(RPC_WALLET_ERROR, 'wallet does not have the "avoid reuse" feature '
                          "enabled")
    return avoid


def coin_desc(w: Wallet, script: bytes) -> str:
    owner = w.owner(script)
    prov = SigningProvider()
    if owner is not None:
        acc, index = owner
        try:
            prov.add_descriptor(acc.desc, index)
        except DescriptorError:  # hardened steps: what was derived while unlocked
            exp = acc.expansion(index)
            for key in exp.keys:
                prov.add_key(key, True)
            for sub in exp.subscripts.values():
                prov.scripts.setdefault(hash160(sub), sub)
    return infer_descriptor(script, w.params, prov)




# Register every method (each module adds its own with @method).
from wallet import (  # noqa: E402, F401, I001
    rpc_addresses,
    rpc_coins,
    rpc_history,
    rpc_psbt,
    rpc_send,
    rpc_settings,
    rpc_wallets,
)
