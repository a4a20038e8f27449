"""The connection manager (Core's CConnman): listening sockets, outbound connections
(-connect, -addnode and the address book), connection limits, bans at the door, and the
node's byte totals. What is said over a connection is the PeerManager's business.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket

from node.p2p.messages import NODE_P2P_V2
from node.p2p.netaddr import AddressError, NetAddr, split_host_port
from node.p2p.peer import INBOUND, MANUAL, OUTBOUND_FULL_RELAY, Peer
from node.p2p.v2transport import V2Transport

log = logging.getLogger("net")

MAX_OUTBOUND_FULL_RELAY = 8
ADDED_NODE_RETRY = 1.0  # seconds between attempts to reach a disconnected added node
CONNECT_RETRY = 0.5  # -connect: Core retries every 500 ms
OPEN_CONNECTIONS_INTERVAL = 0.5  # seconds between automatic outbound attempts


class ConnMan:
    def __init__(self, manager, magic: bytes, default_port: int, *, listen: bool = True,
                 binds: list[str] = (), port: int | None = None, connect: list[str] = (),
                 addnode: list[str] = (), max_connections: int = 125,
                 connect_timeout: float = 5.0, auto_outbound: bool = True) -> None:
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
            for host, port in self._bind_addresses():
                try:
                    srv = await asyncio.start_server(self._accept, host, port,
                                                     reuse_address=True, limit=1 << 20)
                except OSError as err:
                    raise OSError(f"Unable to bind to {host or '*'}:{port} on this computer "
                                  f"({err.strerror}). minibtcd is probably already running."
                                  ) from None
                self.servers.append(srv)
                for sock in srv.sockets:
                    self.listening.append(sock.getsockname()[:2])
            log.info("P2P listening on %s",
                     ", ".join(f"{h}:{p}" for h, p in self.listening) or "nothing")
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

    def _bind_addresses(self) -> list[tuple[str | None, int]]:
        if not self.binds:
            return [(None, self.port)]  # every interface, IPv4 and IPv6
        out = []
        for b in self.binds:
            host, port = split_host_port(b.split("=")[0], self.port)
            out.append((host, port))
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
        return max(self.max_connections - MAX_OUTBOUND_FULL_RELAY, 0)

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

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("sockname")
        peername = writer.get_extra_info("peername")
        try:
            addr = NetAddr.from_sockaddr(peername)
            bind = NetAddr.from_sockaddr(sock)
        except (AddressError, TypeError, IndexError):
            writer.close()
            return
        why = None
        if not self.network_active:
            why = "network not active"
        elif self.manager.banman.is_banned(addr.ip):
            why = "banned"
        elif self.manager.banman.is_discouraged(addr.ip):
            why = "discouraged"
        elif self.count(inbound=True) >= self.max_inbound and not self._evict_inbound():
            why = "inbound connection slots full"
        if why is not None:
            log.info("connection from %s refused (%s)", addr, why)
            writer.close()
            return
        sock_obj = writer.get_extra_info("socket")
        if sock_obj is not None:
            sock_obj.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self._new_peer(reader, writer, INBOUND, addr, bind, v2=self.v2_enabled)
        await self._run(peer)

    def _evict_inbound(self) -> bool:
        """Make room for a new inbound peer by dropping the oldest inbound connection that
        has not finished its handshake (a much simpler rule than Core's eviction, which
        weighs many properties; honest peers that completed the handshake are kept)."""
        idle = [p for p in self.peers.values()
                if p.inbound and not p.closed and not p.handshake_done]
        if not idle:
            return False
        min(idle, key=lambda p: p.connected_at).close("evicted: inbound slots full")
        return True

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
        if self.manager.banman.is_banned(remote.ip) and conn_type != MANUAL:
            writer.close()
            return None
        peer = self._new_peer(reader, writer, conn_type, remote, bind,
                              added_name=name if conn_type == MANUAL else None, v2=use_v2)
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
                  added_name: str | None = None, v2: bool = False) -> Peer:
        pid = self.next_id
        self.next_id += 1
        transport = V2Transport(conn_type != INBOUND, self.magic) if v2 else None
        peer = Peer(pid, reader, writer, conn_type, addr, bind, self.magic, added_name,
                    transport)
        self.peers[pid] = peer
        log.info("%s connection peer=%d %s", "inbound" if peer.inbound else "outbound", pid,
                 addr)
        return peer

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
