"""Chainstate RPCs (Core's rpc/blockchain.cpp): getchainstates, dumptxoutset and
loadtxoutset. The snapshot file is Core's format (node/utxo_snapshot.py).

minibtcd has one chainstate and no assumeutxo: loadtxoutset reads and checks a snapshot's
metadata as Core does, then refuses to activate it (-32603, saying so)."""

from __future__ import annotations

import concurrent.futures
import logging
from pathlib import Path

from consensus.serialize import DeserializationError, Reader
from node import utxo_snapshot
from node.rpc.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.jsonutil import double
from node.rpc.registry import OBJ, STR, Arg, rpc
from node.rpc.txjson import difficulty
from node.store.coins import utxo_stats

log = logging.getLogger("rpc")

# LevelDB's own block cache (plyvel's default, which the coins database keeps).
LEVELDB_DEFAULT_CACHE = 8 * 1024 * 1024

# The heights Core's chainparams offer assumeutxo snapshots at (m_assumeutxo_data), which
# dumptxoutset's "rollback" type rolls back to (the highest).
SNAPSHOT_HEIGHTS = {"main": (840_000, 880_000, 910_000), "regtest": (110, 200, 299)}


@rpc("getchainstates", "Blockchain", description="Return information about chainstates.",
     result='{\n  "headers" : n,    (numeric) the number of headers seen so far\n'
            '  "chainstates" : [ { "blocks", "bestblockhash", "difficulty", '
            '"verificationprogress", "coins_db_cache_bytes", "coins_tip_cache_bytes", '
            '"validated" } ]    (one: minibtcd never has a snapshot chainstate)\n}')
def getchainstates(node):
    from node.rpc.blockchain import verification_progress

    chain = node.chain
    with chain.lock:
        tip = chain.tip
        header = chain.best_header or tip
        state = {
            "blocks": tip.height,
            "bestblockhash": tip.hash_hex(),
            "difficulty": double(difficulty(tip.bits)),
            "verificationprogress": double(verification_progress(chain, tip)),
            "coins_db_cache_bytes": LEVELDB_DEFAULT_CACHE,
            "coins_tip_cache_bytes": chain.coins.cache_bytes,
            "validated": True,
        }
        return {"headers": header.height, "chainstates": [state]}


def _data_path(node, text: str) -> Path:
    """Core's AbsPathJoin(datadir, path): relative paths are in the chain's datadir."""
    p = Path(text)
    return p if p.is_absolute() else Path(node.datadir) / p


