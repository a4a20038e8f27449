"""A raw socket test peer (our codec, none of the node's networking code) against a real
minibtcd: the handshake, asking for headers and blocks, transaction relay rules, address
gossip; then garbage, oversize and invalid data: the peer is dropped or refused, and the
node stays up and keeps serving its other peers."""

from __future__ import annotations

import os
import struct
import time

import pytest

from consensus.block import Block, BlockHeader
from consensus.hashes import hex_to_hash
from consensus.tx import OutPoint
from node.p2p import messages as m
from node.p2p.netaddr import NetAddr
from tests.blocktools import make_block, make_coinbase, solve
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, ADDR2, coinbase_spend, spend_outputs, wait_until
from tests.functional.p2p_peer import MAGIC, Closed, RawPeer, frame_with, listen

HEIGHT = 110


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("raw") / "n", "-peertimeout=2")
    n.start()
    n.call("generatetoaddress", HEIGHT, ADDR)
    yield n
    n.stop()


@pytest.fixture(scope="module")
def follower(node, tmp_path_factory):
    """A real node connected to `node` all along: it must keep being served."""
    f = NodeProcess(tmp_path_factory.mktemp("raw") / "f", f"-addnode={node.p2p_addr}")
    f.start()
    wait_until(lambda: f.call("getblockcount") == node.call("getblockcount"), 30, "follower")
    yield f
    f.stop()


def peer(node, wtxid: bool = True, **kw) -> RawPeer:
    p = RawPeer(node.p2pport, **kw)
    p.handshake(wtxid=wtxid)
    return p


def raw_peers(node, p: RawPeer | None = None) -> list[dict]:
    """getpeerinfo of our raw peers (of just `p` if given: others may still be closing)."""
    info = [x for x in node.call("getpeerinfo") if x["subver"] == "/testpeer:0.1/"]
    if p is not None:
        host, port = p.sock.getsockname()[:2]
        info = [x for x in info if x["addr"] == f"{host}:{port}"]
    return info


def tip_block(node, prev_hash: str | None = None, **kw) -> Block:
    """A valid next block (unless kw says otherwise) on the node's tip."""
    prev = node.call("getblockheader", prev_hash or node.call("getbestblockhash"))
    return make_block(hex_to_hash(prev["hash"]), prev["height"] + 1,
                      time=prev["mediantime"] + 100, **kw)


# -- the handshake and serving ------------------------------------------------------------


def test_handshake(node):
    p = RawPeer(node.p2pport)
    p.send(p.version_msg())
    v = p.wait_for("version")
    full = m.NODE_NETWORK | m.NODE_WITNESS | m.NODE_NETWORK_LIMITED  # (Core's, unpruned)
    assert v.version == 70016 and v.services & full == full
    assert v.user_agent == "/minibtc:0.1.0/" and v.start_height == HEIGHT and v.relay
    assert v.nonce != 0
    p.send(m.WTxidRelay())
    p.send(m.SendAddrV2())
    p.send(m.VerAck())
    # Before verack the node sends wtxidrelay and sendaddrv2; after it, sendheaders, a fee
    # filter, a ping, and a getheaders to start syncing from us.
    got = []
    while "getheaders" not in got:
        got.append(p.read_message()[0])
    assert got.index("wtxidrelay") < got.index("verack")
    assert got.index("sendaddrv2") < got.index("verack")
    for cmd in ("sendheaders", "feefilter", "ping"):
        assert cmd in got[got.index("verack"):]
    fee = next(msg for cmd, msg in p.received if cmd == "feefilter")
    assert fee.feerate == 100  # -minrelaytxfee in sat/kvB (Core since v30)
    [info] = raw_peers(node, p)
    assert info["inbound"] and info["version"] == 70016 and info["startingheight"] == 0
    p.close()


