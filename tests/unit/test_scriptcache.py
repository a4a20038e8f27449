"""The script execution cache as Core's: keyed by (wtxid, flags), looked up in the calling
process before anything reaches the workers, bounded (-maxsigcachesize); the mempool's
check under (standard flags, next block's flags) caches both."""

from __future__ import annotations

import hashlib
import random
import weakref

import pytest

import consensus.script.pool as pool_mod
from consensus.errors import ValidationError
from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.keys import pubkey, sign_p2wpkh_input
from consensus.script.pool import CheckSession, ScriptCheckPool, VerifyStream
from consensus.script.sighash import PrecomputedTxData
from consensus.script.standard import p2wpkh_script, p2wsh_script
from consensus.script.verify import (
    SCRIPT_EXECUTION_CACHE,
    ScriptExecutionCache,
    verify_transaction,
)
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.scriptcheck import MAX_DROP_LATER, ScriptChecker, cache_entries, configure_caches

BLOCK = F.MANDATORY_SCRIPT_VERIFY_FLAGS
STD = F.STANDARD_SCRIPT_VERIFY_FLAGS
DROP_TRUE = b"\x75\x51"  # OP_DROP OP_1: any one witness item spends it


def p2wpkh_tx(rng: random.Random, n_in: int = 2) -> tuple[Transaction, list[TxOut]]:
    keys = [rng.randbytes(32) for _ in range(n_in)]
    spent = [TxOut(rng.randrange(10**4, 10**8), p2wpkh_script(hash160(pubkey(k))))
             for k in keys]
    tx = Transaction(2, [TxIn(OutPoint(rng.randbytes(32), i), b"", 0xFFFFFFFE)
                         for i in range(n_in)], [TxOut(1000, b"\x00\x14" + rng.randbytes(20))])
    txdata = PrecomputedTxData(tx, spent)
    for i, k in enumerate(keys):
        sign_p2wpkh_input(tx, i, k, spent[i].value, txdata=txdata)
    return tx, spent


