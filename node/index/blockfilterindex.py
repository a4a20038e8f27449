"""-blockfilterindex=basic: the BIP158 basic filter and filter header of every block (Core's
BlockFilterIndex), for getblockfilter and BIP157 peers.

Keys (indexes/blockfilter/basic/db):
    b"f" + block hash (32) -> filter header (32) | encoded filter
    b"B" -> best block locator (node/index/base.py)
Filters are kept by block hash, so those of blocks that left the active chain stay readable
and a rewind only moves the best block.
"""

from __future__ import annotations

from node.index import bip158
from node.index.base import BaseIndex

FILTER_PREFIX = b"f"
ZERO_HEADER = bytes(32)
FILTER_TYPES = {"basic": 0}


class BlockFilterIndex(BaseIndex):
    name = "basic block filter index"
    thread_name = "blkfltbscidx"
    needs_undo = True

    def __init__(self, path, chain, wipe: bool = False) -> None:
        super().__init__(path, chain, wipe)
        self._last: tuple[bytes, bytes] | None = None  # (block hash, filter header)

    def _header_of(self, block_hash: bytes) -> bytes | None:
        last = self._last
        if last is not None and last[0] == block_hash:
            return last[1]
        raw = self.db.get(FILTER_PREFIX + block_hash)
        return raw[:32] if raw is not None else None

    def append(self, batch, block, e, undo) -> None:
        spent = [c.script_pubkey for coins in undo for c in coins] if undo else []
        encoded = bip158.basic_filter(block, spent)
        prev = ZERO_HEADER
        if e.prev is not None:
            prev = self._header_of(e.prev.hash)
            if prev is None:
                raise RuntimeError(f"{self.name}: no filter header for the parent of "
                                   f"{e.hash_hex()}")
        header = bip158.filter_header(encoded, prev)
        batch.put(FILTER_PREFIX + e.hash, header + encoded)
        self._last = (e.hash, header)

    def lookup(self, block_hash: bytes) -> tuple[bytes, bytes] | None:
        """(encoded filter, filter header) of a block indexed, or None."""
        raw = self.db.get(FILTER_PREFIX + block_hash)
        if raw is None:
            return None
        return raw[32:], raw[:32]
