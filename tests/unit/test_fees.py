"""node/fees.py: Bitcoin Core's block policy estimator (CBlockPolicyEstimator), fed as the
node feeds it: transactions entering the mempool at a height, blocks confirming them."""

from __future__ import annotations

import os
import struct
import time

import pytest

from node.fees import (
    FILE_VERSION,
    LONG,
    MEDIUM,
    SHORT,
    FeeEstimator,
    default_buckets,
)


def txid(n: int) -> bytes:
    return n.to_bytes(32, "little")


class Sim:
    """A chain and a mempool in miniature: transactions enter at the tip, each confirmed
    `wait` blocks later (or never)."""

    def __init__(self, est: FeeEstimator, height: int = 200) -> None:
        self.est = est
        self.height = height
        self.n = 0
        self.due: dict[int, list[bytes]] = {}
        est.block_connected(height, [])  # the estimator has seen the tip

    def add(self, sat_vb: float, wait: int | None = 1, vsize: int = 250) -> bytes:
        t = txid(self.n)
        self.n += 1
        self.est.tx_added(t, int(sat_vb * vsize), vsize, self.height)
        if wait is not None:
            self.due.setdefault(self.height + wait, []).append(t)
        return t

    def mine(self, extra: list[bytes] = ()) -> None:
        self.height += 1
        self.est.block_connected(self.height, self.due.pop(self.height, []) + list(extra))

    def blocks(self, n: int, per_block: int, *txs: tuple[float, int | None]) -> None:
        """n blocks, each mined after per_block rounds of adding one transaction of every
        (sat_vb, wait) in txs."""
        for _ in range(n):
            for _ in range(per_block):
                for sat_vb, wait in txs:
                    self.add(sat_vb, wait=wait)
            self.mine()


def within_bucket(rate: int | None, expected: int) -> bool:
    return rate is not None and expected / 1.05 <= rate <= expected * 1.05


def test_buckets_are_cores():
    b = default_buckets()
    assert b[0] == 100 and b[-1] == 1e99 and b[-2] <= 1e7 < b[-2] * 1.05
    assert all(abs(b[i + 1] / b[i] - 1.05) < 1e-12 for i in range(len(b) - 2))
    assert len(b) == 237  # 236 boundaries from 100 to 1e7, and one above


def test_everything_confirming_next_block_estimates_the_rate_paid():
    """The colleague's case: wallets paid 20 sat/vB, every transaction confirmed in the next
    block. Empty low buckets must not pull the answer down to the lowest bucket."""
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(20, 5, (20, 1))
    for target in (1, 2, 3, 5):
        assert within_bucket(est.estimate(target), 20_000), (target, est.estimate(target))
        assert within_bucket(est.estimate(target, conservative=True), 20_000)
    assert est.estimate(2) == 20_000  # the average rate of the median bucket: exactly it


def test_low_rates_waiting_longer_give_higher_estimates_for_short_targets():
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(100, 10, (50, 1), (5, 10))
    short = est.estimate(2)
    long = est.estimate(24)
    assert within_bucket(short, 50_000), short
    assert within_bucket(long, 5_000), long
    assert short > long
    # estimates never rise with the target
    rates = [est.estimate(t) for t in range(2, 40)]
    assert all(a >= b for a, b in zip(rates, rates[1:])), rates


def test_insufficient_data_reports_the_target_it_could_use():
    est = FeeEstimator()
    rate, calc = est.estimate_smart_fee(6)
    assert rate is None and calc.returned_target == 0 and calc.desired_target == 6
    sim = Sim(est)
    sim.blocks(7, 1, (20, 1))  # 6 blocks of data: targets up to 3
    rate, calc = est.estimate_smart_fee(6)
    assert calc.returned_target == 3
    rate, calc = est.estimate_smart_fee(1)
    assert calc.returned_target == 2  # a 1-block target is answered as 2
    # one transaction a block is not enough for the short horizon to judge a target of 1
    # (0.5 / (1 - .962) = 13.2 decayed transactions), but the medium one answers at 2*2
    assert est.estimate_raw_fee(1, 0.95, SHORT) is None
    # out of range
    assert est.estimate_smart_fee(0)[0] is None and est.estimate_smart_fee(1009)[0] is None
    assert est.highest_target_tracked(SHORT) == 12
    assert est.highest_target_tracked(MEDIUM) == 48
    assert est.highest_target_tracked(LONG) == 1008


