"""Inventory relay (gossip): transactions announced by wtxid (or txid to peers that did not
ask for wtxidrelay) in trickled batches, never twice to the same peer and never below the
peer's feefilter; requests for what peers announce; orphans' missing parents asked for;
getdata served from the block files and the mempool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque

from consensus.serialize import DeserializationError
from consensus.tx import Transaction
from node.mempool import MempoolReject
from node.p2p import messages as m
from node.p2p.peer import KnownSet, Peer

log = logging.getLogger("net")

INVENTORY_BROADCAST_MAX = 1000  # per inv message we trickle
MAX_PEER_TX_ANNOUNCEMENTS = 5000  # unrequested announcements remembered per peer
FEE_FILTER_REFRESH = 30.0  # seconds between checks of the fee filter we announced
GETDATA_TX_INTERVAL = 60.0  # before asking another announcer for a transaction
MAX_GETDATA_IN_FLIGHT = 100  # transactions requested from one peer at a time
MAX_TX_QUEUE = 5000  # received transactions waiting for validation before peers must wait
TX_MSG_TYPES = (m.MSG_TX, m.MSG_WTX, m.MSG_WITNESS_TX)
BLOCK_MSG_TYPES = (m.MSG_BLOCK, m.MSG_WITNESS_BLOCK)


class Relay:
    def __init__(self, net) -> None:
        self.net = net
        self.chain = net.chain
        self.mempool = net.mempool
        # Accepted transactions handed over from the accepting thread: (txid, wtxid, sat/kvB)
        self._accepted: deque[tuple[bytes, bytes, int]] = deque()
        self._accepted_lock = threading.Lock()
        self._accepted_scheduled = False
        self.recent_rejects = KnownSet(50_000)  # wtxids and txids refused (reset per tip)
        self.recent_confirmed = KnownSet(50_000)
        self.requested: dict[bytes, tuple[Peer, float]] = {}  # tx hash -> (asked peer, when)
        self._fee_filter_sent: dict[int, int] = {}
        self._last_fee_filter = 0.0
        self._tx_queue: list[tuple[Peer, bytes]] = []  # received, for the next batch
        self._tx_job: asyncio.Future | None = None

    # -- events from the mempool (any thread) ---------------------------------------------

    def subscribe(self) -> None:
        self.mempool.on_added.append(self._accepted_threadsafe)
        self.chain.on_connected.append(self._confirmed)

    def _confirmed(self, block, entry) -> None:
        """Under the chain lock: remember confirmed transactions, so announcements of them
        are not requested (Core's m_recent_confirmed_transactions)."""
        seen = self.recent_confirmed
        for tx in block.txs:
            seen.add(tx.wtxid)
            seen.add(tx.txid)

    def _accepted_threadsafe(self, tx: Transaction) -> None:
        """Called under the chain lock by whichever thread accepted tx."""
        if not self.net.connman.peers:
            return
        e = self.mempool.entries.get(tx.txid)
        rate = e.modified_fee * 1000 // e.vsize if e is not None and e.vsize else 0
        with self._accepted_lock:
            self._accepted.append((tx.txid, tx.wtxid, rate))
            if self._accepted_scheduled:
                return
            self._accepted_scheduled = True
        self.net.loop.call_soon_threadsafe(self._queue_accepted)

    def _queue_accepted(self) -> None:
        with self._accepted_lock:
            batch = list(self._accepted)
            self._accepted.clear()
            self._accepted_scheduled = False
        peers = [p for p in self.net.peers() if p.relay_txs]
        for txid, wtxid, rate in batch:
            self.requested.pop(wtxid, None)
            self.requested.pop(txid, None)
            for p in peers:
                if rate >= p.fee_filter:
                    p.tx_to_announce[wtxid] = None  # (sent as txid to non-wtxid peers)

    def tip_changed(self, tip) -> None:
        self.recent_rejects.clear()  # a new block may make them valid (Core does the same)

    # -- trickling announcements ------------------------------------------------------------

    def tick(self, now: float) -> None:
        timing = self.net.timing
        for peer in self.net.peers():
            if not peer.tx_to_announce or now < peer.next_inv_send:
                continue
            mean = timing.tx_inv_inbound if peer.inbound else timing.tx_inv_outbound
            peer.next_inv_send = now + random.expovariate(1 / mean)
            self._flush(peer)

    def _flush(self, peer: Peer) -> None:
        by_wtxid = self.mempool.by_wtxid
        items: list[m.Inv] = []
        while peer.tx_to_announce and len(items) < INVENTORY_BROADCAST_MAX:
            wtxid, _ = peer.tx_to_announce.popitem(last=False)
            e = by_wtxid.get(wtxid)
            if e is None:
                continue  # confirmed, replaced or evicted meanwhile
            h = wtxid if peer.wtxid_relay else e.txid
            if h in peer.known_inv:
                continue
            peer.known_inv.add(h)
            items.append(m.Inv(m.MSG_WTX if peer.wtxid_relay else m.MSG_TX, h))
        if items:
            peer.send(m.InvMsg(items))

    def send_fee_filter(self, peer: Peer) -> None:
        rate = max(self.mempool.min_fee_rate(), self.mempool.min_relay_fee)
        if self._fee_filter_sent.get(peer.id) != rate:
            self._fee_filter_sent[peer.id] = rate
            peer.send(m.FeeFilter(rate))

    def tick_slow(self, now: float) -> None:
        """Once a second: re-ask for transactions whose request timed out; refresh the fee
        filters we gave peers when the mempool's minimum fee moves."""
        expired = [h for h, (_, at) in self.requested.items() if now - at > GETDATA_TX_INTERVAL]
        for h in expired:
            del self.requested[h]
        if expired:
            self._request_announced()
        if now - self._last_fee_filter >= FEE_FILTER_REFRESH:
            self._last_fee_filter = now
            for peer in self.net.peers():
                if peer.relay_txs and peer.version.version >= m.FEEFILTER_VERSION:
                    self.send_fee_filter(peer)

    # -- inv / getdata / notfound -----------------------------------------------------------

    def _have_tx(self, h: bytes) -> bool:
        mp = self.mempool
        return (h in mp.by_wtxid or h in mp.entries or h in mp.orphans
                or h in self.recent_rejects or h in self.recent_confirmed)

    async def on_inv(self, peer: Peer, msg: m.InvMsg) -> None:
        block_hashes = []
        for item in msg.items:
            t = item.type
            if t in (m.MSG_TX, m.MSG_WTX):
                # A wtxidrelay peer announces by wtxid only (Core ignores its MSG_TX).
                if (t == m.MSG_WTX) != peer.wtxid_relay:
                    continue
                peer.known_inv.add(item.hash)
                if not self._have_tx(item.hash) and \
                        len(peer.tx_announced_to_us) < MAX_PEER_TX_ANNOUNCEMENTS:
                    peer.tx_announced_to_us.setdefault(item.hash, time.monotonic())
            elif t == m.MSG_BLOCK:
                block_hashes.append(item.hash)
        self._request_announced()
        sync = self.net.sync
        for h in block_hashes:
            peer.known_blocks.add(h)
            e = self.chain.get(h)
            if e is not None:
                sync.update_best_known(peer, e)
            else:
                # Unknown block: get the headers leading to it (Core asks with the last
                # block's hash as the stop).
                sync.send_getheaders(peer, self.chain.best_header, h)
        if block_hashes:
            sync.schedule()

    def _request_announced(self) -> None:
        """Ask for announced transactions nobody is being asked for, from the first peer
        that announced each."""
        now = time.monotonic()
        for peer in self.net.peers():
            if not peer.tx_announced_to_us:
                continue
            asked = [h for h, (p, _) in self.requested.items() if p is peer]
            room = MAX_GETDATA_IN_FLIGHT - len(asked)
            want: list[m.Inv] = []
            for h in list(peer.tx_announced_to_us):
                if room <= 0:
                    break
                if self._have_tx(h):
                    del peer.tx_announced_to_us[h]
                    continue
                if h in self.requested:
                    continue  # someone else is being asked; retried after a timeout
                del peer.tx_announced_to_us[h]
                self.requested[h] = (peer, now)
                want.append(m.Inv(m.MSG_WTX if peer.wtxid_relay else m.MSG_WITNESS_TX, h))
                room -= 1
            if want:
                peer.send(m.GetData(want))

    async def on_getdata(self, peer: Peer, msg: m.GetData) -> None:
        not_found: list[m.Inv] = []
        loop = self.net.loop
        for item in msg.items:
            if peer.closed:
                return
            t = item.type
            if t in TX_MSG_TYPES:
                mp = self.mempool
                e = mp.by_wtxid.get(item.hash) if t == m.MSG_WTX else mp.entries.get(item.hash)
                if e is None:
                    not_found.append(item)
                    continue
                peer.send_raw("tx", e.tx.serialize(witness=t != m.MSG_TX))
            elif t in BLOCK_MSG_TYPES:
                e = self.chain.get(item.hash)
                if e is None or not e.have_data or e.failed:
                    not_found.append(item)
                    continue
                try:
                    raw = await loop.run_in_executor(None, _block_bytes, self.chain, e,
                                                     t == m.MSG_WITNESS_BLOCK)
                except Exception as err:  # unreadable block file: the operator must look
                    log.error("cannot serve block %s: %s", e.hash_hex(), err)
                    not_found.append(item)
                    continue
                peer.send_raw("block", raw)
                await peer.drain()
            else:
                not_found.append(item)  # (filtered and compact blocks are not served)
        if not_found:
            peer.send(m.NotFound(not_found))

    async def on_notfound(self, peer: Peer, msg: m.NotFound) -> None:
        blocks = []
        for item in msg.items:
            if item.type in TX_MSG_TYPES or item.type == m.MSG_WTX:
                r = self.requested.get(item.hash)
                if r is not None and r[0] is peer:
                    del self.requested[item.hash]
            elif item.type in BLOCK_MSG_TYPES:
                blocks.append(item.hash)
        if blocks:
            self.net.sync.on_notfound_blocks(peer, blocks)
        self._request_announced()

    # -- transactions in --------------------------------------------------------------------

    async def on_tx(self, peer: Peer, msg: m.RawPayload) -> None:
        """Queue the transaction for the next batch on the validation thread; a batch of
        several has its scripts checked on the mempool's worker processes."""
        self._tx_queue.append((peer, msg.data))
        if self._tx_job is None:
            self._start_tx_batch()
        elif len(self._tx_queue) >= MAX_TX_QUEUE:
            await asyncio.shield(self._tx_job)  # backpressure: stop reading until it is done

    def _start_tx_batch(self) -> None:
        batch, self._tx_queue = self._tx_queue, []
        job = self.net.validate(self._accept_batch, [raw for _, raw in batch])
        job.add_done_callback(lambda f: self._tx_batch_done(batch, f))
        self._tx_job = job

    def _tx_batch_done(self, batch: list[tuple[Peer, bytes]], job) -> None:
        self._tx_job = None
        if job.cancelled():
            return
        if job.exception() is not None:
            log.error("transaction batch failed: %r", job.exception())
        else:
            for (peer, _), result in zip(batch, job.result()):
                if not peer.closed:
                    self._tx_result(peer, *result)
            self._request_announced()
        if self._tx_queue:
            self._start_tx_batch()

    def _tx_result(self, peer: Peer, tx: Transaction | None, status: str, detail) -> None:
        if tx is None:
            peer.close(f"malformed tx: {detail}")
            return
        for h in (tx.wtxid, tx.txid):
            peer.known_inv.add(h)
            r = self.requested.get(h)
            if r is not None and r[0] is peer:
                del self.requested[h]
        if status == "accepted":
            peer.last_tx_time = int(time.time())
        elif status == "orphan":
            # Ask the sender for the parents we lack (by txid: that is all we know).
            want = [m.Inv(m.MSG_WITNESS_TX, p) for p in detail
                    if p not in self.requested and not self._have_tx(p)]
            now = time.monotonic()
            for inv in want:
                self.requested[inv.hash] = (peer, now)
            if want:
                peer.send(m.GetData(want))
        elif status == "rejected":
            err: MempoolReject = detail
            self.recent_rejects.add(tx.wtxid)
            if not tx.has_witness():
                self.recent_rejects.add(tx.txid)
            if err.consensus:
                self.net.misbehaving(peer, 100, f"invalid transaction {tx.txid_hex()}: {err}")
            else:
                log.debug("transaction %s from peer=%d not accepted: %s", tx.txid_hex(),
                          peer.id, err)

    def _accept_batch(self, raws: list[bytes]) -> list[tuple]:
        """Validation thread: (tx or None, "accepted" | "known" | "orphan" | "rejected" |
        "malformed", detail) for each transaction, in order."""
        mp = self.mempool
        results: list[tuple | None] = [None] * len(raws)
        txs: list[tuple[int, Transaction]] = []
        for i, raw in enumerate(raws):
            try:
                txs.append((i, Transaction.from_bytes(raw)))
            except DeserializationError as err:
                results[i] = (None, "malformed", err)
        stream = mp.start_background_checks() if len(txs) > 1 else None
        try:
            if stream is not None:
                mp.check_in_background(stream, [tx for _, tx in txs])
                log.debug("checking the scripts of %d relayed transactions on the worker "
                          "processes", len(txs))
            for i, tx in txs:
                results[i] = (tx, *self._accept(tx))
        finally:
            if stream is not None:
                mp.end_background_checks(stream)
        return results  # type: ignore[return-value]

    def _accept(self, tx: Transaction) -> tuple[str, object]:
        mp = self.mempool
        if tx.wtxid in mp.by_wtxid or tx.txid in mp.entries:
            return "known", None
        try:
            mp.accept(tx)
            return "accepted", None
        except MempoolReject as err:
            if err.missing_inputs:
                parents = mp.missing_parents(tx)
                mp.add_orphan(tx)
                return "orphan", parents
            if err.already_known:
                return "known", None
            return "rejected", err

    def peer_gone(self, peer: Peer) -> None:
        self._fee_filter_sent.pop(peer.id, None)
        for h in [h for h, (p, _) in self.requested.items() if p is peer]:
            del self.requested[h]
        if self.net.loop is not None and not self.net.loop.is_closed():
            self.net.loop.call_soon(self._request_announced)


def _block_bytes(chain, e, witness: bool) -> bytes:
    raw = chain.read_raw_block(e)
    if witness:
        return raw
    from consensus.block import Block

    return Block.from_bytes(raw).serialize(witness=False)
