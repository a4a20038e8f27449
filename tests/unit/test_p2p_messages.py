"""The wire codec (node/p2p/messages.py) and network addresses (node/p2p/netaddr.py):
framing, every payload round-tripped, byte layouts checked against Bitcoin's protocol
documentation, and malformed or oversized payloads refused."""

from __future__ import annotations

import struct

import pytest

from consensus.block import BlockHeader
from consensus.params import MAIN, REGTEST
from consensus.serialize import DeserializationError
from node.p2p import messages as m
from node.p2p.netaddr import (
    NET_I2P,
    NET_IPV4,
    NET_IPV6,
    NET_TORV3,
    AddressError,
    NetAddr,
    split_host_port,
)

# -- framing --------------------------------------------------------------------------------


def test_verack_frame_is_bitcoins():
    # An empty payload's checksum is sha256d("")[:4] = 5df6e0e2 (the protocol docs' verack).
    raw = m.encode(MAIN.message_start, m.VerAck())
    assert raw.hex() == "f9beb4d9" + b"verack".hex() + "00" * 6 + "00000000" + "5df6e0e2"
    hdr = m.MessageHeader.parse(raw[:24])
    assert (hdr.magic, hdr.command, hdr.length, hdr.checksum) == (
        MAIN.message_start, "verack", 0, bytes.fromhex("5df6e0e2"))


def test_regtest_magic_and_command_padding():
    raw = m.frame(REGTEST.message_start, "ping", struct.pack("<Q", 1))
    assert raw[:4] == bytes.fromhex("fabfb5da")
    assert raw[4:16] == b"ping" + b"\x00" * 8
    assert struct.unpack("<I", raw[16:20])[0] == 8
    with pytest.raises(ValueError):
        m.frame(REGTEST.message_start, "thirteenchars", b"")


@pytest.mark.parametrize("cmd", [b"ping\x00\x00x\x00\x00\x00\x00\x00", b"pi\x01g" + b"\0" * 8,
                                 b"ping pong\x00\x00\x00"])
def test_malformed_commands(cmd):
    head = REGTEST.message_start + cmd + b"\x00" * 8
    with pytest.raises(DeserializationError):
        m.MessageHeader.parse(head)


# -- payloads -------------------------------------------------------------------------------


def test_version_layout_and_round_trip():
    v = m.Version(version=70016, services=9, timestamp=1_700_000_000,
                  addr_recv=NetAddr.from_ip("10.0.0.1", 18444, 1),
                  addr_from=NetAddr.unspecified(), nonce=0xDEADBEEF,
                  user_agent="/minibtc:0.1.0/", start_height=123, relay=False)
    raw = v.serialize()
    assert raw[:4] == struct.pack("<i", 70016)
    assert raw[4:12] == struct.pack("<Q", 9)
    assert raw[20:28] == struct.pack("<Q", 1)  # addr_recv services
    assert raw[28:44] == bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])  # v4-mapped
    assert raw[44:46] == struct.pack(">H", 18444)  # ports are big-endian
    assert raw[-5:] == struct.pack("<i?", 123, False)
    back = m.Version.parse(raw)
    assert back == v
    # relay is optional (older peers): absent means true
    assert m.Version.parse(raw[:-1]).relay is True
    # a version cut off after addr_recv is accepted, with defaults after it
    short = m.Version.parse(raw[:46])
    assert short.version == 70016 and short.nonce == 0 and short.user_agent == ""


def test_version_user_agent_limit():
    v = m.Version(user_agent="x" * 257)
    with pytest.raises(DeserializationError):
        m.Version.parse(v.serialize())
    with pytest.raises(DeserializationError):
        m.Version.parse(b"\x01\x02")


def test_small_messages():
    for msg in (m.Ping(2**64 - 1), m.Pong(0), m.FeeFilter(1000), m.SendCmpct(True, 2)):
        assert type(msg).parse(msg.serialize()) == msg
    assert m.Ping(1).serialize() == struct.pack("<Q", 1)
    assert m.FeeFilter(1000).serialize() == struct.pack("<q", 1000)
    with pytest.raises(DeserializationError):
        m.Ping.parse(b"\x01\x02")
    for cls in (m.VerAck, m.GetAddr, m.SendHeaders, m.SendAddrV2, m.WTxidRelay):
        assert cls.parse(b"") == cls() and cls().serialize() == b""


