"""Chain-changing operations apply whole or not at all (issue 18 #1, #2): a node killed
after invalidateblock wrote its flags but before its UTXO set followed comes back on the
valid chain and can extend it; an invalidateblock or a reorg whose disconnect would need
damaged data (unreadable, or parsing but not what the header commits to) or would find a
UTXO set that does not match the blocks fails before anything changes, and the node keeps
extending its chain."""

from __future__ import annotations

import logging

import pytest

from consensus.amounts import COIN
from consensus.contextual import Coin
from consensus.params import REGTEST
from node.chain import DisconnectError
from node.store.blockfiles import BlockFileError, xor_bytes
from node.store.layout import outpoint_key
from tests.chainbuilder import OP_TRUE, ChainBuilder, spend_tx
from tests.unit.test_chain import open_chain
from tests.unit.test_reorg import digest_of


def flip_output_value(path, key: bytes, tx, value: int) -> None:
    """Flip the low bit of `tx`'s output of `value` in the blk file at `path` (XORed with
    `key`): damage that still parses."""
    data = bytearray(path.read_bytes())
    plain = xor_bytes(bytes(data), key, 0)
    raw = tx.serialize()
    pos = plain.find(raw)
    vpos = plain.find(value.to_bytes(8, "little"), pos)
    assert pos > 0 and pos < vpos < pos + len(raw)
    data[vpos] ^= 0x01
    path.write_bytes(bytes(data))

def test_invalid_flags_without_the_disconnect_are_finished_at_load(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 30)
    c = open_chain(tmp_path / "n")
    for b in blocks:
        c.process_block(b)
    c.flush()
    bad = c.get(blocks[20].hash)
    with c.lock:
        c._mark_invalid(bad)  # the flags reach the index ...
    c.close()  # ... and the process dies before the UTXO set moves (tip still at 30)
    c = open_chain(tmp_path / "n")
    try:
        assert c.height == 20 and c.tip.hash == blocks[19].hash
        assert c.utxo_stats() == digest_of(tmp_path, "fresh", blocks[:20])
        c.process_block(cb.next_block(blocks[19], [], tag=b"after"))  # mining continues
        assert c.height == 21
    finally:
        c.close()


def test_invalidate_over_damaged_undo_data_changes_nothing(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 30)
    c = open_chain(tmp_path / "n")
    try:
        for b in blocks:
            c.process_block(b)
        c.flush()
        before = c.utxo_stats()
        e = c.get(blocks[25].hash)  # its undo record is damaged on disk
        path = c.files.dir / "rev00000.dat"
        data = bytearray(path.read_bytes())
        data[e.undo_pos + 2] ^= 0xFF
        path.write_bytes(bytes(data))
        c._recent.clear()
        with pytest.raises(BlockFileError):
            c.invalidate_block(blocks[10].hash)
        assert c.height == 30 and c.utxo_stats() == before
        assert not c.get(blocks[10].hash).failed
    finally:
        c.close()



# -- disconnects over data that parses but is damaged, or a UTXO set that does not match -------

def _chain_with_spend(tmp_path):
    """Blocks 1..107 on a node; block 102 holds a transaction spending block 1's coinbase
    into 20 and 29 BTC. Returns (builder, blocks, that transaction, chain)."""
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [20 * COIN, 29 * COIN])
    blocks.append(cb.next_block(blocks[-1], [tx], fees=COIN))
    blocks += cb.chain(blocks[-1], 5)
    c = open_chain(tmp_path / "n")
    for b in blocks:
        c.process_block(b)
    c.flush()
    return cb, blocks, tx, c


def _flip_output_value(c, tx) -> None:
    """Flip the low bit of tx's first output value in the stored blk file: the block still
    parses and keeps its header (and hash), but its transactions no longer make the header's
    merkle root (the auditor's repro: the UTXO set ended with 103 coins / 5,099 BTC where a
    replay has 101 / 5,050)."""
    flip_output_value(c.files.dir / "blk00000.dat", c.files.key, tx, 20 * COIN)
    c._recent.clear()  # (as after a restart: blocks come from disk)


def _cache_state(c):
    coins = c.coins
    return ({k: coins.entries.get(k) for k in coins.dirty}, set(coins.dirty), set(coins.fresh),
            list(c.active))


