"""Network addresses as the P2P protocol carries them (Core's CNetAddr/CService/CAddress).

BIP155 networks: IPv4, IPv6, Tor v3, I2P and CJDNS. Only IPv4/IPv6 can be reached here, but
addresses of the others are kept and gossiped (addrv2), as Core does. Routability follows
Core's IsRoutable through the standard library's notion of a global address: loopback,
private, link-local, shared and documentation ranges are never added to the address book
from gossip or advertised.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket

NET_IPV4 = 1
NET_IPV6 = 2
NET_TORV2 = 3  # no longer valid; Core drops them
NET_TORV3 = 4
NET_I2P = 5
NET_CJDNS = 6
_SIZES = {NET_IPV4: 4, NET_IPV6: 16, NET_TORV2: 10, NET_TORV3: 32, NET_I2P: 32, NET_CJDNS: 16}
NET_NAMES = {NET_IPV4: "ipv4", NET_IPV6: "ipv6", NET_TORV3: "onion", NET_I2P: "i2p",
             NET_CJDNS: "cjdns"}
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


class AddressError(ValueError):
    """An address string or BIP155 record that is not valid."""


class NetAddr:
    """An address with port, the services it advertises and when it was last seen."""

    __slots__ = ("net", "addr", "port", "services", "time")

    def __init__(self, net: int, addr: bytes, port: int, services: int = 0, time: int = 0):
        self.net = net
        self.addr = addr
        self.port = port
        self.services = services
        self.time = time

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def unspecified(cls) -> NetAddr:
        return cls(NET_IPV6, b"\x00" * 16, 0)

    @classmethod
    def from_v1(cls, ip16: bytes, port: int, services: int = 0) -> NetAddr:
        if ip16[:12] == _V4_MAPPED:
            return cls(NET_IPV4, ip16[12:], port, services)
        return cls(NET_IPV6, ip16, port, services)

    @classmethod
    def from_v2(cls, net: int, raw: bytes, port: int, services: int = 0) -> NetAddr | None:
        """None for a network this node does not know (skipped, as BIP155 says); raises
        AddressError for a known network with the wrong address size."""
        size = _SIZES.get(net)
        if size is None:
            return None
        if len(raw) != size:
            raise AddressError(f"BIP155 network {net} address of {len(raw)} bytes")
        if net == NET_TORV2:
            return None
        if net == NET_IPV6 and raw[:12] == _V4_MAPPED:
            return None  # Core: an IPv4 address in IPv6 clothing is not accepted in addrv2
        return cls(net, raw, port, services)

    @classmethod
    def from_ip(cls, ip: str, port: int, services: int = 0, time: int = 0) -> NetAddr:
        try:
            a = ipaddress.ip_address(ip.strip("[]").split("%")[0])
        except ValueError:
            raise AddressError(f"not an IP address: {ip}") from None
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        if isinstance(a, ipaddress.IPv4Address):
            return cls(NET_IPV4, a.packed, port, services, time)
        return cls(NET_IPV6, a.packed, port, services, time)

    @classmethod
    def from_sockaddr(cls, sockaddr: tuple) -> NetAddr:
        return cls.from_ip(sockaddr[0], sockaddr[1])

    # -- encodings ---------------------------------------------------------------------------

    def v1_bytes(self) -> bytes:
        """The 16 bytes of the v1 encoding (networks other than IP become all zeros)."""
        if self.net == NET_IPV4:
            return _V4_MAPPED + self.addr
        if self.net in (NET_IPV6, NET_CJDNS):
            return self.addr
        return b"\x00" * 16

    @property
    def is_addrv1_compatible(self) -> bool:
        return self.net in (NET_IPV4, NET_IPV6)

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if self.net == NET_IPV4:
            return ipaddress.IPv4Address(self.addr)
        if self.net in (NET_IPV6, NET_CJDNS):
            return ipaddress.IPv6Address(self.addr)
        return None

    def host(self) -> str:
        if self.net == NET_TORV3:
            version = b"\x03"
            check = hashlib.sha3_256(b".onion checksum" + self.addr + version).digest()[:2]
            return base64.b32encode(self.addr + check + version).decode().lower() + ".onion"
        if self.net == NET_I2P:
            return base64.b32encode(self.addr).decode().lower().rstrip("=") + ".b32.i2p"
        return str(self.ip)

    def __str__(self) -> str:
        h = self.host()
        return f"[{h}]:{self.port}" if self.net in (NET_IPV6, NET_CJDNS) else f"{h}:{self.port}"

    @property
    def network(self) -> str:
        return NET_NAMES.get(self.net, "unroutable")

    # -- classification ------------------------------------------------------------------------

    @property
    def is_ip(self) -> bool:
        return self.net in (NET_IPV4, NET_IPV6)

    def is_local(self) -> bool:
        """Loopback or 0.0.0.0/8 (Core's IsLocal): misbehaving local peers are disconnected
        but never discouraged, which would hit every peer on the same machine."""
        ip = self.ip
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] == 0:
            return True
        return ip.is_loopback

    def is_routable(self) -> bool:
        if self.net in (NET_TORV3, NET_I2P):
            return True
        ip = self.ip
        if ip is None or self.net == NET_CJDNS:
            return False
        return ip.is_global and not ip.is_multicast

    def key(self) -> tuple[int, bytes, int]:
        return (self.net, self.addr, self.port)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetAddr) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"NetAddr({self})"


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """"host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if not text:
        raise AddressError("empty address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise AddressError(f"unclosed [ in {text}")
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise AddressError(f"bad address {text}")
        return host, _port(rest[1:], text)
    if text.count(":") == 1:
        host, p = text.split(":")
        return host, _port(p, text)
    return text, default_port  # a name, an IPv4 address, or a bare IPv6 address


def _port(p: str, text: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise AddressError(f"invalid port in {text}")
    return int(p)


def resolve(host: str, port: int) -> list[tuple[str, int]]:
    """(ip, port) pairs for a host name or IP literal (blocking: call off the event loop
    for names)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise AddressError(f"cannot resolve {host}: {err}") from None
    return [(info[4][0], info[4][1]) for info in infos]
