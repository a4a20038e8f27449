"""Automatic outbound connections from the address book. Gossiped addresses must be
routable, and no routable address can be reached from this sandbox, so the dialler is
replaced by one that records the attempts and pretends they connected."""

from __future__ import annotations

import asyncio
import random
import types

from node.p2p import connman as cm
from node.p2p.addrman import AddrMan
from node.p2p.banman import BanMan, parse_subnet
from node.p2p.netaddr import NetAddr
from node.p2p.peer import OUTBOUND_FULL_RELAY


def test_outbound_connections_fill_from_the_address_book(monkeypatch):
    monkeypatch.setattr(cm, "OPEN_CONNECTIONS_INTERVAL", 0.001)
    book = AddrMan(None, rng=random.Random(5))
    book.add([NetAddr.from_ip(f"8.8.{i}.1", 8333, 9) for i in range(20)])
    bans = BanMan(None)
    bans.ban(parse_subnet("8.8.0.0/24"))  # one of them is banned
    manager = types.SimpleNamespace(addrman=book, banman=bans)
    c = cm.ConnMan(manager, b"\xfa\xbf\xb5\xda", 18444, listen=False)
    dialled: list[tuple[str, str]] = []

    async def fake_dial(name, conn_type, addr=None):
        dialled.append((name, conn_type))
        pid = len(dialled)
        c.peers[pid] = types.SimpleNamespace(closed=False, conn_type=conn_type, addr=addr,
                                             inbound=False, id=pid)
        return c.peers[pid]

    c.dial = fake_dial

    async def run():
        c.started = True
        task = asyncio.ensure_future(c._open_connections())
        await asyncio.sleep(0.5)
        c.started = False
        task.cancel()

    asyncio.run(run())
    assert len(dialled) == cm.MAX_OUTBOUND_FULL_RELAY  # the target, then no more
    assert all(t == OUTBOUND_FULL_RELAY for _, t in dialled)
    assert len({n for n, _ in dialled}) == len(dialled)  # never the same address twice
    assert "8.8.0.1:8333" not in {n for n, _ in dialled}
    assert all(book.entries[NetAddr.from_ip(n.split(":")[0], 8333).key()].attempts == 1
               for n, _ in dialled)


def test_no_automatic_connections_with_connect():
    manager = types.SimpleNamespace(addrman=AddrMan(None), banman=BanMan(None))
    c = cm.ConnMan(manager, b"\0" * 4, 18444, listen=False, connect=["127.0.0.1:1"])
    asyncio.run(asyncio.wait_for(c._open_connections(), 1))  # returns at once
