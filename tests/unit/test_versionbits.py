"""BIP9 version bits (consensus.versionbits) and -testactivationheight/-vbparams
(consensus.params.with_test_options), against Core's rules."""

import pytest

from consensus.params import MAIN, REGTEST, with_test_options
from consensus.versionbits import (
    ACTIVE,
    DEFINED,
    FAILED,
    LOCKED_IN,
    NO_TIMEOUT,
    STARTED,
    VERSIONBITS_TOP_BITS,
    Deployment,
    VersionBitsCache,
)


class FakeBlock:
    def __init__(self, prev, version, time):
        self.prev = prev
        self.height = prev.height + 1 if prev else 0
        self.version = version
        self.time = time
        self.hash = self.height.to_bytes(32, "little")
        self._chain = (prev._chain if prev else []) + [self]

    def ancestor(self, h):
        return self._chain[h]

    def median_time_past(self):
        times = sorted(b.time for b in self._chain[max(0, self.height - 10):])
        return times[len(times) // 2]


def make_chain(n, version=VERSIONBITS_TOP_BITS, start_time=1000):
    tip = None
    for i in range(n):
        v = version(i) if callable(version) else version
        tip = FakeBlock(tip, v, start_time + i * 600)
    return tip


DUMMY = Deployment("testdummy", 28, 0, NO_TIMEOUT, 0, 144, 108)


def test_regtest_testdummy_states_since_and_signalling():
    vb = VersionBitsCache()
    signal = VERSIONBITS_TOP_BITS | 1 << 28
    tip = make_chain(288, lambda h: signal if h >= 144 else VERSIONBITS_TOP_BITS)
    assert vb.state(tip.ancestor(142), DUMMY) == DEFINED  # blocks of the first period
    assert vb.state(tip.ancestor(143), DUMMY) == STARTED  # block 144 on
    assert vb.state_since_height(tip.ancestor(206), DUMMY) == 144
    assert vb.state(tip.ancestor(286), DUMMY) == STARTED
    assert vb.state(tip.ancestor(287), DUMMY) == LOCKED_IN  # 144 of 144 signalled
    stats, signals = vb.statistics(tip.ancestor(207), DUMMY)
    assert (stats.period, stats.threshold, stats.elapsed, stats.count, stats.possible) == (
        144, 108, 64, 64, True)
    assert signals == [True] * 64
    # Block versions a miner sets: the bit while started or locked in.
    assert vb.block_version(tip.ancestor(100), [DUMMY]) == VERSIONBITS_TOP_BITS
    assert vb.block_version(tip.ancestor(200), [DUMMY]) == signal


def test_lock_in_then_active_and_timeout_failure():
    vb = VersionBitsCache()
    signal = VERSIONBITS_TOP_BITS | 1 << 28
    tip = make_chain(3 * 144 + 10, signal)
    assert vb.state(tip.ancestor(2 * 144 - 1), DUMMY) == LOCKED_IN
    assert vb.state(tip.ancestor(3 * 144 - 1), DUMMY) == ACTIVE
    assert vb.state_since_height(tip, DUMMY) == 3 * 144
    # Not enough signalling before the timeout: failed.
    short = Deployment("x", 1, 0, 1000 + 200 * 600, 0, 144, 108)
    tip = make_chain(3 * 144, VERSIONBITS_TOP_BITS)
    assert vb.state(tip, short) == FAILED
    # Not signalling without the top bits.
    assert not DUMMY.signals(FakeBlock(None, 1 << 28, 0))


def test_never_active_on_main():
    vb = VersionBitsCache()
    (dep,) = MAIN.deployments
    assert vb.state(make_chain(3), dep) == FAILED


def test_with_test_options_and_core_errors():
    p = with_test_options(REGTEST, ["segwit@5", "cltv@3", "dersig@4", "bip34@2", "csv@6"],
                          ["testdummy:1:2:3"])
    assert (p.segwit_height, p.bip65_height, p.bip66_height, p.bip34_height, p.csv_height) == (
        5, 3, 4, 2, 6)
    assert p.deployments[0].start_time == 1 and p.deployments[0].min_activation_height == 3
    assert with_test_options(REGTEST) is REGTEST
    for arg, msg in [
        ("name@2", "Invalid name (name@2) for -testactivationheight=name@height."),
        ("bip34@-2", "Invalid height value (bip34@-2) for -testactivationheight=name@height."),
        ("", "Invalid format () for -testactivationheight=name@height."),
    ]:
        with pytest.raises(ValueError) as e:
            with_test_options(REGTEST, [arg])
        assert str(e.value) == msg
    for arg, msg in [
        ("testdummy:1", "Version bits parameters malformed, expecting "
                        "deployment:start:end[:min_activation_height]"),
        ("testdummy:x:1", "Invalid nStartTime (x)"),
        ("nosuch:1:2", "Invalid deployment (nosuch)"),
    ]:
        with pytest.raises(ValueError) as e:
            with_test_options(REGTEST, [], [arg])
        assert str(e.value) == msg
