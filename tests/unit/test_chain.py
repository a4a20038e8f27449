"""Chain state on a real LevelDB in a temporary directory: connecting, forks and reorgs,
one test per contextual rule, invalidate/reconsider, chain tips, restart."""

from __future__ import annotations

import dataclasses
import time

import pytest

from consensus.amounts import COIN
from consensus.block import Block
from consensus.errors import ValidationError
from consensus.params import REGTEST
from consensus.script.verify import SCRIPT_EXECUTION_CACHE
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.chain import ChainState
from node.scriptcheck import ScriptChecker
from node.store.blockindex import FAILED_VALID
from tests.blocktools import make_coinbase, solve
from tests.chainbuilder import OP_TRUE, P2WSH_TRUE, ChainBuilder, spend_tx


def open_chain(path, params=REGTEST, **kw) -> ChainState:
    c = ChainState(path, params, dbcache_mb=kw.pop("dbcache_mb", 8), scripts=ScriptChecker(0),
                   **kw)
    c.load()
    return c


@pytest.fixture
def chain(tmp_path):
    c = open_chain(tmp_path / "node")
    yield c
    c.close()


@pytest.fixture
def cb():
    return ChainBuilder()


def feed(chain: ChainState, blocks: list[Block]) -> None:
    for b in blocks:
        chain.process_block(b)


def reject(chain: ChainState, block: Block) -> ValidationError:
    """Submit a block that must be refused (when checked or when connected); returns the
    error and checks that the tip did not move."""
    tip = chain.tip
    with pytest.raises(ValidationError) as e:
        chain.process_block(block)
    assert chain.tip is tip
    return e.value


def connect_error(chain: ChainState, block: Block) -> str:
    """Submit a block that is stored but fails when connected: it is marked invalid."""
    reason = reject(chain, block).reason
    assert chain.get(block.hash).status & FAILED_VALID
    return reason


def mature(chain, cb, n=101) -> list[Block]:
    blocks = cb.chain(REGTEST.genesis, n)
    feed(chain, blocks)
    return blocks


# -- connecting ------------------------------------------------------------------------------


def test_genesis_only(chain):
    assert chain.height == 0 and chain.tip.hash == REGTEST.genesis_hash


def test_connect_and_spend_mature_coinbase(chain, cb):
    blocks = mature(chain, cb)
    assert chain.height == 101
    cb1 = blocks[0].txs[0]
    tx = spend_tx([(cb1.txid, 0)], [30 * COIN, 19 * COIN])
    b = cb.next_block(blocks[-1], [tx], fees=1 * COIN)
    chain.process_block(b)
    assert chain.tip.hash == b.hash
    assert chain.get_coin(cb1.txid, 0) is None
    coin = chain.get_coin(tx.txid, 1)
    assert coin.value == 19 * COIN and coin.height == 102 and not coin.coinbase
    assert chain.get_coin(b.txs[0].txid, 0).coinbase


def test_connecting_consults_the_script_cache_and_test_block_validity_stores(chain, cb):
    """Core's ConnectBlock only looks transactions up in the script execution cache;
    TestBlockValidity (fJustCheck) stores those that pass."""
    blocks = mature(chain, cb)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN])
    b = cb.next_block(blocks[-1], [tx], fees=1 * COIN)
    SCRIPT_EXECUTION_CACHE.clear()
    chain.process_block(b)
    assert chain.tip.hash == b.hash and len(SCRIPT_EXECUTION_CACHE) == 0
    tx2 = spend_tx([(blocks[1].txs[0].txid, 0)], [49 * COIN])
    b2 = cb.next_block(b, [tx2], fees=1 * COIN)
    chain.test_block_validity(b2)
    assert len(SCRIPT_EXECUTION_CACHE) == 1 and chain.tip.hash == b.hash
    chain.process_block(b2)  # (found there)
    assert SCRIPT_EXECUTION_CACHE.hits == 1 and chain.tip.hash == b2.hash
    SCRIPT_EXECUTION_CACHE.clear()


def test_spend_within_block_and_double_spend(chain, cb):
    blocks = mature(chain, cb)
    t1 = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN])
    t2 = spend_tx([(t1.txid, 0)], [48 * COIN])  # spends an output of the same block
    chain.process_block(cb.next_block(blocks[-1], [t1, t2], fees=2 * COIN))
    assert chain.get_coin(t1.txid, 0) is None and chain.get_coin(t2.txid, 0) is not None
    # Spending t1:0 again (already spent) fails.
    t3 = spend_tx([(t1.txid, 0)], [1 * COIN])
    assert connect_error(chain, cb.next_block(chain.tip.hash, [t3])) == (
        "bad-txns-inputs-missingorspent"
    )


