"""Wallet RPCs: sending and fee bumping (Core's wallet/rpc/spend.cpp)."""

from __future__ import annotations

from typing import Any

from consensus.hashes import hash160, hash_to_hex
from consensus.script.script import push_data
from consensus.tx import Transaction, TxOut
from wallet import spend
from wallet.amounts import json_integer, parse_btc, to_btc
from wallet.descriptors import DescriptorError, parse_descriptor
from wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    RPC_WALLET_INSUFFICIENT_FUNDS,
    WalletError,
)
from wallet.nodeclient import NodeRPCError
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
    avoid_reuse_flag,
    check_options,
    decode_hex_tx,
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


def subtract_positions(sffo: Any, destinations: list[str]) -> set[int]:
    """Core's InterpretSubtractFeeFromOutputInstructions: outputs named by address or by
    position, each once."""
    out: set[int] = set()
    for item in sffo or []:
        if isinstance(item, str):
            if item not in destinations:
                raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter 'subtract fee from "
                                  f"output', destination {item} not found in tx outputs")
            pos = destinations.index(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            pos = int(item)
        else:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter 'subtract fee from "
                              f"output', invalid value type: {json_type(item)}")
        if pos in out:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter 'subtract fee from "
                              f"output', duplicated position: {pos}")
        if pos < 0:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter 'subtract fee from "
                              f"output', negative position: {pos}")
        if pos >= len(destinations):
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter 'subtract fee from "
                              f"output', position too large: {pos}")
        out.add(pos)
    return out