def test_what_is_not_tracked():
    est = FeeEstimator()
    sim = Sim(est)
    for _ in range(30):
        # the estimator behind the tip, or a transaction that may not count: not tracked
        est.tx_added(txid(10**6 + sim.height), 250 * 100, 250, sim.height - 1)
        est.tx_added(txid(2 * 10**6 + sim.height), 250 * 100, 250, sim.height, valid=False)
        sim.add(10)
        sim.mine([txid(10**6 + sim.height), txid(2 * 10**6 + sim.height)])
    assert within_bucket(est.estimate(2), 10_000)
    assert len(est.mempool_txs) == 0


def test_unconfirmed_and_evicted_transactions_count_as_failures():
    est = FeeEstimator()
    sim = Sim(est)
    expiring: dict[int, list[bytes]] = {}
    for _ in range(60):
        for _ in range(10):
            sim.add(30, wait=1)
        for _ in range(10):
            expiring.setdefault(sim.height + 15, []).append(sim.add(2, wait=None))
        sim.mine()
        for t in expiring.pop(sim.height, []):
            assert est.tx_removed(t)  # expired after 15 blocks unconfirmed
    # the cheap ones never confirmed: no target is answered with their rate
    for target in (2, 6, 12, 20):
        assert within_bucket(est.estimate(target), 30_000), target


def test_still_waiting_in_the_mempool_counts_against_shorter_targets():
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(40, 5, (40, 1))
    assert within_bucket(est.estimate(2), 40_000)
    # now the 40 sat/vB transactions stop confirming for a while
    sim.blocks(8, 5, (40, None))
    res = est.estimate_raw_fee(2, 0.85, SHORT)
    assert res is None  # too many of them waiting: the range fails


def test_core_policyestimator_scenario():
    """The scenario of Core's policyestimator_tests (BlockPolicyEstimates): ten fee rates,
    four transactions of each per block, the k-th highest mined in k of 10 blocks."""
    est = FeeEstimator()
    base_fee, vsize, delta = 2000, 100, 100
    base_rate = base_fee * 1000 // vsize
    fees = [base_fee * (j + 1) for j in range(10)]
    pending: list[list[bytes]] = [[] for _ in range(10)]
    n = [0]

    def add_all(height):
        for j in range(10):
            for _ in range(4):
                t = txid(n[0])
                n[0] += 1
                est.tx_added(t, fees[j], vsize, height)
                pending[j].append(t)

    def fee_estimate(target):  # Core's (deprecated) estimateFee
        if target <= 1:
            return 0
        return est.estimate_raw_fee(target, 0.95, MEDIUM) or 0

    blocknum = 0
    while blocknum < 200:
        add_all(blocknum)
        block = []
        for h in range(blocknum % 10 + 1):
            block += pending[9 - h]
            pending[9 - h] = []
        blocknum += 1
        est.block_connected(blocknum, block)
        if blocknum == 3:
            # three buckets combined to have enough data: 100%, 100%, 90%
            assert fee_estimate(1) == 0
            assert 9 * base_rate - delta < fee_estimate(2) < 9 * base_rate + delta
    orig = []
    for i in range(1, 10):
        orig.append(fee_estimate(i))
        if i > 2:
            assert orig[i - 1] <= orig[i - 2]
        if i % 2 == 0:
            mult = 11 - i
            assert mult * base_rate - delta < orig[i - 1] < mult * base_rate + delta
    for i in range(10, 49):
        orig.append(fee_estimate(i))

    # 50 empty blocks: still enough data in every bucket, estimates unchanged
    while blocknum < 250:
        blocknum += 1
        est.block_connected(blocknum, [])
    for i in range(1, 10):
        assert fee_estimate(i) == 0 or fee_estimate(i) < orig[i - 1] + delta
        assert fee_estimate(i) > orig[i - 1] - delta

    # 15 blocks of transactions that are not mined: estimates go up
    while blocknum < 265:
        add_all(blocknum)
        blocknum += 1
        est.block_connected(blocknum, [])
    for i in range(1, 10):
        assert fee_estimate(i) == 0 or fee_estimate(i) > orig[i - 1] - delta

    # all of them mined: still not below the original estimates
    block = [t for p in pending for t in p]
    pending = [[] for _ in range(10)]
    est.block_connected(266, block)
    blocknum = 266
    for i in range(1, 10):
        assert fee_estimate(i) == 0 or fee_estimate(i) > orig[i - 1] - delta

    # 400 blocks where everything is mined at once: estimates below the original ones
    while blocknum < 665:
        add_all(blocknum)
        block = [t for p in pending for t in p]
        pending = [[] for _ in range(10)]
        blocknum += 1
        est.block_connected(blocknum, block)
    for i in range(2, 9):  # (at 9 the original was already at the bottom: scale 2)
        assert fee_estimate(i) < orig[i - 1] - delta


