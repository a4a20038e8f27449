"""One peer connection: framing over an asyncio stream, byte counters, and the per-peer
protocol state the message handlers keep (handshake, relay preferences, sync progress).

The transport is v1 (Bitcoin's plain framing) or BIP324's v2 (node/p2p/v2transport.py): a
connection made with a V2Transport runs its handshake first; an inbound one detects from the
peer's first 16 bytes whether it speaks v1, and then continues as any v1 connection. Once a
connection speaks v1, its reads and writes are the v1 code alone.

Reading is sequential: the next message is read only once the handler of the previous one
returns, so a peer that floods us fills its own TCP window and no buffer of ours. Writes go
straight to the transport. A peer whose unsent data grows past -maxsendbuffer (5 MB; it asks
faster than it reads) is paused, as Core's fPauseSend: its messages are not read or handled
until it has taken what we sent, and a long answer (getdata) waits in the middle; it is not
disconnected. Block serving also waits for the buffer to drain, so a slow peer stalls only
itself. Only unsent data past MAX_SEND_BUFFER, which requests alone cannot reach, ends the
connection (a bound on memory).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from time import perf_counter

from consensus.serialize import DeserializationError
from node import clock
from node.p2p import messages as m
from node.p2p import v2transport as v2t
from node.p2p.netaddr import NetAddr
from node.p2p.v2transport import V2Transport, V2TransportError

log = logging.getLogger("net")

SEND_BUFFER_PAUSE = 5_000_000  # unsent bytes: stop handling the peer's requests (Core's
# -maxsendbuffer default, 5,000 kB; the manager sets each peer's from the option)
MAX_SEND_BUFFER = 256 * 1024 * 1024  # unsent bytes a peer may leave us holding at most
DRAIN_ABOVE = 1024 * 1024  # block serving waits when more than this is unsent
STEP_BUDGET = 0.0005  # seconds of handling a peer's messages before the loop runs others
# Messages parsed in Python on a thread rather than on the event loop when this large (bytes;
# 2,000 headers take 4-5 ms to parse). Blocks and transactions are parsed on the validation
# thread already (messages.RawPayload).
OFFLOAD_DECODE = 16_000
OFFLOAD_COMMANDS = frozenset({"headers", "cmpctblock", "blocktxn"})
WAITED = 0.0002  # a read that took longer waited for its bytes (the loop ran others then)

INBOUND = "inbound"
OUTBOUND_FULL_RELAY = "outbound-full-relay"
MANUAL = "manual"


class KnownSet:
    """A bounded set of hashes (the oldest forgotten first), like Core's rolling filters."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.items: OrderedDict[bytes, None] = OrderedDict()
        self.limit = limit

    def add(self, h: bytes) -> None:
        items = self.items
        if h in items:
            items.move_to_end(h)
            return
        items[h] = None
        if len(items) > self.limit:
            items.popitem(last=False)

    def __contains__(self, h: bytes) -> bool:
        return h in self.items

    def __len__(self) -> int:
        return len(self.items)

    def clear(self) -> None:
        self.items.clear()


_HEADER = struct.Struct("<4s12sI4s")  # v1: magic, message type, payload length, checksum
_TYPE_CHARS = frozenset(range(0x20, 0x7F))
_VALID_TYPES: dict[bytes, str] = {}  # 12-byte v1 message types already found valid
_SAFE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        b" .,;-_/:?@()")


def _message_type(raw: bytes) -> str | None:
    """The message type of a v1 header's 12 bytes, None when Core finds it invalid (a
    character outside ' '..'~' before the first NUL, or anything but NULs after it)."""
    name, _, pad = raw.partition(b"\x00")
    if pad.strip(b"\x00") or not _TYPE_CHARS.issuperset(name):
        return None
    command = name.decode("ascii")
    if command in m.MESSAGES or len(_VALID_TYPES) < 256:
        _VALID_TYPES[raw] = command
    return command


def _sanitize(raw: bytes) -> str:
    """Core's SanitizeString of a header's message type, for its log lines."""
    return bytes(c for c in raw.partition(b"\x00")[0] if c in _SAFE_CHARS).decode()


