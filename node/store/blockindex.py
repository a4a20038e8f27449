"""The block index: one entry per known header (forks included), in LevelDB (blocks/index,
layout.py) and, as far as it has been read, in memory (node/store/lazyindex.py)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import plyvel

from consensus.block import BlockHeader
from consensus.contextual import MEDIAN_TIME_SPAN
from consensus.hashes import hash_to_hex
from consensus.serialize import DeserializationError
from node.store import (
    DatabaseOpenError,
    close_db,
    db_error_text,
    table_damage,
    table_first_keys,
)
from node.store.layout import (
    ACTIVE_PREFIX,
    BLOCK_PREFIX,
    FILE_PREFIX,
    INDEX_RECORD,
    INDEX_RECORD_SIZE,
    INDEX_RECORD_SIZE_V1,
    INDEX_VERSION,
    LEAF_PREFIX,
    REINDEX_KEY,
    SYNC_KEY,
    VERSION_KEY,
    active_key,
    block_key,
    file_key,
    file_of_key,
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
_ACTIVE_END = bytes([ACTIVE_PREFIX[0] + 1])  # (after every key of the height map)
_RECORD_HEAD = struct.Struct("<IIIiII")  # height .. undo_pos, after the header
KEY_HASH = slice(len(BLOCK_PREFIX), None)  # a record key's block hash: key[KEY_HASH]
# A stored record's fields (layout.py), the header's prev hash left out: version,
# merkle_root, time, bits, nonce, then height, status, n_tx, file, data_pos, undo_pos (the
# fields of both formats; INDEX_RECORD has all of format 2's).
RECORD_FIELDS = struct.Struct("<i32x32sIIIIIIiII")


def skip_height(height: int) -> int:
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
        "_mtp", "_prev_hash", "_tree",
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
        self.skip = prev.ancestor(skip_height(self.height)) if prev else None

    @classmethod
    def from_stored(cls, tree, block_hash: bytes, raw: bytes) -> BlockIndexEntry:
        """An entry from its stored record (format 2) alone: its prev and skip pointers are
        found when first used (__getattr__), through `tree` (lazyindex.LazyIndex)."""
        if len(raw) != INDEX_RECORD_SIZE:
            raise DeserializationError(f"block index record of {len(raw)} bytes")
        e = cls.__new__(cls)
        e.hash = block_hash
        (e.version, e._prev_hash, e.merkle_root, e.time, e.bits, e.nonce, e.height, e.status,
         e.n_tx, e.file, e.data_pos, e.undo_pos, work, e.chain_tx) = INDEX_RECORD.unpack(raw)
        e.chain_work = int.from_bytes(work, "little")
        e.seq_id = 1  # (loaded blocks tie: the first seen of equal work is the one loaded)
        e._mtp = None
        e._tree = tree
        if e.height == 0:
            e.prev = e.skip = None
        return e

    def __getattr__(self, name: str):  # noqa: ANN204
        # Reached only for a slot never set: the prev and skip pointers of an entry read
        # on its own (from_stored), found on first use.
        if name == "prev":
            self.prev = p = self._tree.parent_of(self)
            return p
        if name == "skip":
            self.skip = s = self._tree.skip_of(self)
            return s
        raise AttributeError(name)

    def set_skip(self) -> None:
        """Set the skip pointer by walking from prev (whose ancestors have theirs)."""
        self.skip = self.prev.ancestor(skip_height(self.height)) if self.prev else None

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
            hs = skip_height(walk.height)
            hp = skip_height(walk.height - 1)
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
    """Persistence of entries, the active chain's height map, the leaves and the blk files
    in use (layout.py). Writes are unsynced (a killed process loses nothing); `sync` makes
    them durable against machine crashes too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True)
        except plyvel.Error as err:
            raise DatabaseOpenError("block", db_error_text(err)) from None
        damage = self._table_damage()  # (before anything is read)
        if damage:
            self.db.close()
            raise DatabaseOpenError("block", damage, "loading")
        try:
            version = self.db.get(VERSION_KEY)
            if version is None and next(self.db.iterator(prefix=BLOCK_PREFIX), None) is None:
                self.db.put(VERSION_KEY, INDEX_VERSION)  # (a new index starts in format 2)
                version = INDEX_VERSION
            self.block_files = {file_of_key(k) for k in
                                self.db.iterator(prefix=FILE_PREFIX, include_value=False)}
        except plyvel.Error as err:
            self.db.close()
            raise DatabaseOpenError("block", db_error_text(err), "loading") from None
        if version not in (None, INDEX_VERSION):
            self.db.close()
            raise DatabaseOpenError("block", f"unknown block index format {version.hex()}")
        # Format 1 (no chain work in the records, no height map, leaves or files): the
        # next load reads every record and writes format 2 (ChainState.load).
        self.needs_upgrade = version is None

    def close(self) -> None:
        close_db(self.db)

    def _table_damage(self) -> str | None:
        """What is wrong with a table: its size is not the one the database's metadata
        gives (table_damage), or its first block fails its checksum. Core's load reads every
        record and fails on a damaged table ("Error loading block database", its
        feature_init.py); start-up here reads a few records, the others when they are first
        used (checksums verified too)."""
        try:
            damage = table_damage(self.db, self.path)
            if damage:
                return damage
            for key in table_first_keys(self.db):
                next(self.db.iterator(start=key, verify_checksums=True), None)
        except plyvel.Error as err:
            return db_error_text(err)
        return None

    # -- entries -------------------------------------------------------------------------------

    def put(self, e: BlockIndexEntry, leaf: bool = False) -> None:
        """Write e's record; leaf: e is new, so it is a leaf and its parent no longer is."""
        if not leaf and (e.file < 0 or e.file in self.block_files):
            self.db.put(block_key(e.hash), self._record(e))
            return
        batch = self.db.write_batch()
        self._put(batch, e)
        if leaf:
            batch.put(LEAF_PREFIX + e.hash, b"")
            if e.prev is not None:
                batch.delete(LEAF_PREFIX + e.prev.hash)
        batch.write()

    def put_many(self, entries: list[BlockIndexEntry], sync: bool = False) -> None:
        with self.db.write_batch(sync=sync) as batch:
            for e in entries:
                self._put(batch, e)

    def _put(self, batch, e: BlockIndexEntry) -> None:  # noqa: ANN001
        batch.put(block_key(e.hash), self._record(e))
        if e.file >= 0 and e.file not in self.block_files:
            batch.put(file_key(e.file), b"")
            self.block_files.add(e.file)

    @staticmethod
    def _record(e: BlockIndexEntry) -> bytes:
        return INDEX_RECORD.pack(
            e.version, e.prev_hash, e.merkle_root, e.time, e.bits, e.nonce, e.height, e.status,
            e.n_tx, e.file, e.data_pos, e.undo_pos, e.chain_work.to_bytes(32, "little"),
            e.chain_tx)

    def read(self, block_hash: bytes) -> bytes | None:
        """One entry's stored record, or None."""
        try:
            return self.db.get(block_key(block_hash), verify_checksums=True)
        except plyvel.Error as err:
            raise type(err)(db_error_text(err)) from None

    def sync(self) -> None:
        # An empty synced write forces the log (and everything before it) to disk.
        self.db.put(SYNC_KEY, b"", sync=True)

    # -- the active chain's height map, the leaves, the blk files ------------------------------

    def active_hash(self, height: int) -> bytes | None:
        return self.db.get(active_key(height))

    def set_active_many(self, pairs: list[tuple[int, bytes]], above: int) -> None:
        """Write (height, hash) pairs of the active chain and drop every height above
        `above`, in one batch."""
        with self.db.write_batch() as batch:
            for key in self.db.iterator(start=active_key(above + 1), stop=_ACTIVE_END,
                                        include_value=False):
                batch.delete(key)
            for height, block_hash in pairs:
                batch.put(active_key(height), block_hash)

    def leaves(self) -> list[bytes]:
        return [k[len(LEAF_PREFIX):] for k in
                self.db.iterator(prefix=LEAF_PREFIX, include_value=False)]

    def drop_files(self, numbers: set[int], sync: bool = False) -> None:
        """Forget blk files that no longer hold any block (pruned or gone)."""
        with self.db.write_batch(sync=sync) as batch:
            for n in numbers:
                batch.delete(file_key(n))
        self.block_files -= numbers

    def write_upgrade(self, entries: list[BlockIndexEntry], leaves: list[BlockIndexEntry]) \
            -> None:
        """Every record in format 2, the leaves and the blk files in use, then the format
        key, in one synced batch (the height map is the active chain's to write)."""
        with self.db.write_batch(sync=True) as batch:
            for e in entries:
                self._put(batch, e)
            for e in leaves:
                batch.put(LEAF_PREFIX + e.hash, b"")
            batch.put(VERSION_KEY, INDEX_VERSION)
        self.needs_upgrade = False
        # Into tables now: otherwise the next start-up replays the whole batch from the log.
        self.db.compact_range()

    def load(self) -> Iterator[tuple[BlockHeader, int, int, int, int, int, int]]:
        """Every stored record: (header, height, status, n_tx, file, data_pos, undo_pos)."""
        for _, raw in self.load_raw():
            header_raw = raw[:80]
            height, status, n_tx, file, data_pos, undo_pos = _RECORD_HEAD.unpack_from(raw, 80)
            yield (BlockHeader.from_bytes(header_raw), height, status, n_tx, file, data_pos,
                   undo_pos)

    def load_raw(self) -> list[tuple[bytes, bytes]]:
        """Every stored record in one pass, undecoded: (key, record), parents before
        children (by height). The key holds the block's hash (key_hash): no header is hashed
        again (LevelDB's checksums, verified here, catch a damaged record). Records of
        both formats are read (RECORD_FIELDS covers what they share)."""
        try:
            items = list(self.db.iterator(prefix=BLOCK_PREFIX, verify_checksums=True))
        except plyvel.Error as err:
            raise type(err)(db_error_text(err)) from None
        for _, raw in items:
            if len(raw) not in (INDEX_RECORD_SIZE, INDEX_RECORD_SIZE_V1):
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
        """Delete every record (the reindex flag stays: a crash mid-reindex must restart
        the reindex; so does the format, which the records written next have)."""
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key in self.db.iterator(include_value=False):
                if key not in (REINDEX_KEY, VERSION_KEY):
                    batch.delete(key)
            batch.put(VERSION_KEY, INDEX_VERSION)
        self.block_files.clear()
        self.needs_upgrade = False


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