def test_double_spend_inside_one_block(chain, cb):
    blocks = mature(chain, cb)
    a = spend_tx([(blocks[0].txs[0].txid, 0)], [10 * COIN])
    b = spend_tx([(blocks[0].txs[0].txid, 0)], [20 * COIN])
    assert connect_error(chain, cb.next_block(blocks[-1], [a, b])) == (
        "bad-txns-inputs-missingorspent"
    )


def test_missing_input(chain, cb):
    blocks = mature(chain, cb, 2)
    tx = spend_tx([(b"\x42" * 32, 0)], [1])
    assert connect_error(chain, cb.next_block(blocks[-1], [tx])) == (
        "bad-txns-inputs-missingorspent"
    )


@pytest.mark.parametrize("depth,ok", [(99, False), (100, True)])
def test_coinbase_maturity(chain, cb, depth, ok):
    blocks = cb.chain(REGTEST.genesis, depth)
    feed(chain, blocks)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [1 * COIN])
    b = cb.next_block(blocks[-1], [tx], fees=49 * COIN)
    if ok:
        chain.process_block(b)
        assert chain.tip.hash == b.hash
    else:
        assert connect_error(chain, b) == "bad-txns-premature-spend-of-coinbase"


def test_outputs_above_inputs(chain, cb):
    blocks = mature(chain, cb)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [50 * COIN + 1])
    assert connect_error(chain, cb.next_block(blocks[-1], [tx])) == "bad-txns-in-belowout"


def test_coinbase_amount(chain, cb):
    blocks = mature(chain, cb)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN])
    chain.process_block(cb.next_block(blocks[-1], [tx], fees=1 * COIN))  # exactly allowed
    over = cb.next_block(chain.tip.hash, extra_value=1)
    assert connect_error(chain, over) == "bad-cb-amount"


def test_subsidy_halves_on_regtest(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 150)
    feed(chain, blocks)
    assert blocks[-1].txs[0].vout[0].value == 25 * COIN  # height 150: first halving
    assert connect_error(chain, cb.next_block(blocks[-1], extra_value=25 * COIN)) == (
        "bad-cb-amount"
    )


def test_script_failure(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 101, spk=b"\x00")  # OP_0: always false
    feed(chain, blocks)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN])
    reason = connect_error(chain, cb.next_block(blocks[-1], [tx], fees=COIN))
    assert reason.startswith("block-script-verify-flag-failed (")


def test_segwit_spend_and_commitment(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    feed(chain, blocks)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], witness=[OP_TRUE])
    b = cb.next_block(blocks[-1], [tx], fees=COIN)
    chain.process_block(b)
    assert chain.tip.hash == b.hash


def test_missing_witness_commitment_is_mutation_not_invalid(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    feed(chain, blocks)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], witness=[OP_TRUE])
    b = cb.next_block(blocks[-1], [tx], fees=COIN, witness=False)
    err = reject(chain, b)
    assert err.reason == "unexpected-witness" and err.mutated
    assert not chain.get(b.hash).failed  # the hash is not blamed: the witness was not committed


def test_bad_witness_commitment(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    feed(chain, blocks)
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], witness=[OP_TRUE])
    b = cb.next_block(blocks[-1], [tx], fees=COIN)
    tx.vin[0].witness = [OP_TRUE, b"\x01"]  # changes the wtxid only
    tx.rehash()
    b.rehash()
    assert reject(chain, b).reason == "bad-witness-merkle-match"


def test_block_weight(chain, cb):
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    feed(chain, blocks)
    big = b"\x00" * 4_000_000
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], witness=[big, OP_TRUE])
    b = cb.next_block(blocks[-1], [tx], fees=COIN)
    assert b.base_size < 1_000_000 and b.weight > 4_000_000
    assert reject(chain, b).reason == "bad-blk-weight"


def test_sigop_cost_limit(chain, cb):
    # Witness scripts count their sigops accurately: 10,001 CHECKSIGs per input, 8 inputs.
    script = b"\xac" * 10_001
    import hashlib

    p2wsh = b"\x00\x20" + hashlib.sha256(script).digest()
    blocks = mature(chain, cb)
    fund = spend_tx([(blocks[0].txs[0].txid, 0)], [COIN] * 8, spk=p2wsh)
    chain.process_block(cb.next_block(blocks[-1], [fund], fees=42 * COIN))
    spend = Transaction(2, [TxIn(OutPoint(fund.txid, i), b"", 0xFFFFFFFF, [script])
                            for i in range(8)], [TxOut(7 * COIN, OP_TRUE)])
    reason = connect_error(chain, cb.next_block(chain.tip.hash, [spend], fees=COIN))
    assert reason == "bad-blk-sigops"


