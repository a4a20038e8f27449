"""BIP157: compact block filters served to light clients over P2P (Core's -peerblockfilters).

Messages (filter type 0 = basic, the only one; hashes in internal byte order):
    getcfilters   type u8 | start height u32 | stop hash 32   -> one cfilter per block
    cfilter       type u8 | block hash 32 | filter (var bytes)
    getcfheaders  type u8 | start height u32 | stop hash 32   -> one cfheaders
    cfheaders     type u8 | stop hash 32 | previous filter header 32 | filter hashes (vector)
    getcfcheckpt  type u8 | stop hash 32                      -> one cfcheckpt
    cfcheckpt     type u8 | stop hash 32 | filter headers at heights 1000, 2000, ... (vector)

The range is the stop block's own ancestry (so a light client may ask about a stale block it
heard of), at most 1,000 filters or 2,000 headers a request. As Core's
PrepareBlockFilterRequest, a request is refused by disconnecting the peer when we do not
offer NODE_COMPACT_FILTERS or do not know the filter type, when the stop block is unknown or
one we would not serve (BlockRequestAllowed: not in the active chain and stale for more than
a month), when the start height is above the stop block, or when the range is too long. A
request the index cannot answer yet (still building) gets no answer, as Core's.

One difference from Core: once the index has caught up with the chain, a request that reaches
a block connected a moment ago (or after a reorg) waits for the index to add it (up to
INDEX_WAIT seconds).
Core answers nothing then, and a light client that asks as soon as it hears of a block times
the peer out (seen with Kyoto, our only peer, on a loaded machine).

The message classes register themselves in node.p2p.messages.MESSAGES when this module is
imported; `install` adds the handlers to a PeerManager.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from consensus.hashes import sha256d
from consensus.serialize import Reader, compact_size, var_bytes
from node.p2p import messages as m

log = logging.getLogger("net")

NODE_COMPACT_FILTERS = 1 << 6
FILTER_TYPE_BASIC = 0
MAX_GETCFILTERS_SIZE = 1000
MAX_GETCFHEADERS_SIZE = 2000
CFCHECKPT_INTERVAL = 1000
MAX_VECTOR = (m.MAX_PROTOCOL_MESSAGE_LENGTH - 65) // 32  # hashes a message can hold
INDEX_WAIT = 10.0  # seconds a request waits for a caught-up index to add a new block
INDEX_POLL = 0.05


def _hash_vector(r: Reader) -> list[bytes]:
    n = r.compact_size()
    if n > MAX_VECTOR:
        raise m.DeserializationError(f"too many hashes ({n})")
    return [r.read(32) for _ in range(n)]


def _write_hashes(hashes: list[bytes]) -> bytes:
    return compact_size(len(hashes)) + b"".join(hashes)


@dataclass
class GetCFilters:
    command = "getcfilters"
    filter_type: int = FILTER_TYPE_BASIC
    start_height: int = 0
    stop_hash: bytes = bytes(32)

    def serialize(self) -> bytes:
        return bytes([self.filter_type]) + self.start_height.to_bytes(4, "little") \
            + self.stop_hash

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        return cls(r.u8(), r.u32(), r.read(32))


@dataclass
class GetCFHeaders(GetCFilters):
    command = "getcfheaders"


@dataclass
class GetCFCheckpt:
    command = "getcfcheckpt"
    filter_type: int = FILTER_TYPE_BASIC
    stop_hash: bytes = bytes(32)

    def serialize(self) -> bytes:
        return bytes([self.filter_type]) + self.stop_hash

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        return cls(r.u8(), r.read(32))


@dataclass
class CFilter:
    command = "cfilter"
    filter_type: int = FILTER_TYPE_BASIC
    block_hash: bytes = bytes(32)
    filter: bytes = b""

    def serialize(self) -> bytes:
        return bytes([self.filter_type]) + self.block_hash + var_bytes(self.filter)

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        return cls(r.u8(), r.read(32), r.var_bytes())


@dataclass
class CFHeaders:
    command = "cfheaders"
    filter_type: int = FILTER_TYPE_BASIC
    stop_hash: bytes = bytes(32)
    prev_header: bytes = bytes(32)
    filter_hashes: list[bytes] = field(default_factory=list)

    def serialize(self) -> bytes:
        return bytes([self.filter_type]) + self.stop_hash + self.prev_header \
            + _write_hashes(self.filter_hashes)

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        return cls(r.u8(), r.read(32), r.read(32), _hash_vector(r))

    def headers(self) -> list[bytes]:
        """The filter headers the hashes chain to, from prev_header."""
        out = []
        prev = self.prev_header
        for h in self.filter_hashes:
            prev = sha256d(h + prev)
            out.append(prev)
        return out


@dataclass
class CFCheckpt:
    command = "cfcheckpt"
    filter_type: int = FILTER_TYPE_BASIC
    stop_hash: bytes = bytes(32)
    headers: list[bytes] = field(default_factory=list)

    def serialize(self) -> bytes:
        return bytes([self.filter_type]) + self.stop_hash + _write_hashes(self.headers)

    @classmethod
    def parse(cls, payload: bytes):
        r = Reader(payload)
        return cls(r.u8(), r.read(32), _hash_vector(r))


for _cls in (GetCFilters, CFilter, GetCFHeaders, CFHeaders, GetCFCheckpt, CFCheckpt):
    m.MESSAGES.setdefault(_cls.command, _cls)


class IndexNotReady(Exception):
    """The filter index lacks a block of the range (still building): no answer."""


def _ancestry(stop, start_height: int) -> list:
    """stop's ancestors from start_height up to stop itself, in height order."""
    out = []
    e = stop
    while e is not None and e.height >= start_height:
        out.append(e)
        e = e.prev
    out.reverse()
    return out


