"""RPCs of the optional indexes (node/index): getindexinfo, getblockfilter, and what
gettxoutsetinfo answers from -coinstatsindex."""

from __future__ import annotations

import threading
from decimal import Decimal

from node.index import bip158
from node.index.blockfilterindex import FILTER_TYPES
from node.rpc.errors import (
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc
from node.rpc.params import as_int, parse_hash
from node.rpc.registry import ARR, NUM, OBJ, STR, Arg, json_type, rpc
from node.store.blockfiles import BlockFileError
from node.store.blockindex import VALID_SCRIPTS


def indexes_of(node):
    return getattr(node, "indexes", None)


@rpc("getindexinfo", "Util",
     [Arg("index_name", STR, False, None, "Filter results for an index with a specific name.")],
     description="Returns the status of one or all available indices currently running in "
                 "the node.")
def getindexinfo(node, index_name) -> dict:
    ix = indexes_of(node)
    return ix.info(index_name) if ix is not None else {}


@rpc("getblockfilter", "Blockchain",
     [Arg("blockhash", STR, help="The hash of the block"),
      Arg("filtertype", STR, False, "basic", "The type name of the filter")],
     description="Retrieve a BIP 157 content filter for a particular block.",
     examples=['getblockfilter "00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6ed09"'
               ' "basic"'])
def getblockfilter(node, blockhash, filtertype) -> dict:
    h = parse_hash(blockhash, "blockhash")
    name = "basic" if filtertype is None else filtertype
    if name not in FILTER_TYPES:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Unknown filtertype")
    ix = indexes_of(node)
    index = ix.blockfilter if ix is not None else None
    if index is None:
        raise RPCError(RPC_MISC_ERROR, f"Index is not enabled for filtertype {name}")
    e = node.chain.get(h)  # (lock-free reads: a long block connection does not hold us up)
    if e is None:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    was_connected = e.is_valid(VALID_SCRIPTS)
    ready = index.block_until_synced()
    found = index.lookup(e.hash)
    if found is None:
        if not was_connected:
            code, why = RPC_INVALID_ADDRESS_OR_KEY, "Block was not connected to active chain."
        elif not ready:
            code, why = RPC_MISC_ERROR, "Block filters are still in the process of being indexed."
        else:
            code, why = RPC_INTERNAL_ERROR, ("This error is unexpected and indicates index "
                                             "corruption.")
        raise RPCError(code, f"Filter not found. {why}")
    encoded, header = found
    return {"filter": encoded.hex(), "header": header[::-1].hex()}


def _tip(chain):
    """The tip published between activation steps (never one halfway through a reorg)."""
    return getattr(chain, "published", None) or chain.tip


def parse_hash_or_height(node, value):
    """Core's ParseHashOrHeight: a height of the active chain, or any known block's hash."""
    chain = node.chain
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        h = as_int(value, "hash_or_height")
        tip = _tip(chain)
        if h < 0:
            raise RPCError(RPC_INVALID_PARAMETER, f"Target block height {h} is negative")
        if h > tip.height:
            raise RPCError(RPC_INVALID_PARAMETER,
                           f"Target block height {h} after current tip {tip.height}")
        return tip.ancestor(h)
    if not isinstance(value, str):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       "expected type string")
    e = chain.get(parse_hash(value, "hash_or_height"))
    if e is None:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    return e


