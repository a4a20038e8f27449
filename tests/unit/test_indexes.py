"""The optional indexes (node/index) on a real chain state: built in the background from an
existing chain, kept right across reorgs, resumed after a restart, wiped on request, and a
damaged database refused with Core's error."""

from __future__ import annotations

import logging
import os
import time

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from node.index import Indexes, IndexInitError, bip158
from node.index.coinstatsindex import CoinStats
from tests.chainbuilder import ChainBuilder, spend_tx
from tests.unit.test_chain import open_chain

ALL = dict(txindex=True, blockfilterindex=True, coinstatsindex=True, txospenderindex=True)


def wait_synced(ixs: Indexes, chain, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i.synced and i.best is chain.tip for i in ixs.all):
            return
        time.sleep(0.01)
    raise AssertionError({i.name: (i.synced, i.best and i.best.height) for i in ixs.all})


def feed(chain, blocks) -> None:
    for b in blocks:
        chain.process_block(b)


def check_against_chain(ixs: Indexes, chain) -> None:
    """Every index agrees with the chain state it follows."""
    tip = chain.tip
    stats, at = chain.utxo_stats_full(muhash=True)
    assert at is tip
    digest, st = ixs.coinstats.lookup(tip.hash)
    assert digest == stats.muhash
    assert (st.txouts, st.total_amount, st.bogosize) == (stats.count, stats.total,
                                                         stats.bogosize)
    header = bytes(32)
    for e in chain.active:
        block = chain.read_block(e)
        spent = [c.script_pubkey for coins in chain.read_undo(e) for c in coins] \
            if e.prev else []
        encoded, got_header = ixs.blockfilter.lookup(e.hash)
        assert encoded == bip158.basic_filter(block, spent)
        header = bip158.filter_header(encoded, header)
        assert got_header == header
        for i, tx in enumerate(block.txs):
            if e.prev is not None:
                assert ixs.txindex.lookup(tx.txid)[:2] == (e.file, e.data_pos)
            if i == 0:
                continue
            for txin in tx.vin:
                spender, where = ixs.txospender.find_spender(txin.prevout.hash, txin.prevout.n)
                assert (spender.txid, where) == (tx.txid, e)


@pytest.fixture
def builder():
    return ChainBuilder()


@pytest.fixture
def built(builder):
    cb = builder
    common = cb.chain(REGTEST.genesis, 105)
    c1, c2, c3 = (common[i].txs[0].txid for i in range(3))
    t1 = spend_tx([(c1, 0)], [20 * COIN, 29 * COIN])
    t2 = spend_tx([(t1.txid, 0), (c2, 0)], [60 * COIN])
    a = [cb.next_block(common[-1], [t1, t2], fees=COIN, tag=b"A")]
    a += cb.chain(a[-1], 2)
    tb = spend_tx([(c1, 0)], [48 * COIN])
    tb2 = spend_tx([(c3, 0)], [47 * COIN])
    b = [cb.next_block(common[-1], [tb], fees=2 * COIN, tag=b"B")]
    b += [cb.next_block(b[-1], [tb2], fees=3 * COIN)]
    b += cb.chain(b[-1], 2)
    return common, a, b, (t1, t2, tb, tb2)


def test_built_for_an_existing_chain_then_followed(tmp_path, built):
    common, a, _, (t1, t2, _, _) = built
    chain = open_chain(tmp_path / "node")
    feed(chain, common)
    ixs = Indexes.open(tmp_path / "node", chain, **ALL)
    try:
        ixs.start()
        wait_synced(ixs, chain)
        assert ixs.info()["basic block filter index"] == {"synced": True,
                                                          "best_block_height": 105}
        feed(chain, a)
        ixs.block_until_synced()
        assert {i.best.height for i in ixs.all} == {108}
        check_against_chain(ixs, chain)
        # As Core's: no entry for the genesis coinbase, no spender for an unspent output.
        assert ixs.txindex.lookup(REGTEST.genesis.txs[0].txid) is None
        assert ixs.txospender.find_spender(t2.txid, 0) is None
        # block_info is each block's share of the running totals.
        _, st = ixs.coinstats.lookup(chain.active[106].hash)
        _, before = ixs.coinstats.lookup(chain.active[105].hash)
        assert st.prevout_spent - before.prevout_spent == 120 * COIN
        assert st.new_outputs_ex_coinbase - before.new_outputs_ex_coinbase == 109 * COIN
        # 11 BTC of fees, of which the coinbase claimed 1.
        assert (st.unspendables_unclaimed_rewards
                - before.unspendables_unclaimed_rewards) == 10 * COIN
        _, genesis = ixs.coinstats.lookup(REGTEST.genesis.hash)
        assert genesis == CoinStats(total_subsidy=50 * COIN, total_unspendable=50 * COIN,
                                    unspendables_genesis_block=50 * COIN)
    finally:
        ixs.close()
        chain.close()