def test_bip34_height_in_coinbase(chain, cb):
    wrong = make_coinbase(7)  # block will be at height 1
    assert reject(chain, cb.next_block(REGTEST.genesis, coinbase=wrong)).reason == "bad-cb-height"


def test_locktime_finality(chain, cb):
    blocks = mature(chain, cb)
    height = chain.height + 1
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], sequence=0, locktime=height)
    b = cb.next_block(blocks[-1], [tx], fees=COIN)
    assert reject(chain, b).reason == "bad-txns-nonfinal"
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], sequence=0, locktime=height - 1)
    chain.process_block(cb.next_block(blocks[-1], [tx], fees=COIN))
    assert chain.height == height


def test_locktime_uses_median_time_past(chain, cb):
    blocks = mature(chain, cb)
    mtp = chain.tip.median_time_past()
    for lt, ok in ((mtp, False), (mtp - 1, True)):
        tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], sequence=0, locktime=lt)
        # The block's own time is far ahead of the lock time: only BIP113 rejects it.
        b = cb.next_block(blocks[-1], [tx], fees=COIN)
        assert b.header.time > lt
        if ok:
            chain.process_block(b)
        else:
            assert reject(chain, b).reason == "bad-txns-nonfinal"


def test_bip68_height_lock(chain, cb):
    blocks = mature(chain, cb)
    coin_height = 1
    lock = chain.height + 2 - coin_height  # satisfied only one block later
    tx = spend_tx([(blocks[0].txs[0].txid, 0)], [49 * COIN], sequence=lock)
    early = cb.next_block(blocks[-1], [tx], fees=COIN)
    assert connect_error(chain, early) == "bad-txns-nonfinal"
    filler = cb.next_block(blocks[-1], tag=b"f")
    chain.process_block(filler)
    chain.process_block(cb.next_block(filler, [tx], fees=COIN))
    assert chain.height == 103 and chain.get_coin(tx.txid, 0) is not None


def test_bip68_time_lock(chain, cb):
    blocks = mature(chain, cb, 102)
    # The coinbase of block 2: its lock counts from the median time past of block 1.
    start = chain.active[1].median_time_past()
    units = ((chain.tip.median_time_past() - start) >> 9) + 1  # one 512 s unit too many
    coin = blocks[1].txs[0].txid
    tx = spend_tx([(coin, 0)], [49 * COIN], sequence=(1 << 22) | units)
    assert connect_error(chain, cb.next_block(blocks[-1], [tx], fees=COIN)) == "bad-txns-nonfinal"
    tx = spend_tx([(coin, 0)], [49 * COIN], sequence=(1 << 22) | (units - 1))
    chain.process_block(cb.next_block(blocks[-1], [tx], fees=COIN))
    assert chain.tip.height == 103
    # Version 1 transactions are not subject to BIP68.
    v1 = spend_tx([(blocks[2].txs[0].txid, 0)], [49 * COIN], sequence=(1 << 22) | 0xFFFF,
                  version=1)
    chain.process_block(cb.next_block(chain.tip.hash, [v1], fees=COIN))
    assert chain.tip.height == 104


def test_header_time_too_old(chain, cb):
    blocks = mature(chain, cb, 12)
    mtp = chain.tip.median_time_past()
    assert reject(chain, cb.next_block(blocks[-1], block_time=mtp)).reason == "time-too-old"
    chain.process_block(cb.next_block(blocks[-1], block_time=mtp + 1))


def test_header_time_too_new(chain, cb):
    blocks = mature(chain, cb, 2)
    now = int(time.time())
    b = cb.next_block(blocks[-1], block_time=now + 2 * 3600 + 60)
    err = reject(chain, b)
    assert err.reason == "time-too-new"
    assert chain.get(b.hash) is None  # not stored: may be valid later


def test_bad_diffbits(chain, cb):
    b = cb.next_block(REGTEST.genesis, bits=0x207FFFFE)
    assert reject(chain, b).reason == "bad-diffbits"


@pytest.mark.parametrize("version,ok", [(1, False), (3, False), (4, True)])
def test_obsolete_versions(chain, cb, version, ok):
    b = cb.next_block(REGTEST.genesis, version=version)
    if ok:
        chain.process_block(b)
        assert chain.height == 1
    else:
        assert reject(chain, b).reason.startswith("bad-version(0x0000000")