def test_serves_headers_and_blocks(node):
    p = peer(node)
    genesis = node.call("getblockhash", 0)
    p.send(m.GetHeaders([hex_to_hash(genesis)]))
    headers = p.wait_for("headers").headers
    assert len(headers) == node.call("getblockcount")
    assert headers[0].prev_hash == hex_to_hash(genesis)
    assert all(b.prev_hash == a.hash for a, b in zip(headers, headers[1:]))
    assert headers[-1].hash_hex() == node.call("getbestblockhash")
    # hash_stop ends the answer early; a locator in the middle starts it there
    p.send(m.GetHeaders([headers[9].hash], headers[19].hash))
    part = p.wait_for("headers").headers
    assert [h.hash for h in part] == [h.hash for h in headers[10:20]]
    # blocks, with and without witness data
    want = headers[4]
    p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, want.hash)]))
    raw = p.wait_for("block").data
    block = Block.from_bytes(raw)
    assert block.hash == want.hash
    assert raw.hex() == node.call("getblock", want.hash_hex(), 0)
    p.send(m.GetData([m.Inv(m.MSG_BLOCK, want.hash)]))
    stripped = Block.from_bytes(p.wait_for("block").data)
    assert stripped.hash == want.hash and not stripped.txs[0].has_witness()
    assert block.txs[0].has_witness()  # (the coinbase's witness nonce is what was stripped)
    # unknown transactions are answered with notfound, unknown blocks not at all (Core's)
    unknown = m.Inv(m.MSG_WITNESS_BLOCK, b"\x11" * 32)
    p.send(m.GetData([unknown, m.Inv(m.MSG_WTX, b"\x22" * 32)]))
    assert p.wait_for("notfound").items == [m.Inv(m.MSG_WTX, b"\x22" * 32)]
    # getblocks: an inv of the blocks after the locator
    p.send(m.GetBlocks([headers[99].hash]))
    inv = p.wait_for("inv").items
    assert [i.hash for i in inv] == [h.hash for h in headers[100:]]
    assert all(i.type == m.MSG_BLOCK for i in inv)
    p.close()


def headers_peer(node) -> RawPeer:
    """A peer that asked for headers announcements and has every header: new blocks are
    announced by headers only to a peer known to have the parent (as Core)."""
    p = peer(node)
    p.send(m.SendHeaders())
    p.send(m.GetHeaders([hex_to_hash(node.call("getblockhash", 0))]))
    p.wait_for("headers")
    return p


def test_new_blocks_announced_by_headers_or_inv(node, follower):
    with_headers = headers_peer(node)
    with_inv = peer(node)
    time.sleep(0.2)
    [h] = node.call("generatetoaddress", 1, ADDR)
    got = with_headers.wait_for("headers", pred=lambda msg: msg.headers)
    assert [x.hash_hex() for x in got.headers] == [h]
    inv = with_inv.wait_for("inv", pred=lambda msg: msg.items[0].type == m.MSG_BLOCK)
    assert inv.items == [m.Inv(m.MSG_BLOCK, hex_to_hash(h))]
    wait_until(lambda: follower.call("getbestblockhash") == h, 10, "follower")
    with_headers.close()
    with_inv.close()


def test_submitted_block_is_relayed(node, follower):
    p = headers_peer(node)
    block = tip_block(node)
    assert node.call("submitblock", block.serialize().hex()) is None
    got = p.wait_for("headers", pred=lambda msg: msg.headers)
    assert [h.hash for h in got.headers] == [block.hash]
    wait_until(lambda: follower.call("getbestblockhash") == block.hash_hex(), 10, "follower")
    p.close()


def test_peer_that_does_not_read_stalls_only_itself(node, follower):
    slow = peer(node)
    h = hex_to_hash(node.call("getbestblockhash"))
    # 50,000 copies of a block (megabytes) that it never reads: the node stops serving it
    # once the socket buffers are full, and carries on with everyone else.
    slow.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, h)] * 50_000))
    time.sleep(1.0)
    [info] = raw_peers(node, slow)
    size = len(node.call("getblock", h[::-1].hex(), 0)) // 2 + 24
    assert info["bytessent_per_msg"].get("block", 0) < 50_000 * size / 2
    t0 = time.time()
    [h2] = node.call("generatetoaddress", 1, ADDR)
    wait_until(lambda: follower.call("getbestblockhash") == h2, 10, "follower")
    other = peer(node)
    other.send(m.Ping(11))
    other.wait_for("pong", pred=lambda msg: msg.nonce == 11)
    assert time.time() - t0 < 10
    other.close()
    slow.close()


# -- transactions -------------------------------------------------------------------------


