"""BIP152 compact blocks, version 2 (witness transactions): building a block's
HeaderAndShortIDs, and putting a block back together from one with the transactions we
already have (Core's blockencodings: CBlockHeaderAndShortTxIDs, PartiallyDownloadedBlock).

A short id is the SipHash-2-4 of a transaction's wtxid, keyed by the first 16 bytes of
SHA256(header || nonce), cut to 48 bits. SipHash runs in C (the `siphash24` package): a block
of 4,000 transactions is 4,000 hashes on each side of every hop.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Iterable

from siphash24 import siphash24

from consensus.block import Block
from consensus.tx import Transaction
from node.p2p import messages as m

SHORT_ID_MASK = 0xFFFF_FFFF_FFFF
DEFAULT_EXTRA_TXN = 100  # Core's -blockreconstructionextratxn
MAX_BLOCK_TXS = 4_000_000 // 40  # block weight over the smallest transaction's weight


def short_id_key(header, nonce: int) -> bytes:
    """The SipHash key of a compact block: SHA256(header || nonce)[:16] (k0, k1 little-endian)."""
    return hashlib.sha256(header.serialize() + nonce.to_bytes(8, "little")).digest()[:16]


def short_id(key: bytes, wtxid: bytes) -> int:
    # (intdigest is signed: the mask takes the low 48 bits of its two's complement)
    return siphash24(wtxid, key=key).intdigest() & SHORT_ID_MASK


def build(block: Block, nonce: int | None = None) -> m.CmpctBlock:
    """The compact form of a block: the coinbase prefilled (as Core), every other transaction
    as its short id."""
    if nonce is None:
        nonce = random.getrandbits(64)
    key = short_id_key(block.header, nonce)
    ids = [siphash24(tx.wtxid, key=key).intdigest() & SHORT_ID_MASK for tx in block.txs[1:]]
    return m.CmpctBlock(block.header, nonce, ids, [(0, block.txs[0])])


class InvalidCompactBlock(Exception):
    """A compact block that cannot be a block (Core's READ_STATUS_INVALID): the sender is at
    fault."""


class Collision(Exception):
    """Two transactions under one short id (Core's READ_STATUS_FAILED): ask for the block."""


def prepare(msg: m.CmpctBlock) -> tuple[list, dict[int, int]]:
    """The transaction slots of the block (prefilled ones set) and {short id: slot} of the
    others. Raises InvalidCompactBlock or Collision."""
    n = len(msg.short_ids) + len(msg.prefilled)
    if not n or n > MAX_BLOCK_TXS:  # (Core: more transactions than a block can hold)
        raise InvalidCompactBlock("empty or oversized compact block")
    slots: list = [None] * n
    for index, tx in msg.prefilled:
        if index >= n:
            raise InvalidCompactBlock("prefilled transaction index out of range")
        slots[index] = tx
    want: dict[int, int] = {}
    free = (i for i in range(n) if slots[i] is None)
    for sid in msg.short_ids:
        i = next(free)
        if sid in want:
            raise Collision()
        want[sid] = i
    return slots, want


def fill(msg: m.CmpctBlock, slots: list, want: dict[int, int],
         candidates: Iterable[tuple[bytes, Transaction]], ambiguous: set[int]) -> None:
    """Put into `slots` the candidates (wtxid, transaction) whose short id is wanted. A slot
    two different candidates match is left empty (and added to `ambiguous`), so that the
    transaction is asked for, as Core does."""
    if not want:
        return
    key = short_id_key(msg.header, msg.nonce)
    get = want.get
    for wtxid, tx in candidates:
        i = get(siphash24(wtxid, key=key).intdigest() & SHORT_ID_MASK)
        if i is not None and i not in ambiguous:
            have = slots[i]
            if have is None:
                slots[i] = tx
            elif have.wtxid != wtxid:
                slots[i] = None
                ambiguous.add(i)


def missing(slots: list) -> list[int]:
    return [i for i, tx in enumerate(slots) if tx is None]


class ExtraTxns:
    """Transactions seen lately that are not in the mempool (orphans, those refused by
    policy, those replaced), kept for rebuilding compact blocks (Core's
    vExtraTxnForCompact): the oldest forgotten first."""

    def __init__(self, limit: int = DEFAULT_EXTRA_TXN) -> None:
        self.limit = limit
        self.txs: OrderedDict[bytes, Transaction] = OrderedDict()

    def add(self, tx: Transaction) -> None:
        if self.limit <= 0:
            return
        w = tx.wtxid
        if w in self.txs:
            return
        self.txs[w] = tx
        if len(self.txs) > self.limit:
            self.txs.popitem(last=False)

    def items(self):
        return list(self.txs.items())
