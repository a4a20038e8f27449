"""Importing blocks from framed block files (-loadblock) and rebuilding from our own block
files (-reindex, -reindex-chainstate)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from consensus.block import Block
from consensus.errors import ValidationError
from consensus.serialize import DeserializationError
from node.chain import ChainState
from node.store.blockfiles import scan_block_file
from node.store.blockindex import BlockIndexEntry

log = logging.getLogger("validation")


class ImportStats:
    __slots__ = ("new", "known", "invalid", "unreadable", "orphans")

    def __init__(self) -> None:
        self.new = self.known = self.invalid = self.unreadable = self.orphans = 0

    def __repr__(self) -> str:
        return (f"ImportStats(new={self.new}, known={self.known}, invalid={self.invalid}, "
                f"unreadable={self.unreadable}, orphans={self.orphans})")


def _parsed_blocks(path: Path, magic: bytes, stats: ImportStats, key: bytes = bytes(8)):
    """(position, block, raw bytes) of every readable block in a framed file (XORed with
    `key`, as our own block files are)."""
    for pos, raw in scan_block_file(path, magic, key):
        try:
            yield pos, Block.from_bytes(raw), raw
        except DeserializationError as err:
            stats.unreadable += 1
            log.warning("%s: unreadable block at offset %d: %s", path, pos, err)


def _out_of_order(block: Block) -> None:
    log.debug("LoadExternalBlockFile: Out of order block %s, parent %s not known",
              block.hash_hex(), block.header.prev_hash[::-1].hex())


def _children(waiting: dict, parent: Block) -> list:
    """The blocks that waited for `parent`, now that it is in (Core's log line for each)."""
    kids = waiting.pop(parent.hash, [])
    for kid in kids:
        log.debug("LoadExternalBlockFile: Processing out of order child %s of %s",
                  kid[0].hash_hex(), parent.hash_hex())
    return kids


def load_external_block_file(chain: ChainState, path: Path,
                             stats: ImportStats | None = None) -> ImportStats:
    """Core's LoadExternalBlockFile: accept every block of a framed file (Bitcoin Core's own
    blk files included), in any order: a block whose parent is not known yet waits until the
    parent arrives. Blocks already stored are skipped, so importing twice is harmless."""
    stats = stats or ImportStats()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"-loadblock file not found: {path}")
    waiting: dict[bytes, list[tuple[Block, bytes]]] = {}
    for _, block, raw in _parsed_blocks(path, chain.params.message_start, stats):
        queue = [(block, raw)]
        while queue:
            b, braw = queue.pop()
            e = chain.get(b.hash)
            if e is not None and e.have_data:
                stats.known += 1
            elif b.header.prev_hash not in chain.index:
                _out_of_order(b)
                waiting.setdefault(b.header.prev_hash, []).append((b, braw))
                continue
            else:
                try:
                    chain.process_block(b, braw)
                    stats.new += 1
                except ValidationError as err:
                    stats.invalid += 1
                    log.warning("%s: block %s rejected: %s", path, b.hash_hex(), err)
                    continue
            queue.extend(_children(waiting, b))
    stats.orphans = sum(len(v) for v in waiting.values())
    if stats.orphans:
        log.warning("%s: %d blocks with unknown parents were not imported", path, stats.orphans)
    return stats


def reindex(chain: ChainState, progress: Callable[[BlockIndexEntry], None] | None = None) -> int:
    """Rebuild the block index and the UTXO set from the blk files already in the datadir.

    Unreadable or truncated records are skipped (with a warning), so a damaged file costs the
    damaged blocks and their descendants, never the whole node. Returns blocks indexed.
    """
    with chain.lock:
        chain.index_db.set_reindexing(True)
        chain.index_db.wipe()
        chain.coins.wipe()
        chain.reset_memory()
        stats = ImportStats()
        waiting: dict[bytes, list[tuple[Block, tuple[int, int]]]] = {}
        genesis = chain.params.genesis_hash
        for file_no in chain.files.list_files():
            path = chain.files.block_path(file_no)
            log.info("Reindexing block file %s...", path.name)
            for pos, block, _ in _parsed_blocks(path, chain.params.message_start, stats,
                                                chain.files.key):
                queue = [(block, (file_no, pos))]
                while queue:
                    b, where = queue.pop()
                    h = b.hash
                    if h in chain.index and chain.index[h].have_data:
                        continue
                    if h != genesis and b.header.prev_hash not in chain.index:
                        _out_of_order(b)
                        waiting.setdefault(b.header.prev_hash, []).append((b, where))
                        continue
                    try:
                        chain.index_block_at(b, where)
                        stats.new += 1
                    except ValidationError as err:
                        stats.invalid += 1
                        log.warning("reindex: block %s rejected: %s", b.hash_hex(), err)
                        continue
                    queue.extend(_children(waiting, b))
        if genesis not in chain.index:
            chain.store_genesis()
        chain.index_db.set_reindexing(False)
        log.info("reindex: %d blocks indexed, %d unreadable, %d invalid",
                 stats.new, stats.unreadable, stats.invalid)
    chain.load()
    return stats.new


def reindex_chainstate(chain: ChainState) -> None:
    """Rebuild only the UTXO set, reconnecting the stored blocks from genesis. Blocks whose
    data is missing or damaged become headers only (downloaded again from peers); the chain
    is rebuilt up to the last block before them."""
    with chain.lock:
        chain.coins.wipe()
    chain.load(forget_missing=True)