def test_inv_getdata_notfound():
    items = [m.Inv(m.MSG_WTX, b"\x01" * 32), m.Inv(m.MSG_WITNESS_BLOCK, b"\x02" * 32)]
    for cls in (m.InvMsg, m.GetData, m.NotFound):
        raw = cls(items).serialize()
        assert raw[0] == 2 and raw[1:5] == struct.pack("<I", m.MSG_WTX)
        assert cls.parse(raw).items == items
    assert m.MSG_WITNESS_BLOCK == 0x40000002 and m.MSG_WITNESS_TX == 0x40000001
    with pytest.raises(DeserializationError):
        m.InvMsg.parse(b"\x02" + b"\x00" * 36)  # says two, holds one
    with pytest.raises(DeserializationError):
        m.InvMsg.parse(m.InvMsg(items).serialize() + b"\x00")  # trailing bytes
    big = m.compact_size(m.MAX_INV_SZ + 1) + b"\x00" * 36 * (m.MAX_INV_SZ + 1)
    with pytest.raises(m.OversizedMessage):
        m.GetData.parse(big)
    assert len(m.InvMsg.parse(m.compact_size(m.MAX_INV_SZ) + b"\0" * 36 * m.MAX_INV_SZ
                              ).items) == m.MAX_INV_SZ


def test_getheaders_and_getblocks():
    loc = [bytes([i]) * 32 for i in range(3)]
    g = m.GetHeaders(loc, b"\x09" * 32)
    raw = g.serialize()
    assert raw[:4] == struct.pack("<I", m.PROTOCOL_VERSION) and raw[4] == 3
    assert raw[-32:] == b"\x09" * 32
    assert m.GetHeaders.parse(raw) == g
    assert m.GetBlocks.parse(m.GetBlocks(loc).serialize()).locator == loc
    with pytest.raises(DeserializationError) as e:  # (not just refused: Core disconnects)
        m.GetHeaders.parse(m.GetHeaders([b"\0" * 32] * 102).serialize())
    assert not isinstance(e.value, m.OversizedMessage)


def test_headers():
    hs = [BlockHeader(0x20000000, bytes([i]) * 32, b"\x07" * 32, 1_700_000_000 + i,
                      0x207FFFFF, i) for i in range(3)]
    raw = m.Headers(hs).serialize()
    assert len(raw) == 1 + 81 * 3 and raw[81] == 0  # each header then a zero tx count
    back = m.Headers.parse(raw)
    assert [h.hash for h in back.headers] == [h.hash for h in hs]
    assert m.raw_headers_payload([h.serialize() for h in hs]) == raw
    bad = bytearray(raw)
    bad[81] = 1  # a non-zero transaction count
    with pytest.raises(DeserializationError):
        m.Headers.parse(bytes(bad))
    with pytest.raises(m.OversizedMessage):
        m.Headers.parse(m.compact_size(2001) + raw[1:82] * 2001)


def test_addr_v1_and_v2():
    a4 = NetAddr.from_ip("1.2.3.4", 8333, 9, 1_700_000_000)
    a6 = NetAddr.from_ip("2a00:1450::1", 18444, 1, 1_700_000_001)
    onion = NetAddr(NET_TORV3, b"\x55" * 32, 9050, 9, 1_700_000_002)
    raw = m.Addr([a4, a6]).serialize()
    assert len(raw) == 1 + 2 * 30
    assert raw[1:5] == struct.pack("<I", 1_700_000_000)
    back = m.Addr.parse(raw).addrs
    assert back == [a4, a6] and back[0].net == NET_IPV4 and back[0].time == 1_700_000_000
    raw2 = m.AddrV2([a4, a6, onion]).serialize()
    assert raw2[1 + 4] == 9  # services as a CompactSize
    assert raw2[1 + 4 + 1] == NET_IPV4 and raw2[1 + 4 + 2] == 4
    back2 = m.AddrV2.parse(raw2).addrs
    assert back2 == [a4, a6, onion] and [a.time for a in back2] == [a4.time, a6.time, onion.time]
    # An unknown network id is skipped; a known one with the wrong size is an error.
    unknown = struct.pack("<I", 1) + b"\x01" + b"\x63" + b"\x02ab" + b"\x20\x8d"
    assert m.AddrV2.parse(b"\x01" + unknown).addrs == []
    wrong = struct.pack("<I", 1) + b"\x01" + b"\x01" + b"\x05abcde" + b"\x20\x8d"
    with pytest.raises(DeserializationError):  # (malformed: the peer is disconnected)
        m.AddrV2.parse(b"\x01" + wrong)
    with pytest.raises(m.OversizedMessage):
        m.Addr.parse(m.Addr([a4] * 1001).serialize())


