"""Fee estimation from confirmed transactions: Bitcoin Core's block policy estimator
(CBlockPolicyEstimator, src/policy/fees/block_policy_estimator.cpp), behind estimatesmartfee
and estimaterawfee.

How it works (the facts are Core's; the code is ours):

- Fee rates (sat/kvB) fall into buckets spaced 5% apart, from 100 sat/kvB (0.1 sat/vB, the
  minimum relay fee) up to 1e7, plus a catch-all bucket above.
- Three horizons keep statistics, each an exponentially decaying average per bucket, decayed
  once per block: short (decay .962, confirmations tracked in periods of 1 block up to 12),
  medium (.9952, periods of 2 blocks up to 48) and long (.99931, periods of 24 blocks up to
  1008). For each bucket and period: how many transactions confirmed within that many
  periods, how many left the mempool unconfirmed after that many periods (failures), how
  many confirmed at all, and the sum of their fee rates.
- A transaction is tracked from the moment it enters the mempool, if the estimator has seen
  the block the node is at (its entry height is the last block the estimator processed), the
  node is not in initial block download, it has no unconfirmed parents, it was not put back
  after a reorg and was not submitted as part of a package. A tracked transaction still in
  the mempool counts against every target shorter than its wait so far.
- EstimateMedianVal scans buckets from the highest fee rate down, grouping neighbours until a
  group holds enough data (on average 0.5 transactions per block for the short horizon, 0.1
  otherwise, i.e. that many divided by 1 - decay). Each group either passes (confirmed within
  the target / everything counted >= the threshold) or fails; groups with too little data are
  never judged, so empty low buckets cannot pull the answer down. The answer is the average
  fee rate in the bucket holding the median transaction of the lowest passing range.
- estimateSmartFee asks for 60% at target/2, 85% at the target and 95% at twice the target,
  each on the shortest horizon that tracks that target (also letting a shorter horizon at
  its longest target lower the answer), and takes the highest. Conservative estimates also
  require 95% at twice the target on the longer horizons. Target 1 is answered as 2; targets
  are capped at half the number of blocks the estimator has data for (MaxUsableEstimate);
  the target used is reported back ("blocks").
- State persists in <datadir>/fee_estimates.dat in Core's format (version 309900, the one
  without the unused dummy field): written at shutdown (after recording the transactions
  still in the mempool as unconfirmed) and every hour, read at start-up unless older than 60
  hours (-acceptstalefeeestimates reads it anyway). A file of another version or a damaged
  one is ignored with a warning.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from consensus.serialize import DeserializationError, Reader, compact_size

log = logging.getLogger("estimatefee")

FEE_ESTIMATES_FILE = "fee_estimates.dat"
FILE_VERSION = 309900  # written, and the highest read
MAX_FILE_AGE = 60 * 3600  # seconds: an older file is not read (-acceptstalefeeestimates)
FLUSH_INTERVAL = 3600  # seconds between writes of the file while running

MIN_BUCKET_FEERATE = 100.0  # sat/kvB
MAX_BUCKET_FEERATE = 1e7
FEE_SPACING = 1.05
INF_FEERATE = 1e99

SHORT, MEDIUM, LONG = "short", "medium", "long"
# horizon -> (periods tracked, blocks per period, decay per block)
HORIZONS = {SHORT: (12, 1, 0.962), MEDIUM: (24, 2, 0.9952), LONG: (42, 24, 0.99931)}
MAX_TARGET = 42 * 24  # 1008: the longest horizon's reach

HALF_SUCCESS_PCT = 0.6  # at target / 2
SUCCESS_PCT = 0.85  # at the target
DOUBLE_SUCCESS_PCT = 0.95  # at 2 * target
SUFFICIENT_FEETXS = 0.1  # transactions per block a bucket range needs (medium, long)
SUFFICIENT_TXS_SHORT = 0.5  # the same for the short horizon
OLDEST_ESTIMATE_HISTORY = 6 * 1008  # blocks after which a file's history no longer counts

_U32 = 0xFFFFFFFF


def default_buckets() -> list[float]:
    """Bucket upper bounds (inclusive), computed with the same double arithmetic as Core."""
    out = []
    b = MIN_BUCKET_FEERATE
    while b <= MAX_BUCKET_FEERATE:
        out.append(b)
        b *= FEE_SPACING
    out.append(INF_FEERATE)
    return out


def fee_per_kvb(fee: int, vsize: int) -> int:
    """CFeeRate(fee, vsize).GetFeePerK(): sat/kvB rounded down."""
    return fee * 1000 // vsize if vsize > 0 else 0


def _llround(x: float) -> int:
    """C's llround: to the nearest integer, halves away from zero."""
    f = math.floor(x)
    if x - f >= 0.5:
        f += 1
    return int(f) if x >= 0 else -_llround(-x)


