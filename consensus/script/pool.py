"""Parallel script verification: a pool of worker processes for a block's inputs.

    pool = ScriptCheckPool(workers=2)
    pool.verify_many([(tx, spent_outputs, flags), ...])   # raises ScriptError or returns None
    pool.close()

Design notes
  * Processes, not threads: verification is CPU-bound Python, so threads would serialize on
    the GIL. Workers are started once (on first use) and reused for every batch.
  * Each worker has its own pipe, written directly by the calling thread (no feeder threads
    to wait for), and work is handed out chunk by chunk to whichever worker is free, so a
    slower core does not hold up the batch. Chunks are in (transaction, input) order.
  * Start method: "forkserver" where available, else "spawn" -- never plain "fork". The node
    runs an asyncio loop and several threads; forking such a process copies locks held by
    other threads (logging, the import lock, LevelDB's) in their locked state and can
    deadlock the child. A fork server is a clean single-threaded process started before all
    that, and forks the workers from itself.
  * Transport: transactions and spent outputs cross the process boundary as flat tuples of
    ints and bytes ("tuples"). Measured on a 3,000-input block (scripts/bench/scripts.py
    --transport all): pickling the objects themselves costs a Python-level reduce per
    slotted object on both sides; sending the consensus serialization ("bytes") is cheap to
    produce but our Python parser on the worker side costs more than the checks saved; flat
    tuples are pickled and unpickled in C and rebuilt into objects with no parsing and no
    hashing (the worker never needs the txid), the cheapest of the three.
  * Small batches (fewer than min_parallel_inputs inputs) run in the calling process: for a
    handful of inputs the round trip costs more than the checks.
  * The first failure in (transaction, input) order is raised, as ScriptError carrying the
    txid and input index, whichever worker found it; remaining work is cancelled.
  * Whole transactions that pass are recorded in the script execution cache, and
    transactions found there (already verified, e.g. by the mempool) are skipped: the
    lookup happens here, in the calling process, before anything is dispatched, so only
    misses reach the workers.
  * An item's flags may be one flag set or a tuple of them: every input is then checked
    under each in turn (the later passes find the first one's signatures in a cache of that
    transaction's own) and the transaction is cached under each. The mempool checks with
    (standard flags, next block's flags), as Core's PolicyScriptChecks and
    ConsensusScriptChecks.
  * verify_many is safe to call from several threads (e.g. from an asyncio loop via
    run_in_executor); batches are processed one at a time, and the call blocks its thread
    until its batch is done. If a worker dies, the batch is verified in-process and the
    workers are restarted for the next one.
  * VerifyStream is the other way to use the workers: checks running while the calling
    thread does other work (the mempool accepting a batch of transactions one by one),
    driven by that thread's own calls rather than a helper thread, which would have to
    win the GIL from it for every message.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import select
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from consensus.script.errors import ScriptError
from consensus.script.sigcheck import SIGNATURE_CACHE, SignatureCache
from consensus.script.sighash import PrecomputedTxData
from consensus.script.verify import (
    SCRIPT_EXECUTION_CACHE,
    ScriptExecutionCache,
    _verify_input,
    verify_transaction,
)
from consensus.serialize import Reader
from consensus.tx import OutPoint, Transaction, TxIn, TxOut

log = logging.getLogger("validation")

Flags = int | tuple[int, ...]
Item = tuple[Transaction, Sequence[TxOut], Flags]
# How transactions travel to the workers (see the module notes).
TRANSPORTS = ("tuples", "bytes", "pickle")
_DEFAULT = object()
_U32 = struct.Struct("<I")


def flag_sets(flags: Flags) -> tuple[int, ...]:
    """An item's flags as a tuple of flag sets."""
    return (flags,) if isinstance(flags, int) else flags


def _ser_outputs(outs: Sequence[TxOut]) -> bytes:
    return _U32.pack(len(outs)) + b"".join(o.serialize() for o in outs)


def _parse_outputs(data: bytes) -> list[TxOut]:
    r = Reader(data)
    n = r.u32()
    return [TxOut.deserialize(r) for _ in range(n)]


def _pack_tx(tx: Transaction) -> tuple:
    """A transaction as a tuple of flat lists of ints and bytes (five items per input, two
    per output): pickled and unpickled entirely in C, with no tuple per input or output
    (measured on scripts.py's block: packing and pickling 35-40% cheaper than a tuple per
    input, unpickling and rebuilding ~10% cheaper)."""
    ins: list = []
    for i in tx.vin:
        p = i.prevout
        ins += (p.hash, p.n, i.script_sig, i.sequence, i.witness)
    outs: list = []
    for o in tx.vout:
        outs += (o.value, o.script_pubkey)
    return (tx.version, tx.locktime, ins, outs)


