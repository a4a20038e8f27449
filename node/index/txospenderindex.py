"""-txospenderindex: which transaction spent each output (Core 31's TxoSpenderIndex), so that
gettxspendingprevout answers for confirmed spends too.

Keys (indexes/txospenderindex/db):
    b"s" + spent txid (32) + output index (u32 BE) + spending block hash (32)
        -> offset of the spending transaction in that block (u32 LE)
    b"B" -> best block locator (node/index/base.py)
As Core's, entries of blocks that left the active chain are kept; a lookup only believes
spends in blocks of the active chain.
"""

from __future__ import annotations

import struct

from consensus.serialize import Reader
from consensus.tx import Transaction
from node.index.base import BaseIndex

SPEND_PREFIX = b"s"
_N = struct.Struct(">I")
_OFF = struct.Struct("<I")


class TxoSpenderIndex(BaseIndex):
    name = "txospenderindex"
    thread_name = "txospenderidx"

    def append(self, batch, block, e, undo) -> None:
        put = batch.put
        offsets = block.tx_offsets()
        for i, tx in enumerate(block.txs):
            if i == 0:
                continue
            value = _OFF.pack(offsets[i])
            for txin in tx.vin:
                p = txin.prevout
                put(SPEND_PREFIX + p.hash + _N.pack(p.n) + e.hash, value)

    def find_spender(self, txid: bytes, n: int):
        """(spending transaction, its block's index entry) for an output spent in the active
        chain, or None. Raises OSError-like errors (BlockFileError) if the block is gone."""
        self.block_until_synced()
        chain = self.chain
        prefix = SPEND_PREFIX + txid + _N.pack(n)
        for key, value in self.db.iterator(prefix=prefix):
            e = chain.get(key[len(prefix):])
            if e is None or not chain.in_active_chain(e):
                continue
            raw = chain.read_raw_block(e)
            off = _OFF.unpack(value)[0]
            tx = Transaction.deserialize(Reader(raw, off))
            if any(i.prevout.hash == txid and i.prevout.n == n for i in tx.vin):
                return tx, e
        return None
