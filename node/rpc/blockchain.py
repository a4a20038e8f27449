"""Blockchain RPCs: blocks, headers, chain tips, the UTXO set, invalidate/reconsider."""

from __future__ import annotations

import time
from decimal import Decimal

from consensus.amounts import MAX_MONEY, block_subsidy
from consensus.block import Block, BlockHeader
from consensus.checks import MAX_BLOCK_SERIALIZED_SIZE
from consensus.contextual import BIP30_REPEATS
from consensus.errors import ValidationError
from consensus.pow import compact_to_target
from consensus.script import flags as sf
from consensus.script.script import is_unspendable
from consensus.serialize import DeserializationError
from consensus.tx import WITNESS_SCALE_FACTOR, TxOut
from consensus.versionbits import ACTIVE, LOCKED_IN, NEVER_ACTIVE, STARTED
from node.chain import script_flags_at
from node.prune import is_pruned
from node.rpc.errors import (
    RPC_DATABASE_ERROR,
    RPC_DESERIALIZATION_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc, double
from node.rpc.params import as_bool_or_int, as_int, block_not_found, parse_hash
from node.rpc.registry import (
    ANY,
    ARR,
    BOOL,
    HEX,
    NUM,
    STR,
    Arg,
    json_type,
    rpc,
)
from node.rpc.txjson import block_json, difficulty, header_json, script_pubkey_json
from node.store.blockfiles import BlockFileError
from node.store.blockindex import HAVE_UNDO


def _entry(node, hash_hex: str, name: str = "blockhash"):
    e = node.chain.get(parse_hash(hash_hex, name))
    if e is None:
        raise block_not_found()
    return e


def is_initial_block_download(node) -> bool:
    return node.chain.in_ibd()


@rpc("getblockcount", "Blockchain",
     description="Returns the height of the most-work fully-validated chain.\n"
                 "The genesis block has height 0.",
     result="n    (numeric) The current block count", examples=["getblockcount"], inline=True)
def getblockcount(node) -> int:
    return node.chain.published.height  # lock-free: the tip as of the last completed step


@rpc("getbestblockhash", "Blockchain",
     description="Returns the hash of the best (tip) block in the most-work fully-validated chain.",
     result='"hex"    (string) the block hash, hex-encoded', inline=True)
def getbestblockhash(node) -> str:
    return node.chain.published.hash_hex()


@rpc("getblockhash", "Blockchain", [Arg("height", NUM, help="The height index")],
     description="Returns hash of block in best-block-chain at height provided.",
     result='"hex"    (string) The block hash', examples=["getblockhash 1000"], inline=True)
def getblockhash(node, height) -> str:
    h = as_int(height, "height")
    tip = node.chain.published
    if h < 0 or h > tip.height:
        raise RPCError(RPC_INVALID_PARAMETER, "Block height out of range")
    return tip.ancestor(h).hash_hex()  # skip pointers: O(log n), no lock needed


@rpc("getblockchaininfo", "Blockchain",
     description="Returns an object containing various state info regarding blockchain processing.")
def getblockchaininfo(node) -> dict:
    chain = node.chain
    with chain.lock:
        tip = chain.tip
        header = chain.best_header or tip
        out = {
            "chain": node.params.name,
            "blocks": tip.height,
            "headers": header.height,
            "bestblockhash": tip.hash_hex(),
            "bits": f"{tip.bits:08x}",
            "target": f"{compact_to_target(tip.bits)[0]:064x}",
            "difficulty": double(difficulty(tip.bits)),
            "time": tip.time,
            "mediantime": tip.median_time_past(),
            "verificationprogress": double(verification_progress(chain, tip)),
            "initialblockdownload": is_initial_block_download(node),
            "chainwork": f"{tip.chain_work:064x}",
            "size_on_disk": _size_on_disk(node),
        }
        out.update(_prune_info(node))
        out["warnings"] = []
        return out


# Prune targets as Core's: -prune=1 is manual pruning (pruneblockchain only), N >= 550 MiB
# automatic with that target.
_PRUNE_MANUAL = 1


def _prune_info(node) -> dict:
    config = getattr(node, "config", None)
    prune = config.arg_int("prune", 0) if config is not None else 0
    if prune <= 0:
        return {"pruned": False}
    chain = node.chain
    # The first block of the active chain from which every block's data is stored.
    lowest = chain.tip
    while lowest.prev is not None and lowest.prev.have_data:
        lowest = lowest.prev
    out: dict = {"pruned": True, "pruneheight": lowest.height if lowest.prev is not None else 0,
                 "automatic_pruning": prune != _PRUNE_MANUAL}
    if prune != _PRUNE_MANUAL:
        out["prune_target_size"] = prune * 1024 * 1024
    return out


def verification_progress(chain, tip) -> float:
    """Core's GuessVerificationProgress: transactions verified over those estimated to exist
    now, from the chain's transaction rate. With a recent best header, the tip's time is
    taken as now less a block interval per header still to verify (1.0 exactly when
    caught up)."""
    if tip is None or not tip.chain_tx:
        return 0.0
    now = int(chain.now())
    data = chain.params.chain_tx_data
    header = chain.best_header or tip
    if abs(now - tip.time) <= 2 * 60 * 60 and header.height >= tip.height:
        block_time = now - (header.height - tip.height) * chain.params.pow_target_spacing
    else:
        block_time = tip.time
    if tip.chain_tx <= data[1]:
        total = data[1] + (now - data[0]) * data[2]
    else:
        total = tip.chain_tx + (now - block_time) * data[2]
    return min(tip.chain_tx / total, 1.0) if total > 0 else 1.0


def _size_on_disk(node) -> int:
    blocks = node.chain.files.dir
    return sum(p.stat().st_size for p in blocks.glob("*.dat"))


@rpc("getdifficulty", "Blockchain",
     description="Returns the proof-of-work difficulty as a multiple of the minimum difficulty.",
     inline=True)
def getdifficulty(node) -> float:
    return double(difficulty(node.chain.published.bits))


@rpc("getblockheader", "Blockchain",
     [Arg("blockhash", STR, help="The block hash"),
      Arg("verbose", BOOL, False, True, "true for a json object, false for the hex-encoded data")],
     description="If verbose is false, returns a string that is serialized, hex-encoded data "
                 "for blockheader 'hash'.\nIf verbose is true, returns an Object with information "
                 "about blockheader <hash>.",
     examples=['getblockheader "00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6ed09"'])
def getblockheader(node, blockhash, verbose) -> dict | str:
    e = _entry(node, blockhash, "hash")
    with node.chain.lock:
        if not verbose:
            return e.header().serialize().hex()
        return header_json(e, node.chain)


def read_undo(node, e):
    """The block's undo data for getblock's fees and prevouts; None for a block that was
    never connected (or the genesis block)."""
    if e.prev is None or not e.status & HAVE_UNDO:
        return None
    try:
        if not node.chain.files.undo_path(e.file).exists():  # (an open handle would still read)
            raise BlockFileError("missing")
        return node.chain.read_undo(e)
    except (BlockFileError, DeserializationError, OSError):
        raise RPCError(RPC_INTERNAL_ERROR, "Undo data expected but can't be read. This could "
                       "be due to disk corruption or a conflict with a pruning event.") from None


@rpc("getblock", "Blockchain",
     [Arg("blockhash", STR, help="The block hash"),
      Arg("verbosity", ANY, False, 1,
          "0 for hex-encoded data, 1 for a JSON object, 2 for JSON object with transaction "
          "data, and 3 for JSON object with transaction data including prevout information "
          "for inputs", aliases=("verbose",))],
     description="If verbosity is 0, returns a string that is serialized, hex-encoded data for "
                 "block 'hash'.\nIf verbosity is 1, returns an Object with information about "
                 "block <hash>.\nIf verbosity is 2, returns an Object with information about "
                 "block <hash> and information about each transaction.\nIf verbosity is 3, "
                 "returns an Object with information about block <hash> and information about "
                 "each transaction, including prevout information for inputs (only for "
                 "unpruned blocks in the current best chain).",
     examples=['getblock "00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6ed09"'])
def getblock(node, blockhash, verbosity) -> dict | str:
    e = _entry(node, blockhash)
    v = as_bool_or_int(verbosity, "verbosity")
    chain = node.chain
    if not e.have_data:
        raise _not_available(e)
    try:
        if not chain.files.block_path(e.file).exists():  # (an open handle would still read)
            raise BlockFileError("missing")
        raw = chain.read_raw_block(e)
        if v <= 0:
            return raw.hex()
        block = Block.from_bytes(raw)
    except (BlockFileError, DeserializationError, OSError):
        raise RPCError(RPC_MISC_ERROR, "Block not found on disk") from None
    undo = read_undo(node, e) if v >= 2 else None
    with chain.lock:
        return block_json(block, e, chain, min(v, 3), undo, raw)


@rpc("getchaintips", "Blockchain",
     description="Return information about all known tips in the block tree, including the "
                 "main chain as well as orphaned branches.")
def getchaintips(node) -> list:
    return [
        {"height": e.height, "hash": e.hash_hex(), "branchlen": n, "status": s}
        for e, n, s in node.chain.chain_tips()
    ]


@rpc("gettxout", "Blockchain",
     [Arg("txid", STR, help="The transaction id"), Arg("n", NUM, help="vout number"),
      Arg("include_mempool", BOOL, False, True,
          "Whether to include the mempool. Note that an unspent output that is spent in the "
          "mempool won't appear.")],
     description="Returns details about an unspent transaction output.")
def gettxout(node, txid, n, include_mempool) -> dict | None:
    h = parse_hash(txid, "txid")
    idx = as_int(n, "n")
    chain = node.chain
    mempool = getattr(node, "mempool", None)
    if idx < 0 or idx > 0xFFFFFFFF:
        return None
    with chain.lock:
        if include_mempool and mempool is not None:
            if mempool.is_spent(h, idx):
                return None
            out = mempool.get_output(h, idx)
            if out is not None:
                return {"bestblock": chain.tip.hash_hex(), "confirmations": 0,
                        "value": btc(out.value),
                        "scriptPubKey": script_pubkey_json(out.script_pubkey, node.params),
                        "coinbase": False}
        coin = chain.get_coin(h, idx)
        if coin is None:
            return None
        return {
            "bestblock": chain.tip.hash_hex(),
            "confirmations": chain.height - coin.height + 1,
            "value": btc(coin.value),
            "scriptPubKey": script_pubkey_json(coin.script_pubkey, node.params),
            "coinbase": coin.coinbase,
        }


@rpc("gettxoutsetinfo", "Blockchain",
     [Arg("hash_type", STR, False, "hash_serialized_3",
          "Which UTXO set hash should be calculated. Options: 'hash_serialized_3' (the "
          "legacy algorithm), 'muhash', 'none'."),
      Arg("hash_or_height", ANY, False, None, "The block hash or height of the target height "
          "(only available with coinstatsindex)."),
      Arg("use_index", BOOL, False, True, "Use coinstatsindex, if available.")],
     description="Returns statistics about the unspent transaction output set.\n"
                 "Note this call may take some time.")
def gettxoutsetinfo(node, hash_type, hash_or_height, use_index) -> dict:
    if hash_type not in ("hash_serialized_3", "muhash", "none"):
        raise RPCError(RPC_INVALID_PARAMETER, f"'{hash_type}' is not a valid hash_type")
    from node.rpc.index import txoutsetinfo_from_index  # -coinstatsindex

    indexed = txoutsetinfo_from_index(node, hash_type, hash_or_height, use_index)
    if indexed is not None:
        return indexed
    if hash_or_height is not None:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Querying specific block heights requires coinstatsindex")
    chain = node.chain
    stats, tip = chain.utxo_stats_full(muhash=hash_type == "muhash")
    # The statistics are those of `tip`, whatever has connected since.
    out = {
        "height": tip.height,
        "bestblock": tip.hash_hex(),
        "txouts": stats.count,
        "bogosize": stats.bogosize,
    }
    if hash_type == "hash_serialized_3":
        out["hash_serialized_3"] = stats.digest[::-1].hex()
    elif hash_type == "muhash":
        out["muhash"] = stats.muhash[::-1].hex()
    out["total_amount"] = btc(stats.total)
    out["transactions"] = stats.transactions
    out["disk_size"] = stats.disk_size
    return out


@rpc("verifychain", "Blockchain",
     [Arg("checklevel", NUM, False, 3,
          "How thorough the block verification is: 0 reads the blocks, 1 also checks them, "
          "2 also reads their undo data, 3 also checks that undo data matches the blocks"),
      Arg("nblocks", NUM, False, 6, "The number of blocks to check (0 = all)")],
     description="Verifies blockchain database.", result="true|false    (boolean) Verified or not")
def verifychain(node, checklevel, nblocks) -> bool:
    level = as_int(checklevel, "checklevel")
    n = as_int(nblocks, "nblocks")
    return node.chain.verify(level, n)


@rpc("invalidateblock", "Blockchain",
     [Arg("blockhash", STR, help="the hash of the block to mark as invalid")],
     description="Permanently marks a block as invalid, as if it violated a consensus rule.")
def invalidateblock(node, blockhash) -> None:
    # ValueError, BlockFileError: nothing changed (all or nothing)
    _change_chain(node.chain.invalidate_block, blockhash, (ValueError, BlockFileError))


def _change_chain(change, blockhash, db_errors: tuple = ()) -> None:
    """Call a chain change on a block: Core's -5 for an unknown block, -20 for the errors
    that leave the chain as it was (damaged block data)."""
    h = parse_hash(blockhash, "blockhash")
    try:
        change(h)
    except KeyError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None
    except db_errors as err:
        raise RPCError(RPC_DATABASE_ERROR, str(err)) from None


@rpc("reconsiderblock", "Blockchain",
     [Arg("blockhash", STR, help="the hash of the block to reconsider")],
     description="Removes invalidity status of a block, its ancestors and its descendants, "
                 "reconsider them for activation.\nThis can be used to undo the effects of "
                 "invalidateblock.")
def reconsiderblock(node, blockhash) -> None:
    # BlockFileError: the reorg it asks for could not read its data: nothing moved (Core's -20)
    _change_chain(node.chain.reconsider_block, blockhash, (BlockFileError,))


@rpc("preciousblock", "Blockchain",
     [Arg("blockhash", STR, help="the hash of the block to mark as precious")],
     description="Treats a block as if it were received before others with the same work.\n\n"
                 "A later preciousblock call can override the effect of an earlier one.\n\n"
                 "The effects of preciousblock are not retained across restarts.")
def preciousblock(node, blockhash) -> None:
    # BlockFileError: a reorg that could not read its data: nothing moved
    _change_chain(node.chain.precious_block, blockhash, (BlockFileError,))



# =============================================================================================
# waiting for blocks
# =============================================================================================


def _timeout_ms(value) -> int:
    t = 0 if value is None else as_int(value, "timeout")
    if t < 0:
        raise RPCError(RPC_MISC_ERROR, "Negative timeout")
    return t


def _wait_for_tip(node, done, timeout_ms: int) -> dict:
    """Core's waitTipChanged loop: wait (up to timeout_ms, 0 = no limit) until done(tip) holds
    or the node shuts down; answer with the tip at that moment."""
    chain = node.chain
    cond = node.tip_changed
    deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms else None
    with cond:
        while not done(chain.published) and not getattr(node, "shutting_down", False):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            # Woken on every activation step and at shutdown; the bound only guards a lost
            # notification.
            cond.wait(5.0 if remaining is None else min(remaining, 5.0))
    tip = chain.published
    return {"hash": tip.hash_hex(), "height": tip.height}


_WAIT_NOTE = ("\nReturns the current block on timeout or exit.\n\nMake sure to use no RPC "
              "timeout (bitcoin-cli -rpcclienttimeout=0)")
_WAIT_RESULT = ('{\n  "hash" : "hex",    (string) The blockhash\n  "height" : n        '
                '(numeric) Block height\n}')
_TIMEOUT_ARG = Arg("timeout", NUM, False, 0, "Time in milliseconds to wait for a response. "
                   "0 indicates no timeout.")


@rpc("waitfornewblock", "Blockchain",
     [_TIMEOUT_ARG,
      Arg("current_tip", STR, False, None, "Method waits for the chain tip to differ from "
          "this.", default_hint="")],
     description="Waits for any new block and returns useful info about it.\n" + _WAIT_NOTE,
     result=_WAIT_RESULT, examples=["waitfornewblock 1000"])
def waitfornewblock(node, timeout, current_tip) -> dict:
    t = _timeout_ms(timeout)
    start = parse_hash(current_tip, "current_tip") if current_tip is not None \
        else node.chain.published.hash
    return _wait_for_tip(node, lambda tip: tip.hash != start, t)


@rpc("waitforblock", "Blockchain",
     [Arg("blockhash", STR, help="Block hash to wait for."), _TIMEOUT_ARG],
     description="Waits for a specific new block and returns useful info about it.\n"
                 + _WAIT_NOTE,
     result=_WAIT_RESULT,
     examples=['waitforblock "0000000000079f8ef3d2c688c244eb7a4570b24c9ed7b4a8c619eb02596f8862" '
               "1000"])
def waitforblock(node, blockhash, timeout) -> dict:
    h = parse_hash(blockhash, "blockhash")
    t = _timeout_ms(timeout)
    return _wait_for_tip(node, lambda tip: tip.hash == h, t)


@rpc("waitforblockheight", "Blockchain",
     [Arg("height", NUM, help="Block height to wait for."), _TIMEOUT_ARG],
     description="Waits for (at least) block height and returns the height and hash\nof the "
                 "current tip.\n" + _WAIT_NOTE,
     result=_WAIT_RESULT, examples=["waitforblockheight 100 1000"])
def waitforblockheight(node, height, timeout) -> dict:
    target = as_int(height, "height")
    t = _timeout_ms(timeout)
    return _wait_for_tip(node, lambda tip: tip.height >= target, t)


# =============================================================================================
# chain statistics
# =============================================================================================


@rpc("getchaintxstats", "Blockchain",
     [Arg("nblocks", NUM, False, None, "Size of the window in number of blocks",
          default_hint="one month"),
      Arg("blockhash", STR, False, None, "The hash of the block that ends the window.",
          default_hint="chain tip")],
     description="Compute statistics about the total number and rate of transactions in the "
                 "chain.", examples=["getchaintxstats", "getchaintxstats 2016"])
def getchaintxstats(node, nblocks, blockhash) -> dict:
    chain = node.chain
    with chain.lock:
        if blockhash is None:
            e = chain.tip
        else:
            e = _entry(node, blockhash)
            if not chain.in_active_chain(e):
                raise RPCError(RPC_INVALID_PARAMETER, "Block is not in main chain")
        month = 30 * 24 * 60 * 60 // node.params.pow_target_spacing
        if nblocks is None:
            count = max(0, min(month, e.height - 1))
        else:
            count = as_int(nblocks, "nblocks")
            if count < 0 or (count > 0 and count >= e.height):
                raise RPCError(RPC_INVALID_PARAMETER, "Invalid block count: should be between "
                               "0 and the block's height - 1")
        past = e.ancestor(e.height - count)
        interval = e.median_time_past() - past.median_time_past()
        out: dict = {"time": e.time}
        if e.chain_tx:
            out["txcount"] = e.chain_tx
        out["window_final_block_hash"] = e.hash_hex()
        out["window_final_block_height"] = e.height
        out["window_block_count"] = count
        if count > 0:
            out["window_interval"] = interval
            if e.chain_tx and past.chain_tx:
                n = e.chain_tx - past.chain_tx
                out["window_tx_count"] = n
                if interval > 0:
                    out["txrate"] = double(n / interval)
        return out


def _hash_or_height(node, value):
    """Core's ParseHashOrHeight: a height in the active chain or any known block's hash."""
    chain = node.chain
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        h = as_int(value, "hash_or_height")
        with chain.lock:
            if h < 0:
                raise RPCError(RPC_INVALID_PARAMETER, f"Target block height {h} is negative")
            if h > chain.height:
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Target block height {h} after current tip {chain.height}")
            return chain.active[h]
    if not isinstance(value, str):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       "expected type string")
    return _entry(node, value, "hash_or_height")


