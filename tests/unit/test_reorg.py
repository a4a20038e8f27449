"""Fork choice and reorgs (three competing branches), invalid branches, invalidateblock and
reconsiderblock, chain tips, events, restart, block import and reindex."""

from __future__ import annotations

import pytest

from consensus.amounts import COIN
from consensus.block import Block
from consensus.errors import ValidationError
from consensus.params import REGTEST
from node.blockimport import load_external_block_file, reindex, reindex_chainstate
from node.chain import ChainState
from node.store.blockfiles import BlockFileError
from node.store.blockindex import FAILED_CHILD, FAILED_VALID
from tests.chainbuilder import ChainBuilder, spend_tx
from tests.unit.test_chain import open_chain


def write_blk_file(path, blocks: list[Block], magic=REGTEST.message_start) -> None:
    with open(path, "wb") as f:
        for b in blocks:
            raw = b.serialize()
            f.write(magic + len(raw).to_bytes(4, "little") + raw)


def digest_of(tmp_path, name: str, blocks: list[Block]) -> tuple[bytes, int, int]:
    """UTXO digest of a fresh node that saw only these blocks."""
    c = open_chain(tmp_path / name)
    try:
        for b in blocks:
            c.process_block(b)
        return c.utxo_stats()
    finally:
        c.close()


@pytest.fixture
def chain(tmp_path):
    c = open_chain(tmp_path / "node")
    yield c
    c.close()


def feed(chain, blocks):
    for b in blocks:
        chain.process_block(b)


def test_three_competing_branches(chain, tmp_path):
    cb = ChainBuilder()
    common = cb.chain(REGTEST.genesis, 101)
    feed(chain, common)
    cb1, cb2 = common[0].txs[0].txid, common[1].txs[0].txid
    # A: 3 blocks spending coinbase 1.
    ta = spend_tx([(cb1, 0)], [49 * COIN])
    a = [cb.next_block(common[-1], [ta], fees=COIN, tag=b"A")] + cb.chain(common[-1], 0)
    a += cb.chain(a[-1], 2)
    # B: forks at the same point, 4 blocks, spends coinbase 1 differently (a conflict).
    tb = spend_tx([(cb1, 0)], [48 * COIN])
    b = [cb.next_block(common[-1], [tb], fees=2 * COIN, tag=b"B")]
    b += cb.chain(b[-1], 3)
    # C: forks one block earlier, 6 blocks, spends coinbase 2.
    tc = spend_tx([(cb2, 0)], [47 * COIN])
    c = cb.chain(common[-2], 1, tag=b"C")
    c += [cb.next_block(c[-1], [tc], fees=3 * COIN)]
    c += cb.chain(c[-1], 4)

    connected, disconnected = [], []
    chain.on_connected.append(lambda blk, e: connected.append(e.height))
    chain.on_disconnected.append(lambda blk, e: disconnected.append(e.height))

    feed(chain, a)
    assert chain.tip.hash == a[-1].hash and chain.get_coin(ta.txid, 0) is not None
    feed(chain, b)
    assert chain.tip.hash == b[-1].hash
    assert chain.get_coin(ta.txid, 0) is None and chain.get_coin(tb.txid, 0) is not None
    assert disconnected == [104, 103, 102]
    feed(chain, c)
    assert chain.tip.hash == c[-1].hash and chain.height == 106
    assert chain.get_coin(tb.txid, 0) is None and chain.get_coin(tc.txid, 0) is not None
    assert chain.get_coin(cb1, 0) is not None  # unspent again on this branch
    assert disconnected[-5:] == [105, 104, 103, 102, 101]
    # The state after two reorgs equals that of a node that only ever saw branch C.
    assert chain.utxo_stats() == digest_of(tmp_path, "fresh", common[:-1] + c)
    # Chain tips: C active, A and B valid forks of their length.
    tips = {e.hash: (length, status) for e, length, status in chain.chain_tips()}
    assert tips[c[-1].hash] == (0, "active")
    # Branch lengths count from the fork with C (height 100), so A and B include common[-1].
    assert tips[b[-1].hash] == (5, "valid-fork")
    assert tips[a[-1].hash] == (4, "valid-fork")


