"""Wallet RPCs: balances, coins and history (Core's wallet/rpc/coins.cpp and
transactions.cpp), with Core's ListTransactions and WalletTxToJSON fields."""

from __future__ import annotations

from consensus.block import Block
from consensus.hashes import hash_to_hex
from consensus.script.script import is_p2sh
from consensus.tx import SEQUENCE_FINAL
from wallet.address import AddressError, decode_address, script_to_address
from wallet.amounts import json_integer, parse_btc, to_btc
from wallet.errors import (
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    RPC_WALLET_INVALID_LABEL_NAME,
    WalletError,
)
from wallet.nodeclient import NodeRPCError
from wallet.rpc import (
    ARR,
    BOOL,
    NUM,
    OBJ,
    STR,
    Call,
    Param,
    address_script,
    avoid_reuse_flag,
    coin_desc,
    json_type,
    last_block,
    method,
    parse_txid,
)
from wallet.wallet import Wallet, WalletTx


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


def _entries(w: Wallet, wtx: WalletTx, include_change: bool = False,
             min_depth: int = 0) -> list[dict]:
    """Core's ListTransactions entries (send and receive) for one transaction, without the
    transaction-wide fields; receives only at min_depth confirmations or more (a conflicted
    transaction's are not listed, except among listsinceblock's removed)."""
    debit = w.debit(wtx)
    fee = (debit - wtx.tx.total_out()) if debit > 0 else 0
    out = []
    mine = set(w.credits[wtx.txid])
    for n, txout in enumerate(wtx.tx.vout):
        if debit > 0:
            if n in mine and w.is_change(txout.script_pubkey) and not include_change:
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
            e["abandoned"] = wtx.txid in w.abandoned
            out.append(e)
    for n in sorted(mine) if w.depth(wtx) >= min_depth else ():
        txout = wtx.tx.vout[n]
        if debit > 0 and w.is_change(txout.script_pubkey) and not include_change:
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



# -- balances and history ------------------------------------------------------------------


@method("getbalance", Param("dummy", STR, None), Param("minconf", NUM, 0),
        Param("include_watchonly", BOOL, True), Param("avoid_reuse", BOOL, None))
def getbalance(call: Call, dummy, minconf, include_watchonly, avoid_reuse):
    if dummy is not None and dummy != "*":
        raise WalletError(-32, 'dummy first argument must be excluded or set to "*".')
    w = call.w
    used = w.used_scripts() if avoid_reuse_flag(w, avoid_reuse) else set()
    total = sum(c.value for c in w.coins() if c.depth >= minconf and c.script not in used)
    return to_btc(total)


@method("getunconfirmedbalance")
def getunconfirmedbalance(call: Call):
    return to_btc(call.w.balances()["untrusted_pending"])


@method("getbalances")
def getbalances(call: Call):
    w = call.w
    b = w.balances()
    mine = {"trusted": to_btc(b["trusted"]),
            "untrusted_pending": to_btc(b["untrusted_pending"]),
            "immature": to_btc(b["immature"])}
    if w.avoid_reuse:  # Core: what the trusted and pending balances hold in used addresses
        used = w.used_scripts()
        mine["used"] = to_btc(sum(c.value for c in w.coins(include_unsafe=True)
                                  if c.script in used))
    mine["nonmempool"] = to_btc(b["nonmempool"])
    return {"mine": mine, "lastprocessedblock": last_block(w)}


@method("listunspent", Param("minconf", NUM, 1), Param("maxconf", NUM, 9999999),
        Param("addresses", ARR, None), Param("include_unsafe", BOOL, True),
        Param("query_options", OBJ, None))
def listunspent(call: Call, minconf, maxconf, addresses, include_unsafe, query_options):
    w = call.w
    wanted = None
    if addresses:
        wanted = set()
        for a in addresses:
            if not isinstance(a, str):
                raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(a)} is not of "
                                  f"expected type string")
            s = address_script(w, a)
            if s in wanted:
                raise WalletError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated "
                                  f"address: {a}")
            wanted.add(s)
    q = query_options or {}
    min_amount = parse_btc(q["minimumAmount"]) if "minimumAmount" in q else 0
    out = []
    immature = bool(q.get("include_immature_coinbase", False))
    used = w.used_scripts() if w.avoid_reuse else None
    for c in sorted(w.coins(include_unsafe=include_unsafe, skip_locked=True,
                            include_immature=immature),
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
        if used is not None:
            e["reused"] = c.script in used
        e["desc"] = coin_desc(w, c.script)
        e["parent_descs"] = [acc.descriptor]
        e["safe"] = c.trusted
        out.append(e)
    return out


@method("lockunspent", Param("unlock", BOOL), Param("transactions", ARR, None),
        Param("persistent", BOOL, False))
def lockunspent(call: Call, unlock, transactions, persistent):
    w = call.w
    if transactions is None:
        if unlock:
            with w.db.atomic():
                for outpoint in list(w.locked_coins):
                    w.unlock_coin(outpoint)
        return True
    outpoints = []
    for o in transactions:  # all checked before any is changed, as Core does
        if not isinstance(o, dict):
            raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(o)} is not of "
                              "expected type object")
        for key, want in (("txid", "string"), ("vout", "number")):
            if o.get(key) is None:
                raise WalletError(RPC_TYPE_ERROR, f"Missing {key}")
            if json_type(o[key]) != want:
                raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(o[key])} "
                                  f"for field {key} is not of expected type {want}")
        txid, n = parse_txid(o["txid"]), o["vout"]
        try:
            n = json_integer(n)
        except ValueError as err:
            raise WalletError(RPC_TYPE_ERROR, str(err)) from None
        if n < 0:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, vout cannot be negative")
        wtx = w.txs.get(txid)
        if wtx is None:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, unknown transaction")
        if n >= len(wtx.tx.vout):
            raise WalletError(RPC_INVALID_PARAMETER,
                              "Invalid parameter, vout index out of bounds")
        if w.is_spent((txid, n)):
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, expected unspent output")
        locked = (txid, n) in w.locked_coins
        if unlock and not locked:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, expected locked output")
        if not unlock and locked and not persistent:
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter, output already locked")
        outpoints.append((txid, n))
    with w.db.atomic():
        for outpoint in outpoints:
            if unlock:
                w.unlock_coin(outpoint)
            else:
                w.lock_coin(outpoint, persistent)
    return True


