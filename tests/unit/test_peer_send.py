"""Writing to a peer whose connection is gone closes the peer instead of writing on (each
write to a lost connection makes asyncio log a line: issue 18 #6)."""

from __future__ import annotations

import asyncio

from consensus.params import REGTEST
from node.p2p import messages as m
from node.p2p.netaddr import NetAddr
from node.p2p.peer import Peer


def test_send_to_a_lost_connection_closes_the_peer():
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        addr = NetAddr.from_ip("127.0.0.1", port)
        peer = Peer(0, reader, writer, "outbound-full-relay", addr, addr,
                    REGTEST.message_start)
        writer.transport.abort()  # the connection is lost
        await asyncio.sleep(0)
        before = peer.bytes_sent
        peer.send(m.Ping(1))
        assert peer.closed and peer.disconnect_reason == "connection lost"
        assert peer.bytes_sent == before
        server.close()

    asyncio.run(run())
