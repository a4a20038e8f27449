"""P2P behaviour as Bitcoin Core's net_processing, with a raw socket peer against real nodes:
-whitelist permissions, -blocksonly, -peerbloomfilters, the hidden addconnection RPC and
its connection types, the getaddr cache, stale blocks withheld from fingerprinting, the
initial headers sync with one peer, headers direct fetch, compact blocks, the listening
binds, -logips."""

from __future__ import annotations

import time

from consensus.hashes import hex_to_hash
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.p2p import messages as m
from tests.blocktools import make_block, make_coinbase
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, wait_until
from tests.functional.p2p_peer import RawPeer, listen

GENESIS_TIME = 1296688602  # regtest


def peer(node: NodeProcess, **kw) -> tuple[RawPeer, m.Version]:
    p = RawPeer(node.p2pport)
    v = p.handshake(**kw)
    return p, v


def log_has(node: NodeProcess, text: str, timeout: float = 5.0) -> bool:
    path = node.chain_dir / "debug.log"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def dummy_tx() -> bytes:
    tx = Transaction(2, [TxIn(OutPoint(b"\x11" * 32, 0), b"", 0xFFFFFFFF)],
                     [TxOut(1000, b"\x51")], 0)
    return tx.serialize()


def test_blocksonly_and_relay_permission(tmp_path):
    with NodeProcess(tmp_path / "a", "-blocksonly", "-debug=net") as a:
        assert a.call("getnetworkinfo")["localrelay"] is False
        p, v = peer(a)
        assert v.relay is False  # we asked not to be sent transactions
        [info] = a.call("getpeerinfo")
        assert info["permissions"] == [] and info["relaytxes"] is True
        p.send_payload("tx", dummy_tx())
        assert p.is_closed(5)
        assert log_has(a, "transaction sent in violation of protocol, disconnecting peer=0")
        q, _ = peer(a)
        q.send(m.InvMsg([m.Inv(m.MSG_WTX, b"\x34\x12" + b"\x00" * 30)]))
        assert q.is_closed(5)
        assert log_has(a, "transaction (" + "00" * 30 + "1234) inv sent in violation of "
                          "protocol, disconnecting peer=1")
    with NodeProcess(tmp_path / "b", "-blocksonly", "-whitelist=relay@127.0.0.1") as b:
        p, v = peer(b)
        assert v.relay is True  # the relay permission lets this peer send transactions
        [info] = b.call("getpeerinfo")
        assert info["permissions"] == ["relay"]
        p.send_payload("tx", dummy_tx())  # (invalid: missing inputs, but not a violation)
        p.send(m.Ping(7))
        assert p.wait_for("pong").nonce == 7


def test_whitelist_implicit_permissions_and_errors(tmp_path):
    with NodeProcess(tmp_path / "a", "-whitelist=127.0.0.1") as a:
        p, _ = peer(a)
        [info] = a.call("getpeerinfo")
        assert info["permissions"] == ["noban", "relay", "mempool", "download"]
    n = NodeProcess(tmp_path / "b", "-whitelist=bogus@127.0.0.1")
    try:
        n.start()
        raise AssertionError("started with a bad permission")
    except RuntimeError as err:
        assert "Invalid P2P permission: 'bogus'" in str(err)


def test_bloom_messages_need_peerbloomfilters(tmp_path):
    with NodeProcess(tmp_path / "a", "-debug=net") as a:
        for msg in (m.MempoolMsg(), m.FilterLoad(b"\x00" * 10, 1, 0, 0), m.FilterAdd(b"\x01"),
                    m.FilterClear()):
            p, v = peer(a)
            assert not v.services & m.NODE_BLOOM
            p.send(msg)
            assert p.is_closed(5), msg
        h = a.call("getbestblockhash")
        p, _ = peer(a)
        p.send(m.GetData([m.Inv(m.MSG_FILTERED_BLOCK, hex_to_hash(h))]))
        assert p.is_closed(5)
        assert log_has(a, "filtered block request received when NODE_BLOOM service disabled")
    with NodeProcess(tmp_path / "b", "-peerbloomfilters") as b:
        p, v = peer(b, relay=False)
        assert v.services & m.NODE_BLOOM
        assert "BLOOM" in b.call("getnetworkinfo")["localservicesnames"]
        assert b.call("getpeerinfo")[0]["relaytxes"] is False  # (as announced in version)
        p.send(m.FilterLoad(b"\x00" * 10, 1, 0, 0))  # turns transaction relay on
        p.send(m.Ping(3))
        assert p.wait_for("pong").nonce == 3
        assert b.call("getpeerinfo")[0]["relaytxes"] is True


