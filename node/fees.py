"""Fee estimation from confirmed blocks (estimatesmartfee).

A simpler cousin of Core's CBlockPolicyEstimator: every transaction seen entering the
mempool is tracked with its fee rate and the height it arrived at; when a block confirms it,
the number of blocks it waited is recorded. An estimate for a target of N blocks is the
lowest fee-rate bucket (buckets 5% apart, as Core's) such that, among tracked transactions at
or above it, at least 85% (economical) or 95% (conservative) confirmed within N blocks —
counting transactions still waiting longer than N blocks as failures. Data points older than
MAX_AGE blocks are dropped. With too little data there is no estimate, and the caller falls
back (see the RPC).
"""

from __future__ import annotations

from collections import deque

MIN_BUCKET = 1000  # sat/kvB
BUCKET_SPACING = 1.05
MAX_BUCKET = 10_000_000
MAX_AGE = 1008  # blocks of history kept (Core's longest horizon)
MIN_DATA_POINTS = 10
SUCCESS_ECONOMICAL = 0.85
SUCCESS_CONSERVATIVE = 0.95
MAX_TARGET = 1008

_BUCKETS: list[int] = []
_b = float(MIN_BUCKET)
while _b <= MAX_BUCKET:
    _BUCKETS.append(int(_b))
    _b *= BUCKET_SPACING


class FeeEstimator:
    def __init__(self) -> None:
        self.tracked: dict[bytes, tuple[float, int]] = {}  # txid -> (sat/kvB, entry height)
        self.confirmed: deque[tuple[int, float, int]] = deque()  # (height, rate, blocks)
        self.best_height = 0

    def tx_added(self, txid: bytes, fee: int, vsize: int, height: int) -> None:
        self.tracked[txid] = (fee * 1000 / vsize, height)

    def tx_removed(self, txid: bytes) -> None:
        self.tracked.pop(txid, None)

    def block_connected(self, height: int, txids: list[bytes]) -> None:
        self.best_height = height
        for t in txids:
            info = self.tracked.pop(t, None)
            if info is not None:
                rate, entered = info
                self.confirmed.append((height, rate, max(1, height - entered)))
        while self.confirmed and self.confirmed[0][0] <= height - MAX_AGE:
            self.confirmed.popleft()

    def estimate(self, target: int, conservative: bool = False) -> int | None:
        """Fee rate in sat/kvB likely to confirm within `target` blocks, or None."""
        threshold = SUCCESS_CONSERVATIVE if conservative else SUCCESS_ECONOMICAL
        if len(self.confirmed) < MIN_DATA_POINTS:
            return None
        # Rates sorted from the highest, so each bucket's counts (rates at or above it)
        # follow from the previous bucket's in one pass.
        ok_rates = sorted((r for _, r, b in self.confirmed if b <= target), reverse=True)
        late_rates = sorted([r for _, r, b in self.confirmed if b > target]
                            + [r for r, h in self.tracked.values()
                               if self.best_height - h >= target], reverse=True)
        ok = late = 0
        best = None
        for bucket in reversed(_BUCKETS):
            while ok < len(ok_rates) and ok_rates[ok] >= bucket:
                ok += 1
            while late < len(late_rates) and late_rates[late] >= bucket:
                late += 1
            total = ok + late
            if total < MIN_DATA_POINTS:
                continue
            if ok / total >= threshold:
                best = bucket
            else:
                break  # lower buckets only add slower transactions
        return best
