"""consensus.block.merkle_branch: the branch of every leaf of trees of 1 to 17 leaves folds
back to merkle_root."""

import hashlib

import pytest

from consensus.block import merkle_branch, merkle_root
from consensus.hashes import sha256d


def fold(leaf: bytes, index: int, branch: list[bytes]) -> bytes:
    h = leaf
    for sibling in branch:
        h = sha256d(sibling + h) if index & 1 else sha256d(h + sibling)
        index >>= 1
    return h


@pytest.mark.parametrize("n", range(1, 18))
def test_every_leaf_folds_to_the_root(n: int) -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
    root, _ = merkle_root(leaves)
    depth = (n - 1).bit_length()
    for i in range(n):
        branch = merkle_branch(leaves, i)
        assert len(branch) == depth
        assert fold(leaves[i], i, branch) == root


def test_out_of_range() -> None:
    with pytest.raises(IndexError):
        merkle_branch([b"\x00" * 32], 1)
    with pytest.raises(IndexError):
        merkle_branch([], 0)
