"""Blockchain RPCs: blocks, headers, chain tips, the UTXO set, invalidate/reconsider."""

from __future__ import annotations

from consensus.block import Block
from consensus.pow import compact_to_target
from consensus.serialize import DeserializationError
from node.rpc.errors import (
    RPC_DATABASE_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc, double
from node.rpc.params import as_bool_or_int, as_int, block_not_found, parse_hash
from node.rpc.registry import ANY, BOOL, NUM, NUM_OR_BOOL, STR, Arg, rpc
from node.rpc.txjson import block_json, difficulty, header_json, script_pubkey_json
from node.store.blockfiles import BlockFileError


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
        return {
            "chain": node.params.name,
            "blocks": tip.height,
            "headers": header.height,
            "bestblockhash": tip.hash_hex(),
            "bits": f"{tip.bits:08x}",
            "target": f"{compact_to_target(tip.bits)[0]:064x}",
            "difficulty": double(difficulty(tip.bits)),
            "time": tip.time,
            "mediantime": tip.median_time_past(),
            "verificationprogress": double(
                1.0 if tip is header else tip.height / max(header.height, 1)),
            "initialblockdownload": is_initial_block_download(node),
            "chainwork": f"{tip.chain_work:064x}",
            "size_on_disk": _size_on_disk(node),
            "pruned": False,
            "warnings": [],
        }


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


def _read_undo(node, e):
    if e.prev is None or not e.undo_pos:
        return None
    try:
        return node.chain.read_undo(e)
    except BlockFileError as err:
        raise RPCError(RPC_MISC_ERROR, f"Undo data not available: {err}") from None


@rpc("getblock", "Blockchain",
     [Arg("blockhash", STR, help="The block hash"),
      Arg("verbosity", NUM_OR_BOOL, False, 1,
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
    if v <= 0:
        if not e.have_data:
            raise RPCError(RPC_MISC_ERROR, "Block not available (not fully downloaded)")
        return chain.read_raw_block(e).hex()
    if not e.have_data:
        raise RPCError(RPC_MISC_ERROR, "Block not available (not fully downloaded)")
    try:
        raw = chain.read_raw_block(e)
        block = Block.from_bytes(raw)
    except (BlockFileError, DeserializationError) as err:
        raise RPCError(RPC_MISC_ERROR, f"Block not found on disk: {err}") from None
    undo = _read_undo(node, e) if v >= 2 else None
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
      Arg("hash_or_height", ANY, False, None, "(not supported: the current tip is used)"),
      Arg("use_index", BOOL, False, True, "(ignored: there is no coinstats index)")],
     description="Returns statistics about the unspent transaction output set.\n"
                 "Note this call may take some time.")
def gettxoutsetinfo(node, hash_type, hash_or_height, use_index) -> dict:
    if hash_type not in ("hash_serialized_3", "muhash", "none"):
        raise RPCError(RPC_INVALID_PARAMETER, f"'{hash_type}' is not a valid hash_type")
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
    h = parse_hash(blockhash, "blockhash")
    try:
        node.chain.invalidate_block(h)
    except KeyError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None
    except ValueError as err:
        raise RPCError(RPC_DATABASE_ERROR, str(err)) from None
    return None


@rpc("reconsiderblock", "Blockchain",
     [Arg("blockhash", STR, help="the hash of the block to reconsider")],
     description="Removes invalidity status of a block, its ancestors and its descendants, "
                 "reconsider them for activation.\nThis can be used to undo the effects of "
                 "invalidateblock.")
def reconsiderblock(node, blockhash) -> None:
    h = parse_hash(blockhash, "blockhash")
    try:
        node.chain.reconsider_block(h)
    except KeyError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None
    return None


@rpc("getindexinfo", "Util",
     [Arg("index_name", STR, False, None, "Filter results for an index with a specific name.")],
     description="Returns the status of one or all available indices currently running in "
                 "the node.")
def getindexinfo(node, index_name) -> dict:
    out = {}
    if node.txindex is not None and index_name in (None, "txindex"):
        h = node.txindex.synced_height()
        out["txindex"] = {"synced": h == node.chain.height, "best_block_height": h}
    return out

