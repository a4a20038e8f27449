"""getaddrmaninfo and getrawaddrman from the node's address manager, and sendmsgtopeer, on
a real node: addresses added with addpeeraddress (new, and tried) are counted per network
and listed with Core's fields; a message sent with sendmsgtopeer arrives at a raw test peer
byte for byte; Core's errors."""

from __future__ import annotations

import struct
import time

from node.p2p import messages as m
from tests.functional.framework import NodeProcess, rpc_error
from tests.functional.p2p_peer import RawPeer

NETWORKS = ("ipv4", "ipv6", "onion", "i2p", "cjdns")


def _raw_wait(peer: RawPeer, command: str, want: bytes | None = None,
              timeout: float = 10.0) -> bytes:
    """The payload of the next message of that type (equal to `want`, if given: the node
    pings on its own too), read from the wire as it came."""
    deadline = time.time() + timeout
    while True:
        head = m.MessageHeader.parse(peer._read(m.HEADER_LEN, deadline))
        payload = peer._read(head.length, deadline)
        if head.command == command and (want is None or payload == want):
            return payload



def test_addrman_info_and_raw_entries(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        empty = n.call("getaddrmaninfo")
        assert list(empty) == [*NETWORKS, "all_networks"]
        assert all(v == {"new": 0, "tried": 0, "total": 0} for v in empty.values())
        added = {("1.2.3.4", 8333, False), ("5.6.7.8", 18444, True),
                 ("2a01:4f8::5", 8333, False), ("9.9.9.9", 8333, True)}
        for host, port, tried in added:
            assert n.call("addpeeraddress", host, port, tried) == {"success": True}
        assert n.call("addpeeraddress", "1.2.3.4", 8333) == {"success": False}  # known
        info = n.call("getaddrmaninfo")
        assert info["ipv4"] == {"new": 1, "tried": 2, "total": 3}
        assert info["ipv6"] == {"new": 1, "tried": 0, "total": 1}
        assert info["all_networks"] == {"new": 2, "tried": 2, "total": 4}
        assert info["onion"]["total"] == 0

        raw = n.call("getrawaddrman")
        assert set(raw) == {"new", "tried"}
        seen = set()
        for table, entries in raw.items():
            for key, e in entries.items():
                bucket, position = (int(x) for x in key.split("/"))
                assert 0 <= position < 64 and bucket >= 0
                assert set(e) == {"address", "port", "services", "time", "network", "source",
                                  "source_network"}
                # addpeeraddress: the address announced itself, as in Core
                assert e["source"] == e["address"] and e["source_network"] == e["network"]
                assert e["network"] == ("ipv6" if ":" in e["address"] else "ipv4")
                assert e["services"] == 9  # NODE_NETWORK | NODE_WITNESS
                seen.add((e["address"], e["port"], table == "tried"))
        assert seen == added
        help_text = n.call("help")
        assert "getaddrmaninfo\n" in help_text
        assert "getrawaddrman" not in help_text and "sendmsgtopeer" not in help_text  # hidden
        assert "getrawaddrman" in n.call("help", "getrawaddrman")


def test_sendmsgtopeer(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        peer = RawPeer(n.p2pport)
        peer.handshake()
        pid = n.call("getpeerinfo")[0]["id"]
        nonce = 0x0123456789ABCDEF
        assert n.call("sendmsgtopeer", pid, "ping", struct.pack("<Q", nonce).hex()) == {}
        assert _raw_wait(peer, "ping", struct.pack("<Q", nonce)) == struct.pack("<Q", nonce)
        assert n.call("sendmsgtopeer", pid, "abcdefghijkl", "00ff") == {}
        assert _raw_wait(peer, "abcdefghijkl") == b"\x00\xff"
        assert n.call("sendmsgtopeer", pid, "empty", "") == {}
        assert _raw_wait(peer, "empty") == b""
        assert rpc_error(n.call, "sendmsgtopeer", pid, "abcdefghijklm", "") == (
            -8, "Error: msg_type too long, max length is 12")
        assert rpc_error(n.call, "sendmsgtopeer", pid, "ping", "0g") == (
            -8, "Error parsing input for msg")
        assert rpc_error(n.call, "sendmsgtopeer", pid, "ping", "abc") == (
            -8, "Error parsing input for msg")
        assert rpc_error(n.call, "sendmsgtopeer", pid + 100, "ping", "00") == (
            -1, "Error: Could not send message to peer")
        peer.close()
