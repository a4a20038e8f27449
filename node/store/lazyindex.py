"""The block index in memory, read from the database as it is used, so that start-up costs
the same whatever the chain's length (issue 20; bcoin reads its entries on demand too).

Start-up (ChainState.load) reads the UTXO set's best block, the active chain's height map
(as far as it must be put right) and the entries off the active chain, found from the
stored leaves: every entry not on the active chain lies between a leaf and the active
chain. Entries of the active chain are read when first used; each is then kept, so an
entry has one object (`is` compares entries). Two facts follow, which the chain's walks
over `loaded()` rely on:

- every entry off the active chain is loaded (an entry leaves the active chain only as
  its tip, which is loaded), and so is every child of a loaded entry off the active chain;
- an entry whose skip pointer is unset is on the active chain (ActiveChain.pop sets it
  before an entry leaves), where the height map finds it in one read.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator

from consensus.hashes import hash_to_hex
from consensus.pow import block_work
from consensus.serialize import DeserializationError
from node.store.blockindex import (
    KEY_HASH,
    RECORD_FIELDS,
    BlockIndexDB,
    BlockIndexEntry,
    skip_height,
)

log = logging.getLogger("validation")


class IndexGapError(DeserializationError):
    """The block index lacks a record it refers to: damaged stored data, as a record that
    does not decode."""


class LazyIndex:
    """hash -> BlockIndexEntry, reading an entry's record on first use."""

    def __init__(self, db: BlockIndexDB, children: dict[bytes, list[BlockIndexEntry]]) -> None:
        self.db = db
        self.active: ActiveChain | None = None  # (a weak proxy, set by ActiveChain)
        self._entries: dict[bytes, BlockIndexEntry] = {}
        # Entries point back here weakly: no reference cycle keeps the database open
        # once the chain state is dropped.
        self._proxy = weakref.proxy(self)
        self._children = children  # parent hash -> its loaded children
        self._lock = threading.Lock()  # one object per entry, whichever thread reads it
        self._complete = False  # every record is in memory (load_all)

    # -- the mapping ---------------------------------------------------------------------------

    def get(self, block_hash: bytes) -> BlockIndexEntry | None:
        e = self._entries.get(block_hash)
        return e if e is not None else self._read(block_hash)

    def get_loaded(self, block_hash: bytes) -> BlockIndexEntry | None:
        """The entry if it is in memory (every entry off the active chain is)."""
        return self._entries.get(block_hash)

    def __getitem__(self, block_hash: bytes) -> BlockIndexEntry:
        e = self.get(block_hash)
        if e is None:
            raise KeyError(block_hash)
        return e

    def __contains__(self, block_hash: bytes) -> bool:
        return self.get(block_hash) is not None

    def add(self, e: BlockIndexEntry) -> None:
        """A new entry (its record is the caller's to write)."""
        self._entries[e.hash] = e

    def loaded(self) -> list[BlockIndexEntry]:
        """The entries in memory: every entry off the active chain and the active chain's
        entries read so far (see the module's docstring)."""
        return list(self._entries.values())

    def clear(self) -> None:
        self._entries.clear()
        self._complete = False

    def _read(self, block_hash: bytes, linked: bool = False) -> BlockIndexEntry | None:
        """Read an entry's record. Its parent's record must be stored too, which is checked
        unless `linked` (the caller found the hash through a stored link: a child's prev
        hash, the height map)."""
        with self._lock:
            e = self._entries.get(block_hash)
            if e is not None:
                return e
            raw = self.db.read(block_hash)
            if raw is None:
                return None
            parent = raw[4:36]  # (the header's prev hash; then the height, at 80)
            if not linked and raw[80:84] != b"\0\0\0\0" and parent not in self._entries \
                    and self.db.read(parent) is None:
                log.warning("index entry %s has no parent; ignored", hash_to_hex(block_hash))
                return None
            e = BlockIndexEntry.from_stored(self._proxy, block_hash, raw)
            self._entries[block_hash] = e
        self._add_child(e)
        return e

    def _add_child(self, e: BlockIndexEntry) -> None:
        if e.height:
            self._children.setdefault(e._prev_hash, []).append(e)

    # -- pointers of an entry read on its own (BlockIndexEntry.__getattr__) --------------------

    def get_linked(self, block_hash: bytes) -> BlockIndexEntry | None:
        """get, for a hash found through a stored link (see _read)."""
        e = self._entries.get(block_hash)
        return e if e is not None else self._read(block_hash, linked=True)

    def parent_of(self, e: BlockIndexEntry) -> BlockIndexEntry:
        p = self.get_linked(e._prev_hash)
        if p is None:
            raise IndexGapError(f"block index: the parent of {e.hash_hex()} is not stored; "
                                "restart with -reindex")
        return p

    def skip_of(self, e: BlockIndexEntry) -> BlockIndexEntry:
        """On the active chain (where every unset one is, module docstring) one read of
        the height map; off it (start-up's walk from the leaves, parents first) the walk
        from prev, whose pointers are set."""
        h = skip_height(e.height)
        if self.active is not None and self.active.holds(e):
            return self.active[h]
        return e.prev.ancestor(h)

    # -- every record --------------------------------------------------------------------------

    def load_all(self) -> list[BlockIndexEntry]:
        """Read every record not in memory yet (parents first), working out chain work and
        transaction counts from the parents (so records of format 1 load too), and return
        every entry. For the few callers that need them all: a format upgrade,
        -reindex-chainstate's missing files, pruning's file reach. Once done, new entries
        keep it whole (add), so later calls read nothing."""
        if self._complete:
            return list(self._entries.values())
        entries, new = self._entries, BlockIndexEntry.__new__
        unpack = RECORD_FIELDS.unpack_from
        work_of: dict[int, int] = {}
        for key, raw in self.db.load_raw():
            block_hash = key[KEY_HASH]
            if block_hash in entries:
                continue
            prev = entries.get(raw[4:36])
            e = new(BlockIndexEntry)  # (the fields as BlockIndexEntry's __init__ sets them)
            e.hash, e.prev, e._prev_hash, e._mtp, e.seq_id = block_hash, prev, raw[4:36], None, 1
            (e.version, e.merkle_root, e.time, bits, e.nonce, height, e.status, n_tx, e.file,
             e.data_pos, e.undo_pos) = unpack(raw)
            e.bits, e.n_tx = bits, n_tx
            work = work_of.get(bits)
            if work is None:
                work = work_of[bits] = block_work(bits)
            if prev is not None:
                e.height = prev.height + 1
                e.chain_work = prev.chain_work + work
                e.chain_tx = prev.chain_tx + n_tx if n_tx > 0 and prev.chain_tx else 0
            elif height == 0:
                e.height, e.chain_work, e.chain_tx = 0, work, n_tx
            else:
                log.warning("index entry %s has no parent; ignored", hash_to_hex(block_hash))
                continue
            e.set_skip()  # (its ancestors are in memory, with their pointers)
            entries[block_hash] = e
            self._add_child(e)
        self._complete = True
        return list(entries.values())


