"""One test per context-free rule: each asserts Core's reject reason for a block or
transaction that breaks exactly that rule, and that the unbroken version passes."""

import pytest

from consensus.amounts import MAX_MONEY
from consensus.block import Block, witness_commitment_index
from consensus.checks import (
    MAX_BLOCK_SIGOPS_COST,
    check_block,
    check_transaction,
    check_witness_malleation,
    legacy_sigop_count,
)
from consensus.errors import ValidationError
from consensus.hashes import sha256d
from consensus.params import MAIN, REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.blocktools import make_block, make_coinbase, solve, spend

PREV = REGTEST.genesis.hash


def reason(fn, *args, **kw) -> str:
    with pytest.raises(ValidationError) as e:
        fn(*args, **kw)
    return e.value.reason


def good_tx() -> Transaction:
    return spend(sha256d(b"x"), 0, 1000)


# -- check_transaction -----------------------------------------------------------------------


def test_good_transaction_passes():
    check_transaction(good_tx())
    check_transaction(make_coinbase(5))


def test_vin_empty():
    tx = good_tx()
    tx.vin = []
    assert reason(check_transaction, tx) == "bad-txns-vin-empty"


def test_vout_empty():
    tx = good_tx()
    tx.vout = []
    assert reason(check_transaction, tx) == "bad-txns-vout-empty"


def test_oversize():
    tx = good_tx()
    tx.vout[0].script_pubkey = b"\x6a" + b"\x00" * 1_000_000
    assert reason(check_transaction, tx) == "bad-txns-oversize"
    tx = good_tx()
    tx.vout[0].script_pubkey = b"\x6a" + b"\x00" * 990_000  # just under 1 MB stripped
    check_transaction(tx)


def test_vout_negative():
    tx = good_tx()
    tx.vout[0].value = -1
    assert reason(check_transaction, tx) == "bad-txns-vout-negative"


def test_vout_toolarge():
    tx = good_tx()
    tx.vout[0].value = MAX_MONEY + 1
    assert reason(check_transaction, tx) == "bad-txns-vout-toolarge"
    tx.vout[0].value = MAX_MONEY
    check_transaction(tx)


def test_txouttotal_toolarge():
    tx = good_tx()
    tx.vout = [TxOut(MAX_MONEY, b"\x51"), TxOut(1, b"\x51")]
    assert reason(check_transaction, tx) == "bad-txns-txouttotal-toolarge"


def test_inputs_duplicate():
    tx = good_tx()
    tx.vin.append(TxIn(OutPoint(tx.vin[0].prevout.hash, 0)))
    assert reason(check_transaction, tx) == "bad-txns-inputs-duplicate"
    tx.vin[1].prevout = OutPoint(tx.vin[0].prevout.hash, 1)  # other index: fine
    check_transaction(tx)


@pytest.mark.parametrize("length,ok", [(1, False), (2, True), (100, True), (101, False)])
def test_coinbase_script_length(length, ok):
    cb = make_coinbase(1)
    cb.vin[0].script_sig = b"\x01" * length
    if ok:
        check_transaction(cb)
    else:
        assert reason(check_transaction, cb) == "bad-cb-length"


def test_prevout_null_in_non_coinbase():
    tx = good_tx()
    tx.vin.append(TxIn(OutPoint()))  # two inputs, so not a coinbase
    assert reason(check_transaction, tx) == "bad-txns-prevout-null"


# -- check_block -----------------------------------------------------------------------------


def test_good_block_passes_and_genesis_too():
    check_block(make_block(PREV, 1, [good_tx()]), REGTEST)
    check_block(REGTEST.genesis, REGTEST)
    check_block(MAIN.genesis, MAIN)


def test_high_hash():
    block = make_block(PREV, 1, [good_tx()])
    # Find a nonce whose hash misses the target.
    from consensus.pow import check_proof_of_work

    while check_proof_of_work(block.hash, block.header.bits, REGTEST):
        block.header.nonce += 1
        block.header.rehash()
    assert reason(check_block, block, REGTEST) == "high-hash"
    check_block(block, REGTEST, check_pow=False)


