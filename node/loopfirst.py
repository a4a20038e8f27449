"""The event loop first: the validation thread steps aside while the loop has work.

The node's event loop (P2P and RPC) and its validation thread share the GIL. Python hands
the GIL from a thread running Python to one that waits for it only every switch interval
(1 ms, set by the daemon), and the loop gives it up at each system call of its callbacks (a
socket read, write, accept, close): during a sync each callback of a few tenths of a
millisecond took several milliseconds, in GIL hand-overs, and an RPC call several of them.

So the loop marks itself busy from the moment its selector returns events until it waits in
the selector again (LoopFirstSelector), and the validation thread, at its steps (a
transaction connected, a transaction's inputs checked), waits while the loop is busy. It
waits at most MAX_WAIT at a time, and after waiting runs at least as long as it waited
before it waits again: a loop kept busy without pause (RPC calls back to back) slows
validation to half speed at worst, never stops it.
"""

from __future__ import annotations

import selectors
import threading
import time

MAX_WAIT = 0.002  # seconds the validation thread waits for the loop at one step, at most


class LoopFirst:
    def __init__(self) -> None:
        self.busy = False  # the loop is running callbacks
        self._aside = False  # the validation thread waits for the loop (_loop_waits)
        self._loop_waits = threading.Event()
        self._thread: int | None = None  # the thread that steps aside
        self._free_until = 0.0  # perf_counter time before which it does not step aside

    # -- the loop's side (LoopFirstSelector): a few attribute reads and writes, no lock ----

    def loop_waits(self) -> None:
        self.busy = False
        if self._aside:
            self._loop_waits.set()

    def loop_works(self) -> None:
        self.busy = True

    # -- the validation thread's side -------------------------------------------------------

    def adopt_current_thread(self) -> None:
        """The calling thread is the one that steps aside (the validation executor's
        initializer)."""
        self._thread = threading.get_ident()

    def step(self) -> None:
        """A point where the validation thread may let the loop run first (cheap when the
        loop is idle, and a no-op on any other thread)."""
        if self.busy and threading.get_ident() == self._thread:
            self._step_aside()

    def _step_aside(self) -> None:
        start = time.perf_counter()
        if start < self._free_until:
            return
        self._loop_waits.clear()
        self._aside = True
        # (busy read again after _aside is set: loop_waits, which writes busy before it
        # reads _aside, either is seen here or sees _aside and wakes this wait)
        if self.busy:
            self._loop_waits.wait(MAX_WAIT)
        self._aside = False
        end = time.perf_counter()
        self._free_until = end + (end - start)


class LoopFirstSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's selector, telling `gate` when the loop waits and when it works."""

    def __init__(self, gate: LoopFirst) -> None:
        super().__init__()
        self.gate = gate

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        self.gate.loop_waits()
        try:
            return super().select(timeout)
        finally:
            self.gate.loop_works()
