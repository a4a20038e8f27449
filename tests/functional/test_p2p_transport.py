"""The transports, between real minibtcd processes and raw sockets.

v1 framing errors as Core's: a wrong network magic or an oversized message ends the
connection, a bad checksum or an invalid message type drops the message only (counted as
*other*), each with Core's "Header error: ..." line; a payload that does not parse is dropped
with Core's "ProcessMessages(...): Exception" line; bytes count as they arrive.

BIP324 v2 transport: two nodes speak v2 by
default (same session id on both ends, blocks sync), -v2transport=0 turns it off (no
NODE_P2P_V2, addnode's v2transport refused), a v2 attempt at a v1-only node is retried once
as v1 (Core's log lines), an inbound connection is told v1 or v2 from its first 16 bytes
("detecting" until then), and the handshake errors end the connection with Core's words."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from consensus.params import REGTEST
from node.p2p import messages as m
from node.p2p.v2transport import V2Transport, v1_prefix
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, tips, wait_until
from tests.functional.p2p_peer import RawPeer, frame_with, listen

MAGIC = REGTEST.message_start
NODE_P2P_V2 = 1 << 11


def _debug_log(node: NodeProcess) -> str:
    return (node.chain_dir / "debug.log").read_text(errors="replace")


def _last_peer(node: NodeProcess) -> dict:
    peers = node.call("getpeerinfo")
    return peers[-1] if peers else {"bytesrecv_per_msg": {}, "transport_protocol_type": ""}


@pytest.fixture
def v2node(tmp_path):
    with NodeProcess(tmp_path / "v2", "-debug=net") as node:
        yield node


def test_two_nodes_speak_v2_by_default(tmp_path, v2node):
    info = v2node.call("getnetworkinfo")
    assert int(info["localservices"], 16) & NODE_P2P_V2
    assert "P2P_V2" in info["localservicesnames"]
    with NodeProcess(tmp_path / "b", f"-addnode={v2node.p2p_addr}") as b:
        wait_until(lambda: all(
            p["bytesrecv_per_msg"].get("pong", 0) >= 29
            for n in (v2node, b) for p in n.call("getpeerinfo") or [{"bytesrecv_per_msg": {}}]),
            20, "v2 handshake and a pong both ways")
        [pa], [pb] = v2node.call("getpeerinfo"), b.call("getpeerinfo")
        assert pa["transport_protocol_type"] == pb["transport_protocol_type"] == "v2"
        assert len(pa["session_id"]) == 64 and pa["session_id"] == pb["session_id"]
        assert pa["servicesnames"][-1] == "P2P_V2"
        hashes = v2node.call("generatetoaddress", 5, ADDR)
        wait_until(lambda: tips([b]) == [hashes[-1]], 20, "blocks over v2")
        # Bytes are counted on the wire (handshake included) and per message.
        assert pb["bytesrecv"] >= 64 + sum(pb["bytesrecv_per_msg"].values())
    assert "start sending v2 handshake to peer=" in _debug_log(v2node)


def test_v1_only_node_and_the_v1_retry(tmp_path, v2node):
    with NodeProcess(tmp_path / "v1", "-v2transport=0") as v1:
        info = v1.call("getnetworkinfo")
        assert not int(info["localservices"], 16) & NODE_P2P_V2
        with pytest.raises(RPCFailure) as err:
            v1.call("addnode", v2node.p2p_addr, "add", True)
        assert err.value.code == -8
        assert "v2transport requested but not enabled (see -v2transport)" in str(err.value)
        # v1 node -> v2 node: the v2 node detects v1 and answers in v1.
        v1.call("addnode", v2node.p2p_addr, "onetry")
        wait_until(lambda: len(v2node.call("getpeerinfo")) == 1
                   and _last_peer(v2node)["bytesrecv_per_msg"].get("pong", 0), 20, "v1 link")
        assert _last_peer(v2node)["transport_protocol_type"] == "v1"
        assert _last_peer(v2node)["session_id"] == ""
        v1.call("disconnectnode", v2node.p2p_addr)
        wait_until(lambda: not v2node.call("getpeerinfo"), 10, "disconnection")
        # v2 node -> v1 node with v2 asked for: the v1 node drops the key, v1 is retried.
        v2node.call("addnode", v1.p2p_addr, "onetry", True)
        wait_until(lambda: len(v1.call("getpeerinfo")) == 1
                   and _last_peer(v2node)["bytesrecv_per_msg"].get("pong", 0)
                   and _last_peer(v1)["bytesrecv_per_msg"].get("pong", 0), 20, "v1 retry")
        assert _last_peer(v2node)["transport_protocol_type"] == "v1"
        assert _last_peer(v1)["transport_protocol_type"] == "v1"
        log = _debug_log(v2node)
        assert "start sending v2 handshake to peer=" in log
        assert "retrying with v1 transport protocol for peer=" in log
        hashes = v1.call("generatetoaddress", 3, ADDR)
        wait_until(lambda: tips([v2node]) == [hashes[-1]], 20, "blocks over the v1 retry")


def test_inbound_v1_detected_from_16_bytes(v2node):
    port = v2node.p2pport
    peer = RawPeer(port)
    wait_until(lambda: v2node.call("getpeerinfo"), 10, "inbound peer")
    version = m.encode(MAGIC, peer.version_msg())
    assert version[:16] == v1_prefix(MAGIC)
    peer.send_raw(version[:15])
    time.sleep(0.2)
    assert _last_peer(v2node)["transport_protocol_type"] == "detecting"
    peer.send_raw(version[15:])
    wait_until(lambda: _last_peer(v2node)["transport_protocol_type"] == "v1", 10, "v1")
    peer.wait_for("version")  # the node answers in v1
    peer.send(m.VerAck())
    peer.wait_for("verack")
    peer.close()


def test_raw_v2_initiator_and_handshake_errors(v2node):
    port = v2node.p2pport
    # A v2 initiator (our sans-I/O transport over a plain socket) gets the node's version.
    t = V2Transport(True, MAGIC)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(t.data_to_send())
    t.send("version", RawPeer(sock=socket.socket()).version_msg().serialize())
    got: list[str] = []
    deadline = time.time() + 10
    while "verack" not in got and time.time() < deadline:
        for command, _, _ in t.receive(s.recv(65536)):
            got.append(command)
        s.sendall(t.data_to_send())
        if "version" in got and "verack" not in got:
            s.sendall(t.encrypt_message("verack"))
    assert got[0] == "version" and "verack" in got
    wait_until(lambda: _last_peer(v2node)["transport_protocol_type"] == "v2", 10, "v2 peer")
    assert _last_peer(v2node)["session_id"] == t.session_id.hex()
    s.close()

    # A v1 node of another network: its first 16 bytes are enough (Core's words).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(bytes.fromhex("0a03cf40") + b"version" + bytes(5) + b"somepayload")
        assert s.recv(100000) == b""  # closed, our key never sent
    # No garbage terminator within 4095 bytes of garbage.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00" * (64 + 4095 + 15))
        wait_until(lambda: _last_peer(v2node)["bytesrecv"] == 64 + 4095 + 15, 10, "count")
        pid = _last_peer(v2node)["id"]
        s.sendall(b"\x00")
        wait_until(lambda: pid not in [p["id"] for p in v2node.call("getpeerinfo")], 10,
                   "disconnection")
    log = _debug_log(v2node)
    assert "V2 transport error: V1 peer with wrong MessageStart 0a03cf40" in log
    assert "V2 transport error: missing garbage terminator" in log


def test_node_dials_a_raw_v2_responder_and_v1_listener(v2node):
    # addnode's default is -v2transport: the node sends its 64-byte key first.
    lst = listen()
    port = lst.getsockname()[1]
    v2node.call("addnode", f"127.0.0.1:{port}", "onetry")
    conn, _ = lst.accept()
    conn.settimeout(10)
    t = V2Transport(False, MAGIC, detect_v1=False)
    conn.sendall(t.data_to_send())
    got: list[str] = []
    deadline = time.time() + 10
    while "version" not in got and time.time() < deadline:
        got += [c for c, _, _ in t.receive(conn.recv(65536))]
        conn.sendall(t.data_to_send())
    assert got[0] == "version"
    assert _last_peer(v2node)["transport_protocol_type"] == "v2"
    conn.close()
    # A listener that hangs up on the key is tried again as v1, once.
    v2node.call("addnode", f"127.0.0.1:{port}", "onetry")
    first, _ = lst.accept()
    assert len(first.recv(64)) > 0
    first.close()
    peer = RawPeer.accept(lst)
    peer.handshake_inbound()  # v1 framing: a version message comes first
    wait_until(lambda: any(p["transport_protocol_type"] == "v1" and p["addr"].endswith(
        f":{port}") for p in v2node.call("getpeerinfo")), 10, "v1 retry")
    peer.close()
    lst.close()


def test_v1_framing_errors_as_core(tmp_path):
    with NodeProcess(tmp_path / "v1", "-v2transport=0", "-debug=net") as node:
        p = RawPeer(node.p2pport)
        p.handshake()
        p.send(m.Ping(1))
        p.wait_for("pong")
        # A message cut inside its header: the first part is counted when it comes.
        ping = m.encode(MAGIC, m.Ping(2))
        before = node.call("getnettotals")["totalbytesrecv"]
        p.send_raw(ping[:12])
        wait_until(lambda: node.call("getnettotals")["totalbytesrecv"] == before + 12, 10,
                   "12 bytes counted")
        p.send_raw(ping[12:])
        p.wait_for("pong", pred=lambda msg: msg.nonce == 2)
        # A bad checksum and an invalid message type: dropped, the connection kept.
        p.send_raw(frame_with("ping", struct.pack("<Q", 3), check=b"\xff" * 4))
        bad_type = bytearray(frame_with("ping", struct.pack("<Q", 4)))
        bad_type[6] = 0  # "pi\0g": bytes after the first NUL
        p.send_raw(bytes(bad_type))
        p.send(m.Ping(5))
        got = p.wait_for("pong", pred=lambda msg: msg.nonce in (3, 4, 5))
        assert got.nonce == 5  # 3 and 4 were never handled
        [info] = node.call("getpeerinfo")
        assert info["bytesrecv_per_msg"]["*other*"] == 2 * (24 + 8)
        log = _debug_log(node)
        assert "Header error: Wrong checksum (ping, 8 bytes), expected " in log
        assert "was ffffffff, peer=" in log
        assert "Header error: Invalid message type (pi, 8 bytes), peer=" in log
        # A payload that does not parse: dropped too, Core's lines in the log.
        p.send_payload("addrv2", b"")
        p.send(m.Ping(6))
        p.wait_for("pong", pred=lambda msg: msg.nonce == 6)
        log = _debug_log(node)
        assert "received: addrv2 (0 bytes) peer=" in log
        assert "ProcessMessages(addrv2, 0 bytes): Exception 'end of data" in log
        # A locator of 101 hashes is answered, one of 102 ends the connection (as Core's).
        q = RawPeer(node.p2pport)
        q.handshake()
        q.send(m.GetHeaders([bytes(32)] * 101))
        q.send(m.Ping(7))
        q.wait_for("pong", pred=lambda msg: msg.nonce == 7)
        q.send(m.GetHeaders([bytes(32)] * 102))
        assert q.is_closed(5)
        # A wrong magic and an oversized message end it.
        p.send_raw(frame_with("ping", struct.pack("<Q", 6), magic=b"\xf9\xbe\xb4\xd9"))
        assert p.is_closed(5)
        p = RawPeer(node.p2pport)
        p.handshake()
        p.send_raw(frame_with("block", b"", length=4_000_001))
        assert p.is_closed(5)
        log = _debug_log(node)
        assert "Header error: Wrong MessageStart f9beb4d9 received, peer=" in log
        assert "Header error: Size too large (block, 4000001 bytes), peer=" in log


def test_v2_unknown_message_type_is_dropped(v2node):
    t = V2Transport(True, MAGIC)
    s = socket.create_connection(("127.0.0.1", v2node.p2pport), timeout=10)
    s.sendall(t.data_to_send())
    t.send("version", RawPeer(sock=socket.socket()).version_msg().serialize())
    t.send("verack")
    got: list = []
    deadline = time.time() + 10
    while not any(c == "ping" for c, _ in got) and time.time() < deadline:
        got += [(c, p) for c, p, _ in t.receive(s.recv(65536))]
        s.sendall(t.data_to_send())
    # A packet of type 99 (undefined): dropped and counted, the connection kept.
    s.sendall(t.cipher.encrypt(bytes([99]) + b"\x01d"))
    s.sendall(t.encrypt_message("ping", struct.pack("<Q", 77)))
    deadline = time.time() + 10
    pong = None
    while pong is None and time.time() < deadline:
        for c, p, _ in t.receive(s.recv(65536)):
            if c == "pong" and p == struct.pack("<Q", 77):
                pong = p
    assert pong is not None
    info = _last_peer(v2node)
    assert info["transport_protocol_type"] == "v2"
    assert info["bytesrecv_per_msg"]["*other*"] == 23  # 3 bytes of contents and 20
    assert "V2 transport error: invalid message type (3 bytes contents), peer=" in \
        _debug_log(v2node)
    s.close()


def test_handshake_timeouts_and_decryption_failure(tmp_path):
    with NodeProcess(tmp_path / "n", "-debug=net", "-peertimeout=1") as node:
        port = node.p2pport
        # Nothing said: the transport is still being detected (Core's "V2 handshake timeout").
        idle = RawPeer(port)
        v1 = RawPeer(port)
        v1.send(v1.version_msg())  # a v1 version and no verack: "version handshake timeout"
        assert idle.is_closed(8) and v1.is_closed(8)
        log = _debug_log(node)
        assert "V2 handshake timeout peer=" in log
        assert "version handshake timeout peer=" in log
        # Garbage changed on the way: the first packet (it authenticates the garbage) fails.
        t = V2Transport(True, MAGIC, garbage=b"abc")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(t.data_to_send()[:-3] + b"abd")
        reply = b""
        while len(reply) < 64:
            reply += s.recv(64 - len(reply))
        t.receive(reply)
        s.sendall(t.data_to_send())  # terminator and version packet
        wait_until(lambda: "V2 transport error: packet decryption failure (0 bytes), peer="
                   in _debug_log(node), 10, "decryption failure")
        s.close()


def test_mixed_v1_v2_network_converges(tmp_path):
    """A ring of four: two v2 nodes and two with -v2transport=0. Each link speaks what both
    ends can (v2 only between v2 nodes); blocks mined at each node, competing ones included,
    and a transaction reach everyone, and every node ends on the same tip."""
    from tests.functional.netutil import coinbase_spend

    flags = [[], [], ["-v2transport=0"], ["-v2transport=0"]]
    nodes = []
    try:
        for i in range(4):
            nodes.append(NodeProcess(tmp_path / f"n{i}", *flags[i]).start())
        for i in range(4):  # ring: n0-n1 (v2), n1-n2, n2-n3, n3-n0 (v1)
            nodes[i].call("addnode", nodes[(i + 1) % 4].p2p_addr, "add")
        wait_until(lambda: all(n.call("getconnectioncount") == 2 for n in nodes), 20, "ring")
        types = {}
        for i, n in enumerate(nodes):
            for p in n.call("getpeerinfo"):
                types.setdefault(i, []).append(p["transport_protocol_type"])
        assert sorted(types[0]) == sorted(types[1]) == ["v1", "v2"]
        assert types[2] == types[3] == ["v1", "v1"]
        hashes = nodes[2].call("generatetoaddress", 101, ADDR)  # (a v1 node mines)
        wait_until(lambda: tips(nodes) == [hashes[-1]] * 4, 60, "blocks from a v1 node")
        # Two nodes, one of each transport, cut off and mining apart; joined, all converge on
        # the most work.
        for n in (nodes[0], nodes[3]):
            n.call("setnetworkactive", False)
        nodes[0].call("generatetoaddress", 2, ADDR)
        [best] = nodes[3].call("generatetoaddress", 3, ADDR)[-1:]
        for n in (nodes[0], nodes[3]):
            n.call("setnetworkactive", True)
        wait_until(lambda: tips(nodes) == [best] * 4, 60, "convergence on the most work")
        tx = coinbase_spend(nodes[2], 1)
        txid = nodes[1].call("sendrawtransaction", tx.serialize().hex())
        wait_until(lambda: all(txid in n.call("getrawmempool") for n in nodes), 30, "tx")
        [h] = nodes[1].call("generatetoaddress", 1, ADDR)
        wait_until(lambda: tips(nodes) == [h] * 4, 30, "the transaction's block")
    finally:
        for n in nodes:
            n.stop()
