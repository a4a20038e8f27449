"""Peer permissions (Core's NetPermissionFlags): what -whitelist and -whitebind grant to the
peers they match, as "perm1,perm2@subnet" (whitelist) or "perm1,perm2@host:port" (whitebind).

- bloomfilter: may send BIP37 filter messages even without -peerbloomfilters
- noban: never discouraged or banned for misbehaviour; implies download
- download: served historical blocks even past an upload target
- forcerelay: its transactions are relayed even when already in our mempool; implies relay
- relay: its transactions are accepted even in -blocksonly mode
- mempool: may send the `mempool` message
- addr: its getaddr answered without the cache and the usual limits
- in / out (whitelist only): the connection direction it applies to (default: in)

Without "@" the implicit set applies: noban, mempool, and relay (-whitelistrelay, on by
default) or forcerelay (-whitelistforcerelay).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.p2p.banman import Network, parse_subnet
from node.p2p.netaddr import AddressError, split_host_port

BLOOMFILTER = 1 << 1
RELAY = 1 << 3
FORCERELAY = (1 << 2) | RELAY
DOWNLOAD = 1 << 6
NOBAN = (1 << 4) | DOWNLOAD
MEMPOOL = 1 << 5
ADDR = 1 << 7
IMPLICIT = 1 << 31
ALL = BLOOMFILTER | FORCERELAY | RELAY | NOBAN | MEMPOOL | DOWNLOAD | ADDR

_BY_NAME = {"bloomfilter": BLOOMFILTER, "bloom": BLOOMFILTER, "noban": NOBAN,
            "forcerelay": FORCERELAY, "mempool": MEMPOOL, "download": DOWNLOAD, "addr": ADDR,
            "all": ALL, "relay": RELAY}
_NAMES = (("bloomfilter", BLOOMFILTER), ("noban", NOBAN), ("forcerelay", FORCERELAY),
          ("relay", RELAY), ("mempool", MEMPOOL), ("download", DOWNLOAD), ("addr", ADDR))

DIR_IN = 1
DIR_OUT = 2


class PermissionSyntaxError(ValueError):
    """A -whitelist or -whitebind value that cannot be used (Core's message)."""


def has(flags: int, flag: int) -> bool:
    return flags & flag == flag


def names(flags: int) -> list[str]:
    """getpeerinfo's "permissions" (Core's NetPermissions::ToStrings)."""
    return [name for name, flag in _NAMES if has(flags, flag)]


def _parse_flags(text: str, allow_direction: bool) -> tuple[int, int, str]:
    """(flags, directions, the rest after '@')."""
    if "@" not in text:
        return IMPLICIT, 0, text
    perms, rest = text.split("@", 1)
    flags = 0
    directions = 0
    for p in perms.split(","):
        if p == "":
            continue
        if allow_direction and p in ("in", "out"):
            directions |= DIR_IN if p == "in" else DIR_OUT
            continue
        if p not in _BY_NAME:
            raise PermissionSyntaxError(f"Invalid P2P permission: '{p}'")
        flags |= _BY_NAME[p]
    return flags, directions, rest


def resolve_implicit(flags: int, whitelist_relay: bool, whitelist_forcerelay: bool) -> int:
    if not flags & IMPLICIT:
        return flags
    flags &= ~IMPLICIT
    if whitelist_forcerelay:
        flags |= FORCERELAY
    if whitelist_relay:
        flags |= RELAY
    return flags | MEMPOOL | NOBAN


@dataclass
class Whitelisted:
    subnet: Network
    flags: int
    directions: int  # DIR_IN and/or DIR_OUT


@dataclass
class Whitebind:
    host: str
    port: int
    flags: int


def parse_whitelist(text: str) -> Whitelisted:
    flags, directions, net = _parse_flags(text, allow_direction=True)
    try:
        subnet = parse_subnet(net)
    except ValueError:
        raise PermissionSyntaxError(f"Invalid netmask specified in -whitelist: '{net}'") from None
    return Whitelisted(subnet, flags, directions or DIR_IN)


def parse_whitebind(text: str) -> Whitebind:
    flags, _, bind = _parse_flags(text, allow_direction=False)
    try:
        host, port = split_host_port(bind, 0)
    except AddressError:
        raise PermissionSyntaxError(f"Cannot resolve -whitebind address: '{bind}'") from None
    if port == 0:
        raise PermissionSyntaxError(f"Need to specify a port with -whitebind: '{bind}'")
    return Whitebind(host, port, flags)
