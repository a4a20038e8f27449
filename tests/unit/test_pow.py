import pytest

from consensus.amounts import COIN, MAX_MONEY, block_subsidy, money_range
from consensus.params import MAIN, REGTEST
from consensus.pow import (
    block_work,
    calculate_next_work,
    check_proof_of_work,
    compact_to_target,
    next_work_required,
    target_to_compact,
)

# (compact, target, negative, overflow, compact re-encoded) after Core's arith_uint256 tests.
COMPACT_CASES = [
    (0x00000000, 0, False, False, 0),
    (0x00123456, 0, False, False, 0),
    (0x01003456, 0, False, False, 0),
    (0x02000056, 0, False, False, 0),
    (0x03000000, 0, False, False, 0),
    (0x04000000, 0, False, False, 0),
    (0x00923456, 0, False, False, 0),
    (0x01803456, 0, False, False, 0),
    (0x02800056, 0, False, False, 0),
    (0x03800000, 0, False, False, 0),
    (0x04800000, 0, False, False, 0),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x01FEDCBA, 0x7E, True, False, 0x01FE0000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x04923456, 0x12345600, True, False, 0x04923456),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x123456 << (8 * 29), False, False, 0x20123456),
]


@pytest.mark.parametrize("bits,target,neg,ovf,again", COMPACT_CASES)
def test_compact_roundtrip(bits, target, neg, ovf, again):
    t, n, o = compact_to_target(bits)
    assert (t, n, o) == (target, neg, ovf)
    assert target_to_compact(t, n) == again


@pytest.mark.parametrize("bits", [0xFF123456, 0x23000100, 0x22010000, 0x21010000 * 1 + 0x00010000])
def test_compact_overflow(bits):
    assert compact_to_target(bits)[2] is True


def test_compact_no_overflow_at_edge():
    # 0xff in the top byte of a 256-bit number is still in range.
    t, n, o = compact_to_target(0x220000FF)
    assert not o and t == 0xFF << (8 * 31)


def test_block_work():
    assert block_work(0x1D00FFFF) == 0x100010001  # the genesis block's chainwork
    assert block_work(0x207FFFFF) == 2  # regtest: two hashes on average
    assert block_work(0) == 0
    assert block_work(0x04923456) == 0  # negative
    assert block_work(0xFF123456) == 0  # overflow


class Node:
    def __init__(self, height, time, bits, prev=None):
        self.height, self.time, self.bits, self.prev = height, time, bits, prev

    def ancestor(self, height):
        n = self
        while n.height > height:
            n = n.prev
        return n


# Mainnet retargets from Core's pow_tests.
@pytest.mark.parametrize(
    "first_time,last_height,last_time,last_bits,expected",
    [
        (1261130161, 32255, 1262152739, 0x1D00FFFF, 0x1D00D86A),  # normal
        (1231006505, 2015, 1233061996, 0x1D00FFFF, 0x1D00FFFF),  # capped at pow limit
        (1279008237, 68543, 1279297671, 0x1C05A3F4, 0x1C0168FD),  # clamped to /4
        (1263163443, 48383, 1269211443, 0x1C387F6F, 0x1D00E1FD),  # clamped to x4
    ],
)
def test_mainnet_retarget(first_time, last_height, last_time, last_bits, expected):
    last = Node(last_height, last_time, last_bits)
    assert calculate_next_work(last, first_time, MAIN) == expected
    # Through next_work_required, with the first block of the interval as ancestor.
    first = Node(last_height - 2015, first_time, last_bits)
    last.prev = first
    assert next_work_required(last, last_time + 600, MAIN) == expected


def test_no_retarget_between_boundaries():
    last = Node(100, 1_300_000_000, 0x1C05A3F4)
    assert next_work_required(last, last.time + 10**6, MAIN) == 0x1C05A3F4


def test_regtest_never_retargets():
    chain = None
    for height in range(2020):
        chain = Node(height, 1296688602 + height, 0x207FFFFF, chain)
    assert next_work_required(chain, chain.time + 1, REGTEST) == 0x207FFFFF
    assert next_work_required(chain.ancestor(2014), chain.time, REGTEST) == 0x207FFFFF


def test_check_proof_of_work():
    assert check_proof_of_work(MAIN.genesis.hash, 0x1D00FFFF, MAIN)
    assert not check_proof_of_work(MAIN.genesis.hash, 0x1B00FFFF, MAIN)  # harder target
    assert not check_proof_of_work(b"\x00" * 32, 0x1E00FFFF, MAIN)  # above pow limit
    assert not check_proof_of_work(b"\x00" * 32, 0x04923456, MAIN)  # negative
    assert not check_proof_of_work(b"\x00" * 32, 0, MAIN)  # zero target
    assert not check_proof_of_work(b"\x00" * 32, 0xFF123456, MAIN)  # overflow
    assert check_proof_of_work(REGTEST.genesis.hash, 0x207FFFFF, REGTEST)


def test_subsidy():
    assert block_subsidy(0, 210_000) == 50 * COIN
    assert block_subsidy(209_999, 210_000) == 50 * COIN
    assert block_subsidy(210_000, 210_000) == 25 * COIN
    assert block_subsidy(150, 150) == 25 * COIN
    assert block_subsidy(33 * 210_000, 210_000) == 0  # 50 BTC >> 33 < 1 satoshi
    assert block_subsidy(63 * 150, 150) == 0
    assert block_subsidy(64 * 150, 150) == 0  # shift by >= 64 is defined as zero
    total = sum(block_subsidy(i * 210_000, 210_000) * 210_000 for i in range(70))
    assert total == 2_099_999_997_690_000 and total <= MAX_MONEY


def test_money_range():
    assert money_range(0) and money_range(MAX_MONEY)
    assert not money_range(-1) and not money_range(MAX_MONEY + 1)
