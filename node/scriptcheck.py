"""Script checks for connecting blocks, on consensus.script's worker-process pool (small
blocks stay in-process), failures turned into Core's block reject reason; and the sizes of
the signature and script execution caches (-maxsigcachesize).

A transaction the mempool accepted was checked under the next block's flags and is in the
script execution cache: check_block looks every transaction up in this process first, and
only the misses are dispatched to the workers (`stats` counts both; a debug line in the
"validation" category says how many of each block's transactions were found there)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from consensus.errors import ValidationError
from consensus.script.errors import ScriptError
from consensus.script.pool import CheckSession, ScriptCheckPool
from consensus.script.sigcheck import SIGNATURE_CACHE
from consensus.script.verify import CACHE_ENTRY_BYTES, SCRIPT_EXECUTION_CACHE
from consensus.tx import Transaction, TxOut

log = logging.getLogger("validation")

Job = tuple[Transaction, list[TxOut], int]

# Core's DEFAULT_MAX_SIG_CACHE_BYTES, in MiB: both caches together.
DEFAULT_MAX_SIG_CACHE_MIB = 32


def cache_entries(max_mib: int) -> int:
    """Entries each cache gets for -maxsigcachesize=max_mib: as Core, half of the bytes each
    (a negative size counts as 0, which leaves the smallest cache there is)."""
    return max(2, max(0, max_mib) * (1 << 20) // 2 // CACHE_ENTRY_BYTES)


def configure_caches(max_mib: int = DEFAULT_MAX_SIG_CACHE_MIB) -> int:
    """Bound this process's signature and script execution caches (-maxsigcachesize);
    returns the entries each may hold."""
    n = cache_entries(max_mib)
    SIGNATURE_CACHE.resize(n)
    SCRIPT_EXECUTION_CACHE.resize(n)
    return n


MAX_SCRIPTCHECK_WORKERS = 15  # Core's MAX_SCRIPTCHECK_THREADS
MAX_DROP_LATER = 4  # objects drop_later keeps at most (a block connected frees two)


def par_workers(par: int | None, cores: int | None = None) -> int:
    """Worker processes for Core's -par=<n>: n script-checking threads in all, the validation
    thread being one of them; 0 (the default) = one per core, a negative n leaves that many
    cores free; at most MAX_SCRIPTCHECK_WORKERS workers. -par=1: every check in-process."""
    n = 0 if par is None else par
    if n <= 0:
        n += cores if cores is not None else (os.cpu_count() or 1)
    return min(max(n - 1, 0), MAX_SCRIPTCHECK_WORKERS)


class ScriptChecker:
    """workers: processes in the pool (0 = verify in the calling thread). None = Core's
    automatic -par: as many checkers as cores, the calling (validation) thread being one of
    them, as Core's master thread joins its check queue: one worker fewer than cores, and
    caller_checks. caller_checks (default: only in that automatic case): the calling thread
    checks chunks of a block beside the workers instead of only waiting for them (see
    ScriptCheckPool). Measured with scripts/bench/scripts.py: 1 worker + the caller cost
    1.11 x one process's CPU for a 3,000-input block, 2 workers 1.18 x (the caller checks
    its share with no packing, pickling or unpacking)."""

    def __init__(self, workers: int | None = None, caller_checks: bool | None = None) -> None:
        if workers is None:
            workers = par_workers(None)
            if caller_checks is None:
                caller_checks = workers > 0
        self.pool = ScriptCheckPool(workers=workers, caller_checks=bool(caller_checks))
        # Totals over the blocks checked: transactions found in the script execution cache,
        # transactions and inputs that had to be checked.
        self.stats = {"blocks": 0, "txs_cached": 0, "txs_checked": 0, "inputs_checked": 0}
        self._local = threading.local()  # the calling thread's idle task (while_checking)
        self._garbage: list[object] = []  # see drop_later

    @classmethod
    def from_par(cls, par: int | None) -> ScriptChecker:
        """The checker for Core's -par=<n> (see par_workers): the calling thread checks
        beside the workers whenever there are any."""
        workers = par_workers(par)
        return cls(workers, caller_checks=workers > 0)

    @property
    def parallel(self) -> bool:
        return self.pool.workers > 0

    def check_block(self, jobs: list[Job], store: bool = False) -> None:
        """Check a block's (tx, spent outputs, flags) jobs; raises ValidationError. store:
        see begin_block."""
        if not jobs:
            return
        with self.begin_block(store=store) as block:
            for job in jobs:
                block.add(job)
            block.finish()

    @contextmanager
    def while_checking(self, task: Callable[[], None]) -> Iterator[None]:
        """Inside `with checker.while_checking(task):`, while a block's scripts are checked
        in the workers, this thread runs `task` (at most once per block) first, e.g.
        an import parses and checks its next block, which would otherwise leave the
        workers idle later. The task must not depend on the block being connected, and
        should be idempotent: it may run for several blocks, or for none (small blocks
        are checked in this thread, with nothing to overlap)."""
        self._local.task = task
        try:
            yield
        finally:
            self._local.task = None

    def begin_block(self, n_inputs: int = 0, store: bool = False) -> BlockScripts:
        """Checks of a block whose jobs are added as they are prepared (the workers start on
        them at once): `with checker.begin_block() as b: b.add(job) ...; b.finish()`.
        n_inputs, the block's input count if known, lets a large block's first chunk go to
        the workers after a few transactions (CheckSession's expect_inputs). store: put the
        transactions that pass in the script execution cache, as Core's TestBlockValidity
        does; a block being connected only looks them up (Core's ConnectBlock)."""
        return BlockScripts(self, n_inputs, store)

    def drop_later(self, obj: object) -> None:
        """Keep obj until the next block's scripts are being checked, and drop it then.
        Freeing a parsed block or a block's check session frees thousands of objects
        (0.5 ms each on connect.py's blocks); between two blocks the workers would wait for
        it, during the checks they do not. At most a few wait: blocks stored but not
        connected (out of order, a side branch) must not pile up in memory."""
        if len(self._garbage) >= MAX_DROP_LATER:
            self._garbage.clear()
        self._garbage.append(obj)

    def _done(self, n_jobs: int, cached: int, inputs: int) -> None:
        st = self.stats
        st["blocks"] += 1
        st["txs_cached"] += cached
        st["txs_checked"] += n_jobs - cached
        st["inputs_checked"] += inputs
        log.debug("block scripts: %d of %d transactions in the script execution cache, "
                  "%d inputs checked", cached, n_jobs, inputs)

    def close(self) -> None:
        self.pool.close()


class BlockScripts:
    """The script checks of one block, added job by job (a CheckSession on the checker's
    pool with the process's script execution cache); finish() raises Core's
    block-script-verify-flag-failed ValidationError for the first failing input."""

    def __init__(self, checker: ScriptChecker, n_inputs: int = 0, store: bool = False) -> None:
        self.checker = checker
        self.session = CheckSession(checker.pool, cache=SCRIPT_EXECUTION_CACHE,
                                    expect_inputs=n_inputs, store=store)
        self.add = self.session.add

    def __enter__(self) -> BlockScripts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finish(self) -> None:
        task = getattr(self.checker._local, "task", None)
        garbage = self.checker._garbage
        idle = [garbage.clear] if task is None else [garbage.clear, task]
        try:
            cached, inputs = self.session.finish(idle)
        except ScriptError as err:
            where = f" in transaction {err.txid[::-1].hex()} input {err.input_index}" if (
                err.txid is not None) else ""
            raise ValidationError(
                f"block-script-verify-flag-failed ({err.message})", 100, f"{err.code}{where}"
            ) from None
        garbage.clear()  # (if there was no checking to overlap with)
        self.checker._done(len(self.session.items), cached, inputs)

    def close(self) -> None:
        self.session.close()