def test_raw_estimate_details():
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(30, 5, (20, 1))
    from node.fees import EstimationResult

    res = EstimationResult()
    assert est.estimate_raw_fee(2, 0.95, SHORT, res) == 20_000
    assert res.decay == 0.962 and res.scale == 1
    assert res.passed.start < 20_000 <= res.passed.end
    assert res.passed.within_target == pytest.approx(res.passed.total_confirmed)
    # below the passing range, a range too thin to judge is reported as failed
    assert res.failed.start == 0 and res.failed.end < res.passed.start + 1
    assert est.estimate_raw_fee(13, 0.95, SHORT) is None  # beyond the short horizon


def test_state_round_trips_in_cores_file_format(tmp_path):
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(50, 4, (12, 1), (3, 6))
    sim.add(7, wait=None)  # still in the mempool at shutdown: recorded as unconfirmed
    path = tmp_path / "fee_estimates.dat"
    assert est.flush(path)
    data = path.read_bytes()
    version, best, first, last = struct.unpack_from("<iIII", data)
    assert (version, best) == (FILE_VERSION, sim.height) == (309900, 250)
    assert (first, last) == (201, 250)
    # buckets, then medium, short, long: decay, scale, 2 vectors, 2 tables [period][bucket]
    nb = 237
    per_stats = [8 + 4 + 2 * (1 + 8 * nb) + 2 * (1 + p * (1 + 8 * nb)) for p in (24, 12, 42)]
    assert len(data) == 16 + 1 + 8 * nb + sum(per_stats)
    assert struct.unpack_from("<d", data, 16 + 1 + 8 * nb)[0] == 0.9952

    again = FeeEstimator()
    assert again.read(path)
    assert again.best_height == 250
    assert (again.historical_first, again.historical_best) == (201, 250)
    for target in range(1, 30):
        for cons in (False, True):
            assert again.estimate(target, cons) == est.estimate(target, cons), target
    assert again.serialize() == est.serialize()


def test_history_from_a_file_counts_until_new_data_outweighs_it(tmp_path):
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(41, 5, (25, 1))
    path = tmp_path / "fee_estimates.dat"
    est.write(path)
    again = FeeEstimator()
    assert again.read(path)
    # a restart: no block since, but the file's 40 blocks allow targets up to 20
    rate, calc = again.estimate_smart_fee(30)
    assert calc.returned_target == 20 and within_bucket(rate, 25_000)
    # transactions are tracked right away: the estimator is at the tip it saved
    again.tx_added(txid(99), 25 * 250, 250, 241)
    assert txid(99) in again.mempool_txs


