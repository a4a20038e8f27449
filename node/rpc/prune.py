"""Pruning RPCs: pruneblockchain, and getblockfrompeer (which fetches a block the node does
not have, pruned or never downloaded, from a given peer)."""

from __future__ import annotations

import asyncio
import time

from node.p2p import messages as m
from node.prune import MIN_BLOCKS_TO_KEEP
from node.rpc.errors import RPC_INVALID_PARAMETER, RPC_MISC_ERROR, RPCError
from node.rpc.params import as_int, parse_hash
from node.rpc.registry import NUM, STR, Arg, rpc

TIMESTAMP_MIN = 1_000_000_000  # heights above this are block times (Core's rule)


@rpc("pruneblockchain", "Blockchain",
     [Arg("height", NUM, help="The block height to prune up to. May be set to a discrete "
                              "height, or to a UNIX epoch time\nto prune blocks whose block "
                              "time is at least 2 hours older than the provided timestamp.")],
     description="Attempts to delete block and undo data up to a specified height or "
                 "timestamp, if eligible for pruning.\nRequires `-prune` to be enabled at "
                 "startup. While pruned data may be re-fetched in some cases (e.g., via "
                 "`getblockfrompeer`), local deletion is irreversible.",
     result="n    (numeric) Height of the last block pruned")
def pruneblockchain(node, height) -> int:
    pruner = getattr(node, "pruner", None)
    if pruner is None:
        raise RPCError(RPC_MISC_ERROR, "Cannot prune blocks because node is not in prune "
                                       "mode.")
    h = as_int(height, "height")
    if h < 0:
        raise RPCError(RPC_INVALID_PARAMETER, "Negative block height.")
    chain = node.chain
    with chain.lock:
        if h > TIMESTAMP_MIN:
            # The last block at least 2 h older than the time (Core: FindEarliestAtLeast).
            cutoff = h - 7200
            target = next((e for e in chain.active if e.time >= cutoff), None)
            if target is None:
                raise RPCError(RPC_INVALID_PARAMETER, "Could not find block with at least the "
                                                      "specified timestamp.")
            h = target.height
        if h > chain.height:
            raise RPCError(RPC_INVALID_PARAMETER, "Blockchain is shorter than the attempted "
                                                  "prune height.")
        if h > chain.height - MIN_BLOCKS_TO_KEEP:
            h = chain.height - MIN_BLOCKS_TO_KEEP  # (Core logs this and carries on)
        return pruner.prune_to(h)


@rpc("getblockfrompeer", "Blockchain",
     [Arg("blockhash", STR, help="The block hash to try to fetch"),
      Arg("peer_id", NUM, help="The peer to fetch it from (see getpeerinfo for peer IDs)")],
     description="Attempt to fetch block from a given peer.\n\nWe must have the header for "
                 "this block, e.g. using submitheader.\nThe block will not have any undo data "
                 "which can limit the usage of the block data in a context where the undo "
                 "data is needed.\nSubsequent calls for the same block may cause the response "
                 "from the previous peer to be ignored.\nPeers generally ignore requests for "
                 "a stale block that they never fully verified, or one that is more than a "
                 "month old.\nWhen a peer does not respond with a block, we will disconnect.\n"
                 "Note: The block could be re-pruned as soon as it is received.\n\nReturns an "
                 "empty JSON object if the request was successfully scheduled.")
def getblockfrompeer(node, blockhash, peer_id) -> dict:
    h = parse_hash(blockhash, "blockhash")
    pid = as_int(peer_id, "peer_id")
    chain = node.chain
    e = chain.get(h)
    if e is None:
        raise RPCError(RPC_MISC_ERROR, "Block header missing")
    if getattr(node, "pruner", None) is not None and e.height > chain.height:
        # A block beyond what we have synced would pin its file against pruning.
        raise RPCError(RPC_MISC_ERROR, "In prune mode, only blocks that the node has already "
                                       "synced previously can be fetched from a peer")
    if e.have_data:
        raise RPCError(RPC_MISC_ERROR, "Block already downloaded")
    p2p = node.p2p

    async def fetch() -> str | None:
        peer = p2p.connman.peers.get(pid)
        if peer is None or peer.closed:
            return "Peer does not exist"
        if not peer.services & m.NODE_WITNESS:
            return "Pre-SegWit peer"
        if not peer.handshake_done:
            return "Peer not fully connected"
        sync = p2p.sync
        other = sync.in_flight.pop(h, None)  # asked elsewhere: ask this peer instead
        if other is not None:
            other.in_flight.pop(h, None)
        peer.in_flight[h] = time.monotonic()
        sync.in_flight[h] = peer
        peer.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, h)]))
        return None

    err = asyncio.run_coroutine_threadsafe(fetch(), node.loop).result()
    if err is not None:
        raise RPCError(RPC_MISC_ERROR, err)
    return {}