def test_first_seen_wins_a_tie(chain):
    cb = ChainBuilder()
    base = cb.chain(REGTEST.genesis, 3)
    feed(chain, base)
    x = cb.next_block(base[-1], tag=b"x")
    y = cb.next_block(base[-1], tag=b"y")
    chain.process_block(x)
    chain.process_block(y)
    assert chain.tip.hash == x.hash
    tips = {e.hash: s for e, _, s in chain.chain_tips()}
    assert tips[y.hash] == "valid-headers"  # stored, never connected
    # One more block on y gives it more work: reorg.
    chain.process_block(cb.next_block(y))
    assert chain.tip.prev.hash == y.hash


def test_invalid_branch_leaves_best_valid_chain(chain):
    cb = ChainBuilder()
    base = cb.chain(REGTEST.genesis, 5)
    feed(chain, base)
    good = cb.chain(base[-1], 3)
    feed(chain, good)
    # A longer branch from base[-1] whose second block overpays its coinbase. Its blocks
    # are stored while they have no more work; the fourth makes it best and triggers the
    # reorg, which fails at f2: the node goes back to `good`.
    f1 = cb.next_block(base[-1], tag=b"f")
    f2 = cb.next_block(f1, extra_value=1)
    f3 = cb.next_block(f2)
    f4 = cb.next_block(f3)
    for b in (f1, f2, f3, f4):
        chain.process_block(b)  # f4 itself is valid: no error for it
    assert chain.tip.hash == good[-1].hash
    assert chain.get(f2.hash).status & FAILED_VALID
    assert chain.get(f3.hash).status & FAILED_CHILD and chain.get(f4.hash).status & FAILED_CHILD
    assert chain.invalid_errors[f2.hash].reason == "bad-cb-amount"
    tips = {e.hash: s for e, _, s in chain.chain_tips()}
    assert tips[f4.hash] == "invalid"
    # A child of an invalid block is refused at once.
    with pytest.raises(ValidationError, match="bad-prevblk"):
        chain.process_block(cb.next_block(f4))


def test_invalidate_and_reconsider(chain):
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 6)
    feed(chain, main)
    alt = cb.chain(main[2], 2, tag=b"alt")  # less work than main
    feed(chain, alt)
    assert chain.tip.hash == main[-1].hash
    chain.invalidate_block(main[3].hash)
    # main[3..5] gone; alt (height 5) now has the most work among valid chains.
    assert chain.tip.hash == alt[-1].hash
    tips = {e.hash: s for e, _, s in chain.chain_tips()}
    assert tips[main[-1].hash] == "invalid"
    chain.reconsider_block(main[3].hash)
    assert chain.tip.hash == main[-1].hash
    with pytest.raises(KeyError):
        chain.invalidate_block(b"\x99" * 32)


def test_headers_only_tip(chain):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 3)
    feed(chain, blocks[:1])
    for b in blocks[1:]:
        chain.accept_header(b.header)
    tips = {e.hash: (n, s) for e, n, s in chain.chain_tips()}
    assert tips[blocks[-1].hash] == (2, "headers-only")
    assert chain.best_header.hash == blocks[-1].hash
    assert chain.height == 1
    # The data arrives: the chain connects through.
    feed(chain, blocks[1:])
    assert chain.tip.hash == blocks[-1].hash


def test_restart_keeps_state_and_forks(tmp_path):
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 110)
    alt = cb.chain(main[100], 3, tag=b"alt")
    c = open_chain(tmp_path / "n")
    feed(c, main + alt)
    stats = c.utxo_stats()
    c.close()
    c = open_chain(tmp_path / "n")
    try:
        assert c.tip.hash == main[-1].hash
        assert c.utxo_stats() == stats
        assert alt[-1].hash in {e.hash for e, _, _ in c.chain_tips()}
        # The fork is still usable: extend it past the main chain.
        feed(c, cb.chain(alt[-1], 8))
        assert c.tip.height == 112
    finally:
        c.close()


def test_import_twice_identical_and_out_of_order(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 120)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [10 * COIN, 39 * COIN])
    blocks.append(cb.next_block(blocks[-1], [tx], fees=COIN))
    # Children before parents, as in Bitcoin Core's own blk files.
    shuffled = blocks[:50] + blocks[60:] + blocks[50:60]
    f = tmp_path / "blk.dat"
    write_blk_file(f, shuffled)
    c = open_chain(tmp_path / "a")
    try:
        s1 = load_external_block_file(c, f)
        assert (s1.new, s1.orphans) == (121, 0)
        first = c.utxo_stats()
        s2 = load_external_block_file(c, f)
        assert s2.new == 0 and s2.known == 121
        assert c.utxo_stats() == first and c.height == 121
    finally:
        c.close()
    c = open_chain(tmp_path / "b")
    try:
        load_external_block_file(c, f)
        assert c.utxo_stats() == first
    finally:
        c.close()