def test_tx_announced_once_by_wtxid_or_txid_and_fee_filter(node, follower):
    by_wtxid = peer(node)
    by_txid = peer(node, wtxid=False)
    picky = peer(node)
    picky.send(m.FeeFilter(100_000_000))  # 1 BTC/kvB: nothing we send pays that
    time.sleep(0.3)
    tx = coinbase_spend(node, 1)
    node.call("sendrawtransaction", tx.serialize().hex())
    inv = by_wtxid.wait_for("inv", pred=lambda msg: msg.items[0].type == m.MSG_WTX)
    assert inv.items == [m.Inv(m.MSG_WTX, tx.wtxid)]
    inv = by_txid.wait_for("inv", pred=lambda msg: msg.items[0].type == m.MSG_TX)
    assert inv.items == [m.Inv(m.MSG_TX, tx.txid)]
    by_wtxid.send(m.GetData([m.Inv(m.MSG_WTX, tx.wtxid)]))
    assert by_wtxid.wait_for("tx").data == tx.serialize()
    by_txid.send(m.GetData([m.Inv(m.MSG_TX, tx.txid)]))
    assert by_txid.wait_for("tx").data == tx.serialize(witness=False)
    # never twice to the same peer, even when submitted again
    node.call("sendrawtransaction", tx.serialize().hex())
    with pytest.raises(TimeoutError):
        by_wtxid.wait_for("inv", 1.0, pred=lambda msg: msg.items[0].type == m.MSG_WTX)
    with pytest.raises(TimeoutError):
        picky.wait_for("inv", 0.5, pred=lambda msg: msg.items[0].type == m.MSG_WTX)
    wait_until(lambda: tx.txid_hex() in follower.call("getrawmempool"), 10, "follower mempool")
    for p in (by_wtxid, by_txid, picky):
        p.close()


def test_tx_from_peer_accepted_and_orphan_parents_requested(node, follower):
    p = peer(node)
    parent = coinbase_spend(node, 2)
    child = spend_outputs([(OutPoint(parent.txid, 0), parent.vout[0].value)])
    p.send_payload("tx", child.serialize())
    # The node lacks the parent: it asks us for it, by txid.
    req = p.wait_for("getdata", pred=lambda msg: msg.items[0].hash == parent.txid)
    assert req.items == [m.Inv(m.MSG_WITNESS_TX, parent.txid)]
    p.send_payload("tx", parent.serialize())
    wait_until(lambda: set(node.call("getrawmempool")) >= {parent.txid_hex(), child.txid_hex()},
               10, "parent and orphan accepted")
    wait_until(lambda: child.txid_hex() in follower.call("getrawmempool"), 10, "relayed on")
    assert any(x["last_transaction"] > 0 for x in raw_peers(node))
    p.close()


def confirmed_fan_children(n, count: int) -> list:
    """`count` transactions, each spending one output of a confirmed transaction of a fresh
    node's (none of them in the mempool yet, and not children of one mempool parent, whose
    number is limited)."""
    n.call("generatetoaddress", 101, ADDR)
    fan = coinbase_spend(n, 1, outputs=count)
    n.call("sendrawtransaction", fan.serialize().hex())
    n.call("generatetoaddress", 1, ADDR)
    return [spend_outputs([(OutPoint(fan.txid, i), fan.vout[i].value)], fee=1000)
            for i in range(count)]


def test_burst_of_relayed_transactions_checked_on_workers(tmp_path):
    with NodeProcess(tmp_path / "n", "-par=2", "-debug=net") as n:
        kids = confirmed_fan_children(n, 300)
        p = peer(n)
        p.send_raw(b"".join(m.frame(MAGIC, "tx", k.serialize()) for k in kids))
        wait_until(lambda: len(n.call("getrawmempool")) == 300, 30, "all accepted")
        log = (n.chain_dir / "debug.log").read_text()
        assert "relayed transactions on the worker processes" in log
        p.close()