def test_addconnection_types(tmp_path):
    with NodeProcess(tmp_path / "a") as a:
        lst = listen()
        port = lst.getsockname()[1]
        res = a.call("addconnection", f"127.0.0.1:{port}", "block-relay-only", False)
        assert res == {"address": f"127.0.0.1:{port}", "connection_type": "block-relay-only"}
        p = RawPeer.accept(lst)
        v = p.handshake_inbound()
        assert v.relay is False  # no transactions on a block-relay-only connection
        wait_until(lambda: a.call("getpeerinfo"), 10, "peer listed")
        [info] = a.call("getpeerinfo")
        assert info["connection_type"] == "block-relay-only" and not info["addr_relay_enabled"]
        p.send_payload("tx", dummy_tx())
        assert p.is_closed(5)
        # a feeler connection ends once the peer's version arrived
        a.call("addconnection", f"127.0.0.1:{port}", "feeler", False)
        f = RawPeer.accept(lst)
        f.wait_for("version")
        f.send(f.version_msg())
        assert f.is_closed(5)
        try:
            a.call("addconnection", "127.0.0.1:1", "inbound", False)
            raise AssertionError("accepted a bad connection type")
        except RPCFailure as err:
            assert err.code == -8
        lst.close()


def test_getaddr_answer_cached(tmp_path):
    with NodeProcess(tmp_path / "a") as a:
        for i in range(600):
            a.call("addpeeraddress", f"{1 + i // 256}.{i % 256}.1.1", 8333)
        answers = []
        for _ in range(2):
            p, _ = peer(a)
            p.send(m.GetAddr())
            answers.append(sorted(str(x) for x in p.wait_for("addrv2").addrs))
            p.close()
        assert len(answers[0]) == 600 * 23 // 100
        assert answers[0] == answers[1]  # the same answer from the same local address
        a.call("setmocktime", int(time.time()) + 3 * 86400)  # the cache expires
        p, _ = peer(a)
        p.send(m.GetAddr())
        assert sorted(str(x) for x in p.wait_for("addrv2").addrs) != answers[0]


def test_old_stale_blocks_not_served(tmp_path):
    """Core's anti-fingerprinting rule: a block off the active chain is served only while
    it is less than a month older than our best header."""
    old = int(time.time()) - 60 * 86400
    with NodeProcess(tmp_path / "a") as a:
        a.call("setmocktime", old)
        hashes = a.call("generatetoaddress", 3, ADDR)
        stale = hex_to_hash(hashes[-1])
        fork_from = a.call("getblockheader", hashes[0])
        p, _ = peer(a)
        prev, height, t = hex_to_hash(fork_from["hash"]), fork_from["height"], old + 100
        blocks = []
        for i in range(3):
            b = make_block(prev, height + 1 + i, time=t + i,
                           coinbase=make_coinbase(height + 1 + i, 10, b"\x77"))
            blocks.append(b)
            prev = b.hash
        p.send(m.Headers([b.header for b in blocks]))
        p.wait_for("getdata")
        for b in blocks:
            p.send_payload("block", b.serialize())
        wait_until(lambda: a.call("getbestblockhash") == blocks[-1].hash_hex(), 10, "reorg")
        # still recent: the stale block and its header are served
        p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, stale)]))
        assert p.wait_for("block").data[:80]
        a.call("setmocktime", 0)
        a.call("generatetoaddress", 1, ADDR)  # the best header is now two months newer
        before = len(p.received)
        p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, stale)]))
        p.send(m.GetHeaders([], stale))
        p.send(m.Ping(11))
        p.wait_for("pong", pred=lambda x: x.nonce == 11)
        later = p.received[before:]
        assert not [cmd for cmd, _ in later if cmd == "block"]
        assert not any(cmd == "headers" and msg.headers and msg.headers[0].hash == stale
                       for cmd, msg in later)
        # blocks of the active chain are served however old
        p.send(m.GetData([m.Inv(m.MSG_WITNESS_BLOCK, hex_to_hash(hashes[0]))]))
        assert p.wait_for("block")


