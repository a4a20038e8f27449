"""A peer whose messages arrive in a burst does not hold the event loop until the whole burst
is handled: reading buffered bytes never suspends, so the peer's task lets the loop run
others (an RPC call, other peers) between messages once it has used its step budget
(issue 20: getblockcount latency during a sync)."""

from __future__ import annotations

import asyncio
import time

from consensus.params import REGTEST
from node.p2p import messages as m
from node.p2p.netaddr import NetAddr
from node.p2p.peer import STEP_BUDGET, Peer


def test_a_burst_of_messages_lets_the_loop_run_between_them():
    async def run() -> list:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        addr = NetAddr.from_ip("127.0.0.1", port)
        reader = asyncio.StreamReader()
        magic = REGTEST.message_start
        peer = Peer(0, reader, writer, "outbound-full-relay", addr, addr, magic)
        # The whole burst is buffered before the peer reads any of it.
        reader.feed_data(b"".join(m.encode(magic, m.Ping(i)) for i in range(1, 11)))
        reader.feed_eof()
        events: list = []

        async def handle(p, command, msg) -> None:
            events.append(msg.nonce)
            time.sleep(STEP_BUDGET * 2)  # (a handler that uses more than the budget)

        async def ticker() -> None:
            while True:
                events.append("tick")
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await peer.run(handle)
        t.cancel()
        writer.close()
        server.close()
        return events

    events = asyncio.run(run())
    nonces = [e for e in events if e != "tick"]
    assert nonces == list(range(1, 11))  # every message, in order
    for a, b in zip(nonces, nonces[1:]):  # and the loop ran others between each two
        assert "tick" in events[events.index(a):events.index(b)], events


def test_a_large_headers_message_is_parsed_off_the_loop():
    """2,000 headers take milliseconds to parse: the loop runs others meanwhile, and the
    handler still gets the message, whole and in order."""
    import os

    async def run() -> list:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        addr = NetAddr.from_ip("127.0.0.1", port)
        reader = asyncio.StreamReader()
        magic = REGTEST.message_start
        peer = Peer(0, reader, writer, "outbound-full-relay", addr, addr, magic)
        headers = [os.urandom(80) for _ in range(2000)]
        payload = m.raw_headers_payload(headers)
        reader.feed_data(m.frame(magic, "headers", payload) + m.encode(magic, m.Ping(7)))
        reader.feed_eof()
        events: list = []

        async def handle(p, command, msg) -> None:
            events.append((command, msg))

        async def ticker() -> None:
            while True:
                events.append("tick")
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        events.append("start")
        await peer.run(handle)
        t.cancel()
        writer.close()
        server.close()
        return events, headers

    events, headers = asyncio.run(run())
    got = [e for e in events if isinstance(e, tuple)]
    assert [c for c, _ in got] == ["headers", "ping"]
    assert [h.serialize() for h in got[0][1].headers] == headers
    start = events.index("start")
    assert "tick" in events[start:events.index(got[0])]  # the loop ran during the parse
