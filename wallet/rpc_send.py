"""Wallet RPCs: sending and fee bumping (Core's wallet/rpc/spend.cpp)."""

from __future__ import annotations

from typing import Any

from consensus.hashes import hash_to_hex
from consensus.tx import Transaction
from wallet import spend
from wallet.amounts import parse_btc, to_btc
from wallet.errors import (
    RPC_INVALID_PARAMETER,
    WalletError,
)
from wallet.rpc import (
    AMOUNT,
    ARR,
    BOOL,
    NUM,
    OBJ,
    STR,
    Call,
    Param,
    address_script,
    fee_rate_of,
    method,
    parse_txid,
)
from wallet.wallet import Wallet


def amounts_of(w: Wallet, amounts: dict) -> list[tuple[str, bytes, int]]:
    if not amounts:
        raise WalletError(RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
    out = []
    seen = set()
    for addr, amt in amounts.items():
        if addr in seen:
            raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: "
                              f"{addr}")
        seen.add(addr)
        out.append((addr, address_script(w, addr), parse_btc(amt, allow_zero=False)))
    return out



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
    script = address_script(w, address)
    sats = parse_btc(amount, allow_zero=False)
    w.require_unlocked()
    rate = fee_rate_of(call, fee_rate, conf_target, estimate_mode)
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
    for addr, script, sats in amounts_of(w, amounts):
        recipients.append(spend.Recipient(script, sats, addr in sub))
        sub.discard(addr)
    if sub:
        raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter for 'subtract fee from "
                          f"output', destination {sorted(sub)[0]} not found in tx outputs")
    w.require_unlocked()
    rate = fee_rate_of(call, fee_rate, conf_target, estimate_mode)
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
        rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    return rate, bool(o.get("replaceable", True))


@method("bumpfee", Param("txid", STR), Param("options", OBJ, None))
def bumpfee(call: Call, txid, options):
    rate, replaceable = _bump_options(call, options)
    r = spend.bump_fee(call.w, call.node, parse_txid(txid), rate, replaceable)
    return {"txid": hash_to_hex(r["txid"]), "origfee": to_btc(r["origfee"]),
            "fee": to_btc(r["fee"]), "errors": r["errors"]}


@method("psbtbumpfee", Param("txid", STR), Param("options", OBJ, None))
def psbtbumpfee(call: Call, txid, options):
    rate, replaceable = _bump_options(call, options)
    r = spend.bump_fee(call.w, call.node, parse_txid(txid), rate, replaceable, sign_it=False)
    return {"psbt": r["psbt"].to_base64(), "origfee": to_btc(r["origfee"]),
            "fee": to_btc(r["fee"]), "errors": r["errors"]}
