"""Importing blocks from framed block files (-loadblock) and rebuilding from our own block
files (-reindex, -reindex-chainstate)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from consensus.block import Block
from consensus.checks import check_block
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


class _ReadAhead:
    """The readable blocks of a framed file, each parsed and checked (check_block, which
    needs no chain context) one block ahead: while the script workers check a block, the
    chain prepares the next one here (ScriptChecker.while_checking) instead of idling, so
    the workers are not idle while it parses and hashes that block afterwards."""

    def __init__(self, chain: ChainState, path: Path, stats: ImportStats) -> None:
        self.chain = chain
        self._blocks = _parsed_blocks(path, chain.params.message_start, stats)
        self._next: tuple[Block, bytes, bool] | None = None  # (block, raw, checked)
        self._error: Exception | None = None  # raised by the iteration, in its turn
        self._end = False

    def prepare(self) -> None:
        """Read the next block unless it is read already (idempotent)."""
        if self._next is not None or self._end or self._error is not None:
            return
        try:
            self._read()
        except Exception as err:  # (e.g. a read error) not the current block's
            self._error = err

    def _read(self) -> None:
        for _, block, raw in self._blocks:
            self._next = (block, raw, self._check(block))
            return
        self._end = True

    def _check(self, block: Block) -> bool:
        """Whether check_block passed. A block that fails is checked again (and the error
        raised) when processed, as without read-ahead; stored blocks are skipped."""
        e = self.chain.get(block.hash)
        if e is not None and e.have_data:
            return False
        try:
            check_block(block, self.chain.params)
        except Exception:
            return False
        return True

    def __iter__(self) -> Iterator[tuple[Block, bytes, bool]]:
        while True:
            self.prepare()
            if self._error is not None:
                raise self._error
            if self._next is None:
                return
            item, self._next = self._next, None
            yield item


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
    waiting: dict[bytes, list[tuple[Block, bytes, bool]]] = {}
    blocks = _ReadAhead(chain, path, stats)
    for block, raw, checked in blocks:
        queue = [(block, raw, checked)]
        while queue:
            b, braw, bchecked = queue.pop()
            e = chain.get(b.hash)
            if e is not None and e.have_data:
                stats.known += 1
            elif b.header.prev_hash not in chain.index:
                _out_of_order(b)
                waiting.setdefault(b.header.prev_hash, []).append((b, braw, bchecked))
                continue
            else:
                try:
                    with chain.scripts.while_checking(blocks.prepare):
                        chain.process_block(b, braw, checked=bchecked)
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