def test_initial_headers_sync_with_one_peer(tmp_path):
    with NodeProcess(tmp_path / "a", "-debug=net") as a:  # at genesis: far from today
        p1, _ = peer(a)
        p1.wait_for("getheaders")
        assert log_has(a, "initial getheaders (0) to peer=0")
        p2, _ = peer(a)
        p2.send(m.Ping(1))
        p2.wait_for("pong")
        assert not any(cmd == "getheaders" for cmd, _ in p2.received)


def test_headers_direct_fetch_from_peer_without_node_network(tmp_path):
    with NodeProcess(tmp_path / "a") as a:
        a.call("generatetoaddress", 1, ADDR)
        p, _ = peer(a, services=m.NODE_WITNESS)  # serves no old blocks
        p.send(m.Headers([]))
        tip = a.call("getblockheader", a.call("getbestblockhash"))
        b = make_block(hex_to_hash(tip["hash"]), tip["height"] + 1, time=tip["time"] + 1)
        p.send(m.Headers([b.header]))
        got = p.wait_for("getdata")
        assert [i.hash for i in got.items] == [b.hash]


def test_compact_block_rebuilt_with_getblocktxn(tmp_path):
    with NodeProcess(tmp_path / "a") as a:
        a.call("generatetoaddress", 1, ADDR)
        p, _ = peer(a)
        p.send(m.Headers([]))
        tip = a.call("getblockheader", a.call("getbestblockhash"))
        extra = Transaction(2, [TxIn(OutPoint(b"\x22" * 32, 1), b"", 0xFFFFFFFF)],
                            [TxOut(5, b"\x51")], 0)  # (unknown to the node)
        b = make_block(hex_to_hash(tip["hash"]), tip["height"] + 1, [extra],
                       time=tip["time"] + 1)
        p.send(m.Headers([b.header]))
        p.wait_for("getdata")  # in flight from this peer: a compact block is taken
        p.send(m.CmpctBlock(b.header, 7, [123456], [(0, b.txs[0])]))
        want = p.wait_for("getblocktxn")
        assert want.block_hash == b.hash and want.indexes == [1]
        p.send(m.BlockTxn(b.hash, [extra]))  # the block, rebuilt, is processed: invalid
        # ... and its sender is not punished: BIP152 lets a peer relay a compact block after
        # checking only its header (Core's via_compact_block)
        p.send(m.Ping(3))
        p.wait_for("pong", pred=lambda x: x.nonce == 3)
        assert not p.is_closed(1)
        assert a.call("getbestblockhash") == tip["hash"]
        assert a.call("getblockheader", b.hash_hex())["confirmations"] == -1


def test_compact_block_that_cannot_be_rebuilt_falls_back_to_the_block(tmp_path):
    """Two transactions under one short id: the node asks for the whole block (BIP152's
    fallback) and takes it."""
    with NodeProcess(tmp_path / "a") as a:
        a.call("generatetoaddress", 1, ADDR)
        p, _ = peer(a)
        p.send(m.Headers([]))
        tip = a.call("getblockheader", a.call("getbestblockhash"))
        txs = [Transaction(2, [TxIn(OutPoint(bytes([i]) * 32, 1), b"", 0xFFFFFFFF)],
                           [TxOut(5, b"\x51")], 0) for i in (1, 2)]
        b = make_block(hex_to_hash(tip["hash"]), tip["height"] + 1, txs, time=tip["time"] + 1)
        p.send(m.Headers([b.header]))
        p.wait_for("getdata")
        p.send(m.CmpctBlock(b.header, 9, [777, 777], [(0, b.txs[0])]))
        ask = p.wait_for("getdata")
        assert ask.items == [m.Inv(m.MSG_WITNESS_BLOCK, b.hash)]
        p.send_payload("block", b.serialize())
        wait_until(lambda: a.call("getblockheader", b.hash_hex())["nTx"] == 3, 10, "block")