def _filter_range(index, stop, start_height: int) -> list[tuple[bytes, bytes]]:
    """(block hash, encoded filter) of the range; IndexNotReady if one is missing."""
    out = []
    for e in _ancestry(stop, start_height):
        found = index.lookup(e.hash)
        if found is None:
            raise IndexNotReady(e.hash_hex())
        out.append((e.hash, found[0]))
    return out


def _header_of(index, e) -> bytes:
    found = index.lookup(e.hash)
    if found is None:
        raise IndexNotReady(e.hash_hex())
    return found[1]


def cfheaders_for(index, stop, start_height: int) -> tuple[bytes, list[bytes]]:
    """(previous filter header, filter hashes) of the range."""
    prev = bytes(32)
    if start_height > 0:
        prev = _header_of(index, stop.ancestor(start_height - 1))
    hashes = [sha256d(f) for _, f in _filter_range(index, stop, start_height)]
    return prev, hashes


def cfcheckpt_for(index, stop) -> list[bytes]:
    """The filter headers at every 1,000th height of stop's ancestry."""
    return [_header_of(index, stop.ancestor(h))
            for h in range(CFCHECKPT_INTERVAL, stop.height + 1, CFCHECKPT_INTERVAL)]


class FilterServer:
    """The getcfilters/getcfheaders/getcfcheckpt handlers of a PeerManager."""

    def __init__(self, net, index, serve: bool) -> None:
        self.net = net
        self.index = index if serve else None

    def _prepare(self, peer, filter_type: int, start_height: int, stop_hash: bytes,
                 max_height_diff: int | None):
        """Core's PrepareBlockFilterRequest: the stop block, or None (peer disconnected where
        Core disconnects)."""
        net = self.net
        if filter_type != FILTER_TYPE_BASIC or \
                not net.local_services & NODE_COMPACT_FILTERS or self.index is None:
            log.debug("peer requested unsupported block filter type: %d, %s", filter_type,
                      net.disconnect_msg(peer))
            peer.close("unsupported block filter request")
            return None
        stop = net.chain.get(stop_hash)
        if stop is None or not net.sync.block_request_allowed(stop):
            log.debug("peer requested invalid block hash: %s, %s", stop_hash[::-1].hex(),
                      net.disconnect_msg(peer))
            peer.close("block filter request for an invalid block hash")
            return None
        if start_height > stop.height:
            log.debug("peer sent invalid getcfilters/getcfheaders with start height %d and "
                      "stop height %d, %s", start_height, stop.height, net.disconnect_msg(peer))
            peer.close("block filter request with start height above the stop block")
            return None
        if max_height_diff is not None and stop.height - start_height >= max_height_diff:
            log.debug("peer requested too many cfilters/cfheaders: %d / %d, %s",
                      stop.height - start_height + 1, max_height_diff,
                      net.disconnect_msg(peer))
            peer.close("too many block filters requested")
            return None
        return stop

    async def _lookup(self, fn, stop, *args):
        """An index read off the loop (up to 2,000 LevelDB reads and hashes); IndexNotReady
        when the index lacks a block of the range and is not about to add it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INDEX_WAIT
        while True:
            # The index's best block as the lookup starts: the index may add the missing block
            # while the lookup runs, and then the lookup is tried again, not given up.
            best = self.index.best
            try:
                return await loop.run_in_executor(None, fn, self.index, stop, *args)
            except IndexNotReady:
                if not self._index_catching_up(stop, best) or loop.time() > deadline:
                    raise
            await asyncio.sleep(INDEX_POLL)

    def _index_catching_up(self, stop, best) -> bool:
        """Whether the index, caught up once, had not reached (at its best block `best`) a
        stop block of the active chain: behind it, or on a branch a reorg just left. The
        index follows the active chain, so the block's filter is coming."""
        return self.index.synced and self.net.chain.in_active_chain(stop) \
            and (best is None or best.height < stop.height
                 or best.ancestor(stop.height) is not stop)

    async def on_getcfilters(self, peer, msg: GetCFilters) -> None:
        stop = self._prepare(peer, msg.filter_type, msg.start_height, msg.stop_hash,
                             MAX_GETCFILTERS_SIZE)
        if stop is None:
            return
        try:
            filters = await self._lookup(_filter_range, stop, msg.start_height)
        except IndexNotReady:
            log.debug("Failed to find block filter in index: filter_type=basic, "
                      "start_height=%d, stop_hash=%s", msg.start_height, stop.hash_hex())
            return
        for block_hash, encoded in filters:
            peer.send(CFilter(msg.filter_type, block_hash, encoded))
        await peer.drain()

    async def on_getcfheaders(self, peer, msg: GetCFHeaders) -> None:
        stop = self._prepare(peer, msg.filter_type, msg.start_height, msg.stop_hash,
                             MAX_GETCFHEADERS_SIZE)
        if stop is None:
            return
        try:
            prev, hashes = await self._lookup(cfheaders_for, stop, msg.start_height)
        except IndexNotReady:
            log.debug("Failed to find block filter hashes in index: filter_type=basic, "
                      "start_height=%d, stop_hash=%s", msg.start_height, stop.hash_hex())
            return
        peer.send(CFHeaders(msg.filter_type, stop.hash, prev, hashes))

    async def on_getcfcheckpt(self, peer, msg: GetCFCheckpt) -> None:
        stop = self._prepare(peer, msg.filter_type, 0, msg.stop_hash, None)
        if stop is None:
            return
        try:
            headers = await self._lookup(cfcheckpt_for, stop)
        except IndexNotReady:
            log.debug("Failed to find block filter header in index: filter_type=basic, "
                      "block_hash=%s", stop.hash_hex())
            return
        peer.send(CFCheckpt(msg.filter_type, stop.hash, headers))


def install(net, index, serve: bool) -> FilterServer:
    """Add the handlers to a PeerManager; with `serve` (-peerblockfilters, and an index)
    offer NODE_COMPACT_FILTERS. Without it the requests are answered as Core's: by
    disconnecting."""
    server = FilterServer(net, index, serve and index is not None)
    if server.index is not None:
        net.local_services |= NODE_COMPACT_FILTERS
    net.add_handlers({
        "getcfilters": server.on_getcfilters,
        "getcfheaders": server.on_getcfheaders,
        "getcfcheckpt": server.on_getcfcheckpt,
    })
    return server