class ProtocolViolation(Exception):
    """Bytes that end the connection: a wrong network magic, an oversized message, a v2
    transport error."""


Handler = Callable[["Peer", str, object], Awaitable[None]]


class Peer:
    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn_type: str, addr: NetAddr, addr_bind: NetAddr, magic: bytes,
                 added_name: str | None = None, v2: V2Transport | None = None) -> None:
        self.id = pid
        self.reader = reader
        self.writer = writer
        self.conn_type = conn_type
        self.inbound = conn_type == INBOUND
        self.addr = addr
        self.addr_bind = addr_bind
        self.added_name = added_name  # the -addnode/-connect/addnode string it came from
        self.magic = magic
        # BIP324: the v2 transport while it is in use (None: v1 framing). An inbound one
        # starts by detecting v1; an outbound one that hears nothing back may be retried as
        # v1 (v2_retry_v1, read by the connection manager once the connection has ended).
        self.v2 = v2
        self.v2_attempted = v2 is not None and v2.initiator
        self.v2_retry_v1 = False
        self._v2_key_sent = False
        self.send_buffer_pause = SEND_BUFFER_PAUSE  # (-maxsendbuffer)
        self.connected_at = clock.now()
        self.closed = False
        self.disconnect_reason = ""
        self._step_start = 0.0  # (perf_counter) when the loop last ran others (_yield)
        # counters (getpeerinfo, getnettotals)
        self.bytes_sent = 0
        self.bytes_recv = 0
        # Bytes received are counted as they arrive (Core counts what the socket gives), a
        # message cut in two included.
        feed = reader.feed_data

        def counted_feed(data, _feed=feed) -> None:
            self.bytes_recv += len(data)
            _feed(data)

        reader.feed_data = counted_feed
        self.sent_per_msg: dict[str, int] = {}
        self.recv_per_msg: dict[str, int] = {}
        self.last_send = 0.0
        self.last_recv = 0.0
        self.last_tx_time = 0
        self.last_block_time = 0
        # handshake
        self.version: m.Version | None = None
        self.sent_version_nonce = 0
        self.handshake_done = False  # verack received after their version
        self.time_offset = 0
        self.addr_local: str = ""
        # relay preferences announced by the peer
        self.relay_txs = False
        self.wtxid_relay = False
        self.addrv2 = False
        self.prefers_headers = False
        # BIP152 (sync.py): the peer speaks compact blocks version 2 (sent sendcmpct 2),
        # asked us to announce blocks as cmpctblock (hb_requested: Core's
        # m_bip152_highbandwidth_from), we asked it to (hb_to)
        self.provides_cmpct = False
        self.hb_requested = False
        self.hb_to = False
        self.partial_block = None  # (hash, header, slots, missing): waiting for blocktxn
        self.fee_filter = 0  # sat/kvB
        # ping
        self.ping_nonce = 0
        self.ping_sent_at = 0.0
        self.ping_time: float | None = None
        self.min_ping: float | None = None
        # misbehaviour
        self.misbehavior = 0
        # sync (see sync.py)
        self.best_known = None  # BlockIndexEntry: most-work block the peer is known to have
        self.last_common = None
        self.best_header_sent = None
        self.in_flight: dict[bytes, float] = {}  # block hash -> requested at
        self.stalling_since = 0.0
        self.downloading_since = 0.0  # last delivery (or first request) of blocks in flight
        self.headers_requested_at = 0.0
        self.unknown_block: bytes | None = None  # announced while a getheaders was unanswered
        self.continuation_block: bytes | None = None  # last of a full getblocks answer
        self.unconnecting_headers = 0
        self.presync: list = []  # low-work headers kept aside (sync._enough_work)
        self.block_jobs: deque = deque()  # its blocks' validation jobs not done, oldest first
        # relay (see relay.py)
        self.known_inv = KnownSet(50_000)
        self.known_blocks = KnownSet(5_000)
        self.tx_to_announce: OrderedDict[bytes, None] = OrderedDict()  # wtxids, in order
        self.tx_announced_to_us: dict[bytes, float] = {}  # hash -> when, not yet requested
        self.tx_requested: dict[bytes, float] = {}  # hash -> when we asked this peer
        self.next_inv_send = 0.0
        # addresses
        self.addr_tokens = 1.0
        self.addr_token_time = time.monotonic()
        self.addr_processed = 0
        self.addr_rate_limited = 0
        self.getaddr_answered = False
        self.addr_to_send: list[NetAddr] = []
        self.known_addrs = KnownSet(5_000)

    # -- sending ---------------------------------------------------------------------------

    def send(self, msg) -> None:
        self.send_raw(msg.command, msg.serialize())

    def send_raw(self, command: str, payload: bytes) -> None:
        if self.closed:
            return
        if self.writer.transport.is_closing():
            # The peer went away: writing on would only make asyncio log "socket.send()
            # raised exception." once per message (a flood of them under attack).
            self.close("connection lost")
            return
        if self.v2 is not None:
            self._send_v2(command, payload)
            return
        data = m.frame(self.magic, command, payload)
        self.writer.write(data)
        n = len(data)
        self.bytes_sent += n
        self.sent_per_msg[command] = self.sent_per_msg.get(command, 0) + n
        self.last_send = clock.now()
        if self.writer.transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            self.close("send buffer over its hard limit: the peer is not reading")

    def _send_v2(self, command: str, payload: bytes) -> None:
        t = self.v2
        if not t.ready:
            # Before the keys exist: queued, written with the handshake (_flush_v2).
            t.send(command, payload)
            n = v2t.packet_size(command, len(payload))
        else:
            packet = t.encrypt_message(command, payload)
            n = len(packet)
            queued = t.data_to_send()
            self._write(queued + packet if queued else packet)
        self.sent_per_msg[command] = self.sent_per_msg.get(command, 0) + n

    def _write(self, data: bytes) -> None:
        """Raw bytes to the wire (v2: packets and handshake bytes), counted."""
        self.writer.write(data)
        self.bytes_sent += len(data)
        self.last_send = clock.now()
        if self.writer.transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            self.close("send buffer over its hard limit: the peer is not reading")

    def _flush_v2(self) -> None:
        """Write what the v2 transport has queued (our key and garbage, the handshake's
        replies, messages held until the keys existed)."""
        data = self.v2.data_to_send()
        if data and not self.closed:
            if not self._v2_key_sent:
                self._v2_key_sent = True
                log.debug("start sending v2 handshake to peer=%d", self.id)
            self._write(data)

    @property
    def pending_blocks(self) -> int:
        """Received blocks waiting for the validation thread."""
        return len(self.block_jobs)

    @property
    def send_paused(self) -> bool:
        """Core's fPauseSend: more unsent than -maxsendbuffer."""
        return self.writer.transport.get_write_buffer_size() > self.send_buffer_pause

    async def wait_send_room(self) -> None:
        """While the peer is paused (send_paused), wait until it has read what we sent:
        its messages are not handled meanwhile."""
        if self.closed or not self.send_paused:
            return
        log.debug("peer=%d: send buffer full (%d bytes), its messages wait until it reads",
                  self.id, self.writer.transport.get_write_buffer_size())
        while not self.closed and self.send_paused:
            try:
                await self.writer.drain()  # (returns once the buffer is under its low mark)
            except (ConnectionError, RuntimeError):
                self.close("connection lost")
                return
            if self.send_paused:
                await asyncio.sleep(0.01)  # (not paused at the transport level: poll)

    async def drain(self) -> None:
        """Wait until the peer has taken most of what we sent (used when serving blocks)."""
        if not self.closed and self.writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
            try:
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                self.close("connection lost")

    # -- receiving -------------------------------------------------------------------------

    async def read_message(self, prefix: bytes = b"") -> tuple[str | None, bytes]:
        """The next (command, payload); `prefix`: its first bytes, already read (fewer than
        a header's). command is None for a message that is dropped with the connection kept
        (bad checksum, invalid message type: Core's reject_message). Raises
        ProtocolViolation (wrong network magic, oversized), or IncompleteReadError /
        ConnectionError when the connection ends."""
        if prefix:
            head = prefix + await self.reader.readexactly(m.HEADER_LEN - len(prefix))
        else:
            head = await self.reader.readexactly(m.HEADER_LEN)
        magic, raw_type, length, check = _HEADER.unpack(head)
        if magic != self.magic:
            raise ProtocolViolation(
                f"Header error: Wrong MessageStart {magic.hex()} received, peer={self.id}")
        if length > m.MAX_PROTOCOL_MESSAGE_LENGTH:
            raise ProtocolViolation(f"Header error: Size too large ({_sanitize(raw_type)}, "
                                    f"{length} bytes), peer={self.id}")
        payload = await self.reader.readexactly(length) if length else b""
        if m.checksum(payload) != check:
            log.debug("Header error: Wrong checksum (%s, %d bytes), expected %s was %s, "
                      "peer=%d", _sanitize(raw_type), length, m.checksum(payload).hex(),
                      check.hex(), self.id)
            command = None
        else:
            command = _VALID_TYPES.get(raw_type) or _message_type(raw_type)
            if command is None:
                log.debug("Header error: Invalid message type (%s, %d bytes), peer=%d",
                          _sanitize(raw_type), length, self.id)
        n = m.HEADER_LEN + length
        key = command if command in m.MESSAGES or command in ("block", "tx") else "*other*"
        self.recv_per_msg[key] = self.recv_per_msg.get(key, 0) + n
        self.last_recv = clock.now()
        return command, payload

    async def run(self, handle: Handler) -> None:
        """Read and dispatch messages until the connection ends."""
        try:
            prefix = b""
            if self.v2 is not None:
                prefix = await self._run_v2(handle)
                if prefix and not self.closed:  # an inbound v1 peer: its first message
                    command, payload = await self.read_message(prefix)
                    await self._dispatch(handle, command, payload)
            read, dispatch = self.read_message, self._dispatch
            transport = self.writer.transport
            while not self.closed:
                if transport.get_write_buffer_size() > self.send_buffer_pause:
                    await self.wait_send_room()  # (fPauseSend: its requests wait)
                    continue
                t = perf_counter()
                command, payload = await read()
                if (now := perf_counter()) - t > WAITED:
                    self._step_start = now  # (it waited for the bytes: a new step)
                await dispatch(handle, command, payload)
                if perf_counter() - self._step_start > STEP_BUDGET:
                    await self._yield()
        except ProtocolViolation as err:
            self.close(str(err))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.close("connection closed by peer")
        finally:
            t = self.v2
            if t is not None and self.v2_attempted and t.should_reconnect_v1 and \
                    self._v2_key_sent:
                self.v2_retry_v1 = True  # (Core: more than a v1 header's worth was sent)
            self.close(self.disconnect_reason or "done")

    async def _yield(self) -> None:
        """Let the loop run what else is ready (an RPC call, other peers) before the next
        message: while the peer's bytes are buffered, reading them never suspends, and a
        burst of blocks would otherwise be handled in one long step of the loop."""
        await asyncio.sleep(0)
        self._step_start = perf_counter()

    def _undecodable(self, command: str, payload: bytes, err: Exception) -> None:
        """A message whose payload does not parse is dropped, the connection kept (Core
        catches the exception of its ProcessMessage and logs it)."""
        log.debug("ProcessMessages(%s, %d bytes): Exception '%s' (%s) caught", command,
                  len(payload), err, type(err).__name__)

    async def _dispatch(self, handle: Handler, command: str | None, payload: bytes) -> None:
        """Decode one message and hand it to the handler. command None: a message the
        transport dropped (logged there), the connection kept."""
        if command is None:
            return
        log.debug("received: %s (%d bytes) peer=%d", command, len(payload), self.id)
        try:
            if len(payload) >= OFFLOAD_DECODE and command in OFFLOAD_COMMANDS:
                # (a thread parses it: the loop is not held meanwhile; the peer's next
                # message waits, so their order stays)
                msg = await asyncio.get_running_loop().run_in_executor(
                    None, m.decode_payload, command, payload)
            else:
                msg = m.decode_payload(command, payload)
        except m.OversizedMessage as err:
            await handle(self, "oversized", err)
            return
        except m.DisconnectingMessage as err:
            raise ProtocolViolation(str(err)) from None
        except DeserializationError as err:
            self._undecodable(command, payload, err)
            return
        if msg is None:
            log.debug("peer=%d: ignoring unknown message %r", self.id, command)
            return
        await handle(self, command, msg)

    async def _run_v2(self, handle: Handler) -> bytes:
        """The v2 connection: handshake, then messages until it ends. Returns early, with the
        bytes read so far, when an inbound peer turns out to speak v1 (b"" otherwise)."""
        t = self.v2
        reader = self.reader
        self._flush_v2()  # an initiator's key and garbage
        while not self.closed:
            if t.packet_reads:  # after the handshake: one packet at a time, no buffering
                if self.send_paused:
                    await self.wait_send_room()  # (fPauseSend: its requests wait)
                    continue
                start = perf_counter()
                try:
                    rest = t.read_length(await reader.readexactly(v2t.LENGTH_LEN))
                    msg = t.read_packet(await reader.readexactly(rest))
                except V2TransportError as err:
                    raise ProtocolViolation(f"{err}, peer={self.id}") from None
                if (now := perf_counter()) - start > WAITED:
                    self._step_start = now  # (it waited for the bytes: a new step)
                self.last_recv = clock.now()
                if msg is not None:  # (None: a decoy)
                    await self._v2_message(handle, *msg)
                if perf_counter() - self._step_start > STEP_BUDGET:
                    await self._yield()
                continue
            need = t.bytes_needed()
            if t.state == v2t.APP or t.state == v2t.VERSION:
                data = await reader.readexactly(need)  # the rest of one packet
            else:
                # The handshake: whatever has come (the peer may send less than we could
                # take before it waits for us).
                data = await reader.read(need)
                if not data:
                    raise asyncio.IncompleteReadError(b"", need)
            self.last_recv = clock.now()
            error = None
            try:
                msgs = t.receive(data)
            except V2TransportError as err:
                msgs, error = err.messages, err
            if t.v1_fallback:
                prefix = t.take_v1_bytes()
                self.v2 = None
                for command, payload in t.take_pending():
                    self.send_raw(command, payload)
                return prefix
            if error is None:
                self._flush_v2()
            for command, payload, size in msgs:
                await self._v2_message(handle, command, payload, size)
                if self.closed:
                    return b""
            if error is not None:
                raise ProtocolViolation(f"{error}, peer={self.id}")  # (Core's line)
        return b""

    async def _v2_message(self, handle: Handler, command: str | None, payload: bytes,
                          size: int) -> None:
        recv_per_msg = self.recv_per_msg
        if command is None:
            recv_per_msg["*other*"] = recv_per_msg.get("*other*", 0) + size
            log.debug("V2 transport error: invalid message type (%d bytes contents), peer=%d",
                      len(payload), self.id)
            return
        key = command if command in m.MESSAGES or command in ("block", "tx") else "*other*"
        recv_per_msg[key] = recv_per_msg.get(key, 0) + size
        await self._dispatch(handle, command, payload)

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.disconnect_reason = reason
        # (debug=net, as Core's CloseSocketDisconnect: with many peers coming and going,
        # a line each at info level buries the log)
        log.debug("disconnecting peer=%d (%s): %s", self.id, self.addr, reason)
        try:
            self.writer.close()
        except RuntimeError:  # the loop is closing
            pass

    # -- info ------------------------------------------------------------------------------

    @property
    def transport_type(self) -> str:
        """Core's transport_protocol_type: "v1", "v2" once the peer's version packet came,
        "detecting" before."""
        t = self.v2
        if t is None:
            return "v1"
        return "v2" if t.state == v2t.APP else "detecting"

    @property
    def session_id(self) -> str:
        """The v2 session id as hex ("" unless transport_type is "v2")."""
        t = self.v2
        return t.session_id.hex() if t is not None and t.state == v2t.APP else ""

    @property
    def user_agent(self) -> str:
        return self.version.user_agent if self.version else ""

    @property
    def services(self) -> int:
        return self.version.services if self.version else 0

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.addr} {self.conn_type}>"
