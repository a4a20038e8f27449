"""Chain state: the header tree, the active (most-work) chain, connecting and disconnecting
blocks against the UTXO set, reorgs, invalidate/reconsider, crash recovery.

Plain synchronous code guarded by one re-entrant lock (Core's cs_main). The daemon calls it
from a worker thread so its asyncio loop stays responsive; script checks go to a process
pool through `self.scripts`.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from consensus.block import Block, BlockHeader
from consensus.checks import check_block, check_merkle_root, check_witness_malleation
from consensus.contextual import (
    BIP30_REPEATS,
    BIP34_IMPLIES_BIP30_LIMIT,
    LOCKTIME_VERIFY_SEQUENCE,
    MAX_FUTURE_BLOCK_TIME,
    Coin,
    block_reward_ok,
    calculate_sequence_locks,
    check_block_contextual,
    check_fees_in_range,
    check_header_contextual,
    check_sigop_cost,
    check_tx_inputs,
    evaluate_sequence_locks,
    transaction_sigop_cost,
)
from consensus.errors import ValidationError
from consensus.params import ChainParams
from consensus.pow import block_work, check_proof_of_work, next_work_required
from consensus.script import flags as sf
from consensus.script.script import is_unspendable
from consensus.serialize import DeserializationError
from consensus.tx import TxOut
from consensus.versionbits import VersionBitsCache
from node.scriptcheck import ScriptChecker
from node.store.blockfiles import MAX_BLOCKFILE_SIZE, BlockFileError, BlockFiles
from node.store.blockindex import (
    FAILED_CHILD,
    FAILED_MASK,
    FAILED_VALID,
    HAVE_DATA,
    HAVE_UNDO,
    VALID_SCRIPTS,
    VALID_TRANSACTIONS,
    BlockIndexDB,
    BlockIndexEntry,
)
from node.store.coins import CoinsCache, UTXOStats, utxo_stats
from node.store.layout import COIN_PREFIX, decode_coin, decode_undo, encode_undo, outpoint_key
from node.store.lazyindex import ActiveChain, LazyIndex

log = logging.getLogger("validation")

FLUSH_INTERVAL = 60.0  # seconds between periodic UTXO flushes while blocks connect
# ... and at most this many blocks connected between two flushes: a restart after a crash
# replays the blocks since the last flush, so its cost stays bounded however fast blocks
# come (a regtest import connects thousands of small blocks a second).
FLUSH_BLOCKS = 2000
RECENT_BLOCKS = 16  # parsed blocks kept to connect without reading them back from disk


def state_string(err: ValidationError) -> str:
    """Core's BlockValidationState::ToString: the reason, then the debug message if any."""
    return f"{err.reason}, {err.debug}" if err.debug else err.reason


class ChainError(Exception):
    """The chain state cannot continue (corrupt files or databases): needs operator action."""


class DisconnectError(BlockFileError):
    """A block cannot be disconnected cleanly (Core's DISCONNECT_UNCLEAN, which DisconnectTip
    treats as failure): the UTXO set lacks a coin the block made or holds it different, or
    already holds a coin the block's undo data would restore. The block data, its undo data
    and the UTXO set disagree, so applying the disconnect would corrupt the UTXO set.
    (A BlockFileError: callers treat it as damaged stored data, nothing changed.)"""


class ReorgRefused(BlockFileError):
    """activate_best_chain could not move to a better chain: disconnecting the active chain's
    blocks needs data that is damaged (the error's text says which). Nothing moved; the node
    stays on its chain and can extend it."""


def block_script_flags(entry: BlockIndexEntry, params: ChainParams) -> int:
    """Core's GetBlockScriptFlags: P2SH, WITNESS and TAPROOT always (but for the two
    exception blocks), the others from their buried activation heights."""
    return script_flags_at(entry.height, entry.hash, params)


def script_flags_at(h: int, block_hash: bytes | None, params: ChainParams) -> int:
    """The script flags of a block at height h (its hash, if known, for the exceptions)."""
    exc = params.script_flag_exceptions.get(block_hash) if block_hash else None
    flags = sf.P2SH | sf.WITNESS | sf.TAPROOT if exc is None else sf.parse_flags(",".join(exc))
    if h >= params.bip66_height:
        flags |= sf.DERSIG
    if h >= params.bip65_height:
        flags |= sf.CHECKLOCKTIMEVERIFY
    if h >= params.csv_height:
        flags |= sf.CHECKSEQUENCEVERIFY
    if h >= params.segwit_height:
        flags |= sf.NULLDUMMY
    return flags


DEFAULT_MAX_TIP_AGE = 24 * 60 * 60


