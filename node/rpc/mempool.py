"""Mempool RPCs: sendrawtransaction, testmempoolaccept, getmempoolinfo, getrawmempool,
getmempoolentry, getmempoolancestors, getmempooldescendants, estimatesmartfee, and
savemempool/importmempool (mempool.dat, node/mempool_persist.py)."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from consensus.script.script import has_valid_ops, is_unspendable
from node.mempool import MempoolReject
from node.rpc.errors import (
    RPC_CLIENT_IN_INITIAL_DOWNLOAD,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TRANSACTION_ALREADY_IN_UTXO_SET,
    RPC_TRANSACTION_ERROR,
    RPC_TRANSACTION_REJECTED,
    RPC_TYPE_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc, double
from node.rpc.params import amount, as_int, parse_hash
from node.rpc.rawtransactions import decode_tx
from node.rpc.registry import (
    AMOUNT,
    ANY,
    ARR,
    BOOL,
    NUM,
    OBJ,
    REGISTRY,
    STR,
    Arg,
    json_type,
    rpc,
)

log = logging.getLogger("rpc")

DEFAULT_MAX_RAW_TX_FEE_RATE = 10_000_000  # sat/kvB: 0.10 BTC/kvB, Core's default maxfeerate


def _fee_rate_arg(value, default: int) -> int:
    """A BTC/kvB maxfeerate argument -> sat/kvB (Core's ParseFeeRate: below 1 BTC/kvB)."""
    if value is None:
        return default
    rate = amount(value, "maxfeerate")
    if rate >= 100_000_000:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Fee rates larger than or equal to 1BTC/kvB are not accepted")
    return rate


# Transactions decoded by a batch's prepare step, reused by its calls (same worker thread).
_prepared = threading.local()


def _decode(hexstring: str):
    cache = getattr(_prepared, "txs", None)
    if cache is not None:
        tx = cache.pop(hexstring, None)
        if tx is not None:
            return tx
    return decode_tx(hexstring)


def _prepare_send(node, params_list: list, chunk: int = 100):
    """Batch of sendrawtransaction calls: decode them all and have their scripts checked on
    the mempool's workers, chunk by chunk as they are decoded, so that each call then finds
    its result done (or takes the check over if the workers have not got to it yet).
    Returns the cleanup for the end of the batch."""
    txs: dict[str, object] = {}
    _prepared.txs = txs
    stream = node.mempool.start_background_checks()

    def done() -> None:
        _prepared.txs = None
        if stream is not None:
            node.mempool.end_background_checks(stream)

    try:
        _decode_and_check(node, params_list, txs, stream, chunk)
    except BaseException:
        done()  # the stream holds the workers: never leave it open
        raise
    return done


def _decode_and_check(node, params_list: list, txs: dict, stream, chunk: int) -> None:
    pending = []
    for params in params_list:
        hexstring = None
        if isinstance(params, list) and params and isinstance(params[0], str):
            hexstring = params[0]
        elif isinstance(params, dict) and isinstance(params.get("hexstring"), str):
            hexstring = params["hexstring"]
        if hexstring is None or hexstring in txs:
            continue  # (the same transaction twice in one batch: checked once)
        try:
            tx = txs[hexstring] = decode_tx(hexstring)
        except RPCError:
            continue
        pending.append(tx)
        if stream is not None and len(pending) == chunk:
            node.mempool.check_in_background(stream, pending)
            pending = []
    if stream is not None and pending:
        node.mempool.check_in_background(stream, pending)


@rpc("sendrawtransaction", "Rawtransactions",
     [Arg("hexstring", STR, help="The hex string of the raw transaction"),
      Arg("maxfeerate", AMOUNT, False, None,
          "Reject transactions whose fee rate is higher than the specified value, expressed "
          "in BTC/kvB. Fee rates larger than 1BTC/kvB are rejected. Set to 0 to accept any "
          "fee rate.", default_hint="\"0.10\""),
      Arg("maxburnamount", AMOUNT, False, None,
          "Reject transactions with provably unspendable outputs (e.g. 'datacarrier' outputs "
          "that use the OP_RETURN opcode) greater than the specified value, expressed in BTC.",
          default_hint="\"0.00\"")],
     description="Submit a raw transaction (serialized, hex-encoded) to local node and "
                 "network.\n\nThe transaction will be sent unconditionally to all peers, so "
                 "using sendrawtransaction\nfor manual rebroadcast may degrade privacy by "
                 "leaking the transaction's origin, as\nnodes will normally not rebroadcast "
                 "non-wallet transactions already in their mempool.",
     result='"hex"    (string) The transaction hash in hex')
def sendrawtransaction(node, hexstring, maxfeerate, maxburnamount):
    tx = _decode(hexstring)
    max_rate = _fee_rate_arg(maxfeerate, DEFAULT_MAX_RAW_TX_FEE_RATE)
    max_burn = amount(maxburnamount, "maxburnamount") if maxburnamount is not None else 0
    for out in tx.vout:
        spk = out.script_pubkey
        if (is_unspendable(spk) or not has_valid_ops(spk)) and out.value > max_burn:
            raise RPCError(RPC_TRANSACTION_ERROR, "Unspendable output exceeds maximum "
                           "configured by user (maxburnamount)")
    mempool = node.mempool
    with node.chain.lock:
        # (A confirmed transaction is answered with -27 below: its inputs are spent, and
        # acceptance then looks for its outputs in the UTXO set, as Core does up front.)
        if tx.txid in mempool:
            # This txid is known (whatever its witness): as Core, announced again to peers
            # that have not seen it, and not put back in the unbroadcast set.
            if node.p2p is not None:
                node.p2p.relay.announce_threadsafe([tx.txid])
            return tx.txid_hex()
        try:
            mempool.accept(tx, max_fee_rate=max_rate if max_rate else None)
            mempool.unbroadcast.add(tx.txid)
        except MempoolReject as err:
            # A confirmed transaction fails acceptance one way or another; Core answers -27
            # for it (it checks the outputs first; only rejected ones pay for that here).
            if err.already_known or any(node.chain.get_coin(tx.txid, n) is not None
                                        for n in range(len(tx.vout))):
                raise RPCError(RPC_TRANSACTION_ALREADY_IN_UTXO_SET,
                               "Transaction outputs already in utxo set") from None
            if err.reason == "max-fee-exceeded":
                raise RPCError(RPC_TRANSACTION_ERROR, "Fee exceeds maximum configured by user "
                               "(e.g. -maxtxfee, maxfeerate)") from None
            text = f"{err.reason}, {err.debug}" if err.debug else err.reason
            if err.missing_inputs:
                raise RPCError(RPC_TRANSACTION_ERROR, text) from None
            raise RPCError(RPC_TRANSACTION_REJECTED, text) from None
    return tx.txid_hex()


REGISTRY["sendrawtransaction"].prepare = _prepare_send
REGISTRY["sendrawtransaction"].inline_if_free = True  # (small ones: see registry.py)


@rpc("testmempoolaccept", "Rawtransactions",
     [Arg("rawtxs", ARR, help="An array of hex strings of raw transactions."),
      Arg("maxfeerate", AMOUNT, False, None,
          "Reject transactions whose fee rate is higher than the specified value, expressed "
          "in BTC/kvB", default_hint="\"0.10\"")],
     description="Returns result of mempool acceptance tests indicating if raw transaction(s) "
                 "(serialized, hex-encoded) would be accepted by mempool.\n\nThis checks if "
                 "transactions violate the consensus or policy rules.\n\nSee "
                 "sendrawtransaction call.")
def testmempoolaccept(node, rawtxs, maxfeerate):
    from node.mempool import PackageTxResult
    from node.policy import MAX_PACKAGE_COUNT, fee_for

    if not rawtxs or len(rawtxs) > MAX_PACKAGE_COUNT:
        raise RPCError(RPC_INVALID_PARAMETER, "Array must contain between 1 and "
                       f"{MAX_PACKAGE_COUNT} transactions.")
    max_rate = _fee_rate_arg(maxfeerate, DEFAULT_MAX_RAW_TX_FEE_RATE)
    txs = [decode_tx(raw) for raw in rawtxs]
    if len(txs) == 1:
        tx = txs[0]
        try:
            res = node.mempool.accept(tx, test_only=True)
            fee = res.fee
            results = {tx.wtxid: PackageTxResult(
                "valid", res.vsize, fee,
                (fee + node.mempool.deltas.get(tx.txid, 0)) * 1000 // res.vsize, [tx.wtxid])}
        except MempoolReject as err:
            results = {tx.wtxid: PackageTxResult("invalid", error=err)}
        package_error = None
    else:
        # A package (Core's AcceptMultipleTransactions in test mode): sorted, each paying its
        # own fee rate, checked against the mempool and the transactions before it.
        pres = node.mempool.test_package(txs)
        results = pres.results
        package_error = pres.error if pres.policy else None
    out = []
    # As Core: past a transaction over maxfeerate, the rest get only their ids (they would
    # not be submitted without it).
    exit_early = False
    for tx in txs:
        item: dict = {"txid": tx.txid_hex(), "wtxid": tx.wtxid_hex()}
        if package_error is not None:
            item["package-error"] = package_error
        r = results.get(tx.wtxid)
        if exit_early or r is None:
            out.append(item)  # (not evaluated)
            continue
        if r.kind == "valid":
            if max_rate and r.fee > fee_for(max_rate, r.vsize):
                item["allowed"] = False
                item["reject-reason"] = "max-fee-exceeded"
                exit_early = True
            else:
                item["allowed"] = True
                item["vsize"] = r.vsize
                item["vsize_bip141"] = (tx.weight + 3) // 4
                item["vsize_adjusted"] = r.vsize
                item["fees"] = {
                    "base": btc(r.fee),
                    "effective-feerate": btc(r.rate),
                    "effective-includes": [w[::-1].hex() for w in r.includes],
                }
        else:
            err = r.error
            item["allowed"] = False
            if err.missing_inputs:
                item["reject-reason"] = "missing-inputs"
            else:
                item["reject-reason"] = err.reason
                item["reject-details"] = f"{err.reason}, {err.debug}" if err.debug else err.reason
        out.append(item)
    return out


REGISTRY["testmempoolaccept"].inline_if_free = True  # (small ones: see registry.py)


def deprecated(node, name: str) -> bool:
    """-deprecatedrpc=name given: a deprecated result field is still shown."""
    cfg = getattr(node, "config", None)
    return cfg is not None and name in cfg.arg_list("deprecatedrpc")


def entry_json(mempool, e, node=None) -> dict:
    """Core's entryToJSON."""
    anc = mempool.ancestors(e)
    desc = mempool.descendants(e)
    an, asize, afees, _ = mempool.package_stats(anc)
    dn, dsize, dfees, _ = mempool.package_stats(desc)
    out = {
        "vsize": e.vsize,
        "weight": e.weight,
        "time": e.time,
        "height": e.height,
        "descendantcount": dn + 1,
        "descendantsize": dsize + e.vsize,
        "ancestorcount": an + 1,
        "ancestorsize": asize + e.vsize,
        "wtxid": e.wtxid[::-1].hex(),
        "fees": {
            "base": btc(e.fee),
            "modified": btc(e.modified_fee),
            "ancestor": btc(afees + e.modified_fee),
            "descendant": btc(dfees + e.modified_fee),
        },
        "depends": sorted(p[::-1].hex() for p in e.parents),
        "spentby": sorted(c[::-1].hex() for c in e.children),
    }
    if node is None or deprecated(node, "bip125"):
        out["bip125-replaceable"] = mempool._signals_rbf(e.txid, anc)
    out["unbroadcast"] = e.txid in mempool.unbroadcast
    return out


@rpc("getmempoolinfo", "Blockchain",
     description="Returns details on the active state of the TX memory pool.")
def getmempoolinfo(node):
    m = node.mempool
    with node.chain.lock:
        out = {
            "loaded": m.loaded,
            "size": len(m),
            "bytes": m.total_size,
            "usage": m.usage,
            "total_fee": btc(m.total_fee),
            "maxmempool": m.max_bytes,
            "mempoolminfee": btc(max(m.min_fee_rate(), m.min_relay_fee)),
            "minrelaytxfee": btc(m.min_relay_fee),
            "incrementalrelayfee": btc(m.incremental_relay_fee),
            "unbroadcastcount": len(m.unbroadcast),
        }
        if deprecated(node, "fullrbf"):
            out["fullrbf"] = m.full_rbf
        out["permitbaremultisig"] = m.permit_bare_multisig
        out["maxdatacarriersize"] = m.max_datacarrier_bytes or 0
        out["limitclustercount"] = m.cluster_count
        out["limitclustersize"] = m.cluster_size
        out["optimal"] = True
        return out


@rpc("getrawmempool", "Blockchain",
     [Arg("verbose", BOOL, False, False,
          "True for a json object, false for array of transaction ids"),
      Arg("mempool_sequence", BOOL, False, False,
          "If verbose=false, returns a json object with transaction list and mempool "
          "sequence number attached.")],
     description="Returns all transaction ids in memory pool as a json array of string "
                 "transaction ids.\n\nHint: use getmempoolentry to fetch a specific transaction "
                 "from the mempool.")
def getrawmempool(node, verbose, mempool_sequence):
    m = node.mempool
    if verbose and mempool_sequence:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Verbose results cannot contain mempool sequence values.")
    with node.chain.lock:
        order = m.sorted_txids()
        if verbose:
            return {t[::-1].hex(): entry_json(m, m.entries[t], node) for t in order}
        txids = [t[::-1].hex() for t in order]
        if mempool_sequence:
            # Core's counter starts at 1 (the ZMQ sequence topic numbers events from it)
            return {"txids": txids, "mempool_sequence": m.transactions_updated + 1}
        return txids


def _entry(node, txid: str):
    h = parse_hash(txid, "txid")
    e = node.mempool.entries.get(h)
    if e is None:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return e


@rpc("getmempoolentry", "Blockchain",
     [Arg("txid", STR, help="The transaction id (must be in mempool)")],
     description="Returns mempool data for given transaction")
def getmempoolentry(node, txid):
    with node.chain.lock:
        return entry_json(node.mempool, _entry(node, txid), node)


def _related(node, txid, verbose, which: str):
    m = node.mempool
    with node.chain.lock:
        e = _entry(node, txid)
        txids = m.ancestors(e) if which == "ancestors" else m.descendants(e)
        if not verbose:
            return [t[::-1].hex() for t in txids]
        return {t[::-1].hex(): entry_json(m, m.entries[t], node) for t in txids}


@rpc("getmempoolancestors", "Blockchain",
     [Arg("txid", STR, help="The transaction id (must be in mempool)"),
      Arg("verbose", BOOL, False, False,
          "True for a json object, false for array of transaction ids")],
     description="If txid is in the mempool, returns all in-mempool ancestors.")
def getmempoolancestors(node, txid, verbose):
    return _related(node, txid, verbose, "ancestors")


@rpc("getmempooldescendants", "Blockchain",
     [Arg("txid", STR, help="The transaction id (must be in mempool)"),
      Arg("verbose", BOOL, False, False,
          "True for a json object, false for array of transaction ids")],
     description="If txid is in the mempool, returns all in-mempool descendants.")
def getmempooldescendants(node, txid, verbose):
    return _related(node, txid, verbose, "descendants")


@rpc("estimatesmartfee", "Util",
     [Arg("conf_target", NUM, help="Confirmation target in blocks (1 - 1008)"),
      Arg("estimate_mode", STR, False, "economical",
          'The fee estimate mode: "unset", "economical" or "conservative".'),
      Arg("options", OBJ, False, None,
          "fee_rate_estimator (string): which estimator to use (only the block policy "
          "estimator is kept here); verbosity (numeric): detail of the result")],
     description="Estimates the approximate fee per kilobyte needed for a transaction to begin "
                 "confirmation within conf_target blocks if possible and return the number of "
                 "blocks for which the estimate is valid. Uses virtual transaction size as "
                 "defined in BIP 141 (witness data is discounted).\n\nResult: \"feerate\" "
                 "(BTC/kvB, only present if no errors were encountered), \"errors\" (if any) "
                 "and \"blocks\": the target the estimate was found at, clamped between 2 and "
                 "the highest target fee estimation can answer for after the blocks it has "
                 "seen (0 before it has any data).")
def estimatesmartfee(node, conf_target, estimate_mode, options):
    _check_options(options, {"fee_rate_estimator": "string", "verbosity": "number"})
    est = node.fee_estimator
    target = as_int(conf_target, "conf_target")
    max_target = est.highest_target_tracked()
    if target < 1 or target > max_target:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"Invalid conf_target, must be between 1 and {max_target}")
    mode = (estimate_mode or "economical").lower()
    if mode not in ("unset", "economical", "conservative"):
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid estimate_mode parameter, must be one of: "
                       '"unset", "economical", "conservative"')
    m = node.mempool
    with node.chain.lock:
        rate, calc = est.estimate_smart_fee(target, conservative=mode == "conservative")
        floor = max(m.min_fee_rate(), m.min_relay_fee)
    result: dict = {}
    if rate is not None:  # as Core: never under the mempool's minimum nor the relay minimum
        result["feerate"] = btc(max(rate, floor))
    else:
        result["errors"] = ["Insufficient data or no feerate found"]
    result["blocks"] = calc.returned_target
    return result


def _check_options(options, known: dict[str, str]) -> None:
    """Core's RPCTypeCheckObj with strict keys: known keys of the right JSON type only."""
    if not options:
        return
    for key, value in options.items():
        if key not in known:
            raise RPCError(RPC_TYPE_ERROR, f"Unexpected key {key}")
        if value is not None and json_type(value) != known[key]:
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} for field "
                           f"{key} is not of expected type {known[key]}")