def _not_available(e) -> RPCError:
    """Core's error for a block whose data is not here: pruned, or never downloaded."""
    return RPCError(RPC_MISC_ERROR, "Block not available (pruned data)" if is_pruned(e)
                    else "Block not available (not fully downloaded)")


def _read_block_checked(node, e) -> Block:
    """GetBlockChecked: Core's errors for a block without data or unreadable on disk."""
    if not e.have_data:
        raise _not_available(e)
    try:
        if not node.chain.files.block_path(e.file).exists():  # (an open handle would still read)
            raise BlockFileError("missing")
        return Block.from_bytes(node.chain.read_raw_block(e))
    except (BlockFileError, DeserializationError, OSError):
        raise RPCError(RPC_MISC_ERROR, "Block not found on disk") from None


def _undo_checked(node, e) -> list:
    """GetUndoChecked: the coins the block spent (none for the genesis block)."""
    if e.prev is None:
        return []
    if not e.status & HAVE_UNDO:
        raise RPCError(RPC_MISC_ERROR, "Undo data not available")
    try:
        if not node.chain.files.undo_path(e.file).exists():
            raise BlockFileError("missing")
        return node.chain.read_undo(e)
    except (BlockFileError, DeserializationError, OSError):
        raise RPCError(RPC_MISC_ERROR, "Can't read undo data from disk") from None