def test_bad_merkle_root():
    block = make_block(PREV, 1, [good_tx()])
    block.header.merkle_root = b"\x00" * 32
    solve(block)
    with pytest.raises(ValidationError) as e:
        check_block(block, REGTEST)
    assert e.value.reason == "bad-txnmrklroot" and e.value.mutated


def test_merkle_mutation():
    a, b = good_tx(), spend(sha256d(b"y"), 0, 5)
    honest = make_block(PREV, 1, [a, b])  # three transactions with the coinbase
    check_block(honest, REGTEST)
    # Duplicating the last transaction keeps the root: the CVE-2012-2459 mutation.
    mutated = Block(honest.header, honest.txs + [b])
    assert mutated.compute_merkle_root()[0] == honest.header.merkle_root
    with pytest.raises(ValidationError) as e:
        check_block(mutated, REGTEST)
    assert e.value.reason == "bad-txns-duplicate" and e.value.mutated


def test_block_length_empty_and_too_big():
    block = make_block(PREV, 1)
    block.txs = []
    assert reason(check_block, block, REGTEST, check_pow=False, check_merkle=False) == (
        "bad-blk-length"
    )
    big = [spend(sha256d(bytes([i])), 0, 1, b"\x6a" + b"\x00" * 499_000) for i in range(3)]
    block = make_block(PREV, 1, big, mine=False)
    assert reason(check_block, block, REGTEST, check_pow=False) == "bad-blk-length"


def test_first_tx_not_coinbase():
    block = make_block(PREV, 1, [], coinbase=good_tx())
    assert reason(check_block, block, REGTEST) == "bad-cb-missing"


def test_multiple_coinbases():
    block = make_block(PREV, 1, [make_coinbase(1, extra=b"again")])
    assert reason(check_block, block, REGTEST) == "bad-cb-multiple"


def test_transaction_failure_propagates_reason():
    tx = good_tx()
    tx.vout[0].value = -5
    block = make_block(PREV, 1, [tx])
    with pytest.raises(ValidationError) as e:
        check_block(block, REGTEST)
    assert e.value.reason == "bad-txns-vout-negative" and tx.txid_hex() in e.value.debug


def test_legacy_sigops_limit():
    limit = MAX_BLOCK_SIGOPS_COST // 4  # 20,000 legacy sigops
    checksigs = b"\xac" * 5000
    txs = [spend(sha256d(bytes([i])), 0, 1, checksigs) for i in range(4)]
    assert sum(legacy_sigop_count(t) for t in txs) == limit
    check_block(make_block(PREV, 1, txs), REGTEST)
    txs.append(spend(sha256d(b"one more"), 0, 1, b"\xac"))
    assert reason(check_block, make_block(PREV, 1, txs), REGTEST) == "bad-blk-sigops"


def test_legacy_sigop_counting():
    # CHECKMULTISIG counts 20 inaccurately; a truncated push ends the count.
    tx = spend(sha256d(b"s"), 0, 1, b"\x52\xae\xad\x4c")
    tx.vin[0].script_sig = b"\xac\x02\xac"  # the pushed 0xac is data, not an opcode
    assert legacy_sigop_count(tx) == 1 + 20 + 1