def test_import_skips_garbage_between_records(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 5)
    f = tmp_path / "blk.dat"
    write_blk_file(f, blocks)
    data = f.read_bytes()
    # Zero padding (as Core pre-allocates) and a torn record at the end.
    f.write_bytes(b"\x00" * 100 + data + b"\x00" * 1000 + data[:50])
    c = open_chain(tmp_path / "n")
    try:
        assert load_external_block_file(c, f).new == 5 and c.height == 5
    finally:
        c.close()


def test_corrupt_block_file_named_and_reindex_recovers(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 30)
    c = open_chain(tmp_path / "n")
    feed(c, blocks)
    c.close()
    blk = tmp_path / "n" / "blocks" / "blk00000.dat"
    size = blk.stat().st_size
    with open(blk, "r+b") as f:
        f.truncate(size - 40)  # cut the last block short
    with pytest.raises(BlockFileError, match="blk00000.dat"):
        open_chain(tmp_path / "n")
    c = ChainState(tmp_path / "n", REGTEST, dbcache_mb=8)
    try:
        reindex(c)
        assert c.height == 29
        assert c.utxo_stats() == digest_of(tmp_path, "ref", blocks[:29])
        # The lost block can be supplied again.
        c.process_block(blocks[-1])
        assert c.height == 30
    finally:
        c.close()


def test_reindex_and_reindex_chainstate_match(tmp_path):
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 105)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN])
    blocks.append(cb.next_block(blocks[-1], [tx], fees=COIN))
    alt = cb.chain(blocks[100], 2, tag=b"alt")
    c = open_chain(tmp_path / "n")
    feed(c, blocks + alt)
    ref = c.utxo_stats()
    reindex_chainstate(c)
    assert c.utxo_stats() == ref and c.tip.hash == blocks[-1].hash
    reindex(c)
    assert c.utxo_stats() == ref and c.tip.hash == blocks[-1].hash
    assert alt[-1].hash in c.index
    c.close()


def test_small_cache_flushes_and_stays_consistent(tmp_path):
    """With a tiny -dbcache the UTXO set is flushed and evicted many times mid-chain."""
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    prev = blocks[0].txs[0].txid
    for i in range(30):
        tx = spend_tx([(prev, 0)], [(49 - i) * COIN] + [1000] * 200)
        blocks.append(cb.next_block(blocks[-1], [tx], fees=COIN - 200_000))
        prev = tx.txid
    c = ChainState(tmp_path / "small", REGTEST, dbcache_mb=0)
    c.load()
    try:
        feed(c, blocks)
        small = c.utxo_stats()
    finally:
        c.close()
    assert small == digest_of(tmp_path, "big", blocks)


def test_coin_cache_size_accounting(tmp_path):
    from consensus.contextual import Coin
    from node.store.coins import CoinsCache

    cache = CoinsCache(tmp_path / "cs", 1 << 20)
    try:
        def real() -> int:
            return sum(len(c.script_pubkey) for c in cache.entries.values() if c is not None)

        for i in range(50):
            cache.add(bytes([i]) * 36, Coin(1, b"\x51" * (i + 1), 1, False), fresh=True)
        cache.flush(b"\x00" * 32, evict=False)
        for i in range(0, 50, 2):
            cache.spend(bytes([i]) * 36)
        cache.add(bytes([1]) * 36, Coin(2, b"\x52" * 3, 2, False), fresh=False)  # overwrite
        assert cache._script_bytes == real()
        cache.flush(b"\x00" * 32, evict=False)
        assert cache._script_bytes == real()
    finally:
        cache.close()


