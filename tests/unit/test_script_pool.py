"""ScriptCheckPool: worker processes verifying a batch, the first failure reported by txid and
input index, the execution cache, concurrent callers, and recovery from a dead worker."""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.keys import (
    pubkey,
    sign_p2pkh_input,
    sign_p2tr_key_input,
    sign_p2wpkh_input,
    taproot_tweak_pubkey,
    xonly_pubkey,
)
from consensus.script.pool import TRANSPORTS, CheckSession, ScriptCheckPool, VerifyStream
from consensus.script.sighash import PrecomputedTxData
from consensus.script.standard import p2pkh_script, p2tr_script, p2wpkh_script
from consensus.script.verify import ScriptExecutionCache
from consensus.tx import OutPoint, Transaction, TxIn, TxOut

FLAGS = F.STANDARD_SCRIPT_VERIFY_FLAGS


def make_batch(n_tx: int, seed: int) -> list[tuple[Transaction, list[TxOut], int]]:
    rng = random.Random(seed)
    items = []
    for t in range(n_tx):
        n_in = 1 + t % 3
        keys = [rng.randbytes(32) for _ in range(n_in)]
        kinds = [("p2wpkh", "p2tr", "p2pkh")[(t + i) % 3] for i in range(n_in)]
        spent = []
        for kind, key in zip(kinds, keys, strict=True):
            if kind == "p2wpkh":
                spk = p2wpkh_script(hash160(pubkey(key)))
            elif kind == "p2pkh":
                spk = p2pkh_script(hash160(pubkey(key)))
            else:
                spk = p2tr_script(taproot_tweak_pubkey(xonly_pubkey(key))[0])
            spent.append(TxOut(rng.randrange(10**4, 10**8), spk))
        tx = Transaction(
            2,
            [TxIn(OutPoint(rng.randbytes(32), i), b"", 0xFFFFFFFE) for i in range(n_in)],
            [TxOut(1000, b"\x00\x14" + rng.randbytes(20))],
            0,
        )
        txdata = PrecomputedTxData(tx, spent)
        for i, (kind, key) in enumerate(zip(kinds, keys, strict=True)):
            if kind == "p2wpkh":
                sign_p2wpkh_input(tx, i, key, spent[i].value, txdata=txdata)
            elif kind == "p2pkh":
                sign_p2pkh_input(tx, i, key, txdata=txdata)
            else:
                sign_p2tr_key_input(tx, i, key, spent)
        items.append((tx, spent, FLAGS))
    return items


def break_input(items, t: int, i: int) -> None:
    tx = items[t][0]
    txin = tx.vin[i]
    if txin.witness:
        sig = txin.witness[0]
        txin.witness = [sig[:10] + bytes((sig[10] ^ 1,)) + sig[11:], *txin.witness[1:]]
    else:
        s = txin.script_sig
        txin.script_sig = s[:12] + bytes((s[12] ^ 1,)) + s[13:]
    tx.rehash()


@pytest.fixture(scope="module")
def pool():
    p = ScriptCheckPool(workers=2, min_parallel_inputs=10, chunks_per_worker=8,
                        min_chunk_inputs=4)
    yield p
    p.close()


def test_batch_passes_in_workers(pool: ScriptCheckPool) -> None:
    items = make_batch(60, 1)
    pool.verify_many(items, cache=None, use_sigcache=False)
    assert len(pool._procs) == 2 and all(p.is_alive() for p in pool._procs)


def test_first_failure_is_reported(pool: ScriptCheckPool) -> None:
    items = make_batch(60, 2)
    break_input(items, 47, 1)
    break_input(items, 20, 2)
    break_input(items, 55, 0)
    with pytest.raises(ScriptError) as e:
        pool.verify_many(items, cache=None, use_sigcache=False)
    assert (e.value.txid, e.value.input_index) == (items[20][0].txid, 2)
    assert e.value.code in ("EVAL_FALSE", "SCHNORR_SIG", "SIG_DER", "SIG_NULLFAIL")
    # The pool is still usable afterwards.
    pool.verify_many(make_batch(20, 3), cache=None, use_sigcache=False)


def test_transports_agree(pool: ScriptCheckPool) -> None:
    items = make_batch(30, 4)
    break_input(items, 17, 0)
    for transport in TRANSPORTS:
        p = ScriptCheckPool(workers=2, min_parallel_inputs=10, transport=transport)
        try:
            with pytest.raises(ScriptError) as e:
                p.verify_many(items, cache=None)
            assert (e.value.txid, e.value.input_index) == (items[17][0].txid, 0)
        finally:
            p.close()


def test_small_batches_stay_in_process() -> None:
    p = ScriptCheckPool(workers=2, min_parallel_inputs=1000)
    try:
        items = make_batch(10, 5)
        p.verify_many(items, cache=None)
        assert p._procs == []
        break_input(items, 3, 0)
        with pytest.raises(ScriptError) as e:
            p.verify_many(items, cache=None)
        assert (e.value.txid, e.value.input_index) == (items[3][0].txid, 0)
    finally:
        p.close()