def test_sigop_counts_match_a_full_walk():
    """The shortcuts (no CHECKSIG-family byte: no walk; the P2WPKH and P2TR programs) count
    what walking every operation counts, for random scripts with pushes and truncations."""
    import random

    from consensus.contextual import _witness_sigops, witness_sigop_count
    from consensus.script.script import ScriptParseError, get_op, sigop_count, witness_program

    def walked(script: bytes, accurate: bool) -> int:
        n, last, pc = 0, 0xFF, 0
        while pc < len(script):
            try:
                op, _, pc = get_op(script, pc)
            except ScriptParseError:
                break
            if op in (0xAC, 0xAD):
                n += 1
            elif op in (0xAE, 0xAF):
                n += last - 0x50 if accurate and 0x51 <= last <= 0x60 else 20
            last = op
        return n

    rng = random.Random(5)
    alphabet = [0x00, 0x01, 0x02, 0x14, 0x20, 0x4C, 0x4D, 0x51, 0x52, 0x60, 0xAC, 0xAD, 0xAE,
                0xAF, 0x87, 0xA9, 0x76]
    for _ in range(3000):
        script = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for accurate in (False, True):
            assert sigop_count(script, accurate) == walked(script, accurate), script.hex()
        tx = spend(sha256d(script), 0, 1, script)
        tx.vin[0].script_sig = script[::-1]
        assert legacy_sigop_count(tx) == walked(script, False) + walked(script[::-1], False)
    for spk in (b"\x00\x14" + bytes(20), b"\x51\x20" + bytes(32), b"\x00\x20" + bytes(32),
                b"\x51\x14" + bytes(20), b"\x00\x15" + bytes(20)):
        wp = witness_program(spk)
        expect = _witness_sigops(wp[0], wp[1], [b"\xac\xac"]) if wp else 0
        assert witness_sigop_count(b"", spk, [b"\xac\xac"]) == expect


def segwit_block():
    tx = spend(sha256d(b"w"), 0, 1, witness=[b"\x01" * 72])
    return make_block(PREV, 1, [tx], witness=True), tx


def test_witness_commitment_valid():
    block, _ = segwit_block()
    check_witness_malleation(block, True)


def test_witness_nonce_size():
    block, _ = segwit_block()
    block.txs[0].vin[0].witness = [b"\x00" * 31]
    assert reason(check_witness_malleation, block, True) == "bad-witness-nonce-size"
    block.txs[0].vin[0].witness = [b"\x00" * 32, b""]
    assert reason(check_witness_malleation, block, True) == "bad-witness-nonce-size"


def test_witness_merkle_mismatch():
    block, tx = segwit_block()
    tx.vin[0].witness = [b"\x02" * 72]  # changes the wtxid, not the txid
    tx.rehash()
    assert reason(check_witness_malleation, block, True) == "bad-witness-merkle-match"


def test_unexpected_witness():
    block, _ = segwit_block()
    pos = witness_commitment_index(block)
    del block.txs[0].vout[pos]
    block.txs[0].vin[0].witness = []
    assert reason(check_witness_malleation, block, True) == "unexpected-witness"
    # Before segwit, even a block with a commitment may not carry witnesses.
    block, _ = segwit_block()
    assert reason(check_witness_malleation, block, False) == "unexpected-witness"
    check_witness_malleation(make_block(PREV, 1, [good_tx()]), False)


def test_sigop_count_of_witness_programs_whose_data_looks_like_checksig():
    """OP_0..OP_16 and one push to the end count no sigops whatever the pushed bytes (the
    shortcut for witness programs); any other shape is walked as before."""
    from consensus.script.script import sigop_count

    for lead, size in ((0x00, 20), (0x00, 32), (0x51, 32), (0x60, 40)):
        assert sigop_count(bytes([lead, size]) + b"\xac" * size) == 0
    # a push opcode first: its data holds the "length byte"; what follows is walked
    assert sigop_count(bytes([0x01, 0x01, 0xac])) == 1
    assert sigop_count(bytes([0x02, 0x01, 0xac, 0xac])) == 1
    # one byte short or long of a single push: not the shortcut's shape
    assert sigop_count(bytes([0x00, 0x02, 0xac])) == 0  # (a push running past the end)
    assert sigop_count(bytes([0x00, 0x01, 0x00, 0xac])) == 1
    assert sigop_count(bytes([0x51, 0x01, 0x00, 0xae]), accurate=True) == 20
