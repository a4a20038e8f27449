"""The userspace link emulator's scheduling (regtest/linkemu.py's LinkQueue): netem's loss,
delay and jitter, rate and queue limit, on a clock the test gives and a seeded RNG."""

import random

import pytest

from regtest.linkemu import (
    ETH_HEADER,
    LinkQueue,
    parse_duration,
    parse_percent,
    parse_rate,
    queue_for,
)

MS = 1e-3


def test_units_as_tc_takes_them():
    assert parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("250us") == pytest.approx(250e-6)
    assert parse_duration("1.5s") == pytest.approx(1.5)
    assert parse_rate("1mbit") == 1e6
    assert parse_rate("512kbit") == 512e3
    assert parse_rate("1mbps") == 8e6  # tc: bps is bytes per second
    assert parse_rate("100bit") == 100
    assert parse_percent("1%") == pytest.approx(0.01)
    assert parse_percent("0.5%") == pytest.approx(0.005)
    assert parse_percent("250%") == 1.0
    for parse, bad in ((parse_duration, "100"), (parse_rate, "fast"), (parse_percent, "1")):
        with pytest.raises(ValueError):
            parse(bad)


def test_no_conditions_passes_at_once_in_order():
    q = LinkQueue()
    for k in range(5):
        assert q.offer(bytes([k]), 1.0) == 1.0
    assert q.pop_due(1.0) == [bytes([k]) for k in range(5)]
    assert len(q) == 0 and q.passed == 5


def test_delay_holds_each_packet_exactly_that_long():
    q = LinkQueue(delay=0.125)  # (times exact in binary)
    q.offer(b"a", 0.0)
    q.offer(b"b", 0.25)
    assert q.next_due() == 0.125
    assert q.pop_due(0.1249) == []
    assert q.pop_due(0.125) == [b"a"]
    assert q.pop_due(0.3749) == []
    assert q.pop_due(0.375) == [b"b"]


def test_jitter_is_uniform_within_the_bounds():
    q = LinkQueue(delay=0.1, jitter=0.02, rng=random.Random(7), limit=10**6)
    dues = [q.offer(b"x", 10.0) - 10.0 for _ in range(5000)]
    assert min(dues) >= 0.08 - 1e-12 and max(dues) <= 0.12 + 1e-12
    assert min(dues) < 0.081 and max(dues) > 0.119  # the whole range is used
    assert sum(dues) / len(dues) == pytest.approx(0.1, abs=0.001)
    # uniform: each quarter of the range gets about a quarter of the packets
    for k in range(4):
        lo = 0.08 + k * 0.01
        share = sum(lo <= d < lo + 0.01 for d in dues) / len(dues)
        assert 0.22 < share < 0.28
    # a jitter above the delay never schedules into the past
    q = LinkQueue(delay=0.01, jitter=0.05, rng=random.Random(1), limit=10**6)
    assert all(q.offer(b"x", 5.0) >= 5.0 for _ in range(1000))


def test_jitter_without_rate_may_reorder_and_pop_is_by_due_time():
    q = LinkQueue(delay=0.1, jitter=0.05, rng=random.Random(3))
    dues = {bytes([k]): q.offer(bytes([k]), k * 0.001) for k in range(50)}
    out = q.pop_due(1.0)
    assert [dues[p] for p in out] == sorted(dues.values())
    assert out != sorted(out)  # (netem reorders packets with jitter too)


def test_loss_drops_that_share_of_packets():
    rng = random.Random(11)
    q = LinkQueue(loss=0.1, rng=rng, limit=10**6)
    kept = sum(q.offer(b"x", 0.0) is not None for _ in range(20000))
    assert q.lost == 20000 - kept
    assert 0.09 < q.lost / 20000 < 0.11
    assert q.pop_due(0.0) and q.passed == kept
    q = LinkQueue(loss=0.0, rng=rng)
    assert all(q.offer(b"x", 0.0) is not None for _ in range(1000)) and q.lost == 0
    q = LinkQueue(loss=1.0, rng=rng)
    assert all(q.offer(b"x", 0.0) is None for _ in range(1000)) and q.lost == 1000


def test_rate_paces_packets_back_to_back():
    # 1 mbit/s; 1236 bytes of IP packet + the 14 of Ethernet's header netem counts on eth0 =
    # 10,000 bits = 10 ms on the wire each
    q = LinkQueue(rate=1e6)
    pkt = b"p" * (1250 - ETH_HEADER)
    dues = [q.offer(pkt, 0.0) for _ in range(10)]
    assert dues == pytest.approx([0.01 * (k + 1) for k in range(10)])
    assert len(q.pop_due(0.0505)) == 5
    # after an idle spell the wire is free: no credit saved up, no debt either
    q.pop_due(1.0)
    assert q.offer(pkt, 2.0) == pytest.approx(2.01)
    # a small packet takes less time
    assert q.offer(b"s" * (125 - ETH_HEADER), 3.0) == pytest.approx(3.001)


def test_rate_with_delay_is_netems_formula():
    # due = max(now + delay, previous due) + bits / rate
    q = LinkQueue(delay=0.1, rate=1e6)
    pkt = b"p" * (1250 - ETH_HEADER)
    assert q.offer(pkt, 0.0) == pytest.approx(0.11)
    assert q.offer(pkt, 0.0) == pytest.approx(0.12)
    assert q.offer(pkt, 0.005) == pytest.approx(0.13)  # still behind the second one
    assert q.offer(pkt, 0.5) == pytest.approx(0.61)  # the wire idle again
    # with jitter too, a rate keeps the order (each is due after the one before)
    q = LinkQueue(delay=0.1, jitter=0.05, rate=1e7, rng=random.Random(5))
    dues = [q.offer(pkt, k * 0.0001) for k in range(200)]
    assert dues == sorted(dues)


def test_queue_limit_drops_what_does_not_fit():
    q = LinkQueue(delay=1.0)  # netem's default limit: 1000 packets
    results = [q.offer(b"x", 0.0) for _ in range(1500)]
    assert results.count(None) == 500 and results[999] is not None and results[1000] is None
    assert q.overflowed == 500 and len(q) == 1000
    assert len(q.pop_due(1.0)) == 1000
    assert q.offer(b"x", 1.0) is not None  # room again once they left
    small = LinkQueue(delay=1.0, limit=3)
    assert [small.offer(b"x", 0.0) is not None for _ in range(5)] == [True] * 3 + [False] * 2
    # a lost packet takes no place
    lossy = LinkQueue(delay=1.0, loss=0.5, limit=10, rng=random.Random(2))
    for _ in range(100):
        lossy.offer(b"x", 0.0)
    assert len(lossy) == 10 and lossy.lost + lossy.overflowed + 10 == 100


def test_queue_for_a_links_conditions():
    q = queue_for({"delay": "100ms", "jitter": "20ms", "loss": "1%", "rate": "1mbit"})
    assert (q.delay, q.jitter, q.loss, q.rate, q.limit) == \
        (pytest.approx(0.1), pytest.approx(0.02), pytest.approx(0.01), 1e6, 1000)
    q = queue_for({"delay": "40ms"})
    assert (q.jitter, q.loss, q.rate) == (0.0, 0.0, 0.0)
    q.offer(b"x", 0.0)
    assert q.pop_due(39 * MS) == [] and q.pop_due(41 * MS) == [b"x"]