def recipients_of(w: Wallet, outputs: list, subtract: Any) -> list[spend.Recipient]:
    """Core's ParseOutputs for a wallet transaction: addresses with amounts, and at most one
    "data" output (hex, an OP_RETURN of 0 BTC), in the order given; subtract names outputs
    by position or address."""
    entries: list[tuple[str, bytes, int]] = []
    seen: set[str] = set()
    if not outputs:
        raise WalletError(RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
    for item in outputs:
        if not isinstance(item, dict):
            raise WalletError(RPC_TYPE_ERROR, "Invalid parameter, output must be an object")
        for k, v in item.items():
            if k == "data":
                if "data" in seen:
                    raise WalletError(RPC_INVALID_PARAMETER,
                                      "Invalid parameter, duplicate key: data")
                seen.add(k)
                entries.append((k, _data_script(v), 0))
                continue
            if k in seen:  # (Core: one output per address)
                raise WalletError(RPC_INVALID_PARAMETER,
                                  f"Invalid parameter, duplicated address: {k}")
            seen.add(k)
            entries.append((k, address_script(w, k), parse_btc(v, allow_zero=False)))
    sub = subtract_positions(subtract, [k for k, _, _ in entries])
    return [spend.Recipient(script, sats, i in sub)
            for i, (_, script, sats) in enumerate(entries)]


def _data_script(value: Any) -> bytes:
    text = value if isinstance(value, str) else str(value)
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise WalletError(RPC_INVALID_PARAMETER, "Data must be hexadecimal string (not "
                          f"'{text}')") from None
    return b"\x6a" + push_data(data)


def fund(w: Wallet, inputs: Any, outputs: Any, fee_rate: int, *, locktime: Any,
         node: Any = None,
         change_address: str | None, change_type: str | None, subtract: list,
         lock: bool, add_inputs: Any, replaceable: bool,
         change_position: int | None = None, include_unsafe: bool = False,
         minconf: Any = None, maxconf: Any = None, solving_data: Any = None,
         input_weights: Any = None, max_tx_weight: Any = None,
         override_min_fee: bool = False) -> spend.Built:
    """Core's FundTransaction for send and walletcreatefundedpsbt: outputs as an object or
    an array of objects, the given inputs (and others unless add_inputs is false), change;
    lock locks what was chosen."""
    if isinstance(outputs, dict):
        outputs = [outputs]
    if not isinstance(outputs, list):
        raise WalletError(RPC_TYPE_ERROR, "outputs must be an object or an array of objects")
    recipients = recipients_of(w, outputs, subtract)
    preset, weights, given = preset_inputs(w, node, inputs or [], solving_data,
                                           input_weights)
    change_script = _change_script(w, change_address)
    if minconf is not None and minconf < 0:
        raise WalletError(RPC_INVALID_PARAMETER, "Negative minconf")
    if maxconf is not None and maxconf < (minconf or 0):
        raise WalletError(RPC_INVALID_PARAMETER, "maxconf can't be lower than minconf: "
                          f"{int(maxconf)} < {int(minconf or 0)}")
    try:
        built = spend.create_transaction(
            w, recipients, fee_rate, replaceable=replaceable, change_type=change_type,
            change_script=change_script, preset=preset,
            add_inputs=bool(not preset if add_inputs is None else add_inputs),
            locktime=None if locktime is None else int(locktime),
            change_position=_change_position(change_position, len(recipients)),
            include_unsafe=include_unsafe,
            min_depth=None if minconf is None else int(minconf),
            max_depth=None if maxconf is None else int(maxconf),
            ancestors=None if node is None else spend.mempool_ancestors(node),
            preset_sequences={_outpoint_of(i): int(i["sequence"]) for i in inputs or []
                              if isinstance(i, dict) and i.get("sequence") is not None},
            weights=weights, given_weights=given,
            max_tx_weight=_int_option(max_tx_weight, "max_tx_weight"),
            override_min_fee=override_min_fee)
    except WalletError as err:  # (Core's FundTransaction answers every creation error so)
        if err.code == RPC_WALLET_INSUFFICIENT_FUNDS:
            raise WalletError(RPC_WALLET_ERROR, err.message) from None
        raise
    if lock:
        _lock_inputs(w, built.tx)
    return built


def _int_option(value: Any, name: str) -> int | None:
    """An integer option (Core's getInt: a number without a fraction)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} for field "
                          f"{name} is not of expected type number")
    try:
        return json_integer(value)
    except ValueError as err:
        raise WalletError(RPC_TYPE_ERROR, str(err)) from None


def _coutpoint(key: tuple[bytes, int]) -> str:
    """Core's COutPoint::ToString."""
    return f"COutPoint({hash_to_hex(key[0])[:10]}, {key[1]})"


def preset_inputs(w: Wallet, node: Any, inputs: list, solving_data: Any,
                  input_weights: Any = None
                  ) -> tuple[list[Coin], dict[tuple[bytes, int], int],
                             frozenset[tuple[bytes, int]]]:
    """The inputs given by hand (Core's coin control selection): the wallet's own coins,
    or outputs of others found in the node's UTXO set (or mempool), each spendable only
    with its weight given or solvable with solving_data (pubkeys, scripts, descriptors).
    Returns the coins, the weights of those given one or not the wallet's, and which of
    those weights were given. An input of others is sized with 72-byte ECDSA signatures
    (Core's use_max_sig for an external input: its signer may not grind R)."""
    mine = _spendable_by_outpoint(w) if inputs else {}
    coins: list[Coin] = []
    weights: dict[tuple[bytes, int], int] = {}
    for item in input_weights or []:
        weights[_outpoint_of(item)] = _weight_of(item.get("weight"))
    given = set(weights)
    store = None
    for i in inputs:
        key = _outpoint_of(i)
        if isinstance(i, dict) and i.get("weight") is not None:
            weights[key] = _weight_of(i["weight"])
            given.add(key)
        coin = mine.get(key) or _wallet_txo(w, key)
        if coin is None:
            found = None
            if node is not None:
                try:
                    found = node.call("gettxout", hash_to_hex(key[0]), key[1], True)
                except NodeRPCError:
                    found = None
            if not found:
                raise WalletError(RPC_WALLET_ERROR, "Not found pre-selected input "
                                  f"{_coutpoint(key)}")
            out = TxOut(parse_btc(found["value"]), bytes.fromhex(found["scriptPubKey"]["hex"]))
            coin = Coin(key[0], key[1], out.value, out.script_pubkey, -1, -1,
                        int(found.get("confirmations", 0)), bool(found.get("coinbase")), True)
            if key not in weights:
                if store is None:
                    store = _solving_store(w, solving_data)
                weight = spend.max_input_weight(out.script_pubkey, store, max_sig=True)
                if weight is None:
                    raise WalletError(RPC_WALLET_ERROR, "Not solvable pre-selected input "
                                      f"{_coutpoint(key)}")
                weights[key] = weight
        coins.append(coin)
    return coins, weights, frozenset(given)


def _wallet_txo(w: Wallet, key: tuple[bytes, int]) -> Coin | None:
    """An output of the wallet's, spent or not (Core's FetchSelectedInputs takes a selected
    wallet TXO as it is: a transaction spending it again is the user's choice, a
    replacement for one)."""
    wtx = w.txs.get(key[0])
    if wtx is None or key[1] not in w.credits.get(key[0], ()):
        return None
    out = wtx.tx.vout[key[1]]
    owner = w.scripts.get(out.script_pubkey)
    if owner is None:
        return None
    return Coin(key[0], key[1], out.value, out.script_pubkey, owner[0], owner[1],
                w.depth(wtx), wtx.tx.is_coinbase(), w.is_trusted(wtx))


def _weight_of(value: Any) -> int:
    """An input's weight as given (Core's input_weights checks)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, missing weight key")
    weight = int(value)
    if weight < MIN_INPUT_WEIGHT:
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, weight cannot be less "
                          f"than {MIN_INPUT_WEIGHT} (41 bytes (size of outpoint + sequence + "
                          "empty scriptSig) * 4 (witness scaling factor)) + 1 (empty witness)")
    if weight > spend.MAX_STANDARD_TX_WEIGHT:
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, weight cannot be "
                          "greater than the maximum standard tx weight of "
                          f"{spend.MAX_STANDARD_TX_WEIGHT}")
    return weight


MIN_INPUT_WEIGHT = 41 * 4 + 1  # an input with an empty scriptSig and an empty witness


def _solving_store(w: Wallet, solving_data: Any) -> Any:
    """Core's solving_data as a signing store without private keys."""
    from wallet.sign import KeyStore

    store = KeyStore()
    data = solving_data or {}
    for pub in data.get("pubkeys", []):
        raw = bytes.fromhex(pub)
        store.pubkeys[hash160(raw)] = raw
    for script in data.get("scripts", []):
        store.add_script(bytes.fromhex(script))
    for text in data.get("descriptors", []):
        try:
            desc = parse_descriptor(text, w.params)
            exp = desc.expand_full(0)
        except DescriptorError as err:
            raise WalletError(RPC_INVALID_PARAMETER, str(err)) from None
        for key in exp.keys:
            store.pubkeys[hash160(key.pubkey)] = key.pubkey
        for sub in exp.subscripts.values():
            store.add_script(sub)
    return store


def _change_script(w: Wallet, address: Any) -> bytes | None:
    if address is None:
        return None
    try:
        return address_script(w, address)
    except WalletError:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Change address must be a valid bitcoin "
                          "address") from None