def test_decode_payload_dispatch():
    assert m.decode_payload("block", b"abc") == m.RawPayload("block", b"abc")
    assert m.decode_payload("tx", b"abc").data == b"abc"
    assert m.decode_payload("nosuchthing", b"junk") is None
    assert m.decode_payload("ping", m.Ping(3).serialize()) == m.Ping(3)


# -- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize("ip,routable,local", [
    ("1.2.3.4", True, False), ("8.8.8.8", True, False), ("127.0.0.1", False, True),
    ("127.0.0.2", False, True), ("0.0.0.0", False, True), ("10.1.2.3", False, False),
    ("192.168.1.1", False, False), ("172.16.0.1", False, False), ("100.64.0.1", False, False),
    ("169.254.1.1", False, False), ("192.0.2.1", False, False), ("224.0.0.1", False, False),
    ("::1", False, True), ("2a00:1450::1", True, False), ("2001:db8::1", False, False),
    ("fc00::1", False, False), ("fe80::1", False, False),
])
def test_routability(ip, routable, local):
    a = NetAddr.from_ip(ip, 8333)
    assert a.is_routable() is routable
    assert a.is_local() is local


def test_address_strings_and_mapping():
    assert str(NetAddr.from_ip("1.2.3.4", 8333)) == "1.2.3.4:8333"
    assert str(NetAddr.from_ip("::1", 18444)) == "[::1]:18444"
    mapped = NetAddr.from_ip("::ffff:1.2.3.4", 1)
    assert mapped.net == NET_IPV4 and mapped == NetAddr.from_ip("1.2.3.4", 1)
    assert NetAddr.from_v1(bytes(10) + b"\xff\xff" + bytes([5, 6, 7, 8]), 1).net == NET_IPV4
    assert NetAddr.from_v1(bytes(15) + b"\x01", 1).net == NET_IPV6
    # Tor v3: base32 of key, checksum and version, as Tor writes it
    onion = NetAddr(NET_TORV3, bytes(32), 9050)
    host = onion.host()
    assert host.endswith(".onion") and len(host) == 56 + 6
    assert onion.network == "onion" and onion.is_routable()
    assert NetAddr(NET_I2P, bytes(32), 0).host().endswith(".b32.i2p")
    assert NetAddr(NET_TORV3, bytes(32), 1).v1_bytes() == bytes(16)  # not expressible in v1
    with pytest.raises(AddressError):
        NetAddr.from_ip("not-an-ip", 1)
    assert NetAddr.from_v2(NET_IPV6, bytes(10) + b"\xff\xff" + bytes(4), 1) is None


@pytest.mark.parametrize("text,expect", [
    ("1.2.3.4", ("1.2.3.4", 18444)), ("1.2.3.4:8333", ("1.2.3.4", 8333)),
    ("[::1]", ("::1", 18444)), ("[::1]:9", ("::1", 9)), ("::1", ("::1", 18444)),
    ("localhost:5", ("localhost", 5)),
])
def test_split_host_port(text, expect):
    assert split_host_port(text, 18444) == expect


@pytest.mark.parametrize("text", ["", "1.2.3.4:0", "1.2.3.4:99999", "[::1", "[::1]x", "a:b"])
def test_split_host_port_errors(text):
    with pytest.raises(AddressError):
        split_host_port(text, 18444)


def test_ipv6_family_constant():
    assert NetAddr.from_ip("2a00::1", 1).net == NET_IPV6