def drop_true_tx(rng: random.Random, item: bytes) -> tuple[Transaction, list[TxOut]]:
    spk = p2wsh_script(hashlib.sha256(DROP_TRUE).digest())
    tx = Transaction(2, [TxIn(OutPoint(rng.randbytes(32), 0), b"", 0xFFFFFFFE, [item, DROP_TRUE])],
                     [TxOut(1000, b"\x51")])
    return tx, [TxOut(5000, spk)]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The txids ScriptChecker(workers=0) really checks (the pool's in-process verifier)."""
    checked: list[bytes] = []
    real = pool_mod.verify_transaction

    def counting(tx, spent, flags, **kw):
        checked.append(tx.txid)
        return real(tx, spent, flags, **kw)

    monkeypatch.setattr(pool_mod, "verify_transaction", counting)
    SCRIPT_EXECUTION_CACHE.clear()
    return checked


def test_a_transaction_checked_under_the_block_flags_is_not_checked_again(counted) -> None:
    rng = random.Random(1)
    tx, spent = p2wpkh_tx(rng)
    other, other_spent = p2wpkh_tx(rng)
    # What the mempool does on acceptance: standard flags, then the next block's.
    verify_transaction(tx, spent, STD, cache=SCRIPT_EXECUTION_CACHE)
    verify_transaction(tx, spent, BLOCK, cache=SCRIPT_EXECUTION_CACHE)
    checker = ScriptChecker(workers=0)
    checker.check_block([(tx, spent, BLOCK), (other, other_spent, BLOCK)])
    assert counted == [other.txid]  # the cached one was skipped
    assert checker.stats == {"blocks": 1, "txs_cached": 1, "txs_checked": 1,
                             "inputs_checked": 2}
    # Connecting a block only consults the cache (Core's ConnectBlock): checked again ...
    checker.check_block([(other, other_spent, BLOCK)])
    assert counted == [other.txid, other.txid]
    # ... unless the check stores (Core's TestBlockValidity): then found.
    checker.check_block([(other, other_spent, BLOCK)], store=True)
    checker.check_block([(other, other_spent, BLOCK)])
    assert counted == [other.txid] * 3


def test_a_block_does_not_consult_an_empty_cache(counted) -> None:
    """Nothing can hit in an empty cache (an import, an initial sync), so a connecting block
    computes no keys; once something is cached, it looks its transactions up."""
    tx, spent = p2wpkh_tx(random.Random(21))
    other, other_spent = p2wpkh_tx(random.Random(22))
    checker = ScriptChecker(workers=0)
    checker.check_block([(tx, spent, BLOCK)])
    assert (SCRIPT_EXECUTION_CACHE.hits, SCRIPT_EXECUTION_CACHE.misses) == (0, 0)
    assert len(SCRIPT_EXECUTION_CACHE) == 0
    verify_transaction(other, other_spent, BLOCK, cache=SCRIPT_EXECUTION_CACHE)
    checker.check_block([(tx, spent, BLOCK), (other, other_spent, BLOCK)])
    assert SCRIPT_EXECUTION_CACHE.hits == 1 and SCRIPT_EXECUTION_CACHE.misses >= 1
    assert counted == [tx.txid, tx.txid]  # (other: found)


def test_another_flag_set_misses(counted) -> None:
    tx, spent = p2wpkh_tx(random.Random(2))
    verify_transaction(tx, spent, STD, cache=SCRIPT_EXECUTION_CACHE)
    checker = ScriptChecker(workers=0)
    # Checked under the standard flags only: a block (fewer flags) still checks it ...
    checker.check_block([(tx, spent, BLOCK)], store=True)
    # ... and so does a block under more flags than that.
    checker.check_block([(tx, spent, BLOCK | F.NULLFAIL)])
    assert counted == [tx.txid, tx.txid]
    checker.check_block([(tx, spent, BLOCK)])
    assert counted == [tx.txid, tx.txid]
    cache = ScriptExecutionCache()
    assert len({cache.key(tx, f) for f in (0, BLOCK, STD, BLOCK | F.NULLFAIL)}) == 4


def test_another_witness_misses(counted) -> None:
    rng = random.Random(3)
    tx, spent = drop_true_tx(rng, b"first")
    verify_transaction(tx, spent, BLOCK, cache=SCRIPT_EXECUTION_CACHE)
    twin = tx.copy()
    twin.vin[0].witness = [b"second", DROP_TRUE]
    twin.rehash()
    assert twin.txid == tx.txid and twin.wtxid != tx.wtxid
    checker = ScriptChecker(workers=0)
    checker.check_block([(twin, spent, BLOCK)])
    assert counted == [twin.txid]
    # And a witness that does not pass is never taken for the cached one.
    bad = tx.copy()
    bad.vin[0].witness = [b"third", b"\x75\x00"]  # OP_DROP OP_0: not the committed script
    bad.rehash()
    with pytest.raises(ValidationError) as err:
        checker.check_block([(bad, spent, BLOCK)])
    assert err.value.reason.startswith("block-script-verify-flag-failed")


def test_eviction_at_the_bound() -> None:
    cache = ScriptExecutionCache(max_entries=8)
    rng = random.Random(4)
    txs = [drop_true_tx(rng, bytes([i]))[0] for i in range(20)]
    for tx in txs:
        cache.add(cache.key(tx, BLOCK))
        assert len(cache) <= 8
    assert cache.contains(cache.key(txs[-1], BLOCK))  # the newest stay
    assert not cache.contains(cache.key(txs[0], BLOCK))  # the oldest went first
    cache.resize(3)
    assert len(cache) == 3 and cache.contains(cache.key(txs[-1], BLOCK))
    assert cache.hits == 2 and cache.misses == 1


def test_maxsigcachesize_splits_between_the_two_caches() -> None:
    from consensus.script.sigcheck import SIGNATURE_CACHE
    from consensus.script.verify import CACHE_ENTRY_BYTES

    assert cache_entries(32) == 16 * 2**20 // CACHE_ENTRY_BYTES  # half each, as Core
    assert cache_entries(0) == cache_entries(-5) == 2  # the smallest cache there is
    try:
        n = configure_caches(1)
        assert SIGNATURE_CACHE.max_entries == SCRIPT_EXECUTION_CACHE.max_entries == n
        for i in range(n + 50):
            SCRIPT_EXECUTION_CACHE.add(i.to_bytes(32, "little"))
        assert len(SCRIPT_EXECUTION_CACHE) <= n
    finally:
        configure_caches()
        SCRIPT_EXECUTION_CACHE.clear()


def test_workers_get_only_the_misses() -> None:
    """Half of a large batch in the cache: only the other half's inputs are dispatched."""
    rng = random.Random(5)
    items = [(*p2wpkh_tx(rng, 3), BLOCK) for _ in range(60)]
    cache = ScriptExecutionCache()
    for tx, spent, flags in items[::2]:
        verify_transaction(tx, spent, flags, cache=cache)
    pool = ScriptCheckPool(workers=1, min_parallel_inputs=1)
    try:
        sent: list[int] = []
        real = pool._payload

        def payload(items_, chunk, packed, use_sigcache):
            sent.extend(pos for pos, _, _ in chunk)
            return real(items_, chunk, packed, use_sigcache)

        pool._payload = payload  # type: ignore[method-assign]
        assert pool.verify_many(items, cache=cache) == (30, 90)
        assert set(sent) == set(range(1, 60, 2))
        sent.clear()
        assert pool.verify_many(items, cache=cache) == (60, 0)
        assert sent == []
    finally:
        pool.close()


def test_stream_with_two_flag_sets_caches_both() -> None:
    """The mempool's batches: a worker checks under both sets; both are cached."""
    rng = random.Random(6)
    items = [(*p2wpkh_tx(rng, 2), (STD, BLOCK)) for _ in range(10)]
    bad_tx, bad_spent = p2wpkh_tx(rng, 2)
    bad_tx.vin[1].witness = [bad_tx.vin[0].witness[0], bad_tx.vin[1].witness[1]]
    bad_tx.rehash()
    items.append((bad_tx, bad_spent, (STD, BLOCK)))
    cache = ScriptExecutionCache()
    pool = ScriptCheckPool(workers=1)
    try:
        with VerifyStream(pool, piece_inputs=4, cache=cache) as stream:
            stream.add(items)
            results = [stream.wait(pos) for pos in range(len(items))]
        for (tx, _, _), ok in zip(items, results, strict=True):
            assert cache.contains(cache.key(tx, STD)) == ok
            assert cache.contains(cache.key(tx, BLOCK)) == ok
        assert not results[-1]
        assert sum(results) >= 4  # at least the two pieces handed out at once came back
    finally:
        pool.close()


# -- dispatch: guided chunks, the caller checking beside the workers ---------------------------


def test_chunks_shrink_towards_the_end_and_cover_every_input_in_order() -> None:
    rng = random.Random(7)
    items = [(*p2wpkh_tx(rng, 1 + k % 3), BLOCK) for k in range(300)]
    n = sum(len(tx.vin) for tx, _, _ in items)
    pool = ScriptCheckPool(workers=2, max_chunk_inputs=64, min_chunk_inputs=4)
    chunks = pool._chunks(items, list(range(len(items))), n)
    sizes = [sum(end - start for _, start, end in c) for c in chunks]
    assert sum(sizes) == n and max(sizes) <= 64
    assert sizes[0] == 64 and sizes[-2] <= 8  # large first, small last
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    flat = [(pos, i) for c in chunks for pos, start, end in c for i in range(start, end)]
    assert flat == [(pos, i) for pos, (tx, _, _) in enumerate(items) for i in range(len(tx.vin))]


def test_caller_checks_beside_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(8)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(60)]
    here: list[int] = []
    real = pool_mod._check_here

    def counting(items_, chunk, *rest):
        here.append(len(chunk))
        return real(items_, chunk, *rest)

    monkeypatch.setattr(pool_mod, "_check_here", counting)
    pool = ScriptCheckPool(workers=1, caller_checks=True, max_chunk_inputs=8,
                           min_chunk_inputs=2)
    try:
        assert pool.verify_many(items, cache=None) == (0, 120)
        assert here  # the caller took chunks the worker had not been given
        # The first failure in input order is reported, whoever checked it.
        for bad in (59, 3, 30):
            tx = items[bad][0]
            tx.vin[1].witness = [tx.vin[0].witness[0], tx.vin[1].witness[1]]
            tx.rehash()
        with pytest.raises(pool_mod.ScriptError) as err:
            pool.verify_many(items, cache=None)
        assert (err.value.txid, err.value.input_index) == (items[3][0].txid, 1)
    finally:
        pool.close()