def _change_position(pos: Any, n_outputs: int) -> int | None:
    if pos is None:
        return None
    pos = int(pos)
    if pos != -1 and not 0 <= pos <= n_outputs:
        raise WalletError(RPC_INVALID_PARAMETER, "changePosition out of bounds")
    return None if pos == -1 else pos


def _opt(o: dict, *names: str) -> Any:
    """An option given under Core's current name or its old camelCase one."""
    for n in names:
        if o.get(n) is not None:
            return o[n]
    return None


@method("fundrawtransaction", Param("hexstring", STR), Param("options", ANY, None),
        Param("iswitness", BOOL, None))
def fundrawtransaction(call: Call, hexstring, options, iswitness):
    """Core's fundrawtransaction: the transaction's outputs kept (in order, amounts reduced
    when the fee is taken from them), its inputs kept first, more added, change inserted."""
    w = call.w
    tx = decode_hex_tx(hexstring, iswitness)
    if isinstance(options, bool):  # (the old includeWatching argument)
        options = {"includeWatching": options}
    if options is not None and not isinstance(options, dict):
        raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(options)} is not of "
                          "expected type object")
    o = dict(options or {})
    check_options(o, FUND_OPTIONS)
    if _opt(o, "feeRate") is not None and _opt(o, "fee_rate") is not None:
        raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both fee_rate (sat/vB) and "
                          "feeRate (BTC/kvB)")
    if _opt(o, "feeRate") is not None:
        rate = parse_btc(o["feeRate"])
    else:
        rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"),
                           o.get("estimate_mode"))
    if not tx.vout:
        raise WalletError(RPC_INVALID_PARAMETER, "TX must have at least one output")
    sub = subtract_positions(_opt(o, "subtract_fee_from_outputs", "subtractFeeFromOutputs"),
                             [str(i) for i in range(len(tx.vout))])
    recipients = [spend.Recipient(out.script_pubkey, out.value, i in sub)
                  for i, out in enumerate(tx.vout)]
    preset, weights, given = preset_inputs(
        w, call.node, [{"txid": hash_to_hex(t.prevout.hash), "vout": t.prevout.n}
                       for t in tx.vin], o.get("solving_data"), o.get("input_weights"))
    change_script = _change_script(w, _opt(o, "change_address", "changeAddress"))
    add_inputs = o.get("add_inputs")
    built = spend.create_transaction(
        w, recipients, rate, replaceable=bool(o.get("replaceable", True)),
        change_type=o.get("change_type"), change_script=change_script, preset=preset,
        add_inputs=True if add_inputs is None else bool(add_inputs), locktime=tx.locktime,
        change_position=_change_position(_opt(o, "change_position", "changePosition"),
                                          len(recipients)),
        preset_sequences={t.prevout.key(): t.sequence for t in tx.vin},
        ancestors=spend.mempool_ancestors(call.node), weights=weights, given_weights=given,
        max_tx_weight=_int_option(o.get("max_tx_weight"), "max_tx_weight"),
        override_min_fee=_opt(o, "feeRate", "fee_rate") is not None)
    out = built.tx
    for txin, orig in zip(out.vin, tx.vin, strict=False):  # (keeps what was signed)
        txin.script_sig, txin.witness = orig.script_sig, orig.witness
    out.version = tx.version
    if _opt(o, "lock_unspents", "lockUnspents"):
        _lock_inputs(w, out)
    return {"hex": out.serialize().hex(), "fee": to_btc(built.fee),
            "changepos": built.change_pos}


