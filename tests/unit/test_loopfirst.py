"""The validation thread steps aside while the event loop has work (node/loopfirst.py)."""

from __future__ import annotations

import asyncio
import threading
import time

from consensus.amounts import COIN
from node import loopfirst
from node.loopfirst import LoopFirst, LoopFirstSelector
from tests.chainbuilder import spend_tx
from tests.unit.test_chain import cb, chain, mature  # noqa: F401  (fixtures)


def step_in_thread(gate: LoopFirst, adopt: bool = True) -> tuple[threading.Thread, list]:
    """A thread that (adopted by the gate, or not) calls step() once; its time in it."""
    took: list[float] = []

    def run() -> None:
        if adopt:
            gate.adopt_current_thread()
        t = time.perf_counter()
        gate.step()
        took.append(time.perf_counter() - t)

    th = threading.Thread(target=run)
    th.start()
    return th, took


def test_step_waits_while_the_loop_works_until_it_waits(monkeypatch):
    monkeypatch.setattr(loopfirst, "MAX_WAIT", 30.0)
    gate = LoopFirst()
    gate.loop_works()
    th, took = step_in_thread(gate)
    th.join(0.2)
    assert th.is_alive()  # held at its step while the loop works
    gate.loop_waits()
    th.join(5)
    assert not th.is_alive() and 0.2 <= took[0] < 5


def test_step_is_free_while_the_loop_waits_and_on_other_threads(monkeypatch):
    monkeypatch.setattr(loopfirst, "MAX_WAIT", 30.0)
    gate = LoopFirst()
    gate.adopt_current_thread()
    t = time.perf_counter()
    gate.step()  # the loop waits: no reason to step aside
    assert time.perf_counter() - t < 1
    gate.loop_works()
    th, took = step_in_thread(gate, adopt=False)  # not the adopted thread
    th.join(5)
    assert took and took[0] < 1
    gate.loop_waits()


def test_a_busy_loop_slows_the_thread_by_half_at_most(monkeypatch):
    """At most MAX_WAIT at a time, then as long a run without waiting: a loop that never
    waits does not stop validation."""
    monkeypatch.setattr(loopfirst, "MAX_WAIT", 0.05)
    gate = LoopFirst()
    gate.adopt_current_thread()
    gate.loop_works()
    t = time.perf_counter()
    gate.step()
    waited = time.perf_counter() - t
    assert 0.05 <= waited < 1
    t = time.perf_counter()
    gate.step()  # within its free run: no wait
    assert time.perf_counter() - t < 0.02
    time.sleep(waited + 0.01)
    t = time.perf_counter()
    gate.step()  # free run over: waits again
    assert time.perf_counter() - t >= 0.05


def test_the_selector_marks_the_loop_busy_only_while_it_runs_callbacks():
    gate = LoopFirst()
    loop = asyncio.SelectorEventLoop(LoopFirstSelector(gate))
    seen_idle: list[bool] = []

    async def main() -> list[bool]:
        in_callback = [gate.busy]
        await asyncio.sleep(0)
        in_callback.append(gate.busy)
        # While the loop sleeps in its selector, another thread sees it free.
        watcher = threading.Thread(
            target=lambda: (time.sleep(0.1), seen_idle.append(gate.busy)))
        watcher.start()
        await asyncio.sleep(0.2)
        watcher.join()
        in_callback.append(gate.busy)
        return in_callback

    try:
        assert loop.run_until_complete(main()) == [True, True, True]
    finally:
        loop.close()
    assert seen_idle == [False]


def test_block_connection_steps_per_transaction(chain, cb):  # noqa: F811
    """The chain's connect loop and the validation thread's own script checks call the
    pool's step (the daemon sets it to LoopFirst.step)."""
    blocks = mature(chain, cb)
    calls = []
    chain.scripts.pool.step = lambda: calls.append(1)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [24 * COIN, 24 * COIN])
    txs = [tx] + [spend_tx([(tx.txid, n)], [23 * COIN]) for n in range(2)]
    b = cb.next_block(blocks[-1], txs, fees=4 * COIN)
    chain.process_block(b)
    assert chain.tip.hash == b.hash
    assert len(calls) >= len(b.txs)


def test_daemon_adopts_its_validation_thread(tmp_path):
    """The daemon's validation executor adopts its thread at start (a wrong initializer
    would leave every step a no-op)."""
    from node.config import load_config
    from node.daemon import Node

    node = Node(load_config(["-regtest", f"-datadir={tmp_path}"]))
    try:
        ident = node.validation.submit(threading.get_ident).result(5)
        assert node.loop_first._thread == ident
        loop = node.new_event_loop()
        try:
            assert isinstance(loop._selector, LoopFirstSelector)  # type: ignore[attr-defined]
        finally:
            loop.close()
    finally:
        node.validation.shutdown()
