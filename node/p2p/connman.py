"""The connection manager (Core's CConnman): listening sockets, outbound connections
(-connect, -addnode and the address book), connection limits, bans at the door, and the
node's byte totals. What is said over a connection is the PeerManager's business.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import random
import socket

from node.p2p import messages as m
from node.p2p import permissions as perm
from node.p2p.messages import NODE_P2P_V2
from node.p2p.netaddr import AddressError, NetAddr, split_host_port
from node.p2p.peer import INBOUND, MANUAL, OUTBOUND_FULL_RELAY, Peer
from node.p2p.v2transport import V2Transport

log = logging.getLogger("net")

BLOCK_RELAY = "block-relay-only"
FEELER = "feeler"
ADDR_FETCH = "addr-fetch"

MAX_OUTBOUND_FULL_RELAY = 8
MAX_BLOCK_RELAY_ONLY = 2
MAX_FEELER = 1
# Slots kept for automatic outbound connections (Core's m_max_automatic_outbound): what
# -maxconnections leaves beyond them is for inbound peers.
MAX_AUTOMATIC_OUTBOUND = MAX_OUTBOUND_FULL_RELAY + MAX_BLOCK_RELAY_ONLY + MAX_FEELER
_DESIRABLE = m.NODE_NETWORK | m.NODE_WITNESS
ADDED_NODE_RETRY = 1.0  # seconds between attempts to reach a disconnected added node
CONNECT_RETRY = 0.5  # -connect: Core retries every 500 ms
OPEN_CONNECTIONS_INTERVAL = 0.5  # seconds between automatic outbound attempts


class ConnMan:
    def __init__(self, manager, magic: bytes, default_port: int, *, listen: bool = True,
                 binds: list[str] = (), port: int | None = None, connect: list[str] = (),
                 addnode: list[str] = (), max_connections: int = 125,
                 connect_timeout: float = 5.0, auto_outbound: bool = True,
                 whitelist: list[perm.Whitelisted] = (),
                 whitebinds: list[perm.Whitebind] = ()) -> None:
        self.manager = manager
        self.magic = magic
        self.default_port = default_port
        self.listen = listen
        self.binds = list(binds)
        self.port = default_port if port is None else port
        self.connect = list(connect)
        self.added: list[str] = list(addnode)
        self.added_v2: dict[str, bool] = {}  # addnode's v2transport (default: -v2transport)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.auto_outbound = auto_outbound and not self.connect
        self.whitelist = list(whitelist)
        self.whitebinds = list(whitebinds)
        self.bind_flags: dict[tuple[str, int], int] = {}  # listening (host, port) -> flags
        self._netgroup_key = random.randbytes(8)
        self.pending_automatic: set[str] = set()  # addconnection dials under way
        self.peers: dict[int, Peer] = {}
        self.next_id = 0
        self.servers: list[asyncio.AbstractServer] = []
        self.listening: list[tuple[str, int]] = []
        self.tasks: set[asyncio.Task] = set()
        self.connecting: set[str] = set()  # added/-connect names being dialled
        self.network_active = True
        self.closed_bytes_sent = 0
        self.closed_bytes_recv = 0
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.listen:
            any_bound = False
            for host, port, flags, required in self._bind_addresses():
                try:
                    srv = await asyncio.start_server(self._accept, host, port,
                                                     reuse_address=True, limit=1 << 20)
                except OSError as err:
                    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    if err.errno == errno.EADDRINUSE:
                        msg = (f"Unable to bind to {shown} on this computer. minibtcd is "
                               f"probably already running.")
                    else:
                        msg = (f"Unable to bind to {shown} on this computer (bind returned "
                               f"error {err.strerror})")
                    log.error("%s", msg)
                    if required:
                        raise OSError(msg) from None
                    continue
                any_bound = True
                self.servers.append(srv)
                for sock in srv.sockets:
                    name = sock.getsockname()[:2]
                    self.listening.append(name)
                    self.bind_flags[(name[0], name[1])] = flags
                    shown = f"[{name[0]}]:{name[1]}" if ":" in name[0] else \
                        f"{name[0]}:{name[1]}"
                    log.info("Bound to %s", shown)
            if not any_bound:
                raise OSError("Failed to listen on any port. Use -listen=0 if you want this.")
        self.started = True
        self._spawn(self._open_connections())
        self._spawn(self._added_nodes())

    async def stop(self) -> None:
        self.started = False
        for srv in self.servers:
            srv.close()
        for t in list(self.tasks):
            t.cancel()
        for peer in list(self.peers.values()):
            peer.close("shutting down")
        for srv in self.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except Exception:
                pass
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)

    @property
    def v2_enabled(self) -> bool:
        """-v2transport: we advertise NODE_P2P_V2, speak v2 to peers that do and detect the
        transport of inbound connections."""
        return bool(self.manager.local_services & NODE_P2P_V2)

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    def _bind_addresses(self) -> list[tuple[str, int, int, bool]]:
        """(host, port, permission flags, whether failing is fatal) to listen on, as Core's
        InitBinds: -bind (host[:port], default -port), -whitebind (with its permissions),
        -bind=host[:port]=onion (the onion service target, default port -port + 1; with
        neither, 127.0.0.1:(-port + 1) is), and without -bind or -whitebind every interface
        ([::] if the system has IPv6, and 0.0.0.0)."""
        out: list[tuple[str, int, int, bool]] = []
        onion: list[tuple[str, int, int, bool]] = []
        plain = 0
        for b in self.binds:
            text, sep, kind = b.rpartition("=")
            if not sep:
                text, kind = b, ""
            try:
                if kind == "onion":
                    host, port = split_host_port(text, self.port + 1)
                    onion.append((host, port, 0, True))
                    continue
                if kind:
                    raise AddressError(b)
                host, port = split_host_port(b, self.port)
            except AddressError:
                raise OSError(f"Cannot resolve -bind address: '{b}'") from None
            out.append((host, port, 0, True))
            plain += 1
        for w in self.whitebinds:
            out.append((w.host, w.port, w.flags, True))
        if not onion and not plain:
            # (Core fails to start when this one is taken; minibtc only says so, as the
            # port next to -port is often another local node's)
            onion.append(("127.0.0.1", self.port + 1, 0, False))
        out += onion
        if not self.binds and not self.whitebinds:
            if socket.has_ipv6:
                out.append(("::", self.port, 0, False))
            out.append(("0.0.0.0", self.port, 0, True))
        return out

    # -- counting ---------------------------------------------------------------------------

    def count(self, inbound: bool | None = None) -> int:
        return sum(1 for p in self.peers.values()
                   if not p.closed and (inbound is None or p.inbound == inbound))

    def outbound_full_relay(self) -> int:
        return sum(1 for p in self.peers.values()
                   if not p.closed and p.conn_type == OUTBOUND_FULL_RELAY)

    @property
    def max_inbound(self) -> int:
        return max(self.max_connections - MAX_AUTOMATIC_OUTBOUND, 0)

    @property
    def max_inbound_tx_relay(self) -> int:
        """Inbound peers we relay transactions with (Core's -inboundrelaypercent of the
        inbound slots); the others are block-relay peers."""
        return self.max_inbound * self.manager.inbound_relay_percent // 100

    def totals(self) -> tuple[int, int]:
        """(bytes received, bytes sent) since start-up, closed connections included."""
        recv = self.closed_bytes_recv + sum(p.bytes_recv for p in self.peers.values())
        sent = self.closed_bytes_sent + sum(p.bytes_sent for p in self.peers.values())
        return recv, sent

    def connected_to(self, name: str) -> Peer | None:
        """The peer that an added-node string (host:port) refers to, if connected."""
        for p in self.peers.values():
            if p.closed:
                continue
            if p.added_name == name or str(p.addr) == name or (
                    not p.inbound and self._same_endpoint(name, p.addr)):
                return p
        return None

    def _same_endpoint(self, name: str, addr: NetAddr) -> bool:
        try:
            host, port = split_host_port(name, self.default_port)
            return NetAddr.from_ip(host, port) == addr
        except AddressError:
            return False

    # -- inbound ----------------------------------------------------------------------------

    def permissions_for(self, addr: NetAddr, inbound: bool, bind_flags: int = 0) -> int:
        """The permission flags of a connection: its listening socket's (-whitebind) and
        those of every -whitelist entry matching its address in its direction."""
        flags = bind_flags
        ip = addr.ip
        if ip is not None:
            direction = perm.DIR_IN if inbound else perm.DIR_OUT
            for w in self.whitelist:
                if w.directions & direction and ip.version == w.subnet.version and \
                        ip in w.subnet:
                    flags |= w.flags
        return flags

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("sockname")
        peername = writer.get_extra_info("peername")
        try:
            addr = NetAddr.from_sockaddr(peername)
            bind = NetAddr.from_sockaddr(sock)
        except (AddressError, TypeError, IndexError):
            writer.close()
            return
        flags = self.permissions_for(addr, True, self.bind_flags.get(tuple(sock[:2]), 0))
        noban = perm.has(flags, perm.NOBAN)
        why = None
        if not self.network_active:
            why = "network not active"
        elif not noban and self.manager.banman.is_banned(addr.ip):
            why = "banned"
        elif not noban and self.manager.banman.is_discouraged(addr.ip) and \
                self.count(inbound=True) + 1 >= self.max_inbound:
            why = "discouraged"  # (Core: discouraged peers only take a free slot)
        elif self.count(inbound=True) >= self.max_inbound:
            victim = self.select_to_evict([p for p in self.peers.values()
                                           if p.inbound and not p.closed])
            if victim is None:
                log.debug("failed to find an eviction candidate - connection dropped (full)")
                why = "inbound connection slots full"
            else:
                log.debug("selected %s for eviction, %s", victim.conn_type,
                          self.manager.disconnect_msg(victim))
                victim.close("evicted: inbound slots full")
        if why is not None:
            log.debug("connection from %s dropped (%s)", addr, why)
            writer.close()
            return
        sock_obj = writer.get_extra_info("socket")
        if sock_obj is not None:
            sock_obj.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self._new_peer(reader, writer, INBOUND, addr, bind, v2=self.v2_enabled,
                              permissions=flags)
        await self._run(peer)

    def select_to_evict(self, peers: list[Peer]) -> Peer | None:
        """Core's SelectNodeToEvict: protect the peers an attacker finds hardest to imitate
        (4 by network group, 8 with the lowest ping, 4 that sent us transactions last, up to
        8 block-relay peers and 4 others that sent us blocks last, then half of the rest by
        uptime), then drop the youngest peer of the network group with the most
        connections. None if every candidate is protected."""
        c = [p for p in peers if not perm.has(p.permissions, perm.NOBAN)]

        def protect(key, k: int, pred=None) -> None:
            nonlocal c
            chosen = [p for p in c if pred is None or pred(p)]
            chosen.sort(key=key)
            keep = {id(p) for p in chosen[len(chosen) - k:]} if k else set()
            c = [p for p in c if id(p) not in keep]

        protect(lambda p: self._netgroup(p), 4)
        protect(lambda p: -(p.min_ping if p.min_ping is not None else float("inf")), 8)
        protect(lambda p: (p.last_tx_time, p.connected_at), 4)
        protect(lambda p: (p.last_block_time, p.connected_at), 8,
                lambda p: not p.relay_txs and p.services & _DESIRABLE == _DESIRABLE)
        protect(lambda p: (p.last_block_time, p.connected_at), 4)
        protect(lambda p: -p.connected_at, len(c) // 2)
        if not c:
            return None
        groups: dict[bytes, list[Peer]] = {}
        for p in c:
            groups.setdefault(self._netgroup(p), []).append(p)
        biggest = max(groups.values(), key=lambda g: (len(g), max(p.connected_at for p in g)))
        return max(biggest, key=lambda p: p.connected_at)

    def _netgroup(self, peer: Peer) -> bytes:
        """A keyed hash of the peer's network group (/16 for IPv4, /32 for IPv6)."""
        a = peer.addr
        prefix = a.addr[:2] if a.net == 1 else a.addr[:4]
        return hashlib.sha256(self._netgroup_key + bytes([a.net]) + prefix).digest()[:8]

    def check_inbound_tx_relay(self, peer: Peer, trigger: str = "") -> None:
        """An inbound peer has just asked for transactions: past the inbound share for
        transaction relay (-inboundrelaypercent), another such peer is evicted to make
        room, or else this one is dropped."""
        if perm.has(peer.permissions, perm.NOBAN):
            return
        relaying = [p for p in self.peers.values() if p.inbound and not p.closed
                    and p.relay_txs and p.version is not None]
        if len(relaying) <= self.max_inbound_tx_relay:
            return
        victim = self.select_to_evict([p for p in relaying if p is not peer])
        if victim is not None:
            log.debug("selected tx-relaying peer for eviction, %s",
                      self.manager.disconnect_msg(victim))
            victim.close("evicted: no room for another transaction-relaying inbound peer")
            return
        if trigger:
            log.debug("failed to find a tx-relaying eviction candidate - connection dropped "
                      "after %s message, %s", trigger, self.manager.disconnect_msg(peer))
        else:
            log.debug("failed to find a tx-relaying eviction candidate - connection dropped, "
                      "%s", self.manager.disconnect_msg(peer))
        peer.close("no room for another transaction-relaying inbound peer")

    # -- outbound ---------------------------------------------------------------------------

    async def dial(self, name: str, conn_type: str = MANUAL, addr: NetAddr | None = None,
                   use_v2: bool | None = None) -> Peer | None:
        """Connect to host[:port] (a name is resolved); None if it cannot be reached. BIP324
        v2 is tried when use_v2 says so; by default (as Core) with -v2transport for manual
        connections and for others when the address advertises NODE_P2P_V2."""
        if use_v2 is None:
            use_v2 = self.v2_enabled and (conn_type == MANUAL or (
                addr is not None and bool(addr.services & NODE_P2P_V2)))
        try:
            host, port = split_host_port(name, self.default_port)
        except AddressError as err:
            log.info("cannot connect to %r: %s", name, err)
            return None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=1 << 20), self.connect_timeout)
        except (TimeoutError, OSError) as err:
            log.debug("connecting to %s failed: %s", name, err or "timeout")
            return None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            remote = NetAddr.from_sockaddr(writer.get_extra_info("peername"))
            bind = NetAddr.from_sockaddr(writer.get_extra_info("sockname"))
        except (AddressError, TypeError, IndexError):
            writer.close()
            return None
        flags = self.permissions_for(remote, False)
        if self.manager.banman.is_banned(remote.ip) and conn_type != MANUAL and \
                not perm.has(flags, perm.NOBAN):
            writer.close()
            return None
        peer = self._new_peer(reader, writer, conn_type, remote, bind,
                              added_name=name if conn_type == MANUAL else None, v2=use_v2,
                              permissions=flags)
        self._spawn(self._run(peer))
        return peer

    async def _added_nodes(self) -> None:
        """-connect and -addnode peers (and addnode RPC ones): reconnect whenever they drop."""
        while self.started:
            names = self.connect + [a for a in self.added if a not in self.connect]
            for name in names:
                if (self.network_active and name not in self.connecting
                        and self.connected_to(name) is None):
                    self.connecting.add(name)
                    self._spawn(self._dial_added(name))
            await asyncio.sleep(CONNECT_RETRY if self.connect else ADDED_NODE_RETRY)

    async def _dial_added(self, name: str, use_v2: bool | None = None) -> None:
        try:
            await self.dial(name, MANUAL, use_v2=self.added_v2.get(name) if use_v2 is None
                            else use_v2)
        finally:
            self.connecting.discard(name)

    async def _open_connections(self) -> None:
        """Automatic outbound connections from the address book (not with -connect)."""
        if not self.auto_outbound:
            return
        addrman = self.manager.addrman
        await asyncio.sleep(random.uniform(0, OPEN_CONNECTIONS_INTERVAL))
        while self.started:
            await asyncio.sleep(OPEN_CONNECTIONS_INTERVAL)
            if not self.network_active or self.outbound_full_relay() >= MAX_OUTBOUND_FULL_RELAY:
                continue
            exclude = {p.addr.key() for p in self.peers.values()}
            target = addrman.select(exclude)
            if target is None or self.manager.banman.is_banned(target.ip) or \
                    self.manager.banman.is_discouraged(target.ip):
                continue
            addrman.attempt(target)
            peer = await self.dial(str(target), OUTBOUND_FULL_RELAY, target)
            if peer is not None:
                log.debug("automatic outbound connection to %s", target)

    # -- peers ------------------------------------------------------------------------------

    def _new_peer(self, reader, writer, conn_type: str, addr: NetAddr, bind: NetAddr,
                  added_name: str | None = None, v2: bool = False,
                  permissions: int = 0) -> Peer:
        pid = self.next_id
        self.next_id += 1
        transport = V2Transport(conn_type != INBOUND, self.magic) if v2 else None
        peer = Peer(pid, reader, writer, conn_type, addr, bind, self.magic, added_name,
                    transport)
        peer.permissions = permissions
        peer.tx_relay = False  # (set from its version message: PeerManager.on_version)
        peer.bloom_filter_loaded = False
        self.peers[pid] = peer
        if peer.inbound:
            log.debug("connection from %s accepted", addr)
        log.debug("Added connection%s peer=%d", "" if peer.inbound or not self.manager.logips
                  else f" to {addr}", pid)
        return peer

    def add_connection(self, address: str, conn_type: str, v2: bool = False) -> bool:
        """Open an outbound connection of the given type (Core's AddConnection, the hidden
        addconnection RPC's): False when that type, or the automatic outbound slots, are
        full. The connection is made in the background."""
        limit = {OUTBOUND_FULL_RELAY: MAX_OUTBOUND_FULL_RELAY,
                 BLOCK_RELAY: MAX_BLOCK_RELAY_ONLY}.get(conn_type)
        live = [p for p in self.peers.values() if not p.closed]
        if limit is not None and sum(1 for p in live if p.conn_type == conn_type) >= limit:
            return False
        automatic = (OUTBOUND_FULL_RELAY, BLOCK_RELAY, FEELER, ADDR_FETCH)
        if sum(1 for p in live if p.conn_type in automatic) + len(self.pending_automatic) \
                >= min(MAX_AUTOMATIC_OUTBOUND, self.max_connections):
            return False
        self.pending_automatic.add(address)

        async def go() -> None:
            try:
                await self.dial(address, conn_type, use_v2=v2)
            finally:
                self.pending_automatic.discard(address)

        self._spawn(go())
        return True

    async def _run(self, peer: Peer) -> None:
        try:
            await self.manager.run_peer(peer)
        finally:
            peer.close(peer.disconnect_reason or "done")
            self.peers.pop(peer.id, None)
            self.closed_bytes_recv += peer.bytes_recv
            self.closed_bytes_sent += peer.bytes_sent
            if peer.v2_retry_v1 and self.started and self.network_active:
                # A v2 attempt that got no answer (a v1 peer drops our key): once more, v1.
                log.debug("retrying with v1 transport protocol for peer=%d", peer.id)
                self._retry_v1(peer)

    def _retry_v1(self, peer: Peer) -> None:
        if peer.conn_type == MANUAL and peer.added_name:
            name = peer.added_name
            if name in self.connecting:
                return
            self.connecting.add(name)
            self._spawn(self._dial_added(name, use_v2=False))
        else:
            self._spawn(self.dial(str(peer.addr), peer.conn_type, peer.addr, use_v2=False))

    def disconnect_matching(self, pred, reason: str) -> int:
        n = 0
        for p in list(self.peers.values()):
            if not p.closed and pred(p):
                p.close(reason)
                n += 1
        return n

    def set_network_active(self, active: bool) -> None:
        self.network_active = active
        if not active:
            self.disconnect_matching(lambda p: True, "network disabled")
