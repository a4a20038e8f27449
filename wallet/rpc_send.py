"""Wallet RPCs: sending and fee bumping (Core's wallet/rpc/spend.cpp)."""

from __future__ import annotations

from typing import Any

from consensus.hashes import hash_to_hex
from consensus.tx import Transaction
from wallet import spend
from wallet.amounts import parse_btc, to_btc
from wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.rpc import (
    AMOUNT,
    ANY,
    ARR,
    BOOL,
    NUM,
    OBJ,
    STR,
    Call,
    Param,
    address_script,
    fee_rate_of,
    json_type,
    method,
    parse_txid,
)
from wallet.wallet import Coin, Wallet


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


def fund(w: Wallet, inputs: Any, outputs: Any, fee_rate: int, *, locktime: Any,
         change_address: str | None, change_type: str | None, subtract: list,
         lock: bool, add_inputs: Any, replaceable: bool) -> spend.Built:
    """Core's FundTransaction for send and walletcreatefundedpsbt: outputs as an object or
    an array of objects, the given inputs (and others unless add_inputs is false), change;
    lock locks what was chosen."""
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
            if k in flat:  # (Core: one output per address)
                raise WalletError(RPC_INVALID_PARAMETER,
                                  f"Invalid parameter, duplicated address: {k}")
            flat[k] = v
    sub = set(subtract or [])
    recipients = [spend.Recipient(script, sats, i in sub)
                  for i, (_, script, sats) in enumerate(amounts_of(w, flat))]
    preset = []
    mine = _spendable_by_outpoint(w) if inputs else {}
    for i in inputs or []:
        key = _outpoint_of(i)
        if key not in mine:
            raise WalletError(RPC_WALLET_ERROR, f"Input not found or already spent: "
                              f"{i['txid']}:{i['vout']}")
        preset.append(mine[key])
    change_script = address_script(w, change_address) if change_address else None
    built = spend.create_transaction(
        w, recipients, fee_rate, replaceable=replaceable, change_type=change_type,
        change_script=change_script, preset=preset,
        add_inputs=bool(not preset if add_inputs is None else add_inputs),
        locktime=None if locktime is None else int(locktime))
    if lock:
        _lock_inputs(w, built.tx)
    return built


def _outpoint_of(i: Any) -> tuple[bytes, int]:
    """An input given as {"txid": ..., "vout": n}."""
    if not isinstance(i, dict) or "txid" not in i or "vout" not in i:
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, missing txid or vout")
    return parse_txid(i["txid"]), int(i["vout"])


def _spendable_by_outpoint(w: Wallet) -> dict[tuple[bytes, int], Coin]:
    """The coins an input may name by hand (locked ones and unconfirmed ones too)."""
    return {c.outpoint: c for c in w.coins(include_unsafe=True)}


def _lock_inputs(w: Wallet, tx: Transaction) -> None:
    """Keep what tx spends from other spends until it is sent (or unlocked)."""
    with w.db.atomic():
        for txin in tx.vin:
            w.lock_coin(txin.prevout.key(), False)


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


@method("send", Param("outputs", ANY), Param("conf_target", NUM, None),
        Param("estimate_mode", STR, None), Param("fee_rate", AMOUNT, None),
        Param("options", OBJ, None))
def send(call: Call, outputs, conf_target, estimate_mode, fee_rate, options):
    w = call.w
    o = _fee_options(options, conf_target, estimate_mode, fee_rate)
    rate = fee_rate_of(call, o["fee_rate"], o["conf_target"], o["estimate_mode"])
    w.require_unlocked()
    built = fund(w, o.get("inputs"), outputs, rate, locktime=o.get("locktime"),
                 change_address=o.get("change_address"), change_type=o.get("change_type"),
                 subtract=o.get("subtract_fee_from_outputs", []),
                 lock=bool(o.get("lock_unspents")), add_inputs=o.get("add_inputs"),
                 replaceable=bool(o.get("replaceable", True)))
    return _finish(call, built.tx, o)


@method("sendall", Param("recipients", ARR), Param("conf_target", NUM, None),
        Param("estimate_mode", STR, None), Param("fee_rate", AMOUNT, None),
        Param("options", OBJ, None))
