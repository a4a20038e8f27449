import os
import random

import pytest

from consensus.block import Block, BlockHeader
from consensus.serialize import (
    MAX_SIZE,
    DeserializationError,
    Reader,
    compact_size,
    compact_size_len,
)
from consensus.tx import Transaction
from tests.conftest import load_json


@pytest.mark.parametrize(
    "n,enc",
    [
        (0, "00"),
        (0xFC, "fc"),
        (0xFD, "fdfd00"),
        (0xFFFF, "fdffff"),
        (0x10000, "fe00000100"),
        (0xFFFFFFFF, "feffffffff"),
        (0x100000000, "ff0000000001000000"),
    ],
)
def test_compact_size_encoding(n, enc):
    assert compact_size(n).hex() == enc
    assert compact_size_len(n) == len(enc) // 2
    assert Reader(bytes.fromhex(enc)).compact_size(range_check=False) == n


@pytest.mark.parametrize("enc", ["fdfc00", "fe00000000", "feffff0000", "ffffffffff00000000"])
def test_compact_size_non_canonical_rejected(enc):
    with pytest.raises(DeserializationError, match="non-canonical"):
        Reader(bytes.fromhex(enc)).compact_size(range_check=False)


def test_compact_size_range_check():
    ok = compact_size(MAX_SIZE)
    assert Reader(ok).compact_size() == MAX_SIZE
    with pytest.raises(DeserializationError, match="too large"):
        Reader(compact_size(MAX_SIZE + 1)).compact_size()


@pytest.mark.parametrize("enc", ["", "fd", "fd00", "fe000001", "ff00000000000001"])
def test_compact_size_truncated(enc):
    with pytest.raises(DeserializationError, match="truncated"):
        Reader(bytes.fromhex(enc)).compact_size()


def test_fixed_width_reads_and_truncation():
    r = Reader(bytes.fromhex("01" "0200" "03000000" "ffffffff" "0500000000000000"))
    assert (r.u8(), r.u16(), r.u32(), r.i32(), r.u64()) == (1, 2, 3, -1, 5)
    assert r.at_end()
    for method in (r.u8, r.u16, r.u32, r.i32, r.u64, r.i64):
        with pytest.raises(DeserializationError):
            method()
    with pytest.raises(DeserializationError):
        Reader(b"\x05abc").var_bytes()


def test_huge_declared_count_fails_fast_without_allocating():
    # 0x02000000 inputs declared, none present: must fail on truncation, not hang.
    data = bytes.fromhex("01000000") + compact_size(MAX_SIZE) + b"\x00" * 10
    with pytest.raises(DeserializationError):
        Transaction.from_bytes(data)


def test_garbage_never_raises_anything_else():
    rng = random.Random(1234)
    for _ in range(3000):
        data = os.urandom(rng.randrange(0, 300)) if rng.random() < 0.5 else bytes(
            rng.choice([0, 1, 0xFD, 0xFF]) for _ in range(rng.randrange(0, 120))
        )
        for parse in (Transaction.from_bytes, Block.from_bytes, BlockHeader.from_bytes):
            try:
                parse(data)
            except DeserializationError:
                pass


def test_every_truncation_of_a_real_tx_fails_cleanly():
    # The first segwit transaction of tx_valid.json: every strict prefix must be rejected.
    raw = next(
        bytes.fromhex(row[1])
        for row in load_json("tx_valid.json")
        if len(row) == 3 and row[1][8:12] == "0001"
    )
    tx = Transaction.from_bytes(raw)
    assert tx.serialize() == raw
    for cut in range(len(raw)):
        with pytest.raises(DeserializationError):
            Transaction.from_bytes(raw[:cut])
    with pytest.raises(DeserializationError, match="trailing"):
        Transaction.from_bytes(raw + b"\x00")