def test_coin_cache_apply_is_spend_and_add_one_by_one(tmp_path):
    """apply(changes) leaves the cache (entries, dirty, fresh, size) as spend() and add()
    called for each change, across flushes and coinbase/fresh combinations."""
    import random

    from consensus.contextual import Coin
    from node.store.coins import CoinsCache

    rng = random.Random(3)
    a = CoinsCache(tmp_path / "a", 1 << 20)
    b = CoinsCache(tmp_path / "b", 1 << 20)
    try:
        for rnd in range(30):
            changes = {}
            for _ in range(40):
                key = bytes([rng.randrange(60)]) * 36
                changes[key] = None if key in a.entries and rng.random() < 0.5 else Coin(
                    rng.randrange(1, 99), b"\x51" * rng.randrange(1, 9), rnd,
                    rng.random() < 0.3)
            fresh_ok = rng.random() < 0.5
            a.apply(changes, fresh_ok)
            for key, coin in changes.items():
                if coin is None:
                    b.spend(key)
                else:
                    b.add(key, coin, fresh_ok or not coin.coinbase)
            for x, y in ((a.entries, b.entries), (a.dirty, b.dirty), (a.fresh, b.fresh),
                         (a._script_bytes, b._script_bytes)):
                assert x == y
            if rnd % 7 == 6:
                a.flush(b"\x00" * 32, evict=False)
                b.flush(b"\x00" * 32, evict=False)
    finally:
        a.close()
        b.close()


def test_reindex_flag_survives_index_wipe(tmp_path):
    from node.store.blockindex import BlockIndexDB

    db = BlockIndexDB(tmp_path / "idx")
    try:
        db.set_reindexing(True)
        db.wipe()
        assert db.is_reindexing()  # a crash right after the wipe still restarts the reindex
    finally:
        db.close()


def test_import_reads_ahead_while_scripts_are_checked_and_still_rejects(tmp_path,
                                                                      monkeypatch):
    """-loadblock parses and checks the next block while the worker checks a block's
    scripts (ScriptChecker.while_checking). A script failure in that block still rejects it
    (the first failing input in order reported) and its child after it, and leaves the
    chain at the block before."""
    import consensus.script.pool as pool_mod
    from consensus.script.verify import SCRIPT_EXECUTION_CACHE
    from node.scriptcheck import ScriptChecker
    from tests.chainbuilder import OP_TRUE, P2WSH_TRUE

    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    n = 150
    fan = spend_tx([(blocks[0].txs[0].txid, 0)], [COIN // 10] * (2 * n), spk=P2WSH_TRUE,
                   witness=[OP_TRUE])
    blocks.append(cb.next_block(blocks[-1], [fan], fees=50 * COIN - 2 * n * (COIN // 10)))

    def spends(first: int, bad: tuple[int, ...] = ()) -> list:
        return [spend_tx([(fan.txid, first + i)], [COIN // 10], spk=P2WSH_TRUE,
                         witness=[b"\x00" if i in bad else OP_TRUE]) for i in range(n)]

    blocks.append(cb.next_block(blocks[-1], spends(0)))
    bad_txs = spends(n, bad=(140, 90))
    blocks.append(cb.next_block(blocks[-1], bad_txs))  # fails at its 90th transaction
    blocks.append(cb.next_block(blocks[-1]))  # its child
    f = tmp_path / "blk.dat"
    write_blk_file(f, blocks)

    idle_at: list[int] = []
    real_run_idle = pool_mod.CheckSession._run_idle

    def run_idle(session, idle):
        idle_at.append(c.height)  # the block being connected is c.height + 1
        real_run_idle(session, idle)

    monkeypatch.setattr(pool_mod.CheckSession, "_run_idle", run_idle)
    SCRIPT_EXECUTION_CACHE.clear()
    c = ChainState(tmp_path / "n", REGTEST, dbcache_mb=8,
                   scripts=ScriptChecker(1, caller_checks=True))
    c.load()
    try:
        stats = load_external_block_file(c, f)
        assert (stats.new, stats.invalid) == (103, 2)
        assert 103 in idle_at  # the bad block's checks overlapped reading its child
        assert c.tip.hash == blocks[102].hash
        bad = c.get(blocks[103].hash)
        assert bad.status & FAILED_VALID
        assert c.get(blocks[104].hash) is None  # refused at its header: bad-prevblk
        err = c.invalid_errors[blocks[103].hash]
        assert err.reason.startswith("block-script-verify-flag-failed")
        assert bad_txs[90].txid[::-1].hex() in err.debug
    finally:
        c.close()