def test_pong_comes_after_the_transactions_sent_before_the_ping(tmp_path):
    """Core handles a peer's messages in order: once the pong for a ping sent after some
    transactions arrives, they are processed, orphans they resolve included (Core's
    rpc_orphans.py checks the mempool right after such a ping). Here the transactions are
    checked in batches on another thread; the ping waits for them."""
    with NodeProcess(tmp_path / "n") as n:
        kids = confirmed_fan_children(n, 200)
        orphan = spend_outputs([(OutPoint(kids[0].txid, 0), kids[0].vout[0].value)])
        p = peer(n)
        # An orphan first, then its parent among 200 others, then the ping, in one write:
        # the batch takes longer to check than a pong takes to send.
        p.send_raw(b"".join(m.frame(MAGIC, "tx", t.serialize()) for t in [orphan] + kids)
                   + m.frame(MAGIC, "ping", m.Ping(7).serialize()))
        p.wait_for("pong", 30, pred=lambda msg: msg.nonce == 7)
        assert len(n.call("getrawmempool")) == 201  # (at once: no waiting here)
        p.close()


def test_invalid_tx_disconnects_policy_failure_does_not(node):
    p = peer(node)
    low_fee = coinbase_spend(node, 3, fee=5)  # below the relay fee: policy only
    p.send_payload("tx", low_fee.serialize())
    p.send(m.Ping(7))
    p.wait_for("pong", pred=lambda msg: msg.nonce == 7)
    assert low_fee.txid_hex() not in node.call("getrawmempool")
    bad = coinbase_spend(node, 4)
    bad.vin[0].witness = [bad.vin[0].witness[0][:-2] + b"\x01\x01", bad.vin[0].witness[1]]
    bad.rehash()
    p.send_payload("tx", bad.serialize())  # a broken signature: consensus
    assert p.is_closed(5)
    assert node.call("getblockcount") >= HEIGHT  # still up


# -- garbage, oversize and invalid data ---------------------------------------------------


@pytest.mark.parametrize("what", ["magic", "oversize", "noise"])
def test_bad_bytes_end_the_connection(node, follower, what):
    # (a bad checksum or a payload that does not parse does not: the message is dropped,
    # as Core's; see test_p2p_transport.py and test_malformed_payloads_are_dropped)
    p = peer(node)
    if what == "magic":
        p.send_raw(frame_with("ping", struct.pack("<Q", 1), magic=b"\xf9\xbe\xb4\xd9"))
    elif what == "oversize":
        p.send_raw(frame_with("block", b"", length=4_000_001))
    else:
        p.send_raw(os.urandom(200))
    assert p.is_closed(5), what
    # the node is up and serves the others
    again = peer(node)
    again.send(m.GetHeaders([hex_to_hash(node.call("getblockhash", 0))]))
    assert again.wait_for("headers").headers
    again.close()
    [h] = node.call("generatetoaddress", 1, ADDR)
    wait_until(lambda: follower.call("getbestblockhash") == h, 10, "follower served")


def test_oversized_lists_end_the_connection(node):
    # Any misbehaviour ends the connection (Core's, since v28: no more scores).
    for msg in (m.InvMsg([m.Inv(m.MSG_WTX, i.to_bytes(32, "little")) for i in range(50_001)]),
                m.Addr([NetAddr.from_ip("1.2.3.4", 8333)] * 1001),
                m.GetData([m.Inv(m.MSG_TX, b"\x01" * 32)] * 50_001)):
        q = peer(node)
        q.send(msg)
        assert q.is_closed(5)
    p = peer(node)
    p.send_payload("headers", m.compact_size(2001) + b"\x00" * 81 * 2001)
    assert p.is_closed(5)


def test_unknown_messages_ignored(node):
    p = peer(node)
    p.send_payload("sendtxrcncl", b"\x01" * 12)
    p.send_payload("whatever", b"junk")
    p.send(m.Ping(5))
    assert p.wait_for("pong").nonce == 5
    p.close()


