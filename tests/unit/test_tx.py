import pytest

from consensus.hashes import sha256d
from consensus.params import MAIN
from consensus.serialize import DeserializationError
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.conftest import load_json


def vector_txs(name):
    return [row[1] for row in load_json(name) if len(row) == 3]


@pytest.mark.parametrize("name", ["tx_valid.json", "tx_invalid.json"])
def test_vectors_round_trip_byte_exact(name):
    txs = vector_txs(name)
    assert len(txs) > 90
    for hexstr in txs:
        raw = bytes.fromhex(hexstr)
        tx = Transaction.from_bytes(raw)
        assert tx.serialize() == raw
        # Hashes computed from the parsed bytes agree with those from re-serialization.
        fresh = tx.copy()
        assert fresh.txid == tx.txid == sha256d(tx.serialize(witness=False))
        assert fresh.wtxid == tx.wtxid == sha256d(raw)
        assert (fresh.size, fresh.base_size) == (tx.size, tx.base_size) == (
            len(raw),
            len(tx.serialize(witness=False)),
        )
        assert tx.weight == 3 * tx.base_size + tx.size
        assert tx.vsize == -(-tx.weight // 4)
    print(f"{name}: {len(txs)} transactions round-tripped")


def test_genesis_coinbase_txid():
    cb = MAIN.genesis.txs[0]
    assert cb.txid_hex() == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    assert cb.is_coinbase() and not cb.has_witness()
    assert cb.wtxid == cb.txid


def build_segwit():
    return Transaction(
        2,
        [TxIn(OutPoint(b"\x11" * 32, 3), b"", 0xFFFFFFFD, [b"\x30" * 71, b"\x02" * 33])],
        [TxOut(12345, b"\x00\x14" + b"\x22" * 20)],
        0,
    )


def test_witness_serialization_and_weight():
    tx = build_segwit()
    full = tx.serialize()
    base = tx.serialize(witness=False)
    assert full[4:6] == b"\x00\x01"
    assert base[4] == 1  # one input, no marker
    assert tx.txid == sha256d(base) and tx.wtxid == sha256d(full) and tx.txid != tx.wtxid
    witness_bytes = 2 + 1 + 1 + 71 + 1 + 33  # marker+flag, item count, two items
    assert len(full) - len(base) == witness_bytes
    assert tx.weight == 4 * len(base) + witness_bytes
    parsed = Transaction.from_bytes(full)
    assert parsed.vin[0].witness == tx.vin[0].witness and parsed.txid == tx.txid


def test_rehash_after_change():
    tx = build_segwit()
    before = tx.txid
    tx.vout[0].value += 1
    assert tx.txid == before  # cached: frozen once hashed
    tx.rehash()
    assert tx.txid != before


def test_superfluous_witness_and_unknown_flags():
    tx = build_segwit()
    full = bytearray(tx.serialize())
    # Same bytes with the witness stack replaced by an empty one: flag set but no witness.
    no_wit = tx.copy()
    no_wit.vin[0].witness = []
    body = no_wit.serialize(witness=False)
    superfluous = body[:4] + b"\x00\x01" + body[4:-4] + b"\x00" + body[-4:]
    with pytest.raises(DeserializationError, match="Superfluous witness"):
        Transaction.from_bytes(superfluous)
    full[5] = 0x03  # flag with an unknown bit
    with pytest.raises(DeserializationError, match="Unknown transaction optional data"):
        Transaction.from_bytes(bytes(full))


def test_empty_vin_with_zero_flag_parses_as_core_does():
    # version, empty vin, then a zero "flag" byte means: no outputs either.
    raw = bytes.fromhex("01000000" "00" "00" "00000000")
    tx = Transaction.from_bytes(raw)
    assert tx.vin == [] and tx.vout == [] and tx.serialize() == raw


def test_without_witness_parsing_mode():
    tx = build_segwit()
    base = tx.serialize(witness=False)
    assert Transaction.from_bytes(base, allow_witness=False).txid == tx.txid
    with pytest.raises(DeserializationError):
        Transaction.from_bytes(tx.serialize(), allow_witness=False)


def test_from_hex_rejects_non_hex():
    with pytest.raises(DeserializationError, match="not hex"):
        Transaction.from_hex("zz")