def test_progress_is_shown_while_the_index_builds(tmp_path, built):
    """getindexinfo during a background build (Core's: synced false, the height reached so
    far), held after 40 blocks so that the middle of the build can be looked at."""
    import threading

    common = built[0]
    chain = open_chain(tmp_path / "node")
    feed(chain, common)
    ixs = Indexes.open(tmp_path / "node", chain, blockfilterindex=True)
    ix = ixs.all[0]
    real, go, held = ix._index_block, threading.Event(), threading.Event()

    def index_block(step, block):
        if step.height == 41:
            held.set()
            go.wait(30)
        real(step, block)

    ix._index_block = index_block
    try:
        ixs.start()
        assert held.wait(30)
        assert ixs.info() == {"basic block filter index": {"synced": False,
                                                           "best_block_height": 40}}
        go.set()
        wait_synced(ixs, chain)
        assert ixs.info() == {"basic block filter index": {"synced": True,
                                                           "best_block_height": 105}}
    finally:
        go.set()
        ixs.close()
        chain.close()


def test_reorgs_and_invalidation(tmp_path, built):
    common, a, b, (t1, t2, tb, tb2) = built
    chain = open_chain(tmp_path / "node")
    ixs = Indexes.open(tmp_path / "node", chain, **ALL)
    try:
        ixs.start()
        feed(chain, common + a)
        ixs.block_until_synced()
        check_against_chain(ixs, chain)
        feed(chain, b)  # longer: a reorg onto B
        assert chain.tip.hash == b[-1].hash
        ixs.block_until_synced()
        check_against_chain(ixs, chain)
        c1 = common[0].txs[0].txid
        assert ixs.txospender.find_spender(c1, 0)[0].txid == tb.txid
        assert ixs.txospender.find_spender(t1.txid, 0) is None  # t1 left the chain
        chain.invalidate_block(b[0].hash)  # back onto A
        ixs.block_until_synced()
        assert chain.tip.hash == a[-1].hash
        check_against_chain(ixs, chain)
        assert ixs.txospender.find_spender(c1, 0)[0].txid == t1.txid
        # The filter of a block that left the active chain is still there.
        assert ixs.blockfilter.lookup(b[1].hash) is not None
    finally:
        ixs.close()
        chain.close()


def test_resumed_after_restart_and_wiped_on_request(tmp_path, built, caplog):
    common, a, _, _ = built
    chain = open_chain(tmp_path / "node")
    feed(chain, common)
    ixs = Indexes.open(tmp_path / "node", chain, **ALL)
    ixs.start()
    wait_synced(ixs, chain)
    ixs.close()
    feed(chain, a)  # while the indexes are off
    caplog.set_level(logging.INFO, logger="index")
    ixs = Indexes.open(tmp_path / "node", chain, **ALL)
    try:
        assert "Wiping LevelDB" not in caplog.text
        assert {i.stored_best() for i in ixs.all} == {common[-1].hash}  # where it stopped
        ixs.start()
        wait_synced(ixs, chain)
        check_against_chain(ixs, chain)
    finally:
        ixs.close()
    caplog.clear()
    ixs = Indexes.open(tmp_path / "node", chain, wipe=True, **ALL)
    try:
        db = tmp_path / "node" / "indexes" / "blockfilter" / "basic" / "db"
        assert f"Wiping LevelDB in {db}" in caplog.text
        assert f"Opening LevelDB in {db}" in caplog.text
        ixs.start()
        wait_synced(ixs, chain)  # built again from genesis
        check_against_chain(ixs, chain)
    finally:
        ixs.close()
        chain.close()


