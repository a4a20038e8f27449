"""The ban list (banlist.json in Core's format), discouragement, the address book
(peers.json), block locators and the download-window helpers, without a network."""

from __future__ import annotations

import ipaddress
import json
import random

from consensus.params import REGTEST
from node.p2p.addrman import MAX_ENTRIES, AddrMan
from node.p2p.banman import DEFAULT_BANTIME, BanMan, parse_subnet
from node.p2p.netaddr import NetAddr
from node.p2p.sync import has_ancestor, last_common_ancestor, locator
from node.store.blockindex import BlockIndexEntry
from tests.blocktools import make_block


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ip(s: str):
    return ipaddress.ip_address(s)


def test_bans_match_subnets_expire_and_persist(tmp_path):
    clock = Clock()
    bans = BanMan(tmp_path, now=clock)
    assert bans.ban(parse_subnet("10.0.0.0/8"))
    assert not bans.ban(parse_subnet("10.0.0.0/255.0.0.0"))  # the same subnet
    assert bans.ban(parse_subnet("1.2.3.4"), 60)
    assert bans.is_banned(ip("10.200.1.1")) and bans.is_banned(ip("1.2.3.4"))
    assert not bans.is_banned(ip("1.2.3.5")) and not bans.is_banned(ip("::1"))
    assert bans.is_banned(NetAddr.from_ip("::ffff:10.0.0.1", 1).ip)
    data = json.loads((tmp_path / "banlist.json").read_text())
    entries = {e["address"]: e for e in data["banned_nets"]}
    assert set(entries) == {"10.0.0.0/8", "1.2.3.4/32"}
    assert entries["1.2.3.4/32"]["banned_until"] - entries["1.2.3.4/32"]["ban_created"] == 60
    assert entries["10.0.0.0/8"]["banned_until"] == int(clock.t) + DEFAULT_BANTIME
    again = BanMan(tmp_path, now=clock)  # a restart keeps them
    assert again.is_banned(ip("10.1.1.1"))
    clock.t += 61
    assert not again.is_banned(ip("1.2.3.4"))  # expired
    assert [str(n) for n, _ in again.list()] == ["10.0.0.0/8"]
    assert again.unban(parse_subnet("10.0.0.0/8")) and not again.unban(parse_subnet("9.9.9.9"))
    assert BanMan(tmp_path, now=clock).list() == []


def test_absolute_ban_and_clear(tmp_path):
    clock = Clock()
    bans = BanMan(tmp_path, now=clock)
    bans.ban(parse_subnet("2a00::/16"), int(clock.t) + 100, absolute=True)
    assert bans.is_banned(ip("2a00:1450::1"))
    [(_, e)] = bans.list()
    assert e.until == int(clock.t) + 100
    bans.discourage(ip("5.6.7.8"))
    assert bans.is_discouraged(ip("5.6.7.8")) and not bans.is_discouraged(ip("5.6.7.9"))
    bans.clear()
    assert bans.list() == [] and not bans.is_discouraged(ip("5.6.7.8"))
    # discouragement is never written to disk
    bans.discourage(ip("5.6.7.8"))
    assert not BanMan(tmp_path, now=clock).is_discouraged(ip("5.6.7.8"))


def test_damaged_banlist_is_replaced_not_fatal(tmp_path):
    (tmp_path / "banlist.json").write_text("{not json")
    bans = BanMan(tmp_path)
    assert bans.list() == []
    bans.ban(parse_subnet("1.1.1.1"))
    assert json.loads((tmp_path / "banlist.json").read_text())["banned_nets"]


def addr(i: int, port: int = 8333) -> NetAddr:
    return NetAddr.from_ip(f"8.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", port, 9)


def test_addrman_add_select_good_and_persist(tmp_path):
    clock = Clock()
    book = AddrMan(tmp_path, now=clock, rng=random.Random(1))
    assert book.add([addr(1), addr(2), NetAddr.from_ip("127.0.0.1", 1),
                     NetAddr.from_ip("192.168.0.1", 1)]) == 2  # routable ones only
    assert book.add([addr(1)]) == 0 and len(book) == 2
    chosen = book.select(exclude=set())
    assert chosen in (addr(1), addr(2))
    assert book.select(exclude={addr(1).key(), addr(2).key()}) is None
    book.attempt(addr(1))
    book.attempt(addr(2))
    assert book.select(exclude=set()) is None  # both just tried: wait before retrying
    clock.t += 120
    assert book.select(exclude=set()) is not None
    book.good(addr(2))
    book.save()
    again = AddrMan(tmp_path, now=clock)
    assert len(again) == 2 and again.entries[addr(2).key()].tried
    assert again.entries[addr(1).key()].attempts == 1