def test_bip30_when_bip34_is_not_active(tmp_path):
    params = dataclasses.replace(REGTEST, bip34_height=10**6)
    chain = open_chain(tmp_path / "n", params)
    cb = ChainBuilder(params)
    try:
        same = make_coinbase(1)  # identical coinbase, hence identical txid, at two heights
        b1 = cb.next_block(params.genesis, coinbase=same)
        chain.process_block(b1)
        b2 = cb.next_block(b1, coinbase=make_coinbase(1))
        assert b2.txs[0].txid == b1.txs[0].txid
        assert connect_error(chain, b2) == "bad-txns-BIP30"
        # Checked after the transactions are (for speed), but reported first, as Core
        # checks it first: the same block with an input missing too.
        missing = spend_tx([(b"\x42" * 32, 0)], [1])
        b3 = cb.next_block(b1, [missing], coinbase=make_coinbase(1))
        assert connect_error(chain, b3) == "bad-txns-BIP30"
        b4 = cb.next_block(b1, [missing], coinbase=make_coinbase(2))
        assert connect_error(chain, b4) == "bad-txns-inputs-missingorspent"
    finally:
        chain.close()


def test_invalid_header_not_stored(chain, cb):
    b = cb.next_block(REGTEST.genesis)
    b.header.nonce += 1
    b.header.rehash()
    while b.hash[-1] < 0x80:  # make sure it misses the target
        b.header.nonce += 1
        b.header.rehash()
    assert reject(chain, b).reason == "high-hash"
    orphan = cb.next_block(REGTEST.genesis)
    orphan.header.prev_hash = b"\x11" * 32
    orphan.header.merkle_root = orphan.compute_merkle_root()[0]
    solve(orphan)
    assert reject(chain, orphan).reason == "prev-blk-not-found"


def test_signed_p2wpkh_and_p2tr_spends(chain, cb):
    from tests.chainbuilder import Wallet

    w = Wallet()
    blocks = cb.chain(REGTEST.genesis, 1, spk=w.p2wpkh) + cb.chain(REGTEST.genesis, 0)
    blocks += cb.chain(blocks[-1], 1, spk=w.p2tr)
    blocks += cb.chain(blocks[-1], 100)
    feed(chain, blocks)
    spent = [blocks[0].txs[0].vout[0], blocks[1].txs[0].vout[0]]
    tx = Transaction(2, [TxIn(OutPoint(blocks[0].txs[0].txid, 0)),
                         TxIn(OutPoint(blocks[1].txs[0].txid, 0))],
                     [TxOut(60 * COIN, w.p2tr), TxOut(39 * COIN, w.p2wpkh)])
    w.sign(tx, spent)
    # A signature for other amounts is refused, by the script check.
    bad = tx.copy()
    bad.vout[0].value -= 1
    bad.rehash()
    reason = connect_error(chain, cb.next_block(blocks[-1], [bad], fees=COIN + 1))
    assert reason.startswith("block-script-verify-flag-failed")
    chain.process_block(cb.next_block(blocks[-1], [tx], fees=COIN, tag=b"ok"))
    assert chain.height == 103 and chain.get_coin(tx.txid, 0).value == 60 * COIN
    # And the new outputs are spendable in turn.
    tx2 = w.sign(Transaction(2, [TxIn(OutPoint(tx.txid, 0)), TxIn(OutPoint(tx.txid, 1))],
                             [TxOut(98 * COIN, w.p2wpkh)]), tx.vout)
    chain.process_block(cb.next_block(chain.tip.hash, [tx2], fees=COIN))
    assert chain.height == 104


def test_read_block_part_reads_a_transaction_where_an_index_recorded_it(chain, cb):
    """read_block_part (what Esplora's address index reads a transaction with): the stored
    bytes at an offset inside the block, the block file's XOR key undone; past the end of
    the file it says so."""
    from consensus.serialize import Reader
    from node.store.blockfiles import BlockFileError

    blocks = mature(chain, cb, 3)
    e = chain.get(blocks[-1].hash)
    raw = blocks[-1].serialize()
    tx = blocks[-1].txs[0].serialize()
    offset = raw.index(tx)
    got = chain.read_block_part(e, offset, len(tx))
    assert got == tx
    assert Transaction.deserialize(Reader(got)).txid == blocks[-1].txs[0].txid
    with pytest.raises(BlockFileError, match="truncated"):
        chain.read_block_part(e, len(raw), 10_000_000)
