"""Bitcoin Core's sighash.json (legacy signature hashes, random transactions and hash types),
plus checks that the sighash functions agree with an independent, straightforward rendering
of the algorithms and that precomputed and fresh computations agree."""

from __future__ import annotations

import hashlib
import random

import pytest

from consensus.checks import check_transaction
from consensus.hashes import hash_to_hex, sha256d
from consensus.script.sighash import (
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_NONE,
    SIGHASH_SINGLE,
    PrecomputedTxData,
    legacy_sighash,
    segwit_v0_sighash,
    serialize_script_code,
    taproot_sighash,
)
from consensus.serialize import compact_size
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.conftest import load_json

ROWS = [(i, r) for i, r in enumerate(load_json("sighash.json")) if len(r) > 1]
RAN = {"cases": 0}


@pytest.mark.parametrize("idx,row", ROWS, ids=[f"sighash{i}" for i, _ in ROWS])
def test_sighash_json(idx: int, row: list) -> None:
    raw_tx, script_hex, index, hash_type, expected = row
    tx = Transaction.from_hex(raw_tx)
    check_transaction(tx)
    script = bytes.fromhex(script_hex)
    got = legacy_sighash(tx, index, script, hash_type)
    assert hash_to_hex(got) == expected
    # The precomputed path gives the same answer.
    assert legacy_sighash(tx, index, script, hash_type, PrecomputedTxData(tx)) == got
    RAN["cases"] += 1


def test_sighash_json_count(capsys: pytest.CaptureFixture) -> None:
    _report(capsys, f"sighash.json: {RAN['cases']} of {len(ROWS)} cases ran and passed")
    assert len(ROWS) == 500


# -- independent renderings ------------------------------------------------------------------


def _naive_legacy(tx: Transaction, index: int, script: bytes, hash_type: int) -> bytes:
    """The original algorithm, written the old way: copy the transaction and edit it."""
    if hash_type & 0x1F == SIGHASH_SINGLE and index >= len(tx.vout):
        return b"\x01" + b"\x00" * 31
    t = tx.copy()
    code = script.replace(b"\xab", b"")  # no pushes in these scripts: bytes are opcodes
    for j, txin in enumerate(t.vin):
        txin.script_sig = code if j == index else b""
    base = hash_type & 0x1F
    if base == SIGHASH_NONE:
        t.vout = []
    elif base == SIGHASH_SINGLE:
        t.vout = [TxOut(-1, b"") for _ in range(index)] + [t.vout[index]]
    if base in (SIGHASH_NONE, SIGHASH_SINGLE):
        for j, txin in enumerate(t.vin):
            if j != index:
                txin.sequence = 0
    if hash_type & SIGHASH_ANYONECANPAY:
        t.vin = [t.vin[index]]
    return sha256d(t.serialize(witness=False) + (hash_type & 0xFFFFFFFF).to_bytes(4, "little"))


def _random_tx(rng: random.Random, n_in: int, n_out: int) -> Transaction:
    return Transaction(
        rng.randrange(1, 3),
        [
            TxIn(OutPoint(rng.randbytes(32), rng.randrange(5)), rng.randbytes(rng.randrange(5)),
                 rng.choice([0xFFFFFFFF, 0xFFFFFFFE, rng.getrandbits(32)]))
            for _ in range(n_in)
        ],
        [TxOut(rng.randrange(10**9), rng.randbytes(rng.randrange(1, 40))) for _ in range(n_out)],
        rng.getrandbits(32),
    )


def test_legacy_matches_naive_rendering() -> None:
    rng = random.Random(1)
    checked = 0
    for _ in range(200):
        tx = _random_tx(rng, rng.randrange(1, 4), rng.randrange(1, 4))
        script = bytes(rng.choice([0x51, 0x52, 0xAC, 0xAB, 0x63, 0x00]) for _ in range(6))
        for ht in (1, 2, 3, 0x81, 0x82, 0x83, rng.getrandbits(32) - 2**31):
            index = rng.randrange(len(tx.vin))
            assert legacy_sighash(tx, index, script, ht) == _naive_legacy(tx, index, script, ht)
            checked += 1
    assert checked == 1400


def _naive_bip143(tx: Transaction, index: int, code: bytes, amount: int, ht: int) -> bytes:
    def h(b: bytes) -> bytes:
        return sha256d(b)

    base = ht & 0x1F
    acp = ht & SIGHASH_ANYONECANPAY
    zero = bytes(32)
    prevouts = b"".join(i.prevout.serialize() for i in tx.vin)
    seqs = b"".join(i.sequence.to_bytes(4, "little") for i in tx.vin)
    outs = b"".join(o.serialize() for o in tx.vout)
    hp = zero if acp else h(prevouts)
    hs = zero if acp or base in (SIGHASH_SINGLE, SIGHASH_NONE) else h(seqs)
    if base not in (SIGHASH_SINGLE, SIGHASH_NONE):
        ho = h(outs)
    elif base == SIGHASH_SINGLE and index < len(tx.vout):
        ho = h(tx.vout[index].serialize())
    else:
        ho = zero
    txin = tx.vin[index]
    msg = (
        tx.version.to_bytes(4, "little") + hp + hs + txin.prevout.serialize()
        + compact_size(len(code)) + code + amount.to_bytes(8, "little")
        + txin.sequence.to_bytes(4, "little") + ho + tx.locktime.to_bytes(4, "little")
        + ht.to_bytes(4, "little")
    )
    return h(msg)