def txoutsetinfo_from_index(node, hash_type: str, hash_or_height, use_index):
    """gettxoutsetinfo as Core answers it with -coinstatsindex: None when the index is not
    to be used (the caller scans the UTXO set)."""
    ix = indexes_of(node)
    index = ix.coinstats if ix is not None else None
    index_requested = use_index is None or bool(use_index)
    if hash_or_height is not None:
        if index is None:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "Querying specific block heights requires coinstatsindex")
        if hash_type == "hash_serialized_3":
            raise RPCError(RPC_INVALID_PARAMETER,
                           "hash_serialized_3 hash type cannot be queried for a specific block")
        if not index_requested:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "Cannot set use_index to false when querying for a specific block")
    if index is None or not index_requested or hash_type == "hash_serialized_3":
        return None
    chain = node.chain
    if hash_or_height is not None:
        target = parse_hash_or_height(node, hash_or_height)
    else:
        target = _tip(chain)  # (the index does not read the UTXO set: no flush needed)
    if not index.block_until_synced():
        best = index.best.height if index.best is not None else 0
        if target.height > best:
            raise RPCError(RPC_INTERNAL_ERROR, "Unable to get data because coinstatsindex is "
                           f"still syncing. Current height: {best}")
    found = index.lookup(target.hash)
    if found is None:
        raise RPCError(RPC_INTERNAL_ERROR, "Unable to read UTXO set")
    digest, st = found
    prev = None
    if target.prev is not None:
        prev = index.lookup(target.prev.hash)
        if prev is None:
            raise RPCError(RPC_INTERNAL_ERROR, "Unable to read UTXO set")
    p = prev[1] if prev is not None else type(st)()
    out = {
        "height": target.height,
        "bestblock": target.hash_hex(),
        "txouts": st.txouts,
        "bogosize": st.bogosize,
    }
    if hash_type == "muhash":
        out["muhash"] = digest[::-1].hex()
    out["total_amount"] = btc(st.total_amount)
    out["total_unspendable_amount"] = btc(st.total_unspendable)
    out["block_info"] = {
        "prevout_spent": btc(st.prevout_spent - p.prevout_spent),
        "coinbase": btc(st.coinbase - p.coinbase),
        "new_outputs_ex_coinbase": btc(st.new_outputs_ex_coinbase - p.new_outputs_ex_coinbase),
        "unspendable": btc(st.total_unspendable - p.total_unspendable),
        "unspendables": {
            "genesis_block": btc(st.unspendables_genesis_block - p.unspendables_genesis_block),
            "bip30": btc(st.unspendables_bip30 - p.unspendables_bip30),
            "scripts": btc(st.unspendables_scripts - p.unspendables_scripts),
            "unclaimed_rewards": btc(st.unspendables_unclaimed_rewards
                                     - p.unspendables_unclaimed_rewards),
        },
    }
    return out


def add_confirmed_spenders(node, result: list[dict], unresolved: list[tuple[int, bytes, int]],
                           with_tx: bool) -> None:
    """gettxspendingprevout's outputs not spent in the mempool, from -txospenderindex (Core
    31): result[i] gets spendingtxid (and spendingtx) and blockhash of the confirmed spend."""
    if not unresolved:
        return
    ix = indexes_of(node)
    index = ix.txospender if ix is not None else None
    if index is None or not index.block_until_synced():
        raise RPCError(RPC_MISC_ERROR,
                       "Mempool lacks a relevant spend, and txospenderindex is unavailable.")
    for i, txid, n in unresolved:
        try:
            found = index.find_spender(txid, n)
        except (OSError, ValueError, BlockFileError) as err:
            raise RPCError(RPC_MISC_ERROR, f"IO error finding spending tx for outpoint "
                           f"{txid[::-1].hex()}:{n}.") from err
        if found is None:
            continue
        tx, e = found
        result[i]["spendingtxid"] = tx.txid_hex()
        if with_tx:
            result[i]["spendingtx"] = tx.serialize().hex()
        result[i]["blockhash"] = e.hash_hex()


def has_spender_index(node) -> bool:
    ix = indexes_of(node)
    return ix is not None and ix.txospender is not None


# -- scanblocks ------------------------------------------------------------------------------

_scan_lock = threading.Lock()
_scan_state: dict = {"abort": False, "progress": 0, "height": 0}


def _block_matches(chain, e, needles: set[bytes]) -> bool:
    """Core's CheckBlockFilterMatches: an output or a spent output of the block pays to one
    of the scripts."""
    block = chain.read_block(e)
    if any(out.script_pubkey in needles for tx in block.txs for out in tx.vout):
        return True
    if e.prev is None:
        return False
    return any(c.script_pubkey in needles for coins in chain.read_undo(e) for c in coins)


