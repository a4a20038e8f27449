"""Pruning of block and undo files, as Core's -prune.

-prune=1 allows manual pruning only (pruneblockchain); -prune=N (N >= 550) keeps the block
files under N MiB by deleting the oldest whenever a block connects. Whole files go (blk and
rev together), never the one being written, and never one holding any of the last 288 blocks
of the active chain (MIN_BLOCKS_TO_KEEP), so a reorg of that depth can still be undone. A
file's reach is the highest block stored in it (a block fetched again later with
getblockfrompeer keeps the file it went into, as in Core). The pruned blocks' index entries
keep their headers and transaction counts, losing only their data: a pruned block is one
with a transaction count and no data. -fastprune writes 64 KiB files, for tests.
"""

from __future__ import annotations

import logging

from node.confparse import ConfigError
from node.store.blockindex import HAVE_DATA, HAVE_UNDO

log = logging.getLogger("prune")

MIN_BLOCKS_TO_KEEP = 288
MIN_DISK_SPACE_FOR_BLOCK_FILES = 550 * 1024 * 1024
PRUNE_MANUAL = 1
FASTPRUNE_BLOCKFILE_SIZE = 0x10000


def prune_target(config) -> int:
    """-prune in bytes: 0 off, 1 manual only; Core's checks and texts."""
    n = config.arg_int("prune", 0)
    if n < 0:
        raise ConfigError("Error: Prune cannot be configured with a negative value.")
    if n == 0:
        return 0
    if config.txindex:
        raise ConfigError("Error: Prune mode is incompatible with -txindex.")
    if n == PRUNE_MANUAL:
        return PRUNE_MANUAL
    target = n * 1024 * 1024
    if target < MIN_DISK_SPACE_FOR_BLOCK_FILES:
        raise ConfigError("Error: Prune configured below the minimum of 550 MiB.  Please use "
                          "a higher number.")
    return target


def is_pruned(e) -> bool:
    """A block whose data this node had and deleted (Core's IsBlockPruned)."""
    return e.n_tx > 0 and not e.have_data


PRUNE_LOCK_BUFFER = 10


class Pruner:
    def __init__(self, chain, target: int) -> None:
        self.chain = chain
        self.target = target  # bytes, or PRUNE_MANUAL
        # Core's prune locks: callables giving the lowest height someone (an index still
        # reading blocks) needs kept, or None.
        self.locks: list = []
        if target > PRUNE_MANUAL:
            chain.on_activated.append(self.auto_prune)

    def _file_reach(self) -> dict[int, int]:
        """file number -> the highest block stored in it."""
        reach: dict[int, int] = {}
        for e in self.chain.index.load_all():
            if e.have_data and e.file >= 0:
                reach[e.file] = max(reach.get(e.file, -1), e.height)
        return reach

    def _prune_files(self, files: list[int]) -> None:
        chain = self.chain
        # As Core's FlushStateToDisk before UnlinkPrunedFiles: the UTXO set first, so a
        # restart after a crash never has to roll forward through blocks deleted here.
        chain.flush()
        doomed = set(files)
        changed = []
        for e in chain.index.load_all():
            if e.file in doomed and e.have_data:
                e.status &= ~(HAVE_DATA | HAVE_UNDO)
                e.file, e.data_pos, e.undo_pos = -1, 0, 0
                chain._recent.pop(e.hash, None)
                changed.append(e)
        chain.index_db.put_many(changed, sync=True)  # the index first: then the files go
        chain.index_db.drop_files(doomed, sync=True)
        for n in sorted(doomed):
            chain.files.remove(n)
            log.info("Prune: UnlinkPrunedFiles deleted blk/rev (%05d)", n)

    def prune_to(self, height: int) -> int:
        """Delete the files whose blocks are all at or below `height` (capped to keep the
        last MIN_BLOCKS_TO_KEEP). Returns the height of the last block pruned (Core's
        pruneblockchain result)."""
        chain = self.chain
        with chain.lock:
            last = self._locked(min(height, chain.height - MIN_BLOCKS_TO_KEEP))
            current = chain.files.current
            files = [n for n, top in self._file_reach().items() if n != current and top <= last]
            if files:
                self._prune_files(files)
                log.info("Prune (Manual): prune_height=%d removed %d blk/rev pairs", last,
                         len(files))
            return self.prune_height()

    def auto_prune(self) -> None:
        """After a block connects: delete the oldest files while the block files are over
        the target, keeping the last MIN_BLOCKS_TO_KEEP blocks."""
        chain = self.chain
        if chain.in_ibd() and chain.height < MIN_BLOCKS_TO_KEEP:
            return
        with chain.lock:
            sizes = chain.files.sizes()
            total = sum(sizes.values())
            if total <= self.target:
                return
            last = self._locked(chain.height - MIN_BLOCKS_TO_KEEP)
            reach = self._file_reach()
            doomed = []
            for n in sorted(sizes):
                if total <= self.target:
                    break
                if n == chain.files.current or reach.get(n, -1) > last:
                    continue
                doomed.append(n)
                total -= sizes[n]
            if doomed:
                self._prune_files(doomed)

    def _locked(self, last: int) -> int:
        """`last` lowered below every prune lock, less Core's PRUNE_LOCK_BUFFER of 10."""
        for lock in self.locks:
            h = lock()
            if h is not None:
                last = min(last, h - PRUNE_LOCK_BUFFER - 1)
        return last

    def prune_height(self) -> int:
        """The height of the highest block of the active chain whose data is gone (below
        the first block from which every block's data is stored); -1 when none is."""
        chain = self.chain
        e = chain.tip
        while e is not None and e.prev is not None and e.prev.have_data:
            e = e.prev
        if e is None or (e.prev is None and e.have_data):
            return -1
        return e.height - 1