def test_unusable_files_are_ignored(tmp_path):
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(30, 1, (20, 1))
    path = tmp_path / "fee_estimates.dat"
    est.write(path)
    good = path.read_bytes()

    fresh = FeeEstimator()
    assert not fresh.read(tmp_path / "missing.dat")
    # too old (more than 60 hours), unless stale estimates are accepted
    old = time.time() - 61 * 3600 - 60
    os.utime(path, (old, old))
    assert not fresh.read(path) and fresh.best_height == 0
    assert fresh.read(path, accept_stale=True) and fresh.best_height == 230
    # another version: Core's older files (149900, with a dummy field) and newer ones
    for version in (149900, 309901):
        path.write_bytes(struct.pack("<i", version) + good[4:])
        other = FeeEstimator()
        assert not other.read(path) and other.best_height == 0
    # damaged: truncated, bad decay, bad historical range, wrong bucket count
    bad = [good[:len(good) // 2], good[:4] + good[4:8] + struct.pack("<II", 240, 230) + good[16:]]
    at_decay = 16 + 1 + 8 * 237
    bad.append(good[:at_decay] + struct.pack("<d", 1.0) + good[at_decay + 8:])
    bad.append(good + b"")  # (sanity: the good one reads)
    for i, data in enumerate(bad):
        path.write_bytes(data)
        other = FeeEstimator()
        sim2 = Sim(other, 5)
        sim2.add(20, wait=None)
        assert other.read(path) == (i == len(bad) - 1)
        if i < len(bad) - 1:  # left as it was
            assert other.best_height == 5 and len(other.mempool_txs) == 1


def test_shutdown_records_mempool_transactions_as_unconfirmed():
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(30, 5, (20, 1))
    sim.blocks(3, 20, (20, None))
    for _ in range(7):
        sim.add(20, wait=None)  # entered at the tip: not a failure yet
    b = est.short.bucket_index(20_000)
    before = [est.short.fail[b][i] for i in range(4)]
    est.flush_unconfirmed()
    assert not est.mempool_txs
    after = [est.short.fail[b][i] - before[i] for i in range(4)]
    assert after == [60, 40, 20, 0]  # a failure for each block waited in full


def test_reorged_heights_are_ignored():
    est = FeeEstimator()
    sim = Sim(est)
    sim.blocks(10, 1, (20, 1))
    t = sim.add(20, wait=None)
    est.block_connected(sim.height, [t])  # the same height again (a reorg): ignored
    assert t in est.mempool_txs


# -- fed by the real chain and mempool (FeeEstimator.attach, as the daemon wires it) ---------


@pytest.fixture
def wired(tmp_path):
    from tests.unit.test_mempool import Env

    env = Env(tmp_path / "n")
    est = FeeEstimator()
    est.attach(env.chain, env.mempool)
    env.mine()  # the estimator has seen the tip
    yield env, est
    env.close()


def test_attached_tracks_what_core_tracks(wired):
    from consensus.amounts import COIN
    from tests.unit.test_mempool import out

    env, est = wired
    assert est.best_height == env.chain.height
    a = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(a)
    assert a.txid in est.mempool_txs  # no parents, at the tip, not in IBD
    child = env.spend([out(a)], [49 * COIN - 100_000])
    env.mempool.accept(child)
    assert child.txid not in est.mempool_txs  # a parent in the mempool
    assert est.untracked_txs == 1
    # a package's transactions do not count, not even the parent accepted on its own
    p = env.spend([env.coin(1)], [49 * COIN])
    c = env.spend([out(p)], [49 * COIN - 100_000])
    res = env.mempool.accept_package([p, c])
    assert res.error is None and p.txid in env.mempool and c.txid in env.mempool
    assert p.txid not in est.mempool_txs and c.txid not in est.mempool_txs
    # a block confirms them: only `a` is recorded, confirmed in 1 block
    block = env.mine()
    assert not est.mempool_txs and est.best_height == env.chain.height
    b = est.short.bucket_index(fee_rate_of(env, a))
    assert est.short.tx_ct[b] == 1 and est.first_recorded_height == env.chain.height
    # a reorg puts a block's transactions back: they do not count again
    d = env.spend([env.coin(2)], [49 * COIN - 50_000])
    env.mempool.accept(d)
    assert d.txid in est.mempool_txs
    height = est.best_height
    env.chain.invalidate_block(block.hash)
    assert a.txid in env.mempool and a.txid not in est.mempool_txs
    assert d.txid in est.mempool_txs  # (untouched: still waiting)
    # a block at a height already seen is ignored: d, confirmed there, stays tracked (as in
    # Core, until shutdown records it as unconfirmed)
    env.mine()
    assert d.txid not in env.mempool and d.txid in est.mempool_txs
    assert est.best_height == height


def test_attached_conflicts_evicted_by_a_block_fail_at_the_height_before(wired):
    from consensus.amounts import COIN

    env, est = wired
    e = env.spend([env.coin(3)], [49 * COIN - 50_000])
    env.mempool.accept(e)
    entered = est.mempool_txs[e.txid][0]
    env.mine(txids=[])  # e waits a block
    b = est.mempool_txs[e.txid][1]
    before = list(est.short.fail[b])
    conflict = env.spend([env.coin(3)], [49 * COIN - 60_000])
    env.mine(txs=[conflict])  # e is evicted as a conflict of the block
    assert e.txid not in env.mempool and e.txid not in est.mempool_txs
    assert est.best_height == entered + 2
    # removed (before the block is processed, as Core's validation interface orders it)
    # with the estimator at entered + 1: one block waited, one failure period, then decayed
    # once with the block
    after = [x - y for x, y in zip(est.short.fail[b], before)]
    assert after[:3] == [pytest.approx(0.962), 0, 0]


def fee_rate_of(env, tx) -> int:
    value_in = env.coinbases[0].vout[0].value * len(tx.vin)  # (coinbases all pay the same)
    return (value_in - sum(o.value for o in tx.vout)) * 1000 // tx.vsize