def test_default_checker_is_cores_minus_one_workers_and_the_caller(monkeypatch) -> None:
    import node.scriptcheck as sc

    monkeypatch.setattr(sc.os, "cpu_count", lambda: 2)
    auto = ScriptChecker()
    assert (auto.pool.workers, auto.pool.caller_checks) == (1, True)
    explicit = ScriptChecker(2)  # -par=2: two worker processes, as before
    assert (explicit.pool.workers, explicit.pool.caller_checks) == (2, False)
    monkeypatch.setattr(sc.os, "cpu_count", lambda: 1)
    assert (ScriptChecker().pool.workers, ScriptChecker().pool.caller_checks) == (0, False)


# -- CheckSession: a block's checks added as they are prepared ---------------------------------


def test_session_hands_out_chunks_while_items_are_still_being_added() -> None:
    rng = random.Random(9)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(60)]
    cache = ScriptExecutionCache()
    for tx, spent, flags in items[:10]:
        verify_transaction(tx, spent, flags, cache=cache)
    pool = ScriptCheckPool(workers=1, caller_checks=True, min_parallel_inputs=16)
    try:
        with CheckSession(pool, cache=cache, stream_chunk_inputs=8) as session:
            for item in items[:40]:
                session.add(item)
            assert session._next > 0  # the worker has chunks before the batch is complete
            for item in items[40:]:
                session.add(item)
            assert session.finish() == (10, 100)
        assert all(cache.contains(cache.key(tx, BLOCK)) for tx, _, _ in items)
        # The pool is free for the next batch.
        assert pool.verify_many(items, cache=None) == (0, 120)
    finally:
        pool.close()


