"""The UTXO set is flushed every FLUSH_BLOCKS connected blocks (not only every FLUSH_INTERVAL
seconds or when the cache is full), also in the middle of one long step (a restart rolling
forward, a deep reorg or reconsiderblock): a restart after a crash replays at most that many
blocks, however fast they came."""

from __future__ import annotations

import node.chain as chain_mod
from consensus.params import REGTEST
from tests.chainbuilder import ChainBuilder
from tests.unit.test_chain import open_chain


def flushed_height(c) -> int:
    """The height the UTXO set on disk is at (what a restart after a kill starts from)."""
    best = c.coins.best_block()
    return -1 if best is None else c.get(best).height


def test_flush_every_flush_blocks_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(chain_mod, "FLUSH_BLOCKS", 10)
    monkeypatch.setattr(chain_mod, "FLUSH_INTERVAL", 1e9)
    blocks = ChainBuilder().chain(REGTEST.genesis, 35)
    c = open_chain(tmp_path / "n", dbcache_mb=64)
    try:
        for b in blocks:
            c.process_block(b)
        assert 35 - 10 < flushed_height(c) <= 35
        # One step connecting 33 blocks (reconsiderblock) flushes on its way.
        c.invalidate_block(blocks[2].hash)
        assert flushed_height(c) == 2
        seen = []
        c.on_connected.append(lambda block, e: seen.append(flushed_height(c)))
        c.reconsider_block(blocks[2].hash)
        assert c.height == 35
        assert any(2 < h < 35 for h in seen), seen
        assert max(seen) - min(seen) >= 20
    finally:
        c.close()


def test_pruning_flushes_the_utxo_set_before_deleting_files(tmp_path, monkeypatch):
    """As Core's FlushStateToDisk before UnlinkPrunedFiles: a restart after a crash rolls
    forward from the UTXO set's last flush, so the blocks above it must still be on disk."""
    import shutil

    from node.prune import PRUNE_MANUAL, Pruner
    from tests.unit.test_reorg import digest_of

    monkeypatch.setattr(chain_mod, "FLUSH_BLOCKS", 10**9)
    monkeypatch.setattr(chain_mod, "FLUSH_INTERVAL", 1e9)
    blocks = ChainBuilder().chain(REGTEST.genesis, 400)
    c = open_chain(tmp_path / "n", dbcache_mb=64, max_file_size=0x4000)
    try:
        for b in blocks:
            c.process_block(b)
        assert flushed_height(c) < 100  # (nothing flushed the UTXO set since the start)
        assert Pruner(c, PRUNE_MANUAL).prune_to(400 - 288) > 0
        # Killed now: what is on disk (the databases' logs included) is all a restart has.
        shutil.copytree(tmp_path / "n", tmp_path / "killed",
                        ignore=shutil.ignore_patterns("LOCK"))
    finally:
        c.close()
    c = open_chain(tmp_path / "killed", dbcache_mb=64, max_file_size=0x4000)
    try:
        assert c.height == 400
        assert c.utxo_stats() == digest_of(tmp_path, "ref", blocks)
    finally:
        c.close()
