"""Bans and discouragement (Core's BanMan).

- Bans are set by the operator (setban) on an address or subnet until a time; they are kept
  in banlist.json in the datadir, in Core's format, and survive restarts.
- Discouragement is what misbehaviour earns: the address is remembered in memory (bounded)
  and its connections are refused; it is not persisted, as in Core.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from pathlib import Path

from node.p2p.peer import KnownSet

log = logging.getLogger("net")

DEFAULT_BANTIME = 24 * 60 * 60
BANLIST_FILE = "banlist.json"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_subnet(text: str) -> Network:
    """An IP address or subnet ("1.2.3.4", "1.2.3.0/24", "1.2.3.0/255.255.255.0", "::1").
    Raises ValueError."""
    net = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address
            net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
    return net


class BanEntry:
    __slots__ = ("created", "until")

    def __init__(self, created: int, until: int) -> None:
        self.created = created
        self.until = until


class BanMan:
    def __init__(self, datadir: Path | None, now=time.time) -> None:
        self.path = datadir / BANLIST_FILE if datadir is not None else None
        self.now = now
        self.banned: dict[Network, BanEntry] = {}
        self.discouraged = KnownSet(50_000)  # packed IP addresses
        self.dirty = False
        self.load()

    # -- bans ----------------------------------------------------------------------------

    def ban(self, net: Network, bantime: int = DEFAULT_BANTIME, absolute: bool = False) -> bool:
        """False if exactly this subnet is banned already."""
        self.sweep()
        if net in self.banned:
            return False
        now = int(self.now())
        until = bantime if absolute else now + (bantime if bantime > 0 else DEFAULT_BANTIME)
        self.banned[net] = BanEntry(now, until)
        self.dirty = True
        self.save()
        return True

    def unban(self, net: Network) -> bool:
        if self.banned.pop(net, None) is None:
            return False
        self.dirty = True
        self.save()
        return True

    def clear(self) -> None:
        self.banned.clear()
        self.discouraged.clear()
        self.dirty = True
        self.save()

    def is_banned(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        if ip is None:
            return False
        now = self.now()
        return any(ip.version == net.version and ip in net and e.until > now
                   for net, e in self.banned.items())

    def sweep(self) -> None:
        now = self.now()
        for net in [n for n, e in self.banned.items() if e.until <= now]:
            del self.banned[net]
            self.dirty = True

    def list(self) -> list[tuple[Network, BanEntry]]:
        self.sweep()
        return sorted(self.banned.items(), key=lambda kv: kv[1].created)

    # -- discouragement --------------------------------------------------------------------

    def discourage(self, ip) -> None:
        if ip is not None:
            self.discouraged.add(ip.packed)

    def is_discouraged(self, ip) -> bool:
        return ip is not None and ip.packed in self.discouraged

    # -- persistence (Core's banlist.json) --------------------------------------------------

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            entries = data["banned_nets"]
            for item in entries:
                net = parse_subnet(item["address"])
                self.banned[net] = BanEntry(int(item["ban_created"]), int(item["banned_until"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            # A damaged file loses the bans but must not stop the node; it is rewritten.
            log.warning("%s is unreadable (%s); starting with no bans", self.path, err)
            self.banned.clear()
        self.sweep()

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.sweep()
        data = {"banned_nets": [
            {"version": 1, "ban_created": e.created, "banned_until": e.until,
             "address": str(net)}
            for net, e in self.banned.items()
        ]}
        tmp = self.path.with_suffix(".json.new")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)
        self.dirty = False
