"""-txindex: where every transaction of the active chain is stored (see store/layout.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import plyvel

from consensus.block import Block
from node.store.blockindex import BlockIndexEntry
from node.store.layout import BEST_BLOCK_KEY, TX_PREFIX, decode_tx_pos, encode_tx_pos

log = logging.getLogger("validation")


class TxIndex:
    def __init__(self, path: Path, chain) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.db = plyvel.DB(str(path), create_if_missing=True)
        self.chain = chain
        chain.on_connected.append(self._connected)
        chain.on_disconnected.append(self._disconnected)

    def close(self) -> None:
        self.db.close()

    def wipe(self) -> None:
        with self.db.write_batch() as b:
            for k in self.db.iterator(include_value=False):
                b.delete(k)

    def best_block(self) -> bytes | None:
        return self.db.get(BEST_BLOCK_KEY)

    def _connected(self, block: Block, e: BlockIndexEntry) -> None:
        with self.db.write_batch() as b:
            for tx, offset in zip(block.txs, block.tx_offsets()):
                b.put(TX_PREFIX + tx.txid, encode_tx_pos(e.file, e.data_pos, offset))
            b.put(BEST_BLOCK_KEY, e.hash)

    def _disconnected(self, block: Block, e: BlockIndexEntry) -> None:
        with self.db.write_batch() as b:
            for tx in block.txs:
                b.delete(TX_PREFIX + tx.txid)
            b.put(BEST_BLOCK_KEY, e.prev.hash)

    def sync(self) -> None:
        """Catch up with the active chain (after enabling -txindex, or a crash)."""
        chain = self.chain
        best = self.best_block()
        start = 0
        if best is not None:
            e = chain.get(best)
            if e is not None and chain.in_active_chain(e):
                start = e.height + 1
        n = 0
        for h in range(start, chain.height + 1):
            e = chain.active[h]
            self._connected(chain.read_block(e), e)
            n += 1
        if n:
            log.info("txindex: indexed %d blocks", n)

    def synced_height(self) -> int:
        best = self.best_block()
        e = self.chain.get(best) if best else None
        return e.height if e is not None else -1

    def lookup(self, txid: bytes) -> tuple[int, int, int] | None:
        raw = self.db.get(TX_PREFIX + txid)
        return decode_tx_pos(raw) if raw is not None else None
