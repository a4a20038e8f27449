"""The address (script hash) index behind the Esplora API (minibtc's own; -esplora turns it
on): for every script, the confirmed transactions that paid to or spent from it, ordered by
height and position in the block, its unspent outputs and its funded/spent totals; for every
confirmed transaction where it is; for every spent output who spent it.

A script hash is Esplora's: sha256(scriptPubKey), in natural byte order. Outputs that can never
be spent (a script starting with OP_RETURN or another op that always fails) are not indexed,
as Esplora's electrs leaves them out; the genesis block is not indexed (its output cannot be
spent).

Keys (indexes/addrindex/db; integers big-endian, so that keys sort by height and position):
    b"h" + script hash (32) + height (u32) + position in block (u32) -> txid (32)
    b"t" + txid (32) -> height (u32), position (u32), offset in the block (u32), size (u32)
    b"u" + script hash (32) + txid (32) + output index (u32) -> height (u32), value (u64)
    b"s" + spent txid (32) + output index (u32) -> spending txid (32), input index (u32),
                                                    height (u32)
    b"a" + script hash (32) -> tx_count, funded_txo_count, funded_txo_sum, spent_txo_count,
                               spent_txo_sum (u64 each)
    b"B" -> best block locator (node/index/base.py)
Every block is written (and rewound, from its undo data) in one batch with the best block, so
after a reorg, a restart or a kill the index holds exactly the rows of the chain it says.
"""

from __future__ import annotations

import hashlib
import struct

from node.index.base import BEST_BLOCK_KEY, BaseIndex, decode_locator

HISTORY = b"h"
TXPOS = b"t"
UTXO = b"u"
SPEND = b"s"
STATS = b"a"

_U32 = struct.Struct(">I")
_TXPOS = struct.Struct(">IIII")
_UTXO = struct.Struct(">IQ")
_SPEND = struct.Struct(">32sII")
_STATS = struct.Struct(">QQQQQ")
ZERO_STATS = (0, 0, 0, 0, 0)

# First opcodes that make a script fail whatever follows (rust-bitcoin's classify in legacy
# context: return ops and illegal ops), so its outputs can never be spent.
_UNSPENDABLE_FIRST = frozenset(
    [0x50, 0x62, 0x65, 0x66, 0x6a, 0x89, 0x8a, 0x7e, 0x7f, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86,
     0x8d, 0x8e, 0x95, 0x96, 0x97, 0x98] + list(range(0xba, 0x100)))


def script_hash(script: bytes) -> bytes:
    return hashlib.sha256(script).digest()


def is_unspendable(script: bytes) -> bool:
    return bool(script) and script[0] in _UNSPENDABLE_FIRST


class AddrIndex(BaseIndex):
    name = "addrindex"
    thread_name = "addridx"
    needs_undo = True

    # -- writing (the index's thread) ---------------------------------------------------------

    def _effects(self, block, e, undo):
        """What block e does to the index: (tx rows, history rows, created utxos, spent
        outpoints with their coins, stats deltas)."""
        height = e.height
        offsets = block.tx_offsets()
        txrows = []
        history = []
        created: dict[bytes, tuple[int, int]] = {}  # utxo key -> (height, value)
        spent = []  # (utxo key, spend key, spend value, coin height)
        stats: dict[bytes, list[int]] = {}
        for i, tx in enumerate(block.txs):
            txid = tx.txid
            txrows.append((txid, _TXPOS.pack(height, i, offsets[i], offsets[i + 1] - offsets[i])))
            touched = set()
            if i > 0:
                for j, (txin, coin) in enumerate(zip(tx.vin, undo[i - 1])):
                    sh = script_hash(coin.script_pubkey)
                    p = txin.prevout
                    n = _U32.pack(p.n)
                    ukey = UTXO + sh + p.hash + n
                    if created.pop(ukey, None) is None:
                        spent.append((ukey, SPEND + p.hash + n, _SPEND.pack(txid, j, height),
                                      coin.height, coin.value))
                    else:
                        spent.append((None, SPEND + p.hash + n, _SPEND.pack(txid, j, height),
                                      coin.height, coin.value))
                    st = stats.get(sh)
                    if st is None:
                        st = stats[sh] = [0, 0, 0, 0, 0]
                    st[3] += 1
                    st[4] += coin.value
                    touched.add(sh)
            for n, out in enumerate(tx.vout):
                script = out.script_pubkey
                if is_unspendable(script):
                    continue
                sh = script_hash(script)
                created[UTXO + sh + txid + _U32.pack(n)] = (height, out.value)
                st = stats.get(sh)
                if st is None:
                    st = stats[sh] = [0, 0, 0, 0, 0]
                st[1] += 1
                st[2] += out.value
                touched.add(sh)
            pos = _U32.pack(i)
            hp = _U32.pack(height)
            for sh in touched:
                history.append((HISTORY + sh + hp + pos, txid))
                stats[sh][0] += 1
        return txrows, history, created, spent, stats

    def _apply_stats(self, batch, stats: dict, sign: int) -> None:
        get = self.db.get
        for sh, delta in stats.items():
            raw = get(STATS + sh)
            cur = _STATS.unpack(raw) if raw is not None else ZERO_STATS
            new = tuple(c + sign * d for c, d in zip(cur, delta))
            if any(new):
                batch.put(STATS + sh, _STATS.pack(*new))
            else:
                batch.delete(STATS + sh)

    def append(self, batch, block, e, undo) -> None:
        if e.prev is None:
            return
        txrows, history, created, spent, stats = self._effects(block, e, undo)
        put = batch.put
        for txid, value in txrows:
            put(TXPOS + txid, value)
        for key, txid in history:
            put(key, txid)
        for ukey, skey, svalue, _h, _v in spent:
            if ukey is not None:
                batch.delete(ukey)
            put(skey, svalue)
        for ukey, (h, v) in created.items():
            put(ukey, _UTXO.pack(h, v))
        self._apply_stats(batch, stats, 1)

    def rewind(self, batch, e) -> None:
        if e.prev is None:
            return
        block = self.chain.read_block(e)
        undo = self.chain.read_undo(e)
        txrows, history, created, spent, stats = self._effects(block, e, undo)
        delete = batch.delete
        for txid, _ in txrows:
            delete(TXPOS + txid)
        for key, _ in history:
            delete(key)
        for ukey in created:
            delete(ukey)
        for ukey, skey, _sv, coin_height, value in spent:
            delete(skey)
            if ukey is not None:  # an output of an earlier block: unspent again
                batch.put(ukey, _UTXO.pack(coin_height, value))
        self._apply_stats(batch, stats, -1)

    # -- reading (any thread) -------------------------------------------------------------------

    def view(self) -> AddrView:
        """A consistent read view: a snapshot of the database and the block it is at."""
        self.block_until_synced()
        return AddrView(self)