@method("signrawtransactionwithwallet", Param("hexstring", STR), Param("prevtxs", ARR, None),
        Param("sighashtype", STR, "DEFAULT"))
def signrawtransactionwithwallet(call: Call, hexstring, prevtxs, sighashtype):
    """Core's signrawtransactionwithwallet: every input the wallet has keys for is signed;
    the outputs spent come from the wallet, the node's UTXO set and mempool, or prevtxs."""
    from wallet.sign import KeyStore, SighashError, sighash_from_name, sign_transaction

    w = call.w
    tx = decode_hex_tx(hexstring, None)
    try:
        hash_type = sighash_from_name(sighashtype)
    except SighashError as err:
        raise WalletError(RPC_INVALID_PARAMETER, str(err)) from None
    spent: list = []
    for txin in tx.vin:
        spent.append(w.prevout(*txin.prevout.key()) if not w.is_spent(txin.prevout.key())
                     else None)
    for i, txin in enumerate(tx.vin):
        if spent[i] is None:
            found = call.node.call("gettxout", hash_to_hex(txin.prevout.hash), txin.prevout.n,
                                   True)
            if found:
                spent[i] = TxOut(parse_btc(found["value"]),
                                 bytes.fromhex(found["scriptPubKey"]["hex"]))
    store = KeyStore()
    for p in prevtxs or []:
        if not isinstance(p, dict):
            raise WalletError(RPC_TYPE_ERROR, "expected object with {\"txid'\",\"vout\","
                              "\"scriptPubKey\"}")
        key = _outpoint_of(p)
        if "scriptPubKey" not in p:
            raise WalletError(RPC_TYPE_ERROR, "Missing scriptPubKey")
        spk = bytes.fromhex(p["scriptPubKey"])
        value = parse_btc(p["amount"]) if "amount" in p else 0
        for i, txin in enumerate(tx.vin):
            if txin.prevout.key() == key:
                spent[i] = TxOut(value, spk)
        for name in ("redeemScript", "witnessScript"):
            if p.get(name):
                store.add_script(bytes.fromhex(p[name]))
    if any(w.owner(o.script_pubkey) for o in spent if o is not None):
        w.require_unlocked()
    for o in spent:
        if o is not None:
            _add_keys(w, store, o.script_pubkey)
    errors = sign_transaction(tx, store, spent, hash_type)
    out: dict = {"hex": tx.serialize().hex(), "complete": not errors}
    if errors:
        out["errors"] = [{"txid": hash_to_hex(tx.vin[i].prevout.hash),
                          "vout": tx.vin[i].prevout.n,
                          "witness": [x.hex() for x in tx.vin[i].witness],
                          "scriptSig": tx.vin[i].script_sig.hex(),
                          "sequence": tx.vin[i].sequence, "error": msg} for i, msg in errors]
    return out


