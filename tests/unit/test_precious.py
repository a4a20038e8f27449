"""preciousblock as Core's PreciousBlock: a block with as much work as the tip is treated as
if it had arrived first (the chain moves to it); one with less work changes nothing; a later
call overrides an earlier one; nothing of it is kept across a restart."""

from __future__ import annotations

import pytest

from consensus.params import REGTEST
from tests.chainbuilder import ChainBuilder
from tests.unit.test_chain import open_chain
from tests.unit.test_reorg import digest_of


def test_precious_block_wins_ties_and_later_calls_override(tmp_path):
    cb = ChainBuilder()
    common = cb.chain(REGTEST.genesis, 5)
    a = cb.chain(common[-1], 3, tag=b"a")
    b = cb.chain(common[-1], 3, tag=b"b")
    c = open_chain(tmp_path / "n")
    try:
        for blk in common + a + b:
            c.process_block(blk)
        assert c.tip.hash == a[-1].hash  # first seen wins the tie
        c.precious_block(b[-1].hash)
        assert c.tip.hash == b[-1].hash
        assert c.utxo_stats() == digest_of(tmp_path, "ref_b", common + b)
        c.precious_block(a[-1].hash)  # a later call overrides
        assert c.tip.hash == a[-1].hash
        c.precious_block(b[1].hash)  # less work than the tip: nothing happens
        assert c.tip.hash == a[-1].hash
        with pytest.raises(KeyError):
            c.precious_block(b"\x01" * 32)
        c.process_block(cb.next_block(b[-1], tag=b"b4"))  # more work beats precious
        assert c.height == 9 and c.tip.prev.hash == b[-1].hash
    finally:
        c.close()


def test_precious_is_not_kept_across_a_restart(tmp_path):
    cb = ChainBuilder()
    common = cb.chain(REGTEST.genesis, 3)
    a = cb.chain(common[-1], 2, tag=b"a")
    b = cb.chain(common[-1], 2, tag=b"b")
    c = open_chain(tmp_path / "n")
    for blk in common + a + b:
        c.process_block(blk)
    c.precious_block(b[-1].hash)
    c.precious_block(a[-1].hash)
    c.precious_block(b[-1].hash)
    assert c.tip.hash == b[-1].hash
    c.close()
    c = open_chain(tmp_path / "n")
    try:
        assert c.tip.hash == b[-1].hash  # the tip it stopped at wins the tie
        c.precious_block(a[-1].hash)
        assert c.tip.hash == a[-1].hash
    finally:
        c.close()