class AddrView:
    """One snapshot of the address index, with the chain entry of its best block (heights in
    its rows are heights on that block's chain)."""

    def __init__(self, index: AddrIndex) -> None:
        self.snap = index.db.snapshot()
        raw = self.snap.get(BEST_BLOCK_KEY)
        self.best = None
        if raw is not None:
            loc = decode_locator(raw)
            if loc:
                self.best = index.chain.get(loc[0])

    def close(self) -> None:
        self.snap.close()

    def __enter__(self) -> AddrView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def block_at(self, height: int):
        """The index entry of the block at `height` of the view's chain (None above it)."""
        best = self.best
        if best is None or height > best.height:
            return None
        return best.ancestor(height)

    def stats(self, sh: bytes) -> tuple[int, int, int, int, int]:
        raw = self.snap.get(STATS + sh)
        return _STATS.unpack(raw) if raw is not None else ZERO_STATS

    def tx_position(self, txid: bytes) -> tuple[int, int, int, int] | None:
        """(height, position, offset in the block, size) of a confirmed transaction."""
        raw = self.snap.get(TXPOS + txid)
        return _TXPOS.unpack(raw) if raw is not None else None

    def history(self, sh: bytes, limit: int, before: tuple[int, int] | None = None
                ) -> list[tuple[int, int, bytes]]:
        """Up to `limit` (height, position, txid) of the script's confirmed transactions,
        newest first, older than `before` (a (height, position)) if given."""
        prefix = HISTORY + sh
        stop = prefix + _U32.pack(before[0]) + _U32.pack(before[1]) if before else None
        out = []
        it = self.snap.iterator(prefix=prefix, reverse=True) if stop is None else \
            self.snap.iterator(start=prefix, stop=stop, reverse=True)
        with it:
            for key, txid in it:
                out.append((_U32.unpack_from(key, 33)[0], _U32.unpack_from(key, 37)[0], txid))
                if len(out) >= limit:
                    break
        return out

    def has_history_row(self, sh: bytes, height: int, pos: int) -> bool:
        return self.snap.get(HISTORY + sh + _U32.pack(height) + _U32.pack(pos)) is not None

    def utxos(self, sh: bytes) -> list[tuple[bytes, int, int, int]]:
        """(txid, output index, height, value) of the script's unspent confirmed outputs."""
        out = []
        for key, value in self.snap.iterator(prefix=UTXO + sh):
            h, v = _UTXO.unpack(value)
            out.append((key[33:65], _U32.unpack_from(key, 65)[0], h, v))
        return out

    def spender(self, txid: bytes, n: int) -> tuple[bytes, int, int] | None:
        """(spending txid, input index, height) of a confirmed spend of the output."""
        raw = self.snap.get(SPEND + txid + _U32.pack(n))
        return _SPEND.unpack(raw) if raw is not None else None