def test_compact_blocks_served(tmp_path):
    """sendcmpct(0, 2) after verack; getdata MSG_CMPCT_BLOCK of a recent block answered with
    its compact form (coinbase prefilled, the others as BIP152 short ids), getblocktxn with
    the transactions asked for; sendcmpct(1, 2) makes the node announce its next block as
    a cmpctblock."""
    from node.p2p import compact
    from tests.functional.netutil import coinbase_spend

    with NodeProcess(tmp_path / "a") as a:
        a.call("generatetoaddress", 101, ADDR)
        p, _ = peer(a)
        assert p.wait_for("sendcmpct") == m.SendCmpct(False, 2)
        txs = [coinbase_spend(a, h) for h in (1, 2)]
        for tx in txs:
            a.call("sendrawtransaction", tx.serialize().hex())
        [h] = a.call("generatetoaddress", 1, ADDR)
        block_hash = hex_to_hash(h)
        p.send(m.GetData([m.Inv(m.MSG_CMPCT_BLOCK, block_hash)]))
        cb = p.wait_for("cmpctblock")
        assert cb.header.hash == block_hash and [i for i, _ in cb.prefilled] == [0]
        key = compact.short_id_key(cb.header, cb.nonce)
        assert sorted(cb.short_ids) == sorted(compact.short_id(key, tx.wtxid) for tx in txs)
        p.send(m.GetBlockTxn(block_hash, [1, 2]))
        got = p.wait_for("blocktxn")
        assert got.block_hash == block_hash
        assert {tx.wtxid for tx in got.txs} == {tx.wtxid for tx in txs}
        # high bandwidth: the next block comes as a cmpctblock, unasked
        p.send(m.SendCmpct(True, 2))
        p.send(m.GetHeaders([block_hash]))
        p.wait_for("headers")
        [h2] = a.call("generatetoaddress", 1, ADDR)
        assert p.wait_for("cmpctblock").header.hash == hex_to_hash(h2)
        assert [x["bip152_hb_from"] for x in a.call("getpeerinfo")] == [True]


def test_binds_logged_and_logips(tmp_path):
    n = NodeProcess(tmp_path / "a", "-logips", "-debug=net")
    with n:
        assert log_has(n, f"Bound to 127.0.0.1:{n.p2pport}")
        p, _ = peer(n)
        assert log_has(n, "peer=0, peeraddr=127.0.0.1:")


def test_minimum_chain_work(tmp_path):
    """Below -minimumchainwork a node answers getheaders with nothing, and keeps no headers
    of a chain that does not reach it (Core's anti-DoS work threshold)."""
    with NodeProcess(tmp_path / "a", "-minimumchainwork=0x65") as a:
        p, _ = peer(a)
        p.send(m.GetHeaders([hex_to_hash(a.call("getbestblockhash"))]))
        assert p.wait_for("headers").headers == []
        genesis = a.call("getblockheader", a.call("getbestblockhash"))
        prev, headers = hex_to_hash(genesis["hash"]), []
        for i in range(10):  # 22 units of work in all: less than 0x65
            b = make_block(prev, i + 1, time=genesis["time"] + 1 + i)
            headers.append(b.header)
            prev = b.hash
        p.send(m.Headers(headers))
        p.send(m.Ping(5))
        p.wait_for("pong", pred=lambda x: x.nonce == 5)
        assert a.call("getblockchaininfo")["headers"] == 0


def test_whitebind_and_mempool_permission(tmp_path):
    s = listen()
    port = s.getsockname()[1]
    s.close()
    with NodeProcess(tmp_path / "a", f"-whitebind=noban,mempool@127.0.0.1:{port}") as a:
        assert log_has(a, f"Bound to 127.0.0.1:{port}")
        p = RawPeer(port)
        p.handshake()
        [info] = a.call("getpeerinfo")
        assert info["permissions"] == ["noban", "mempool", "download"]
        p.send(m.MempoolMsg())  # allowed by the mempool permission (no bloom filters here)
        p.send(m.Ping(2))
        assert p.wait_for("pong").nonce == 2
        q, _ = peer(a)  # the ordinary bind: no permissions
        assert [x["permissions"] for x in a.call("getpeerinfo")] == [
            ["noban", "mempool", "download"], []]
        q.send(m.MempoolMsg())
        assert q.is_closed(5)