# Core's PER_UTXO_OVERHEAD: a UTXO entry's outpoint (36 bytes) and its height with the coinbase
# flag (4 bytes).
_PER_UTXO_OVERHEAD = 36 + 4
_STATS = ("avgfee", "avgfeerate", "avgtxsize", "blockhash", "feerate_percentiles", "height",
          "ins", "maxfee", "maxfeerate", "maxtxsize", "medianfee", "mediantime", "mediantxsize",
          "minfee", "minfeerate", "mintxsize", "outs", "subsidy", "swtotal_size",
          "swtotal_weight", "swtxs", "time", "total_out", "total_size", "total_weight",
          "totalfee", "txs", "utxo_increase", "utxo_size_inc", "utxo_increase_actual",
          "utxo_size_inc_actual")


def _truncated_median(values: list[int]) -> int:
    if not values:
        return 0
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) // 2


def _percentiles_by_weight(scores: list[tuple[int, int]], total_weight: int) -> list[int]:
    """Fee rates at the 10th, 25th, 50th, 75th and 90th percentile weight unit."""
    out = [0] * 5
    if not scores:
        return out
    scores = sorted(scores)
    marks = (total_weight / 10.0, total_weight / 4.0, total_weight / 2.0,
             total_weight * 3.0 / 4.0, total_weight * 9.0 / 10.0)
    i = 0
    cumulative = 0
    for rate, weight in scores:
        cumulative += weight
        while i < 5 and cumulative >= marks[i]:
            out[i] = rate
            i += 1
    for j in range(i, 5):
        out[j] = scores[-1][0]
    return out


