"""Backpressure on a peer's blocks (BlockSync._got_block, node/p2p/sync.py): with more than
MAX_PENDING_BLOCKS of its blocks waiting for the validation thread, the node stops reading
the peer, and reads on as soon as the oldest of them is validated, as Core resumes a peer
once its receive queue is below the limit. Waiting for all of them made the reads come in
bursts of 33 blocks that held the event loop (the slow getblockcount calls of
rpc_latency.py's sync came at those bursts). Without a network: fakes of the chain, the
network and the peer; the validation jobs wait for the test to let each through."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from node.p2p.peer import Peer as RealPeer
from node.p2p.sync import MAX_PENDING_BLOCKS, BlockSync
from tests.blocktools import make_block
from tests.unit.test_serve_blocks import Net


class Chain:
    def in_ibd(self) -> bool:
        return True


class Peer:
    id = 0
    closed = False

    def __init__(self) -> None:
        self.known_blocks: set[bytes] = set()
        self.in_flight: dict[bytes, float] = {}
        self.block_jobs: deque = deque()

    pending_blocks = RealPeer.pending_blocks


def test_reading_resumes_when_the_oldest_waiting_block_is_validated() -> None:
    blocks = []
    prev = bytes(32)
    for h in range(MAX_PENDING_BLOCKS + 3):
        b = make_block(prev, h, time=1_700_000_000 + h)
        blocks.append(b)
        prev = b.hash
    gates = {b.hash: threading.Event() for b in blocks}

    async def go() -> None:
        net = Net(Chain(), asyncio.get_running_loop())  # (one validation thread)
        sync = BlockSync(net)
        peer = Peer()

        def process(raw, block):  # the validation thread, held until the test lets it go
            gates[raw].wait(10)
            return True, None, {}

        sync._process_block = process
        for b in blocks:
            peer.in_flight[b.hash] = 0.0  # (asked for)
        # Up to the limit the reads go on; the one over it waits.
        for b in blocks[:MAX_PENDING_BLOCKS]:
            await asyncio.wait_for(sync._got_block(peer, b.header, b.hash, None), 1)
        over = asyncio.ensure_future(
            sync._got_block(peer, blocks[MAX_PENDING_BLOCKS].header,
                            blocks[MAX_PENDING_BLOCKS].hash, None))
        await asyncio.sleep(0.2)
        assert not over.done() and peer.pending_blocks == MAX_PENDING_BLOCKS + 1
        # The oldest validated: reading resumes, while the other 32 still wait.
        gates[blocks[0].hash].set()
        await asyncio.wait_for(over, 2)
        assert peer.pending_blocks == MAX_PENDING_BLOCKS
        assert len(peer.block_jobs) == MAX_PENDING_BLOCKS
        # The next one over the limit waits for the next oldest only.
        nxt = asyncio.ensure_future(
            sync._got_block(peer, blocks[MAX_PENDING_BLOCKS + 1].header,
                            blocks[MAX_PENDING_BLOCKS + 1].hash, None))
        await asyncio.sleep(0.2)
        assert not nxt.done()
        gates[blocks[1].hash].set()
        await asyncio.wait_for(nxt, 2)
        for g in gates.values():
            g.set()
        while peer.pending_blocks:
            await asyncio.sleep(0.01)
        assert not peer.block_jobs
        net.validation.shutdown()

    asyncio.run(go())
