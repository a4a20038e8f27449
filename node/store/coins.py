"""The UTXO set: a LevelDB table behind an in-memory write-back cache.

Cache states of an outpoint key (see layout.outpoint_key):
  absent               unknown to the cache; ask the database
  entries[k] = Coin    unspent (dirty if k in `dirty`)
  entries[k] = None    spent; if dirty, the database still holds it and the flush deletes it
`fresh` keys were created since the last flush and are not in the database, so spending one
simply forgets it. Each flush writes every dirty key and the best block in one atomic batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import plyvel

from consensus.contextual import Coin
from consensus.muhash import MuHash3072, txout_ser
from node.store import DatabaseOpenError, close_db, db_error_text, table_damage
from node.store.layout import (
    BEST_BLOCK_KEY,
    COIN_PREFIX,
    decode_coin,
    encode_coin,
    split_outpoint_key,
)

# Rough bytes per cached coin (dict slot, key bytes, Coin object, script bytes), measured
# with tracemalloc on typical P2WPKH/P2TR outputs; used to honour -dbcache.
ENTRY_OVERHEAD = 260


class CoinsCache:
    def __init__(self, path: Path, cache_bytes: int) -> None:
        self.path = path
        # A bloom filter answers most lookups of absent outpoints without reading a table
        # (BIP30 checks, "already in utxo set" checks, missing inputs).
        try:
            self.db = plyvel.DB(str(path), create_if_missing=True, bloom_filter_bits=10,
                                paranoid_checks=True)
            # Read (checksums verified) the first record: this opens the newest tables
            # (level 0) and the first of each older level. The others are checked against
            # the database's metadata (sizes): a damaged database fails here, at start-up.
            next(self.db.iterator(verify_checksums=True), None)
            damage = table_damage(self.db, path)
        except plyvel.Error as err:
            raise DatabaseOpenError("coins", db_error_text(err)) from None
        if damage:
            self.db.close()
            raise DatabaseOpenError("coins", damage)
        self.cache_bytes = cache_bytes
        self.entries: dict[bytes, Coin | None] = {}
        self.dirty: set[bytes] = set()
        self.fresh: set[bytes] = set()
        self._script_bytes = 0

    def close(self) -> None:
        close_db(self.db)

    # -- best block --------------------------------------------------------------------------

    def best_block(self) -> bytes | None:
        return self.db.get(BEST_BLOCK_KEY)

    # -- access ------------------------------------------------------------------------------

    def get(self, key: bytes) -> Coin | None:
        try:
            return self.entries[key]
        except KeyError:
            pass
        raw = self.db.get(COIN_PREFIX + key)
        if raw is None:
            return None
        coin = decode_coin(raw)
        self._set(key, coin)
        return coin

    def _set(self, key: bytes, coin: Coin | None) -> None:
        """Store an entry, keeping the script byte count exact (it sizes the cache)."""
        old = self.entries.get(key)
        if old is not None:
            self._script_bytes -= len(old.script_pubkey)
        if coin is not None:
            self._script_bytes += len(coin.script_pubkey)
        self.entries[key] = coin

    def add(self, key: bytes, coin: Coin, fresh: bool) -> None:
        """Add an unspent coin. `fresh`: the caller knows the database cannot hold this key
        (BIP30 was checked, or it is not a coinbase output), so spending it before the next
        flush needs no database delete."""
        known = key in self.entries  # a pending spend (None) still exists in the database
        self._set(key, coin)
        self.dirty.add(key)
        if fresh and not known:
            self.fresh.add(key)

    def spend(self, key: bytes) -> None:
        if key in self.fresh:
            self.fresh.discard(key)
            self.dirty.discard(key)
            self._set(key, None)
            del self.entries[key]
        else:
            self._set(key, None)
            self.dirty.add(key)

    def apply(self, changes: dict[bytes, Coin | None], fresh_ok: bool) -> None:
        """A connected block's changes (None: spent), as spend() and add() one by one (add's
        `fresh` for a coin: fresh_ok, or not a coinbase output), in one loop with no call
        per coin: they are most of the work between two blocks, while the script workers
        wait for the next block's checks."""
        entries, dirty, fresh = self.entries, self.dirty, self.fresh
        script_bytes = self._script_bytes
        for key, coin in changes.items():
            known = key in entries
            if known:
                old = entries[key]
                if old is not None:
                    script_bytes -= len(old.script_pubkey)
            if coin is None:
                if key in fresh:  # never written: forget it
                    fresh.discard(key)
                    dirty.discard(key)
                    entries.pop(key, None)
                else:
                    entries[key] = None
                    dirty.add(key)
            else:
                script_bytes += len(coin.script_pubkey)
                entries[key] = coin
                dirty.add(key)
                if not known and (fresh_ok or not coin.coinbase):
                    fresh.add(key)
        self._script_bytes = script_bytes

    # -- flushing ----------------------------------------------------------------------------

    def memory_usage(self) -> int:
        return len(self.entries) * ENTRY_OVERHEAD + self._script_bytes

    def needs_flush(self) -> bool:
        return self.memory_usage() > self.cache_bytes

    def flush(self, best_block: bytes, evict: bool) -> int:
        """Write all dirty coins and the best block atomically (synced). Returns coins written.

        With `evict` the cache is emptied afterwards; otherwise clean entries stay cached.
        """
        n = 0
        spent = []  # (spends are always dirty: no need to look through the whole cache)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key in self.dirty:
                coin = self.entries.get(key)
                if coin is None:
                    batch.delete(COIN_PREFIX + key)
                    spent.append(key)
                else:
                    batch.put(COIN_PREFIX + key, encode_coin(coin))
                n += 1
            batch.put(BEST_BLOCK_KEY, best_block)
        self.dirty.clear()
        self.fresh.clear()
        if evict:
            self.entries.clear()
            self._script_bytes = 0
        else:
            for key in spent:
                self.entries.pop(key, None)
        return n

    def wipe(self) -> None:
        """Delete the whole UTXO set (for -reindex and -reindex-chainstate)."""
        self.entries.clear()
        self.dirty.clear()
        self.fresh.clear()
        self._script_bytes = 0
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for key in self.db.iterator(include_value=False):
                batch.delete(key)

    # -- iteration (gettxoutsetinfo, scantxoutset) -------------------------------------------

    def snapshot(self):
        """A consistent read-only view of the flushed UTXO set: scans of it can run without
        holding the chain lock while blocks keep connecting."""
        assert not self.dirty, "flush before taking a snapshot of the UTXO set"
        return self.db.snapshot()

    def iter_coins(self, snapshot=None) -> Iterator[tuple[bytes, int, Coin]]:
        """All unspent coins in outpoint order, as (txid, n, coin), from a snapshot (or the
        database, which must then be flushed)."""
        source = snapshot if snapshot is not None else self.db
        if snapshot is None:
            assert not self.dirty, "flush before iterating the UTXO set"
        for key, raw in source.iterator(prefix=COIN_PREFIX):
            txid, n = split_outpoint_key(key[1:])
            yield txid, n, decode_coin(raw)


