"""The mempool as Esplora sees it: each transaction with the outputs it spends, its fee and
the scripts it touches, brought up to date from the node's mempool when a request reads it
(the mempool itself is not slowed down: its listener only notes the order of arrival)."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict, deque

from consensus.tx import Transaction, TxOut
from node.index.addrindex import is_unspendable, script_hash

VSIZE_BIN_WIDTH = 50_000  # vbytes per fee histogram bin (electrs's)


class MTx:
    __slots__ = ("tx", "fee", "vsize", "prevouts", "scripts", "seq")

    def __init__(self, tx: Transaction, fee: int, prevouts: list[TxOut | None],
                 scripts: set[bytes], seq: int) -> None:
        self.tx = tx
        self.fee = fee
        self.vsize = tx.vsize
        self.prevouts = prevouts
        self.scripts = scripts
        self.seq = seq


class MempoolView:
    """Kept up to date from the mempool's add/remove events, applied when a request reads the
    view: the chain's lock is held for the transactions that changed, not for a pass over the
    whole mempool (a full pass only at the start, or after many events nobody read)."""

    def __init__(self, chain, mempool) -> None:
        self.chain = chain
        self.mempool = mempool
        self.txs: dict[bytes, MTx] = {}
        self.by_script: dict[bytes, set[bytes]] = defaultdict(set)
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._arrival: dict[bytes, int] = {}  # txid -> order of arrival (mempool listener)
        self._events: deque[tuple[bool, bytes]] = deque()  # (added?, txid), oldest first
        self._full = True  # a full pass is due
        self._version = -1
        mempool.on_added.append(self._added)
        mempool.on_removed.append(self._removed)

    # (the listeners run in the mempool's thread with the chain's lock held: only note)

    def _added(self, tx) -> None:
        self._arrival[tx.txid] = next(self._counter)
        self._events.append((True, tx.txid))
        self._check_backlog()

    def _removed(self, tx, why: str) -> None:
        self._events.append((False, tx.txid))
        self._check_backlog()

    def _check_backlog(self) -> None:
        if len(self._events) > 2 * len(self.mempool.entries) + 10_000:  # nobody asked lately
            self._full = True
            self._events.clear()
            entries = self.mempool.entries
            for t in [t for t in list(self._arrival) if t not in entries]:
                self._arrival.pop(t, None)

    def close(self) -> None:
        for lst, fn in ((self.mempool.on_added, self._added),
                        (self.mempool.on_removed, self._removed)):
            try:
                lst.remove(fn)
            except ValueError:
                pass

    def refresh(self) -> None:
        """Bring the view up to date with the mempool."""
        mempool = self.mempool
        with self._lock, self.chain.lock:
            if mempool.transactions_updated == self._version and not self._full:
                return
            entries = mempool.entries
            events = self._events
            while events and not self._full:
                added, txid = events.popleft()
                if added:
                    e = entries.get(txid)
                    if e is not None and txid not in self.txs:
                        self._add(txid, e)
                elif txid not in entries:
                    self._arrival.pop(txid, None)
                    if txid in self.txs:
                        self._drop(txid)
            if self._full or len(self.txs) != len(entries):
                events.clear()
                for txid in [t for t in self.txs if t not in entries]:
                    self._drop(txid)
                for txid, e in entries.items():
                    if txid not in self.txs:
                        self._add(txid, e)
                for t in [t for t in list(self._arrival) if t not in entries]:
                    del self._arrival[t]
                self._full = False
            self._version = mempool.transactions_updated

    def _add(self, txid: bytes, e) -> None:
        tx = e.tx
        prevouts: list[TxOut | None] = []
        scripts = set()
        for txin in tx.vin:
            p = txin.prevout
            out = self.mempool.get_output(p.hash, p.n)
            if out is None:
                coin = self.chain.get_coin(p.hash, p.n)
                out = TxOut(coin.value, coin.script_pubkey) if coin is not None else None
            prevouts.append(out)
            if out is not None:
                scripts.add(script_hash(out.script_pubkey))
        for o in tx.vout:
            if not is_unspendable(o.script_pubkey):
                scripts.add(script_hash(o.script_pubkey))
        seq = self._arrival.get(txid)
        if seq is None:
            seq = self._arrival[txid] = next(self._counter)
        self.txs[txid] = MTx(tx, e.fee, prevouts, scripts, seq)
        for sh in scripts:
            self.by_script[sh].add(txid)

    def _drop(self, txid: bytes) -> None:
        m = self.txs.pop(txid)
        for sh in m.scripts:
            s = self.by_script.get(sh)
            if s is not None:
                s.discard(txid)
                if not s:
                    del self.by_script[sh]

    # -- readers (call refresh() first) ---------------------------------------------------------

    def get(self, txid: bytes) -> MTx | None:
        with self._lock:
            return self.txs.get(txid)

    def history(self, sh: bytes, limit: int) -> list[MTx]:
        """The script's mempool transactions, newest first."""
        with self._lock:
            found = [self.txs[t] for t in self.by_script.get(sh, ())]
        found.sort(key=lambda m: m.seq, reverse=True)
        return found[:limit]

    def stats(self, sh: bytes) -> dict:
        with self._lock:
            found = [self.txs[t] for t in self.by_script.get(sh, ())]
        funded = funded_sum = spent = spent_sum = 0
        for m in found:
            for o in m.tx.vout:
                if not is_unspendable(o.script_pubkey) and script_hash(o.script_pubkey) == sh:
                    funded += 1
                    funded_sum += o.value
            for p in m.prevouts:
                if p is not None and script_hash(p.script_pubkey) == sh:
                    spent += 1
                    spent_sum += p.value
        return stats_json(len(found), funded, funded_sum, spent, spent_sum)

    def utxos(self, sh: bytes) -> list[tuple[bytes, int, int]]:
        """(txid, output index, value) of the script's outputs made by mempool transactions."""
        with self._lock:
            found = [self.txs[t] for t in self.by_script.get(sh, ())]
        out = []
        for m in sorted(found, key=lambda m: m.seq):
            for n, o in enumerate(m.tx.vout):
                if not is_unspendable(o.script_pubkey) and script_hash(o.script_pubkey) == sh:
                    out.append((m.tx.txid, n, o.value))
        return out

    def txids(self) -> list[bytes]:
        with self._lock:
            return list(self.txs)

    def recent(self, limit: int = 10) -> list[MTx]:
        with self._lock:
            found = list(self.txs.values())
        found.sort(key=lambda m: m.seq, reverse=True)
        return found[:limit]

    def backlog(self) -> dict:
        with self._lock:
            found = list(self.txs.values())
        rates = sorted(((m.fee / m.vsize, m.vsize) for m in found), reverse=True)
        histogram = []
        bin_size = 0
        last = 0.0
        for rate, vsize in rates:
            if bin_size > VSIZE_BIN_WIDTH and last != rate:
                histogram.append([last, bin_size])
                bin_size = 0
            last = rate
            bin_size += vsize
        if bin_size > 0:
            histogram.append([last, bin_size])
        return {"count": len(found), "vsize": sum(m.vsize for m in found),
                "total_fee": sum(m.fee for m in found), "fee_histogram": histogram}


def stats_json(tx_count: int, funded: int, funded_sum: int, spent: int, spent_sum: int) -> dict:
    return {"funded_txo_count": funded, "funded_txo_sum": funded_sum, "spent_txo_count": spent,
            "spent_txo_sum": spent_sum, "tx_count": tx_count}
