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
from collections import OrderedDict, deque

from consensus.serialize import DeserializationError
from consensus.tx import Transaction
from node import clock
from node.mempool import MempoolReject
from node.p2p import messages as m
from node.p2p.peer import KnownSet, Peer

log = logging.getLogger("net")

INVENTORY_BROADCAST_MAX = 1000  # entries per inv message we trickle
MAX_PEER_TX_ANNOUNCEMENTS = 5000  # unrequested announcements remembered per peer
FEE_FILTER_REFRESH = 30.0  # seconds between checks of the fee filter we announced
GETDATA_TX_INTERVAL = 60.0  # before asking another announcer for a transaction
MAX_GETDATA_IN_FLIGHT = 100  # transactions requested from one peer at a time
MAX_TX_QUEUE_BYTES = 32 * 1024 * 1024  # received, waiting for validation: then peers wait
MAX_TX_SIZE = 400_000  # bytes: a transaction over the standard weight is not even parsed
IBD_HEADERS_AHEAD = 24  # blocks behind our best header: catching up, relay is ignored
TX_MSG_TYPES = (m.MSG_TX, m.MSG_WTX, m.MSG_WITNESS_TX)
# Transactions submitted locally are announced again until a peer asks for one: first after
# 10 to 15 minutes, then every 10 to 15 minutes (Core's ReattemptInitialBroadcast), on the
# node's scheduler so that `mockscheduler` brings it forward.
REBROADCAST_MIN = 10 * 60
REBROADCAST_SPREAD = 5 * 60


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
        # tx hash -> (id of the peer asked, when); each peer also counts its own requests
        self.requested: dict[bytes, tuple[int, float]] = {}
        self._fee_filter_sent: dict[int, int] = {}
        self.fee_filter_rate = self.mempool.min_relay_fee  # refreshed on the validation thread
        self._last_fee_filter = 0.0
        self._tx_queue: list[tuple[Peer, bytes]] = []  # received, for the next batch
        self._tx_queue_bytes = 0
        self._tx_job: asyncio.Future | None = None
        # Done once the queued batch has been processed (see txs_processed).
        self._queued_done: asyncio.Future | None = None

    # -- events from the mempool (any thread) ---------------------------------------------

    def subscribe(self) -> None:
        self.mempool.on_added.append(self._accepted_threadsafe)
        self.chain.on_connected.append(self._confirmed)
        self._schedule_rebroadcast()

    def _schedule_rebroadcast(self) -> None:
        sched = getattr(self.net, "scheduler", None)  # the node's (daemon sets it)
        if sched is not None:
            sched.schedule(self._reattempt_initial_broadcast,
                           REBROADCAST_MIN + random.uniform(0, REBROADCAST_SPREAD))

    def _reattempt_initial_broadcast(self) -> None:
        """On the loop: announce the unbroadcast transactions again to every peer that has
        not seen them (those gone from the mempool leave the set)."""
        mp = self.mempool
        again = []
        for txid in list(mp.unbroadcast):
            e = mp.entries.get(txid)
            if e is None:
                mp.unbroadcast.discard(txid)
            else:
                again.append((txid, e.wtxid, self._rate_of(e)))
        if again:
            self._announce(again)
        self._schedule_rebroadcast()

    def announce_threadsafe(self, txids: list[bytes]) -> None:
        """From any thread: announce these mempool transactions to peers that have not
        seen them (sendrawtransaction of a transaction already in the mempool)."""
        def go() -> None:
            items = []
            for t in txids:
                e = self.mempool.entries.get(t)
                if e is not None:
                    items.append((t, e.wtxid, self._rate_of(e)))
            self._announce(items)

        if self.net.loop is not None:
            self.net.loop.call_soon_threadsafe(go)

    @staticmethod
    def _rate_of(e) -> int:
        return e.modified_fee * 1000 // e.vsize if e.vsize else 0

    def _confirmed(self, block, entry) -> None:
        """Under the chain lock: remember confirmed transactions, so announcements of them
        are not requested (Core's m_recent_confirmed_transactions). Not while catching up:
        announcements are ignored then, and this is the hot path of a sync."""
        if self.catching_up():
            return
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
        self._announce(batch)

    def _announce(self, batch: list[tuple[bytes, bytes, int]]) -> None:
        peers = [p for p in self.net.peers() if p.relay_txs]
        for txid, wtxid, rate in batch:
            self._forget_request(wtxid)
            self._forget_request(txid)
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
        """Announce everything queued for the peer (so the queue stays as short as the
        trickle interval), in inv messages of at most INVENTORY_BROADCAST_MAX."""
        by_wtxid = self.mempool.by_wtxid
        items: list[m.Inv] = []
        queued, peer.tx_to_announce = peer.tx_to_announce, OrderedDict()
        for wtxid in queued:
            e = by_wtxid.get(wtxid)
            if e is None:
                continue  # confirmed, replaced or evicted meanwhile
            h = wtxid if peer.wtxid_relay else e.txid
            if h in peer.known_inv:
                continue
            peer.known_inv.add(h)
            items.append(m.Inv(m.MSG_WTX if peer.wtxid_relay else m.MSG_TX, h))
        for i in range(0, len(items), INVENTORY_BROADCAST_MAX):
            peer.send(m.InvMsg(items[i:i + INVENTORY_BROADCAST_MAX]))

    def send_fee_filter(self, peer: Peer) -> None:
        rate = self.fee_filter_rate
        if self._fee_filter_sent.get(peer.id) != rate:
            self._fee_filter_sent[peer.id] = rate
            peer.send(m.FeeFilter(rate))

    def _current_fee_floor(self) -> int:
        """Validation thread: the lowest fee rate our mempool takes now (under the lock:
        reading it updates the decaying rolling minimum)."""
        with self.chain.lock:
            return max(self.mempool.min_fee_rate(), self.mempool.min_relay_fee)

    def _fee_floor_known(self, job) -> None:
        if job.cancelled() or job.exception() is not None:
            return
        self.fee_filter_rate = job.result()
        for peer in self.net.peers():
            if peer.relay_txs and peer.version.version >= m.FEEFILTER_VERSION:
                self.send_fee_filter(peer)

    def tick_slow(self, now: float) -> None:
        """Once a second: re-ask for transactions whose request timed out; refresh the fee
        filters we gave peers when the mempool's minimum fee moves."""
        expired = [h for h, (_, at) in self.requested.items() if now - at > GETDATA_TX_INTERVAL]
        for h in expired:
            self._forget_request(h)
        if expired:
            for peer in self.net.peers():
                self._request_from(peer)
        if now - self._last_fee_filter >= FEE_FILTER_REFRESH:
            self._last_fee_filter = now
            self.net.validate(self._current_fee_floor).add_done_callback(self._fee_floor_known)

    # -- inv / getdata / notfound -----------------------------------------------------------

    def _have_tx(self, h: bytes) -> bool:
        mp = self.mempool
        return (h in mp.by_wtxid or h in mp.entries or mp.has_orphan(h)
                or h in self.recent_rejects or h in self.recent_confirmed)

    def catching_up(self) -> bool:
        """Far behind the best header we know (Core's initial block download): transactions
        are not asked for or taken until the chain has caught up."""
        best, tip = self.chain.best_header, self.chain.published
        return best is not None and tip is not None and best.height > tip.height + \
            IBD_HEADERS_AHEAD

    async def on_inv(self, peer: Peer, msg: m.InvMsg) -> None:
        last_unknown = None
        known_blocks = False
        sync = self.net.sync
        skip_txs = self.catching_up()
        for item in msg.items:
            t = item.type
            if t in (m.MSG_TX, m.MSG_WTX):
                # A wtxidrelay peer announces by wtxid only (Core ignores its MSG_TX).
                if (t == m.MSG_WTX) != peer.wtxid_relay:
                    continue
                peer.known_inv.add(item.hash)
                if t == m.MSG_WTX and self.mempool.add_orphan_announcer(item.hash, peer.id):
                    continue  # an orphan we hold: the peer is one more source for it
                if not skip_txs and not self._have_tx(item.hash) and \
                        len(peer.tx_announced_to_us) < MAX_PEER_TX_ANNOUNCEMENTS:
                    peer.tx_announced_to_us.setdefault(item.hash, time.monotonic())
            elif t == m.MSG_BLOCK:
                peer.known_blocks.add(item.hash)
                e = self.chain.get(item.hash)
                if e is not None:
                    sync.update_best_known(peer, e)
                    known_blocks = True
                else:
                    last_unknown = item.hash
        self._request_from(peer)
        if last_unknown is not None:
            # One request for the headers leading to the last unknown block (Core).
            sync.maybe_send_getheaders(peer, last_unknown)
        if known_blocks:
            sync.schedule()

    def _forget_request(self, h: bytes) -> None:
        r = self.requested.pop(h, None)
        if r is not None:
            peer = self.net.connman.peers.get(r[0])
            if peer is not None:
                peer.tx_requested.pop(h, None)

    def _request_from(self, peer: Peer) -> None:
        """Ask the peer for transactions it announced that nobody is being asked for."""
        if not peer.tx_announced_to_us or peer.closed:
            return
        now = time.monotonic()
        room = MAX_GETDATA_IN_FLIGHT - len(peer.tx_requested)
        want: list[m.Inv] = []
        done: list[bytes] = []
        for h in peer.tx_announced_to_us:
            if room <= 0:
                break
            if self._have_tx(h):
                done.append(h)
            elif h not in self.requested:  # (else someone else is asked; retried later)
                done.append(h)
                self.requested[h] = (peer.id, now)
                peer.tx_requested[h] = now
                want.append(m.Inv(m.MSG_WTX if peer.wtxid_relay else m.MSG_WITNESS_TX, h))
                room -= 1
        for h in done:
            del peer.tx_announced_to_us[h]
        if want:
            peer.send(m.GetData(want))

    async def on_getdata(self, peer: Peer, msg: m.GetData) -> None:
        """Transactions asked for (blocks go to BlockSync.serve_blocks)."""
        not_found: list[m.Inv] = []
        for item in msg.items:
            if peer.closed:
                return
            t = item.type
            mp = self.mempool
            e = mp.by_wtxid.get(item.hash) if t == m.MSG_WTX else mp.entries.get(item.hash)
            if e is None:
                not_found.append(item)
                continue
            # Asked for: it has reached the network (Core's RemoveUnbroadcastTx).
            mp.unbroadcast.discard(e.txid)
            peer.send_raw("tx", e.tx.serialize(witness=t != m.MSG_TX))
            if peer.send_paused:  # (Core's fPauseSend: the rest once the peer reads)
                await peer.wait_send_room()
        if not_found:
            peer.send(m.NotFound(not_found))

    async def on_notfound(self, peer: Peer, msg: m.NotFound) -> None:
        # Transactions only, as Core: a block the peer will not give stays requested from it
        # until the download timeout drops the peer (otherwise it would be asked again and
        # again, being the one known to have it).
        for item in msg.items:
            if item.type in TX_MSG_TYPES:
                r = self.requested.get(item.hash)
                if r is not None and r[0] == peer.id:
                    self._forget_request(item.hash)
        self._request_from(peer)

    # -- transactions in --------------------------------------------------------------------

    async def on_tx(self, peer: Peer, msg: m.RawPayload) -> None:
        """Queue the transaction for the next batch on the validation thread; a batch of
        several has its scripts checked on the mempool's worker processes."""
        raw = msg.data
        if len(raw) > MAX_TX_SIZE or self.catching_up():
            return  # could never be standard / not now: not worth parsing
        self._tx_queue.append((peer, raw))
        self._tx_queue_bytes += len(raw)
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()
        peer.txs_done = self._queued_done
        if self._tx_job is None:
            self._start_tx_batch()
        elif self._tx_queue_bytes >= MAX_TX_QUEUE_BYTES:
            await asyncio.shield(self._tx_job)  # backpressure: stop reading until it is done

    async def txs_processed(self, peer: Peer) -> None:
        """Wait until the transactions this peer sent so far are processed, orphans they
        resolve included, so that what it sends next is answered as Core would after them
        (a pong after the transactions before the ping: Core's rpc_orphans.py relies on it,
        as on blocks, see BlockSync.blocks_processed)."""
        done = getattr(peer, "txs_done", None)
        if done is not None and not done.done():
            await asyncio.wait([done])

    def _start_tx_batch(self) -> None:
        batch, self._tx_queue = self._tx_queue, []
        self._tx_queue_bytes = 0
        done, self._queued_done = self._queued_done, None
        job = self.net.validate(self._accept_batch, [(p.id, raw) for p, raw in batch])
        job.add_done_callback(lambda f: self._tx_batch_done(batch, f, done))
        self._tx_job = job

    def _tx_batch_done(self, batch: list[tuple[Peer, bytes]], job,
                       done: asyncio.Future | None) -> None:
        try:
            self._tx_batch_results(batch, job)
        finally:
            if done is not None and not done.done():
                done.set_result(None)

    def _tx_batch_results(self, batch: list[tuple[Peer, bytes]], job) -> None:
        self._tx_job = None
        if job.cancelled():
            return
        if job.exception() is not None:
            log.error("transaction batch failed: %r", job.exception())
        else:
            touched = {}
            for (peer, _), result in zip(batch, job.result()):
                self._tx_result(peer, *result)  # (closed peers too: rejects, punishment)
                touched[peer.id] = peer
            for peer in touched.values():
                self._request_from(peer)
        if self._tx_queue:
            self._start_tx_batch()

    def _tx_result(self, peer: Peer, tx: Transaction | None, status: str, detail) -> None:
        if tx is None:
            peer.close(f"malformed tx: {detail}")
            return
        for h in (tx.wtxid, tx.txid):
            peer.known_inv.add(h)
            self._forget_request(h)
        if status == "accepted":
            peer.last_tx_time = clock.now_int()
        elif status == "orphan" and not peer.closed:
            self.net.sync.extra_txns.add(tx)  # (for compact blocks: Core's extra txns)
            # Ask the sender for the parents we lack (by txid: that is all we know), within
            # its allowance of requests in flight.
            room = MAX_GETDATA_IN_FLIGHT - len(peer.tx_requested)
            want = [m.Inv(m.MSG_WITNESS_TX, p) for p in detail
                    if p not in self.requested and not self._have_tx(p)][:max(room, 0)]
            now = time.monotonic()
            for inv in want:
                self.requested[inv.hash] = (peer.id, now)
                peer.tx_requested[inv.hash] = now
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
                self.net.sync.extra_txns.add(tx)  # (may still be mined: compact blocks)
                log.debug("transaction %s from peer=%d not accepted: %s", tx.txid_hex(),
                          peer.id, err)

    def _accept_batch(self, raws: list[tuple[int, bytes]]) -> list[tuple]:
        """Validation thread: (tx or None, "accepted" | "known" | "orphan" | "rejected" |
        "malformed", detail) for each (peer id, transaction), in order."""
        mp = self.mempool
        results: list[tuple | None] = [None] * len(raws)
        txs: list[tuple[int, Transaction]] = []
        for i, (_, raw) in enumerate(raws):
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
                results[i] = (tx, *self._accept(tx, raws[i][0]))
        finally:
            if stream is not None:
                mp.end_background_checks(stream)
        return results  # type: ignore[return-value]

    def _accept(self, tx: Transaction, peer_id: int | None = None) -> tuple[str, object]:
        mp = self.mempool
        if tx.wtxid in mp.by_wtxid or tx.txid in mp.entries:
            return "known", None
        try:
            mp.accept(tx)
            return "accepted", None
        except MempoolReject as err:
            if err.missing_inputs:
                parents = mp.missing_parents(tx)
                mp.add_orphan(tx, peer_id)
                return "orphan", parents
            if err.already_known:
                return "known", None
            return "rejected", err

    def peer_gone(self, peer: Peer) -> None:
        self._fee_filter_sent.pop(peer.id, None)
        try:
            self.net.validate(self.mempool.peer_orphans_gone, peer.id)
        except RuntimeError:  # shutting down: the validation thread is gone
            pass
        for h in list(peer.tx_requested):
            if self.requested.get(h, (None,))[0] == peer.id:
                del self.requested[h]
        peer.tx_requested.clear()
        for other in self.net.peers():  # what it was asked for, others may have announced
            self._request_from(other)
