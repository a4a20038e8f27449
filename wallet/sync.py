"""Following the node's chain over JSON-RPC: block by block from the wallet's tip (its birthday
at first), rewinding on a reorg, and tracking the mempool.

Blocks come raw (getblock verbosity 0) in JSON-RPC batches and are parsed with consensus code;
each batch of blocks is applied in one sqlite transaction with the new tip, so an interrupted
sync resumes from the last batch written. A reorg is found by comparing the hashes the wallet
recorded with the node's (getblockhash) from the tip down; the wallet rewinds to the last
common block, and the transactions of the removed blocks count again only if the node put them
back in its mempool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from consensus.block import Block
from consensus.hashes import hash_to_hex
from consensus.tx import Transaction
from wallet.nodeclient import NodeClient, NodeRPCError
from wallet.wallet import Wallet

log = logging.getLogger("wallet")

BATCH_BLOCKS = 250
MAX_ROUNDS = 20  # the chain may move while it is followed; give up after this many changes


@dataclass
class SyncResult:
    connected: int = 0
    disconnected: int = 0
    found: int = 0


def _hex_hash(h: str) -> bytes:
    return bytes.fromhex(h)[::-1]


def sync(wallet: Wallet, node: NodeClient, stop_height: int | None = None) -> SyncResult:
    """Bring the wallet to the node's best chain (or stop_height) and then its mempool (a
    mempool read while a block connected is not applied: the chain is followed again)."""
    result = SyncResult()
    start_height, start_hash = wallet.tip_height, wallet.tip_hash
    for _ in range(3):
        _sync_chain(wallet, node, stop_height, result)
        if stop_height is not None or sync_mempool(wallet, node) is not None:
            break
    if wallet.tip_hash != start_hash and start_height >= 0 and stop_height is None:
        _scan_stale(wallet, node, start_height)
    return result


def _scan_stale(wallet: Wallet, node: NodeClient, since: int) -> None:
    """Blocks the node connected and then left for another branch between two syncs (the
    wallet, following by polling, never saw them): their transactions that touch the
    wallet are recorded as Core's wallet, told of every connected block, would have them
    after the reorg: unconfirmed, conflicted where the new branch spends their inputs.
    Only branch blocks above `since`, the wallet's tip before this sync, can be such."""
    try:
        tips = node.call("getchaintips")
    except NodeRPCError:
        return
    hashes: list[str] = []
    for tip in tips:
        if tip.get("status") != "valid-fork" or int(tip["height"]) <= since:
            continue
        bhash, height = tip["hash"], int(tip["height"])
        low = max(since, height - int(tip["branchlen"]))
        while height > low and bhash:
            hashes.append(bhash)
            header = node.call("getblockheader", bhash)
            bhash, height = header.get("previousblockhash"), height - 1
    if not hashes:
        return
    raws = node.batch([("getblock", [h, 0]) for h in reversed(hashes)])
    with wallet.db.atomic():
        for raw in raws:
            if isinstance(raw, Exception):
                continue
            for tx in Block.from_bytes(bytes.fromhex(raw)).txs:
                if tx.txid not in wallet.txs and not tx.is_coinbase() and \
                        wallet.is_relevant(tx):
                    wallet.add_tx(tx)


def _sync_chain(wallet: Wallet, node: NodeClient, stop_height: int | None,
                result: SyncResult) -> None:
    for _ in range(MAX_ROUNDS):
        best_hex, height = node.batch([("getbestblockhash", []), ("getblockcount", [])])
        for r in (best_hex, height):
            if isinstance(r, Exception):
                raise r
        target = height if stop_height is None else min(height, stop_height)
        if wallet.tip_hash == _hex_hash(best_hex) and wallet.tip_height == height:
            break
        fork = find_fork(wallet, node, min(wallet.tip_height, target))
        if fork < wallet.tip_height:
            result.disconnected += wallet.tip_height - fork
            fork_hash = wallet.block_hash_at(fork) if fork >= 0 else b""
            if fork >= 0 and fork_hash is None:
                fork_hash = _hex_hash(node.call("getblockhash", fork))
            header = node.call("getblockheader", hash_to_hex(fork_hash)) if fork >= 0 else None
            log.info("wallet %s: reorg, back to height %d", wallet.name, fork)
            wallet.rewind(fork, fork_hash or b"", int(header["time"]) if header else 0)
        if not _follow(wallet, node, target, result):
            continue  # the chain changed under us: look for the fork again
        if stop_height is not None or wallet.tip_height == height:
            break