def test_invalid_blocks_get_the_sender_dropped(node, follower):
    tip = node.call("getbestblockhash")
    # bad merkle root (a mutated block: the hash is not marked invalid)
    p = peer(node)
    block = tip_block(node)
    block.header.merkle_root = b"\x01" * 32
    block.header.rehash()
    solve(block)
    p.send_payload("block", block.serialize())
    assert p.is_closed(5)
    # a coinbase paying too much: the block is invalid and remembered as such
    q = peer(node)
    bad = tip_block(node, coinbase=make_coinbase(HEIGHT + 10, 51 * 10**8))
    q.send_payload("block", bad.serialize())
    assert q.is_closed(5)
    assert node.call("getbestblockhash") == tip
    status = {t["hash"]: t["status"] for t in node.call("getchaintips")}
    assert status.get(bad.hash_hex()) == "invalid"
    # a header that does not meet its proof of work
    r = peer(node)
    r.send(m.Headers([high_hash_header(node, 0)]))
    assert r.is_closed(5)
    # the node is fine and still serving
    assert node.call("getbestblockhash") == tip
    [h2] = node.call("generatetoaddress", 1, ADDR)
    wait_until(lambda: follower.call("getbestblockhash") == h2, 10, "follower")


def high_hash_header(node, salt: int) -> BlockHeader:
    """A header on the tip whose hash misses the regtest target."""
    h = tip_block(node, mine=False).header
    h.time += salt
    h.rehash()
    while int.from_bytes(h.hash, "little") < 2**255:
        h.nonce += 1
        h.rehash()
    return h


def test_non_continuous_and_unconnecting_headers(node):
    p = peer(node)
    a = tip_block(node)
    b = tip_block(node, coinbase=make_coinbase(HEIGHT + 50, 10))  # another child of the tip
    p.send(m.Headers([a.header, b.header]))  # b does not follow a: dropped
    assert p.is_closed(5)
    p = peer(node)
    # Headers that connect to nothing we know make the node ask for the way to them, again
    # and again (once each answered), without punishing the peer (Core's, since v26).
    p.send(m.Headers([]))  # (answers the node's first getheaders)
    for i in range(60):
        orphan = make_block(b"\x42" * 32, 5, time=1_700_000_000 + i)
        p.send(m.Headers([orphan.header]))
        p.wait_for("getheaders")
        p.send(m.Headers([]))  # (an empty answer: the next announcement is asked for again)
    [info] = raw_peers(node, p)
    assert info["inbound"]
    p.close()


def fork_headers(parent_hash: bytes, parent_height: int, n: int, t0: int) -> list[BlockHeader]:
    out, prev = [], parent_hash
    for i in range(n):
        b = make_block(prev, parent_height + 1 + i, time=t0 + i,
                       coinbase=make_coinbase(parent_height + 1 + i, 10, b"\x52"))
        out.append(b.header)
        prev = b.hash
    return out