def test_bip143_matches_naive_rendering_and_precomputation() -> None:
    rng = random.Random(2)
    for _ in range(100):
        tx = _random_tx(rng, rng.randrange(1, 4), rng.randrange(1, 4))
        txdata = PrecomputedTxData(tx)
        for ht in (1, 2, 3, 0x81, 0x82, 0x83):
            index = rng.randrange(len(tx.vin))
            code = rng.randbytes(25)
            amount = rng.randrange(10**10)
            want = _naive_bip143(tx, index, code, amount, ht)
            assert segwit_v0_sighash(tx, index, code, amount, ht) == want
            assert segwit_v0_sighash(tx, index, code, amount, ht, txdata) == want


def test_bip143_native_p2wpkh_example() -> None:
    """BIP143's "Native P2WPKH" example: the published unsigned transaction, input 1, and
    the sighash the BIP gives for it."""
    tx = Transaction.from_hex(
        "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f000000"
        "0000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100"
        "000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d59"
        "88ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
    )
    code = bytes.fromhex("76a9141d0f172a0ecb48aee1be1f2687d2963ae33f71a188ac")
    got = segwit_v0_sighash(tx, 1, code, 600000000, SIGHASH_ALL)
    assert got.hex() == "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"


def test_taproot_sighash_structure() -> None:
    """BIP341 SigMsg assembled by hand for SIGHASH_DEFAULT and ANYONECANPAY|SINGLE."""
    rng = random.Random(3)
    tx = _random_tx(rng, 3, 3)
    spent = [TxOut(rng.randrange(10**8), b"\x51\x20" + rng.randbytes(32)) for _ in range(3)]

    def sha(b: bytes) -> bytes:
        return hashlib.sha256(b).digest()

    def tagged(tag: str, msg: bytes) -> bytes:
        t = sha(tag.encode())
        return sha(t + t + msg)

    sha_prevouts = sha(b"".join(i.prevout.serialize() for i in tx.vin))
    sha_amounts = sha(b"".join(o.value.to_bytes(8, "little") for o in spent))
    sha_spks = sha(b"".join(compact_size(len(o.script_pubkey)) + o.script_pubkey for o in spent))
    sha_seqs = sha(b"".join(i.sequence.to_bytes(4, "little") for i in tx.vin))
    sha_outs = sha(b"".join(o.serialize() for o in tx.vout))
    head = b"\x00" + b"\x00" + tx.version.to_bytes(4, "little") + tx.locktime.to_bytes(4, "little")
    msg = head + sha_prevouts + sha_amounts + sha_spks + sha_seqs + sha_outs + b"\x00"
    msg += (1).to_bytes(4, "little")
    assert taproot_sighash(tx, 1, spent) == tagged("TapSighash", msg)

    annex = b"\x50\x01\x02"
    ht = 0x83
    msg = b"\x00" + bytes((ht,)) + tx.version.to_bytes(4, "little")
    msg += tx.locktime.to_bytes(4, "little") + b"\x01"
    msg += tx.vin[2].prevout.serialize() + spent[2].serialize()
    msg += tx.vin[2].sequence.to_bytes(4, "little")
    msg += sha(compact_size(len(annex)) + annex) + sha(tx.vout[2].serialize())
    assert taproot_sighash(tx, 2, spent, ht, annex=annex) == tagged("TapSighash", msg)

    with pytest.raises(ValueError):
        taproot_sighash(tx, 0, spent, 0x04)
    short = Transaction(2, tx.vin, tx.vout[:1], 0)
    with pytest.raises(ValueError):
        taproot_sighash(short, 2, spent, SIGHASH_SINGLE)


def test_script_code_serialization_quirks() -> None:
    # OP_CODESEPARATORs go; pushes containing 0xab stay.
    assert serialize_script_code(b"\x51\xab\x52") == b"\x02\x51\x52"
    assert serialize_script_code(b"\x01\xab\xab") == b"\x02\x01\xab"
    # A truncated push: Core writes the bytes up to where parsing stopped, with the
    # length of the whole script (it never produces a valid signature, but it is consensus).
    assert serialize_script_code(b"\x51\x05\xaa") == b"\x03\x51\x05"


def _report(capsys: pytest.CaptureFixture, line: str) -> None:
    """Say how many vector cases ran, on the terminal even when output is captured."""
    with capsys.disabled():
        print(f"\n{line}", end="")
