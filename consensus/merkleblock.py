"""BIP37 partial merkle trees and merkle blocks: a block header with the branches that prove
some of its transactions are in it (gettxoutproof / verifytxoutproof, `merkleblock`).

The tree is walked depth first. For every node visited one bit says whether it is the parent
of a matched transaction; below a node without a match (or at a leaf) its hash is given and
the walk stops.
"""

from __future__ import annotations

from consensus.block import BlockHeader
from consensus.hashes import sha256d
from consensus.serialize import Reader, compact_size, u32

# A block cannot hold more transactions than this (Core: MAX_BLOCK_WEIGHT / the weight of the
# smallest transaction, 60 bytes).
MAX_TRANSACTIONS = 4_000_000 // 240


def _width(n_tx: int, height: int) -> int:
    """Number of nodes at `height` (0 = leaves) of a tree over n_tx leaves."""
    return (n_tx + (1 << height) - 1) >> height


def _tree_height(n_tx: int) -> int:
    h = 0
    while _width(n_tx, h) > 1:
        h += 1
    return h


class PartialMerkleTree:
    __slots__ = ("n_transactions", "bits", "hashes")

    def __init__(self, n_transactions: int = 0, bits: list[bool] | None = None,
                 hashes: list[bytes] | None = None) -> None:
        self.n_transactions = n_transactions
        self.bits = bits if bits is not None else []
        self.hashes = hashes if hashes is not None else []

    @classmethod
    def build(cls, txids: list[bytes], matches: list[bool]) -> PartialMerkleTree:
        """The tree proving the txids whose `matches` entry is true (txids in block order,
        internal byte order)."""
        tree = cls(len(txids))
        n = len(txids)

        def node_hash(height: int, pos: int) -> bytes:
            if height == 0:
                return txids[pos]
            left = node_hash(height - 1, pos * 2)
            right = (node_hash(height - 1, pos * 2 + 1)
                     if pos * 2 + 1 < _width(n, height - 1) else left)
            return sha256d(left + right)

        def walk(height: int, pos: int) -> None:
            lo, hi = pos << height, min((pos + 1) << height, n)
            parent_of_match = any(matches[lo:hi])
            tree.bits.append(parent_of_match)
            if height == 0 or not parent_of_match:
                tree.hashes.append(node_hash(height, pos))
                return
            walk(height - 1, pos * 2)
            if pos * 2 + 1 < _width(n, height - 1):
                walk(height - 1, pos * 2 + 1)

        if n:
            walk(_tree_height(n), 0)
        return tree

    def extract_matches(self) -> tuple[bytes, list[bytes], list[int]] | None:
        """(merkle root, matched txids, their positions in the block), or None when the tree
        is malformed (including CVE-2012-2459's duplicated subtrees)."""
        n = self.n_transactions
        if n == 0 or n > MAX_TRANSACTIONS:
            return None
        if len(self.hashes) > n or len(self.bits) < len(self.hashes):
            return None
        bits_used = 0
        hashes_used = 0
        matched: list[bytes] = []
        positions: list[int] = []

        class _Bad(Exception):
            pass

        def walk(height: int, pos: int) -> bytes:
            nonlocal bits_used, hashes_used
            if bits_used >= len(self.bits):
                raise _Bad
            parent_of_match = self.bits[bits_used]
            bits_used += 1
            if height == 0 or not parent_of_match:
                if hashes_used >= len(self.hashes):
                    raise _Bad
                h = self.hashes[hashes_used]
                hashes_used += 1
                if height == 0 and parent_of_match:
                    matched.append(h)
                    positions.append(pos)
                return h
            left = walk(height - 1, pos * 2)
            if pos * 2 + 1 < _width(n, height - 1):
                right = walk(height - 1, pos * 2 + 1)
                if right == left:
                    raise _Bad  # two equal subtrees: a mutated tree
            else:
                right = left
            return sha256d(left + right)

        try:
            root = walk(_tree_height(n), 0)
        except _Bad:
            return None
        # Every bit (up to byte padding) and every hash must have been used.
        if (bits_used + 7) // 8 != (len(self.bits) + 7) // 8 or hashes_used != len(self.hashes):
            return None
        return root, matched, positions

    def serialize(self) -> bytes:
        packed = bytearray((len(self.bits) + 7) // 8)
        for i, b in enumerate(self.bits):
            if b:
                packed[i // 8] |= 1 << (i % 8)
        return (u32(self.n_transactions) + compact_size(len(self.hashes))
                + b"".join(self.hashes) + compact_size(len(packed)) + bytes(packed))

    @classmethod
    def deserialize(cls, r: Reader) -> PartialMerkleTree:
        n = r.u32()
        count = r.compact_size()
        hashes = [r.hash256() for _ in range(count)]
        packed = r.var_bytes()
        bits = [bool(packed[i // 8] >> (i % 8) & 1) for i in range(len(packed) * 8)]
        return cls(n, bits, hashes)


class MerkleBlock:
    """Core's CMerkleBlock: a header and the partial merkle tree of some of its txids."""

    __slots__ = ("header", "tree")

    def __init__(self, header: BlockHeader, tree: PartialMerkleTree) -> None:
        self.header = header
        self.tree = tree

    @classmethod
    def for_txids(cls, header: BlockHeader, txids: list[bytes],
                  wanted: set[bytes]) -> MerkleBlock:
        return cls(header, PartialMerkleTree.build(txids, [t in wanted for t in txids]))

    def serialize(self) -> bytes:
        return self.header.serialize() + self.tree.serialize()

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleBlock:
        r = Reader(data)
        header = BlockHeader.deserialize(r)
        return cls(header, PartialMerkleTree.deserialize(r))  # as Core: trailing bytes ignored
