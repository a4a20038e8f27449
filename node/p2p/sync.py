"""Header-first sync and block download (Core's headers processing and
FindNextBlocksToDownload), and serving headers and blocks to others.

- Every peer is asked for headers (getheaders with a block locator) once the handshake is
  done; a full answer (2,000 headers) is followed by the next request.
- Blocks on the most-work chains peers have shown us are fetched in parallel, at most
  MAX_BLOCKS_IN_TRANSIT_PER_PEER per peer, from a window of BLOCK_DOWNLOAD_WINDOW blocks
  past the last block we have with all its ancestors. A peer holding up the window's first
  block while the window is full is stalling: it is disconnected after a timeout that
  doubles each time (Core's 2 s up to 64 s).
- Received blocks are parsed and validated on the validation thread; the loop only reads
  their 80-byte header.
"""

from __future__ import annotations

import asyncio
import logging
import time

from consensus.block import HEADER_SIZE, Block, BlockHeader, merkle_root
from consensus.errors import ValidationError
from consensus.pow import block_work, check_proof_of_work
from consensus.serialize import DeserializationError
from node import clock
from node.p2p import compact
from node.p2p import messages as m
from node.p2p import permissions as perm
from node.p2p.connman import ADDR_FETCH
from node.p2p.peer import Peer
from node.store.blockindex import VALID_SCRIPTS, VALID_TRANSACTIONS

log = logging.getLogger("net")

BLOCK_DOWNLOAD_WINDOW = 1024
MAX_BLOCKS_IN_TRANSIT_PER_PEER = 16
BLOCK_STALLING_TIMEOUT = 2.0
BLOCK_STALLING_TIMEOUT_MAX = 64.0
BLOCK_DOWNLOAD_TIMEOUT = 60.0  # a requested block not delivered by then: drop the peer
MAX_PENDING_BLOCKS = 32  # received from one peer, waiting for validation, before we stop reading
MAX_BLOCKS_TO_ANNOUNCE = 8
MAX_GETBLOCKS_RESULTS = 500
ANTI_DOS_BLOCKS = 144  # headers chains with less work than our tip's minus this are not kept
MAX_PRESYNC_HEADERS = 20_000  # low-work headers kept aside per peer while their chain grows
MAX_PRESYNC_PEERS = 4  # peers whose low-work headers are kept aside at the same time
HEADERS_RESPONSE_TIME = 120.0  # a getheaders not answered: another is sent after this
HEADERS_DOWNLOAD_TIMEOUT_BASE = 15 * 60.0  # initial headers sync: then 1 ms per header
HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER = 0.001  # expected (one per target spacing since best)
NEVER = float("inf")
SERVES_BLOCKS = m.NODE_NETWORK | m.NODE_NETWORK_LIMITED
STALE_RELAY_AGE_LIMIT = 30 * 24 * 3600  # stale blocks older than this are not served
NODE_NETWORK_LIMITED_MIN_BLOCKS = 288  # a pruned node serves this deep (and 2 more)
MAX_BLOCKTXN_DEPTH = 10  # getblocktxn answered for blocks this close to the tip
MAX_CMPCTBLOCK_DEPTH = 5  # getdata MSG_CMPCT_BLOCK answered compactly this close to the tip
CMPCTBLOCKS_VERSION = 2  # BIP152 with witnesses: the only version we speak
MAX_HB_PEERS = 3  # peers asked to announce new blocks to us as compact blocks (BIP152)
UNREQUESTED_MAX_AHEAD = 288  # Core's MIN_BLOCKS_TO_KEEP: unrequested blocks beyond it are dropped


def is_limited(peer: Peer) -> bool:
    """A pruned peer (Core's IsLimitedPeer): NODE_NETWORK_LIMITED without NODE_NETWORK."""
    return not peer.services & m.NODE_NETWORK and bool(peer.services & m.NODE_NETWORK_LIMITED)


def _block_bytes(chain, e, witness: bool) -> bytes:
    raw = chain.read_raw_block(e)
    if witness:
        return raw
    return Block.from_bytes(raw).serialize(witness=False)


def _nothing() -> None:
    """A validation-thread job that returns once the jobs queued before it are done."""


def last_common_ancestor(a, b):
    if a.height > b.height:
        a = a.ancestor(b.height)
    elif b.height > a.height:
        b = b.ancestor(a.height)
    while a is not b:
        a, b = a.prev, b.prev
    return a


def has_ancestor(e, a) -> bool:
    """Is `a` e or one of its ancestors?"""
    return e is not None and a is not None and e.height >= a.height and e.ancestor(a.height) is a


def locator(e) -> list[bytes]:
    """Core's block locator: the last ten blocks, then exponentially sparser back to
    genesis."""
    out = []
    step = 1
    while e is not None:
        out.append(e.hash)
        if e.height == 0:
            break
        h = max(e.height - step, 0)
        e = e.ancestor(h)
        if len(out) > 10:
            step *= 2
    return out