class ChainState:
    """Blocks in, a correct UTXO set and best chain out."""

    def __init__(
        self,
        datadir: Path,
        params: ChainParams,
        dbcache_mb: int = 450,
        scripts: ScriptChecker | None = None,
        now: Callable[[], float] = time.time,
        blocks_dir: Path | None = None,
        blocks_xor: bool = True,
        max_file_size: int = MAX_BLOCKFILE_SIZE,
    ) -> None:
        self.params = params
        self.datadir = Path(datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.now = now
        # Initial block download (Core's IsInitialBlockDownload): left once the tip has at
        # least -minimumchainwork and is younger than -maxtipage, never entered again.
        self.versionbits = VersionBitsCache()  # BIP9 deployment states (getdeploymentinfo, mining)
        self.max_tip_age = DEFAULT_MAX_TIP_AGE
        # -stopatheight: on_stop_height is called once the tip reaches it (0: never).
        self.stop_at_height = 0
        self.on_stop_height: Callable[[], None] | None = None
        self.minimum_chain_work = 0
        self._ibd_done = False
        self.scripts = scripts if scripts is not None else ScriptChecker()
        # blk/rev files: <datadir>/blocks, or -blocksdir's; the index stays in the datadir.
        self.files = BlockFiles(blocks_dir or self.datadir / "blocks", params.message_start,
                                blocks_xor, max_file_size)
        (self.datadir / "blocks").mkdir(exist_ok=True)
        self.index_db = BlockIndexDB(self.datadir / "blocks" / "index")
        self.coins = CoinsCache(self.datadir / "chainstate", dbcache_mb * 1024 * 1024)

        # The index and the active chain read their entries from the database as they are
        # used (node/store/lazyindex.py). children: parent hash -> its loaded children.
        self.children: dict[bytes, list[BlockIndexEntry]] = {}
        self.index = LazyIndex(self.index_db, self.children)
        self.active = ActiveChain(self.index, self.index_db)
        self.candidates: set[BlockIndexEntry] = set()
        self.best_header: BlockIndexEntry | None = None
        self._seq = 1
        # preciousblock (Core's m_block_reverse_sequence_id): precious blocks get sequence
        # ids below every received block's, the latest call lowest; reset once the chain
        # has grown past the work it was last used at. Not kept across restarts, as Core's.
        self._precious_seq = 0
        self._precious_work = 0
        self._recent: OrderedDict[bytes, Block] = OrderedDict()
        self._last_flush = time.monotonic()
        self._unflushed_blocks = 0  # blocks connected since the last flush
        self.published: BlockIndexEntry | None = None  # see _publish_tip
        # Why recently connected blocks failed (for submitblock and tests), newest last.
        self.invalid_errors: OrderedDict[bytes, ValidationError] = OrderedDict()
        # Listeners: called with (block, entry) under the lock, in chain order.
        self.on_connected: list[Callable[[Block, BlockIndexEntry], None]] = []
        self.on_disconnected: list[Callable[[Block, BlockIndexEntry], None]] = []
        # Called (under the lock) after each step of activate_best_chain: a reorg is complete.
        self.on_activated: list[Callable[[], None]] = []

    # =========================================================================================
    # start-up and shutdown
    # =========================================================================================

    def in_ibd(self) -> bool:
        if self._ibd_done:
            return False
        tip = self.tip
        if tip is None or tip.chain_work < self.minimum_chain_work \
                or tip.time < self.now() - self.max_tip_age:
            return True
        self._ibd_done = True
        return False

    def load(self, forget_missing: bool = False) -> None:
        """Put the UTXO set's best block at the tip, read the entries off the active chain,
        then roll forward (or reorganise) to the best chain whose blocks are stored: crash
        recovery is just this. The rest of the index is read as it is used, so start-up
        does not grow with the chain (lazyindex.py). `forget_missing`
        (-reindex-chainstate): blocks in missing blk files become headers."""
        with self.lock:
            self.reset_memory()
            log.info("Loading block index...")
            upgrade = self.index_db.needs_upgrade
            if upgrade:
                log.info("Upgrading the block index: chain work into its records")
                self._load_every_entry()
            log.info("Checking all blk files are present...")  # (the daemon checks them)
            if self.params.genesis_hash not in self.index:
                self._store_genesis()
            if forget_missing:
                self.forget_missing_files()
            best = self.coins.best_block()
            tip = None
            if best is not None:
                tip = self.index.get(best)
                if tip is None:
                    raise ChainError("the UTXO set's best block is not in the block index; "
                                     "restart with -reindex")
            self.active.set_tip(tip)
            if upgrade:
                entries = self.index.loaded()
                self.index_db.write_upgrade(
                    entries, [e for e in entries if not self.children.get(e.hash)])
            self._load_off_chain()
            # A block marked invalid whose disconnect never reached the UTXO set (a kill after
            # invalidateblock): finish it now, so the tip is on a valid chain.
            unwound = False
            while self.tip is not None and self.tip.failed and self.tip.prev is not None:
                self._disconnect_tip()
                unwound = True
            if unwound:
                log.info("disconnected invalid blocks down to height %d", self.height)
                self.flush()
            self._check_future_tip()
            self._check_recent_blocks()
            self._rebuild_candidates()
            self._publish_tip()
            log.info("read %d block index entries, UTXO set at height %d",
                     len(self.index.loaded()), self.height)
        self.activate_best_chain()

    def _load_every_entry(self) -> None:
        collecting = gc.isenabled()
        gc.disable()  # (the load makes no cycles; collections would rescan the entries)
        try:
            self.index.load_all()
        finally:
            if collecting:
                gc.enable()

    def _load_off_chain(self) -> None:
        """Read every entry off the active chain (fork choice, the best header and
        getchaintips need them), walking from each stored leaf down to the active chain,
        and set their skip pointers, parents first."""
        for leaf in self.index_db.leaves():
            e = self.index.get(leaf)
            path = []
            while e is not None and not self.active.holds(e):
                path.append(e)
                e = e.prev
            for x in reversed(path):
                x.skip  # noqa: B018  (found now, from a parent that has its own)
        best = self.tip if self.tip is not None and not self.tip.failed else None
        for e in self.index.loaded():
            if not e.failed and (best is None or e.chain_work > best.chain_work):
                best = e
        self.best_header = best

    def _check_future_tip(self) -> None:
        """Core's VerifyLoadedChainstate: a tip more than MAX_FUTURE_BLOCK_TIME ahead of the
        clock means the clock (or the database) is wrong; refuse to start."""
        tip = self.tip
        if tip is not None and tip.time > self.now() + MAX_FUTURE_BLOCK_TIME:
            from node.confparse import ConfigError

            raise ConfigError(
                "The block database contains a block which appears to be from the future. "
                "This may be due to your computer's date and time being set incorrectly. "
                "Only rebuild the block database if you are sure that your computer's date "
                f"and time are correct.{os.linesep}Please restart with -reindex or "
                "-reindex-chainstate to recover.")

    def reset_memory(self) -> None:
        """Forget the in-memory index and chain (before loading or reindexing)."""
        self.index.clear()
        self.children.clear()
        self.active.clear()
        self.candidates = set()
        self.best_header = None
        self._recent.clear()

    def _link(self, e: BlockIndexEntry) -> None:
        e.chain_work = (e.prev.chain_work if e.prev else 0) + block_work(e.bits)
        self.index.add(e)
        if e.prev is not None:
            self.children.setdefault(e.prev.hash, []).append(e)
        if self.best_header is None or (
            e.chain_work > self.best_header.chain_work and not e.failed
        ):
            self.best_header = e

    def _store_genesis(self, pos: tuple[int, int] | None = None) -> None:
        g = self.params.genesis
        e = BlockIndexEntry(g.header, None)
        self._link(e)
        self._store_block_data(e, g, pos, new=True)

    def store_genesis(self) -> None:
        with self.lock:
            self._store_genesis()

    def index_block_at(self, block: Block, pos: tuple[int, int]) -> BlockIndexEntry:
        """Index a block already stored at `pos` (file, offset) without connecting it:
        the reindex path."""
        check_block(block, self.params)
        with self.lock:
            if block.hash == self.params.genesis_hash:
                self._store_genesis(pos)
                return self.index[block.hash]
            return self._accept_block(block, pos)

    def _check_recent_blocks(self, depth: int = 6) -> None:
        """Read back the last blocks of the active chain, so a damaged block file is
        reported at start-up with its name rather than later."""
        for e in self.active[-depth:]:
            self.read_block(e)

    def _rebuild_candidates(self) -> None:
        tip_work = self.tip.chain_work if self.tip else -1
        self.candidates = {  # (entries with the tip's work or more are all loaded)
            e for e in self.index.loaded()
            if e.chain_work >= tip_work and e.chain_tx and not e.status & FAILED_MASK
        }

    def flush(self, evict: bool = False) -> None:
        """Make everything durable: block files, index, then the UTXO set with its best
        block, in that order, so the UTXO set never refers to data that is not on disk."""
        with self.lock:
            self.files.sync()
            self.active.write_map()
            self.index_db.sync()
            if self.tip is not None:
                n = self.coins.flush(self.tip.hash, evict)
                log.debug("flushed %d coins at height %d", n, self.height)
            self._last_flush = time.monotonic()
            self._unflushed_blocks = 0

    def _maybe_flush(self) -> None:
        if self.coins.needs_flush():
            self.flush(evict=True)
        elif time.monotonic() - self._last_flush > FLUSH_INTERVAL \
                or self._unflushed_blocks >= FLUSH_BLOCKS:
            self.flush(evict=False)

    def close(self) -> None:
        with self.lock:
            self.flush()
            self.coins.close()
            self.index_db.close()
            self.files.close()
            self.scripts.close()

    # =========================================================================================
    # queries
    # =========================================================================================

    def _publish_tip(self) -> None:
        """Expose the tip to lock-free readers (getblockcount and friends) only between
        activation steps, never halfway through a reorg."""
        self.published = self.tip

    @property
    def tip(self) -> BlockIndexEntry | None:
        return self.active.tip

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def in_active_chain(self, e: BlockIndexEntry) -> bool:
        return self.active.holds(e)

    def get(self, block_hash: bytes) -> BlockIndexEntry | None:
        return self.index.get(block_hash)

    def find_fork(self, e: BlockIndexEntry) -> BlockIndexEntry:
        """The last block of the active chain that is an ancestor of e (or e itself)."""
        if e.height >= len(self.active):
            e = e.ancestor(len(self.active) - 1)
        while not self.in_active_chain(e):
            e = e.prev  # type: ignore[assignment]
        return e

    def read_undo(self, e: BlockIndexEntry) -> list[list[Coin]]:
        """The coins block e spent (from its undo data). Raises BlockFileError or
        DeserializationError."""
        assert e.prev is not None
        return decode_undo(self.files.read_undo(e.file, e.undo_pos, e.prev.hash))

    def read_block(self, e: BlockIndexEntry) -> Block:
        cached = self._recent.get(e.hash)
        if cached is not None:
            return cached
        if not e.have_data:
            raise BlockFileError(f"block {e.hash_hex()} is not stored (headers only)")
        raw = self.files.read_block(e.file, e.data_pos)
        path = self.files.block_path(e.file)
        try:
            block = Block.from_bytes(raw)
        except DeserializationError as err:
            raise BlockFileError(f"corrupt {path}: block at offset {e.data_pos}: {err}") from None
        if block.hash != e.hash:
            raise BlockFileError(
                f"corrupt {path}: block at offset {e.data_pos} has hash {block.hash_hex()}, "
                f"index expects {e.hash_hex()}"
            )
        return block

    def read_raw_block(self, e: BlockIndexEntry) -> bytes:
        return self.files.read_block(e.file, e.data_pos)

    def read_block_part(self, e: BlockIndexEntry, offset: int, size: int) -> bytes:
        """`size` bytes of block e's stored serialization from `offset` (a transaction at
        the place an index recorded). Raises BlockFileError."""
        if not e.have_data:
            raise BlockFileError(f"block {e.hash_hex()} is not stored (headers only)")
        return self.files.read_part(e.file, e.data_pos + offset, size)

    def get_coin(self, txid: bytes, n: int) -> Coin | None:
        with self.lock:
            return self.coins.get(outpoint_key(txid, n))

    def unspent_output_height(self, txid: bytes) -> int | None:
        """The height of the block that created any still unspent output of txid (Core's
        AccessByTxid), or None."""
        with self.lock:
            self.flush()  # the scan reads the database: make it hold the cache's changes
            for _key, raw in self.coins.db.iterator(prefix=COIN_PREFIX + txid):
                return decode_coin(raw).height
        return None

    def utxo_stats(self) -> tuple[bytes, int, int]:
        """(hash_serialized_3, number of coins, total amount) at the current tip."""
        st, _ = self.utxo_stats_full()
        return st.digest, st.count, st.total

    def utxo_stats_full(self, muhash: bool = False) -> tuple[UTXOStats, BlockIndexEntry]:
        """The UTXO set's statistics and the block they are for. Only the flush and taking a
        snapshot hold the lock; the scan itself (minutes on a large set) does not."""
        with self.lock:
            self.flush()
            snapshot = self.coins.snapshot()
            tip = self.tip
        try:
            return utxo_stats(self.coins, muhash, snapshot), tip
        finally:
            snapshot.close()

    def verify(self, level: int, nblocks: int) -> bool:
        return self.verify_problem(level, nblocks) is None

    def verify_problem(self, level: int, nblocks: int) -> str | None:
        """Core's VerifyDB, read-only: re-read the last `nblocks` blocks of the active chain
        (0 = all); level >= 1 re-checks them, >= 2 reads their undo data, >= 3 checks that
        the undo data matches the blocks' inputs. None, or what is wrong."""
        with self.lock:
            entries = self.active[1:] if nblocks <= 0 else self.active[-nblocks:]
            entries = [e for e in entries if e.prev is not None]
            try:
                for e in reversed(entries):
                    block = self.read_block(e)
                    if level >= 1:
                        check_block(block, self.params)
                    if level >= 2:
                        spent = self.read_undo(e)
                        if level >= 3:
                            if len(spent) != len(block.txs) - 1 or any(
                                len(s) != len(tx.vin) for s, tx in zip(spent, block.txs[1:])
                            ):
                                log.error("verifychain: undo data of %s does not match",
                                          e.hash_hex())
                                return f"undo data of block {e.hash_hex()} does not match it"
            except BlockFileError as err:
                log.error("verifychain: %s", err)
                return f"block at height {e.height}: {err}"
            except (ValidationError, DeserializationError) as err:
                where = f"{self.files.block_path(e.file)} at offset {e.data_pos}"
                log.error("verifychain: block at height %d in %s: %s", e.height, where, err)
                return f"block at height {e.height} in {where}: {err}"
            return None

    # =========================================================================================
    # headers and blocks in
    # =========================================================================================

    def accept_header(self, header: BlockHeader) -> BlockIndexEntry:
        """Add a header to the tree after its proof of work and contextual checks."""
        with self.lock:
            h = header.hash
            prev = self.index.get(header.prev_hash)
            # Only the active chain's entries are stored without being in memory
            # (lazyindex.py): above it, and without a parent, memory has the answer.
            if prev is None or prev.height + 1 >= len(self.active):
                e = self.index.get_loaded(h)
            else:
                e = self.index.get(h)
            if e is not None:
                if e.failed:
                    raise ValidationError("duplicate", 0, "block is marked invalid")
                return e
            if not check_proof_of_work(h, header.bits, self.params):
                raise ValidationError("high-hash", 50, "proof of work failed")
            if prev is None:
                raise ValidationError("prev-blk-not-found", 0, "previous block not found")
            if prev.failed:
                raise ValidationError("bad-prevblk", 100, "previous block invalid")
            try:
                check_header_contextual(
                    header,
                    prev.height + 1,
                    next_work_required(prev, header.time, self.params),
                    prev.median_time_past(),
                    int(self.now()),
                    self.params,
                )
            except ValidationError as err:
                log.debug("AcceptBlockHeader: Consensus::ContextualCheckBlockHeader: %s, %s",
                          header.hash_hex(), state_string(err))
                raise
            e = BlockIndexEntry(header, prev)
            self._link(e)
            self.index_db.put(e, leaf=True)
            return e

    def process_block(self, block: Block, raw: bytes | None = None,
                      checked: bool = False) -> BlockIndexEntry:
        """Check, store and (if it makes the best chain) connect a block. Raises
        ValidationError for an invalid block; the node stays on its best valid chain.
        `raw`, the block's serialization if the caller has it, saves re-serializing it.
        checked: check_block has passed on this (unchanged) block object already (Core's
        CBlock::fChecked)."""
        if not checked:
            check_block(block, self.params)
        with self.lock:
            e = self._accept_block(block, raw=raw)
        try:
            self.activate_best_chain()
        except ReorgRefused:
            # A better chain that the node cannot reorganise to (damaged data of its own
            # chain, logged): the block is stored, the chain stays where it was.
            pass
        if e.status & FAILED_VALID:
            err = self.invalid_errors.get(e.hash)
            if err is not None:
                raise err
        return e

    def _accept_block(self, block: Block, pos: tuple[int, int] | None = None,
                      raw: bytes | None = None) -> BlockIndexEntry:
        e = self.accept_header(block.header)
        if e.have_data:
            return e
        try:
            check_block_contextual(block, e.height, e.prev.median_time_past(), self.params)  # type: ignore[union-attr]
        except ValidationError as err:
            if not err.mutated:
                self._mark_invalid(e)
            raise
        self._store_block_data(e, block, pos, raw)
        return e

    def _store_block_data(self, e: BlockIndexEntry, block: Block,
                          pos: tuple[int, int] | None = None, raw: bytes | None = None,
                          new: bool = False) -> None:
        """new: e is not stored yet (the genesis block), so it is written as a leaf."""
        if pos is None:
            pos = self.files.write_block(raw if raw is not None else block.serialize())
        e.file, e.data_pos = pos
        e.n_tx = len(block.txs)
        e.status |= HAVE_DATA
        e.raise_validity(VALID_TRANSACTIONS)
        e.seq_id = self._seq
        self._seq += 1
        self._recent[e.hash] = block
        if len(self._recent) > RECENT_BLOCKS:
            self.scripts.drop_later(self._recent.popitem(last=False))
        changed = self._link_data(e) if e.prev is None or e.prev.chain_tx else [e]
        if new or len(changed) == 1:
            self.index_db.put(e, leaf=new)
        else:  # (one batch: the records' transaction counts agree after a crash)
            self.index_db.put_many(changed)

    def _link_data(self, e: BlockIndexEntry) -> list[BlockIndexEntry]:
        """e and its stored descendants now have complete ancestry: they can be connected.
        Returns them (their transaction counts changed)."""
        todo = [e]
        changed = []
        tip_work = self.tip.chain_work if self.tip else -1
        while todo:
            x = todo.pop()
            x.chain_tx = (x.prev.chain_tx if x.prev else 0) + x.n_tx
            changed.append(x)
            if not x.failed and x.chain_work >= tip_work:
                self.candidates.add(x)
            todo.extend(c for c in self.children.get(x.hash, ()) if c.have_data)
        return changed

    def test_block_validity(self, block: Block, check_pow: bool = False) -> None:
        """Core's TestBlockValidity: would this block, on the current tip, be valid? Checks
        everything (scripts included) without storing or connecting anything; raises
        ValidationError."""
        check_block(block, self.params, check_pow=check_pow)
        with self.lock:
            tip = self.tip
            if block.header.prev_hash != tip.hash:
                raise ValidationError("inconclusive-not-best-prevblk", 0)
            height = tip.height + 1
            check_header_contextual(
                block.header, height, next_work_required(tip, block.header.time, self.params),
                tip.median_time_past(), int(self.now()), self.params,
            )
            check_block_contextual(block, height, tip.median_time_past(), self.params)
            probe = BlockIndexEntry(block.header, tip)
            self._connect_block(block, probe, just_check=True)

    # =========================================================================================
    # best chain
    # =========================================================================================

    def _best_candidate(self) -> BlockIndexEntry | None:
        best = None
        for c in self.candidates:
            if best is None or (c.chain_work, -c.seq_id) > (best.chain_work, -best.seq_id):
                best = c
        return best

    def activate_best_chain(self) -> None:
        """Move the tip to the most-work valid chain, one reorg at a time. A chain that
        cannot be reached because disconnecting the active chain's blocks would need damaged
        data is given up (nothing moved; see _step_towards) and the next best one tried; the
        first such error is raised at the end, as ReorgRefused."""
        refused: BlockFileError | None = None
        while True:
            with self.lock:
                best = self._best_candidate()
                tip = self.tip
                if best is None or best is tip:
                    break
                if tip is not None and (best.chain_work, -best.seq_id) <= (
                    tip.chain_work, -tip.seq_id
                ):
                    break
                err = self._step_towards(best)
                if err is not None:
                    refused = refused or err
                    continue
                tip_work = self.tip.chain_work if self.tip is not None else -1
                self.candidates = {c for c in self.candidates if c.chain_work >= tip_work}
                self._publish_tip()
                for fn in self.on_activated:
                    fn()
                if self.stop_at_height and self.tip.height >= self.stop_at_height \
                        and self.on_stop_height is not None:
                    self.on_stop_height()  # Core's -stopatheight: shut down from here
        if refused is not None:
            raise ReorgRefused(str(refused)) from refused

    def _step_towards(self, target: BlockIndexEntry) -> BlockFileError | None:
        """Reorganise to `target` (or as far towards it as its blocks connect). Returns the
        error if the disconnect it needs cannot be done cleanly (damaged block or undo data,
        or a UTXO set that does not match them): then nothing has moved, and every
        candidate whose reorg would disconnect at least as deep is no longer a candidate
        (until more of its blocks arrive), so the node stays on, and extends, its chain."""
        fork = self.find_fork(target) if self.active else None
        if fork is not None and fork is not self.tip:
            try:
                plan = self._check_can_disconnect(fork.height)  # whole or not at all
            except BlockFileError as err:
                log.error("cannot reorganise to block %s at height %d (fork at height %d): "
                          "%s", target.hash_hex(), target.height, fork.height, err)
                self.candidates = {c for c in self.candidates
                                   if c is not target and self.find_fork(c).height > fork.height}
                return err
            for planned in plan:
                self._disconnect_tip(planned)
            assert self.tip is fork
        path = []
        e: BlockIndexEntry | None = target
        while e is not None and e is not fork:
            path.append(e)
            e = e.prev
        for e in reversed(path):
            try:
                self._connect_tip(e)
            except BlockFileError as err:
                # Its stored copy is damaged or gone (nothing has changed yet): forget the
                # data, as if never received, so it is downloaded again; the chain stays at
                # the best block it can connect.
                log.error("block %s at height %d cannot be read back, its data is dropped "
                          "(to be downloaded again): %s", e.hash_hex(), e.height, err)
                self._forget_data(e)
                return None
            except ValidationError as err:
                log.info("Block validation error: %s", state_string(err))  # Core's ConnectBlock
                log.warning("block %s at height %d is invalid: %s", e.hash_hex(), e.height, err)
                self.invalid_errors[e.hash] = err
                if len(self.invalid_errors) > 100:
                    self.invalid_errors.popitem(last=False)
                self._mark_invalid(e)
                return None  # the caller's loop picks the best remaining chain
            if len(path) > 1:
                # A long step (a restart rolling forward, a deep reorg or reconsider) flushes
                # on its way too: every block connected here is a consistent state.
                self._maybe_flush()
        self._maybe_flush()
        return None

    def _connect_tip(self, e: BlockIndexEntry) -> None:
        if e.prev is None and e.hash == self.params.genesis_hash:
            block = self.params.genesis  # (known: even with its file pruned or lost)
        else:
            block = self._read_stored(e)
        changes, undo, fresh_ok = self._connect_block(block, e)
        if e.prev is not None:
            e.undo_pos = self.files.write_undo(e.file, undo, e.prev.hash)
            e.status |= HAVE_UNDO
        e.raise_validity(VALID_SCRIPTS)
        self.index_db.put(e)
        self.coins.apply(changes, fresh_ok)
        self.active.append(e)
        self._unflushed_blocks += 1
        self.candidates.discard(e)  # the rest is pruned once per activation step
        for fn in self.on_connected:
            fn(block, e)

    def _check_stored(self, block: Block, e: BlockIndexEntry) -> None:
        """A block read back from disk is the block that was accepted: its transactions match
        the header's merkle root and its witnesses the coinbase's commitment (what the
        header commits to). If not, the file is damaged (BlockFileError), which must not
        brand the block itself invalid (Core: 'Corrupt block found indicating potential
        hardware failure')."""
        try:
            check_merkle_root(block)
            check_witness_malleation(block, e.height >= self.params.segwit_height)
        except ValidationError as err:
            raise BlockFileError(
                f"corrupt {self.files.block_path(e.file)}: block {e.hash_hex()} at offset "
                f"{e.data_pos} does not match its header ({state_string(err)})") from None

    def _forget_data(self, e: BlockIndexEntry) -> None:
        """Drop a block's stored data (unreadable): it becomes a header only, and neither it
        nor its descendants can be connected until it is received again."""
        e.status &= ~(HAVE_DATA | HAVE_UNDO)
        e.file, e.data_pos, e.undo_pos, e.n_tx = -1, 0, 0, 0
        self._recent.pop(e.hash, None)
        todo = [e]
        changed = []
        while todo:
            x = todo.pop()
            if x.chain_tx or x is e:
                x.chain_tx = 0
                changed.append(x)
            self.candidates.discard(x)
            todo.extend(self.children.get(x.hash, ()))
        self.index_db.put_many(changed)

    def forget_missing_files(self) -> int:
        """Forget the data of every block whose blk file is gone (-reindex-chainstate: those
        blocks are downloaded again). The genesis block is written again. Returns how many."""
        with self.lock:
            self._load_every_entry()  # (any block may be in a missing file)
            gone = [e for e in self.index.loaded()
                    if e.have_data and e.file >= 0 and e.file not in self.files.found]
            for e in sorted(gone, key=lambda x: x.height):
                log.warning("block %s at height %d: %s is missing, its data is dropped",
                            e.hash_hex(), e.height, self.files.block_path(e.file).name)
                self._forget_data(e)
            g = self.index.get(self.params.genesis_hash)
            if g is not None and not g.have_data:
                self._store_block_data(g, self.params.genesis)
            self.index_db.drop_files(self.index_db.block_files - self.files.found)
            return len(gone)

    def _connect_block(
        self, block: Block, e: BlockIndexEntry, just_check: bool = False
    ) -> tuple[dict[bytes, Coin | None], bytes, bool]:
        """Core's ConnectBlock without side effects: returns the coin changes, the undo
        record (the coins spent per transaction, encoded) and whether new coins may be marked
        fresh. just_check (Core's fJustCheck, for TestBlockValidity): no undo record, and
        the transactions whose scripts pass go into the script execution cache.

        Work that does not feed the script checks (the BIP30 lookups, encoding the undo
        record) is done after the last check is handed out, while the workers check, not
        before the first; a block with several errors still reports the one Core reports."""
        params = self.params
        if e.prev is None:  # genesis: its coinbase is not spendable
            return {}, b"", True
        height = e.height
        prev = e.prev
        changes: dict[bytes, Coin | None] = {}
        created: set[bytes] = set()
        cache_get = self.coins.get

        def get(key: bytes) -> Coin | None:
            if key in changes:
                return changes[key]
            return cache_get(key)

        enforce_bip30 = BIP30_REPEATS.get(height) != e.hash
        if enforce_bip30 and params.bip34_hash is not None and prev.height >= params.bip34_height:
            enforce_bip30 = prev.ancestor(params.bip34_height).hash != params.bip34_hash
        check_bip30 = enforce_bip30 or height >= BIP34_IMPLIES_BIP30_LIMIT

        def bip30() -> None:
            """No output of the block may exist already (in the UTXO set before it)."""
            for tx in block.txs:
                txid = tx.txid
                for n in range(len(tx.vout)):
                    if cache_get(outpoint_key(txid, n)) is not None:
                        raise ValidationError("bad-txns-BIP30", 100,
                                              "tried to overwrite transaction")

        lock_flags = LOCKTIME_VERIFY_SEQUENCE if height >= params.csv_height else 0
        flags = block_script_flags(e, params)
        p2sh, witness = bool(flags & sf.P2SH), bool(flags & sf.WITNESS)
        prev_mtp = prev.median_time_past()
        maturity = params.coinbase_maturity
        fees = 0
        sigops = 0
        spent_all: list[list[Coin]] = []
        # Script checks go to the workers as each transaction is prepared (Core's
        # CCheckQueueControl): they verify while this loop reads the next transaction's coins.
        # (its input count: the worker gets the first checks after a few transactions)
        scripts = self.scripts.begin_block(sum([len(tx.vin) for tx in block.txs]),
                                           store=just_check)
        bip30_pending = check_bip30
        step = self.scripts.pool.step  # (the node's event loop goes first: node/loopfirst.py)
        try:
            for i, tx in enumerate(block.txs):
                step()
                txid = tx.txid
                coins: list[Coin] = []
                if i > 0:
                    keys = []
                    for txin in tx.vin:
                        key = outpoint_key(txin.prevout.hash, txin.prevout.n)
                        coin = get(key)
                        if coin is None:
                            raise ValidationError(
                                "bad-txns-inputs-missingorspent", 100,
                                "CheckTxInputs: inputs missing/spent in transaction "
                                f"{tx.txid_hex()}",
                            )
                        coins.append(coin)
                        keys.append(key)
                    try:
                        fees += check_tx_inputs(tx, coins, height, maturity)
                    except ValidationError as err:
                        raise ValidationError(
                            err.reason, 100, f"{err.debug} in transaction {tx.txid_hex()}"
                        ) from None
                    check_fees_in_range(fees)
                    if lock_flags:
                        locks = calculate_sequence_locks(
                            tx, lock_flags, [c.height for c in coins],
                            lambda h: e.ancestor(h).median_time_past(),
                        )
                        if not evaluate_sequence_locks(height, prev_mtp, locks):
                            raise ValidationError(
                                "bad-txns-nonfinal", 100,
                                f"contains a non-BIP68-final transaction {tx.txid_hex()}",
                            )
                sigops += transaction_sigop_cost(tx, coins, p2sh, witness)
                check_sigop_cost(sigops)
                if i > 0:
                    scripts.add((tx, [TxOut(c.value, c.script_pubkey) for c in coins], flags))
                    for key in keys:
                        if key in created:
                            del changes[key]  # created and spent within this block
                            created.discard(key)
                        else:
                            changes[key] = None
                    spent_all.append(coins)
                for n, out in enumerate(tx.vout):
                    spk = out.script_pubkey
                    if is_unspendable(spk):
                        continue
                    key = outpoint_key(txid, n)
                    changes[key] = Coin(out.value, spk, height, i == 0)
                    created.add(key)

            if bip30_pending:
                bip30_pending = False
                bip30()
            undo = b"" if just_check else encode_undo(spent_all)
            block_reward_ok(block, height, fees, params)
            scripts.finish()
            self.scripts.drop_later(scripts)
        except ValidationError:
            if bip30_pending:
                bip30()  # Core checks BIP30 before the transactions: its error comes first
            raise
        finally:
            scripts.close()
        return changes, undo, enforce_bip30

    def _read_stored(self, e: BlockIndexEntry) -> Block:
        """Block e's data to connect or disconnect it: the parsed block if it was received
        just now, else read back from disk and checked against its header (_check_stored),
        so a damaged copy is a BlockFileError and never applied to the UTXO set."""
        from_disk = e.hash not in self._recent
        block = self.read_block(e)
        if from_disk:
            self._check_stored(block, e)
        return block

    def _read_undo_of(self, e: BlockIndexEntry, block: Block) -> list[list[Coin]]:
        """Block e's undo data, checked to have one record per input of each transaction
        but the coinbase. Raises BlockFileError."""
        try:
            spent = self.read_undo(e)
        except DeserializationError as err:
            raise BlockFileError(f"corrupt undo data of block {e.hash_hex()}: {err}") from None
        if len(spent) != len(block.txs) - 1 or any(
                len(s) != len(tx.vin) for s, tx in zip(spent, block.txs[1:])):
            raise BlockFileError(f"undo data of block {e.hash_hex()} does not match it")
        return spent

    def _disconnect_changes(
        self, e: BlockIndexEntry, block: Block, spent: list[list[Coin]],
        view: Callable[[bytes], Coin | None],
    ) -> tuple[dict[bytes, Coin | None], set[bytes]]:
        """Core's DisconnectBlock without side effects, and strict: the coin changes that
        undo block e (None: spend), looked up through `view`, and the keys of the changes
        that `view` held before. Raises DisconnectError, before anything changes, if a coin
        the block made is missing from the UTXO set or differs from the block's output
        (value, script, height, coinbase flag), or if a coin to restore is already there."""
        changes: dict[bytes, Coin | None] = {}
        held: set[bytes] = set()  # keys `view` had a coin for

        def get(key: bytes) -> Coin | None:
            if key in changes:
                return changes[key]
            coin = view(key)
            if coin is not None:
                held.add(key)
            return coin

        height = e.height
        # (Core: the two historic blocks whose coinbase repeated an earlier one's)
        bip30_repeat = BIP30_REPEATS.get(height) == e.hash
        for i in range(len(block.txs) - 1, -1, -1):
            tx = block.txs[i]
            txid = tx.txid
            coinbase = i == 0
            for n, out in enumerate(tx.vout):
                spk = out.script_pubkey
                if is_unspendable(spk):
                    continue
                key = outpoint_key(txid, n)
                coin = get(key)
                if (coin is None or coin.value != out.value or coin.script_pubkey != spk
                        or coin.height != height or coin.coinbase != coinbase) \
                        and not (coinbase and bip30_repeat):
                    what = "is not in the UTXO set" if coin is None else \
                        f"differs in the UTXO set ({coin!r})"
                    raise DisconnectError(
                        f"cannot disconnect block {e.hash_hex()} at height {height}: its "
                        f"output {tx.txid_hex()}:{n} {what}; the block data, its undo data or "
                        "the chainstate is damaged")
                changes[key] = None
            if i > 0:
                for txin, coin in zip(reversed(tx.vin), reversed(spent[i - 1])):
                    key = outpoint_key(txin.prevout.hash, txin.prevout.n)
                    if get(key) is not None:
                        raise DisconnectError(
                            f"cannot disconnect block {e.hash_hex()} at height {height}: the "
                            f"coin {txin.prevout.hash[::-1].hex()}:{txin.prevout.n} it spent "
                            "is in the UTXO set already; the block data, its undo data or the "
                            "chainstate is damaged")
                    changes[key] = coin
        return changes, held

    def _check_can_disconnect(self, height: int) -> list[tuple[dict[bytes, Coin | None],
                                                              set[bytes]]]:
        """Raise BlockFileError (DisconnectError) if disconnecting the active chain down to
        `height` would stop half-way or corrupt the UTXO set: every block above it is read
        back and checked as a block read for connecting is (_read_stored), its undo data
        read and matched to it, and the whole disconnect worked out over the UTXO set
        (strictly, as _disconnect_tip does it) without changing anything. Returns what it
        worked out, per block from the tip down, for _disconnect_tip to apply."""
        overlay: dict[bytes, Coin | None] = {}  # the UTXO set as the disconnects leave it
        cache_get = self.coins.get

        def view(key: bytes) -> Coin | None:
            return overlay[key] if key in overlay else cache_get(key)

        plan = []
        for e in reversed(self.active[height + 1:]):
            block = self._read_stored(e)
            changes, held = self._disconnect_changes(e, block, self._read_undo_of(e, block),
                                                     view)
            overlay.update(changes)
            plan.append((changes, held))
        return plan

    def _disconnect_tip(
        self, planned: tuple[dict[bytes, Coin | None], set[bytes]] | None = None
    ) -> Block:
        """Disconnect the tip: all or nothing (the changes are worked out in full, and any
        error raised, before the coins cache or the active chain is touched). `planned`: its
        changes as _check_can_disconnect worked them out, just before, under the lock."""
        e = self.tip
        assert e is not None and e.prev is not None, "cannot disconnect the genesis block"
        coins = self.coins
        if planned is None:
            block = self._read_stored(e)
            planned = self._disconnect_changes(e, block, self._read_undo_of(e, block),
                                               coins.get)
        else:  # (read and checked whole by _check_can_disconnect: read again for listeners)
            block = self.read_block(e)
        changes, held = planned
        for key, coin in changes.items():
            if coin is not None:
                coins.add(key, coin, False)
            elif key in held:
                coins.spend(key)
            # (else: made and spent within the block, never in the UTXO set)
        self.active.pop()
        # The disconnected block stays a candidate: it may become best again.
        if not e.failed:
            self.candidates.add(e)
        for fn in self.on_disconnected:
            fn(block, e)
        return block

    # =========================================================================================
    # invalid blocks, invalidateblock / reconsiderblock
    # =========================================================================================

    def _mark_invalid(self, e: BlockIndexEntry) -> None:
        e.status |= FAILED_VALID
        changed = [e]
        todo = list(self.children.get(e.hash, ()))
        while todo:
            c = todo.pop()
            c.status |= FAILED_CHILD
            changed.append(c)
            todo.extend(self.children.get(c.hash, ()))
        self.candidates.difference_update(changed)
        self.index_db.put_many(changed)
        if self.best_header is not None and self.best_header.failed:
            self.best_header = max(  # (the tip and every entry off the active chain)
                (x for x in self.index.loaded() if not x.failed), key=lambda x: x.chain_work
            )

    def invalidate_block(self, block_hash: bytes) -> None:
        with self.lock:
            e = self.index.get(block_hash)
            if e is None:
                raise KeyError("Block not found")
            if e.prev is None:
                raise ValueError("cannot invalidate the genesis block")
            disconnected = self.in_active_chain(e)
            if disconnected:
                # All or nothing: every block and undo record the disconnect needs is read
                # and the disconnect worked out first, so damaged data fails here, before
                # anything has changed.
                for planned in self._check_can_disconnect(e.height - 1):
                    self._disconnect_tip(planned)
            assert not self.in_active_chain(e)
            self._mark_invalid(e)
            if disconnected:
                self.flush()  # the UTXO set and the invalid flags on disk agree
            if disconnected:
                self._publish_tip()
                for fn in self.on_activated:  # the mempool takes the transactions back
                    fn()
            tip_work = self.tip.chain_work if self.tip else 0
            for x in self.index.loaded():  # (those with the tip's work or more are loaded)
                if x.chain_tx and not x.failed and x.chain_work >= tip_work:
                    self.candidates.add(x)
        self.activate_best_chain()

    def reconsider_block(self, block_hash: bytes) -> None:
        with self.lock:
            e = self.index.get(block_hash)
            if e is None:
                raise KeyError("Block not found")
            changed = []
            for x in self.index.loaded():  # (failed entries are all off the active chain)
                if x.failed and x.height >= e.height and x.ancestor(e.height) is e:
                    x.status &= ~FAILED_MASK
                    changed.append(x)
            a = e.prev
            while a is not None:
                if a.failed:
                    a.status &= ~FAILED_MASK
                    changed.append(a)
                a = a.prev
            self.index_db.put_many(changed)
            for x in changed:
                if x.chain_tx:
                    self.candidates.add(x)
                if self.best_header is None or x.chain_work > self.best_header.chain_work:
                    self.best_header = x
        self.activate_best_chain()

    def precious_block(self, block_hash: bytes) -> None:
        """Core's PreciousBlock: treat the block as if it had arrived before every other
        block of the same work; if it then beats the tip, the chain moves to it."""
        with self.lock:
            e = self.index.get(block_hash)
            if e is None:
                raise KeyError("Block not found")
            tip = self.tip
            if tip is None or e.chain_work < tip.chain_work:
                return  # less work than the tip: nothing to do
            if tip.chain_work > self._precious_work:
                self._precious_seq = 0  # the chain grew since the last call
            self._precious_work = tip.chain_work
            self._precious_seq -= 1
            self.candidates.discard(e)
            e.seq_id = self._precious_seq
            if e.chain_tx and not e.failed and e.is_valid(VALID_TRANSACTIONS):
                self.candidates.add(e)
        self.activate_best_chain()

    def chain_tips(self) -> list[tuple[BlockIndexEntry, int, str]]:
        """(tip, branch length, status) for every leaf of the tree and the active tip."""
        with self.lock:
            # Leaves are off the active chain (whose children are all loaded), or its tip.
            leaves = [e for e in self.index.loaded()
                      if not self.children.get(e.hash) and not self.active.holds(e)]
            if self.tip is not None:
                leaves.append(self.tip)
            out = []
            for e in leaves:
                fork = self.find_fork(e)
                if self.in_active_chain(e):
                    status = "active"
                elif e.failed:
                    status = "invalid"
                elif not e.chain_tx:
                    status = "headers-only"
                elif e.is_valid(VALID_SCRIPTS):
                    status = "valid-fork"
                else:
                    status = "valid-headers"
                out.append((e, e.height - fork.height, status))
            out.sort(key=lambda t: -t[0].height)
            return out