def test_session_reports_the_first_failure_in_order_and_caches_nothing() -> None:
    rng = random.Random(10)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(50)]
    for bad in (45, 12):
        tx = items[bad][0]
        tx.vin[0].witness = [tx.vin[1].witness[0], tx.vin[0].witness[1]]
        tx.rehash()
    cache = ScriptExecutionCache()
    pool = ScriptCheckPool(workers=1, caller_checks=True, min_parallel_inputs=16)
    try:
        with CheckSession(pool, cache=cache, stream_chunk_inputs=8) as session:
            for item in items:
                session.add(item)
            with pytest.raises(pool_mod.ScriptError) as err:
                session.finish()
        assert (err.value.txid, err.value.input_index) == (items[12][0].txid, 0)
        assert len(cache) == 0
    finally:
        pool.close()


def test_session_closed_unfinished_leaves_the_pool_clean() -> None:
    """The chain gave up on the block half-way (a missing input): the chunks in flight are
    drained, and the next batch gets its own answers."""
    rng = random.Random(11)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(40)]
    tx = items[5][0]
    tx.vin[0].witness = [tx.vin[1].witness[0], tx.vin[0].witness[1]]
    tx.rehash()
    pool = ScriptCheckPool(workers=1, min_parallel_inputs=16)
    try:
        with CheckSession(pool, cache=None, stream_chunk_inputs=8) as session:
            for item in items:
                session.add(item)
            assert session._next > 0
        good = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(40)]
        assert pool.verify_many(good, cache=None) == (0, 80)
    finally:
        pool.close()


def test_session_small_batch_and_dead_worker_are_checked_in_process() -> None:
    import os
    import signal

    rng = random.Random(12)
    pool = ScriptCheckPool(workers=1, min_parallel_inputs=64)
    try:
        small = CheckSession(pool, cache=None)
        for _ in range(5):
            small.add((*p2wpkh_tx(rng, 2), BLOCK))
        assert small.finish() == (0, 10)
        assert pool._procs == []  # never needed the workers
        pool.start()
        items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(60)]
        with CheckSession(pool, cache=None, stream_chunk_inputs=8) as session:
            for item in items[:40]:
                session.add(item)
            os.kill(pool._procs[0].pid, signal.SIGKILL)
            pool._procs[0].join()
            for item in items[40:]:
                session.add(item)
            assert session.finish() == (0, 120)
        assert pool.verify_many(items, cache=None) == (0, 120)  # fresh workers
    finally:
        pool.close()