@method("listlockunspent", syncs=False)
def listlockunspent(call: Call):
    return [{"txid": hash_to_hex(txid), "vout": n} for txid, n in sorted(call.w.locked_coins)]


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
            rows.append({**e, **fields})
    if count == 0:
        return []
    end = len(rows) - skip
    return rows[max(0, end - count):max(0, end)]


@method("listsinceblock", Param("blockhash", STR, None), Param("target_confirmations", NUM, 1),
        Param("include_watchonly", BOOL, True), Param("include_removed", BOOL, True),
        Param("include_change", BOOL, False), Param("label", STR, None))
def listsinceblock(call: Call, blockhash, target_confirmations, include_watchonly,
                   include_removed, include_change, label):
    w = call.w
    node = call.node
    height = None  # the height of the last block both chains share
    removed_hashes: list[str] = []  # blocks of the given one's branch no longer in the chain
    if blockhash:
        parse_txid(blockhash, "blockhash")
        try:
            header = node.call("getblockheader", blockhash)
        except NodeRPCError as err:
            if err.code == RPC_INVALID_ADDRESS_OR_KEY:
                raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None
            raise
        while int(header["confirmations"]) < 0:  # not in the active chain: find the fork
            removed_hashes.append(header["hash"])
            header = node.call("getblockheader", header["previousblockhash"])
        height = int(header["height"])
    if target_confirmations < 1:
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid parameter")
    depth = -1 if height is None else w.tip_height + 1 - height
    rows = []
    for wtx in w.txs.values():
        if depth == -1 or abs(w.depth(wtx)) < depth:
            rows.extend(_listed(w, wtx, include_change, label))
    out: dict = {"transactions": rows}
    if include_removed:
        removed = []
        for bhash in removed_hashes:
            try:
                raw = node.call("getblock", bhash, 0)
            except NodeRPCError:
                raise WalletError(RPC_INTERNAL_ERROR, "Can't read block from disk") from None
            for tx in Block.from_bytes(bytes.fromhex(raw)).txs:
                wtx = w.txs.get(tx.txid)
                if wtx is not None:
                    removed.extend(_listed(w, wtx, include_change, label, -100_000_000))
        out["removed"] = removed
    last = w.tip_height + 1 - target_confirmations
    last_hash = w.block_hash_at(last) if last >= 0 else None
    if last_hash is None:
        out["lastblock"] = node.call("getblockhash", max(0, last))
    else:
        out["lastblock"] = hash_to_hex(last_hash)
    return out


def _listed(w: Wallet, wtx: WalletTx, include_change: bool = False,
            label: str | None = None, min_depth: int = 0) -> list[dict]:
    """Core's ListTransactions rows of one transaction (entries with the transaction's
    fields); with a label, only the receives with that label."""
    fields = _tx_fields(w, wtx)
    rows = []
    for e in _entries(w, wtx, include_change, min_depth):
        if label is not None and (e["category"] == "send" or e.get("label", "") != label):
            continue
        rows.append({**e, **fields})
    return rows


@method("gettransaction", Param("txid", STR), Param("include_watchonly", BOOL, True),
        Param("verbose", BOOL, False))
def gettransaction(call: Call, txid, include_watchonly, verbose):
    w = call.w
    wtx = w.txs.get(parse_txid(txid))
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
    out["lastprocessedblock"] = last_block(w)
    if verbose:
        out["decoded"] = call.node.call("decoderawtransaction", out["hex"])
    return out


@method("abandontransaction", Param("txid", STR))
def abandontransaction(call: Call, txid):
    w = call.w
    wtx = w.txs.get(parse_txid(txid))
    if wtx is None:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
    conflicted = any(w.txs[t].confirmed for t in w.conflicts(wtx))
    if wtx.active or conflicted:  # (Core: its depth is not 0, or it is in the mempool)
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not eligible for abandonment")
    w.abandon(wtx.txid)
    return None