def test_low_work_headers_are_not_stored(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        n.call("generatetoaddress", 2300, ADDR)
        genesis = hex_to_hash(n.call("getblockhash", 0))
        t0 = n.call("getblockheader", n.call("getblockhash", 1))["time"]
        headers = fork_headers(genesis, 0, 2200, t0)
        p = peer(n)
        p.send(m.Headers(headers[:10]))  # a short fork with far less work: ignored
        p.send(m.Ping(1))
        p.wait_for("pong")
        assert len(n.call("getchaintips")) == 1
        # A full message below the threshold is kept aside while the node asks for more...
        p.send(m.Headers(headers[:2000]))
        ask = p.wait_for("getheaders", pred=lambda g: g.locator[0] == headers[1999].hash)
        assert ask.locator[1:] and ask.locator[1] == hex_to_hash(n.call("getbestblockhash"))
        assert len(n.call("getchaintips")) == 1
        # ... and stored once the chain has about as much work as ours (2,200 > 2,300 - 144).
        p.send(m.Headers(headers[2000:]))
        def fork_tip():
            return [(t["height"], t["hash"], t["status"]) for t in n.call("getchaintips")
                    if t["status"] != "active"]

        wait_until(lambda: fork_tip() == [(2200, headers[-1].hash_hex(), "headers-only")], 10,
                   "fork stored")
        p.close()


def test_block_notfound_does_not_start_a_request_storm(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        genesis = hex_to_hash(n.call("getblockhash", 0))
        headers = fork_headers(genesis, 0, 3, int(time.time()) - 100)
        p = peer(n)
        p.send(m.Headers(headers))
        req = p.wait_for("getdata")
        assert [i.hash for i in req.items] == [h.hash for h in headers]
        p.send(m.NotFound(req.items))  # "I do not have them" (after announcing them)
        asked_again = 0
        with pytest.raises(TimeoutError):
            while True:
                p.wait_for("getdata", 2.0)
                asked_again += 1
        assert asked_again == 0  # as Core: left in flight until the download timeout
        p.close()


def test_many_unknown_block_announcements_cost_one_getheaders(node):
    p = peer(node)
    p.send(m.InvMsg([m.Inv(m.MSG_BLOCK, os.urandom(32)) for _ in range(50_000)]))
    p.send(m.Ping(21))
    p.wait_for("pong", pred=lambda msg: msg.nonce == 21)
    assert sum(1 for cmd, _ in p.received if cmd == "getheaders") <= 2  # (+ the first one)
    p.close()


def test_block_announced_while_headers_are_asked_for_is_followed_up(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        genesis = hex_to_hash(n.call("getblockhash", 0))
        chain = fork_headers(genesis, 0, 20, int(time.time()) - 100)
        p = peer(n)
        p.wait_for("getheaders")  # the node's first request, left unanswered on purpose
        p.send(m.Headers([]))  # (answered now: nothing)
        p.send(m.InvMsg([m.Inv(m.MSG_BLOCK, chain[9].hash)]))
        first = p.wait_for("getheaders")
        # Another block announced before we answer: one request is outstanding already.
        p.send(m.InvMsg([m.Inv(m.MSG_BLOCK, chain[19].hash)]))
        p.send(m.Ping(31))
        p.wait_for("pong", pred=lambda msg: msg.nonce == 31)
        assert sum(1 for cmd, _ in p.received if cmd == "getheaders") == 2
        # The answer covers only the first; the node follows up for the second at once.
        assert first.locator[-1] == genesis
        p.send(m.Headers(chain[:10]))
        again = p.wait_for("getheaders")
        assert again.locator[0] == chain[9].hash and again.hash_stop == chain[19].hash
        p.close()


def test_malformed_payloads_are_dropped(node):
    """As Core's (its ProcessMessage exception is caught and logged): the message is dropped,
    the connection kept."""
    p = peer(node)
    bad = struct.pack("<I", 1) + b"\x01" + b"\x01" + b"\x05abcde" + b"\x20\x8d"
    p.send_payload("addrv2", b"\x01" + bad)  # an IPv4 address of five bytes
    p.send_payload("headers", b"\x02" + b"\x00" * 81)  # says 2 headers, holds one
    p.send(m.Ping(4))
    p.wait_for("pong", pred=lambda msg: msg.nonce == 4)
    assert "internal error" not in (node.chain_dir / "debug.log").read_text()


def test_peer_listed_during_the_handshake(node):
    p = RawPeer(node.p2pport)
    p.send(p.version_msg())
    p.wait_for("verack")
    wait_until(lambda: any(x["subver"] == "/testpeer:0.1/" for x in node.call("getpeerinfo")),
               5, "listed")
    [info] = raw_peers(node, p)
    assert info["version"] == 70016 and info["inbound"]
    p.close()


def test_invalidateblock_with_peers_connected(node, follower):
    tip = node.call("getbestblockhash")
    node.call("invalidateblock", tip)
    assert node.call("getbestblockhash") != tip
    # The node keeps announcing; the follower moves over once the new branch has more work.
    h = node.call("generatetoaddress", 2, ADDR2)[-1]
    wait_until(lambda: follower.call("getbestblockhash") == h, 15, "follower on the new tip")
    node.call("reconsiderblock", tip)


# -- timeouts -------------------------------------------------------------------------------


def test_silent_peer_dropped_after_peertimeout(node):
    p = RawPeer(node.p2pport)
    t0 = time.time()
    assert p.is_closed(6)
    assert 1.5 < time.time() - t0 < 6


def test_peer_not_answering_pings_dropped(tmp_path):
    with NodeProcess(tmp_path / "n", "-pingtimeout=2") as n:
        p = RawPeer(n.p2pport)
        p.answer_pings = False
        p.handshake()
        t0 = time.time()
        assert p.is_closed(8)
        assert time.time() - t0 >= 1.5


# -- bans and addresses ----------------------------------------------------------------------


def test_setban_refuses_and_persists(tmp_path):
    n = NodeProcess(tmp_path / "n").start()
    try:
        other = peer(n, source="127.0.0.3")
        n.call("setban", "127.0.0.2", "add")
        with pytest.raises(RPCFailure) as e:
            n.call("setban", "127.0.0.2", "add")
        assert e.value.code == -23
        with pytest.raises(RPCFailure) as e:
            n.call("setban", "not-an-ip", "add")
        assert e.value.code == -30
        n.call("setban", "127.0.0.3/32", "add", 3600)
        assert other.is_closed(5)  # banning disconnects the peers it covers
        banned = RawPeer(n.p2pport, source="127.0.0.2")
        assert banned.is_closed(5)
        fine = peer(n)  # 127.0.0.1 is not covered
        fine.close()
        listed = {b["address"]: b for b in n.call("listbanned")}
        assert set(listed) == {"127.0.0.2/32", "127.0.0.3/32"}
        assert listed["127.0.0.3/32"]["ban_duration"] == 3600
        assert 3590 < listed["127.0.0.3/32"]["time_remaining"] <= 3600
        n.stop()
        n.start()
        assert {b["address"] for b in n.call("listbanned")} == set(listed)
        assert RawPeer(n.p2pport, source="127.0.0.2").is_closed(5)
        n.call("setban", "127.0.0.3/32", "remove")
        with pytest.raises(RPCFailure) as e:
            n.call("setban", "127.0.0.3/32", "remove")
        assert e.value.code == -30
        n.call("clearbanned")
        assert n.call("listbanned") == []
        p = peer(n, source="127.0.0.2")
        p.close()
    finally:
        n.stop()


def test_addr_gossip_rate_limited_getaddr_answered(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        # Inbound: the token bucket starts at one address.
        p = peer(n)
        fresh = int(time.time())
        addrs = [NetAddr.from_ip(f"8.8.{i}.1", 8333, 9) for i in range(5)]
        for a in addrs:
            a.time = fresh
        p.send(m.AddrV2(addrs))
        p.send(m.Ping(1))
        p.wait_for("pong")
        [info] = raw_peers(n, p)
        assert info["addr_processed"] == 1 and info["addr_rate_limited"] == 4
        assert len(n.call("getnodeaddresses", 0)) == 1
        # Outbound: the node asks us for addresses and takes up to 1,000 in the answer.
        srv = listen()
        n.call("addnode", f"127.0.0.1:{srv.getsockname()[1]}", "onetry", False)  # v1 peer
        out = RawPeer.accept(srv)
        out.handshake_inbound()
        out.wait_for("getaddr")
        many = [NetAddr.from_ip(f"9.{i // 250}.{i % 250}.7", 8333, 9) for i in range(1000)]
        for a in many:
            a.time = fresh
        out.send(m.Addr(many))
        out.send(m.Ping(2))
        out.wait_for("pong")
        got = n.call("getnodeaddresses", 0)
        assert len(got) == 1001
        # getaddr from an inbound peer is answered once
        p.send(m.GetAddr())
        answer = p.wait_for("addrv2")
        assert 0 < len(answer.addrs) <= 1000
        p.send(m.GetAddr())
        with pytest.raises(TimeoutError):
            p.wait_for("addrv2", 1.0)
        out.close()
        p.close()
        srv.close()


def test_bad_version_is_dropped(node):
    p = RawPeer(node.p2pport)
    p.send(m.Version(version=209))  # older than any peer we talk to
    assert p.is_closed(5)
    q = RawPeer(node.p2pport)
    q.send(m.Version(nonce=1, timestamp=int(time.time())))
    q.wait_for("version")
    q.send(m.VerAck())
    q.wait_for("verack")
    q.send(m.WTxidRelay())  # only allowed before verack
    with pytest.raises(Closed):
        while True:
            q.read_message(5)


def test_getblocks_continuation_announces_the_tip(tmp_path):
    """Core's hashContinue: a peer that syncs by getblocks (bcoin) is given 500 blocks; when
    it asks for the last of them it also gets an inv of the tip, so it asks for the rest."""
    with NodeProcess(tmp_path / "n") as n:
        n.call("generatetoaddress", 600, ADDR)
        tip = hex_to_hash(n.call("getbestblockhash"))
        p = peer(n)
        p.send(m.GetBlocks([hex_to_hash(n.call("getblockhash", 0))]))
        inv = p.wait_for("inv", pred=lambda msg: msg.items[0].type == m.MSG_BLOCK).items
        assert len(inv) == 500 and inv[-1].hash == hex_to_hash(n.call("getblockhash", 500))
        p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, inv[-1].hash)]))
        assert Block.from_bytes(p.wait_for("block").data).hash == inv[-1].hash
        assert p.wait_for("inv", 5).items == [m.Inv(m.MSG_BLOCK, tip)]
        # The peer asks again from there and gets the other 100 (and no continuation: the
        # answer was not cut).
        p.send(m.GetBlocks([inv[-1].hash]))
        rest = p.wait_for("inv").items
        assert len(rest) == 100 and rest[-1].hash == tip
        p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, tip)]))
        p.wait_for("block")
        seen = len(p.received)
        p.send(m.Ping(5))
        p.wait_for("pong", pred=lambda msg: msg.nonce == 5)
        assert not any(cmd == "inv" for cmd, _ in p.received[seen:])
        p.close()


