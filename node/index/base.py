"""What every optional index shares (Core's BaseIndex): its LevelDB, its best block, and a
thread of its own that follows the active chain.

The thread is the only writer. It indexes the block after its best one while that block is in
the active chain, and when its best block has left the active chain (a reorg, an
invalidateblock) it rewinds to the fork first, so that the index is right whatever happened
while it was behind, stopped or catching up; chain events only wake it. Each block is written
in one atomic batch with the new best block, so a crash leaves a consistent index that resumes
where it was. RPC methods that read an index call `block_until_synced` first, as Core does, so
a block connected just before the call is in it.

On disk, every index has b"B" -> Core's CBlockLocator serialization (a version u32, then the
block hashes, best first): only the best block's hash is written with each block, the full
locator when the index commits (caught up, every 30 seconds while syncing, at shutdown).
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import plyvel

from consensus.serialize import Reader, compact_size
from node.confparse import ConfigError

log = logging.getLogger("index")
prune_log = logging.getLogger("prune")

BEST_BLOCK_KEY = b"B"
COMMIT_INTERVAL = 30.0  # seconds between locator writes while syncing (Core's)
SYNC_LOG_INTERVAL = 30.0
QUEUE_LIMIT = 256  # connected blocks queued for a caught-up thread; past that it follows the
# active chain from disk


class IndexInitError(ConfigError):
    """The index cannot start (its database is damaged, its best block is unknown): the text
    is Core's start-up error, shown as "Error: <text>"."""

    def __init__(self, msg: str, starting: bool = False) -> None:
        # An index that fails to start is, for Core, also a fatal error after start-up.
        tail = (f"{os.linesep}Error: A fatal internal error occurred, see debug.log for "
                f"details: Failed to start indexes, shutting down..") if starting else ""
        super().__init__(f"Error: {msg}{tail}")


def open_leveldb(path: Path, wipe: bool = False, **options) -> plyvel.DB:
    """Open (or make) a LevelDB as Core's CDBWrapper does, with its log lines; a damaged
    database raises IndexInitError with Core's message."""
    if wipe:
        log.info("Wiping LevelDB in %s", path)
        try:
            plyvel.destroy_db(str(path))
        except plyvel.Error:
            pass
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    log.info("Opening LevelDB in %s", path)
    try:
        db = plyvel.DB(str(path), create_if_missing=True, paranoid_checks=True, **options)
    except plyvel.Error as err:
        raise IndexInitError(leveldb_error(err)) from None
    log.info("Opened LevelDB successfully")
    return db


def leveldb_error(err: Exception) -> str:
    msg = err.args[0] if err.args else str(err)
    if isinstance(msg, bytes):
        msg = msg.decode(errors="replace")
    return f"Fatal LevelDB error: {msg}"


def encode_locator(hashes: list[bytes]) -> bytes:
    return (0).to_bytes(4, "little") + compact_size(len(hashes)) + b"".join(hashes)


def decode_locator(raw: bytes) -> list[bytes]:
    if len(raw) == 32:  # an older format: the best block's hash alone
        return [raw]
    r = Reader(raw)
    r.u32()
    return [r.hash256() for _ in range(r.compact_size())]


def chain_locator(entry) -> list[bytes]:
    """Core's CChain::GetLocator: the last 10 blocks, then exponentially fewer, then genesis."""
    out = []
    step = 1
    e = entry
    while e is not None:
        out.append(e.hash)
        if e.height == 0:
            break
        h = max(e.height - step, 0)
        if len(out) > 10:
            step *= 2
        e = e.ancestor(h)
    return out


