"""The PeerManager (Core's net_processing): the version handshake, message dispatch,
keep-alive, address gossip and misbehaviour. Header sync and block download live in
sync.py, transaction and block announcements in relay.py.

Everything here runs on the asyncio loop. The chain state and the mempool are reached only
through the validation thread (`validate`) or through what they publish: their events,
which other threads hand to the loop with call_soon_threadsafe, and the published tip,
whose ancestry never changes and can be read without the chain lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from concurrent.futures import Executor
from pathlib import Path

from node import clock
from node.config import ConfigError
from node.p2p import messages as m
from node.p2p import permissions as perm
from node.p2p.addrman import AddrMan
from node.p2p.banman import BanMan
from node.p2p.connman import ADDR_FETCH, BLOCK_RELAY, FEELER, ConnMan
from node.p2p.netaddr import NetAddr
from node.p2p.peer import MANUAL, Peer
from node.p2p.relay import TX_MSG_TYPES, Relay
from node.p2p.sync import BlockSync

log = logging.getLogger("net")

PING_INTERVAL = 120.0
TIMEOUT_INTERVAL = 20 * 60.0  # Core's: no traffic (or no pong) for this long ends a peer
FEEFILTER_INTERVAL = 60.0
ADDR_RATE = 0.1  # addresses per second a peer may make us process (Core's token bucket)
MAX_ADDR_TOKENS = 1000
TICK = 0.05


class Timing:
    """Relay delays. Core's values on main; on regtest (local networks, where privacy does
    not matter and users watch things happen) much shorter."""

    def __init__(self, fast: bool) -> None:
        self.tx_inv_outbound = 0.05 if fast else 2.0  # Poisson means, seconds
        self.tx_inv_inbound = 0.05 if fast else 5.0
        self.addr_broadcast = 1.0 if fast else 30.0


class PeerManager:
    def __init__(self, chain, mempool, params, config, validation: Executor,
                 datadir: Path | None, user_agent: str) -> None:
        self.chain = chain
        self.mempool = mempool
        self.params = params
        self.validation = validation
        self.user_agent = user_agent
        # Core's: NETWORK_LIMITED always, NETWORK unless pruned, BLOOM with -peerbloomfilters
        self.pruned = config.arg_int("prune") > 0
        self.local_services = m.NODE_NETWORK_LIMITED | m.NODE_WITNESS
        if not self.pruned:
            self.local_services |= m.NODE_NETWORK
        if config.arg_bool("peerbloomfilters"):
            self.local_services |= m.NODE_BLOOM
        if config.arg_bool("v2transport", True):  # BIP324
            self.local_services |= m.NODE_P2P_V2
        self.logips = config.arg_bool("logips")
        self.blocksonly = config.arg_bool("blocksonly")  # Core's ignore_incoming_txs
        self.inbound_relay_percent = min(max(config.arg_int("inboundrelaypercent", 50), 0), 100)
        self.peer_timeout = float(config.peertimeout)
        # Core's -maxsendbuffer (kB): a peer with more unsent is paused (peer.py)
        self.send_buffer_pause = max(config.arg_int("maxsendbuffer", 5000), 0) * 1000
        self.ping_timeout = float(config.pingtimeout)
        self.timing = Timing(params.name == "regtest")
        self.banman = BanMan(datadir, now=clock.now)  # ban expiry on the mockable clock
        self.addrman = AddrMan(datadir)
        connect = [c for c in config.connect if c not in ("0", "")]
        listen = config.listen if config.listen is not None else not connect
        if config.port is not None and not 0 < config.port < 65536:
            raise ConfigError(f"Error: Invalid port specified in -port: '{config.port}'")
        try:
            whitelist = [perm.parse_whitelist(w) for w in config.arg_list("whitelist")]
            whitebinds = [perm.parse_whitebind(w) for w in config.arg_list("whitebind")]
        except perm.PermissionSyntaxError as err:
            raise ConfigError(f"Error: {err}") from None
        relay = config.arg_bool("whitelistrelay", True)
        force = config.arg_bool("whitelistforcerelay", False)
        for w in whitelist:
            w.flags = perm.resolve_implicit(w.flags, relay, force)
        for w in whitebinds:
            w.flags = perm.resolve_implicit(w.flags, relay, force)
        self.connman = ConnMan(
            self, params.message_start, params.default_port, listen=listen,
            binds=config.bind, port=config.port, connect=connect, addnode=config.addnode,
            max_connections=config.maxconnections, connect_timeout=config.timeout / 1000,
            auto_outbound=not config.connect,  # -connect=0 as well: no automatic peers
            whitelist=whitelist, whitebinds=whitebinds,
        )
        self.sync = BlockSync(self)
        self.sync.extra_txns.limit = max(config.arg_int("blockreconstructionextratxn", 100), 0)
        self.relay = Relay(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._last_save = time.monotonic()
        self._addr_salt = random.randbytes(16)
        self._addr_cache: dict[tuple, tuple[float, list[NetAddr]]] = {}
        self._handlers = {
            "verack": self.on_verack,
            "ping": self.on_ping,
            "pong": self.on_pong,
            "feefilter": self.on_feefilter,
            "sendheaders": self.on_sendheaders,
            "getaddr": self.on_getaddr,
            "addr": self.on_addr,
            "addrv2": self.on_addr,
            "sendcmpct": self.on_sendcmpct,
            "cmpctblock": self.sync.on_cmpctblock,
            "blocktxn": self.sync.on_blocktxn,
            "getblocktxn": self.sync.on_getblocktxn,
            "mempool": self.on_mempool,
            "filterload": self.on_filterload,
            "filteradd": self.on_filteradd,
            "filterclear": self.on_filterclear,
            "getheaders": self.sync.on_getheaders,
            "getblocks": self.sync.on_getblocks,
            "headers": self.sync.on_headers,
            "block": self.sync.on_block,
            "inv": self.on_inv,
            "getdata": self.on_getdata,
            "notfound": self.relay.on_notfound,
            "tx": self.on_tx,
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.relay.subscribe()
        self.sync.subscribe()
        await self.connman.start()
        self._tasks.append(asyncio.ensure_future(self._tick()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.connman.stop()
        self.save()

    def add_handlers(self, handlers: dict) -> None:
        """Serve more message types (a service such as BIP157's filters registers its own)."""
        self._handlers.update(handlers)

    def save(self) -> None:
        self.addrman.sweep()
        for what in (self.addrman, self.banman):
            try:
                what.save()
            except OSError as err:
                log.error("cannot save %s: %s", what.path, err)

    def validate(self, fn, *args) -> asyncio.Future:
        """Run fn on the validation thread (where every change to the chain is made)."""
        return self.loop.run_in_executor(self.validation, fn, *args)

    def limit_validation_queue(self, timeout: float = 10.0) -> None:
        """Core's LimitValidationInterfaceQueue, for a thread that connects block after block
        (generatetoaddress): before the next one, wait until the event loop has taken the
        tip change the last one made (and with it what peers asked meanwhile: headers,
        blocks). Core's miner cannot run ahead of its validation-interface queue, and its
        message handler runs beside it; here the miner would otherwise keep the loop from
        serving peers while it mines hundreds of blocks, and a pruned miner's peers would
        fall more than NODE_NETWORK_LIMITED_MIN_BLOCKS behind, past what they may ask it
        for. No wait without a pending tip change, on the loop's own thread, or while the
        loop is not running."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running() or \
                not self.sync.tip_change_pending():
            return
        try:
            if asyncio.get_running_loop() is loop:
                return
        except RuntimeError:
            pass  # (no loop in this thread: the usual case, an RPC worker thread)
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout)
        except Exception:  # (a loop shutting down, or too busy: carry on, as before)
            pass

    def peers(self) -> list[Peer]:
        """Connected peers that completed the handshake."""
        return [p for p in self.connman.peers.values() if p.handshake_done and not p.closed]

    # -- one connection -------------------------------------------------------------------------

    async def run_peer(self, peer: Peer) -> None:
        peer.send_buffer_pause = self.send_buffer_pause
        if not peer.inbound:
            self.send_version(peer)
        try:
            await peer.run(self.handle)
        except Exception:  # a bug must cost one connection, never the node
            log.exception("peer=%d: error handling its messages", peer.id)
            peer.close("internal error")
        finally:
            self.sync.peer_gone(peer)
            self.relay.peer_gone(peer)

    async def handle(self, peer: Peer, command: str, msg) -> None:
        if command == "oversized":
            self.misbehaving(peer, 20, str(msg))
            return
        if command == "version":
            self.on_version(peer, msg)
            return
        if peer.version is None:
            log.debug("non-version message %s before the handshake from peer=%d", command,
                      peer.id)
            return
        if command in ("wtxidrelay", "sendaddrv2"):
            if peer.handshake_done:
                peer.close(f"{command} received after verack")
            elif command == "wtxidrelay":
                peer.wtxid_relay = peer.version.version >= m.WTXID_RELAY_VERSION
            else:
                peer.addrv2 = True
            return
        if not peer.handshake_done and command != "verack":
            log.debug("unsupported message %s before verack from peer=%d", command, peer.id)
            return
        if command != "block":
            # Core handles a peer's messages in order, each block processed before the
            # next message: tests (and peers) rely on it. Blocks themselves pipeline.
            await self.sync.blocks_processed(peer)
            if peer.closed:
                return
        if command != "tx":  # (and transactions, which are checked in batches)
            await self.relay.txs_processed(peer)
            if peer.closed:
                return
        if peer.handshake_done and hasattr(peer, "sync_started"):
            self.sync.peer_activity(peer)
            if peer.closed:
                return
        handler = self._handlers.get(command)
        if handler is not None:
            await handler(peer, msg)

    async def _ignore(self, peer: Peer, msg) -> None:
        return None

    # -- handshake ------------------------------------------------------------------------------

    def peer_log_ip(self, peer: Peer) -> str:
        """Core's LogIP: the peer's address in log lines only with -logips."""
        return f", peeraddr={peer.addr}" if self.logips else ""

    def disconnect_msg(self, peer: Peer) -> str:
        """Core's DisconnectMsg."""
        return f"disconnecting peer={peer.id}{self.peer_log_ip(peer)}"

    def reject_incoming_txs(self, peer: Peer) -> bool:
        """Core's RejectIncomingTxs: block-relay-only connections never send us
        transactions; in -blocksonly mode only peers with the relay permission may."""
        if peer.conn_type == BLOCK_RELAY:
            return True
        if perm.has(peer.permissions, perm.RELAY):
            return False
        return self.blocksonly

    def send_version(self, peer: Peer) -> None:
        peer.sent_version_nonce = random.getrandbits(64) or 1
        tip = self.chain.published
        relay = not self.reject_incoming_txs(peer) and peer.conn_type != FEELER
        peer.send(m.Version(
            version=m.PROTOCOL_VERSION, services=self.local_services,
            timestamp=clock.now_int(),
            addr_recv=NetAddr(peer.addr.net, peer.addr.addr, peer.addr.port),
            addr_from=NetAddr.unspecified(), nonce=peer.sent_version_nonce,
            user_agent=self.user_agent, start_height=tip.height if tip else 0, relay=relay,
        ))

    def on_version(self, peer: Peer, v: m.Version) -> None:
        if peer.version is not None:
            log.debug("redundant version message from peer=%d", peer.id)
            return
        if v.version < m.MIN_PEER_PROTO_VERSION:
            log.debug("peer=%d using obsolete version %d; %s", peer.id, v.version,
                      self.disconnect_msg(peer))
            peer.close(f"peer uses obsolete version {v.version}")
            return
        if peer.inbound and any(p.sent_version_nonce == v.nonce
                                for p in self.connman.peers.values() if not p.inbound):
            log.info("connected to self at %s, disconnecting", peer.addr)
            peer.close("connected to self")
            return
        if not peer.inbound and peer.conn_type != MANUAL:
            # Core's HasAllDesirableServiceFlags: witness, and full blocks (a pruned peer's
            # recent ones will do once we are out of the initial download)
            want = m.NODE_WITNESS | m.NODE_NETWORK
            if v.services & m.NODE_NETWORK_LIMITED and not self.chain.in_ibd():
                want = m.NODE_WITNESS | m.NODE_NETWORK_LIMITED
            if v.services & want != want:
                log.debug("peer=%d does not offer the expected services (%08x offered, %08x "
                          "expected); %s", peer.id, v.services, want, self.disconnect_msg(peer))
                peer.close(f"peer lacks the services we need ({v.services:#x})")
                return
        peer.version = v
        # Core's m_tx_relay: none for block-relay-only and feeler connections; for the others
        # when the peer asked for transactions, or may load a bloom filter later.
        peer.tx_relay = peer.conn_type not in (BLOCK_RELAY, FEELER) and \
            (v.relay or bool(self.local_services & m.NODE_BLOOM))
        peer.relay_txs = peer.tx_relay and v.relay
        peer.time_offset = v.timestamp - clock.now_int()
        peer.addr_local = str(v.addr_recv) if v.addr_recv.port else ""
        if peer.inbound:
            self.send_version(peer)
        if v.version >= m.WTXID_RELAY_VERSION:
            peer.send(m.WTxidRelay())
            peer.send(m.SendAddrV2())  # (BIP155: only to peers of version 70016 or later)
        peer.send(m.VerAck())
        log.debug("receive version message: %s: version %d, blocks=%d, us=%s, txrelay=%d, "
                  "peer=%d%s", _clean(v.user_agent), v.version, v.start_height,
                  v.addr_recv, v.relay, peer.id, self.peer_log_ip(peer))
        if peer.conn_type == FEELER:
            log.debug("feeler connection completed, %s", self.disconnect_msg(peer))
            peer.close("feeler connection completed")
            return
        if peer.inbound and peer.relay_txs:
            self.connman.check_inbound_tx_relay(peer)

    async def on_verack(self, peer: Peer, msg) -> None:
        if peer.handshake_done:
            log.debug("ignoring redundant verack message from peer=%d", peer.id)
            return
        peer.handshake_done = True
        version = peer.version.version
        if version >= m.SENDHEADERS_VERSION:
            peer.send(m.SendHeaders())
        if version >= m.SHORT_IDS_BLOCKS_VERSION:
            # BIP152: we serve compact blocks (version 2), announced by headers for now
            peer.send(m.SendCmpct(False, 2))
        if version >= m.FEEFILTER_VERSION and peer.tx_relay and \
                not self.reject_incoming_txs(peer):
            self.relay.send_fee_filter(peer)
        if not peer.inbound:
            if peer.conn_type != BLOCK_RELAY:
                peer.addr_tokens += MAX_ADDR_TOKENS  # (the answer may hold that many)
                peer.send(m.GetAddr())
            if peer.conn_type not in (ADDR_FETCH, BLOCK_RELAY):
                self.addrman.add([NetAddr(peer.addr.net, peer.addr.addr, peer.addr.port,
                                          peer.services)], "self")
                self.addrman.good(peer.addr)
        peer.next_inv_send = time.monotonic()
        self.send_ping(peer)
        if not peer.inbound:
            log.info("New %s %s peer connected: version: %d, blocks=%d, peer=%d%s",
                     peer.conn_type, getattr(peer, "transport_type", "v1"), version,
                     peer.version.start_height, peer.id, self.peer_log_ip(peer))
        self.sync.start(peer)

    async def on_sendheaders(self, peer: Peer, msg) -> None:
        peer.prefers_headers = True

    async def on_sendcmpct(self, peer: Peer, msg: m.SendCmpct) -> None:
        self.sync.on_sendcmpct(peer, msg)

    async def on_feefilter(self, peer: Peer, msg: m.FeeFilter) -> None:
        if 0 <= msg.feerate <= 21_000_000 * 100_000_000:  # Core's MoneyRange check
            peer.fee_filter = msg.feerate

    # -- transactions and inventory: what the peer may send us -----------------------------------

    async def on_tx(self, peer: Peer, msg) -> None:
        if self.reject_incoming_txs(peer):
            log.debug("transaction sent in violation of protocol, %s", self.disconnect_msg(peer))
            peer.close("transaction sent in violation of protocol")
            return
        await self.relay.on_tx(peer, msg)

    async def on_inv(self, peer: Peer, msg: m.InvMsg) -> None:
        if self.reject_incoming_txs(peer):
            for item in msg.items:
                if item.type in (m.MSG_TX, m.MSG_WTX, m.MSG_WITNESS_TX):
                    log.debug("transaction (%s) inv sent in violation of protocol, %s",
                              item.hash[::-1].hex(), self.disconnect_msg(peer))
                    peer.close("transaction inv sent in violation of protocol")
                    return
        await self.relay.on_inv(peer, msg)

    async def on_getdata(self, peer: Peer, msg: m.GetData) -> None:
        items = msg.items
        log.debug("received getdata (%d invsz) peer=%d", len(items), peer.id)
        if items:
            log.debug("received getdata for: %s peer=%d", _inv_str(items[0]), peer.id)
        # Transactions only to peers we relay transactions with (Core ignores the others'
        # requests); blocks are served by the block sync.
        txs = [i for i in items if i.type in TX_MSG_TYPES]
        if txs and peer.tx_relay:
            await self.relay.on_getdata(peer, m.GetData(txs))
        blocks = [i for i in items if i.type not in TX_MSG_TYPES]
        if blocks and not peer.closed:
            await self.sync.serve_blocks(peer, blocks)

    async def on_mempool(self, peer: Peer, msg) -> None:
        """BIP35: announce our whole mempool, only with bloom filters offered or the mempool
        permission."""
        if not self.local_services & m.NODE_BLOOM and \
                not perm.has(peer.permissions, perm.MEMPOOL):
            if not perm.has(peer.permissions, perm.NOBAN):
                log.debug("mempool request with bloom filters disabled, %s",
                          self.disconnect_msg(peer))
                peer.close("mempool request with bloom filters disabled")
            return
        if not peer.tx_relay:
            return
        for e in list(self.mempool.entries.values()):
            rate = e.modified_fee * 1000 // e.vsize if e.vsize else 0
            if rate >= peer.fee_filter:
                peer.tx_to_announce[e.tx.wtxid] = None

    def _bloom_allowed(self, peer: Peer, command: str) -> bool:
        if self.local_services & m.NODE_BLOOM:
            return True
        log.debug("%s received despite not offering bloom services, %s", command,
                  self.disconnect_msg(peer))
        peer.close(f"{command} received despite not offering bloom services")
        return False

    async def on_filterload(self, peer: Peer, msg: m.FilterLoad) -> None:
        if not self._bloom_allowed(peer, "filterload"):
            return
        if not msg.within_size_limits():
            self.misbehaving(peer, 100, "too-large bloom filter")
            return
        if peer.tx_relay:
            # (minibtc keeps no filter: the peer gets every transaction, as with no filter)
            peer.bloom_filter_loaded = True
            was_relaying = peer.relay_txs
            peer.relay_txs = True
            if peer.inbound and not was_relaying:
                self.connman.check_inbound_tx_relay(peer, "filterload")

    async def on_filteradd(self, peer: Peer, msg: m.FilterAdd) -> None:
        if not self._bloom_allowed(peer, "filteradd"):
            return
        if len(msg.data) > m.MAX_SCRIPT_ELEMENT_SIZE or not peer.bloom_filter_loaded:
            self.misbehaving(peer, 100, "bad filteradd message")

    async def on_filterclear(self, peer: Peer, msg) -> None:
        if not self._bloom_allowed(peer, "filterclear"):
            return
        if peer.tx_relay:
            peer.bloom_filter_loaded = False
            peer.relay_txs = True

    # -- keep-alive -------------------------------------------------------------------------------

    def send_ping(self, peer: Peer, force: bool = False) -> None:
        """One outstanding ping at a time, unless asked for (the ping RPC, as Core's queued
        pings, replaces the outstanding one)."""
        if peer.ping_nonce and not force:
            return
        peer.ping_nonce = random.getrandbits(64) or 1
        peer.ping_sent_at = time.monotonic()
        peer.send(m.Ping(peer.ping_nonce))

    def ping_all(self) -> None:
        for p in self.peers():
            self.send_ping(p, force=True)

    async def on_ping(self, peer: Peer, msg: m.Ping) -> None:
        peer.send(m.Pong(msg.nonce))

    async def on_pong(self, peer: Peer, msg: m.Pong) -> None:
        if not peer.ping_nonce:
            return  # unsolicited
        if msg.nonce == peer.ping_nonce:
            rtt = time.monotonic() - peer.ping_sent_at
            peer.ping_time = rtt
            peer.min_ping = rtt if peer.min_ping is None else min(peer.min_ping, rtt)
            peer.ping_nonce = 0
        elif msg.nonce == 0:
            peer.ping_nonce = 0  # Core: a zero nonce cancels the ping

    def _check_alive(self, peer: Peer, now_mono: float, now: float) -> None:
        age = now - peer.connected_at
        if not peer.handshake_done:
            if age > self.peer_timeout:
                # (Core's lines: "V2" while the transport is still being set up)
                why = "V2 handshake timeout" if peer.transport_type == "detecting" else \
                    "version handshake timeout"
                log.debug("%s peer=%d", why, peer.id)
                peer.close(why)
            return
        if peer.ping_nonce and now_mono - peer.ping_sent_at > self.ping_timeout:
            peer.close(f"ping timeout: {now_mono - peer.ping_sent_at:.1f}s")
            return
        if age > self.peer_timeout and (now - peer.last_recv > TIMEOUT_INTERVAL
                                        or now - peer.last_send > TIMEOUT_INTERVAL):
            peer.close("socket timeout: no traffic")
            return
        if not peer.ping_nonce and now_mono - peer.ping_sent_at > PING_INTERVAL:
            self.send_ping(peer)

    # -- misbehaviour -----------------------------------------------------------------------------

    def misbehaving(self, peer: Peer, howmuch: int, reason: str) -> None:
        """Core's Misbehaving and MaybeDiscourageAndDisconnect (since v28 there are no
        scores: any misbehaviour, howmuch > 0, ends the connection and discourages the
        address): noban peers and manual connections are kept (the operator asked for
        them), local ones only disconnected (discouraging a local address would refuse
        every peer on this machine). A peer that already hung up is still discouraged."""
        if howmuch <= 0:
            return
        peer.misbehavior += howmuch
        log.debug("Misbehaving: peer=%d: %s", peer.id, reason)
        if perm.has(peer.permissions, perm.NOBAN):
            log.warning("Warning: not punishing noban peer %d!", peer.id)
            return
        if peer.conn_type == MANUAL:
            log.warning("Warning: not punishing manually connected peer %d!", peer.id)
            return
        if peer.addr.is_local():
            log.warning("Warning: disconnecting but not discouraging local peer %d!", peer.id)
            peer.close(f"misbehaving ({reason})")
            return
        log.debug("Disconnecting and discouraging peer %d!", peer.id)
        self.banman.discourage(peer.addr.ip)
        peer.close(f"discouraged for misbehaving ({reason})")

    # -- addresses --------------------------------------------------------------------------------

    async def on_getaddr(self, peer: Peer, msg) -> None:
        # Only inbound peers are answered, once per connection (Core: outbound ones could
        # fingerprint us through the answer); never on block-relay-only connections.
        if not peer.inbound:
            log.debug("Ignoring \"getaddr\" from %s connection. peer=%d", peer.conn_type,
                      peer.id)
            return
        if peer.getaddr_answered:
            log.debug("Ignoring repeated \"getaddr\". peer=%d", peer.id)
            return
        peer.getaddr_answered = True
        if perm.has(peer.permissions, perm.ADDR):
            addrs = self.addrman.get_addr(m.MAX_ADDR_TO_SEND, 0)
        else:
            addrs = self._cached_addrs(peer)
        if not peer.addrv2:
            addrs = [a for a in addrs if a.is_addrv1_compatible]
        for a in addrs:
            peer.known_addrs.add(_addr_key(a))
        peer.send(m.AddrV2(addrs) if peer.addrv2 else m.Addr(addrs))

    def _cached_addrs(self, peer: Peer) -> list[NetAddr]:
        """Core's getaddr cache: one answer per local address (the one the peer connected
        to) for 21 to 27 hours, so that asking again, or through another connection, tells
        nothing new about the address book (and two binds cannot be linked by it)."""
        now = clock.now()
        key = (peer.addr_bind.net, peer.addr_bind.addr, peer.addr_bind.port)
        cached = self._addr_cache.get(key)
        if cached is None or cached[0] < now:
            addrs = self.addrman.get_addr(m.MAX_ADDR_TO_SEND, 23)
            cached = (now + 21 * 3600 + random.uniform(0, 6 * 3600), addrs)
            self._addr_cache[key] = cached
        return [NetAddr(a.net, a.addr, a.port, a.services, a.time) for a in cached[1]]

    async def on_addr(self, peer: Peer, msg) -> None:
        if peer.conn_type == BLOCK_RELAY:
            return  # (Core: no address relay on block-relay-only connections)
        if peer.conn_type == ADDR_FETCH and len(msg.addrs) > 1:
            log.debug("addrfetch connection completed, %s", self.disconnect_msg(peer))
            peer.close("addrfetch connection completed")
        now = clock.now()
        mono = time.monotonic()
        peer.addr_tokens = min(peer.addr_tokens + (mono - peer.addr_token_time) * ADDR_RATE,
                               max(peer.addr_tokens, MAX_ADDR_TOKENS))
        peer.addr_token_time = mono
        batch = msg.addrs
        good: list[NetAddr] = []
        unlimited = perm.has(peer.permissions, perm.ADDR)
        processed = limited = 0
        for a in batch:
            if peer.addr_tokens < 1 and not unlimited:
                peer.addr_rate_limited += 1
                limited += 1
                continue
            if not unlimited:
                peer.addr_tokens -= 1
            peer.addr_processed += 1
            processed += 1
            peer.known_addrs.add(_addr_key(a))
            if a.time <= 100_000_000 or a.time > now + 600:
                a.time = int(now - 5 * 86400)
            if not a.is_routable() or self.banman.is_banned(a.ip) or \
                    self.banman.is_discouraged(a.ip):
                continue
            good.append(a)
            if len(batch) <= 10 and a.time > now - 600:
                self._relay_address(a, peer)
        log.debug("Received addr: %d addresses (%d processed, %d rate-limited) from peer=%d",
                  len(batch), processed, limited, peer.id)
        if good:
            self.addrman.add(good, peer.addr.host(), penalty=2 * 60 * 60)

    def _relay_address(self, a: NetAddr, source: Peer) -> None:
        """Pass a fresh address on to two other peers (Core's RelayAddress): the same two
        for a given address all day, so announcing it again does not spread it further."""
        key = _addr_key(a)
        day = int(clock.now() // 86400).to_bytes(8, "little")
        candidates = [p for p in self.peers() if p is not source and key not in p.known_addrs
                      and p.conn_type != BLOCK_RELAY
                      and (p.addrv2 or a.is_addrv1_compatible)]
        candidates.sort(key=lambda p: hashlib.sha256(
            self._addr_salt + key + day + p.id.to_bytes(8, "little")).digest())
        for p in candidates[:2]:
            if len(p.addr_to_send) < m.MAX_ADDR_TO_SEND:
                p.addr_to_send.append(a)

    def _flush_addrs(self, peer: Peer) -> None:
        addrs, peer.addr_to_send = peer.addr_to_send, []
        fresh = [a for a in addrs if _addr_key(a) not in peer.known_addrs]
        for a in fresh:
            peer.known_addrs.add(_addr_key(a))
        if fresh:
            peer.send(m.AddrV2(fresh) if peer.addrv2 else m.Addr(fresh))

    # -- periodic work ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        last_slow = 0.0
        next_addr = time.monotonic() + self.timing.addr_broadcast
        while True:
            await asyncio.sleep(TICK)
            try:
                mono = time.monotonic()
                self.relay.tick(mono)
                if mono - last_slow >= 1.0:
                    last_slow = mono
                    now = clock.now()
                    for peer in list(self.connman.peers.values()):
                        if not peer.closed:
                            self._check_alive(peer, mono, now)
                    self.sync.tick(mono)
                    self.relay.tick_slow(mono)
                    if mono - self._last_save > 15 * 60:
                        self._last_save = mono
                        self.save()
                if mono >= next_addr:
                    next_addr = mono + random.expovariate(1 / self.timing.addr_broadcast)
                    for peer in self.peers():
                        if peer.addr_to_send:
                            self._flush_addrs(peer)
            except Exception:  # a bug here must not stop the node's networking
                log.exception("P2P maintenance failed")


_INV_NAMES = {m.MSG_TX: "tx", m.MSG_BLOCK: "block", m.MSG_FILTERED_BLOCK: "merkleblock",
              m.MSG_CMPCT_BLOCK: "cmpctblock", m.MSG_WTX: "wtx"}


def _inv_str(item: m.Inv) -> str:
    """Core's CInv::ToString: "wtx 1234...", "witness-block 0abc..."."""
    name = _INV_NAMES.get(item.type & ~m.MSG_WITNESS_FLAG, f"0x{item.type:08x}")
    if item.type & m.MSG_WITNESS_FLAG and item.type & ~m.MSG_WITNESS_FLAG in _INV_NAMES:
        name = "witness-" + name
    return f"{name} {item.hash[::-1].hex()}"


def _clean(s: str) -> str:
    """Core's SanitizeString for the user agent."""
    return "".join(c for c in s if c.isalnum() or c in " .,;-_/:?@()")


def _addr_key(a: NetAddr) -> bytes:
    return bytes([a.net]) + a.addr + a.port.to_bytes(2, "big")