def test_addrman_terrible_entries_and_getaddr(tmp_path):
    clock = Clock()
    book = AddrMan(None, now=clock, rng=random.Random(2))
    old = addr(1)
    old.time = int(clock.t) - 40 * 86400  # not seen for 40 days
    future = addr(2)
    future.time = int(clock.t) + 3600
    book.add([old, addr(3)])
    book.entries[addr(1).key()].addr.time = old.time
    assert book.get_addr(0, 0) == [addr(3)]  # the stale one is never handed out
    many = [addr(i) for i in range(10, 110)]
    book.add(many)
    assert len(book.get_addr(1000, 23)) == len(book) * 23 // 100
    assert len(book.get_addr(5, 0)) == 5
    # failures without success make an address terrible after three tries
    a = addr(3)
    for _ in range(3):
        book.attempt(a)
    clock.t += 120
    assert a not in book.get_addr(0, 0)


def test_addrman_capacity_bounded():
    book = AddrMan(None, rng=random.Random(3))
    book.add([addr(i) for i in range(MAX_ENTRIES + 500)])
    assert len(book) == MAX_ENTRIES


def test_damaged_peers_file(tmp_path):
    (tmp_path / "peers.json").write_text('{"addresses": [{"net": 1}]}')
    assert len(AddrMan(tmp_path)) == 0


def chain(n: int) -> list[BlockIndexEntry]:
    out = [BlockIndexEntry(REGTEST.genesis.header, None)]
    for h in range(1, n + 1):
        b = make_block(out[-1].hash, h, time=1_700_000_000 + h, mine=False)
        out.append(BlockIndexEntry(b.header, out[-1]))
    return out


def test_locator_shape():
    c = chain(100)
    loc = locator(c[-1])
    heights = [next(e.height for e in c if e.hash == h) for h in loc]
    # the tip and ten more one by one, then doubling steps, always ending at genesis (the
    # sequence Core's LocatorEntries gives)
    assert heights[:11] == list(range(100, 89, -1))
    assert heights[11:] == [89, 87, 83, 75, 59, 27, 0]
    assert locator(c[0]) == [c[0].hash]


def test_fork_helpers():
    main = chain(20)
    side = [main[10]]
    for h in range(11, 16):
        b = make_block(side[-1].hash, h, time=1_800_000_000 + h, mine=False)
        side.append(BlockIndexEntry(b.header, side[-1]))
    assert last_common_ancestor(main[20], side[-1]) is main[10]
    assert last_common_ancestor(side[-1], main[12]) is main[10]
    assert last_common_ancestor(main[5], main[20]) is main[5]
    assert has_ancestor(main[20], main[3]) and not has_ancestor(main[20], side[2])
    assert not has_ancestor(None, main[1]) and not has_ancestor(main[2], main[3])


def test_download_asks_again_for_a_block_whose_stored_data_was_dropped():
    """A block stored with all its parents moves the peer's last common block past it. If
    its stored copy then cannot be read back when it is connected, the chain drops its data
    (ChainState._forget_data: the block and its descendants lose their chain_tx), and the
    next request to the peer asks for it again. It did not: the download stalled for good
    (test_crash_recovery's truncated blk file under load, 1 run in ~10)."""
    from types import SimpleNamespace

    from node.p2p import messages as m
    from node.p2p.sync import BlockSync
    from node.store.blockindex import HAVE_DATA

    c = chain(14)
    for e in c[:13]:  # 0..12 stored with all their parents, 13 a header only
        e.status |= HAVE_DATA
        e.chain_tx = e.height + 1
    net = SimpleNamespace(chain=SimpleNamespace(published=c[10]))  # tip at 10
    sync = BlockSync(net)
    peer = SimpleNamespace(best_known=c[14], last_common=None, services=m.NODE_NETWORK)
    assert sync._next_blocks(peer, 16) == ([c[13], c[14]], None)
    assert peer.last_common is c[12]
    # Connecting 11 finds its stored copy unreadable: dropped, as _forget_data drops it.
    c[11].status &= ~HAVE_DATA
    c[11].chain_tx = c[12].chain_tx = 0
    assert sync._next_blocks(peer, 16)[0] == [c[11], c[13], c[14]]
