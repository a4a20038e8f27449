import pytest

from consensus.block import (
    Block,
    BlockHeader,
    add_witness_commitment,
    merkle_root,
    witness_commitment_index,
    witness_merkle_root,
)
from consensus.hashes import hash_to_hex, sha256d
from consensus.params import MAIN, REGTEST, get_params
from consensus.serialize import DeserializationError
from consensus.tx import OutPoint, Transaction, TxIn, TxOut


def test_genesis_hashes():
    assert MAIN.genesis.hash_hex() == (
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    )
    assert REGTEST.genesis.hash_hex() == (
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    )
    for p in (MAIN, REGTEST):
        raw = p.genesis.serialize()
        assert len(raw) == 285
        again = Block.from_bytes(raw)
        assert again.hash == p.genesis.hash and again.serialize() == raw
        assert again.compute_merkle_root() == (p.genesis.header.merkle_root, False)


def test_header_roundtrip_and_truncation():
    raw = MAIN.genesis.header.serialize()
    assert len(raw) == 80
    assert BlockHeader.from_bytes(raw).hash == MAIN.genesis.hash
    with pytest.raises(DeserializationError):
        BlockHeader.from_bytes(raw[:79])


def h(i: int) -> bytes:
    return sha256d(bytes([i]))


def test_merkle_root_shapes():
    assert merkle_root([]) == (b"\x00" * 32, False)
    assert merkle_root([h(1)]) == (h(1), False)
    assert merkle_root([h(1), h(2)])[0] == sha256d(h(1) + h(2))
    # Odd count: the last hash pairs with itself at each level.
    ab = sha256d(h(1) + h(2))
    cc = sha256d(h(3) + h(3))
    assert merkle_root([h(1), h(2), h(3)]) == (sha256d(ab + cc), False)


def test_merkle_mutation_detected():
    # CVE-2012-2459: [1,2,3] and [1,2,3,3] have the same root; the latter is flagged.
    root3, mut3 = merkle_root([h(1), h(2), h(3)])
    root4, mut4 = merkle_root([h(1), h(2), h(3), h(3)])
    assert root3 == root4 and not mut3 and mut4
    # A duplicated pair at a higher level: [1..6] vs [1..6,5,6].
    six = [h(i) for i in range(1, 7)]
    r6, m6 = merkle_root(six)
    r8, m8 = merkle_root(six + six[4:6])
    assert r6 == r8 and not m6 and m8


def coinbase(height: int) -> Transaction:
    return Transaction(
        2,
        [TxIn(OutPoint(), bytes([1, height]) + b"\x00", 0xFFFFFFFF)],
        [TxOut(50_0000_0000, b"\x51")],
    )


def test_witness_commitment():
    spend = Transaction(
        2, [TxIn(OutPoint(h(9), 0), b"", 0, [b"\x01" * 64])], [TxOut(1000, b"\x51")]
    )
    block = Block(BlockHeader(), [coinbase(1), spend])
    assert witness_commitment_index(block) == -1
    add_witness_commitment(block)
    pos = witness_commitment_index(block)
    assert pos == 1
    spk = block.txs[0].vout[pos].script_pubkey
    assert spk[:6].hex() == "6a24aa21a9ed" and len(spk) == 38
    root = witness_merkle_root(block.txs)
    assert root == merkle_root([b"\x00" * 32, spend.wtxid])[0]
    assert spk[6:] == sha256d(root + b"\x00" * 32)
    # The last matching output is the commitment.
    block.txs[0].vout.append(block.txs[0].vout[pos])
    assert witness_commitment_index(block) == 2


def test_block_sizes_and_weight():
    spend = Transaction(
        2, [TxIn(OutPoint(h(9), 0), b"", 0, [b"\x01" * 64])], [TxOut(1000, b"\x51")]
    )
    block = Block(BlockHeader(), [coinbase(1), spend])
    assert block.size == len(block.serialize())
    assert block.base_size == len(block.serialize(witness=False))
    assert block.weight == 3 * block.base_size + block.size
    parsed = Block.from_bytes(block.serialize())
    assert parsed.size == block.size and parsed.txs[1].wtxid == spend.wtxid


def test_params_lookup():
    assert get_params("regtest") is REGTEST
    with pytest.raises(ValueError):
        get_params("nope")
    assert REGTEST.message_start.hex() == "fabfb5da" and MAIN.message_start.hex() == "f9beb4d9"
    assert (REGTEST.default_port, REGTEST.rpc_port, MAIN.default_port) == (18444, 18443, 8333)
    assert (REGTEST.bech32_hrp, MAIN.bech32_hrp) == ("bcrt", "bc")
    assert MAIN.difficulty_adjustment_interval == 2016
    assert hash_to_hex(MAIN.bip34_hash).startswith("000000000000024b89b4")