def _div(a: int, b: int) -> int:
    """C++ integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@rpc("getblockstats", "Blockchain",
     [Arg("hash_or_height", ANY, help="The block hash or height of the target block"),
      Arg("stats", ARR, False, None, "Values to plot (see result below)",
          default_hint="all values")],
     description="Compute per block statistics for a given window. All amounts are in "
                 "satoshis.\nIt won't work for some heights with pruning.",
     examples=['getblockstats \'"00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6'
               'ed09"\' \'["minfeerate","avgfeerate"]\'',
               'getblockstats 1000 \'["minfeerate","avgfeerate"]\''])
def getblockstats(node, hash_or_height, stats) -> dict:
    e = _hash_or_height(node, hash_or_height)
    selected: list[str] = []
    for s in stats or []:
        if not isinstance(s, str):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(s)} is not of "
                           "expected type string")
        if s not in selected:
            selected.append(s)
    with node.chain.lock:
        block = _read_block_checked(node, e)
        undo = _undo_checked(node, e)
    params = node.params
    bip30_repeat = BIP30_REPEATS.get(e.height) == e.hash

    total_out = totalfee = inputs = outputs = 0
    maxfee = maxfeerate = maxtxsize = 0
    minfee = minfeerate = MAX_MONEY
    mintxsize = MAX_BLOCK_SERIALIZED_SIZE
    swtotal_size = swtotal_weight = swtxs = total_size = total_weight = 0
    utxos = utxo_size_inc = utxo_size_inc_actual = 0
    fees: list[int] = []
    feerates: list[tuple[int, int]] = []
    sizes: list[int] = []
    for i, tx in enumerate(block.txs):
        outputs += len(tx.vout)
        tx_out = 0
        for out in tx.vout:
            tx_out += out.value
            size = len(out.serialize()) + _PER_UTXO_OVERHEAD
            utxo_size_inc += size
            # The genesis and the repeated BIP30 coinbases never entered the UTXO set.
            if e.height == 0 or (bip30_repeat and i == 0):
                continue
            if is_unspendable(out.script_pubkey):
                continue
            utxos += 1
            utxo_size_inc_actual += size
        if i == 0:
            continue
        inputs += len(tx.vin)
        total_out += tx_out
        tx_size = tx.size
        sizes.append(tx_size)
        maxtxsize = max(maxtxsize, tx_size)
        mintxsize = min(mintxsize, tx_size)
        total_size += tx_size
        weight = tx.weight
        total_weight += weight
        if tx.has_witness():
            swtxs += 1
            swtotal_size += tx_size
            swtotal_weight += weight
        tx_in = 0
        for coin in undo[i - 1]:
            tx_in += coin.value
            size = len(TxOut(coin.value, coin.script_pubkey).serialize()) + _PER_UTXO_OVERHEAD
            utxo_size_inc -= size
            utxo_size_inc_actual -= size
        fee = tx_in - tx_out
        fees.append(fee)
        maxfee = max(maxfee, fee)
        minfee = min(minfee, fee)
        totalfee += fee
        feerate = _div(fee * WITNESS_SCALE_FACTOR, weight) if weight else 0
        feerates.append((feerate, weight))
        maxfeerate = max(maxfeerate, feerate)
        minfeerate = min(minfeerate, feerate)

    n = len(block.txs)
    everything = {
        "avgfee": _div(totalfee, n - 1) if n > 1 else 0,
        "avgfeerate": _div(totalfee * WITNESS_SCALE_FACTOR, total_weight) if total_weight else 0,
        "avgtxsize": _div(total_size, n - 1) if n > 1 else 0,
        "blockhash": e.hash_hex(),
        "feerate_percentiles": _percentiles_by_weight(feerates, total_weight),
        "height": e.height,
        "ins": inputs,
        "maxfee": maxfee,
        "maxfeerate": maxfeerate,
        "maxtxsize": maxtxsize,
        "medianfee": _truncated_median(fees),
        "mediantime": e.median_time_past(),
        "mediantxsize": _truncated_median(sizes),
        "minfee": 0 if minfee == MAX_MONEY else minfee,
        "minfeerate": 0 if minfeerate == MAX_MONEY else minfeerate,
        "mintxsize": 0 if mintxsize == MAX_BLOCK_SERIALIZED_SIZE else mintxsize,
        "outs": outputs,
        "subsidy": block_subsidy(e.height, params.subsidy_halving_interval),
        "swtotal_size": swtotal_size,
        "swtotal_weight": swtotal_weight,
        "swtxs": swtxs,
        "time": e.time,
        "total_out": total_out,
        "total_size": total_size,
        "total_weight": total_weight,
        "totalfee": totalfee,
        "txs": n,
        "utxo_increase": outputs - inputs,
        "utxo_size_inc": utxo_size_inc,
        "utxo_increase_actual": utxos - inputs,
        "utxo_size_inc_actual": utxo_size_inc_actual,
    }
    if not selected:
        return everything
    out = {}
    for s in sorted(selected):  # Core's std::set: in name order
        if s not in everything:
            raise RPCError(RPC_INVALID_PARAMETER, f"Invalid selected statistic '{s}'")
        out[s] = everything[s]
    return out


# =============================================================================================
# headers
# =============================================================================================


@rpc("submitheader", "Mining",
     [Arg("hexdata", HEX, help="the hex-encoded block header data")],
     description="Decode the given hexdata as a header and submit it as a candidate chain "
                 "tip if valid.\nThrows when the header is invalid.",
     result="null    (json null) None", examples=['submitheader "aabbcc"'])
def submitheader(node, hexdata) -> None:
    try:
        raw = bytes.fromhex(hexdata)
        if len(raw) < 80:
            raise ValueError
        header = BlockHeader.from_bytes(raw[:80])
    except (ValueError, DeserializationError):
        raise RPCError(RPC_DESERIALIZATION_ERROR, "Block header decode failed") from None
    chain = node.chain
    if chain.get(header.prev_hash) is None:
        raise RPCError(RPC_VERIFY_ERROR,
                       f"Must submit previous header ({header.prev_hash[::-1].hex()}) first")
    try:
        chain.accept_header(header)
    except ValidationError as err:
        raise RPCError(RPC_VERIFY_ERROR, err.reason) from None
    return None


# =============================================================================================
# deployments
# =============================================================================================


def _bip9_json(node, e, dep) -> dict:
    """Core's SoftForkDescPushBack for a BIP9 deployment at block e."""
    vb = node.chain.versionbits
    current = vb.state(e.prev, dep)
    nxt = vb.state(e, dep)
    signalling = current in (STARTED, LOCKED_IN)
    bip9: dict = {}
    if signalling:
        bip9["bit"] = dep.bit
    bip9["start_time"] = dep.start_time
    bip9["timeout"] = dep.timeout
    bip9["min_activation_height"] = dep.min_activation_height
    bip9["status"] = current
    bip9["since"] = vb.state_since_height(e.prev, dep) if e.prev is not None else 0
    bip9["status_next"] = nxt
    if signalling:
        stats, signals = vb.statistics(e, dep)
        st: dict = {"period": stats.period}
        if current != LOCKED_IN:
            st["threshold"] = stats.threshold
        st["elapsed"] = stats.elapsed
        st["count"] = stats.count
        if current != LOCKED_IN:
            st["possible"] = stats.possible
        bip9["statistics"] = st
        bip9["signalling"] = "".join("#" if x else "-" for x in signals)
    out: dict = {"type": "bip9"}
    if nxt == ACTIVE:
        out["height"] = vb.state_since_height(e, dep)
    out["active"] = nxt == ACTIVE
    out["bip9"] = bip9
    return out


def deployments_json(node, e) -> dict:
    """Every deployment enabled on this chain, as of the block after e."""
    out: dict = {}
    for name, height in node.chain.params.buried_deployments().items():
        if height >= 2**31 - 1:  # disabled
            continue
        out[name] = {"type": "buried", "active": e.height + 1 >= height, "height": height}
    for dep in node.chain.params.deployments:
        if dep.start_time == NEVER_ACTIVE:
            continue
        out[dep.name] = _bip9_json(node, e, dep)
    return out


@rpc("getdeploymentinfo", "Blockchain",
     [Arg("blockhash", STR, False, None, "The block hash at which to query deployment state",
          default_hint="hash of current chain tip")],
     description="Returns an object containing various state info regarding deployments of "
                 "consensus changes.", examples=["getdeploymentinfo"])
def getdeploymentinfo(node, blockhash) -> dict:
    chain = node.chain
    with chain.lock:
        e = chain.tip if blockhash is None else _entry(node, blockhash)
        flags = script_flags_at(e.height + 1, None, chain.params)
        return {
            "hash": e.hash_hex(),
            "height": e.height,
            "script_flags": sorted(sf.flags_to_names(flags)),
            "deployments": deployments_json(node, e),
        }