def _pack_outputs(outs: Sequence[TxOut]) -> list:
    flat: list = []
    for o in outs:
        flat += (o.value, o.script_pubkey)
    return flat


def _unpack_outputs(flat: list) -> list[TxOut]:
    new = TxOut.__new__
    res = []
    it = iter(flat)
    for value, spk in zip(it, it):
        o = new(TxOut)
        o.value = value
        o.script_pubkey = spk
        res.append(o)
    return res


def _unpack_tx(t: tuple) -> Transaction:
    version, locktime, ins, outs = t
    new_in = TxIn.__new__
    new_op = OutPoint.__new__
    vin = []
    it = iter(ins)
    for h, n, script_sig, sequence, witness in zip(it, it, it, it, it):
        txin = new_in(TxIn)
        op = new_op(OutPoint)
        op.hash = h
        op.n = n
        txin.prevout = op
        txin.script_sig = script_sig
        txin.sequence = sequence
        txin.witness = witness
        vin.append(txin)
    tx = Transaction.__new__(Transaction)
    tx.version = version
    tx.locktime = locktime
    tx.vin = vin
    tx.vout = _unpack_outputs(outs)
    tx._txid = tx._wtxid = tx._base_size = tx._size = None  # computed if ever asked for
    return tx


def _lookup_sigcache(use_sigcache: bool) -> SignatureCache | None:
    """The signature cache for checks that only look it up (a block's, as Core's ConnectBlock:
    nothing stored), or None when it is empty, where a lookup cannot hit and its salted key
    would be computed for nothing: a worker's own cache, and the node's during an import or
    initial sync, before any transaction has been relayed."""
    return SIGNATURE_CACHE if use_sigcache and len(SIGNATURE_CACHE) else None


# -- worker side ---------------------------------------------------------------------------


def _check_jobs(jobs: list, use_sigcache: bool) -> tuple[int, int, str] | None:
    """Verify (tx_pos, flags, start, end, tx, spent) jobs; tx/spent as packed tuples, bytes
    or objects. Returns (tx_pos, input index, error code) for the first failure, or None."""
    sigcache = _lookup_sigcache(use_sigcache)
    for tx_pos, flags, start, end, tx, spent in jobs:
        if isinstance(tx, tuple):
            tx = _unpack_tx(tx)
            spent = _unpack_outputs(spent)
        elif isinstance(tx, bytes):
            tx = Transaction.from_bytes(tx)
            spent = _parse_outputs(spent)
        txdata = PrecomputedTxData(tx, spent)
        if isinstance(flags, int):
            for i in range(start, end):
                try:
                    _verify_input(tx, i, spent, flags, txdata, sigcache, False)
                except ScriptError as e:
                    return tx_pos, i, e.code
            continue
        # Several flag sets: the later passes find the first one's signatures here.
        own = SignatureCache(max_entries=max(16, 4 * (end - start)))
        for f in flags:
            for i in range(start, end):
                try:
                    _verify_input(tx, i, spent, f, txdata, own, True)
                except ScriptError as e:
                    return tx_pos, i, e.code
    return None


def _no_step() -> None:
    pass


def _check_here(
    items: Sequence[Item], chunk: list[tuple[int, int, int]],
    txdata: dict[int, PrecomputedTxData], sigcache: SignatureCache | None,
    step: Callable[[], None] = _no_step,
) -> tuple[int, int, str] | None:
    """A chunk's (tx_pos, start, end) ranges checked in the calling process, as a worker
    would check them; returns (tx_pos, input index, error code) for the first failure.
    step() is called before each range (ScriptCheckPool.step)."""
    for pos, start, end in chunk:
        step()
        tx, spent, flags = items[pos]
        d = txdata.get(pos)
        if d is None:
            d = txdata[pos] = PrecomputedTxData(tx, spent)
        try:
            if isinstance(flags, int):
                for i in range(start, end):
                    _verify_input(tx, i, spent, flags, d, sigcache, False)
            else:
                own = SignatureCache(max_entries=max(16, 4 * (end - start)))
                for f in flags:
                    for i in range(start, end):
                        _verify_input(tx, i, spent, f, d, own, True)
        except ScriptError as e:
            return pos, i, e.code
    return None


def _worker_main(conn: Connection) -> None:
    """A worker's loop: (use_sigcache, jobs) in, (ok, result or error text) out; b"" ends."""
    import signal

    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send_bytes(b"ready")
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not msg:
            return
        try:
            use_sigcache, jobs = pickle.loads(msg)
            out = (True, _check_jobs(jobs, use_sigcache))
        except Exception as e:  # a bug, not a script failure: report it to the parent
            out = (False, f"{type(e).__name__}: {e}")
        conn.send_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


# -- parent side ---------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    pass


