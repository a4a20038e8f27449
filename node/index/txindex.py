"""-txindex: where every transaction of the active chain is stored, for getrawtransaction and
gettxoutproof (Core's TxIndex; keys in node/store/layout.py).

As Core's, entries of blocks that left the active chain are not deleted: a transaction found
again in another block is simply pointed at the new one.
"""

from __future__ import annotations

from node.index.base import BaseIndex
from node.store.layout import TX_PREFIX, decode_tx_pos, encode_tx_pos


class TxIndex(BaseIndex):
    name = "txindex"
    thread_name = "txidx"

    def append(self, batch, block, e, undo) -> None:
        if e.prev is None:
            return  # as Core: the genesis block's transaction is not an ordinary one
        put = batch.put
        for tx, offset in zip(block.txs, block.tx_offsets()):
            put(TX_PREFIX + tx.txid, encode_tx_pos(e.file, e.data_pos, offset))

    def lookup(self, txid: bytes) -> tuple[int, int, int] | None:
        """(block file, block data position, offset of the tx in the block), or None."""
        self.block_until_synced()
        raw = self.db.get(TX_PREFIX + txid)
        return decode_tx_pos(raw) if raw is not None else None

    def synced_height(self) -> int:
        return self.best.height if self.best is not None else -1