def test_damaged_database_stops_start_up(tmp_path):
    chain = open_chain(tmp_path / "node")
    try:
        Indexes.open(tmp_path / "node", chain, txindex=True, txospenderindex=True).close()
        for manifest in (tmp_path / "node" / "indexes" / "txospenderindex" / "db").glob(
                "MANIFEST*"):
            manifest.unlink()
        with pytest.raises(IndexInitError, match="^Error: Fatal LevelDB error: Corruption: "
                                                 "CURRENT points to a non-existent file"):
            Indexes.open(tmp_path / "node", chain, txindex=True, txospenderindex=True)
    finally:
        chain.close()


class _Cfg:
    def __init__(self, **args) -> None:
        self.args = args
        self.txindex = False
        self.reindex_chainstate = False

    def arg_list(self, name):
        return [v for v in self.args.get(name, []) if v != "\0negated"]

    def arg_bool(self, name, default=False):
        return default

    def arg_int(self, name, default=0):
        return default


@pytest.mark.parametrize("values,enabled", [([""], True), (["1"], True), (["basic"], True),
                                            (["0"], False), ([], False)])
def test_blockfilterindex_option(tmp_path, values, enabled):
    chain = open_chain(tmp_path / "node")
    try:
        ixs = Indexes.from_config(_Cfg(blockfilterindex=values), tmp_path / "node", chain)
        assert (ixs.blockfilter is not None) == enabled
        ixs.close()
        with pytest.raises(IndexInitError, match="Unknown -blockfilterindex value extended."):
            Indexes.from_config(_Cfg(blockfilterindex=["extended"]), tmp_path / "node", chain)
    finally:
        chain.close()


def test_prune_refuses_txindex_and_txospenderindex(tmp_path):
    class Pruned(_Cfg):
        def arg_int(self, name, default=0):
            return 550 if name == "prune" else default

        def arg_bool(self, name, default=False):
            return name in self.args or default

    chain = open_chain(tmp_path / "node")
    try:
        cfg = Pruned()
        cfg.txindex = True
        with pytest.raises(IndexInitError, match="^Error: Prune mode is incompatible with "
                                                 "-txindex.$"):
            Indexes.from_config(cfg, tmp_path / "node", chain)
        with pytest.raises(IndexInitError, match="-txospenderindex"):
            Indexes.from_config(Pruned(txospenderindex=["1"]), tmp_path / "node", chain)
        Indexes.from_config(Pruned(coinstatsindex=["1"]), tmp_path / "node", chain).close()
    finally:
        chain.close()


def test_pruning_keeps_what_an_index_still_needs(tmp_path):
    from node.prune import PRUNE_MANUAL, Pruner

    chain = open_chain(tmp_path / "node", max_file_size=0x10000)
    try:
        feed(chain, ChainBuilder().chain(REGTEST.genesis, 900))
        assert len(chain.files.list_files()) >= 3
        pruner = Pruner(chain, PRUNE_MANUAL)
        pruner.locks.append(lambda: 100)  # an index at height 100: blocks above stay
        assert pruner.prune_to(900) == -1
        assert all(e.have_data for e in chain.active)
        pruner.locks.clear()
        pruned = pruner.prune_to(900)
        assert pruned > 100
        # An index that would need the pruned blocks refuses to start, as Core's.
        ixs = Indexes.open(tmp_path / "node", chain, coinstatsindex=True)
        try:
            with pytest.raises(IndexInitError) as err:
                ixs.start()
            assert str(err.value) == (
                "Error: coinstatsindex best block of the index goes beyond pruned data. Please "
                "disable the index or reindex (which will download the whole blockchain again)"
                f"{os.linesep}Error: A fatal internal error occurred, see debug.log for details: "
                "Failed to start indexes, shutting down..")
        finally:
            ixs.close()
    finally:
        chain.close()