def _add_keys(w: Wallet, store: Any, script: bytes) -> None:
    """The wallet's keys and scripts for an output it owns, into a signing KeyStore."""
    owner = w.owner(script)
    if owner is None:
        return
    acc, index = owner
    exp = acc.expansion(index)
    for key in exp.keys:
        secret = acc.secret_for(key.pubkey, index)
        if secret is not None:
            store.add_key(secret, len(key.pubkey) == 33)
        else:
            store.pubkeys[hash160(key.pubkey)] = key.pubkey
    for sub in exp.subscripts.values():
        store.add_script(sub)


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
        Param("avoid_reuse", BOOL, None), Param("fee_rate", AMOUNT, None),
        Param("verbose", BOOL, False))
def sendtoaddress(call: Call, address, amount, comment, comment_to, subtract, replaceable,
                  conf_target, estimate_mode, avoid_reuse, fee_rate, verbose):
    w = call.w
    script = address_script(w, address)
    sats = parse_btc(amount, allow_zero=False)
    avoid = avoid_reuse_flag(w, avoid_reuse)
    w.require_unlocked()
    rate = fee_rate_of(call, fee_rate, conf_target, estimate_mode)
    w.avoiding_used = avoid  # coin selection leaves out coins of used addresses
    try:
        tx, _ = spend.send(w, call.node, [spend.Recipient(script, sats, subtract)], rate,
                           replaceable=replaceable, comment=comment)
    finally:
        w.avoiding_used = False
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
    parsed = amounts_of(w, amounts)
    sub = subtract_positions(subtractfeefrom, [addr for addr, _, _ in parsed])
    recipients = [spend.Recipient(script, sats, i in sub)
                  for i, (_, script, sats) in enumerate(parsed)]
    w.require_unlocked()
    rate = fee_rate_of(call, fee_rate, conf_target, estimate_mode)
    tx, _ = spend.send(w, call.node, recipients, rate, replaceable=replaceable,
                       comment=comment)
    return _send_result(tx, verbose)