class ActiveChain:
    """The active chain by height (Core's CChain), as a sequence: entries are read through
    the index database's height map when first used. Appending and popping change memory
    only; write_map stores the heights changed since, at each flush (before the UTXO set's
    best block). Start-up puts the map right against that best block (set_tip), whatever a
    crash left. A slot not in memory is below every height changed since start-up, so the
    map has it right."""

    def __init__(self, index: LazyIndex, db: BlockIndexDB) -> None:
        self._index = index
        self._db = db
        self._entries: list[BlockIndexEntry | None] = []
        self._stored = 0  # heights below this are in the map as in memory
        # Readers without the chain's lock (RPC threads) fill slots as the chain thread
        # appends and pops: a slot is filled only under this lock, and only if still empty.
        self._lock = threading.Lock()
        index.active = weakref.proxy(self)

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __getitem__(self, i):  # noqa: ANN001, ANN204
        if isinstance(i, slice):
            return [self._at(h) for h in range(*i.indices(len(self._entries)))]
        e = self._entries[i]
        return e if e is not None else self._at(i % len(self._entries))

    @property
    def tip(self) -> BlockIndexEntry | None:
        """The last entry, or None."""
        entries = self._entries
        if not entries:
            return None
        e = entries[-1]
        return e if e is not None else self._at(len(entries) - 1)

    def __iter__(self) -> Iterator[BlockIndexEntry]:
        h = 0
        while h < len(self._entries):
            yield self._at(h)
            h += 1

    def _at(self, height: int) -> BlockIndexEntry:
        e = self._entries[height]
        if e is not None:
            return e
        block_hash = self._db.active_hash(height)
        e = self._index.get_linked(block_hash) if block_hash is not None else None
        if e is None or e.height != height:
            raise IndexGapError(f"block index: no active chain entry at height {height}; "
                                "restart with -reindex")
        with self._lock:
            if self._entries[height] is None:
                self._entries[height] = e
            return self._entries[height]  # type: ignore[return-value]

    def holds(self, e: BlockIndexEntry) -> bool:
        """Whether e is on the active chain."""
        h = e.height
        if h >= len(self._entries):
            return False
        x = self._entries[h]
        if x is not None:
            return x is e
        with self._lock:
            if h >= len(self._entries) or self._db.active_hash(h) != e.hash:
                return False
            if self._entries[h] is None:
                self._entries[h] = e
            return self._entries[h] is e

    def append(self, e: BlockIndexEntry) -> None:
        with self._lock:
            self._entries.append(e)

    def pop(self) -> BlockIndexEntry:
        e = self[-1]
        e.skip  # noqa: B018  (set while on the active chain: see lazyindex's docstring)
        with self._lock:
            self._entries.pop()
            self._stored = min(self._stored, len(self._entries))
        return e

    def clear(self) -> None:
        self._entries = []
        self._stored = 0

    def write_map(self) -> None:
        """Store the heights changed since the last write, and drop those above the tip."""
        entries = self._entries
        self._db.set_active_many([(h, entries[h].hash)  # type: ignore[union-attr]
                                  for h in range(self._stored, len(entries))],
                                 len(entries) - 1)
        self._stored = len(entries)

    def set_tip(self, tip: BlockIndexEntry | None) -> None:
        """Start-up: the chain ending at `tip` (the UTXO set's best block). The stored map
        may be ahead of it (blocks connected after the last flush), behind it or on another
        branch (a reorg not flushed): heights above go, and from the tip down every height
        that differs is written, to the first that agrees (below it all agree: the map is
        always one chain)."""
        if tip is None:
            self._db.set_active_many([], -1)
            self.clear()
            return
        fixes = []
        e: BlockIndexEntry | None = tip
        while e is not None and self._db.active_hash(e.height) != e.hash:
            fixes.append((e.height, e.hash))
            e = e.prev
        self._db.set_active_many(fixes, tip.height)
        self._entries = [None] * tip.height + [tip]
        self._stored = len(self._entries)