def find_fork(wallet: Wallet, node: NodeClient, start: int) -> int:
    """The highest height <= start where the wallet's recorded block is the node's."""
    h = start
    while h >= 0:
        lo = max(-1, h - 32)
        heights = [x for x in range(h, lo, -1)]
        answers = node.batch([("getblockhash", [x]) for x in heights])
        for x, ans in zip(heights, answers, strict=True):
            ours = wallet.block_hash_at(x)
            if ours is None:
                return x  # below what the wallet recorded (its birthday): nothing to compare
            if not isinstance(ans, Exception) and _hex_hash(ans) == ours:
                return x
        h = lo
    return -1


def _follow(wallet: Wallet, node: NodeClient, target: int, result: SyncResult) -> bool:
    """Connect blocks tip+1 .. target. False when a block does not extend the wallet's tip
    (a reorg happened meanwhile)."""
    while wallet.tip_height < target:
        if wallet.rescanning:
            if wallet.abort_rescan:
                return True  # (abortrescan: stop here; the caller reports it)
            lo, hi = wallet.scan_range
            wallet.scan_progress = (wallet.tip_height - lo + 1) / max(1, hi - lo + 1)
        heights = list(range(wallet.tip_height + 1, min(target, wallet.tip_height
                                                        + BATCH_BLOCKS) + 1))
        hashes = node.batch([("getblockhash", [h]) for h in heights])
        if any(isinstance(x, Exception) for x in hashes):
            return False  # the node's chain got shorter meanwhile
        raws = node.batch([("getblock", [x, 0]) for x in hashes])
        blocks = []
        for h, bhex, raw in zip(heights, hashes, raws, strict=True):
            if isinstance(raw, Exception):
                return False
            block = Block.from_bytes(bytes.fromhex(raw))
            if block.hash != _hex_hash(bhex):
                return False
            blocks.append((h, block))
        with wallet.db.atomic():
            for h, block in blocks:
                if wallet.tip_height >= 0 and block.header.prev_hash != wallet.tip_hash:
                    return False
                result.found += connect_block(wallet, h, block)
                wallet.set_tip(h, block.hash, block.header.time)
                result.connected += 1
    return True


def connect_block(wallet: Wallet, height: int, block: Block) -> int:
    """Record the block's transactions that touch the wallet (inside the caller's db
    transaction). Returns how many did."""
    n = 0
    for pos, tx in enumerate(block.txs):
        if wallet.is_relevant(tx):
            wallet.add_tx(tx, height=height, block_hash=block.hash, block_time=block.header.time,
                          block_pos=pos)
            n += 1
    return n


def sync_mempool(wallet: Wallet, node: NodeClient) -> int | None:
    """Mark which unconfirmed wallet transactions the mempool holds, and add mempool
    transactions that pay or spend the wallet. Returns how many were added, or None when
    the node's tip is not the wallet's (a block came: a transaction it confirmed has left
    the mempool, and must not be taken for dropped before the block is followed)."""
    listed, best = node.batch([("getrawmempool", [False, True]), ("getbestblockhash", [])])
    for r in (listed, best):
        if isinstance(r, Exception):
            raise r
    if _hex_hash(best) != wallet.tip_hash:
        return None
    # The mempool sequence moves with every addition and removal: the same number at the
    # same tip, over the same connection (a node restarted behind a new one counts again),
    # with nothing changed in the wallet since (which forgets it), is the same mempool,
    # already looked through.
    seen = (node.connections, wallet.tip_hash, int(listed["mempool_sequence"]))
    if wallet.mempool_synced == seen:
        return 0
    txids = [_hex_hash(t) for t in listed["txids"]]
    wallet.set_mempool(txids)
    ignored = wallet.mempool_ignored
    unknown = [t for t in txids if t not in wallet.txs and t not in ignored]
    pending: list[Transaction] = []
    missed = False
    for raw in (node.batch([("getrawtransaction", [hash_to_hex(t)])
                                              for t in unknown])):
        if isinstance(raw, NodeRPCError):
            missed = True  # left the mempool meanwhile (or could not be read: look again)
            continue
        pending.append(Transaction.from_bytes(bytes.fromhex(raw)))
    added = 0
    progress = True
    while progress:  # a child may come before its parent in the mempool's list
        progress = False
        rest = []
        for tx in pending:
            if wallet.is_relevant(tx):
                wallet.add_tx(tx, in_mempool=True)
                added += 1
                progress = True
            else:
                rest.append(tx)
        pending = rest
    pool = set(txids)
    wallet.mempool_ignored = {t for t in ignored if t in pool} | {tx.txid for tx in pending}
    wallet.mempool_synced = None if missed else seen
    return added
