"""Taproot commitments (BIP341): leaf and branch hashes, merkle roots, tweaks, control blocks."""

from __future__ import annotations

from collections.abc import Sequence

from consensus.hashes import tagged_hasher
from consensus.serialize import compact_size

TAPROOT_LEAF_MASK = 0xFE
TAPROOT_LEAF_TAPSCRIPT = 0xC0
TAPROOT_CONTROL_BASE_SIZE = 33
TAPROOT_CONTROL_NODE_SIZE = 32
TAPROOT_CONTROL_MAX_NODE_COUNT = 128
TAPROOT_CONTROL_MAX_SIZE = (
    TAPROOT_CONTROL_BASE_SIZE + TAPROOT_CONTROL_NODE_SIZE * TAPROOT_CONTROL_MAX_NODE_COUNT
)
ANNEX_TAG = 0x50

_TAPLEAF = tagged_hasher("TapLeaf")
_TAPBRANCH = tagged_hasher("TapBranch")
_TAPTWEAK = tagged_hasher("TapTweak")


def tapleaf_hash(script: bytes, leaf_version: int = TAPROOT_LEAF_TAPSCRIPT) -> bytes:
    h = _TAPLEAF.copy()
    h.update(bytes((leaf_version,)) + compact_size(len(script)) + script)
    return h.digest()


def tapbranch_hash(a: bytes, b: bytes) -> bytes:
    """Hash of two child nodes, in lexicographic order."""
    h = _TAPBRANCH.copy()
    h.update(a + b if a < b else b + a)
    return h.digest()


def taptweak_hash(internal_key: bytes, merkle_root: bytes | None = None) -> bytes:
    h = _TAPTWEAK.copy()
    h.update(internal_key if merkle_root is None else internal_key + merkle_root)
    return h.digest()


def merkle_root_from_path(leaf_hash: bytes, path: Sequence[bytes]) -> bytes:
    k = leaf_hash
    for node in path:
        k = tapbranch_hash(k, node)
    return k


def control_block_merkle_root(control: bytes, leaf_hash: bytes) -> bytes:
    """Core's ComputeTaprootMerkleRoot: walk the control block's path from the leaf."""
    k = leaf_hash
    for pos in range(TAPROOT_CONTROL_BASE_SIZE, len(control), TAPROOT_CONTROL_NODE_SIZE):
        k = tapbranch_hash(k, control[pos : pos + TAPROOT_CONTROL_NODE_SIZE])
    return k


def valid_control_size(n: int) -> bool:
    return (
        TAPROOT_CONTROL_BASE_SIZE <= n <= TAPROOT_CONTROL_MAX_SIZE
        and (n - TAPROOT_CONTROL_BASE_SIZE) % TAPROOT_CONTROL_NODE_SIZE == 0
    )
