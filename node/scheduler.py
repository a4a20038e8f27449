"""Periodic and delayed jobs on the event loop (Core's CScheduler), so that `mockscheduler`
can bring every one of them forward at once, as Core's tests do."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable

log = logging.getLogger("minibtcd")


class Scheduler:
    def __init__(self) -> None:
        self._jobs: list[tuple[float, int, Callable[[], None], float | None]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def schedule(self, fn: Callable[[], None], delay: float,
                 every: float | None = None) -> None:
        """Run fn on the loop after `delay` seconds, then every `every` seconds if given.
        Call from the loop's thread."""
        heapq.heappush(self._jobs, (time.monotonic() + delay, next(self._seq), fn, every))
        self._wake.set()

    def mock_forward(self, seconds: float) -> None:
        """Everything due within `seconds` runs now; the rest comes that much sooner."""
        self._jobs = [(when - seconds, n, fn, every) for when, n, fn, every in self._jobs]
        heapq.heapify(self._jobs)
        self._wake.set()

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            while self._jobs and self._jobs[0][0] <= now:
                when, _, fn, every = heapq.heappop(self._jobs)
                try:
                    fn()
                except Exception:  # one failing job must not stop the others
                    log.exception("scheduled job %s failed", getattr(fn, "__name__", fn))
                if every is not None:
                    heapq.heappush(self._jobs, (max(when + every, now), next(self._seq), fn,
                                                every))
            self._wake.clear()
            timeout = self._jobs[0][0] - time.monotonic() if self._jobs else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