def sendall(call: Call, recipients, conf_target, estimate_mode, fee_rate, options):
    w = call.w
    o = _fee_options(options, conf_target, estimate_mode, fee_rate)
    outputs: list[spend.SendAllOutput] = []
    seen: set[bytes] = set()
    for r in recipients:
        if isinstance(r, str):
            pairs = [(r, None)]
        elif isinstance(r, dict):
            pairs = [(a, parse_btc(v)) for a, v in r.items()]
        else:
            raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(r)} is not of "
                              "expected type object")
        for addr, sats in pairs:
            script = address_script(w, addr)
            if script in seen:
                raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated "
                                  f"address: {addr}")
            seen.add(script)
            outputs.append(spend.SendAllOutput(addr, script, sats))
    if all(out.amount is not None for out in outputs):
        raise WalletError(RPC_INVALID_PARAMETER,
                          "Must provide at least one address without a specified amount")
    min_depth, max_depth = o.get("minconf"), o.get("maxconf")
    if min_depth is not None and min_depth < 0:
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid minconf (minconf cannot be "
                          f"negative): {min_depth}")
    if max_depth is not None and max_depth < (min_depth or 0):
        raise WalletError(RPC_INVALID_PARAMETER, f"maxconf can't be lower than minconf: "
                          f"{max_depth} < {min_depth or 0}")
    inputs = None
    if "inputs" in o:
        if "send_max" in o:
            raise WalletError(RPC_INVALID_PARAMETER,
                              "Cannot combine send_max with specific inputs.")
        if "minconf" in o or "maxconf" in o:
            raise WalletError(RPC_INVALID_PARAMETER,
                              "Cannot combine minconf or maxconf with specific inputs.")
        mine = _spendable_by_outpoint(w)
        inputs = [_own_input(w, mine, i) for i in o["inputs"] or []]
    rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    w.require_unlocked()
    built = spend.create_sendall(
        w, outputs, rate, inputs=inputs, send_max=bool(o.get("send_max", False)),
        min_depth=min_depth or 0, max_depth=max_depth,
        replaceable=bool(o.get("replaceable", True)), locktime=o.get("locktime"))
    if o.get("lock_unspents"):
        _lock_inputs(w, built.tx)
    return _finish(call, built.tx, o)


def _fee_options(options: dict | None, conf_target, estimate_mode, fee_rate) -> dict:
    """Core's InterpretFeeEstimationInstructions: the fee settings as arguments or in the
    options, not both; a conf_target needs its estimate_mode."""
    o = dict(options or {})
    if "conf_target" in o or "estimate_mode" in o:
        if conf_target is not None or estimate_mode is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Pass conf_target and estimate_mode "
                              "either as arguments or in the options object, but not both")
    else:
        o["conf_target"], o["estimate_mode"] = conf_target, estimate_mode
    if "fee_rate" in o:
        if fee_rate is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Pass the fee_rate either as an argument, "
                              "or in the options object, but not both")
    else:
        o["fee_rate"] = fee_rate
    if o["conf_target"] is not None and o.get("estimate_mode") in (None, "unset"):
        raise WalletError(RPC_INVALID_PARAMETER, "Specify estimate_mode")
    return o


def _own_input(w: Wallet, mine: dict[tuple[bytes, int], Coin], i: Any) -> Coin:
    """sendall's input check, with Core's sendall messages."""
    key = _outpoint_of(i)
    if w.is_spent(key):
        raise WalletError(RPC_INVALID_PARAMETER, f"Input not available. UTXO "
                          f"({i['txid']}:{key[1]}) was already spent.")
    if key not in mine:
        raise WalletError(RPC_INVALID_PARAMETER, f"Input not found. UTXO "
                          f"({i['txid']}:{key[1]}) is not part of wallet.")
    return mine[key]


def _finish(call: Call, tx: Transaction, o: dict) -> dict:
    """Core's FinishTransaction: sign; then send and record it, or hand it back (hex, and
    the PSBT when asked for one, not complete, or not to be added to the wallet)."""
    psbt, complete = spend.sign_psbt(call.w, tx)
    as_psbt = bool(o.get("psbt", False))
    add = bool(o.get("add_to_wallet", True))
    result: dict = {}
    if as_psbt or not complete or not add:
        result["psbt"] = psbt.to_base64()
    if complete:
        signed = psbt.extract()
        result["txid"] = signed.txid_hex()
        if add and not as_psbt:
            spend.broadcast(call.w, call.node, signed)
        else:
            result["hex"] = signed.to_hex()
    result["complete"] = complete
    return result


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
