"""Chain-changing operations apply whole or not at all (issue 18 #1, #2): a node killed
after invalidateblock wrote its flags but before its UTXO set followed comes back on the
valid chain and can extend it; an invalidateblock whose disconnect would need damaged data
fails before anything changes."""

from __future__ import annotations

import pytest

from consensus.params import REGTEST
from node.store.blockfiles import BlockFileError
from tests.chainbuilder import ChainBuilder
from tests.unit.test_chain import open_chain
from tests.unit.test_reorg import digest_of


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