class BaseIndex:
    """Subclasses set `name` (Core's GetName, shown by getindexinfo), `thread_name` (the
    "<thread_name> thread start" log line) and write `append` (and, if rewinding needs more
    than moving the best block, `rewind`)."""

    name = "index"
    thread_name = "idx"
    needs_undo = False  # whether append() wants the block's undo data

    def __init__(self, path: Path, chain, wipe: bool = False) -> None:
        self.path = Path(path)
        self.chain = chain
        self.db = open_leveldb(self.path, wipe)
        try:
            raw = self.db.get(BEST_BLOCK_KEY, verify_checksums=True)
            self._locator = decode_locator(raw) if raw is not None else []
            self.init_db()
        except plyvel.Error as err:
            self.db.close()
            raise IndexInitError(leveldb_error(err)) from None
        except Exception:
            self.db.close()
            raise
        self.best = None  # BlockIndexEntry of the last block indexed
        self.lock_height: int | None = None  # Core's prune lock (height_first): see prune.py
        self.synced = False  # caught up once (Core's m_synced): then RPCs wait for it
        self._cond = threading.Condition()
        self._wake = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._queue: collections.deque = collections.deque()  # (block, entry) connected
        self._started = False
        self._last_commit = 0.0

    # -- to override -------------------------------------------------------------------------

    def init_db(self) -> None:
        """Read what the index needs at start (called with the database open)."""

    def append(self, batch, block, entry, undo) -> None:
        """Index `block` (at `entry`, whose parent is the current best block) into batch."""
        raise NotImplementedError

    def rewind(self, batch, entry) -> None:
        """`entry`, the current best block, leaves the index (its parent becomes best)."""

    def commit_extra(self, batch) -> None:
        """Anything to write along with the full locator."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Find the best block (the chain's index must be loaded) and start the thread."""
        chain = self.chain
        if self._locator:
            e = chain.get(self._locator[0])
            if e is None:
                raise IndexInitError(f"{self.name}: best block of the index not found. "
                                     f"Please rebuild the index.", starting=True)
            self.best = e
            self.lock_height = e.height
        self._check_block_data()
        self.after_start()
        self.synced = self.best is chain.tip
        chain.on_connected.append(self._on_connected)
        chain.on_disconnected.append(self._on_disconnected)
        chain.on_activated.append(self._on_event)
        self._started = True
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _check_block_data(self) -> None:
        """As Core's: an index behind the chain needs every block after its best one (after
        the fork, if its best block left the chain) still stored; a pruned node may not have
        them."""
        chain = self.chain
        tip = chain.tip
        if tip is None or self.best is tip:
            return
        stop = chain.find_fork(self.best) if self.best is not None else None
        e = tip
        while e is not None and e is not stop:
            if not e.have_data:
                raise IndexInitError(f"{self.name} best block of the index goes beyond pruned "
                                     f"data. Please disable the index or reindex (which will "
                                     f"download the whole blockchain again)", starting=True)
            e = e.prev

    def stored_best(self) -> bytes | None:
        """The hash of the best block the database holds (before start())."""
        return self._locator[0] if self._locator else None

    def after_start(self) -> None:
        """Called once the best block is known, before the thread starts."""

    def close(self) -> None:
        if self._started:
            for lst in (self.chain.on_connected, self.chain.on_disconnected,
                        self.chain.on_activated):
                for fn in list(lst):
                    if getattr(fn, "__self__", None) is self:
                        lst.remove(fn)
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
            self._commit()
        # (Not node.store.close_db: an index's last writes stay in its log, as Core's do,
        # where its feature_init.py damages them and expects the next start to fail.)
        self.db.close()

    # -- chain events (called under the chain lock: only wake the thread) --------------------

    def _on_connected(self, block, entry) -> None:
        # As Core's BlockConnected, once caught up: each connected block is indexed in order,
        # those a reorg soon leaves too (getblockfilter answers for stale blocks).
        if self.synced:
            if len(self._queue) < QUEUE_LIMIT:
                self._queue.append((block, entry))
            else:
                self._queue.clear()  # far behind: follow the active chain instead
        self._on_event()

    def _on_disconnected(self, block, e) -> None:
        # Core's DisconnectTip: a prune lock at or above the block moves back below it, so
        # that the index can still read the blocks it has to rewind over.
        h = e.height - 1
        if self.lock_height is not None and self.lock_height > h:
            self.lock_height = h
            prune_log.debug("%s prune lock moved back to %d", self.name, h)
        self._on_event()

    def _on_event(self, *args) -> None:
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        log.info("%s thread start", self.thread_name)
        last_log = time.monotonic()
        try:
            while True:
                with self._cond:
                    if self._stop:
                        break
                    self._wake = False
                block, step = self._next_queued()
                if step is None:
                    step = self._next_block()
                if step is None:
                    if not self.synced:
                        self.synced = True
                        self._commit()
                        if self.best is not None:
                            log.info("%s is enabled at height %d", self.name, self.best.height)
                        else:
                            log.info("%s is enabled", self.name)
                    with self._cond:
                        self._cond.notify_all()  # block_until_synced waiters
                        if not self._wake and not self._stop:
                            self._cond.wait(timeout=5.0)
                    continue
                self._index_block(step, block)
                now = time.monotonic()
                if not self.synced:
                    if now - last_log > SYNC_LOG_INTERVAL:
                        log.info("Syncing %s with block chain from height %d", self.name,
                                 step.height)
                        last_log = now
                    if now - self._last_commit > COMMIT_INTERVAL:
                        self._commit()
                with self._cond:
                    self._cond.notify_all()
        except Exception:
            log.exception("%s: indexing failed; the index stops here", self.name)
        finally:
            log.info("%s thread exit", self.thread_name)

    def _next_queued(self):
        """(block, entry) of the next connected block to index from the queue, after rewinding
        to its parent; (None, None) when the queue holds nothing to do."""
        while True:
            try:
                block, e = self._queue.popleft()
            except IndexError:
                return None, None
            best = self.best
            if best is None:
                if e.prev is None:
                    return block, e
                continue
            if best.height >= e.height and best.ancestor(e.height) is e:
                continue  # indexed already
            if e.prev is None or best.height < e.height - 1:
                continue  # not on our chain (the thread follows the active chain after)
            if best.ancestor(e.height - 1) is not e.prev:
                log.info("%s: WARNING: Block %s does not connect to an ancestor of known best "
                         "chain (tip=%s); not updating index", self.name, e.hash_hex(),
                         best.hash_hex())
                continue
            if best is not e.prev:
                self._rewind_to(e.prev)
            return block, e

    def _next_block(self):
        """The next block to index, after rewinding off blocks that left the active chain;
        None when there is nothing to do (caught up, or the active chain is behind us on our
        own branch, as while it is being rebuilt)."""
        chain = self.chain
        while True:
            try:
                active = chain.active
                n = len(active)
                best = self.best
                if best is None:
                    return active[0] if n else None
                fork = best
                while not (fork.height < n and active[fork.height] is fork):
                    fork = fork.prev
                if fork.height + 1 >= n:
                    return None
                nxt = active[fork.height + 1]
            except (IndexError, AttributeError):
                continue  # the chain changed under us: look again
            if nxt.prev is not fork:
                continue  # a reorg went on while we looked: look again
            if fork is not best:
                self._rewind_to(fork)
            return nxt

    def _rewind_to(self, fork) -> None:
        while self.best is not fork and not self._stop:
            e = self.best
            with self.db.write_batch(transaction=True) as b:
                self.rewind(b, e)
                b.put(BEST_BLOCK_KEY, encode_locator([e.prev.hash]))
            self.best = e.prev
            self.lock_height = e.prev.height

    def _index_block(self, e, block=None) -> None:
        if block is None:
            block = self.chain.read_block(e)
        undo = None
        if self.needs_undo and e.prev is not None:
            undo = self.chain.read_undo(e)
        with self.db.write_batch(transaction=True) as b:
            self.append(b, block, e, undo)
            b.put(BEST_BLOCK_KEY, encode_locator([e.hash]))
        self.best = e
        self.lock_height = e.height

    def _commit(self) -> None:
        best = self.best
        self._last_commit = time.monotonic()
        if best is None:
            return
        try:
            with self.db.write_batch(transaction=True) as b:
                self.commit_extra(b)
                b.put(BEST_BLOCK_KEY, encode_locator(chain_locator(best)))
        except (plyvel.Error, RuntimeError) as err:  # closed under us at shutdown
            log.warning("%s: failed to commit latest state: %s", self.name, err)

    # -- readers ------------------------------------------------------------------------------

    def block_until_synced(self, timeout: float = 60.0) -> bool:
        """Core's BlockUntilSyncedToCurrentChain: False while the first sync is not done;
        otherwise wait until the index has the chain's current tip (or a descendant)."""
        if not self.synced:
            return False
        chain = self.chain
        tip = getattr(chain, "published", None) or chain.tip  # not one halfway through a reorg
        if tip is None:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                best = self.best
                if best is not None and best.height >= tip.height \
                        and best.ancestor(tip.height) is tip:
                    return True
                if self._stop or self._thread is None or not self._thread.is_alive():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(timeout=left)

    def summary(self) -> dict:
        """getindexinfo's entry."""
        best = self.best
        return {"synced": self.synced, "best_block_height": best.height if best else 0}
