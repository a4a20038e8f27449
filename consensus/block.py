"""Block headers, blocks, merkle roots and the BIP141 witness commitment."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from consensus.hashes import hash_to_hex, sha256d
from consensus.serialize import (
    DeserializationError,
    Reader,
    compact_size,
    compact_size_len,
    expect_end,
)
from consensus.tx import WITNESS_SCALE_FACTOR, Transaction, TxOut

HEADER_SIZE = 80
_HEADER = struct.Struct("<i32s32sIII")

# BIP141: OP_RETURN, push 36, then this 4-byte tag, then the 32-byte commitment.
WITNESS_COMMITMENT_HEADER = bytes.fromhex("6a24aa21a9ed")
MINIMUM_WITNESS_COMMITMENT = 38


class BlockHeader:
    """The 80-byte header. Its hash is cached: call rehash() after changing a field."""

    __slots__ = ("version", "prev_hash", "merkle_root", "time", "bits", "nonce", "_hash")

    def __init__(
        self,
        version: int = 1,
        prev_hash: bytes = b"\x00" * 32,
        merkle_root: bytes = b"\x00" * 32,
        time: int = 0,
        bits: int = 0,
        nonce: int = 0,
    ) -> None:
        self.version = version  # int32, signed as in Core
        self.prev_hash = prev_hash
        self.merkle_root = merkle_root
        self.time = time
        self.bits = bits
        self.nonce = nonce
        self._hash: bytes | None = None

    def serialize(self) -> bytes:
        return _HEADER.pack(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    @classmethod
    def deserialize(cls, r: Reader) -> BlockHeader:
        start = r.pos
        raw = r.read(HEADER_SIZE)
        h = cls.__new__(cls)
        (h.version, h.prev_hash, h.merkle_root, h.time, h.bits, h.nonce) = _HEADER.unpack(raw)
        h._hash = sha256d(r.buf[start : start + HEADER_SIZE])
        return h

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        r = Reader(data)
        h = cls.deserialize(r)
        expect_end(r, "block header")
        return h

    @property
    def hash(self) -> bytes:
        if self._hash is None:
            self._hash = sha256d(self.serialize())
        return self._hash

    def hash_hex(self) -> str:
        return hash_to_hex(self.hash)

    def rehash(self) -> None:
        self._hash = None

    def copy(self) -> BlockHeader:
        return BlockHeader(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    def __repr__(self) -> str:
        return f"BlockHeader({self.hash_hex()})"


class Block:
    __slots__ = ("header", "txs", "_size", "_base_size")

    def __init__(self, header: BlockHeader | None = None, txs: Iterable[Transaction] = ()) -> None:
        self.header = header if header is not None else BlockHeader()
        self.txs = list(txs)
        self._size: int | None = None
        self._base_size: int | None = None

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def hash_hex(self) -> str:
        return self.header.hash_hex()

    def serialize(self, witness: bool = True) -> bytes:
        parts = [self.header.serialize(), compact_size(len(self.txs))]
        parts.extend(tx.serialize(witness) for tx in self.txs)
        return b"".join(parts)

    @classmethod
    def deserialize(cls, r: Reader) -> Block:
        start = r.pos
        header = BlockHeader.deserialize(r)
        n = r.compact_size()
        b = cls(header, [Transaction.deserialize(r) for _ in range(n)])
        b._size = r.pos - start
        return b

    @classmethod
    def from_bytes(cls, data: bytes) -> Block:
        r = Reader(data)
        b = cls.deserialize(r)
        expect_end(r, "block")
        return b

    @classmethod
    def from_hex(cls, s: str) -> Block:
        try:
            data = bytes.fromhex(s)
        except ValueError as e:
            raise DeserializationError(f"not hex: {e}") from None
        return cls.from_bytes(data)

    def rehash(self) -> None:
        self._size = self._base_size = None
        self.header.rehash()

    def tx_offsets(self) -> list[int]:
        """Where each transaction starts in the serialized block, plus the end."""
        offsets = [HEADER_SIZE + compact_size_len(len(self.txs))]
        for tx in self.txs:
            offsets.append(offsets[-1] + tx.size)
        return offsets

    @property
    def size(self) -> int:
        """Serialized size with witness."""
        if self._size is None:
            self._size = HEADER_SIZE + compact_size_len(len(self.txs)) + sum(
                tx.size for tx in self.txs
            )
        return self._size

    @property
    def base_size(self) -> int:
        """Serialized size without witness ("strippedsize")."""
        if self._base_size is None:
            self._base_size = HEADER_SIZE + compact_size_len(len(self.txs)) + sum(
                tx.base_size for tx in self.txs
            )
        return self._base_size

    @property
    def weight(self) -> int:
        return self.base_size * (WITNESS_SCALE_FACTOR - 1) + self.size

    def compute_merkle_root(self) -> tuple[bytes, bool]:
        return merkle_root([tx.txid for tx in self.txs])

    def __repr__(self) -> str:
        return f"Block({self.hash_hex()}, txs={len(self.txs)})"


def merkle_root(hashes: list[bytes]) -> tuple[bytes, bool]:
    """Core's ComputeMerkleRoot: (root, mutated).

    `mutated` is True when two identical hashes are paired at any level: the duplicate-leaf
    ambiguity of CVE-2012-2459, where a different transaction list gives the same root.
    """
    if not hashes:
        return b"\x00" * 32, False
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        for i in range(0, len(level) - 1, 2):
            if level[i] == level[i + 1]:
                mutated = True
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated


def merkle_branch(hashes: list[bytes], index: int) -> list[bytes]:
    """The hashes that with hashes[index] make the merkle root, from the leaves up (the
    sibling at each level, the last hash of an odd level paired with itself): Electrum's and
    Esplora's merkle proof."""
    if not 0 <= index < len(hashes):
        raise IndexError("merkle branch: index out of range")
    branch = []
    level = list(hashes)
    while len(level) > 1:
        if len(level) & 1:
            level.append(level[-1])
        branch.append(level[index ^ 1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        index >>= 1
    return branch


def witness_merkle_root(txs: list[Transaction]) -> bytes:
    """Merkle root of the wtxids, with the coinbase's taken as all zeros (BIP141)."""
    leaves = [b"\x00" * 32] + [tx.wtxid for tx in txs[1:]]
    return merkle_root(leaves)[0]


def witness_commitment_index(block: Block) -> int:
    """Index of the coinbase output holding the witness commitment (the last match), or -1."""
    if not block.txs:
        return -1
    pos = -1
    for i, out in enumerate(block.txs[0].vout):
        spk = out.script_pubkey
        if len(spk) >= MINIMUM_WITNESS_COMMITMENT and spk[:6] == WITNESS_COMMITMENT_HEADER:
            pos = i
    return pos


def witness_commitment(witness_root: bytes, witness_nonce: bytes) -> bytes:
    return sha256d(witness_root + witness_nonce)


def witness_commitment_script(commitment: bytes) -> bytes:
    return WITNESS_COMMITMENT_HEADER + commitment


def add_witness_commitment(block: Block, nonce: bytes = b"\x00" * 32) -> None:
    """Give the coinbase a witness nonce and a commitment output (for miners and tests).

    Replaces an existing commitment output; call after the transaction list is final, then
    recompute the merkle root.
    """
    cb = block.txs[0]
    cb.vin[0].witness = [nonce]
    root = witness_merkle_root(block.txs)
    script = witness_commitment_script(witness_commitment(root, nonce))
    pos = witness_commitment_index(block)
    if pos >= 0:
        cb.vout[pos] = TxOut(0, script)
    else:
        cb.vout.append(TxOut(0, script))
    cb.rehash()
    block.rehash()
