"""The block index: one entry per known header (forks included), kept in memory and in
LevelDB (blocks/index, layout.py)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import plyvel

from consensus.block import BlockHeader
from consensus.contextual import MEDIAN_TIME_SPAN
from consensus.hashes import hash_to_hex
from consensus.serialize import DeserializationError
from node.store import DatabaseOpenError, db_error_text, table_damage
from node.store.layout import (
    BLOCK_PREFIX,
    INDEX_RECORD_SIZE,
    REINDEX_KEY,
    SYNC_KEY,
    block_key,
    decode_index_record,
    encode_index_record,
)

# Validity levels (low 3 bits) and flags, numbered as Core's BlockStatus.
VALID_TREE = 2  # header checked and connects to the tree
VALID_TRANSACTIONS = 3  # block data passed the context-free and contextual checks
VALID_CHAIN = 4
VALID_SCRIPTS = 5  # connected once: inputs, amounts and scripts all valid
VALID_MASK = 7
HAVE_DATA = 8
HAVE_UNDO = 16
FAILED_VALID = 32  # this block broke a rule
FAILED_CHILD = 64  # an ancestor broke a rule
FAILED_MASK = FAILED_VALID | FAILED_CHILD


_HEIGHT = struct.Struct("<I")
KEY_HASH = slice(len(BLOCK_PREFIX), None)  # a record key's block hash: key[KEY_HASH]
# A stored record's fields (layout.py), the header's prev hash left out: version,
# merkle_root, time, bits, nonce, then height, status, n_tx, file, data_pos, undo_pos.
RECORD_FIELDS = struct.Struct("<i32x32sIIIIIIiII")


def _skip_height(height: int) -> int:
    """Height the skip pointer jumps to (Core's GetSkipHeight): O(log n) ancestor lookups."""
    if height < 2:
        return 0

    def invert_lowest_one(n: int) -> int:
        return n & (n - 1)

    return (
        invert_lowest_one(invert_lowest_one(height - 1)) + 1
        if height & 1
        else invert_lowest_one(height)
    )


class BlockIndexEntry:
    __slots__ = (
        "hash", "prev", "skip", "height", "version", "merkle_root", "time", "bits", "nonce",
        "status", "n_tx", "file", "data_pos", "undo_pos", "chain_work", "chain_tx", "seq_id",
        "_mtp",
    )  # fmt: skip

    def __init__(self, header: BlockHeader, prev: BlockIndexEntry | None) -> None:
        self.hash = header.hash
        self.prev = prev
        self.height = prev.height + 1 if prev else 0
        self.version = header.version
        self.merkle_root = header.merkle_root
        self.time = header.time
        self.bits = header.bits
        self.nonce = header.nonce
        self.status = VALID_TREE
        self.n_tx = 0
        self.file = -1
        self.data_pos = 0
        self.undo_pos = 0
        self.chain_work = 0
        self.chain_tx = 0  # transactions up to here if every ancestor's data is stored, else 0
        self.seq_id = 0  # order in which block data arrived: first seen wins a work tie
        self._mtp: int | None = None
        self.skip = prev.ancestor(_skip_height(self.height)) if prev else None

    @classmethod
    def from_record(cls, block_hash: bytes, raw: bytes, prev: BlockIndexEntry | None,
                    skip: bool = True) -> BlockIndexEntry:
        """An entry from its stored record (layout.py's index record) under `prev`, without
        a BlockHeader in between. With skip=False its skip pointer is left for the caller
        to set (set_skip), as the bulk load does."""
        e = cls.__new__(cls)
        e.hash = block_hash
        e.prev = prev
        (e.version, e.merkle_root, e.time, e.bits, e.nonce, e.height, e.status, e.n_tx, e.file,
         e.data_pos, e.undo_pos) = RECORD_FIELDS.unpack(raw)
        e.chain_work = 0
        e.chain_tx = 0
        e.seq_id = 0
        e._mtp = None
        e.skip = prev.ancestor(_skip_height(e.height)) if skip and prev else None
        return e

    def set_skip(self, by_height: list[BlockIndexEntry] | None = None) -> None:
        """Set the skip pointer: from `by_height` (the entries of this entry's own chain by
        height) when given, else by walking from prev."""
        if self.prev is None:
            self.skip = None
        elif by_height is not None:
            self.skip = by_height[_skip_height(self.height)]
        else:
            self.skip = self.prev.ancestor(_skip_height(self.height))

    # -- header --------------------------------------------------------------------------------

    @property
    def prev_hash(self) -> bytes:
        return self.prev.hash if self.prev else b"\x00" * 32

    def header(self) -> BlockHeader:
        h = BlockHeader(self.version, self.prev_hash, self.merkle_root, self.time, self.bits,
                        self.nonce)
        h._hash = self.hash
        return h

    def hash_hex(self) -> str:
        return hash_to_hex(self.hash)

    # -- tree ----------------------------------------------------------------------------------

    def ancestor(self, height: int) -> BlockIndexEntry:
        """The ancestor at `height` (self if equal), following skip pointers."""
        if height > self.height or height < 0:
            raise ValueError(f"no ancestor at height {height} of block at {self.height}")
        walk = self
        while walk.height > height:
            skip = walk.skip
            hs = _skip_height(walk.height)
            hp = _skip_height(walk.height - 1)
            if skip is not None and (
                hs == height
                or (hs > height and not (hp < hs - 2 and hp >= height))
            ):
                walk = skip
            else:
                walk = walk.prev  # type: ignore[assignment]
        return walk

    def median_time_past(self) -> int:
        """Median of the last 11 block times (computed once: headers never change)."""
        if self._mtp is not None:
            return self._mtp
        times = []
        e: BlockIndexEntry | None = self
        for _ in range(MEDIAN_TIME_SPAN):
            if e is None:
                break
            times.append(e.time)
            e = e.prev
        times.sort()
        self._mtp = times[len(times) // 2]
        return self._mtp

    # -- status --------------------------------------------------------------------------------

    def is_valid(self, level: int = VALID_TREE) -> bool:
        if self.status & FAILED_MASK:
            return False
        return (self.status & VALID_MASK) >= level

    def raise_validity(self, level: int) -> None:
        if (self.status & VALID_MASK) < level:
            self.status = (self.status & ~VALID_MASK) | level

    @property
    def have_data(self) -> bool:
        return bool(self.status & HAVE_DATA)

    @property
    def failed(self) -> bool:
        return bool(self.status & FAILED_MASK)

    def __repr__(self) -> str:
        return f"<BlockIndexEntry {self.height} {self.hash_hex()} status={self.status}>"


class BlockIndexDB:
    """Persistence of entries. Writes are unsynced (a killed process loses nothing); `sync`
    makes them durable against machine crashes too."""

    def __init__(self, path: Path) -> None:
        try:
            self.db = plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
        except plyvel.Error as err:
            raise DatabaseOpenError("block", db_error_text(err)) from None
        # (no table check here, unlike the UTXO set's: every record is read at load with its
        # checksum, so a table cut short is found there, as Core's "Error loading block
        # database", which its feature_init.py expects)

    def close(self) -> None:
        self.db.close()

    def put(self, e: BlockIndexEntry) -> None:
        self.db.put(block_key(e.hash), self._record(e))

    def put_many(self, entries: list[BlockIndexEntry], sync: bool = False) -> None:
        with self.db.write_batch(sync=sync) as batch:
            for e in entries:
                batch.put(block_key(e.hash), self._record(e))

    @staticmethod
    def _record(e: BlockIndexEntry) -> bytes:
        return encode_index_record(
            e.header().serialize(), e.height, e.status, e.n_tx, e.file, e.data_pos, e.undo_pos
        )

    def sync(self) -> None:
        # An empty synced write forces the log (and everything before it) to disk.
        self.db.put(SYNC_KEY, b"", sync=True)

    def load(self) -> Iterator[tuple[BlockHeader, int, int, int, int, int, int]]:
        """Every stored record: (header, height, status, n_tx, file, data_pos, undo_pos)."""
        try:
            for _, raw in self.db.iterator(prefix=BLOCK_PREFIX, verify_checksums=True):
                header_raw, height, status, n_tx, file, data_pos, undo_pos = \
                    decode_index_record(raw)
                yield (BlockHeader.from_bytes(header_raw), height, status, n_tx, file, data_pos,
                       undo_pos)
        except plyvel.Error as err:
            raise type(err)(db_error_text(err)) from None

    def load_raw(self) -> list[tuple[bytes, bytes]]:
        """Every stored record in one pass, undecoded: (key, record), parents before
        children (by height). The key holds the block's hash (key_hash): no header is hashed
        again (LevelDB's checksums, verified here, catch a damaged record)."""
        try:
            items = list(self.db.iterator(prefix=BLOCK_PREFIX, verify_checksums=True))
        except plyvel.Error as err:
            raise type(err)(db_error_text(err)) from None
        for _, raw in items:
            if len(raw) != INDEX_RECORD_SIZE:
                raise DeserializationError(f"block index record of {len(raw)} bytes")
        # Keys are hashes, so LevelDB's order is random in height. Placed by height, one
        # slot each (a chain without forks), which is cheaper than a sort; where a height
        # has several entries, or a height is out of reach of the records there are (a
        # parent missing), one stable sort by height instead.
        heights = [_HEIGHT.unpack_from(raw, 80)[0] for _, raw in items]
        n = len(items)
        if max(heights, default=0) < n:
            by_height: list[tuple[bytes, bytes] | None] = [None] * n
            for item, h in zip(items, heights):
                if by_height[h] is not None:
                    break
                by_height[h] = item
            else:
                return list(filter(None, by_height))
        return [items[i] for i in sorted(range(n), key=heights.__getitem__)]

    def set_reindexing(self, on: bool) -> None:
        if on:
            self.db.put(REINDEX_KEY, b"\x01", sync=True)
        else:
            self.db.delete(REINDEX_KEY, sync=True)

    def is_reindexing(self) -> bool:
        return self.db.get(REINDEX_KEY) is not None

    def wipe(self) -> None:
        """Delete every block record (the reindex flag stays: a crash mid-reindex must
        restart the reindex)."""
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key in self.db.iterator(include_value=False):
                if key != REINDEX_KEY:
                    batch.delete(key)


def index_damage(path: Path) -> str | None:
    """What is wrong with the block index database at `path` (every record read with its
    checksum verified), or None when it reads whole or does not exist."""
    if not path.exists():
        return None
    try:
        db = plyvel.DB(str(path), paranoid_checks=True)
    except plyvel.Error as err:
        return db_error_text(err)
    try:
        damage = table_damage(db, path)
        if damage:
            return damage
        for _ in db.iterator(verify_checksums=True):
            pass
    except plyvel.Error as err:
        return db_error_text(err)
    finally:
        db.close()
    return None