@dataclass
class EstimatorBucket:
    """A range of buckets and what was counted in it (estimaterawfee's pass/fail)."""

    start: float = -1
    end: float = -1
    within_target: float = 0
    total_confirmed: float = 0
    in_mempool: float = 0
    left_mempool: float = 0


@dataclass
class EstimationResult:
    passed: EstimatorBucket = field(default_factory=EstimatorBucket)
    failed: EstimatorBucket = field(default_factory=EstimatorBucket)
    decay: float = 0
    scale: int = 0


@dataclass
class FeeCalculation:
    """How estimate_smart_fee answered: the target asked for, the one it answered for
    (estimatesmartfee's "blocks"), which of its sub-estimates decided, and its details."""

    desired_target: int = 0
    returned_target: int = 0
    reason: str = "none"  # half_estimate, full_estimate, double_estimate, conservative
    est: EstimationResult = field(default_factory=EstimationResult)
    best_height: int = 0


class _Stats:
    """One horizon's statistics (Core's TxConfirmStats). Stored per bucket (conf[b][p]) so
    that only buckets that ever held data are decayed each block: multiplying the zeros of
    the others would change nothing."""

    def __init__(self, buckets: list[float], periods: int, decay: float, scale: int) -> None:
        self.buckets = buckets
        self.decay = decay
        self.scale = scale
        self.periods = periods
        n = len(buckets)
        self.conf = [[0.0] * periods for _ in range(n)]  # confirmed within p+1 periods
        self.fail = [[0.0] * periods for _ in range(n)]  # left unconfirmed after p+1 periods
        self.tx_ct = [0.0] * n  # confirmed at all
        self.feerate_sum = [0.0] * n
        self.active: set[int] = set()  # buckets holding any non-zero average
        self._reset_unconfirmed(n)

    def _reset_unconfirmed(self, n: int) -> None:
        # Transactions in the mempool by entry height (mod max confirms) and bucket, and
        # those waiting longer than this horizon tracks.
        self.unconf: list[dict[int, int]] = [{} for _ in range(self.max_confirms)]
        self.old_unconf = [0] * n

    @property
    def max_confirms(self) -> int:
        return self.scale * self.periods

    def bucket_index(self, feerate: float) -> int:
        return bisect.bisect_left(self.buckets, feerate)

    def clear_current(self, height: int) -> None:
        """A new block: the transactions that entered max_confirms blocks ago move to the
        'older than tracked' counters, freeing their row."""
        row = self.unconf[height % len(self.unconf)]
        for b, c in row.items():
            self.old_unconf[b] += c
        row.clear()

    def record(self, blocks_to_confirm: int, feerate: float) -> None:
        if blocks_to_confirm < 1:
            return
        periods_to_confirm = (blocks_to_confirm + self.scale - 1) // self.scale
        b = self.bucket_index(feerate)
        col = self.conf[b]
        for i in range(periods_to_confirm - 1, self.periods):
            col[i] += 1
        self.tx_ct[b] += 1
        self.feerate_sum[b] += feerate
        self.active.add(b)

    def update_moving_averages(self) -> None:
        d = self.decay
        for b in self.active:
            self.conf[b] = [v * d for v in self.conf[b]]
            self.fail[b] = [v * d for v in self.fail[b]]
            self.feerate_sum[b] *= d
            self.tx_ct[b] *= d

    def new_tx(self, height: int, feerate: float) -> int:
        b = self.bucket_index(feerate)
        row = self.unconf[height % len(self.unconf)]
        row[b] = row.get(b, 0) + 1
        return b

    def remove_tx(self, entry_height: int, best_height: int, b: int, in_block: bool) -> None:
        blocks_ago = best_height - entry_height
        if best_height == 0:  # no block seen yet
            blocks_ago = 0
        if blocks_ago < 0:
            log.debug("Blockpolicy error, blocks ago is negative for mempool tx")
            return
        if blocks_ago >= len(self.unconf):
            if self.old_unconf[b] > 0:
                self.old_unconf[b] -= 1
            else:
                log.debug("Blockpolicy error, mempool tx removed from >%d blocks, bucket %d "
                          "already", len(self.unconf), b)
        else:
            row = self.unconf[entry_height % len(self.unconf)]
            c = row.get(b, 0)
            if c > 1:
                row[b] = c - 1
            elif c == 1:
                del row[b]
            else:
                log.debug("Blockpolicy error, mempool tx removed from row %d, bucket %d "
                          "already", entry_height % len(self.unconf), b)
        if not in_block and blocks_ago >= self.scale:
            # a failure for every period it waited in full
            col = self.fail[b]
            for i in range(min(blocks_ago // self.scale, self.periods)):
                col[i] += 1
            self.active.add(b)

    def estimate_median_val(self, conf_target: int, sufficient_tx_val: float,
                            success_break_point: float, best_height: int,
                            result: EstimationResult | None = None) -> float:
        """Core's EstimateMedianVal; -1 when no range of buckets passes."""
        buckets = self.buckets
        n_conf = 0.0  # confirmed within the target
        total_num = 0.0  # confirmed at all
        extra_num = 0  # still in the mempool after the target or longer
        fail_num = 0.0  # left the mempool unconfirmed after the target
        period_target = (conf_target + self.scale - 1) // self.scale
        max_bucket = len(buckets) - 1
        cur_near = best_near = cur_far = best_far = max_bucket
        partial_num = 0.0
        found = False
        new_range = True
        passing = True
        pass_b = EstimatorBucket()
        fail_b = EstimatorBucket()
        needed = sufficient_tx_val / (1 - self.decay)

        # Transactions waiting at least conf_target blocks, per bucket. Rows are picked as
        # Core picks them, with unsigned 32-bit arithmetic (below max_confirms blocks of
        # height the difference wraps around).
        bins = len(self.unconf)
        waiting: dict[int, int] = {}
        for confct in range(conf_target, self.max_confirms):
            for b, c in self.unconf[((best_height - confct) & _U32) % bins].items():
                waiting[b] = waiting.get(b, 0) + c
        pt = period_target - 1

        for bucket in range(max_bucket, -1, -1):
            if new_range:
                cur_near = bucket
                new_range = False
            cur_far = bucket
            n_conf += self.conf[bucket][pt]
            partial_num += self.tx_ct[bucket]
            total_num += self.tx_ct[bucket]
            fail_num += self.fail[bucket][pt]
            extra_num += waiting.get(bucket, 0) + self.old_unconf[bucket]
            # Enough data in this range to judge it? (Only confirmed transactions count, so
            # that every target looks at the same ranges.)
            if partial_num < needed:
                continue
            partial_num = 0.0
            cur_pct = n_conf / (total_num + fail_num + extra_num)
            if cur_pct < success_break_point:
                if passing:  # the first failing range
                    lo, hi = min(cur_near, cur_far), max(cur_near, cur_far)
                    fail_b = EstimatorBucket(buckets[lo - 1] if lo else 0, buckets[hi],
                                             n_conf, total_num, extra_num, fail_num)
                    passing = False
                continue
            fail_b = EstimatorBucket()
            found = True
            passing = True
            pass_b.within_target = n_conf
            pass_b.total_confirmed = total_num
            pass_b.in_mempool = extra_num
            pass_b.left_mempool = fail_num
            n_conf = total_num = fail_num = 0.0
            extra_num = 0
            best_near, best_far = cur_near, cur_far
            new_range = True

        median = -1.0
        lo, hi = min(best_near, best_far), max(best_near, best_far)
        tx_sum = 0.0
        for j in range(lo, hi + 1):
            tx_sum += self.tx_ct[j]
        if found and tx_sum != 0:
            # the average fee rate of the bucket holding the median transaction
            tx_sum = tx_sum / 2
            for j in range(lo, hi + 1):
                if self.tx_ct[j] < tx_sum:
                    tx_sum -= self.tx_ct[j]
                else:
                    median = self.feerate_sum[j] / self.tx_ct[j]
                    break
            pass_b.start = buckets[lo - 1] if lo else 0
            pass_b.end = buckets[hi]

        # Passing down to a last range too thin to judge: report that range as failed.
        if passing and not new_range:
            lo, hi = min(cur_near, cur_far), max(cur_near, cur_far)
            fail_b = EstimatorBucket(buckets[lo - 1] if lo else 0, buckets[hi], n_conf,
                                     total_num, extra_num, fail_num)

        log.debug("FeeEst: %d > %.0f%% decay %.5f: feerate: %g from (%g - %g) "
                  "%.1f/(%.1f %d mem %.1f out) Fail: (%g - %g) %.1f/(%.1f %d mem %.1f out)",
                  conf_target, 100 * success_break_point, self.decay, median, pass_b.start,
                  pass_b.end, pass_b.within_target, pass_b.total_confirmed, pass_b.in_mempool,
                  pass_b.left_mempool, fail_b.start, fail_b.end, fail_b.within_target,
                  fail_b.total_confirmed, fail_b.in_mempool, fail_b.left_mempool)
        if result is not None:
            result.passed = pass_b
            result.failed = fail_b
            result.decay = self.decay
            result.scale = self.scale
        return median

    # -- fee_estimates.dat: Core's TxConfirmStats::Write/Read ---------------------------------

    def serialize(self) -> bytes:
        n = len(self.buckets)
        out = [_double(self.decay), struct.pack("<I", self.scale),
               _doubles(self.feerate_sum), _doubles(self.tx_ct)]
        for table in (self.conf, self.fail):  # stored as [period][bucket]
            out.append(compact_size(self.periods))
            for p in range(self.periods):
                out.append(_doubles([table[b][p] for b in range(n)]))
        return b"".join(out)

    @classmethod
    def deserialize(cls, r: Reader, buckets: list[float], periods: int, decay: float,
                    scale: int) -> _Stats:
        """Read one horizon's averages; raises ValueError (with Core's words) if they do not
        fit. The file's decay and scale are taken as Core takes them."""
        n = len(buckets)
        file_decay = _read_double(r)
        if not 0 < file_decay < 1:
            raise ValueError("Corrupt estimates file. Decay must be between 0 and 1 "
                             "(non-inclusive)")
        file_scale = r.u32()
        if file_scale == 0:
            raise ValueError("Corrupt estimates file. Scale must be non-zero")
        feerate_sum = _read_doubles(r)
        if len(feerate_sum) != n:
            raise ValueError("Corrupt estimates file. Mismatch in feerate average bucket count")
        tx_ct = _read_doubles(r)
        if len(tx_ct) != n:
            raise ValueError("Corrupt estimates file. Mismatch in tx count bucket count")
        conf = [_read_doubles(r) for _ in range(_read_count(r))]
        file_periods = len(conf)
        max_confirms = file_scale * file_periods
        if max_confirms <= 0 or max_confirms > 6 * 24 * 7:
            raise ValueError("Corrupt estimates file.  Must maintain estimates for between 1 "
                             "and 1008 (one week) confirms")
        if any(len(row) != n for row in conf):
            raise ValueError("Corrupt estimates file. Mismatch in feerate conf average bucket "
                             "count")
        fail = [_read_doubles(r) for _ in range(_read_count(r))]
        if len(fail) != file_periods:
            raise ValueError("Corrupt estimates file. Mismatch in confirms tracked for "
                             "failures")
        if any(len(row) != n for row in fail):
            raise ValueError("Corrupt estimates file. Mismatch in one of failure average "
                             "bucket counts")
        s = cls(buckets, file_periods, file_decay, file_scale)
        s.feerate_sum = feerate_sum
        s.tx_ct = tx_ct
        s.conf = [[conf[p][b] for p in range(file_periods)] for b in range(n)]
        s.fail = [[fail[p][b] for p in range(file_periods)] for b in range(n)]
        s.active = {b for b in range(n) if tx_ct[b] or feerate_sum[b] or any(s.conf[b])
                    or any(s.fail[b])}
        return s


def _double(v: float) -> bytes:
    return struct.pack("<d", v)  # Core's EncodeDouble: the IEEE 754 bits as a uint64 LE


def _doubles(vs: list[float]) -> bytes:
    return compact_size(len(vs)) + struct.pack(f"<{len(vs)}d", *vs)


def _read_double(r: Reader) -> float:
    return struct.unpack("<d", r.read(8))[0]


def _read_count(r: Reader) -> int:
    n = r.compact_size()
    if n * 8 > r.remaining():  # a vector cannot be longer than what is left of the file
        raise DeserializationError("vector size larger than the data")
    return n


def _read_doubles(r: Reader) -> list[float]:
    n = _read_count(r)
    return list(struct.unpack(f"<{n}d", r.read(8 * n)))


class FeeEstimator:
    """Core's CBlockPolicyEstimator. Thread-safe: its own lock guards every method."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.buckets = default_buckets()
        self._new_stats()
        self.best_height = 0  # the last block processed (Core's nBestSeenHeight)
        self.first_recorded_height = 0  # the first block that confirmed a tracked tx
        self.historical_first = 0  # the block range of the data read from a file
        self.historical_best = 0
        # txid -> (entry height, bucket, fee rate in sat/kvB) of each tracked transaction
        self.mempool_txs: dict[bytes, tuple[int, int, float]] = {}
        self.tracked_txs = 0  # since the last block: for the log
        self.untracked_txs = 0

    def _new_stats(self) -> None:
        self.stats = {h: _Stats(self.buckets, p, d, s) for h, (p, s, d) in HORIZONS.items()}

    @property
    def short(self) -> _Stats:
        return self.stats[SHORT]

    @property
    def medium(self) -> _Stats:
        return self.stats[MEDIUM]

    @property
    def long(self) -> _Stats:
        return self.stats[LONG]

    # -- events ---------------------------------------------------------------------------------

    def tx_added(self, txid: bytes, fee: int, vsize: int, height: int,
                 valid: bool = True) -> None:
        """A transaction entered the mempool at `height` (the tip then). `valid`: whether it
        may count (Core: not re-added after a reorg, not part of a package, the node not in
        initial block download, no parents in the mempool)."""
        with self._lock:
            if txid in self.mempool_txs:
                log.debug("Blockpolicy error mempool tx %s already being tracked",
                          txid[::-1].hex())
                return
            if height != self.best_height:
                # The estimator is not in step with the chain (side chains, reorgs, a start
                # without a file): not tracked until the next block is processed.
                return
            if not valid:
                self.untracked_txs += 1
                return
            self.tracked_txs += 1
            rate = float(fee_per_kvb(fee, vsize))
            b = -1
            for s in self.stats.values():
                b = s.new_tx(height, rate)
            self.mempool_txs[txid] = (height, b, rate)

    def tx_removed(self, txid: bytes) -> bool:
        """A transaction left the mempool for another reason than a block (replaced,
        conflicting, expired, evicted...): a failure for the periods it waited in full."""
        with self._lock:
            return self._remove(txid, in_block=False)

    def _remove(self, txid: bytes, in_block: bool) -> bool:
        info = self.mempool_txs.pop(txid, None)
        if info is None:
            return False
        height, b, _ = info
        for s in self.stats.values():
            s.remove_tx(height, self.best_height, b, in_block)
        return True

    def block_connected(self, height: int, txids: list[bytes]) -> None:
        """A block at `height` confirmed `txids` (Core's processBlock: the block's
        transactions that were in the mempool; the others are simply not tracked)."""
        with self._lock:
            if height <= self.best_height:
                return  # a side chain or a reorg back to a known height: ignored
            self.best_height = height
            for s in self.stats.values():
                s.clear_current(height)
            for s in self.stats.values():
                s.update_moving_averages()
            counted = 0
            for txid in txids:
                info = self.mempool_txs.get(txid)
                if info is None:
                    continue
                self._remove(txid, in_block=True)
                blocks_to_confirm = height - info[0]
                if blocks_to_confirm <= 0:
                    log.debug("Blockpolicy error Transaction had negative blocksToConfirm")
                    continue
                for s in self.stats.values():
                    s.record(blocks_to_confirm, info[2])
                counted += 1
            if self.first_recorded_height == 0 and counted > 0:
                self.first_recorded_height = height
                log.debug("Blockpolicy first recorded height %d", height)
            log.debug("Blockpolicy estimates updated by %d of %d block txs, since last block "
                      "%d of %d tracked, mempool map size %d, max target %d from %s", counted,
                      len(txids), self.tracked_txs,
                      self.tracked_txs + self.untracked_txs, len(self.mempool_txs),
                      self._max_usable_estimate(),
                      "historical" if self._historical_block_span() > self._block_span()
                      else "current")
            self.tracked_txs = self.untracked_txs = 0

    def flush_unconfirmed(self) -> None:
        """At shutdown: every transaction still tracked counts as not confirmed so far."""
        with self._lock:
            n = len(self.mempool_txs)
            for txid in list(self.mempool_txs):
                self._remove(txid, in_block=False)
            log.debug("Recorded %d unconfirmed txs from mempool", n)

    # -- estimates -------------------------------------------------------------------------------

    def highest_target_tracked(self, horizon: str = LONG) -> int:
        with self._lock:
            return self.stats[horizon].max_confirms

    def _block_span(self) -> int:
        if self.first_recorded_height == 0:
            return 0
        return self.best_height - self.first_recorded_height

    def _historical_block_span(self) -> int:
        if self.historical_first == 0:
            return 0
        if self.best_height - self.historical_best > OLDEST_ESTIMATE_HISTORY:
            return 0
        return self.historical_best - self.historical_first

    def _max_usable_estimate(self) -> int:
        # Half the blocks of data, so that there are enough chances to see failures.
        return min(self.long.max_confirms,
                   max(self._block_span(), self._historical_block_span()) // 2)

    def estimate_raw_fee(self, conf_target: int, threshold: float, horizon: str,
                         result: EstimationResult | None = None) -> int | None:
        """One horizon's answer at one threshold (estimaterawfee), in sat/kvB, or None."""
        with self._lock:
            stats = self.stats[horizon]
            sufficient = SUFFICIENT_TXS_SHORT if horizon == SHORT else SUFFICIENT_FEETXS
            if conf_target <= 0 or conf_target > stats.max_confirms or threshold > 1:
                return None
            median = stats.estimate_median_val(conf_target, sufficient, threshold,
                                               self.best_height, result)
            return _rate(median)

    def _combined(self, conf_target: int, threshold: float, check_shorter: bool,
                  result: EstimationResult | None) -> float:
        """The answer of the shortest horizon tracking conf_target; with check_shorter, a
        shorter horizon's answer at its own longest target may lower it."""
        estimate = -1.0
        short, medium, long = self.short, self.medium, self.long
        h = self.best_height
        if not 1 <= conf_target <= long.max_confirms:
            return estimate
        if conf_target <= short.max_confirms:
            estimate = short.estimate_median_val(conf_target, SUFFICIENT_TXS_SHORT, threshold,
                                                 h, result)
        elif conf_target <= medium.max_confirms:
            estimate = medium.estimate_median_val(conf_target, SUFFICIENT_FEETXS, threshold,
                                                  h, result)
        else:
            estimate = long.estimate_median_val(conf_target, SUFFICIENT_FEETXS, threshold, h,
                                                result)
        if check_shorter:
            temp = EstimationResult()
            if conf_target > medium.max_confirms:
                med_max = medium.estimate_median_val(medium.max_confirms, SUFFICIENT_FEETXS,
                                                     threshold, h, temp)
                if med_max > 0 and (estimate == -1 or med_max < estimate):
                    estimate = med_max
                    if result is not None:
                        _copy_result(result, temp)
            if conf_target > short.max_confirms:
                short_max = short.estimate_median_val(short.max_confirms, SUFFICIENT_TXS_SHORT,
                                                      threshold, h, temp)
                if short_max > 0 and (estimate == -1 or short_max < estimate):
                    estimate = short_max
                    if result is not None:
                        _copy_result(result, temp)
        return estimate

    def _conservative(self, double_target: int, result: EstimationResult | None) -> float:
        """95% at 2 * target on the medium and long horizons too."""
        estimate = -1.0
        temp = EstimationResult()
        h = self.best_height
        if double_target <= self.short.max_confirms:
            estimate = self.medium.estimate_median_val(double_target, SUFFICIENT_FEETXS,
                                                       DOUBLE_SUCCESS_PCT, h, result)
        if double_target <= self.medium.max_confirms:
            long_estimate = self.long.estimate_median_val(double_target, SUFFICIENT_FEETXS,
                                                          DOUBLE_SUCCESS_PCT, h, temp)
            if long_estimate > estimate:
                estimate = long_estimate
                if result is not None:
                    _copy_result(result, temp)
        return estimate

    def estimate_smart_fee(self, conf_target: int, conservative: bool = False
                           ) -> tuple[int | None, FeeCalculation]:
        """Core's estimateSmartFee: sat/kvB (or None without an answer) and how it was
        found (calc.returned_target is estimatesmartfee's "blocks")."""
        with self._lock:
            calc = FeeCalculation(conf_target, conf_target, best_height=self.best_height)
            if conf_target <= 0 or conf_target > self.long.max_confirms:
                return None, calc
            if conf_target == 1:
                conf_target = 2  # a 1-block estimate cannot be made reasonably
            conf_target = min(conf_target, self._max_usable_estimate())
            calc.returned_target = conf_target
            if conf_target <= 1:
                return None, calc
            temp = EstimationResult()
            # target/2 and target also look at the shorter horizons' longest targets, which
            # keeps estimates rising as targets shorten; 2 * target does too unless
            # conservative (which takes the highest over all horizons below anyway).
            median = self._combined(conf_target // 2, HALF_SUCCESS_PCT, True, temp)
            calc.est, calc.reason = temp, "half_estimate"
            temp = EstimationResult()
            actual = self._combined(conf_target, SUCCESS_PCT, True, temp)
            if actual > median:
                median = actual
                calc.est, calc.reason = temp, "full_estimate"
            temp = EstimationResult()
            double = self._combined(2 * conf_target, DOUBLE_SUCCESS_PCT, not conservative,
                                    temp)
            if double > median:
                median = double
                calc.est, calc.reason = temp, "double_estimate"
            if conservative or median == -1:
                temp = EstimationResult()
                cons = self._conservative(2 * conf_target, temp)
                if cons > median:
                    median = cons
                    calc.est, calc.reason = temp, "conservative"
            return _rate(median), calc

    def estimate(self, conf_target: int, conservative: bool = False) -> int | None:
        """estimatesmartfee's fee rate before the mempool floors, in sat/kvB, or None."""
        return self.estimate_smart_fee(conf_target, conservative)[0]

    # -- fee_estimates.dat -----------------------------------------------------------------------

    def serialize(self) -> bytes:
        with self._lock:
            if self._block_span() > self._historical_block_span() // 2:
                first, best = self.first_recorded_height, self.best_height
            else:
                first, best = self.historical_first, self.historical_best
            out = [struct.pack("<iIII", FILE_VERSION, self.best_height, first, best),
                   _doubles(self.buckets)]
            out += [self.stats[h].serialize() for h in (MEDIUM, SHORT, LONG)]  # Core's order
            return b"".join(out)

    def deserialize(self, data: bytes) -> None:
        """Replace the state with a file's (the transactions being tracked stay). Raises
        ValueError, leaving the state as it was, for a file this version cannot use."""
        r = Reader(data)
        try:
            version = r.i32()
            if version > FILE_VERSION:
                raise ValueError(f"File version ({version}) too high to be read.")
            file_best = r.u32()
            if version < FILE_VERSION:
                raise ValueError(f"Incompatible old fee estimation data (non-fatal). "
                                 f"Version: {version}")
            hist_first, hist_best = r.u32(), r.u32()
            if hist_first > hist_best or hist_best > file_best:
                raise ValueError("Corrupt estimates file. Historical block range for "
                                 "estimates is invalid")
            buckets = _read_doubles(r)
            if not 1 < len(buckets) <= 1000:
                raise ValueError("Corrupt estimates file. Must have between 2 and 1000 feerate "
                                 "buckets")
            stats = {}
            for h in (MEDIUM, SHORT, LONG):
                p, s, d = HORIZONS[h]
                stats[h] = _Stats.deserialize(r, buckets, p, d, s)
        except DeserializationError as err:
            raise ValueError(str(err)) from None
        with self._lock:
            self.buckets = buckets
            self.stats = stats
            # Transactions tracked before the file was read keep their rows in the new
            # stats (Core reads the file before anything is tracked).
            for height, b, _ in self.mempool_txs.values():
                for st in stats.values():
                    row = st.unconf[height % len(st.unconf)]
                    row[b] = row.get(b, 0) + 1
            self.best_height = file_best
            self.historical_first = hist_first
            self.historical_best = hist_best

    def read(self, path: Path, accept_stale: bool = False) -> bool:
        """Load <datadir>/fee_estimates.dat as Core does at start-up; False (with a log line)
        when there is none, it is too old, or it cannot be used."""
        path = Path(path)
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            log.info("%s is not found. Continue anyway.", path)
            return False
        except OSError as err:
            log.warning("Failed to read fee estimates from %s: %s. Continue anyway.", path, err)
            return False
        hours = int(age // 3600)  # whole hours, as Core counts them
        if hours > MAX_FILE_AGE // 3600 and not accept_stale:
            log.warning("Fee estimation file %s too old (age=%d > %d hours) and will not be "
                        "used to avoid serving stale estimates.", path, hours,
                        MAX_FILE_AGE // 3600)
            return False
        try:
            self.deserialize(path.read_bytes())
        except (OSError, ValueError) as err:
            log.warning("Unable to read policy estimator data (non-fatal): %s", err)
            log.warning("Failed to read fee estimates from %s. Continue anyway.", path)
            return False
        return True

    def write(self, path: Path) -> bool:
        """Write the state (Core's FlushFeeEstimates); through a temporary file, so that a
        crash leaves the old file or the new one."""
        path = Path(path)
        tmp = path.with_name(path.name + ".new")
        try:
            data = self.serialize()
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            log.warning("Failed to write fee estimates to %s: %s. Continue anyway.", path, err)
            return False
        log.debug("Flushed fee estimates to %s.", path.name)
        return True

    def flush(self, path: Path) -> bool:
        """At shutdown (Core's Flush): unconfirmed transactions recorded, then the file."""
        self.flush_unconfirmed()
        return self.write(path)

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, chain, mempool) -> None:
        """Follow the chain and the mempool as Core's validation interface feeds its
        estimator: additions, removals other than by a block, and connected blocks (after
        the mempool has handled them, so that conflicts a block evicts count at the height
        before it, as in Core)."""
        readded: set[bytes] = set()  # transactions of disconnected blocks, until re-added

        def added(tx) -> None:
            e = mempool.entries.get(tx.txid)
            if e is None:
                return
            # (submitted in a package: not counted, even those accepted on their own first,
            # as Core's m_submitted_in_package)
            valid = (not e.parents and tx.txid not in readded
                     and not mempool.submitting_package and not chain.in_ibd())
            self.tx_added(tx.txid, e.fee, e.vsize, e.height, valid)

        def removed(tx, why: str) -> None:
            if why != "block":  # those confirmed are counted when their block connects
                self.tx_removed(tx.txid)

        def connected(block, entry) -> None:
            self.block_connected(entry.height, [t.txid for t in block.txs[1:]])

        def disconnected(block, entry) -> None:
            # The mempool puts these back once the reorg is complete, past its limits
            # (Core's bypass_limits): they do not count.
            readded.update(t.txid for t in block.txs[1:])

        def activated() -> None:
            readded.clear()  # (after the mempool's own handler has re-added them)

        mempool.on_added.append(added)
        mempool.on_removed.append(removed)
        chain.on_connected.append(connected)
        chain.on_disconnected.append(disconnected)
        chain.on_activated.append(activated)


def _rate(median: float) -> int | None:
    """CFeeRate(llround(median)), with 0 (Core's "no answer") as None."""
    if median < 0:
        return None
    rate = _llround(median)
    return rate or None


def _copy_result(dst: EstimationResult, src: EstimationResult) -> None:
    dst.passed, dst.failed, dst.decay, dst.scale = src.passed, src.failed, src.decay, src.scale
