"""BlockSync.serve_blocks (node/p2p/sync.py) for a block the node is connecting: announced
early to high-bandwidth peers (BIP152), it is asked for before it is connected. As Core's
ProcessGetBlockData, it is served once connected, not ignored (a peer whose request is
ignored waits a minute for its download timeout; seen with `minibtc-net mine 5000` on a line
of three nodes). Without a network: real index entries, a fake chain and peer."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from consensus.params import REGTEST
from node.p2p import messages as m
from node.p2p.sync import BlockSync
from node.store.blockindex import HAVE_DATA, VALID_SCRIPTS, VALID_TRANSACTIONS, BlockIndexEntry
from tests.blocktools import make_block


class Chain:
    def __init__(self, n: int) -> None:
        self.params = REGTEST
        self.entries: list[BlockIndexEntry] = []
        self.raw: dict[bytes, bytes] = {}
        prev_hash = bytes(32)
        for h in range(n):
            b = make_block(prev_hash, h, time=1_700_000_000 + h)
            e = BlockIndexEntry(b.header, self.entries[-1] if self.entries else None)
            e.status = VALID_SCRIPTS | HAVE_DATA
            e.chain_tx = h + 1
            self.entries.append(e)
            self.raw[e.hash] = b.serialize()
            prev_hash = b.hash
        self.published = self.entries[-1]
        self.best_header = self.entries[-1]

    def get(self, block_hash: bytes):
        return next((e for e in self.entries if e.hash == block_hash), None)

    def read_raw_block(self, e) -> bytes:
        return self.raw[e.hash]


class Net:
    def __init__(self, chain: Chain, loop) -> None:
        self.chain = chain
        self.loop = loop
        self.pruned = False
        self.local_services = m.NODE_NETWORK | m.NODE_WITNESS
        self.validation = ThreadPoolExecutor(1)  # (one validation thread, jobs in order)

    def validate(self, fn, *args):
        return self.loop.run_in_executor(self.validation, fn, *args)

    def peers(self) -> list:
        return []


class Peer:
    id = 0
    closed = False
    permissions = 0

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send_raw(self, command: str, payload: bytes) -> None:
        self.sent.append((command, payload))

    def send(self, msg) -> None:
        self.sent.append((msg.command, msg.serialize()))

    async def drain(self) -> None:
        pass


def _connecting(n_stored: int):
    """A chain whose last block is received (stored) and queued for connection: the
    validation thread is busy with the job before it for a moment."""
    chain = Chain(n_stored)
    new = chain.entries[-1]
    new.status = VALID_TRANSACTIONS | HAVE_DATA
    chain.published = new.prev
    return chain, new


def test_block_being_connected_is_served_once_connected():
    chain, new = _connecting(5)

    async def go():
        net = Net(chain, asyncio.get_running_loop())
        sync = BlockSync(net)
        sync.processing.add(new.hash)
        started = threading.Event()

        def connect() -> None:  # the block's own validation job, still running
            started.set()
            time.sleep(0.3)
            new.raise_validity(VALID_SCRIPTS)
            chain.published = new
            sync.processing.discard(new.hash)

        job = net.validate(connect)
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        peer = Peer()
        await asyncio.wait_for(sync.serve_blocks(peer, [m.Inv(m.MSG_WITNESS_BLOCK, new.hash)]),
                               5)
        assert job.done()
        assert peer.sent == [("block", chain.raw[new.hash])]

    asyncio.run(go())


def test_block_off_the_active_chain_still_ignored():
    """A stored block that stays off the active chain (a stale fork, not validated) is still
    not served, after the wait: Core's BlockRequestAllowed."""
    chain, new = _connecting(5)

    async def go():
        net = Net(chain, asyncio.get_running_loop())
        sync = BlockSync(net)
        peer = Peer()
        await asyncio.wait_for(sync.serve_blocks(peer, [m.Inv(m.MSG_WITNESS_BLOCK, new.hash)]),
                               5)
        assert peer.sent == []
        # and an ancestor in the active chain is served as ever
        await sync.serve_blocks(peer, [m.Inv(m.MSG_WITNESS_BLOCK, new.prev.hash)])
        assert peer.sent == [("block", chain.raw[new.prev.hash])]

    asyncio.run(go())