@rpc("scanblocks", "Blockchain",
     [Arg("action", STR, help='The action to execute: "start" for starting a scan, "abort" for '
                              'aborting the current scan (returns true when abort was '
                              'successful), "status" for progress report (in %) of the current '
                              "scan"),
      Arg("scanobjects", ARR, False, None,
          "Array of scan objects. Required for \"start\" action: descriptors, or objects "
          '{"desc": descriptor, "range": n or [begin,end]} (default range 1000)'),
      Arg("start_height", NUM, False, 0, "Height to start to scan from"),
      Arg("stop_height", NUM, False, None, "Height to stop to scan", default_hint="chain tip"),
      Arg("filtertype", STR, False, "basic", "The type name of the filter"),
      Arg("options", OBJ, False, None, "filter_false_positives (boolean, default false): "
                                       "filter false positives (slower, and may fail on pruned "
                                       "nodes); otherwise they may occur at a rate of 1/M")],
     description="Return relevant blockhashes for given descriptors (requires "
                 "blockfilterindex).\nThis call may take several minutes. Make sure to use no "
                 "RPC timeout (bitcoin-cli -rpcclienttimeout=0)")
def scanblocks(node, action, scanobjects, start_height, stop_height, filtertype, options):
    if action == "status":
        if not _scan_lock.locked():
            return None
        return {"progress": _scan_state["progress"], "current_height": _scan_state["height"]}
    if action == "abort":
        if not _scan_lock.locked():
            return False
        _scan_state["abort"] = True
        return True
    if action != "start":
        raise RPCError(RPC_INVALID_PARAMETER, f"Invalid action '{action}'")
    if not _scan_lock.acquire(blocking=False):
        raise RPCError(RPC_INVALID_PARAMETER,
                       'Scan already in progress, use action "abort" or "status"')
    try:
        return _scan_blocks(node, scanobjects, start_height, stop_height, filtertype, options)
    finally:
        _scan_state.update(abort=False, progress=0, height=0)
        _scan_lock.release()


def _scan_blocks(node, scanobjects, start_height, stop_height, filtertype, options) -> dict:
    from node.rpc.util import _scan_objects

    name = "basic" if filtertype is None else filtertype
    if name not in FILTER_TYPES:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Unknown filtertype")
    options = options or {}
    false_positives = options.get("filter_false_positives")
    if false_positives is not None and not isinstance(false_positives, bool):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(false_positives)} is "
                       "not of expected type bool")
    ix = indexes_of(node)
    index = ix.blockfilter if ix is not None else None
    if index is None:
        raise RPCError(RPC_MISC_ERROR, f"Index is not enabled for filtertype {name}")
    chain = node.chain
    tip = _tip(chain)
    start = 0 if start_height is None else as_int(start_height, "start_height")
    if not 0 <= start <= tip.height:
        raise RPCError(RPC_MISC_ERROR, "Invalid start_height")
    stop = tip.height
    if stop_height is not None:
        stop = as_int(stop_height, "stop_height")
        if not 0 <= stop <= tip.height or stop < start:
            raise RPCError(RPC_MISC_ERROR, "Invalid stop_height")
    if not isinstance(scanobjects, list):
        raise RPCError(RPC_MISC_ERROR, f"JSON value of type {json_type(scanobjects)} is not of "
                       "expected type array")
    blocks = []  # the active chain from start to stop
    e = tip.ancestor(stop)
    while e is not None and e.height >= start:
        blocks.append(e)
        e = e.prev
    blocks.reverse()
    needles = set(_scan_objects(node, scanobjects))
    relevant = []
    completed = True
    _scan_state.update(abort=False, progress=0, height=start)
    total = stop - start
    for e in blocks:
        h = e.height
        if _scan_state["abort"] or node.shutting_down:
            completed = False
            break
        found = index.lookup(e.hash)
        if found is not None and needles and bip158.match_any(found[0], e.hash, needles):
            if not false_positives or _block_matches(chain, e, needles):
                relevant.append(e.hash_hex())
        _scan_state["height"] = h
        _scan_state["progress"] = int(100 * (h - start) / total) if total > 0 else 100
    last = h if completed else max(start, h - 1)
    return {"from_height": start, "to_height": last, "relevant_blocks": relevant,
            "completed": completed}