def _count_messages(p: RawPeer, command: str, want: int, timeout: float) -> int:
    """Read until `want` messages of this kind came (fast: no decoding of each)."""
    buf = bytearray(p.buf)
    p.buf = b""
    pos = got = 0
    deadline = time.time() + timeout
    cmd = command.encode().ljust(12, b"\x00")
    while got < want:
        while len(buf) - pos >= m.HEADER_LEN:
            length = struct.unpack_from("<I", buf, pos + 16)[0]
            if len(buf) - pos < m.HEADER_LEN + length:
                break
            if buf[pos + 4:pos + 16] == cmd:
                got += 1
            pos += m.HEADER_LEN + length
        del buf[:pos]
        pos = 0
        if got >= want:
            break
        p.sock.settimeout(max(0.01, deadline - time.time()))
        chunk = p.sock.recv(1 << 20)
        if not chunk:
            raise Closed()
        buf += chunk
    p.buf = bytes(buf)
    return got


def test_peer_asking_faster_than_it_reads_is_paused_not_dropped(tmp_path):
    """Core's fPauseSend: 56 MB of answers asked for at once, read only later. The node stops
    handling the peer's requests while its send buffer is full and carries on once the peer
    reads: everything arrives and the peer stays connected."""
    import threading

    with NodeProcess(tmp_path / "n") as n:
        n.call("generatetoaddress", 101, ADDR)
        tx = coinbase_spend(n, 1, outputs=200)  # (about 7 kB)
        n.call("sendrawtransaction", tx.serialize().hex())
        p = peer(n)
        batches, per = 4, 2000
        ask = m.GetData([m.Inv(m.MSG_WTX, tx.wtxid)] * per)
        sender = threading.Thread(target=lambda: [p.send(ask) for _ in range(batches)])
        sender.start()
        time.sleep(3.0)  # reading nothing meanwhile
        assert _count_messages(p, "tx", batches * per, 120) == batches * per
        sender.join(10)
        p.send(m.Ping(77))
        p.wait_for("pong", 30, pred=lambda msg: msg.nonce == 77)
        assert raw_peers(n, p)
        assert batches * per * len(tx.serialize()) > 32 * 1024 * 1024  # (the old hard limit)
        p.close()


def test_maxsendbuffer_sets_the_pause(tmp_path):
    """-maxsendbuffer (kB, Core's) is where a peer is paused; -blockreconstructionextratxn
    is accepted too."""
    import re

    with NodeProcess(tmp_path / "n", "-maxsendbuffer=500", "-debug=net",
                     "-blockreconstructionextratxn=10") as n:
        n.call("generatetoaddress", 101, ADDR)
        tx = coinbase_spend(n, 1, outputs=200)
        n.call("sendrawtransaction", tx.serialize().hex())
        p = peer(n)
        p.send(m.GetData([m.Inv(m.MSG_WTX, tx.wtxid)] * 1000))  # about 7 MB of answers
        time.sleep(1.0)
        assert _count_messages(p, "tx", 1000, 60) == 1000
        log = (n.chain_dir / "debug.log").read_text()
        sizes = [int(x) for x in re.findall(r"send buffer full \((\d+) bytes\)", log)]
        assert sizes and all(500_000 < s < 5_000_000 for s in sizes)
        p.close()
