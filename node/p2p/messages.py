"""Bitcoin's wire protocol: message framing and the payloads minibtc speaks (protocol 70016).

A message is magic (4) | command (12, NUL padded) | payload length (u32) | checksum (first 4
bytes of sha256d(payload)) | payload. Every payload class has `serialize()` and a
`parse(payload)` classmethod; decoding failures raise DeserializationError only (also for
trailing bytes, as Core does for fixed messages), so a peer handler catches one type.

Block and tx payloads are kept as raw bytes here: they are parsed on the validation thread.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from consensus.block import HEADER_SIZE, BlockHeader
from consensus.serialize import (
    DeserializationError,
    Reader,
    compact_size,
    expect_end,
    var_bytes,
)
from node.p2p.netaddr import AddressError, NetAddr

PROTOCOL_VERSION = 70016
MIN_PEER_PROTO_VERSION = 31800  # Core's: older peers are disconnected
WTXID_RELAY_VERSION = 70016
SENDHEADERS_VERSION = 70012
FEEFILTER_VERSION = 70013
SHORT_IDS_BLOCKS_VERSION = 70014  # BIP152 compact blocks
INVALID_CB_NO_BAN_VERSION = 70015  # compact blocks may be announced before validation

MAX_PROTOCOL_MESSAGE_LENGTH = 4_000_000
MAX_INV_SZ = 50_000
MAX_HEADERS_RESULTS = 2_000
MAX_ADDR_TO_SEND = 1_000
MAX_LOCATOR_SZ = 101
MAX_SUBVERSION_LENGTH = 256

NODE_NETWORK = 1
NODE_BLOOM = 1 << 2
NODE_WITNESS = 1 << 3
NODE_NETWORK_LIMITED = 1 << 10
NODE_P2P_V2 = 1 << 11  # BIP324

# Inventory types (Core's GetDataMsg).
MSG_TX = 1
MSG_BLOCK = 2
MSG_FILTERED_BLOCK = 3
MSG_CMPCT_BLOCK = 4
MSG_WTX = 5
MSG_WITNESS_FLAG = 1 << 30
MSG_WITNESS_TX = MSG_TX | MSG_WITNESS_FLAG
MSG_WITNESS_BLOCK = MSG_BLOCK | MSG_WITNESS_FLAG

HEADER_LEN = 24
_HEADER = struct.Struct("<4s12sI4s")
_INV = struct.Struct("<I32s")


def checksum(payload: bytes | memoryview) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def frame(magic: bytes, command: str, payload: bytes = b"") -> bytes:
    """The whole message: header and payload."""
    cmd = command.encode("ascii")
    if len(cmd) > 12:
        raise ValueError(f"command too long: {command}")
    return _HEADER.pack(magic, cmd, len(payload), checksum(payload)) + payload


@dataclass(frozen=True)
class MessageHeader:
    magic: bytes
    command: str
    length: int
    checksum: bytes

    @classmethod
    def parse(cls, data: bytes) -> MessageHeader:
        """Raises DeserializationError for a command that is not NUL-padded printable ASCII."""
        magic, raw_cmd, length, check = _HEADER.unpack(data)
        cmd, _, pad = raw_cmd.partition(b"\x00")
        if pad.strip(b"\x00") or not all(0x20 < c < 0x7F for c in cmd):
            raise DeserializationError(f"malformed command {raw_cmd!r}")
        return cls(magic, cmd.decode("ascii"), length, check)


def _read_bool(r: Reader) -> bool:
    return r.u8() != 0


def _read_net_addr_v1(r: Reader) -> NetAddr:
    services = r.u64()
    ip = r.read(16)
    port = struct.unpack(">H", r.read(2))[0]
    return NetAddr.from_v1(ip, port, services)


def _net_addr_v1(a: NetAddr) -> bytes:
    return struct.pack("<Q", a.services) + a.v1_bytes() + struct.pack(">H", a.port)


# -- messages without a payload -------------------------------------------------------------


class _Empty:
    command = ""

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, payload: bytes):
        # Core ignores extra bytes on these; so do we.
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VerAck(_Empty):
    command = "verack"


class GetAddr(_Empty):
    command = "getaddr"


class SendHeaders(_Empty):
    command = "sendheaders"


class SendAddrV2(_Empty):
    command = "sendaddrv2"


class WTxidRelay(_Empty):
    command = "wtxidrelay"


class MempoolMsg(_Empty):
    command = "mempool"


class FilterClear(_Empty):
    command = "filterclear"


# -- BIP37 bloom filters (only their shape: minibtc filters nothing) ------------------------

MAX_BLOOM_FILTER_SIZE = 36_000
MAX_HASH_FUNCS = 50
MAX_SCRIPT_ELEMENT_SIZE = 520


@dataclass
class FilterLoad:
    command = "filterload"
    data: bytes = b""
    hash_funcs: int = 0
    tweak: int = 0
    flags: int = 0

    def serialize(self) -> bytes:
        return var_bytes(self.data) + struct.pack("<IIB", self.hash_funcs, self.tweak,
                                                  self.flags)

    @classmethod
    def parse(cls, payload: bytes) -> FilterLoad:
        r = Reader(payload)
        data = r.var_bytes()
        hash_funcs, tweak = r.u32(), r.u32()
        flags = r.u8()
        return cls(data, hash_funcs, tweak, flags)

    def within_size_limits(self) -> bool:
        return len(self.data) <= MAX_BLOOM_FILTER_SIZE and self.hash_funcs <= MAX_HASH_FUNCS


@dataclass
class FilterAdd:
    command = "filteradd"
    data: bytes = b""

    def serialize(self) -> bytes:
        return var_bytes(self.data)

    @classmethod
    def parse(cls, payload: bytes) -> FilterAdd:
        return cls(Reader(payload).var_bytes())


# -- handshake and keep-alive ---------------------------------------------------------------


@dataclass
class Version:
    command = "version"
    version: int = PROTOCOL_VERSION
    services: int = NODE_NETWORK | NODE_WITNESS
    timestamp: int = 0
    addr_recv: NetAddr = field(default_factory=NetAddr.unspecified)
    addr_from: NetAddr = field(default_factory=NetAddr.unspecified)
    nonce: int = 0
    user_agent: str = ""
    start_height: int = 0
    relay: bool = True

    def serialize(self) -> bytes:
        return b"".join((
            struct.pack("<iQq", self.version, self.services, self.timestamp),
            _net_addr_v1(self.addr_recv),
            _net_addr_v1(self.addr_from),
            struct.pack("<Q", self.nonce),
            var_bytes(self.user_agent.encode("utf-8", "replace")),
            struct.pack("<i?", self.start_height, self.relay),
        ))

    @classmethod
    def parse(cls, payload: bytes) -> Version:
        r = Reader(payload)
        v = cls()
        v.version = r.i32()
        v.services = r.u64()
        v.timestamp = r.i64()
        v.addr_recv = _read_net_addr_v1(r)
        # Everything after addr_recv is optional for very old peers (as Core reads it).
        if r.at_end():
            return v
        v.addr_from = _read_net_addr_v1(r)
        v.nonce = r.u64()
        n = r.compact_size()
        if n > MAX_SUBVERSION_LENGTH:
            raise DeserializationError(f"user agent too long ({n} bytes)")
        v.user_agent = r.read(n).decode("utf-8", "replace")
        v.start_height = r.i32()
        v.relay = _read_bool(r) if not r.at_end() else True
        return v


@dataclass
class Ping:
    command = "ping"
    nonce: int = 0

    def serialize(self) -> bytes:
        return struct.pack("<Q", self.nonce)

    @classmethod
    def parse(cls, payload: bytes) -> Ping:
        r = Reader(payload)
        return cls(r.u64())


@dataclass
class Pong(Ping):
    command = "pong"


@dataclass
class FeeFilter:
    command = "feefilter"
    feerate: int = 0  # sat/kvB

    def serialize(self) -> bytes:
        return struct.pack("<q", self.feerate)

    @classmethod
    def parse(cls, payload: bytes) -> FeeFilter:
        r = Reader(payload)
        return cls(r.i64())


@dataclass
class SendCmpct:
    """BIP152 negotiation: `announce` asks for new blocks as cmpctblock (high-bandwidth
    mode); `version` 2 is compact blocks with witnesses."""

    command = "sendcmpct"
    announce: bool = False
    version: int = 1

    def serialize(self) -> bytes:
        return struct.pack("<?Q", self.announce, self.version)

    @classmethod
    def parse(cls, payload: bytes) -> SendCmpct:
        r = Reader(payload)
        return cls(_read_bool(r), r.u64())


# -- inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inv:
    type: int
    hash: bytes

    def __repr__(self) -> str:
        return f"Inv({self.type}, {self.hash[::-1].hex()})"


@dataclass
class InvMsg:
    command = "inv"
    items: list[Inv] = field(default_factory=list)

    def serialize(self) -> bytes:
        return compact_size(len(self.items)) + b"".join(
            _INV.pack(i.type, i.hash) for i in self.items
        )

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        n = r.compact_size()
        if n > MAX_INV_SZ:
            raise OversizedMessage(f"{cls.command} message size = {n}")
        raw = r.read(36 * n)
        expect_end(r, cls.command)
        return cls([Inv(t, h) for t, h in _INV.iter_unpack(raw)])


@dataclass
class GetData(InvMsg):
    command = "getdata"


@dataclass
class NotFound(InvMsg):
    command = "notfound"


class OversizedMessage(DeserializationError):
    """A well-formed message with more entries than the protocol allows: misbehaviour."""


class DisconnectingMessage(DeserializationError):
    """A message Core disconnects the peer for as it reads it (other payloads that do not
    parse are dropped with the connection kept)."""


@dataclass
class GetHeaders:
    command = "getheaders"
    locator: list[bytes] = field(default_factory=list)
    hash_stop: bytes = b"\x00" * 32
    version: int = PROTOCOL_VERSION

    def serialize(self) -> bytes:
        return b"".join((
            struct.pack("<I", self.version), compact_size(len(self.locator)),
            *self.locator, self.hash_stop,
        ))

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        version = r.u32()
        n = r.compact_size()
        if n > MAX_LOCATOR_SZ:  # (Core disconnects for this one)
            raise DisconnectingMessage(f"{cls.command} locator size {n} > {MAX_LOCATOR_SZ}")
        locator = [r.read(32) for _ in range(n)]
        stop = r.read(32)
        expect_end(r, cls.command)
        return cls(locator, stop, version)


@dataclass
class GetBlocks(GetHeaders):
    command = "getblocks"


@dataclass
class Headers:
    command = "headers"
    headers: list[BlockHeader] = field(default_factory=list)

    def serialize(self) -> bytes:
        return compact_size(len(self.headers)) + b"".join(
            h.serialize() + b"\x00" for h in self.headers
        )

    @classmethod
    def parse(cls, payload: bytes) -> Headers:
        r = Reader(payload)
        n = r.compact_size()
        if n > MAX_HEADERS_RESULTS:
            raise OversizedMessage(f"headers message size = {n}")
        out = []
        for _ in range(n):
            out.append(BlockHeader.deserialize(r))
            if r.compact_size() != 0:  # a header is followed by an empty transaction count
                raise DeserializationError("headers message: non-zero transaction count")
        expect_end(r, "headers")
        return cls(out)


def raw_headers_payload(raw_headers: list[bytes]) -> bytes:
    """A headers payload from 80-byte serialized headers."""
    return compact_size(len(raw_headers)) + b"".join(h + b"\x00" for h in raw_headers)


@dataclass
class RawPayload:
    """block and tx: the bytes are parsed later, on the validation thread."""

    command: str
    data: bytes

    def serialize(self) -> bytes:
        return self.data


# -- addresses ------------------------------------------------------------------------------


@dataclass
class Addr:
    """addr (v1: IPv4/IPv6 only), each address with its last-seen time. AddrV2 differs only
    in how one address is written."""

    command = "addr"
    addrs: list[NetAddr] = field(default_factory=list)

    @staticmethod
    def _write(a: NetAddr) -> bytes:
        return _net_addr_v1(a)

    @staticmethod
    def _read(r: Reader) -> NetAddr | None:
        return _read_net_addr_v1(r)

    def serialize(self) -> bytes:
        return compact_size(len(self.addrs)) + b"".join(
            struct.pack("<I", a.time & 0xFFFFFFFF) + self._write(a) for a in self.addrs)

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        n = r.compact_size()
        if n > MAX_ADDR_TO_SEND:
            raise OversizedMessage(f"{cls.command} message size = {n}")
        out = []
        for _ in range(n):
            t = r.u32()
            a = cls._read(r)
            if a is not None:  # (addrv2: unknown networks are skipped, as BIP155 says)
                a.time = t
                out.append(a)
        expect_end(r, cls.command)
        return cls(out)


@dataclass
class AddrV2(Addr):
    """BIP155 addrv2: services as a CompactSize, a network id and a variable-length
    address."""

    command = "addrv2"

    @staticmethod
    def _write(a: NetAddr) -> bytes:
        return (compact_size(a.services) + bytes([a.net]) + var_bytes(a.addr)
                + struct.pack(">H", a.port))

    @staticmethod
    def _read(r: Reader) -> NetAddr | None:
        services = r.compact_size(range_check=False)
        net = r.u8()
        size = r.compact_size()
        if size > 512:  # BIP155's MAX_ADDRV2_SIZE
            raise DeserializationError(f"Address too long: {size} > 512")  # (Core's words)
        raw = r.read(size)
        port = struct.unpack(">H", r.read(2))[0]
        try:
            return NetAddr.from_v2(net, raw, port, services)
        except AddressError as err:  # a known network with the wrong size
            raise DeserializationError(str(err)) from None


# -- BIP152 compact blocks -------------------------------------------------------------------


@dataclass
class CmpctBlock:
    """HeaderAndShortIDs: the header, a nonce, 6-byte short ids of the transactions and
    the prefilled ones (at least the coinbase) with their absolute indexes."""
    command = "cmpctblock"
    header: BlockHeader
    nonce: int = 0
    short_ids: list[int] = field(default_factory=list)
    prefilled: list[tuple[int, object]] = field(default_factory=list)  # (index, Transaction)

    def serialize(self) -> bytes:
        out = [self.header.serialize(), struct.pack("<Q", self.nonce),
               compact_size(len(self.short_ids))]
        out += [sid.to_bytes(6, "little") for sid in self.short_ids]
        out.append(compact_size(len(self.prefilled)))
        last = -1
        for index, tx in self.prefilled:
            out.append(compact_size(index - last - 1))
            out.append(tx.serialize())
            last = index
        return b"".join(out)

    @classmethod
    def parse(cls, payload: bytes) -> CmpctBlock:
        from consensus.tx import Transaction

        r = Reader(payload)
        header = BlockHeader.from_bytes(r.read(HEADER_SIZE))
        nonce = r.u64()
        n = r.compact_size()
        if n > MAX_PROTOCOL_MESSAGE_LENGTH // 6:
            raise DeserializationError("too many short ids")
        short_ids = [int.from_bytes(r.read(6), "little") for _ in range(n)]
        n = r.compact_size()
        prefilled = []
        last = -1
        for _ in range(n):
            last += r.compact_size() + 1
            if last > 0xFFFF:
                raise DeserializationError("prefilled index overflow")
            prefilled.append((last, Transaction.deserialize(r)))
        expect_end(r, "cmpctblock")
        return cls(header, nonce, short_ids, prefilled)


def _write_indexes(indexes: list[int]) -> bytes:
    out = [compact_size(len(indexes))]
    last = -1
    for i in indexes:
        out.append(compact_size(i - last - 1))
        last = i
    return b"".join(out)


@dataclass
class GetBlockTxn:
    command = "getblocktxn"
    block_hash: bytes
    indexes: list[int] = field(default_factory=list)  # absolute

    def serialize(self) -> bytes:
        return self.block_hash + _write_indexes(self.indexes)

    @classmethod
    def parse(cls, payload: bytes) -> GetBlockTxn:
        r = Reader(payload)
        h = r.read(32)
        n = r.compact_size()
        if n > MAX_PROTOCOL_MESSAGE_LENGTH // 1:
            raise DeserializationError("too many indexes")
        indexes = []
        last = -1
        for _ in range(n):
            last += r.compact_size() + 1
            if last > 0xFFFF:
                raise DeserializationError("index overflow")
            indexes.append(last)
        expect_end(r, "getblocktxn")
        return cls(h, indexes)


@dataclass
class BlockTxn:
    command = "blocktxn"
    block_hash: bytes
    txs: list = field(default_factory=list)  # Transaction

    def serialize(self) -> bytes:
        return self.block_hash + compact_size(len(self.txs)) + b"".join(
            tx.serialize() for tx in self.txs)

    @classmethod
    def parse(cls, payload: bytes) -> BlockTxn:
        from consensus.tx import Transaction

        r = Reader(payload)
        h = r.read(32)
        n = r.compact_size()
        txs = [Transaction.deserialize(r) for _ in range(n)]
        expect_end(r, "blocktxn")
        return cls(h, txs)


# command -> payload class, for the messages we decode (others are ignored)
MESSAGES = {
    cls.command: cls
    for cls in (Version, VerAck, Ping, Pong, FeeFilter, SendCmpct, GetAddr, SendHeaders,
                SendAddrV2, WTxidRelay, MempoolMsg, FilterClear, FilterLoad, FilterAdd, InvMsg,
                GetData, NotFound, GetHeaders, GetBlocks, Headers, Addr, AddrV2, CmpctBlock,
                GetBlockTxn, BlockTxn)
}


def decode_payload(command: str, payload: bytes):
    """The message object for a known command, RawPayload for block and tx, None for
    commands we do not speak. Raises DeserializationError (OversizedMessage for too many
    entries)."""
    if command in ("block", "tx"):
        return RawPayload(command, payload)
    cls = MESSAGES.get(command)
    return cls.parse(payload) if cls is not None else None


def encode(magic: bytes, msg) -> bytes:
    return frame(magic, msg.command, msg.serialize())


assert HEADER_SIZE == 80