def default_start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class ScriptCheckPool:
    """Worker processes that verify the inputs of many transactions in parallel.

    workers: number of processes (default: one per CPU); 0 verifies everything in the
        calling thread. Even one worker helps a node: the checks then run without holding
        the GIL its asyncio loop needs.
    min_parallel_inputs: batches with fewer inputs are verified in the calling thread.
    chunks_per_worker, min_chunk_inputs, max_chunk_inputs: how finely a batch is split
        (load balancing versus per-chunk overhead; see _chunk_size).
    transport: "tuples" (default), "bytes" or "pickle"; see the module notes.
    caller_checks: the calling thread checks chunks too, between handing them out, instead
        of only waiting (Core's master thread in its check queue): workers + 1 processes
        check a batch. It then holds the GIL for the checks it does.

    step: called between the transactions the calling thread checks (a node's validation
    thread lets its event loop run first there: node/loopfirst.py); by default nothing.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_method: str | None = None,
        min_parallel_inputs: int = 64,
        chunks_per_worker: int = 4,
        min_chunk_inputs: int = 8,
        max_chunk_inputs: int = 192,
        transport: str = "tuples",
        caller_checks: bool = False,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.start_method = start_method or default_start_method()
        self.min_parallel_inputs = min_parallel_inputs
        self.chunks_per_worker = chunks_per_worker
        self.min_chunk_inputs = min_chunk_inputs
        self.max_chunk_inputs = max_chunk_inputs
        self.caller_checks = caller_checks
        self.step: Callable[[], None] = _no_step
        self.transport = transport
        self._procs: list = []
        self._conns: list[Connection] = []
        self._lock = threading.Lock()  # one batch at a time; guards start/close too
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers now (otherwise they start with the first large batch)."""
        with self._lock:
            self._ensure_started()

    def start_in_background(self, what: str) -> None:
        """Start the workers in a thread, beside the caller's own start-up (it takes ~0.1 s).
        Meanwhile the pool is busy to a batch (it waits, or checks in its own thread, as
        for any busy pool). A failure (closed by an early shutdown, cannot fork) is logged
        as "<what> not started" and tried again by the first batch."""
        def start() -> None:
            try:
                self.start()
            except Exception as err:
                log.warning("%s not started: %s", what, err)

        threading.Thread(target=start, name="checker-start", daemon=True).start()

    def _ensure_started(self) -> None:
        if self._closed:
            raise RuntimeError("ScriptCheckPool is closed")
        if self._conns or self.workers < 1:
            return
        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            # Imported once in the server, inherited by every worker it forks.
            ctx.set_forkserver_preload(["consensus.script.pool"])
        # Recorded as they start, so that a failure part-way stops those already running.
        self._procs, self._conns = [], []
        try:
            for _ in range(self.workers):
                parent, child = ctx.Pipe(duplex=True)
                p = ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                name="minibtc-scriptcheck")
                p.start()
                child.close()
                self._procs.append(p)
                self._conns.append(parent)
            for c in self._conns:
                if c.recv_bytes() != b"ready":
                    raise RuntimeError("script check worker failed to start")
        except BaseException:
            self._stop_workers()
            raise

    def _stop_workers(self) -> None:
        for c in self._conns:
            try:
                c.send_bytes(b"")
            except OSError:
                pass
        for p in self._procs:
            p.join(timeout=2)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
        for c in self._conns:
            c.close()
        self._procs, self._conns = [], []

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_workers()

    def __enter__(self) -> ScriptCheckPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work -----------------------------------------------------------------------------------

    def verify_many(
        self,
        items: Sequence[Item],
        *,
        cache: ScriptExecutionCache | None | object = _DEFAULT,
        use_sigcache: bool = True,
    ) -> tuple[int, int]:
        """Verify every input of every (tx, spent_outputs, flags) item.

        Raises ScriptError (with .txid and .input_index) for the first failing input in item
        order. `cache` is the script execution cache (the process default unless given; None
        disables it). use_sigcache=False bypasses the signature caches (for measurements).
        Returns (transactions found in the cache, inputs checked).
        """
        exec_cache: ScriptExecutionCache | None = (
            SCRIPT_EXECUTION_CACHE if cache is _DEFAULT else cache  # type: ignore[assignment]
        )
        todo: list[int] = []
        keys: dict[int, list[bytes]] = {}
        n_inputs = 0
        cached = 0
        for pos, (tx, spent, flags) in enumerate(items):
            if tx.is_coinbase():
                continue  # spends nothing
            if len(spent) != len(tx.vin):
                raise ValueError("spent_outputs must have one entry per input")
            if exec_cache is not None:
                ks = [exec_cache.key(tx, f) for f in flag_sets(flags)]
                if all([exec_cache.contains(k) for k in ks]):
                    cached += 1
                    continue
                keys[pos] = ks
            todo.append(pos)
            n_inputs += len(tx.vin)
        if not todo:
            return cached, 0

        if self.workers < 1 or n_inputs < self.min_parallel_inputs:
            self._verify_here(items, todo, use_sigcache)
        else:
            with self._lock:
                try:
                    self._ensure_started()
                    self._verify_parallel(items, todo, n_inputs, use_sigcache)
                except WorkerDied:
                    log.warning("script check worker died; verifying this batch in-process")
                    self._stop_workers()
                    self._verify_here(items, todo, use_sigcache)
                except ScriptError:
                    raise
                except BaseException:
                    # Interrupted mid-batch: replies may be in flight; start afresh next time.
                    self._stop_workers()
                    raise

        if exec_cache is not None:
            add = exec_cache.add
            for pos in todo:
                for k in keys[pos]:
                    add(k)
        return cached, n_inputs

    def _verify_here(self, items: Sequence[Item], todo: list[int], use_sigcache: bool) -> None:
        sigcache = SIGNATURE_CACHE if use_sigcache else None
        step = self.step
        for pos in todo:
            step()
            tx, spent, flags = items[pos]
            for f in flag_sets(flags):
                verify_transaction(tx, spent, f, cache=None, sigcache=sigcache)

    def _chunk_size(self, n_inputs: int, remaining: int) -> int:
        """Inputs in the next chunk: at most 1/chunks_per_worker of a worker's share (and
        max_chunk_inputs, so that two chunks in flight fit in a pipe's buffer and the
        parent never blocks writing), shrinking as the batch nears its end (guided
        self-scheduling: half of what is left per checker, the workers and a checking
        caller), so they finish together instead of one waiting for another's last large
        chunk."""
        checkers = max(1, self.workers + self.caller_checks)
        big = min(self.max_chunk_inputs, -(-n_inputs // (checkers * self.chunks_per_worker)))
        return max(self.min_chunk_inputs, min(big, -(-remaining // (2 * checkers))))

    def _chunks(
        self, items: Sequence[Item], todo: list[int], n_inputs: int
    ) -> list[list[tuple[int, int, int]]]:
        """Split the work into ranges (tx_pos, start, end), in order, in chunks of
        _chunk_size inputs; a large transaction may be split across chunks."""
        chunks: list[list[tuple[int, int, int]]] = []
        cur: list[tuple[int, int, int]] = []
        remaining = n_inputs
        room = self._chunk_size(n_inputs, remaining)
        for pos in todo:
            n = len(items[pos][0].vin)
            start = 0
            while start < n:
                take = min(room, n - start)
                cur.append((pos, start, start + take))
                start += take
                room -= take
                remaining -= take
                if room == 0:
                    chunks.append(cur)
                    cur = []
                    room = self._chunk_size(n_inputs, remaining)
        if cur:
            chunks.append(cur)
        return chunks

    def _payload(
        self, items: Sequence[Item], chunk: list[tuple[int, int, int]], packed: dict,
        use_sigcache: bool,
    ) -> bytes:
        transport = self.transport
        jobs = []
        for pos, start, end in chunk:
            tx, spent, flags = items[pos]
            if transport == "pickle":
                jobs.append((pos, flags, start, end, tx, list(spent)))
                continue
            s = packed.get(pos)
            if s is None:
                if transport == "tuples":
                    s = (_pack_tx(tx), _pack_outputs(spent))
                else:
                    s = (tx.serialize(), _ser_outputs(spent))
                packed[pos] = s
            jobs.append((pos, flags, start, end, s[0], s[1]))
        return pickle.dumps((use_sigcache, jobs), protocol=pickle.HIGHEST_PROTOCOL)

    def _verify_parallel(
        self, items: Sequence[Item], todo: list[int], n_inputs: int, use_sigcache: bool
    ) -> None:
        chunks = self._chunks(items, todo, n_inputs)
        n_chunks = len(chunks)
        packed: dict[int, tuple] = {}
        # Up to two chunks in flight per worker: the next one is already in its pipe when it
        # finishes the current one, so workers never wait for the parent to prepare work.
        inflight: dict[int, deque[int]] = {c.fileno(): deque() for c in self._conns}
        by_fd = {c.fileno(): c for c in self._conns}
        poller = select.poll()  # one for the batch (connection.wait builds one per call)
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        nxt = 0
        failed_at: int | None = None
        failure: tuple[int, int, str] | None = None
        caller = self.caller_checks
        txdata: dict[int, PrecomputedTxData] = {}
        sigcache = _lookup_sigcache(use_sigcache)

        def feed(fd: int) -> None:
            nonlocal nxt
            q = inflight[fd]
            while len(q) < 2 and nxt < n_chunks and failed_at is None:
                try:
                    by_fd[fd].send_bytes(
                        self._payload(items, chunks[nxt], packed, use_sigcache))
                except OSError:
                    raise WorkerDied("script check worker pipe closed") from None
                q.append(nxt)
                nxt += 1

        def collect(timeout_ms: int | None) -> None:
            nonlocal failed_at, failure
            for fd, _ in poller.poll(timeout_ms):
                q = inflight[fd]
                if not q:
                    raise WorkerDied("script check worker sent what was not asked for")
                idx = q.popleft()
                try:
                    ok, res = pickle.loads(by_fd[fd].recv_bytes())
                except (EOFError, OSError):
                    raise WorkerDied("script check worker exited") from None
                if not ok:
                    raise RuntimeError(f"script check worker error: {res}")
                if res is not None and (failed_at is None or idx < failed_at):
                    failed_at, failure = idx, res
                feed(fd)

        for fd in by_fd:
            feed(fd)
        if caller:
            # The calling process takes the chunks no worker has yet, one at a time (as
            # Core's master thread joins its script check queue), and keeps the workers fed
            # in between.
            while nxt < n_chunks and failed_at is None:
                idx = nxt
                nxt += 1
                res = _check_here(items, chunks[idx], txdata, sigcache, self.step)
                if res is not None and (failed_at is None or idx < failed_at):
                    failed_at, failure = idx, res
                collect(0)
        while any(inflight.values()):
            collect(None)
        if failure is not None:
            pos, index, code = failure
            raise ScriptError(code, items[pos][0].txid, index)


class CheckSession:
    """One batch whose items arrive one at a time while the caller goes on working: a
    block's transactions, added as the chain's connect loop prepares them (as Core's
    CCheckQueueControl: the workers start on the first checks while the loop is still
    looking up the coins of the later transactions, and the caller joins them at the end).

        with CheckSession(pool) as session:
            for item in items:
                session.add(item)          # may hand a chunk to an idle worker
            cached, inputs = session.finish()   # raises ScriptError, first failure in order

    Items are looked up in the script execution cache as they are added; only misses are
    checked, and those that pass are stored unless store=False (Core's ConnectBlock only
    consults the cache: a block is connected once; its TestBlockValidity stores). Without
    storing, an empty cache (an import, a node's initial sync) is not consulted at all:
    no lookup could hit, and each would cost a salted hash.

    While items arrive, full chunks of stream_chunk_inputs go to the workers as they free
    up (two in flight each) once the batch has min_parallel_inputs inputs; at finish()
    what has not been handed out is split again in shrinking chunks, and with
    caller_checks the calling thread checks some of them. A batch smaller than
    min_parallel_inputs is checked in the calling thread at finish(). The session holds
    the pool from its first hand-out to finish() or close(); close() without finish()
    (the caller gave up on the block) waits for the chunks in flight and drops them.
    """

    def __init__(
        self,
        pool: ScriptCheckPool,
        *,
        cache: ScriptExecutionCache | None | object = _DEFAULT,
        use_sigcache: bool = True,
        stream_chunk_inputs: int | None = None,
        expect_inputs: int = 0,
        store: bool = True,
    ) -> None:
        """expect_inputs: how many inputs the caller will add, if known (a block's). When
        that is enough for the workers, they get a first, small chunk at once, instead of
        idling until min_parallel_inputs inputs have arrived."""
        self.pool = pool
        cache = SCRIPT_EXECUTION_CACHE if cache is _DEFAULT else cache
        if not store and cache is not None and not len(cache):  # type: ignore[arg-type]
            cache = None
        self.cache: ScriptExecutionCache | None = cache  # type: ignore[assignment]
        self.store = store
        self.use_sigcache = use_sigcache
        self.stream_chunk = stream_chunk_inputs or max(pool.min_chunk_inputs,
                                                       pool.max_chunk_inputs // 2)
        self.items: list[Item] = []
        self.keys: dict[int, list[bytes]] = {}
        self.todo: list[int] = []
        self.n_inputs = 0
        self.cached = 0
        self.chunks: list[list[tuple[int, int, int]]] = []
        self._cur: list[tuple[int, int, int]] = []
        self._early = expect_inputs >= pool.min_parallel_inputs
        self._room = pool.min_chunk_inputs if self._early else self.stream_chunk
        self._next = 0  # chunks[:_next] have been handed out
        self._packed: dict[int, tuple] = {}
        self._inflight: dict[int, deque[int]] = {}
        self._by_fd: dict[int, Connection] = {}
        self._poller: select.poll | None = None
        self._active = False  # holds the pool's lock and uses its workers
        self._broken = False  # a worker died: the rest is checked in the calling thread
        self._finished = False
        self.failed_at: int | None = None
        self.failure: tuple[int, int, str] | None = None

    def __enter__(self) -> CheckSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- adding ---------------------------------------------------------------------------------

    def add(self, item: Item) -> None:
        tx, spent, flags = item
        pos = len(self.items)
        self.items.append(item)
        if tx.is_coinbase():
            return  # spends nothing
        n = len(tx.vin)
        if len(spent) != n:
            raise ValueError("spent_outputs must have one entry per input")
        cache = self.cache
        if cache is not None:
            if isinstance(flags, int):  # (a block's items: one flag set, one key)
                ks = [cache.key(tx, flags)]
                hit = cache.contains(ks[0])
            else:
                ks = [cache.key(tx, f) for f in flags]
                hit = all([cache.contains(k) for k in ks])
            if hit:
                self.cached += 1
                return
            self.keys[pos] = ks
        self.todo.append(pos)
        self.n_inputs += n
        start = 0
        while start < n:
            take = min(self._room, n - start)
            self._cur.append((pos, start, start + take))
            start += take
            self._room -= take
            if self._room == 0:
                self.chunks.append(self._cur)
                self._cur = []
                self._room = self.stream_chunk
                self._pump()

    def _pump(self) -> None:
        """Hand full chunks to idle workers (starting to use them once the batch is big
        enough), and take in what they have finished."""
        if self.failed_at is not None or self._broken:
            return
        if not self._active:
            if self.pool.workers < 1 or (
                    self.n_inputs < self.pool.min_parallel_inputs and not self._early):
                return
            self._activate()
        try:
            self._collect(0)
            for fd in self._by_fd:
                self._feed(fd)
        except WorkerDied:
            self._break()

    def _activate(self) -> None:
        pool = self.pool
        pool._lock.acquire()
        try:
            pool._ensure_started()
        except BaseException:
            pool._lock.release()
            raise
        self._active = True
        self._by_fd = {c.fileno(): c for c in pool._conns}
        self._inflight = {fd: deque() for fd in self._by_fd}
        self._poller = select.poll()
        for fd in self._by_fd:
            self._poller.register(fd, select.POLLIN)

    def _release(self) -> None:
        if self._active:
            self._active = False
            self._inflight = {}
            self.pool._lock.release()

    def _break(self) -> None:
        log.warning("script check worker died; checking the rest of this batch in-process")
        self.pool._stop_workers()
        self._release()
        self._broken = True

    def _feed(self, fd: int) -> None:
        q = self._inflight[fd]
        while len(q) < 2 and self._next < len(self.chunks) and self.failed_at is None:
            payload = self.pool._payload(self.items, self.chunks[self._next], self._packed,
                                         self.use_sigcache)
            try:
                self._by_fd[fd].send_bytes(payload)
            except OSError:
                raise WorkerDied("script check worker pipe closed") from None
            q.append(self._next)
            self._next += 1

    def _collect(self, timeout_ms: int | None) -> None:
        assert self._poller is not None
        for fd, _ in self._poller.poll(timeout_ms):
            q = self._inflight[fd]
            if not q:
                raise WorkerDied("script check worker sent what was not asked for")
            idx = q.popleft()
            try:
                ok, res = pickle.loads(self._by_fd[fd].recv_bytes())
            except (EOFError, OSError):
                raise WorkerDied("script check worker exited") from None
            if not ok:
                raise RuntimeError(f"script check worker error: {res}")
            if res is not None and (self.failed_at is None or idx < self.failed_at):
                self.failed_at, self.failure = idx, res
            self._feed(fd)

    # -- finishing ------------------------------------------------------------------------------

    def _resplit(self) -> None:
        """What has not been handed out, in shrinking chunks for the end of the batch."""
        rest = [r for c in self.chunks[self._next:] for r in c] + self._cur
        self._cur = []
        remaining = sum(end - start for _, start, end in rest)
        out: list[list[tuple[int, int, int]]] = []
        cur: list[tuple[int, int, int]] = []
        room = self.pool._chunk_size(self.n_inputs, remaining)
        for pos, start, end in rest:
            while start < end:
                take = min(room, end - start)
                cur.append((pos, start, start + take))
                start += take
                room -= take
                remaining -= take
                if room == 0:
                    out.append(cur)
                    cur = []
                    room = self.pool._chunk_size(self.n_inputs, remaining)
        if cur:
            out.append(cur)
        self.chunks[self._next:] = out

    def finish(self, idle: Sequence[Callable[[], None]] = ()) -> tuple[int, int]:
        """Wait for every check; raises ScriptError (with .txid and .input_index) for the
        first failing input in item order. Returns (transactions found in the cache,
        inputs checked); successes go into the cache.

        idle: other work of the caller's, each task run once while the workers check (see
        _run_idle); it must not depend on the outcome of these checks."""
        if self._finished:
            raise RuntimeError("CheckSession already finished")
        self._finished = True
        pool = self.pool
        try:
            if not self.todo:
                return self.cached, 0
            if (not self._active and not self._broken and pool.workers >= 1
                    and self.n_inputs >= pool.min_parallel_inputs):
                self._activate()
            if self._active:
                try:
                    self._finish_parallel(idle)
                except WorkerDied:
                    self._break()
            if self._broken or not self._active:
                self.failed_at = self.failure = None
                pool._verify_here(self.items, self.todo, self.use_sigcache)
        except BaseException as err:
            if self._active and not isinstance(err, ScriptError):
                # Interrupted mid-batch: replies may be in flight; start afresh next time.
                pool._stop_workers()
            self._release()
            raise
        self._release()
        if self.failure is not None:
            pos, index, code = self.failure
            raise ScriptError(code, self.items[pos][0].txid, index)
        if self.cache is not None and self.store:
            add = self.cache.add
            for pos in self.todo:
                for k in self.keys[pos]:
                    add(k)
        return self.cached, self.n_inputs

    def _finish_parallel(self, idle: Sequence[Callable[[], None]]) -> None:
        self._resplit()
        for fd in self._by_fd:
            self._feed(fd)
        self._run_idle(idle)
        if self.pool.caller_checks:
            txdata: dict[int, PrecomputedTxData] = {}
            sigcache = _lookup_sigcache(self.use_sigcache)
            while self._next < len(self.chunks) and self.failed_at is None:
                idx = self._next
                self._next += 1
                res = _check_here(self.items, self.chunks[idx], txdata, sigcache,
                                  self.pool.step)
                if res is not None and (self.failed_at is None or idx < self.failed_at):
                    self.failed_at, self.failure = idx, res
                self._collect(0)
        while any(self._inflight.values()):
            self._collect(None)

    def _run_idle(self, idle: Sequence[Callable[[], None]]) -> None:
        """Run the caller's other work while the workers check, before it checks chunks
        itself, task by task, the workers' finished chunks replaced after each. The two
        chunks in flight per worker (the largest of the resplit) cover a task: measured on
        the 100k-transaction import, a worker never ran dry during the next block's parse
        and check_block, and a deeper queue only made the caller wait longer for the
        workers' last chunks."""
        for task in idle:
            if not any(self._inflight.values()):
                return  # (nothing to overlap with)
            task()
            self._collect(0)

    def close(self) -> None:
        """Give up on what is not finished (the chunks in flight are waited for, so the
        workers are clean for the next batch) and release the pool."""
        self._finished = True
        if not self._active:
            return
        self.failed_at = -1  # hand out nothing more
        try:
            while any(self._inflight.values()):
                self._collect(None)
        except BaseException:
            self.pool._stop_workers()
        self._release()


class VerifyStream:
    """Checks of (tx, spent_outputs, flags) items on a pool's workers while the calling
    thread goes on with other work, one item at a time.

        with VerifyStream(pool) as stream:
            first = stream.add(items)      # more may be added later
            ...
            if not stream.wait(first + i):  # passed: recorded in the execution cache
                verify item i here          # failed, or not handed out yet

    The caller drives the stream: add() and wait() collect what the workers have finished
    and hand them the next pieces, two in flight per worker. An item whose piece has not
    been handed out yet is not waited for: wait() gives it (and the rest of its piece) back
    to the caller, so a caller that is faster than the workers takes work off them instead
    of idling. Items that pass are added to the script execution cache. The stream holds
    the pool from creation until close(); its methods are safe to call from any thread.
    """

    PENDING, PASSED, LEFT = 0, 1, 2

    def __init__(
        self,
        pool: ScriptCheckPool,
        *,
        piece_inputs: int = 25,
        cache: ScriptExecutionCache = SCRIPT_EXECUTION_CACHE,
        wait_for_pool: bool = True,
    ) -> None:
        """wait_for_pool=False: if another stream or batch has the pool, do not wait for it
        (everything added is then the caller's to check)."""
        self.pool = pool
        self.piece_inputs = piece_inputs
        self.cache = cache
        self.items: list[Item] = []
        self.state: list[int] = []
        self.keys: list[list[bytes]] = []
        self.pieces: list[list[int]] = []
        self.piece_of: dict[int, int] = {}
        self._next = 0  # the first piece not handed out
        self._packed: dict[int, tuple] = {}
        self._mutex = threading.Lock()
        self._inflight: dict[Connection, deque[int]] = {}
        self._closed = True
        if pool.workers < 1 or not pool._lock.acquire(blocking=wait_for_pool):
            return  # everything added is the caller's
        self._closed = False
        try:
            pool._ensure_started()
            self._inflight = {c: deque() for c in pool._conns}
        except BaseException:
            self._abort()
            raise

    def add(self, items: Sequence[Item]) -> int:
        """Queue more items; returns the position of the first (positions count from the
        stream's first item)."""
        with self._mutex:
            first = len(self.items)
            piece: list[int] = []
            n = 0
            for pos, item in enumerate(items, first):
                tx, spent, flags = item
                if len(spent) != len(tx.vin):
                    raise ValueError("spent_outputs must have one entry per input")
                ks = [self.cache.key(tx, f) for f in flag_sets(flags)]
                self.items.append(item)
                self.keys.append(ks)
                if tx.is_coinbase() or all([self.cache.contains(k) for k in ks]):
                    self.state.append(self.PASSED)
                    continue
                self.state.append(self.PENDING)
                self.piece_of[pos] = len(self.pieces)
                piece.append(pos)
                n += len(tx.vin)
                if n >= self.piece_inputs:
                    self.pieces.append(piece)
                    piece, n = [], 0
            if piece:
                self.pieces.append(piece)
            if self._closed:
                self._give_back(len(self.pieces))
            else:
                try:
                    self._collect(0)
                    for conn in self._inflight:
                        self._feed(conn)
                except (EOFError, OSError):
                    log.warning("script check worker died; checks left to the caller")
                    self._abort()
            return first

    def __enter__(self) -> VerifyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _give_back(self, stop: int) -> None:
        """Pieces not handed out yet, up to stop, are the caller's to check."""
        for idx in range(self._next, stop):
            for pos in self.pieces[idx]:
                self.state[pos] = self.LEFT
        self._next = max(self._next, stop)

    def _feed(self, conn: Connection) -> None:
        q = self._inflight[conn]
        while len(q) < 2 and self._next < len(self.pieces):
            piece = [(pos, 0, len(self.items[pos][0].vin)) for pos in self.pieces[self._next]]
            conn.send_bytes(self.pool._payload(self.items, piece, self._packed, True))
            q.append(self._next)
            self._next += 1

    def _collect(self, timeout: float | None) -> None:
        """Results that are in (waiting up to timeout for one; None: until one comes)."""
        busy = [c for c, q in self._inflight.items() if q]
        if not busy:
            return
        for conn in wait(busy, timeout):
            idx = self._inflight[conn].popleft()  # type: ignore[index]
            ok, res = pickle.loads(conn.recv_bytes())  # type: ignore[union-attr]
            if not ok:
                log.warning("script check worker error: %s", res)
            failed_at = res[0] if ok and res is not None else None
            passed = ok
            for pos in self.pieces[idx]:
                if pos == failed_at:
                    passed = False  # this one failed; the rest of the piece was not checked
                if passed:
                    self.state[pos] = self.PASSED
                    for k in self.keys[pos]:
                        self.cache.add(k)
                else:
                    self.state[pos] = self.LEFT
            self._feed(conn)  # type: ignore[arg-type]

    def _abort(self) -> None:
        """A worker died or the stream broke: everything unfinished goes back to the caller,
        and the pool starts fresh workers next time."""
        self._give_back(len(self.pieces))
        for pos, st in enumerate(self.state):
            if st == self.PENDING:
                self.state[pos] = self.LEFT
        self._inflight = {}
        self.pool._stop_workers()
        if not self._closed:
            self._closed = True
            self.pool._lock.release()

    def wait(self, pos: int) -> bool:
        """Whether item pos passed (it is then in the execution cache). False: it failed, or
        it is the caller's to check."""
        with self._mutex:
            if self.state[pos] == self.PENDING:
                try:
                    self._collect(0)
                    # Not handed out yet: cheaper to check it than to wait (and the pieces
                    # before it, which the caller passed over, are no longer wanted).
                    self._give_back(self.piece_of[pos] + 1)
                    while self.state[pos] == self.PENDING:
                        if not any(self._inflight.values()):  # never spin on a lost result
                            self.state[pos] = self.LEFT
                            break
                        self._collect(None)
                except (EOFError, OSError):
                    log.warning("script check worker died; checks left to the caller")
                    self._abort()
            return self.state[pos] == self.PASSED

    def close(self) -> None:
        """Hand out nothing more, let the workers finish what they have (its results still
        count), and release the pool."""
        with self._mutex:
            self._give_back(len(self.pieces))
            if self._closed:
                return
            try:
                while any(self._inflight.values()):
                    self._collect(None)
            except (EOFError, OSError):
                log.warning("script check worker died; its last checks are lost")
                self._abort()
                return
            except BaseException:
                self._abort()
                raise
            self._closed = True
            self.pool._lock.release()