def test_block_scripts_error_is_cores_block_reason() -> None:
    rng = random.Random(13)
    tx, spent = p2wpkh_tx(rng, 2)
    tx.vin[0].witness = [tx.vin[1].witness[0], tx.vin[0].witness[1]]
    tx.rehash()
    checker = ScriptChecker(workers=0)
    with checker.begin_block() as block:
        block.add((tx, spent, BLOCK))
        with pytest.raises(ValidationError) as err:
            block.finish()
    assert err.value.reason.startswith("block-script-verify-flag-failed")
    assert checker.stats["blocks"] == 0


def test_session_runs_the_callers_idle_work_while_the_worker_checks() -> None:
    """finish(idle): the caller does its other work once while the worker has chunks in
    flight, and the first failure in order is still the one reported."""
    rng = random.Random(14)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(60)]
    for bad in (58, 50):
        tx = items[bad][0]
        tx.vin[1].witness = [tx.vin[0].witness[0], tx.vin[1].witness[1]]
        tx.rehash()
    pool = ScriptCheckPool(workers=1, caller_checks=True, min_parallel_inputs=16)
    runs: list[int] = []
    try:
        with CheckSession(pool, cache=None, stream_chunk_inputs=8) as session:
            for item in items:
                session.add(item)

            def idle() -> None:
                runs.append(sum(len(q) for q in session._inflight.values()))

            with pytest.raises(pool_mod.ScriptError) as err:
                session.finish([idle])
        assert (err.value.txid, err.value.input_index) == (items[50][0].txid, 1)
        assert len(runs) == 1 and runs[0] > 0  # the worker had chunks meanwhile
        good = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(40)]
        with CheckSession(pool, cache=None, stream_chunk_inputs=8) as session:
            for item in good:
                session.add(item)
            # Several tasks: each while the worker has chunks (fed again between them).
            assert session.finish([idle, idle]) == (0, 80)
        assert len(runs) == 3 and runs[1] > 0 and runs[2] > 0
        small = CheckSession(pool, cache=None)  # checked here: nothing to overlap with
        small.add(good[0])
        assert small.finish([lambda: runs.append(0)]) == (0, 2)
        assert len(runs) == 3
    finally:
        pool.close()


def test_session_expecting_a_large_batch_hands_out_the_first_chunk_early() -> None:
    rng = random.Random(15)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(60)]
    pool = ScriptCheckPool(workers=1, caller_checks=True, min_parallel_inputs=64,
                           min_chunk_inputs=8)
    try:
        for expect, early in ((120, True), (0, False)):
            with CheckSession(pool, cache=None, expect_inputs=expect) as session:
                for item in items[:5]:  # 10 inputs: far below min_parallel_inputs
                    session.add(item)
                assert (session._next > 0) is early
                for item in items[5:]:
                    session.add(item)
                assert session.finish() == (0, 120)
    finally:
        pool.close()


def test_par_counts_script_checking_threads_as_cores():
    """-par as Core's: n checkers in all, the validation thread one of them (n - 1 worker
    processes); 0 = one per core; negative = leave that many cores free; at most 15
    workers."""
    from node.scriptcheck import par_workers

    assert [par_workers(p, cores=4) for p in (None, 0, 1, 2, 3, -1, -3, -10)] == \
        [3, 3, 0, 1, 2, 2, 0, 0]
    assert par_workers(64, cores=4) == 15
    assert par_workers(0, cores=1) == 0


class _Blob:
    """Something to free (weakly referenceable)."""


def test_drop_later_frees_during_the_next_blocks_checks_and_keeps_few() -> None:
    rng = random.Random(31)
    items = [(*p2wpkh_tx(rng, 2), BLOCK) for _ in range(40)]
    checker = ScriptChecker(workers=1, caller_checks=True)
    try:
        kept = _Blob()
        ref = weakref.ref(kept)
        checker.drop_later(kept)
        del kept
        assert ref() is not None  # kept until a block is checked ...
        freed_while_checking: list[bool] = []
        with checker.while_checking(lambda: freed_while_checking.append(ref() is None)):
            checker.check_block(items)
        assert freed_while_checking == [True]  # ... and freed before the block's idle task
        assert ref() is None
        # Blocks stored but never connected: only a few are kept.
        refs = []
        for _ in range(3 * MAX_DROP_LATER):
            blob = _Blob()
            refs.append(weakref.ref(blob))
            checker.drop_later(blob)
            del blob
        assert sum(r() is not None for r in refs) <= MAX_DROP_LATER
    finally:
        checker.close()