class BlockSync:
    def __init__(self, net) -> None:
        self.net = net
        self.chain = net.chain
        self.in_flight: dict[bytes, Peer] = {}  # block hash -> the peer asked for it
        self.processing: set[bytes] = set()  # received, waiting for the validation thread
        self.stall_timeout = BLOCK_STALLING_TIMEOUT
        self.block_source: dict[bytes, int] = {}  # block -> sender's id, to punish invalid ones
        self._tip_pending = False
        self.last_announced = None
        self.last_inv_triggering_sync: bytes | None = None
        self.direct_pending: dict[bytes, int] = {}  # headers being accepted -> how many times
        # BIP152: peers asked to announce blocks to us as compact blocks, oldest first (Core's
        # lNodesAnnouncingHeaderAndIDs); the last block announced early (on its proof of
        # work, before full validation: m_highest_fast_announce) and the most recent block
        # with its compact form, kept to answer getdata/getblocktxn without the disk.
        self.hb_peers: list[Peer] = []
        self.highest_fast_announce = 0
        self.recent: tuple[bytes, Block, bytes] | None = None  # (hash, block, cmpctblock)
        self.hb_wanted = False  # some peer asked us for high-bandwidth announcements
        self.extra_txns = compact.ExtraTxns()
        self.blocksonly = bool(getattr(net, "blocksonly", False))

    def subscribe(self) -> None:
        """The chain tells us (from whatever thread changed it) when its tip moved."""
        self.last_announced = self.chain.published
        self.chain.on_activated.append(self._tip_changed_threadsafe)

    def tip_change_pending(self) -> bool:
        """A tip change the loop has not handled yet (for PeerManager.limit_validation_queue)."""
        return self._tip_pending

    def _tip_changed_threadsafe(self) -> None:
        if not self._tip_pending:
            self._tip_pending = True
            self.net.loop.call_soon_threadsafe(self._tip_changed)

    # -- headers --------------------------------------------------------------------------------

    # Core starts the headers sync with one peer at a time (a new one for each new block
    # announced, and another when the first is too slow), unless our best header is recent.

    def preferred_download(self, peer: Peer) -> bool:
        """Core's fPreferredDownload: outbound (or noban) peers that serve blocks."""
        return (not peer.inbound or perm.has(peer.permissions, perm.NOBAN)) and \
            peer.conn_type != ADDR_FETCH and bool(peer.services & SERVES_BLOCKS)

    def start(self, peer: Peer) -> None:
        """A peer finished its handshake."""
        peer.sync_started = False
        peer.headers_sync_timeout = 0.0
        peer.inv_triggered_getheaders = False
        self.maybe_start(peer)

    def maybe_start(self, peer: Peer) -> None:
        """The initial getheaders, from our best header's parent (so the answer is never
        empty and tells us where the peer is), to one peer at a time while our best header
        is old."""
        if peer.sync_started or peer.closed or not peer.services & SERVES_BLOCKS:
            return
        best = self.chain.best_header
        if best is None:
            return
        peers = self.net.peers()
        if self.preferred_download(peer):
            allowed = True
        else:
            allowed = peer.conn_type != ADDR_FETCH and (
                not any(self.preferred_download(p) for p in peers) or not self.in_flight)
        started = sum(1 for p in peers if getattr(p, "sync_started", False))
        now = clock.now()
        if not ((started == 0 and allowed) or best.time > now - 24 * 3600):
            return
        start = best.prev if best.prev is not None else best
        if not self._may_send_getheaders(peer):
            return
        log.debug("initial getheaders (%d) to peer=%d (startheight:%d)", start.height,
                  peer.id, peer.version.start_height)
        self.send_getheaders(peer, start)
        peer.sync_started = True
        spacing = self.chain.params.pow_target_spacing
        peer.headers_sync_timeout = now + HEADERS_DOWNLOAD_TIMEOUT_BASE + \
            HEADERS_DOWNLOAD_TIMEOUT_PER_HEADER * max(now - best.time, 0) / spacing

    def peer_activity(self, peer: Peer) -> None:
        """Before each message of a connected peer is handled (where Core's SendMessages
        runs for it): its headers-sync timeout, or the start of its headers sync."""
        if getattr(peer, "sync_started", False):
            if peer.headers_sync_timeout != NEVER:
                self._check_headers_timeout(peer, self.net.peers())
        else:
            self.maybe_start(peer)

    def _check_headers_timeout(self, peer: Peer, peers: list[Peer]) -> None:
        """Core's initial-headers-sync stall check: our only sync peer, too slow while
        others could serve us, is dropped (a noban one is only no longer the sync peer)."""
        if not getattr(peer, "sync_started", False) or peer.headers_sync_timeout == NEVER:
            return
        best = self.chain.best_header
        now = clock.now()
        if best.time > now - 24 * 3600:
            peer.headers_sync_timeout = NEVER  # caught up once: no timeout later
            return
        started = sum(1 for p in peers if getattr(p, "sync_started", False))
        preferred = sum(1 for p in peers if self.preferred_download(p))
        if now > peer.headers_sync_timeout and started == 1 and \
                preferred - self.preferred_download(peer) >= 1:
            if perm.has(peer.permissions, perm.NOBAN):
                log.info("Timeout downloading headers from noban peer, not %s",
                         self.net.disconnect_msg(peer))
                peer.sync_started = False
                peer.headers_sync_timeout = 0.0
            else:
                log.info("Timeout downloading headers, %s", self.net.disconnect_msg(peer))
                peer.close("timeout downloading headers")

    def _may_send_getheaders(self, peer: Peer) -> bool:
        return clock.now() - peer.headers_requested_at > HEADERS_RESPONSE_TIME

    def send_getheaders(self, peer: Peer, start, stop: bytes = b"\x00" * 32) -> None:
        peer.headers_requested_at = clock.now()
        log.debug("getheaders (%d) to peer=%d", start.height, peer.id)
        peer.send(m.GetHeaders(locator(start), stop))

    def maybe_send_getheaders(self, peer: Peer, announced: bytes | None = None) -> None:
        """A getheaders from our best header, unless one is still unanswered (Core's
        MaybeSendGetHeaders): announcements of unknown blocks cost one request, not one
        each. The block announced is remembered, so the answer can be followed up. Before
        the headers sync started with the peer, only the first peer to announce a new
        block is asked (once), so the sync takes on one more peer per new block."""
        if announced is not None:
            peer.last_unknown_announced = announced  # (Core's hashLastUnknownBlock)
        if announced is not None and not getattr(peer, "sync_started", True):
            if peer.inv_triggered_getheaders or announced == self.last_inv_triggering_sync:
                return
            peer.inv_triggered_getheaders = True
            self.last_inv_triggering_sync = announced
        if self._may_send_getheaders(peer):
            self.send_getheaders(peer, self.chain.best_header)
        else:
            if announced is not None:
                peer.unknown_block = announced
            log.debug("getheaders to peer=%d not sent: one is unanswered", peer.id)

    async def on_headers(self, peer: Peer, msg: m.Headers) -> None:
        headers = msg.headers
        log.debug("headers (%d) from peer=%d", len(headers), peer.id)
        if not headers:
            peer.headers_requested_at = 0.0  # (empty: the answer to our getheaders)
            return
        # Core's CheckHeadersPoW, before anything else is looked at
        for h in headers:
            if not check_proof_of_work(h.hash, h.bits, self.chain.params):
                self.net.misbehaving(peer, 100, "header with invalid proof of work")
                return
        for a, b in zip(headers, headers[1:]):
            if b.prev_hash != a.hash:
                self.net.misbehaving(peer, 20, "non-continuous headers sequence")
                return
        presync = peer.presync
        if presync and headers[0].prev_hash == presync[-1].hash:
            headers = presync + headers  # the continuation of a low-work chain being checked
        peer.presync = []
        start = self.chain.get(headers[0].prev_hash)
        if start is None:
            # Does not connect to anything we know (an announcement of blocks whose parents
            # we lack): ask for the path to it, and remember the last as the peer's. Not a
            # misbehaviour (Core's since v26), and not the answer to our getheaders.
            peer.unconnecting_headers += 1
            log.debug("received header %s: missing prev block %s, sending getheaders (%d) to "
                      "end (peer=%d)", headers[0].hash_hex(), headers[0].prev_hash[::-1].hex(),
                      self.chain.best_header.height, peer.id)
            self.maybe_send_getheaders(peer)
            peer.last_unknown_announced = headers[-1].hash
            return
        peer.headers_requested_at = 0.0  # (connecting headers answer our getheaders)
        if not self._enough_work(peer, start, headers):
            return
        # Until this peer's direct fetch ran, these blocks are its to fetch (Core handles
        # the whole message at once; here other peers' messages run while the headers are
        # being accepted on the validation thread).
        hashes = [h.hash for h in headers[-MAX_BLOCKS_IN_TRANSIT_PER_PEER - 1:]]
        for h in hashes:
            self.direct_pending[h] = self.direct_pending.get(h, 0) + 1
        try:
            last = await self.net.validate(self._accept_headers, headers)
        except ValidationError as err:
            # (a header of a block known to be invalid is as bad as the block: Core's
            # BLOCK_CACHED_INVALID)
            score = 100 if err.reason == "duplicate" else err.dos_score
            self.net.misbehaving(peer, score, f"invalid header received: {err}")
            return
        finally:
            for h in hashes:
                n = self.direct_pending.pop(h) - 1
                if n:
                    self.direct_pending[h] = n
        if peer.closed:
            return
        peer.unconnecting_headers = 0
        for h in headers:
            peer.known_blocks.add(h.hash)
        self.update_best_known(peer, last)
        self._direct_fetch(peer, last)
        if len(msg.headers) == m.MAX_HEADERS_RESULTS:
            self.send_getheaders(peer, last)  # more to come
        elif peer.unknown_block is not None:
            # A block announced (by inv) while this answer was on its way is still unknown:
            # ask again now rather than wait for the next announcement.
            if self.chain.get(peer.unknown_block) is None:
                self.send_getheaders(peer, self.chain.best_header, peer.unknown_block)
            peer.unknown_block = None
        best = self.chain.best_header
        if best is not None and best.time > clock.now() - 24 * 3600:
            for p in self.net.peers():  # close to today: headers from every peer now
                self.maybe_start(p)
        self.schedule()

    def _direct_fetch(self, peer: Peer, last) -> None:
        """Core's HeadersDirectFetchBlocks: close to caught up, the blocks leading to a
        header with at least our tip's work are asked for at once from the peer that sent
        it (even one that does not serve old blocks), up to its blocks-in-flight limit."""
        tip = self.chain.published
        if last is None or tip is None or last.failed or last.chain_work < tip.chain_work:
            return
        if tip.time <= clock.now() - 20 * self.chain.params.pow_target_spacing:
            return  # (catching up: the parallel download does it)
        if not peer.services & m.NODE_WITNESS:
            return
        want = []
        walk = last
        while walk is not None and not has_ancestor(tip, walk) and \
                len(want) <= MAX_BLOCKS_IN_TRANSIT_PER_PEER:
            if not walk.have_data and walk.hash not in self.in_flight and \
                    walk.hash not in self.processing:
                want.append(walk)
            walk = walk.prev
        if walk is None or not has_ancestor(tip, walk):
            log.debug("Large reorg, won't direct fetch to %s (%d)", last.hash_hex(),
                      last.height)
            return
        items = []
        now = time.monotonic()
        for e in reversed(want):
            if len(peer.in_flight) >= MAX_BLOCKS_IN_TRANSIT_PER_PEER:
                break
            if not peer.in_flight:
                peer.downloading_since = now
            peer.in_flight[e.hash] = now
            self.in_flight[e.hash] = peer
            items.append(m.Inv(m.MSG_WITNESS_BLOCK, e.hash))
            log.debug("Requesting block %s from  peer=%d", e.hash_hex(), peer.id)
        if len(items) > 1:
            log.debug("Downloading blocks toward %s (%d) via headers direct fetch",
                      last.hash_hex(), last.height)
        if len(items) == 1 and len(self.in_flight) == 1 and peer.provides_cmpct and \
                not self.blocksonly and last.prev is not None and \
                last.prev.is_valid(VALID_TRANSACTIONS):
            # (Core: a single new block is asked for as a compact block)
            items = [m.Inv(m.MSG_CMPCT_BLOCK, items[0].hash)]
        if items:
            peer.send(m.GetData(items))

    def _enough_work(self, peer: Peer, start, headers: list[BlockHeader]) -> bool:
        """Core's anti-DoS rule: headers are stored only once they make a chain with about
        as much work as ours (no less than our tip's minus 144 blocks' worth), so a peer
        cannot fill our memory with cheap forks. A full message below that is kept aside
        (bounded) while the rest of that chain is asked for; anything else is ignored."""
        tip = self.chain.published
        # (Core's GetAntiDoSWorkThreshold: and never below -minimumchainwork)
        threshold = max(tip.chain_work - ANTI_DOS_BLOCKS * block_work(tip.bits),
                        getattr(self.chain, "minimum_chain_work", 0))
        work = start.chain_work + sum(block_work(h.bits) for h in headers)
        if work >= threshold:
            return True
        if len(headers) % m.MAX_HEADERS_RESULTS or len(headers) >= MAX_PRESYNC_HEADERS:
            log.info("ignoring low-work chain of %d headers from peer=%d", len(headers), peer.id)
            return False
        if sum(1 for p in self.net.peers() if p.presync) >= MAX_PRESYNC_PEERS:
            log.info("ignoring low-work headers from peer=%d: others are being checked", peer.id)
            return False
        for h in headers[-m.MAX_HEADERS_RESULTS:]:
            if not check_proof_of_work(h.hash, h.bits, self.chain.params):
                self.net.misbehaving(peer, 100, "header with invalid proof of work")
                return False
        peer.presync = headers
        peer.send(m.GetHeaders([headers[-1].hash] + locator(self.chain.best_header)))
        return False

    def _accept_headers(self, headers: list[BlockHeader]):
        e = None
        for h in headers:
            e = self.chain.accept_header(h)
        return e

    def update_best_known(self, peer: Peer, e) -> None:
        # >= as Core's UpdateBlockAvailability: a block as good as an invalidated one counts.
        if e is not None and (peer.best_known is None or
                              e.chain_work >= peer.best_known.chain_work):
            peer.best_known = e

    async def on_getheaders(self, peer: Peer, msg: m.GetHeaders) -> None:
        tip = self.chain.published
        if tip.chain_work < getattr(self.chain, "minimum_chain_work", 0) and \
                not perm.has(peer.permissions, perm.DOWNLOAD):
            log.debug("Ignoring getheaders from peer=%d because active chain has too little "
                      "work; sending empty response", peer.id)
            peer.send_raw("headers", m.raw_headers_payload([]))  # (go away, but not unanswered)
            return
        if msg.locator:
            fork = self._fork_point(msg.locator, tip)
            start = fork.height + 1
        else:
            e = self.chain.get(msg.hash_stop)
            if e is None:
                return
            if not self.block_request_allowed(e):
                log.debug("on_getheaders: ignoring request from peer=%d for old block header "
                          "that isn't in the main chain", peer.id)
                return
            peer.send_raw("headers", m.raw_headers_payload([e.header().serialize()]))
            return
        end = min(tip.height, start + m.MAX_HEADERS_RESULTS - 1)
        stop = self.chain.get(msg.hash_stop)
        if stop is not None and has_ancestor(tip, stop) and stop.height >= start:
            end = min(end, stop.height)
        entries = self._range(tip, start, end)
        peer.send_raw("headers", m.raw_headers_payload([e.header().serialize()
                                                        for e in entries]))
        # What the peer now has (Core: the tip when the answer is empty, as it has it all).
        peer.best_header_sent = entries[-1] if entries else tip
        for e in entries[-MAX_BLOCKS_TO_ANNOUNCE:]:
            peer.known_blocks.add(e.hash)

    def block_request_allowed(self, e) -> bool:
        """Core's BlockRequestAllowed: blocks (and headers) of the active chain, and stale
        ones only if fully validated and less than a month older (in time and in work) than
        our best header, so peers cannot fingerprint us by the old forks we know."""
        tip = self.chain.published
        if has_ancestor(tip, e):
            return True
        best = self.chain.best_header
        if best is None or not e.is_valid(VALID_SCRIPTS):
            return False
        spacing = self.chain.params.pow_target_spacing
        proof_time = (best.chain_work - e.chain_work) * spacing // block_work(best.bits)
        return best.time - e.time < STALE_RELAY_AGE_LIMIT and proof_time < STALE_RELAY_AGE_LIMIT

    async def serve_blocks(self, peer: Peer, items: list[m.Inv]) -> None:
        """getdata for blocks (Core's ProcessGetBlockData)."""
        loop = self.net.loop
        for item in items:
            if peer.closed:
                return
            t = item.type
            if t == m.MSG_FILTERED_BLOCK and not self.net.local_services & m.NODE_BLOOM:
                log.debug("filtered block request received when NODE_BLOOM service disabled, "
                          "%s", self.net.disconnect_msg(peer))
                peer.close("filtered block request without NODE_BLOOM")
                return
            if t not in (m.MSG_BLOCK, m.MSG_WITNESS_BLOCK, m.MSG_CMPCT_BLOCK):
                continue  # (merkle blocks are not served: minibtc keeps no bloom filters)
            e = self.chain.get(item.hash)
            if e is None:
                continue
            if not self.block_request_allowed(e) and self._being_connected(e):
                # As Core's ProcessGetBlockData (ActivateBestChain first): a block we are
                # connecting, announced early to high-bandwidth peers, is served once
                # connected. Ignored, its requester would wait for the download timeout.
                await self.net.validate(_nothing)
                if peer.closed:
                    return
            if not self.block_request_allowed(e):
                log.debug("ProcessGetBlockData: ignoring request from peer=%d for old block "
                          "that isn't in the main chain", peer.id)
                continue
            tip = self.chain.published
            if self.net.pruned and not perm.has(peer.permissions, perm.NOBAN) and \
                    tip.height - e.height > NODE_NETWORK_LIMITED_MIN_BLOCKS + 2:
                log.debug("Ignore block request below NODE_NETWORK_LIMITED threshold, %s",
                          self.net.disconnect_msg(peer))
                peer.close("block request below the NODE_NETWORK_LIMITED threshold")
                return
            if not e.have_data:
                continue
            if t == m.MSG_CMPCT_BLOCK and tip.height - e.height <= MAX_CMPCTBLOCK_DEPTH and \
                    tip.time > clock.now() - 20 * self.chain.params.pow_target_spacing:
                # (Core: compact only for recent blocks, when we are near the tip; for old
                # ones the peer's mempool would not help: the full block)
                try:
                    payload = await loop.run_in_executor(None, self._compact_payload, e)
                except Exception as err:  # unreadable (or pruned) block file
                    log.error("cannot serve block %s: %s", e.hash_hex(), err)
                    continue
                peer.send_raw("cmpctblock", payload)
                self._maybe_continue(peer, e.hash)
                continue
            try:
                raw = await loop.run_in_executor(None, _block_bytes, self.chain, e,
                                                 t != m.MSG_BLOCK)
            except Exception as err:  # unreadable (or pruned) block file
                log.error("cannot serve block %s: %s", e.hash_hex(), err)
                continue
            peer.send_raw("block", raw)
            self._maybe_continue(peer, e.hash)
            await peer.drain()

    def _being_connected(self, e) -> bool:
        """A block received and queued for (or in) validation, or stored with all its
        parents and not yet connected: the validation thread is about to decide on it."""
        return not e.failed and (e.hash in self.processing or (
            e.have_data and bool(e.chain_tx) and not e.is_valid(VALID_SCRIPTS)))

    async def on_getblocks(self, peer: Peer, msg: m.GetBlocks) -> None:
        """An inv of up to 500 blocks of our chain after the locator's fork point. When the
        answer is cut at 500, the last block is remembered (Core's hashContinue): once the
        peer asks for it, it gets an inv of our tip, which makes a getblocks-syncing peer
        (bcoin, old clients) ask for the next 500."""
        tip = self.chain.published
        fork = self._fork_point(msg.locator, tip)
        end = min(tip.height, fork.height + MAX_GETBLOCKS_RESULTS)
        # A pruned node announces only what the peer can still fetch (Core's
        # nPrunedBlocksLikelyToHave: an hour's blocks less than what it keeps).
        keep = NODE_NETWORK_LIMITED_MIN_BLOCKS - 3600 // self.chain.params.pow_target_spacing
        items = []
        for e in self._range(tip, fork.height + 1, end):
            if e.hash == msg.hash_stop:
                break  # (Core stops before the stop block)
            if self.net.pruned and (not e.have_data or e.height <= tip.height - keep):
                log.debug(" getblocks stopping, pruned or too old block at %d %s", e.height,
                          e.hash_hex())
                break
            items.append(m.Inv(m.MSG_BLOCK, e.hash))
            if len(items) == MAX_GETBLOCKS_RESULTS:
                log.debug("  getblocks stopping at limit %d %s", e.height, e.hash_hex())
                peer.continuation_block = e.hash
                break
        if items:
            peer.send(m.InvMsg(items))

    def _maybe_continue(self, peer: Peer, h: bytes) -> None:
        """The peer fetched the last block of a full getblocks answer: an inv of our tip
        right after it, so that it asks for the next batch (sent even if redundant)."""
        if h == getattr(peer, "continuation_block", None):
            peer.continuation_block = None
            tip = self.chain.published
            peer.send(m.InvMsg([m.Inv(m.MSG_BLOCK, tip.hash)]))

    def _fork_point(self, hashes: list[bytes], tip):
        for h in hashes:
            e = self.chain.get(h)
            if e is not None and has_ancestor(tip, e):
                return e
        return tip.ancestor(0)

    @staticmethod
    def _range(tip, start: int, end: int) -> list:
        """Active-chain entries at heights start..end (inclusive)."""
        if end < start:
            return []
        out = []
        e = tip.ancestor(end)
        while e is not None and e.height >= start:
            out.append(e)
            e = e.prev
        out.reverse()
        return out

    # -- block download -----------------------------------------------------------------------

    def schedule(self) -> None:
        """Ask every peer for the next blocks it can give us."""
        ibd = None
        for peer in self.net.peers():
            free = MAX_BLOCKS_IN_TRANSIT_PER_PEER - len(peer.in_flight)
            if free <= 0 or not peer.services & m.NODE_WITNESS or \
                    not peer.services & SERVES_BLOCKS:
                continue
            if is_limited(peer) and ibd is None:
                ibd = self.chain.in_ibd()
            if is_limited(peer) and ibd:
                continue  # (Core: a pruned peer cannot take us through the initial download)
            blocks, staller = self._next_blocks(peer, free)
            if blocks:
                now = time.monotonic()
                if not peer.in_flight:
                    peer.downloading_since = now
                for e in blocks:
                    peer.in_flight[e.hash] = now
                    self.in_flight[e.hash] = peer
                peer.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, e.hash) for e in blocks]))
            elif staller is not None and not peer.in_flight and not staller.stalling_since:
                # (Core: only a peer with nothing in flight is held up by another)
                staller.stalling_since = time.monotonic()
                log.debug("stall started peer=%d", staller.id)

    def _next_blocks(self, peer: Peer, count: int):
        """(blocks to request from peer, the peer stalling the window or None)."""
        self.process_block_availability(peer)
        best = peer.best_known
        tip = self.chain.published
        if best is None or best.chain_work < tip.chain_work or best.failed:
            return [], None
        if peer.last_common is None or not peer.last_common.chain_tx:
            # (none yet; or the chain dropped its data, or an ancestor's, since: unreadable
            # when connected, ChainState._forget_data. It is to be downloaded again.)
            peer.last_common = tip.ancestor(min(best.height, tip.height))
        peer.last_common = last_common_ancestor(peer.last_common, best)
        if peer.last_common is best:
            return [], None
        window_end = peer.last_common.height + BLOCK_DOWNLOAD_WINDOW
        max_height = min(best.height, window_end + 1)
        blocks: list = []
        limited = is_limited(peer)
        waiting_for: Peer | None = None
        waiting_for_us = False  # the first missing block is ours to validate, not a peer's
        walk = peer.last_common
        while walk.height < max_height:
            # the next (up to) 128 blocks on the way to best
            upto = min(walk.height + 128, max_height)
            batch = self._range(best, walk.height + 1, upto)
            walk = batch[-1]
            for e in batch:
                if e.failed:
                    return blocks, None
                if e.have_data:
                    if e.chain_tx:
                        peer.last_common = e
                    continue
                owner = self.in_flight.get(e.hash)
                if e.hash in self.direct_pending:
                    continue
                if owner is not None or e.hash in self.processing:
                    if waiting_for is None and not waiting_for_us:
                        if owner is None:
                            waiting_for_us = True
                        else:
                            waiting_for = owner
                    continue
                if e.height > window_end:
                    staller = waiting_for if not blocks and waiting_for is not peer else None
                    return blocks, staller
                if limited and best.height - e.height >= NODE_NETWORK_LIMITED_MIN_BLOCKS - 2:
                    continue  # (more than a pruned peer keeps, with a margin)
                blocks.append(e)
                if len(blocks) == count:
                    return blocks, None
        return blocks, None

    async def on_block(self, peer: Peer, msg: m.RawPayload) -> None:
        raw = msg.data
        if len(raw) < HEADER_SIZE + 1:
            peer.close("malformed block: too short")
            return
        header = BlockHeader.from_bytes(raw[:HEADER_SIZE])
        await self._got_block(peer, header, raw, None)

    async def _got_block(self, peer: Peer, header: BlockHeader, raw: bytes | None,
                         block: Block | None, via_compact: bool = False) -> None:
        """A block from a peer, as bytes (a block message) or rebuilt from a compact block
        (a Block): taken if we asked for it or it could become our tip, then processed on
        the validation thread."""
        h = header.hash
        peer.known_blocks.add(h)
        requested = peer.in_flight.pop(h, None) is not None
        if requested:
            self.in_flight.pop(h, None)
            peer.stalling_since = 0.0
            peer.downloading_since = time.monotonic()
        else:
            # Unrequested (a new-block announcement sent as the block itself): taken only
            # if it could become our tip (Core's rule), so nobody fills our disk for free.
            # Judged once the blocks before it are processed (as Core would), so a run of
            # new blocks sent one after the other is taken whole.
            await self.blocks_processed(peer)
            if peer.closed:
                return
            prev = self.chain.get(header.prev_hash)
            tip = self.chain.published
            if prev is None:
                # (Core: the block cannot be accepted, and sending it is a misbehaviour)
                log.debug("ProcessNewBlock: AcceptBlock FAILED (prev-blk-not-found)")
                self.net.misbehaving(peer, 100, f"block {header.hash_hex()} does not connect")
                return
            if h in self.processing or (self.chain.get(h) is not None
                                        and self.chain.get(h).have_data):
                return
            if prev.chain_work + block_work(header.bits) < tip.chain_work or \
                    prev.height + 1 > tip.height + UNREQUESTED_MAX_AHEAD:
                log.debug("ignoring unrequested block %s from peer=%d", header.hash_hex(),
                          peer.id)
                # As Core's AcceptBlock: its header still enters the block index.
                try:
                    await self.net.validate(self.chain.accept_header, header)
                except ValidationError:
                    pass
                return
        self.processing.add(h)
        self.block_source[h] = peer.id
        if len(self.block_source) > 2000:
            self.block_source.pop(next(iter(self.block_source)))
        fut = self.net.validate(self._process_block, raw, block)
        fut.add_done_callback(lambda f: self._block_done(peer, h, f, via_compact))
        peer.block_jobs.append(fut)
        if peer.pending_blocks > MAX_PENDING_BLOCKS:
            # Backpressure: stop reading this peer until validation has taken its oldest
            # block. (Waiting for the newest made the reads come in bursts of 33 blocks,
            # each burst holding the event loop: every slow getblockcount during
            # rpc_latency.py's sync came at one.)
            await peer.block_jobs[0]
            peer.downloading_since = time.monotonic()  # (our delay, not the peer's)
        self.schedule()

    # -- BIP152 compact blocks (receiving) ----------------------------------------------------

    async def on_cmpctblock(self, peer: Peer, msg: m.CmpctBlock) -> None:
        """A block announced as its header and short transaction ids (Core's CMPCTBLOCK
        handling): rebuilt from our mempool and the recently seen transactions when we asked
        the peer for it, or when it may be fetched directly (close to our tip); the
        transactions we lack are asked for with getblocktxn (PartiallyDownloadedBlock)."""
        header = msg.header
        if not check_proof_of_work(header.hash, header.bits, self.chain.params):
            self.net.misbehaving(peer, 100, "header with invalid proof of work")
            return
        if self.chain.get(header.prev_hash) is None:
            self.maybe_send_getheaders(peer)
            peer.last_unknown_announced = header.hash
            return
        try:
            e = await self.net.validate(self._accept_headers, [header])
        except ValidationError as err:
            self.net.misbehaving(peer, err.dos_score, f"invalid header received: {err}")
            return
        if peer.closed or e is None:
            return
        peer.known_blocks.add(e.hash)
        self.update_best_known(peer, e)
        tip = self.chain.published
        if e.have_data or e.chain_work <= tip.chain_work:
            return
        h = e.hash
        owner = self.in_flight.get(h)
        if owner is not peer:
            if owner is not None or h in self.processing:
                return
            if tip.time <= clock.now() - 20 * self.chain.params.pow_target_spacing or \
                    len(peer.in_flight) >= MAX_BLOCKS_IN_TRANSIT_PER_PEER or \
                    e.height > tip.height + 2 or not e.prev.is_valid(VALID_SCRIPTS):
                self._direct_fetch(peer, e)
                return
            if not peer.in_flight:
                peer.downloading_since = time.monotonic()
            peer.in_flight[h] = time.monotonic()
            self.in_flight[h] = peer
        try:
            slots, want = compact.prepare(msg)
        except compact.InvalidCompactBlock as err:
            self.net.misbehaving(peer, 100, f"invalid compact block: {err}")
            return
        except compact.Collision:  # a short id twice: cannot be rebuilt, ask for the block
            self._request_full_block(peer, h)
            return
        by_wtxid = self.net.mempool.by_wtxid
        ambiguous: set[int] = set()
        compact.fill(msg, slots, want, [(w, x.tx) for w, x in list(by_wtxid.items())],
                     ambiguous)
        compact.fill(msg, slots, want, self.extra_txns.items(), ambiguous)
        missing = compact.missing(slots)
        log.debug("compact block %s from peer=%d: %d transactions, %d prefilled, %d from "
                  "the mempool, %d to ask for", header.hash_hex(), peer.id, len(slots),
                  len(msg.prefilled), len(slots) - len(msg.prefilled) - len(missing),
                  len(missing))
        if missing:
            peer.partial_block = (h, header, slots, missing)
            peer.send(m.GetBlockTxn(h, missing))
            return
        await self._rebuilt(peer, header, slots)

    async def on_blocktxn(self, peer: Peer, msg: m.BlockTxn) -> None:
        partial = getattr(peer, "partial_block", None)
        if partial is None or partial[0] != msg.block_hash:
            log.debug("Peer %d sent us block transactions for block we weren't expecting",
                      peer.id)
            return
        peer.partial_block = None
        h, header, slots, missing = partial
        if len(msg.txs) != len(missing):
            self.net.misbehaving(peer, 100, "invalid compact block/non-matching block "
                                            "transactions")
            return
        for i, tx in zip(missing, msg.txs):
            slots[i] = tx
        await self._rebuilt(peer, header, slots)

    async def _rebuilt(self, peer: Peer, header, txs: list) -> None:
        """A block put together from a compact block: processed as if it had come whole,
        unless its transactions do not make its merkle root (a short-id collision): then
        the whole block is asked for."""
        root, mutated = merkle_root([tx.txid for tx in txs])
        if root != header.merkle_root:
            log.debug("Failed to reconstruct block %s from peer=%d, requesting the full "
                      "block", header.hash_hex(), peer.id)
            self._request_full_block(peer, header.hash)
            return
        block = Block(header, txs)
        e = self.chain.get(header.hash)
        tip = self.chain.published
        if self.hb_wanted and e is not None and e.prev is tip and not mutated and \
                not self.chain.in_ibd():
            self.pow_valid_block(e, block)  # (header accepted, merkle root checked just now)
        await self._got_block(peer, header, None, block, via_compact=True)

    def _request_full_block(self, peer: Peer, h: bytes) -> None:
        now = time.monotonic()
        if not peer.in_flight:
            peer.downloading_since = now
        peer.in_flight[h] = now
        self.in_flight[h] = peer
        peer.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, h)]))

    async def on_getblocktxn(self, peer: Peer, msg: m.GetBlockTxn) -> None:
        """Transactions of a recent block of ours, by index: of the block we announced last
        from memory (it may still be being validated, as Core's), of others up to
        MAX_BLOCKTXN_DEPTH deep from disk; deeper ones get the whole block instead."""
        recent = self.recent
        if recent is not None and recent[0] == msg.block_hash:
            block = recent[1]
        else:
            e = self.chain.get(msg.block_hash)
            tip = self.chain.published
            if e is None or not e.have_data:
                log.debug("Peer %d sent us a getblocktxn for a block we don't have", peer.id)
                return
            if tip.height - e.height >= MAX_BLOCKTXN_DEPTH:
                log.debug("Peer %d sent us a getblocktxn for a block > %d deep", peer.id,
                          MAX_BLOCKTXN_DEPTH)
                await self.serve_blocks(peer, [m.Inv(m.MSG_WITNESS_BLOCK, e.hash)])
                return
            block = await self.net.loop.run_in_executor(None, self.chain.read_block, e)
        if any(i >= len(block.txs) for i in msg.indexes):
            self.net.misbehaving(peer, 100, "getblocktxn with out-of-bounds tx indices")
            return
        peer.send(m.BlockTxn(msg.block_hash, [block.txs[i] for i in msg.indexes]))

    async def blocks_processed(self, peer: Peer) -> None:
        """Wait until the blocks this peer sent so far are processed (validation runs
        them in order), so that what the peer sends next is answered as Core would after
        processing them (a pong after the blocks before the ping)."""
        if peer.block_jobs:
            await asyncio.wait([peer.block_jobs[-1]])

    def _process_block(self, raw: bytes | None, block: Block | None = None):
        """Validation thread: parse, check, store and connect. Returns (whether the block
        was new, its error or None, {hash: error} of other blocks this made the chain try
        and find invalid)."""
        chain = self.chain
        with chain.lock:  # (RPC threads change it too)
            before = set(chain.invalid_errors)
        new = False
        error: Exception | None = None
        try:
            if block is None:
                block = Block.from_bytes(raw)
            e = chain.get(block.hash)
            new = e is None or not e.have_data
            if new and self.hb_wanted:
                self._announce_early(block)
            chain.process_block(block, raw=raw)
        except (ValidationError, DeserializationError) as err:
            error = err
        with chain.lock:
            failed = {h: err for h, err in chain.invalid_errors.items() if h not in before}
        return new, error, failed

    def _announce_early(self, block: Block) -> None:
        """Validation thread: a new block on our tip, whose header is accepted (proof of
        work and header checks) and whose transactions make its merkle root, is announced
        as a compact block to the peers that asked for high-bandwidth mode before it is
        checked further and connected (BIP152; Core's NewPoWValidBlock). A block failing
        these is left to process_block to report."""
        chain = self.chain
        tip = chain.published
        if tip is None or block.header.prev_hash != tip.hash or chain.in_ibd():
            return  # (Core: only a block on our tip, out of the initial download)
        try:
            e = chain.accept_header(block.header)
        except ValidationError:
            return
        if e.height <= self.highest_fast_announce:
            return
        root, mutated = block.compute_merkle_root()
        if root != block.header.merkle_root or mutated:
            return
        self.net.loop.call_soon_threadsafe(self.pow_valid_block, e, block)

    def pow_valid_block(self, e, block: Block) -> None:
        """On the loop: a new block on our tip with a valid header and merkle root (from a
        compact block, already rebuilt and checked; or from _announce_early) goes as a
        compact block to each high-bandwidth peer that has its parent and not the block
        itself, before the block is connected."""
        if e.height <= self.highest_fast_announce:
            return
        self.highest_fast_announce = e.height
        payload = compact.build(block).serialize()
        self.recent = (e.hash, block, payload)
        if e.height < self.chain.params.segwit_height:
            return
        for peer in self.net.peers():
            if not peer.hb_requested or peer.version.version < m.INVALID_CB_NO_BAN_VERSION:
                continue
            self.process_block_availability(peer)
            if not self._peer_has(peer, e) and self._peer_has(peer, e.prev):
                log.debug("sending header-and-ids %s to peer=%d (before validation)",
                          e.hash_hex(), peer.id)
                peer.send_raw("cmpctblock", payload)
                peer.known_blocks.add(e.hash)
                peer.best_header_sent = e

    def _compact_payload(self, e) -> bytes:
        """The cmpctblock message of one of our blocks (the recent one's is kept)."""
        recent = self.recent
        if recent is not None and recent[0] == e.hash:
            return recent[2]
        block = self.chain.read_block(e)
        payload = compact.build(block).serialize()
        self.recent = (e.hash, block, payload)
        return payload

    def maybe_set_hb_peer(self, peer: Peer) -> None:
        """Core's MaybeSetPeerAsAnnouncingHeaderAndIDs: the peer that just delivered a new
        block is asked to announce the next ones to us as compact blocks (sendcmpct 1),
        the longest-serving of MAX_HB_PEERS others put back to low bandwidth, keeping an
        outbound peer among them."""
        if self.blocksonly or not peer.provides_cmpct or peer.closed:
            return
        hb = [p for p in self.hb_peers if not p.closed]
        if peer in hb:
            hb.remove(peer)
            hb.append(peer)
            self.hb_peers = hb
            return
        if peer.inbound and len(hb) >= MAX_HB_PEERS and \
                sum(1 for p in hb if not p.inbound) == 1 and not hb[0].inbound:
            hb[0], hb[1] = hb[1], hb[0]  # (the last outbound one stays)
        if len(hb) >= MAX_HB_PEERS:
            old = hb.pop(0)
            old.send(m.SendCmpct(False, CMPCTBLOCKS_VERSION))
            old.hb_to = False
        peer.send(m.SendCmpct(True, CMPCTBLOCKS_VERSION))
        peer.hb_to = True
        hb.append(peer)
        self.hb_peers = hb

    def on_sendcmpct(self, peer: Peer, msg: m.SendCmpct) -> None:
        if msg.version != CMPCTBLOCKS_VERSION:
            return  # (compact blocks with witnesses only)
        peer.provides_cmpct = True
        peer.hb_requested = msg.announce
        self.hb_wanted = any(p.hb_requested for p in self.net.connman.peers.values())

    def _block_done(self, peer: Peer, h: bytes, fut, via_compact: bool = False) -> None:
        self.processing.discard(h)
        peer.block_jobs.remove(fut)  # (the oldest: one validation thread, in order)
        if fut.cancelled():
            return
        if fut.exception() is not None:
            log.error("processing block %s failed: %r", h[::-1].hex(), fut.exception())
            return
        new, error, failed = fut.result()
        if error is None:
            if new:
                peer.last_block_time = clock.now_int()
                if not self.in_flight and not self.chain.in_ibd():
                    self.maybe_set_hb_peer(peer)
            if self.stall_timeout > BLOCK_STALLING_TIMEOUT:
                self.stall_timeout = max(BLOCK_STALLING_TIMEOUT, self.stall_timeout * 0.85)
        elif isinstance(error, DeserializationError):
            self.net.misbehaving(peer, 100, f"malformed block {h[::-1].hex()}: {error}")
        elif via_compact:
            # (Core: a block relayed as a compact block may be announced before its full
            # validation, so its sender is not punished for it)
            log.debug("invalid block %s from peer=%d by compact block: %s", h[::-1].hex(),
                      peer.id, error)
            failed.pop(h, None)
        else:
            failed.pop(h, None)
            if getattr(error, "mutated", False):
                log.debug("Block mutated: %s%s", error.reason,
                          f", {error.debug}" if error.debug else "")
                log.debug("Received mutated block from peer=%d", peer.id)
            score = 100 if error.reason == "duplicate" else error.dos_score
            self.net.misbehaving(peer, score, f"invalid block {h[::-1].hex()}: {error}")
        for bad, why in failed.items():  # descendants stored earlier, from other peers
            src = self.net.connman.peers.get(self.block_source.get(bad, -1))
            if src is not None:
                self.net.misbehaving(src, why.dos_score,
                                     f"invalid block {bad[::-1].hex()}: {why}")
        self.schedule()

    def peer_gone(self, peer: Peer) -> None:
        if peer in self.hb_peers:
            self.hb_peers.remove(peer)
        if peer.hb_requested:
            peer.hb_requested = False
            self.hb_wanted = any(p.hb_requested for p in self.net.connman.peers.values())
        for h in peer.in_flight:
            if self.in_flight.get(h) is peer:
                del self.in_flight[h]
        peer.in_flight.clear()
        if self.net.loop is not None and not self.net.loop.is_closed():
            self.net.loop.call_soon(self.schedule)
            if getattr(peer, "sync_started", False):
                peer.sync_started = False
                self.net.loop.call_soon(self._restart_sync)

    def _restart_sync(self) -> None:
        for p in self.net.peers():
            self.maybe_start(p)

    def tick(self, now: float) -> None:
        peers = self.net.peers()
        for peer in peers:
            if not peer.closed:
                self._check_headers_timeout(peer, peers)
            self.maybe_start(peer)
        for peer in self.net.peers():
            if peer.stalling_since and now - peer.stalling_since > self.stall_timeout:
                log.info("peer=%d is stalling block download, disconnecting", peer.id)
                peer.close("stalling block download")
                self.stall_timeout = min(self.stall_timeout * 2, BLOCK_STALLING_TIMEOUT_MAX)
                continue
            # (the clock restarts with each block the peer delivers, as Core's)
            if peer.in_flight and not peer.pending_blocks > MAX_PENDING_BLOCKS and \
                    now - peer.downloading_since > BLOCK_DOWNLOAD_TIMEOUT:
                log.info("Timeout downloading block %s from peer=%d, disconnecting",
                         next(iter(peer.in_flight))[::-1].hex(), peer.id)
                peer.close("block download timeout")
        self.schedule()

    # -- announcing our new blocks ------------------------------------------------------------

    def _tip_changed(self) -> None:
        self._tip_pending = False
        tip = self.chain.published
        prev = self.last_announced
        if tip is None or tip is prev:
            return
        self.last_announced = tip
        fork = last_common_ancestor(prev, tip) if prev is not None else tip.prev
        new = self._range(tip, fork.height + 1, tip.height) if fork is not None else [tip]
        self.net.relay.tip_changed(tip)
        if new:  # (none when the tip went back to an ancestor: invalidateblock)
            for peer in self.net.peers():
                self._announce(peer, new)
        self.schedule()

    def process_block_availability(self, peer: Peer) -> None:
        """Core's ProcessBlockAvailability: a block the peer announced before we knew it
        counts as the peer's once we have its header."""
        h = getattr(peer, "last_unknown_announced", None)
        if h is None:
            return
        e = self.chain.get(h)
        if e is not None and e.chain_work:
            self.update_best_known(peer, e)
            peer.last_unknown_announced = None

    def _peer_has(self, peer: Peer, e) -> bool:
        """Core's PeerHasHeader: what the peer showed us it has, or what we sent it headers
        for (a block we only announced by inv does not count: its header may still be
        missing there, so what follows it is announced by inv too)."""
        return has_ancestor(peer.best_known, e) or has_ancestor(peer.best_header_sent, e)

    def _announce(self, peer: Peer, new: list) -> None:
        tip = new[-1]
        self.process_block_availability(peer)
        if self._peer_has(peer, tip):
            return
        if (peer.prefers_headers or peer.hb_requested) and len(new) <= MAX_BLOCKS_TO_ANNOUNCE:
            todo = [e for e in new if not self._peer_has(peer, e)]
            if len(todo) == 1 and peer.hb_requested and todo[0].prev is not None and \
                    self._peer_has(peer, todo[0].prev):
                # (Core: one new block to a high-bandwidth peer goes as a compact block)
                try:
                    payload = self._compact_payload(tip)
                except Exception as err:  # unreadable block file: announce it otherwise
                    log.error("cannot read block %s: %s", tip.hash_hex(), err)
                else:
                    peer.send_raw("cmpctblock", payload)
                    peer.known_blocks.add(tip.hash)
                    peer.best_header_sent = tip
                    log.debug("announced block %s by cmpctblock to peer=%d", tip.hash_hex(),
                              peer.id)
                    return
            if peer.prefers_headers and todo and todo[0].prev is not None and \
                    self._peer_has(peer, todo[0].prev):
                peer.send_raw("headers", m.raw_headers_payload([e.header().serialize()
                                                                for e in todo]))
                for e in todo:
                    peer.known_blocks.add(e.hash)
                peer.best_header_sent = tip
                log.debug("announced %d headers to peer=%d", len(todo), peer.id)
                return
        peer.known_blocks.add(tip.hash)
        log.debug("announced block %s by inv to peer=%d", tip.hash_hex(), peer.id)
        peer.send(m.InvMsg([m.Inv(m.MSG_BLOCK, tip.hash)]))
