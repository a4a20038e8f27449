"""BIP152 compact blocks (node/p2p/compact.py): short ids as BIP152 defines them (checked
against the pure-Python SipHash-2-4 of node/index/siphash.py), a block's compact form and its
reconstruction from the transactions a node has, collisions and malformed compact blocks."""

from __future__ import annotations

import hashlib
import os

import pytest

from node.index.siphash import siphash24 as siphash24_python
from node.p2p import compact
from node.p2p import messages as m
from tests.blocktools import make_block, spend


def _block(n: int = 50):
    txs = [spend(os.urandom(32), i, 1000 + i, witness=[os.urandom(20)]) for i in range(n)]
    return make_block(b"\x11" * 32, 200, txs, mine=False)


def test_short_ids_are_bip152s():
    block = _block(20)
    nonce = 0x0123456789ABCDEF
    msg = compact.build(block, nonce)
    digest = hashlib.sha256(block.header.serialize() + nonce.to_bytes(8, "little")).digest()
    k0, k1 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")
    # keyed by SHA256(header || nonce), over the wtxid, 48 bits: the C package and the pure
    # Python SipHash agree on every one (negative intdigest values included)
    assert msg.short_ids == [siphash24_python(k0, k1, tx.wtxid) & 0xFFFF_FFFF_FFFF
                             for tx in block.txs[1:]]
    assert msg.prefilled == [(0, block.txs[0])] and msg.nonce == nonce
    for _ in range(200):
        w = os.urandom(32)
        assert compact.short_id(digest[:16], w) == \
            siphash24_python(k0, k1, w) & 0xFFFF_FFFF_FFFF


def test_rebuilt_from_what_the_node_has_and_the_rest_asked_for():
    block = _block()
    msg = m.CmpctBlock.parse(compact.build(block).serialize())  # (through the wire format)
    slots, want = compact.prepare(msg)
    assert len(slots) == len(block.txs) and len(want) == len(block.txs) - 1
    have = block.txs[1:40]
    unrelated = [spend(os.urandom(32), 0, 5) for _ in range(100)]
    candidates = [(tx.wtxid, tx) for tx in unrelated + have]
    compact.fill(msg, slots, want, candidates, set())
    missing = compact.missing(slots)
    assert missing == list(range(40, len(block.txs)))
    for i in missing:  # (what a blocktxn brings)
        slots[i] = block.txs[i]
    assert [tx.wtxid for tx in slots] == [tx.wtxid for tx in block.txs]


def test_ambiguous_short_id_is_asked_for():
    """Two different transactions matching one slot (a short-id collision, made here by
    mapping the impostor's id to the target's slot): the slot is left for getblocktxn, as
    Core does, and nothing matches it again."""
    block = _block(5)
    msg = compact.build(block)
    slots, want = compact.prepare(msg)
    target = block.txs[2]
    impostor = spend(os.urandom(32), 0, 1)
    key = compact.short_id_key(msg.header, msg.nonce)
    want[compact.short_id(key, impostor.wtxid)] = want[msg.short_ids[1]]
    ambiguous: set[int] = set()
    compact.fill(msg, slots, want, [(target.wtxid, target)], ambiguous)
    assert slots[2] is target
    compact.fill(msg, slots, want, [(impostor.wtxid, impostor)], ambiguous)
    assert slots[2] is None and ambiguous == {2}
    compact.fill(msg, slots, want, [(target.wtxid, target)], ambiguous)
    assert 2 in compact.missing(slots)


def test_malformed_compact_blocks():
    block = _block(3)
    msg = compact.build(block)
    dup = m.CmpctBlock(msg.header, msg.nonce, [msg.short_ids[0]] * 2, msg.prefilled)
    with pytest.raises(compact.Collision):
        compact.prepare(dup)
    bad_index = m.CmpctBlock(msg.header, msg.nonce, msg.short_ids, [(9, block.txs[0])])
    with pytest.raises(compact.InvalidCompactBlock):
        compact.prepare(bad_index)
    with pytest.raises(compact.InvalidCompactBlock):
        compact.prepare(m.CmpctBlock(msg.header, msg.nonce, [], []))


def test_extra_txns_bounded():
    pool = compact.ExtraTxns(3)
    txs = [spend(os.urandom(32), 0, 1) for _ in range(5)]
    for tx in txs:
        pool.add(tx)
    pool.add(txs[-1])
    assert [w for w, _ in pool.items()] == [tx.wtxid for tx in txs[2:]]
    off = compact.ExtraTxns(0)
    off.add(txs[0])
    assert off.items() == []