class UTXOStats:
    __slots__ = ("digest", "muhash", "count", "total", "transactions", "bogosize", "disk_size")


def utxo_stats(cache: CoinsCache, muhash: bool = False, snapshot=None) -> UTXOStats:
    """Core's gettxoutsetinfo figures over the UTXO set (a snapshot of it, if given):
    hash_serialized_3, the double SHA-256 of every coin's TxOutSer in outpoint order (checked
    against Core's value in feature_utxo_set_hash), and if asked MuHash3072 of the same
    serializations."""
    h = hashlib.sha256()
    st = UTXOStats()
    st.count = st.total = st.transactions = st.bogosize = 0
    st.muhash = None
    last_txid = None
    acc = MuHash3072() if muhash else None

    def serialized():
        nonlocal last_txid
        for txid, n, coin in cache.iter_coins(snapshot):
            ser = txout_ser(txid, n, coin)
            h.update(ser)
            st.count += 1
            st.total += coin.value
            st.bogosize += 50 + len(coin.script_pubkey)  # Core's GetBogoSize
            if txid != last_txid:
                st.transactions += 1
                last_txid = txid
            yield ser

    if acc is not None:
        acc.insert_many(serialized())
        st.muhash = acc.finalize()
    else:
        for _ in serialized():
            pass
    st.digest = hashlib.sha256(h.digest()).digest()
    st.disk_size = sum(p.stat().st_size for p in Path(cache.path).glob("*") if p.is_file())
    return st