def test_execution_cache_skips_verified_transactions(pool: ScriptCheckPool) -> None:
    items = make_batch(30, 6)
    cache = ScriptExecutionCache()
    pool.verify_many(items, cache=cache)
    assert len(cache) == 30
    # Everything cached: a closed pool is never asked (it would raise RuntimeError).
    closed = ScriptCheckPool(workers=2, min_parallel_inputs=1)
    closed.close()
    closed.verify_many(items, cache=cache)
    # Stricter flags than were verified: real work again.
    stricter = [(tx, spent, flags | F.SIGPUSHONLY) for tx, spent, flags in items]
    with pytest.raises(RuntimeError):
        closed.verify_many(stricter, cache=cache)


def test_concurrent_callers(pool: ScriptCheckPool) -> None:
    good = make_batch(40, 7)
    bad = make_batch(40, 8)
    break_input(bad, 33, 0)
    results: dict[str, object] = {}

    def run(name: str, items) -> None:
        try:
            for _ in range(3):
                pool.verify_many(items, cache=None, use_sigcache=False)
            results[name] = "ok"
        except ScriptError as e:
            results[name] = (e.txid, e.input_index)

    threads = [threading.Thread(target=run, args=("good", good)),
               threading.Thread(target=run, args=("bad", bad))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {"good": "ok", "bad": (bad[33][0].txid, 0)}


def test_dead_worker_is_survived() -> None:
    p = ScriptCheckPool(workers=2, min_parallel_inputs=10)
    try:
        items = make_batch(30, 9)
        p.verify_many(items, cache=None)
        victim = p._procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(5)
        p.verify_many(items, cache=None)  # verified in-process this time
        break_input(items, 13, 1)
        with pytest.raises(ScriptError) as e:
            p.verify_many(items, cache=None)  # workers restarted
        assert (e.value.txid, e.value.input_index) == (items[13][0].txid, 1)
        assert len(p._procs) == 2 and all(w.is_alive() for w in p._procs)
    finally:
        p.close()


# -- VerifyStream ------------------------------------------------------------------------------


def stream_of(pool, items, **kw) -> tuple[VerifyStream, ScriptExecutionCache]:
    cache = ScriptExecutionCache()
    stream = VerifyStream(pool, piece_inputs=4, cache=cache, **kw)
    stream.add(items)
    return stream, cache


def test_stream_reports_passes_and_never_a_failure(pool: ScriptCheckPool) -> None:
    items = make_batch(60, 10)
    break_input(items, 20, 0)
    stream, cache = stream_of(pool, items)
    with stream:
        results = [stream.wait(pos) for pos in range(len(items))]
    assert results[0]  # its piece was handed out when the items were added
    assert not results[20]
    for (tx, _, flags), ok in zip(items, results, strict=True):
        # Whatever passed is remembered; the broken one is not.
        assert cache.contains(cache.key(tx, flags)) == ok
    assert sum(results) > len(items) // 2
    # The pool is free again.
    pool.verify_many(make_batch(20, 11), cache=None)


def test_stream_gives_back_what_it_has_not_handed_out() -> None:
    p = ScriptCheckPool(workers=1)
    try:
        items = make_batch(60, 12)
        stream, cache = stream_of(p, items)
        with stream:
            last = len(items) - 1
            assert not stream.wait(last)  # not handed out: the caller's to check
            assert stream.state[last] == VerifyStream.LEFT
            # The two pieces in flight still come back; the rest was given back (but for
            # at most one more piece, if the worker was quick enough to be handed it).
            for pos in stream.pieces[0] + stream.pieces[1]:
                assert stream.wait(pos)
            states = [stream.state[pos] for pos in range(len(items))]
            assert VerifyStream.PENDING not in states[: stream.pieces[2][0]]
            assert states.count(VerifyStream.LEFT) >= len(items) - len(
                stream.pieces[0] + stream.pieces[1] + stream.pieces[2])
            # Items added later are handed out again.
            first = stream.add(make_batch(8, 13))
            assert stream.wait(first)
    finally:
        p.close()


def test_stream_close_keeps_results_in_flight() -> None:
    p = ScriptCheckPool(workers=1)
    try:
        items = make_batch(40, 14)
        stream, cache = stream_of(p, items)
        stream.close()
        sent = set(stream.pieces[0] + stream.pieces[1])
        for pos, (tx, _, flags) in enumerate(items):
            assert cache.contains(cache.key(tx, flags)) == (pos in sent)
            assert stream.wait(pos) == (pos in sent)
        stream.close()  # twice is harmless
    finally:
        p.close()


def test_stream_holds_the_pool_until_closed(pool: ScriptCheckPool) -> None:
    stream, _ = stream_of(pool, make_batch(20, 15))
    done = threading.Event()
    t = threading.Thread(target=lambda: (pool.verify_many(make_batch(20, 16), cache=None),
                                         done.set()))
    t.start()
    assert not done.wait(0.3)  # the other caller waits for the stream
    stream.close()
    t.join(30)
    assert done.is_set()


def test_stream_survives_a_dead_worker() -> None:
    p = ScriptCheckPool(workers=2)
    try:
        items = make_batch(60, 17)
        stream, cache = stream_of(p, items)
        victim = p._procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(5)
        with stream:
            results = [stream.wait(pos) for pos in range(len(items))]
        assert not all(results)  # what the dead worker had is left to the caller
        for (tx, _, flags), ok in zip(items, results, strict=True):
            assert cache.contains(cache.key(tx, flags)) == ok
        # Fresh workers for the next user.
        stream2, _ = stream_of(p, make_batch(10, 18))
        with stream2:
            assert stream2.wait(0)
        assert len(p._procs) == 2 and all(w.is_alive() for w in p._procs)
    finally:
        p.close()


def test_stream_without_workers_leaves_everything_to_the_caller() -> None:
    p = ScriptCheckPool(workers=0)
    items = make_batch(10, 19)
    stream, cache = stream_of(p, items)
    assert not any(stream.wait(pos) for pos in range(len(items)))
    assert len(cache) == 0
    stream.close()


def test_stream_need_not_wait_for_a_busy_pool(pool: ScriptCheckPool) -> None:
    holder, _ = stream_of(pool, make_batch(10, 20))
    try:
        items = make_batch(10, 21)
        other, cache = stream_of(pool, items, wait_for_pool=False)  # returns at once
        assert not any(other.wait(pos) for pos in range(len(items)))
        other.close()
        assert len(cache) == 0
    finally:
        holder.close()
    assert not pool._lock.locked()


def test_a_failed_start_stops_the_workers_it_started(monkeypatch) -> None:
    from multiprocessing.connection import Connection

    real = Connection.recv_bytes
    calls = []

    def second_fails(self, *a):
        calls.append(1)
        if len(calls) == 2:
            raise EOFError
        return real(self, *a)

    p = ScriptCheckPool(workers=2)
    try:
        monkeypatch.setattr(Connection, "recv_bytes", second_fails)
        with pytest.raises(EOFError):
            p.start()
        monkeypatch.undo()
        assert p._procs == [] and p._conns == []
        p.start()  # a later attempt starts afresh
        assert len(p._procs) == 2 and all(w.is_alive() for w in p._procs)
    finally:
        p.close()


def test_block_checks_look_up_a_filled_signature_cache_and_skip_an_empty_one(monkeypatch):
    """A block's checks only look the signature cache up (nothing stored, as Core's
    ConnectBlock). With the cache empty (an import, an initial sync) no lookup key is
    computed; once relayed transactions have filled it, the same checks hit it."""
    from consensus.script import sigcheck
    from consensus.script.verify import verify_transaction

    cache = sigcheck.SIGNATURE_CACHE
    keys: list[int] = []
    real_key = sigcheck.SignatureCache.key
    monkeypatch.setattr(sigcheck.SignatureCache, "key",
                        lambda self, *a: keys.append(1) or real_key(self, *a))
    items = make_batch(40, 12)
    p = ScriptCheckPool(workers=1, min_parallel_inputs=10, caller_checks=True,
                        min_chunk_inputs=4)
    saved = dict(cache._set)
    try:
        cache.clear()
        p.verify_many(items, cache=None)
        assert keys == [] and len(cache) == 0
        for tx, spent, flags in items:  # what the mempool leaves behind
            verify_transaction(tx, spent, flags, cache=None, sigcache=cache, store=True)
        filled, hits = len(cache), cache.hits
        assert filled > 0
        p.verify_many(items, cache=None)
        assert keys and cache.hits > hits  # the caller's share of the checks hit
        assert len(cache) == filled
        break_input(items, 31, 0)  # and a hit never stands in for a changed signature
        with pytest.raises(ScriptError) as e:
            p.verify_many(items, cache=None)
        assert (e.value.txid, e.value.input_index) == (items[31][0].txid, 0)
    finally:
        p.close()
        cache.clear()
        cache._set.update(saved)


def test_the_calling_thread_steps_between_the_transactions_it_checks() -> None:
    """pool.step runs before each transaction the caller checks itself (the node's event
    loop goes first there: node/loopfirst.py), in a block's session and in verify_many."""
    items = make_batch(40, 13)
    p = ScriptCheckPool(workers=1, min_parallel_inputs=10, caller_checks=True,
                        min_chunk_inputs=4)
    steps: list[int] = []
    p.step = lambda: steps.append(1)
    try:
        p.verify_many(items, cache=None)
        assert 0 < len(steps) <= sum(len(tx.vin) for tx, _, _ in items)
        steps.clear()
        with CheckSession(p, cache=None) as session:
            for item in items:
                session.add(item)
            session.finish()
        assert steps
    finally:
        p.close()
    alone = ScriptCheckPool(workers=0)  # (-par=1, or one core: every check in this thread)
    alone.step = lambda: steps.append(1)
    steps.clear()
    alone.verify_many(items, cache=None)
    assert len(steps) == len(items)