def _on_loop(node, fn, *args):
    """Run fn on the event loop (the P2P side's thread) and wait for it."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            fut.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001  (handed to the caller)
            fut.set_exception(err)

    node.loop.call_soon_threadsafe(run)
    return fut.result(60)


@rpc("dumptxoutset", "Blockchain",
     [Arg("path", STR, help="Path to the output file. If relative, will be prefixed by "
                            "datadir."),
      Arg("type", STR, False, "",
          'The type of snapshot to create. Can be "latest" to create a snapshot of the '
          'current UTXO set or "rollback" to temporarily roll back the state of the node to '
          "a historical block before creating the snapshot of a historical UTXO set. This "
          'parameter can be omitted if a separate "rollback" named parameter is specified '
          'indicating the height or hash of a specific historical block. If "rollback" is '
          'specified and separate "rollback" named parameter is not specified, this will '
          "roll back to the latest valid snapshot block that can currently be loaded with "
          "loadtxoutset."),
      Arg("options", OBJ, False, None,
          "rollback (string or numeric): height or hash of the block to roll back to before "
          "creating the snapshot", named=("rollback",))],
     description="Write the serialized UTXO set to a file. This can be used in loadtxoutset "
                 "afterwards if this snapshot height is supported in the chainparams as "
                 'well.\n\nUnless the "latest" type is requested, the node will roll back to '
                 "the requested height and network activity will be suspended during this "
                 "process. Because of this it is discouraged to interact with the node in any "
                 "other way during the execution of this call to avoid inconsistent results "
                 "and race conditions, particularly RPCs that interact with blockstorage.\n\n"
                 "This call may take several minutes. Make sure to use no RPC timeout "
                 "(bitcoin-cli -rpcclienttimeout=0)",
     result='{ "coins_written": n, "base_hash": "hex", "base_height": n, "path": "str", '
            '"txoutset_hash": "hex", "nchaintx": n }',
     examples=["-rpcclienttimeout=0 dumptxoutset utxo.dat latest",
               "-rpcclienttimeout=0 dumptxoutset utxo.dat rollback",
               "-rpcclienttimeout=0 -named dumptxoutset utxo.dat rollback=853456"])
def dumptxoutset(node, path, type_, options):
    from node.rpc.index import parse_hash_or_height

    chain = node.chain
    tip = chain.tip
    kind = type_ or ""
    options = options or {}
    if options.get("rollback") is not None:
        if kind and kind != "rollback":
            raise RPCError(RPC_INVALID_PARAMETER, f'Invalid snapshot type "{kind}" specified '
                           "with rollback option")
        target = parse_hash_or_height(node, options["rollback"])
    elif kind == "rollback":
        heights = SNAPSHOT_HEIGHTS.get(node.params.name, ())
        if not heights:
            raise RPCError(RPC_MISC_ERROR, f"No snapshot heights known for {node.params.name}")
        target = parse_hash_or_height(node, max(heights))
    elif kind == "latest":
        target = tip
    else:
        raise RPCError(RPC_INVALID_PARAMETER, f'Invalid snapshot type "{kind}" specified. '
                       'Please specify "rollback" or "latest"')
    out_path = _data_path(node, path).absolute()
    tmp_path = _data_path(node, path + ".incomplete").absolute()
    if out_path.exists():
        raise RPCError(RPC_INVALID_PARAMETER, f"{out_path} already exists. If you are sure "
                       "this is what you want, move it out of the way first")
    try:
        f = open(tmp_path, "wb")  # noqa: SIM115  (closed below, in every path)
    except OSError:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"Couldn't open file {tmp_path} for writing.") from None
    try:
        if target is not tip:
            result = _dump_rolled_back(node, target, f)
        else:
            result = _dump(node, f)
        f.close()
        tmp_path.replace(out_path)
    except BaseException:
        f.close()
        tmp_path.unlink(missing_ok=True)
        raise
    result["path"] = str(out_path)
    return result


def _dump_rolled_back(node, target, f) -> dict:
    """Core's TemporaryRollback and NetworkDisable around the dump: the chain is taken back
    to `target` (invalidating the next block), dumped, and reconsidered."""
    chain = node.chain
    if getattr(node, "pruner", None) is not None:
        lowest = chain.tip
        while lowest.prev is not None and lowest.prev.have_data:
            lowest = lowest.prev
        if lowest.height > target.height:
            raise RPCError(RPC_MISC_ERROR, "Could not roll back to requested height since "
                           "necessary block data is already pruned.")
    with chain.lock:
        nxt = chain.tip.ancestor(target.height + 1) if target.height < chain.tip.height \
            else None
        if nxt is None or nxt.prev is not target:
            raise RPCError(RPC_MISC_ERROR, "Could not roll back to requested height.")
    connman = node.p2p.connman if getattr(node, "p2p", None) is not None else None
    reenable = connman is not None and connman.network_active
    if reenable:
        _on_loop(node, connman.set_network_active, False)
    try:
        chain.invalidate_block(nxt.hash)
        try:
            if chain.tip is not target:
                log.warning("dumptxoutset failed to roll back to requested height, "
                            "reverting to tip.")
                raise RPCError(RPC_MISC_ERROR, "Could not roll back to requested height.")
            return _dump(node, f)
        finally:
            chain.reconsider_block(nxt.hash)
    finally:
        if reenable:
            _on_loop(node, connman.set_network_active, True)


def _dump(node, f) -> dict:
    """Write the snapshot of the UTXO set at the current tip to f."""
    chain = node.chain
    with chain.lock:
        chain.flush()
        snapshot = chain.coins.snapshot()
        tip = chain.tip
    written = 0

    def coins():
        nonlocal written
        for item in chain.coins.iter_coins(snapshot):
            written += 1
            yield item

    try:
        stats = utxo_stats(chain.coins, False, snapshot)
        f.write(utxo_snapshot.metadata(node.params.message_start, tip.hash, stats.count))
        for chunk in utxo_snapshot.write_coins(coins()):
            f.write(chunk)
    finally:
        snapshot.close()
    if written != stats.count:
        raise RPCError(RPC_INTERNAL_ERROR, "Unable to read UTXO set")
    f.flush()
    log.info("dumptxoutset: %d coins at height %d (%s)", written, tip.height, tip.hash_hex())
    return {
        "coins_written": written,
        "base_hash": tip.hash_hex(),
        "base_height": tip.height,
        "path": "",
        "txoutset_hash": stats.digest[::-1].hex(),
        "nchaintx": tip.chain_tx,
    }


@rpc("loadtxoutset", "Blockchain",
     [Arg("path", STR, help="path to the snapshot file. If relative, will be prefixed by "
                            "datadir.")],
     description="Load the serialized UTXO set from a file.\nOnce this snapshot is loaded, its "
                 "contents will be deserialized into a second chainstate data structure, "
                 "which is then used to sync to the network's tip. Meanwhile, the original "
                 "chainstate will complete the initial block download process in the "
                 "background, eventually validating up to the block that the snapshot is "
                 "based upon.\n\nminibtcd does not support assumeutxo: it checks the "
                 "snapshot's metadata as Bitcoin Core does, then refuses to load it.",
     result='{ "coins_loaded": n, "tip_hash": "hex", "base_height": n, "path": "str" }',
     examples=["-rpcclienttimeout=0 loadtxoutset utxo.dat"])
def loadtxoutset(node, path):
    p = _data_path(node, path).absolute()
    try:
        with open(p, "rb") as f:
            head = f.read(utxo_snapshot.METADATA_SIZE)
    except OSError:
        raise RPCError(RPC_INVALID_PARAMETER, f"Couldn't open file {p} for reading.") from None
    try:
        base, _count = utxo_snapshot.read_metadata(Reader(head), node.params.message_start)
    except DeserializationError as err:
        raise RPCError(RPC_DESERIALIZATION_ERROR, f"Unable to parse metadata: {err}") from None
    e = node.chain.get(base)
    if e is None:
        reason = (f"The base block header ({base[::-1].hex()}) must appear in the headers "
                  "chain. Make sure all headers are syncing, and call loadtxoutset again")
    else:
        reason = ("assumeutxo snapshots are not supported by minibtcd (it has one chainstate, "
                  "validated from genesis)")
    raise RPCError(RPC_INTERNAL_ERROR, f"Unable to load UTXO snapshot: {reason}. ({p})")