def test_reorgs_while_the_threads_run(tmp_path, built, builder):
    """Reorgs back and forth while the index threads follow: they end up right."""
    common, a, b, _ = built
    cb = builder
    a_long = a + cb.chain(a[-1], 20)
    b_long = b + cb.chain(b[-1], 20, tag=b"B2")
    chain = open_chain(tmp_path / "node")
    ixs = Indexes.open(tmp_path / "node", chain, **ALL)
    try:
        ixs.start()
        feed(chain, common + a_long + b_long)
        for _ in range(4):
            chain.invalidate_block(chain.active[106].hash)  # off whichever branch is active
            chain.reconsider_block(a_long[0].hash)
            chain.reconsider_block(b_long[0].hash)
        ixs.block_until_synced()
        wait_synced(ixs, chain)
        check_against_chain(ixs, chain)
    finally:
        ixs.close()
        chain.close()


def test_blocks_a_reorg_left_are_indexed_in_order(tmp_path, built):
    """Once caught up, an index takes connected blocks in order, as Core's BlockConnected:
    the filters of blocks a reorg replaced before the thread got to them are there too."""
    import threading

    common, a, b, _ = built
    chain = open_chain(tmp_path / "node")
    ixs = Indexes.open(tmp_path / "node", chain, blockfilterindex=True, coinstatsindex=True)
    try:
        feed(chain, common)
        ixs.start()
        wait_synced(ixs, chain)
        gate = threading.Event()
        for ix in ixs.all:
            original = ix._index_block

            def held(e, block=None, original=original):
                gate.wait(10)
                original(e, block)

            ix._index_block = held
        feed(chain, a)
        feed(chain, b)  # a reorg onto B while the threads are held
        assert chain.tip.hash == b[-1].hash
        gate.set()
        wait_synced(ixs, chain)
        for blk in a + b:
            assert ixs.blockfilter.lookup(blk.hash) is not None
            assert ixs.coinstats.lookup(blk.hash) is not None
        check_digest = chain.utxo_stats_full(muhash=True)[0].muhash
        assert ixs.coinstats.lookup(chain.tip.hash)[0] == check_digest
    finally:
        ixs.close()
        chain.close()


def test_prune_lock_moves_back_on_disconnect(tmp_path, built, caplog):
    common, a, _, _ = built
    chain = open_chain(tmp_path / "node")
    ixs = Indexes.open(tmp_path / "node", chain, blockfilterindex=True)
    try:
        feed(chain, common + a)
        ixs.start()
        wait_synced(ixs, chain)
        assert ixs.prune_lock() == 108
        caplog.set_level(logging.DEBUG, logger="prune")
        chain.invalidate_block(a[1].hash)  # disconnects 108 and 107
        assert "basic block filter index prune lock moved back to 106" in caplog.text
        # As Core's, the index stays on 108 (rewound at the next block connected), which
        # counts as synced with the tip 106, its ancestor.
        assert ixs.blockfilter.block_until_synced()
        assert ixs.prune_lock() == 106
    finally:
        ixs.close()
        chain.close()


@pytest.mark.parametrize("argv,error", [
    (["-reindex-chainstate", "-coinstatsindex"], "Error: -reindex-chainstate option is not "
     "compatible with -coinstatsindex. Please temporarily disable coinstatsindex while using "
     "-reindex-chainstate, or replace -reindex-chainstate with -reindex to fully rebuild all "
     "indexes."),
    (["-reindex-chainstate", "-blockfilterindex"], "-blockfilterindex. Please temporarily "
     "disable blockfilterindex"),
    (["-reindex-chainstate", "-txindex"], "-txindex. Please temporarily disable txindex"),
    (["-blockfilterindex=abc"], "Error: Unknown -blockfilterindex value abc."),
    (["-prune=550", "-txindex"], "Error: Prune mode is incompatible with -txindex."),
])
def test_option_errors_as_cores(tmp_path, argv, error):
    from node.config import load_config

    cfg = load_config(["-regtest", f"-datadir={tmp_path}", *argv])
    with pytest.raises(IndexInitError) as e:
        Indexes.options(cfg)
    assert error in str(e.value)
    assert Indexes.options(load_config(["-regtest", f"-datadir={tmp_path}", "-txindex"])) == {
        "txindex": True, "blockfilterindex": False, "coinstatsindex": False,
        "txospenderindex": False}
