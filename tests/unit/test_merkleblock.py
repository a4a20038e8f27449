"""BIP37 partial merkle trees (consensus.merkleblock), as Core's pmt_tests."""

import random

from consensus.block import merkle_root
from consensus.hashes import sha256d
from consensus.merkleblock import PartialMerkleTree
from consensus.serialize import Reader


def test_round_trip_every_size_and_match_pattern():
    rng = random.Random(1)
    for n in (1, 2, 3, 4, 7, 9, 16, 17, 56, 100):
        txids = [sha256d(bytes([i % 256, i // 256])) for i in range(n)]
        root, _ = merkle_root(txids)
        for _ in range(5):
            match = [rng.random() < 0.3 for _ in range(n)]
            tree = PartialMerkleTree.build(txids, match)
            again = PartialMerkleTree.deserialize(Reader(tree.serialize()))
            got = again.extract_matches()
            assert got is not None
            got_root, matched, positions = got
            assert got_root == root
            assert matched == [t for t, m in zip(txids, match) if m]
            assert positions == [i for i, m in enumerate(match) if m]


def test_malformed_trees_are_refused():
    txids = [sha256d(bytes([i])) for i in range(3)]
    tree = PartialMerkleTree.build(txids, [True, False, True])
    assert PartialMerkleTree(0, [], []).extract_matches() is None
    # A hash left over, a bit missing: refused.
    assert PartialMerkleTree(3, tree.bits, tree.hashes + [b"\x00" * 32]).extract_matches() is None
    assert PartialMerkleTree(3, tree.bits[:1], tree.hashes).extract_matches() is None
    # CVE-2012-2459: two equal subtrees.
    dup = [txids[0], txids[1], txids[1]]
    t = PartialMerkleTree(4, [True, True, True, True, True, True, True],
                          [dup[0], dup[1], dup[2], dup[2]])
    assert t.extract_matches() is None
