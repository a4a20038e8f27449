"""The block index read on demand (node/store/lazyindex.py): start-up reads the entries off
the active chain and the few it needs, the height map of the active chain is put right
against the UTXO set's best block, and an index of format 1 is upgraded in place."""

from __future__ import annotations

import plyvel

from consensus.params import REGTEST
from node.store.layout import (
    ACTIVE_PREFIX,
    BLOCK_PREFIX,
    FILE_PREFIX,
    INDEX_RECORD_SIZE_V1,
    LEAF_PREFIX,
    VERSION_KEY,
    active_key,
)
from tests.chainbuilder import ChainBuilder
from tests.unit.test_chain import open_chain


def feed(chain, blocks):
    for b in blocks:
        chain.process_block(b)


def _index_path(datadir):
    return datadir / "blocks" / "index"


def _state(c):
    """What a user sees of the index: tip, best header, chain tips, and every entry's
    stored and derived fields."""
    entries = {e.hash: (e.height, e.status, e.n_tx, e.file, e.data_pos, e.undo_pos,
                        e.chain_work, e.chain_tx, e.prev and e.prev.hash,
                        e.skip and e.skip.hash, e.median_time_past())
               for e in c.index.load_all()}
    tips = sorted((e.hash, n, status) for e, n, status in c.chain_tips())
    return c.tip.hash, c.best_header.hash, tips, entries


def _tree(tmp_path):
    """A chain of 60 with a stored fork (less work), a header-only branch and an invalid
    block; closed. Returns (datadir, main chain blocks)."""
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 60)
    fork = cb.chain(main[39], 5, tag=b"fork")
    extra = cb.chain(main[-1], 4, tag=b"hdr")
    d = tmp_path / "n"
    c = open_chain(d)
    feed(c, main + fork)
    for b in extra:
        c.accept_header(b.header)
    c.invalidate_block(fork[2].hash)
    c.close()
    return d, main


def test_start_up_reads_what_is_off_the_active_chain(tmp_path):
    d, main = _tree(tmp_path)
    c = open_chain(d)
    try:
        heights = sorted(e.height for e in c.index.loaded() if c.in_active_chain(e))
        # The tip, the blocks -checkblocks reads and their median-time windows, the fork
        # points, a few skip targets: not the chain.
        assert len(heights) < 30 and heights[-1] == 60
        off = [e for e in c.index.loaded() if not c.in_active_chain(e)]
        assert len(off) == 5 + 4
        assert c.best_header.height == 64 and c.tip.hash == main[-1].hash
        assert [e.height for e in c.active[55:58]] == [55, 56, 57]
        assert c.active[10].hash == main[9].hash and c.active[-61].height == 0
    finally:
        c.close()


def test_read_on_demand_equals_read_all(tmp_path):
    d, _ = _tree(tmp_path)
    c = open_chain(d)
    all_at_once = _state(c)  # (load_all first: the entries come from every record)
    c.close()
    c = open_chain(d)
    try:
        tip, best = c.tip.hash, c.best_header.hash
        tips = sorted((e.hash, n, status) for e, n, status in c.chain_tips())
        assert (tip, best, tips) == all_at_once[:3]
        for h, fields in all_at_once[3].items():  # one by one, each read on demand
            e = c.get(h)
            assert (e.height, e.status, e.n_tx, e.file, e.data_pos, e.undo_pos, e.chain_work,
                    e.chain_tx, e.prev and e.prev.hash, e.skip and e.skip.hash,
                    e.median_time_past()) == fields
    finally:
        c.close()


def test_format_1_is_upgraded_in_place(tmp_path):
    d, _ = _tree(tmp_path)
    c = open_chain(d)
    before = _state(c)
    c.close()
    db = plyvel.DB(str(_index_path(d)))  # back to format 1: short records, no other keys
    with db.write_batch() as batch:
        for key, raw in db.iterator(prefix=BLOCK_PREFIX):
            batch.put(key, raw[:INDEX_RECORD_SIZE_V1])
        for prefix in (ACTIVE_PREFIX, LEAF_PREFIX, FILE_PREFIX):
            for key in db.iterator(prefix=prefix, include_value=False):
                batch.delete(key)
        batch.delete(VERSION_KEY)
    db.close()
    c = open_chain(d)
    try:
        assert _state(c) == before
    finally:
        c.close()
    db = plyvel.DB(str(_index_path(d)))
    try:
        assert db.get(VERSION_KEY) == b"\x02"
        assert len(list(db.iterator(prefix=ACTIVE_PREFIX))) == 61
        assert len(list(db.iterator(prefix=FILE_PREFIX))) == 1
    finally:
        db.close()
    c = open_chain(d)  # and read on demand from then on
    try:
        assert len(c.index.loaded()) < 40
        assert _state(c) == before
    finally:
        c.close()


def test_height_map_put_right_against_the_utxo_set(tmp_path):
    """The map is written as blocks connect, the UTXO set's best block at each flush: after
    a crash the map can be ahead of it, behind it or on another branch."""
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 30)
    fork = cb.chain(main[19], 12, tag=b"fork")  # heights 21..32, more work
    d = tmp_path / "n"
    c = open_chain(d)
    feed(c, main)
    for b in fork:
        c.accept_header(b.header)  # (known, so the map can name them)
    hashes = {b.hash: b for b in fork}
    c.close()

    def rewrite_map(pairs, drop=()):
        db = plyvel.DB(str(_index_path(d)))
        for h, block_hash in pairs:
            db.put(active_key(h), block_hash)
        for h in drop:
            db.delete(active_key(h))
        db.close()

    def check(c):
        assert c.tip.hash == main[-1].hash and c.height == 30
        assert [e.hash for e in c.active[1:]] == [b.hash for b in main]
        db = c.index_db
        assert [db.active_hash(h) for h in range(1, 31)] == [b.hash for b in main]
        assert db.active_hash(31) is None

    # On the fork (a reorg whose UTXO set was never flushed), and ahead of the tip.
    rewrite_map([(20 + i, b.hash) for i, b in enumerate(fork, 1)])
    c = open_chain(d)
    try:
        check(c)
        assert not any(e.hash in hashes and c.in_active_chain(e) for e in c.index.loaded())
    finally:
        c.close()
    # Behind the tip (the last heights never written).
    rewrite_map([], drop=range(25, 31))
    c = open_chain(d)
    try:
        check(c)
    finally:
        c.close()


def test_reorg_and_restart_keep_the_map_and_the_leaves(tmp_path):
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 30)
    fork = cb.chain(main[19], 15, tag=b"fork")
    d = tmp_path / "n"
    c = open_chain(d)
    feed(c, main + fork)
    assert c.tip.hash == fork[-1].hash
    c.close()
    c = open_chain(d)
    try:
        assert c.tip.hash == fork[-1].hash
        assert [e.hash for e in c.active[21:]] == [b.hash for b in fork]
        tips = {e.hash: status for e, _, status in c.chain_tips()}
        assert tips == {fork[-1].hash: "active", main[-1].hash: "valid-fork"}
        assert set(c.index_db.leaves()) == {fork[-1].hash, main[-1].hash}
        feed(c, cb.chain(main[-1], 10, tag=b"back"))  # back to the old branch, extended
        assert c.height == 40
    finally:
        c.close()