def _bucket_json(b) -> dict:
    """An estimator bucket range as Core reports it: ends rounded, counts to 2 decimals."""
    return {"startrange": double(_c_round(b.start)), "endrange": double(_c_round(b.end)),
            "withintarget": double(_c_round(b.within_target * 100) / 100),
            "totalconfirmed": double(_c_round(b.total_confirmed * 100) / 100),
            "inmempool": double(_c_round(b.in_mempool * 100) / 100),
            "leftmempool": double(_c_round(b.left_mempool * 100) / 100)}


def _c_round(x: float) -> float:
    """C's round(): to the nearest integer, halves away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x) if abs(x) < 2 ** 52 else x


@rpc("estimaterawfee", "Hidden",
     [Arg("conf_target", NUM, help="Confirmation target in blocks (1 - 1008)"),
      Arg("threshold", NUM, False, None,
          "The proportion of transactions in a given feerate range that must have been "
          "confirmed within conf_target in order to consider those feerates as high enough "
          "and proceed to check lower buckets.", default_hint="0.95")],
     description="WARNING: This interface is unstable and may disappear or change!\n\n"
                 "Estimates the approximate fee per kilobyte needed for a transaction to begin "
                 "confirmation within conf_target blocks if possible. Uses virtual transaction "
                 "size as defined in BIP 141 (witness data is discounted).\n\nResults are "
                 "returned for any horizon (short, medium, long) which tracks blocks up to the "
                 "confirmation target: \"feerate\" (BTC/kvB, when a range meets the threshold), "
                 "\"decay\", \"scale\", \"pass\" (the lowest range of feerates to succeed), "
                 "\"fail\" (the highest range to fail) and \"errors\".")
def estimaterawfee(node, conf_target, threshold):
    from node.fees import HORIZONS, EstimationResult

    est = node.fee_estimator
    target = as_int(conf_target, "conf_target")
    max_target = est.highest_target_tracked()
    if target < 1 or target > max_target:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"Invalid conf_target, must be between 1 and {max_target}")
    ratio = 0.95 if threshold is None else float(threshold)
    if ratio < 0 or ratio > 1:
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid threshold")
    out = {}
    with node.chain.lock:
        for horizon in HORIZONS:  # short, medium, long
            if target > est.highest_target_tracked(horizon):
                continue
            res = EstimationResult()
            rate = est.estimate_raw_fee(target, ratio, horizon, res)
            item: dict = {}
            if rate is not None:
                item["feerate"] = btc(rate)
                item["decay"] = double(res.decay)
                item["scale"] = res.scale
                item["pass"] = _bucket_json(res.passed)
                if res.failed.start != -1:  # -1: every range passed, none failed
                    item["fail"] = _bucket_json(res.failed)
            else:  # only what still means something
                item["decay"] = double(res.decay)
                item["scale"] = res.scale
                item["fail"] = _bucket_json(res.failed)
                item["errors"] = ["Insufficient data or no feerate found which meets "
                                  "threshold"]
            out[horizon] = item
    return out


@rpc("getorphantxs", "Hidden",
     [Arg("verbosity", ANY, False, 0,
          "0 for an array of txids (may contain duplicates), 1 for an array of objects with "
          "tx details, and 2 for details from (1) and tx hex", default_hint="0",
          aliases=("verbose",))],
     description="Shows transactions in the tx orphanage.\n\nEXPERIMENTAL warning: this call "
                 "may be changed in future releases.")
def getorphantxs(node, verbosity):
    if isinstance(verbosity, bool):
        raise RPCError(RPC_TYPE_ERROR, "Verbosity was boolean but only integer allowed")
    level = as_int(verbosity, "verbosity") if verbosity is not None else 0
    if level not in (0, 1, 2):
        raise RPCError(RPC_INVALID_PARAMETER, f"Invalid verbosity value {level}")
    m = node.mempool
    with node.chain.lock:
        orphans = list(m.orphans.values())
    if level == 0:
        return [o.tx.txid_hex() for o in orphans]
    out = []
    for o in orphans:
        tx = o.tx
        item = {"txid": tx.txid_hex(), "wtxid": tx.wtxid_hex(), "bytes": tx.size,
                "vsize": (tx.weight + 3) // 4, "weight": tx.weight, "from": list(o.announcers)}
        if level == 2:
            item["hex"] = tx.serialize().hex()
        out.append(item)
    return out


@rpc("gettxspendingprevout", "Blockchain",
     [Arg("outputs", ARR, help="The transaction outputs that we want to check, and within "
                               "each, the txid (string) vout (numeric)."),
      Arg("options", OBJ, False, None, "mempool_only (boolean): look in the mempool only; "
                                       "return_spending_tx (boolean): add the spending "
                                       "transaction")],
     description="Scans the mempool (and the txospenderindex, if available) to find "
                 "transactions spending any of the given outputs")
def gettxspendingprevout(node, outputs, options):
    _check_options(options, {"mempool_only": "bool", "return_spending_tx": "bool"})
    with_tx = bool(options and options.get("return_spending_tx"))
    from node.rpc.index import add_confirmed_spenders, has_spender_index  # -txospenderindex

    mempool_only = options.get("mempool_only") if options else None
    if mempool_only is None:  # Core's default: true unless the index is there
        mempool_only = not has_spender_index(node)
    unresolved = []
    if not outputs:
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, outputs are missing")
    wanted = []
    for o in outputs:
        if not isinstance(o, dict):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(o)} is not of "
                           "expected type object")
        _check_options({k: v for k, v in o.items()}, {"txid": "string", "vout": "number"})
        if "txid" not in o:
            raise RPCError(RPC_TYPE_ERROR, "Missing txid")
        if "vout" not in o:
            raise RPCError(RPC_TYPE_ERROR, "Missing vout")
        n = as_int(o["vout"], "vout")
        if n < 0:
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, vout cannot be negative")
        wanted.append((parse_hash(o["txid"], "txid"), n))
    m = node.mempool
    result = []
    with node.chain.lock:
        for h, n in wanted:
            item = {"txid": h[::-1].hex(), "vout": n}
            spender = m.spender(h, n)
            if spender is not None:
                item["spendingtxid"] = spender[::-1].hex()
                if with_tx:
                    item["spendingtx"] = m.entries[spender].tx.serialize().hex()
            elif not mempool_only:
                unresolved.append((len(result), h, n))
            result.append(item)
    add_confirmed_spenders(node, result, unresolved, with_tx)
    return result


# -- mempool.dat: savemempool, importmempool (Core's rpc/mempool.cpp) ------------------------

@rpc("savemempool", "Blockchain",
     description="Dumps the mempool to disk. It will fail until the previous dump is fully "
                 "loaded.",
     result='{\n  "filename" : "str"    (string) the directory and file where the mempool '
            "was saved\n}")
def savemempool(node):
    from node import mempool_persist

    m = node.mempool
    if not m.loaded:
        raise RPCError(RPC_MISC_ERROR, "The mempool was not loaded yet")
    path = (Path(node.datadir) / "mempool.dat").absolute()
    try:
        mempool_persist.dump(m, path, m.persist_v1)
    except OSError as err:
        log.info("Failed to dump mempool: %s. Continuing anyway.", err)
        raise RPCError(RPC_MISC_ERROR, "Unable to dump mempool to disk") from None
    return {"filename": str(path)}


_IMPORT_KEYS = ("use_current_time", "apply_fee_delta_priority", "apply_unbroadcast_set")


@rpc("importmempool", "Blockchain",
     [Arg("filepath", STR, help="The mempool file"),
      Arg("options", OBJ, False, None,
          "use_current_time (boolean, default true): use the current system time, not the "
          "entry times in the file; apply_fee_delta_priority (boolean, default false): add "
          "the file's fee deltas (prioritisetransaction) to the current ones; "
          "apply_unbroadcast_set (boolean, default false): apply the file's unbroadcast set. "
          "Warning: importing untrusted metadata may lead to unexpected issues and "
          "undesirable behavior.", named=_IMPORT_KEYS)],
     description="Import a mempool.dat file and attempt to add its contents to the mempool.\n"
                 "Warning: Importing untrusted files is dangerous, especially if metadata from "
                 "the file is taken over.",
     result="{}    (json object) empty")
def importmempool(node, filepath, options):
    from node import mempool_persist
    from node.rpc.blockchain import is_initial_block_download

    if is_initial_block_download(node):
        raise RPCError(RPC_CLIENT_IN_INITIAL_DOWNLOAD, "Can only import the mempool after the "
                       "block download and sync is done.")
    options = options or {}
    flags = {}
    for key, default in zip(_IMPORT_KEYS, (True, False, False), strict=True):
        v = options.get(key)
        if v is not None and not isinstance(v, bool):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(v)} is not of "
                           "expected type bool")
        flags[key] = default if v is None else v
    opts = mempool_persist.ImportOptions(**flags)
    if mempool_persist.load(node.mempool, Path(filepath), opts) is None:
        raise RPCError(RPC_MISC_ERROR, "Unable to import mempool file, see debug log for "
                       "details.")
    return {}
