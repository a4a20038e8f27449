"""FilterServer (node/p2p/cfilters.py) against a filter index that is a moment behind the chain:
a caught-up index makes a request for a just-connected block wait for it; an index still on
its first sync gets no answer (as Core's)."""

from __future__ import annotations

import asyncio

from consensus.hashes import sha256d
from node.p2p import cfilters


class Entry:
    def __init__(self, height: int, prev: Entry | None) -> None:
        self.height = height
        self.prev = prev
        self.hash = sha256d(height.to_bytes(4, "little"))

    def ancestor(self, h: int) -> Entry:
        e = self
        while e.height > h:
            e = e.prev
        return e

    def hash_hex(self) -> str:
        return self.hash[::-1].hex()


class Chain:
    def __init__(self, n: int) -> None:
        self.entries: list[Entry] = []
        for h in range(n):
            self.entries.append(Entry(h, self.entries[-1] if self.entries else None))

    def get(self, block_hash: bytes):
        return next((e for e in self.entries if e.hash == block_hash), None)

    def in_active_chain(self, e) -> bool:
        return e in self.entries


class Index:
    """Filters for the blocks up to `best`."""

    def __init__(self, best: Entry, synced: bool) -> None:
        self.best = best
        self.synced = synced

    def lookup(self, block_hash: bytes):
        e = self.best
        while e is not None:
            if e.hash == block_hash:
                return b"filter%d" % e.height, sha256d(b"header%d" % e.height)
            e = e.prev
        return None


class Net:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.local_services = cfilters.NODE_COMPACT_FILTERS
        self.sync = self
        self.handlers: dict = {}

    def block_request_allowed(self, e) -> bool:
        return True

    def disconnect_msg(self, peer) -> str:
        return "peer=0"

    def add_handlers(self, handlers: dict) -> None:
        self.handlers.update(handlers)


class Peer:
    def __init__(self) -> None:
        self.sent: list = []
        self.closed: str | None = None

    def send(self, msg) -> None:
        self.sent.append(msg)

    async def drain(self) -> None:
        pass

    def close(self, why: str) -> None:
        self.closed = why


def _setup(synced: bool):
    chain = Chain(10)
    index = Index(chain.entries[8], synced)  # the tip (9) is not indexed yet
    server = cfilters.install(Net(chain), index, serve=True)
    return chain, index, server


async def _answered_once_indexed(index: Index, best: Entry, request) -> Peer:
    """A peer's request (`request(peer)`, a handler call) waits for the index; the index
    thread then moves its best block to `best`, and the request is answered: the peer."""
    peer = Peer()
    task = asyncio.ensure_future(request(peer))
    await asyncio.sleep(0.2)
    assert peer.sent == [] and not task.done()  # waiting for the index
    index.best = best
    await asyncio.wait_for(task, 5)
    return peer


def test_request_for_a_new_block_waits_for_a_caught_up_index():
    chain, index, server = _setup(synced=True)
    tip = chain.entries[9]

    async def go():
        peer = await _answered_once_indexed(index, tip, lambda peer: server.on_getcfilters(
            peer, cfilters.GetCFilters(0, 7, tip.hash)))  # (the index adds the block)
        assert [(f.block_hash, f.filter) for f in peer.sent] == \
            [(chain.entries[h].hash, b"filter%d" % h) for h in (7, 8, 9)]
        headers_peer = Peer()
        await server.on_getcfheaders(headers_peer, cfilters.GetCFHeaders(0, 9, tip.hash))
        [msg] = headers_peer.sent
        assert msg.prev_header == sha256d(b"header8")
        assert msg.filter_hashes == [sha256d(b"filter9")]
        assert peer.closed is None and headers_peer.closed is None

    asyncio.run(go())


def test_index_that_never_catches_up_gets_no_answer(monkeypatch):
    chain, index, server = _setup(synced=True)
    monkeypatch.setattr(cfilters, "INDEX_WAIT", 0.3)

    async def go():
        peer = Peer()
        await asyncio.wait_for(server.on_getcfilters(
            peer, cfilters.GetCFilters(0, 7, chain.entries[9].hash)), 5)
        assert peer.sent == [] and peer.closed is None

    asyncio.run(go())


def test_index_on_its_first_sync_answers_nothing_at_once(monkeypatch):
    chain, index, server = _setup(synced=False)
    monkeypatch.setattr(cfilters, "INDEX_WAIT", 30)

    async def go():
        peer = Peer()
        await asyncio.wait_for(server.on_getcfheaders(
            peer, cfilters.GetCFHeaders(0, 7, chain.entries[9].hash)), 2)
        assert peer.sent == [] and peer.closed is None
        # What the index has is served.
        await server.on_getcfheaders(peer, cfilters.GetCFHeaders(0, 7, chain.entries[8].hash))
        assert [len(m.filter_hashes) for m in peer.sent] == [2]

    asyncio.run(go())


class IndexAddingDuringLookup(Index):
    """The index thread adds `pending` just after a lookup has missed it (the lookup runs on
    another thread): the request must look again, not give up."""

    def __init__(self, best: Entry, pending: Entry) -> None:
        super().__init__(best, synced=True)
        self.pending = pending

    def lookup(self, block_hash: bytes):
        found = super().lookup(block_hash)
        if found is None and self.pending is not None:
            self.best, self.pending = self.pending, None
        return found


def test_block_added_while_the_lookup_runs_is_served(monkeypatch):
    chain = Chain(10)
    tip = chain.entries[9]
    index = IndexAddingDuringLookup(chain.entries[8], tip)
    server = cfilters.install(Net(chain), index, serve=True)
    monkeypatch.setattr(cfilters, "INDEX_WAIT", 30)

    async def go():
        peer = Peer()
        await asyncio.wait_for(server.on_getcfheaders(
            peer, cfilters.GetCFHeaders(0, 9, tip.hash)), 5)
        [msg] = peer.sent
        assert msg.filter_hashes == [sha256d(b"filter9")] and peer.closed is None

    asyncio.run(go())


def test_request_waits_while_the_index_leaves_a_branch_a_reorg_left(monkeypatch):
    """The index's best block is as high as the stop block but on the branch a reorg just
    left: the index is about to rewind and add the new branch, so the request waits."""
    chain = Chain(10)
    stale8 = Entry(8, chain.entries[7])
    stale8.hash = sha256d(b"stale8")
    stale9 = Entry(9, stale8)
    stale9.hash = sha256d(b"stale9")
    index = Index(stale9, synced=True)
    server = cfilters.install(Net(chain), index, serve=True)
    monkeypatch.setattr(cfilters, "INDEX_WAIT", 30)
    tip = chain.entries[9]

    async def go():
        peer = await _answered_once_indexed(index, tip, lambda peer: server.on_getcfheaders(
            peer, cfilters.GetCFHeaders(0, 8, tip.hash)))  # (rewound to 7, added 8 and 9)
        [msg] = peer.sent
        assert msg.filter_hashes == [sha256d(b"filter8"), sha256d(b"filter9")]

    asyncio.run(go())