def test_invalidate_over_a_flipped_output_value_changes_nothing(tmp_path):
    cb, blocks, tx, c = _chain_with_spend(tmp_path)
    try:
        before = c.utxo_stats()
        assert before == digest_of(tmp_path, "replay", blocks)
        _flip_output_value(c, tx)
        with pytest.raises(BlockFileError, match=r"blk00000\.dat.*bad-txnmrklroot"):
            c.invalidate_block(blocks[100].hash)  # height 101: 102 (damaged) .. 107 go
        assert c.height == 107 and c.tip.hash == blocks[-1].hash
        assert c.utxo_stats() == before
        assert not c.get(blocks[100].hash).failed
        c.process_block(cb.next_block(blocks[-1], [], tag=b"after"))  # mining continues
        assert c.height == 108
    finally:
        c.close()


def test_reorg_over_a_flipped_output_value_changes_nothing(tmp_path, caplog):
    cb, blocks, tx, c = _chain_with_spend(tmp_path)
    try:
        before = c.utxo_stats()
        _flip_output_value(c, tx)
        branch = cb.chain(blocks[100], 8, tag=b"alt")  # from height 101: 109 > 107
        with caplog.at_level(logging.ERROR, logger="validation"):
            for b in branch:
                c.process_block(b)  # stored; the reorg is refused, not raised at the sender
        assert c.tip.hash == blocks[-1].hash and c.utxo_stats() == before
        assert any("cannot reorganise" in r.getMessage() and "blk00000.dat" in r.getMessage()
                   for r in caplog.records)
        mined = cb.next_block(blocks[-1], [], tag=b"mine")  # less work than the branch
        c.process_block(mined)
        assert c.tip.hash == mined.hash and c.height == 108
        # preciousblock on the branch (more work) tries the same reorg: an error, no move
        with pytest.raises(BlockFileError, match="bad-txnmrklroot"):
            c.precious_block(branch[-1].hash)
        assert c.tip.hash == mined.hash
        assert c.utxo_stats() == digest_of(tmp_path, "replay", blocks + [mined])
    finally:
        c.close()


@pytest.mark.parametrize("damage", ["missing", "value", "height", "coinbase", "restored-exists"])
def test_disconnect_is_strict_and_all_or_nothing(tmp_path, damage):
    """Core's DisconnectBlock: a coin the block made that is missing from the UTXO set, or
    differs from the block's output (value, script, height, coinbase flag), or a spent coin
    to restore that is there already, makes the disconnect fail; it fails before anything
    changes (the cache, the active chain), for the tip and for a block deeper down."""
    cb, blocks, tx, c = _chain_with_spend(tmp_path)
    try:
        key = outpoint_key(tx.txid, 0)
        good = Coin(20 * COIN, OP_TRUE, 102, False)
        assert c.coins.get(key) == good
        if damage == "missing":
            c.coins.spend(key)
        elif damage == "value":
            c.coins.add(key, Coin(good.value + 1, OP_TRUE, 102, False), False)
        elif damage == "height":
            c.coins.add(key, Coin(good.value, OP_TRUE, 101, False), False)
        elif damage == "coinbase":
            c.coins.add(key, Coin(good.value, OP_TRUE, 102, True), False)
        else:  # block 1's coinbase output, which tx spent, is back in the UTXO set
            c.coins.add(outpoint_key(blocks[0].txs[0].txid, 0),
                        Coin(50 * COIN, OP_TRUE, 1, True), False)
        damaged = c.utxo_stats()  # (flushed: the damage is in the chainstate on disk)
        # a disconnect of blocks 107..102 finds the mismatch at the 6th: nothing moves
        state = _cache_state(c)
        with pytest.raises(DisconnectError, match="cannot disconnect block"):
            c.invalidate_block(blocks[101].hash)
        assert _cache_state(c) == state and c.height == 107
        assert c.utxo_stats() == damaged
        # the disconnect of one block checks as strictly, by itself (as at start-up)
        while c.height > 102:
            with c.lock:
                c._disconnect_tip()
        state = _cache_state(c)
        with c.lock, pytest.raises(DisconnectError, match="cannot disconnect block"):
            c._disconnect_tip()
        assert _cache_state(c) == state and c.height == 102
    finally:
        c.close()