# The options FundTransaction takes (Core's RPCTypeCheckObj lists), for send and for
# fundrawtransaction / walletcreatefundedpsbt (which also take the old camelCase names).
SEND_OPTIONS = {
    "add_inputs": BOOL, "include_unsafe": BOOL, "add_to_wallet": BOOL, "change_address": STR,
    "change_position": NUM, "change_type": STR, "conf_target": NUM, "estimate_mode": ANY,
    "fee_rate": ANY, "input_weights": ARR, "inputs": ARR, "locktime": NUM,
    "lock_unspents": BOOL, "psbt": BOOL, "solving_data": OBJ,
    "subtract_fee_from_outputs": ARR, "replaceable": BOOL, "minconf": NUM, "maxconf": NUM,
    "max_tx_weight": NUM, "version": NUM,
}
FUND_OPTIONS = {
    **SEND_OPTIONS,
    "estimate_mode": STR,
    "changeAddress": STR, "changePosition": NUM, "includeWatching": BOOL,
    "include_watching": BOOL, "lockUnspents": BOOL, "feeRate": ANY,
    "subtractFeeFromOutputs": ARR,
}
_OUTDATED = (("feeRate", "Use fee_rate (sat/vB) instead of feeRate"),
             ("changeAddress", "Use change_address instead of changeAddress"),
             ("changePosition", "Use change_position instead of changePosition"),
             ("lockUnspents", "Use lock_unspents instead of lockUnspents"),
             ("subtractFeeFromOutputs",
              "Use subtract_fee_from_outputs instead of subtractFeeFromOutputs"))


def _prevent_outdated(o: dict) -> None:
    """Core's PreventOutdatedOptions (send, sendall)."""
    for key, message in _OUTDATED:
        if key in o:
            raise WalletError(RPC_INVALID_PARAMETER, message)


@method("send", Param("outputs", ANY), Param("conf_target", ANY, None),
        Param("estimate_mode", ANY, None), Param("fee_rate", AMOUNT, None),
        Param("options", OBJ, None))
def send(call: Call, outputs, conf_target, estimate_mode, fee_rate, options):
    w = call.w
    o = _fee_options(options, conf_target, estimate_mode, fee_rate)
    _prevent_outdated(o)
    check_options(o, SEND_OPTIONS)
    if "input_weights" in o:  # (Core's SetOptionsInputWeights)
        raise WalletError(RPC_INVALID_PARAMETER, "Input weights should be specified in inputs "
                          "rather than in options.")
    rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"), o.get("estimate_mode"))
    w.require_unlocked()
    built = fund(w, o.get("inputs"), outputs, rate, locktime=o.get("locktime"), node=call.node,
                 change_address=o.get("change_address"), change_type=o.get("change_type"),
                 subtract=o.get("subtract_fee_from_outputs", []),
                 lock=bool(o.get("lock_unspents")), add_inputs=o.get("add_inputs"),
                 replaceable=bool(o.get("replaceable", True)),
                 change_position=o.get("change_position"),
                 include_unsafe=bool(o.get("include_unsafe", False)),
                 minconf=o.get("minconf"), maxconf=o.get("maxconf"),
                 solving_data=o.get("solving_data"), max_tx_weight=o.get("max_tx_weight"))
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
    if o.get("conf_target") is not None and o.get("estimate_mode") in (None, "unset"):
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


@method("psbtbumpfee", Param("txid", STR), Param("options", OBJ, None),
        Param("psbt_version", NUM, None))
def psbtbumpfee(call: Call, txid, options, psbt_version):
    from wallet.rpc_psbt import _psbt_version

    version = _psbt_version(psbt_version)
    rate, replaceable = _bump_options(call, options)
    r = spend.bump_fee(call.w, call.node, parse_txid(txid), rate, replaceable, sign_it=False)
    r["psbt"].psbt_version = version
    return {"psbt": r["psbt"].to_base64(), "origfee": to_btc(r["origfee"]),
            "fee": to_btc(r["fee"]), "errors": r["errors"]}