def _counts_received(w: Wallet, wtx: WalletTx, min_depth: int, immature: bool) -> bool:
    """Whether a transaction's outputs count in getreceivedby*/listreceivedby* (Core's
    GetReceived and ListReceived filters)."""
    depth = w.depth(wtx)
    if depth < min_depth:
        return False
    if wtx.tx.is_coinbase() and (depth < 1 or (w.maturity_left(wtx) > 0 and not immature)):
        return False
    return True


def _received(w: Wallet, scripts: set[bytes], min_depth: int, immature: bool) -> int:
    total = 0
    for wtx in w.txs.values():
        if _counts_received(w, wtx, min_depth, immature):
            total += sum(o.value for o in wtx.tx.vout if o.script_pubkey in scripts)
    return total


@method("getreceivedbyaddress", Param("address", STR), Param("minconf", NUM, 1),
        Param("include_immature_coinbase", BOOL, False))
def getreceivedbyaddress(call: Call, address, minconf, include_immature_coinbase):
    w = call.w
    try:
        script = decode_address(address, w.params).script
    except AddressError:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid Bitcoin address") from None
    if not w.is_mine(script):
        raise WalletError(RPC_WALLET_ERROR, "Address not found in wallet")
    return to_btc(_received(w, {script}, int(minconf), include_immature_coinbase))


@method("getreceivedbylabel", Param("label", STR), Param("minconf", NUM, 1),
        Param("include_immature_coinbase", BOOL, False))
def getreceivedbylabel(call: Call, label, minconf, include_immature_coinbase):
    w = call.w
    if label == "*":
        raise WalletError(RPC_WALLET_INVALID_LABEL_NAME, "Invalid label name")
    scripts = set()
    for addr, lbl in w.labels.items():
        if lbl == label:
            script = _own_script(w, addr)
            if script is not None:
                scripts.add(script)
    if not scripts:
        raise WalletError(RPC_WALLET_ERROR, "Label not found in wallet")
    return to_btc(_received(w, scripts, int(minconf), include_immature_coinbase))


def _own_script(w: Wallet, address: str) -> bytes | None:
    try:
        script = decode_address(address, w.params).script
    except AddressError:
        return None
    return script if w.is_mine(script) else None


def _list_received(w: Wallet, min_depth: int, include_empty: bool, immature: bool,
                   address_filter: str | None, by_label: bool) -> list[dict]:
    """Core's ListReceived: what each labelled address of the wallet (or each label) got."""
    filtered = None
    if not by_label and address_filter:
        try:
            filtered = decode_address(address_filter, w.params).script
        except AddressError:
            raise WalletError(RPC_WALLET_ERROR, "address_filter parameter was invalid") from None
    tally: dict[bytes, list] = {}  # script -> [amount, min depth, txids]
    for wtx in w.txs.values():
        if not _counts_received(w, wtx, min_depth, immature):
            continue
        depth = w.depth(wtx)
        for out in wtx.tx.vout:
            spk = out.script_pubkey
            if (filtered is not None and spk != filtered) or not w.is_mine(spk):
                continue
            item = tally.setdefault(spk, [0, None, []])
            item[0] += out.value
            item[1] = depth if item[1] is None else min(item[1], depth)
            item[2].append(hash_to_hex(wtx.txid))
    rows = []
    by: dict[str, list] = {}
    for addr in sorted(w.labels):
        script = _own_script(w, addr)
        if script is None or (filtered is not None and script != filtered):
            continue
        item = tally.get(script)
        if item is None and not include_empty:
            continue
        amount, conf, txids = item if item is not None else (0, None, [])
        label = w.labels[addr]
        if by_label:
            acc = by.setdefault(label, [0, None])
            acc[0] += amount
            if conf is not None:
                acc[1] = conf if acc[1] is None else min(acc[1], conf)
        else:
            rows.append({"address": addr, "amount": to_btc(amount),
                         "confirmations": conf or 0, "label": label, "txids": list(txids)})
    if by_label:
        rows = [{"amount": to_btc(a), "confirmations": c or 0, "label": lbl}
                for lbl, (a, c) in sorted(by.items())]
    return rows


@method("listreceivedbyaddress", Param("minconf", NUM, 1), Param("include_empty", BOOL, False),
        Param("include_watchonly", BOOL, True), Param("address_filter", STR, None),
        Param("include_immature_coinbase", BOOL, False))
def listreceivedbyaddress(call: Call, minconf, include_empty, include_watchonly,
                          address_filter, include_immature_coinbase):
    return _list_received(call.w, int(minconf), include_empty, include_immature_coinbase,
                          address_filter, by_label=False)


@method("listreceivedbylabel", Param("minconf", NUM, 1), Param("include_empty", BOOL, False),
        Param("include_watchonly", BOOL, True), Param("include_immature_coinbase", BOOL, False))
def listreceivedbylabel(call: Call, minconf, include_empty, include_watchonly,
                        include_immature_coinbase):
    return _list_received(call.w, int(minconf), include_empty, include_immature_coinbase,
                          None, by_label=True)
