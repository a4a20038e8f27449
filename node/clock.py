"""The node's one clock for times that mean something on the chain or to peers (Core's
mockable GetTime): block time checks, the tip's age, mining, mempool entry times and expiry,
uptime, version and addr timestamps, bans, the wallets' times. `setmocktime` (regtest) and
-mocktime set it; 0 returns to the system clock. Intervals measured for the node's own pacing
keep using time.monotonic()."""

from __future__ import annotations

import time

_mock = 0  # seconds since the epoch; 0: the real clock


def now() -> float:
    return float(_mock) if _mock else time.time()


def now_int() -> int:
    return _mock if _mock else int(time.time())


def set_mock(t: int) -> None:
    global _mock
    _mock = int(t)


def mock() -> int:
    return _mock
