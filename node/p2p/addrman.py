"""The address book (Core's AddrMan, simplified): addresses learned from addr/addrv2 gossip,
-addnode and successful connections, with their connection history; picks candidates for
outbound connections and answers getaddr.

Simplifications against Core, written down: one table with a "tried" flag instead of
bucketed new/tried tables (no eclipse-attack bucketing by source group); a fixed capacity
where a full book replaces the worst of a few random entries. Kept in peers.json in the
datadir (minibtc's own format, JSON: Core's peers.dat is a binary dump of its buckets).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path

from node.p2p.netaddr import NET_IPV4, NET_IPV6, AddressError, NetAddr

log = logging.getLogger("net")
addrlog = logging.getLogger("addrman")

PEERS_FILE = "peers.json"
MAX_ENTRIES = 20_000
HORIZON_DAYS = 30  # addresses not seen for longer are terrible (Core's ADDRMAN_HORIZON)
MAX_RETRIES = 3  # failures without any success before an address is terrible
MAX_FAILURES = 10  # failures in the last week of an address that once worked
RETRY_AFTER = 60.0  # seconds before an address that failed is tried again


class AddrInfo:
    __slots__ = ("addr", "source", "attempts", "last_try", "last_success", "tried")

    def __init__(self, addr: NetAddr, source: str = "") -> None:
        self.addr = addr
        self.source = source
        self.attempts = 0
        self.last_try = 0.0
        self.last_success = 0.0
        self.tried = False

    def is_terrible(self, now: float) -> bool:
        if self.last_try and self.last_try >= now - 60:
            return False  # never remove things tried in the last minute
        if self.addr.time > now + 10 * 60:
            return True  # from the future
        if now - self.addr.time > HORIZON_DAYS * 86400:
            return True
        if self.last_success == 0 and self.attempts >= MAX_RETRIES:
            return True
        return now - self.last_success > 7 * 86400 and self.attempts >= MAX_FAILURES

    def chance(self, now: float) -> float:
        """Relative chance of being selected (Core's GetChance)."""
        c = 1.0
        if now - self.last_try < 600:
            c *= 0.01
        return c * 0.66 ** min(self.attempts, 8)


class AddrMan:
    def __init__(self, datadir: Path | None, now=time.time, rng: random.Random | None = None):
        self.path = datadir / PEERS_FILE if datadir is not None else None
        self.now = now
        self.rng = rng or random.Random()
        self.entries: dict[tuple, AddrInfo] = {}
        # The keys again, in a list, so that random picks and removals take constant time.
        self._keys: list[tuple] = []
        self._pos: dict[tuple, int] = {}
        self.dirty = False
        self.load()

    def _insert(self, key: tuple, info: AddrInfo) -> None:
        self.entries[key] = info
        self._pos[key] = len(self._keys)
        self._keys.append(key)

    def _delete(self, key: tuple) -> None:
        del self.entries[key]
        i = self._pos.pop(key)
        last = self._keys.pop()
        if i < len(self._keys):
            self._keys[i] = last
            self._pos[last] = i

    def _random_keys(self, n: int) -> list[tuple]:
        if len(self._keys) <= n:
            return list(self._keys)
        return [self._keys[self.rng.randrange(len(self._keys))] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, addrs: list[NetAddr], source: str = "", penalty: int = 0) -> int:
        """Add the routable ones of `addrs`; returns how many were new. `penalty` seconds
        are taken off the advertised time of gossiped addresses (Core: 2 hours)."""
        now = self.now()
        added = 0
        for a in addrs:
            if not a.is_routable():
                continue
            seen = a.time if a.time else int(now)
            seen = max(0, min(seen, int(now) + 600) - penalty)
            info = self.entries.get(a.key())
            if info is not None:
                if seen > info.addr.time:
                    info.addr.time = seen
                info.addr.services |= a.services
                continue
            if len(self.entries) >= MAX_ENTRIES:
                self._make_room(now)
            copy = NetAddr(a.net, a.addr, a.port, a.services, seen)
            self._insert(a.key(), AddrInfo(copy, source))
            added += 1
            addrlog.debug("Added %s from %s to the new table", a, source or "?")
        if added:
            self.dirty = True
            tried = sum(1 for i in self.entries.values() if i.tried)
            addrlog.debug("Added %d addresses (of %d) from %s: %d tried, %d new", added,
                          len(addrs), source or "?", tried, len(self.entries) - tried)
        return added

    def _make_room(self, now: float) -> None:
        """Drop the worst of a few random entries: a terrible one, else an untried one
        seen longest ago."""
        sample = self._random_keys(8)
        worst = min(sample, key=lambda k: (not self.entries[k].is_terrible(now),
                                           self.entries[k].tried, self.entries[k].addr.time))
        self._delete(worst)

    def sweep(self) -> None:
        """Forget terrible addresses (now and then: it looks at every entry)."""
        now = self.now()
        for k in [k for k, i in self.entries.items() if i.is_terrible(now)]:
            self._delete(k)
            self.dirty = True

    def attempt(self, a: NetAddr) -> None:
        info = self.entries.get(a.key())
        if info is not None:
            info.attempts += 1
            info.last_try = self.now()
            self.dirty = True

    def good(self, a: NetAddr) -> None:
        """A connection to `a` completed its handshake."""
        now = self.now()
        info = self.entries.get(a.key())
        if info is None:
            return
        info.tried = True
        info.attempts = 0
        info.last_try = info.last_success = now
        info.addr.time = int(now)
        self.dirty = True

    def select(self, exclude: set[tuple]) -> NetAddr | None:
        """A candidate for an outbound connection (reachable networks only), or None:
        chosen among a random sample of the book, by Core's chances."""
        now = self.now()
        pool = [i for i in (self.entries[k] for k in set(self._random_keys(64)))
                if i.addr.key() not in exclude and i.addr.net in (NET_IPV4, NET_IPV6)
                and now - i.last_try >= RETRY_AFTER]
        if not pool:
            return None
        tried = [i for i in pool if i.tried]
        if tried and self.rng.random() < 0.5:
            pool = tried
        weights = [i.chance(now) for i in pool]
        return self.rng.choices(pool, weights)[0].addr

    def get_addr(self, max_count: int = 1000, max_pct: int = 23,
                 network: int | None = None) -> list[NetAddr]:
        """Random non-terrible addresses: at most max_pct percent of the book, at most
        max_count (0 = no limit), optionally of one network (Core's GetAddr)."""
        now = self.now()
        items = [i for i in self.entries.values()
                 if (network is None or i.addr.net == network) and not i.is_terrible(now)]
        n = len(self.entries) * max_pct // 100 if max_pct else len(items)
        if max_count:
            n = min(n, max_count)
        n = min(n, len(items))
        return [i.addr for i in self.rng.sample(items, n)]

    # -- persistence ---------------------------------------------------------------------------

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            for item in data["addresses"]:
                a = NetAddr.from_v2(int(item["net"]), bytes.fromhex(item["addr"]),
                                    int(item["port"]), int(item["services"]))
                if a is None:
                    continue
                a.time = int(item["time"])
                info = AddrInfo(a, str(item.get("source", "")))
                info.attempts = int(item.get("attempts", 0))
                info.last_try = float(item.get("last_try", 0))
                info.last_success = float(item.get("last_success", 0))
                info.tried = bool(item.get("tried", False))
                if a.key() not in self.entries:
                    self._insert(a.key(), info)
        except (OSError, ValueError, KeyError, TypeError, AddressError) as err:
            log.warning("%s is unreadable (%s); starting with an empty address book",
                        self.path, err)
            self.entries.clear()
            self._keys.clear()
            self._pos.clear()
        log.info("loaded %d addresses from %s", len(self.entries), self.path)

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        data = {"version": 1, "addresses": [
            {"net": i.addr.net, "addr": i.addr.addr.hex(), "port": i.addr.port,
             "services": i.addr.services, "time": i.addr.time, "source": i.source,
             "attempts": i.attempts, "last_try": i.last_try, "last_success": i.last_success,
             "tried": i.tried}
            for i in self.entries.values()
        ]}
        tmp = self.path.with_suffix(".json.new")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, self.path)
        self.dirty = False
