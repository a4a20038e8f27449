"""P2P between real minibtcd processes on loopback: a five-node line gossiping blocks and
transactions end to end, a late node catching up 2,000 blocks, two halves mining apart and
then joined, and the network RPCs."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, ADDR2, coinbase_spend, connect, tips, wait_until


@pytest.fixture
def line(tmp_path):
    """Five nodes in a line: n0 - n1 - n2 - n3 - n4 (each -addnode's the previous one)."""
    nodes = []
    try:
        for i in range(5):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            nodes.append(NodeProcess(tmp_path / f"n{i}", *extra).start())
        for i in range(1, 5):
            wait_until(lambda i=i: nodes[i].call("getconnectioncount") >= 1, 10, "line links")
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def test_five_node_line_gossips_blocks_and_transactions(line):
    first, last = line[0], line[-1]
    # The line is really a line: inner nodes have two peers, the ends one.
    assert [n.call("getconnectioncount") for n in line] == [1, 2, 2, 2, 1]
    hashes = first.call("generatetoaddress", 101, ADDR)
    wait_until(lambda: tips(line) == [hashes[-1]] * 5, 60, "block at one end to reach all")
    # A transaction sent at the other end reaches every mempool...
    tx = coinbase_spend(last, 1)
    txid = last.call("sendrawtransaction", tx.serialize().hex())
    wait_until(lambda: all(n.call("getrawmempool") == [txid] for n in line), 30,
               "transaction to reach every mempool")
    # ... and is confirmed everywhere by a block mined at the first.
    [bh] = first.call("generatetoaddress", 1, ADDR)
    wait_until(lambda: tips(line) == [bh] * 5, 30, "confirming block")
    assert all(n.call("getrawmempool") == [] for n in line)
    assert txid in last.call("getblock", bh)["tx"]
    # A block mined at the far end travels back the other way, as headers announcements.
    [bh2] = last.call("generatetoaddress", 1, ADDR)
    wait_until(lambda: tips(line) == [bh2] * 5, 30, "block from the other end")
    info = line[2].call("getpeerinfo")
    # (what each peer has shown us: n3 announced block 103, n1 last announced 102)
    assert len(info) == 2 and sorted(p["synced_blocks"] for p in info) == [102, 103]
    assert all(p["bytesrecv_per_msg"].get("headers", 0) > 0 for p in info)


def test_late_node_syncs_2000_blocks_from_two_peers(tmp_path):
    a = NodeProcess(tmp_path / "a").start()
    b = NodeProcess(tmp_path / "b", f"-addnode={a.p2p_addr}").start()
    late = None
    try:
        wait_until(lambda: b.call("getconnectioncount") == 1, 10, "a-b link")
        for _ in range(4):
            a.call("generatetoaddress", 500, ADDR)
        wait_until(lambda: b.call("getblockcount") == 2000, 60, "b to follow a")
        late = NodeProcess(tmp_path / "late", f"-addnode={a.p2p_addr}",
                           f"-addnode={b.p2p_addr}").start()
        t0 = time.time()
        wait_until(lambda: late.call("getblockcount") == 2000, 120, "late node to catch up")
        took = time.time() - t0
        assert late.call("getbestblockhash") == a.call("getbestblockhash")
        got = [p["bytesrecv_per_msg"].get("block", 0) for p in late.call("getpeerinfo")]
        assert len(got) == 2 and all(g > 0 for g in got), f"blocks from both peers: {got}"
        assert late.call("gettxoutsetinfo")["hash_serialized_3"] == \
            a.call("gettxoutsetinfo")["hash_serialized_3"]
        print(f"late node synced 2000 blocks in {took:.1f} s")
    finally:
        for n in (a, b, late):
            if n is not None:
                n.stop()


def test_two_halves_mine_apart_then_join_on_most_work(tmp_path):
    nodes = [NodeProcess(tmp_path / f"h{i}").start() for i in range(4)]
    try:
        left, right = nodes[:2], nodes[2:]
        connect(left[0], left[1])
        connect(right[0], right[1])
        # (joined before mining: at genesis, far from today, a node syncs headers from one
        # peer only, as Core, and learns of the others' blocks as they are announced)
        connect(left[1], right[0])
        base = left[0].call("generatetoaddress", 10, ADDR)
        wait_until(lambda: tips(nodes) == [base[-1]] * 4, 30, "shared history")
        left[1].call("disconnectnode", right[0].p2p_addr)
        wait_until(lambda: left[1].call("getconnectioncount") == 1, 10, "partition")
        # Each half mines on its own; the right one does more work.
        left_tip = left[0].call("generatetoaddress", 5, ADDR)[-1]
        right_tip = right[1].call("generatetoaddress", 8, ADDR2)[-1]
        wait_until(lambda: tips(left) == [left_tip] * 2 and tips(right) == [right_tip] * 2,
                   30, "each half to agree")
        connect(left[0], right[1])
        wait_until(lambda: tips(nodes) == [right_tip] * 4, 60, "all on the most-work chain")
        assert all(n.call("getblockcount") == 18 for n in nodes)
        forks = {t["hash"]: t["status"] for t in left[0].call("getchaintips")}
        assert forks[left_tip] == "valid-fork" and forks[right_tip] == "active"
    finally:
        for n in nodes:
            n.stop()


def test_network_rpcs(tmp_path):
    a = NodeProcess(tmp_path / "a").start()
    b = NodeProcess(tmp_path / "b").start()
    try:
        assert a.call("getconnectioncount") == 0
        a.call("addnode", b.p2p_addr, "add")
        # -addnode / addnode "add" connects within a second
        wait_until(lambda: a.call("getconnectioncount") == 1, 1.5, "addnode to connect")
        with pytest.raises(RPCFailure) as e:
            a.call("addnode", b.p2p_addr, "add")
        assert e.value.code == -23
        [info] = a.call("getaddednodeinfo")
        assert info["addednode"] == b.p2p_addr and info["connected"] is True
        assert info["addresses"][0]["connected"] == "outbound"
        with pytest.raises(RPCFailure) as e:
            a.call("getaddednodeinfo", "1.2.3.4:5")
        assert e.value.code == -24
        wait_until(lambda: "pingtime" in a.call("getpeerinfo")[0], 5, "first pong")
        [p] = a.call("getpeerinfo")
        for key in ("id", "addr", "addrbind", "network", "services", "servicesnames",
                    "relaytxes", "lastsend", "lastrecv", "bytessent", "bytesrecv", "conntime",
                    "timeoffset", "pingtime", "minping", "version", "subver", "inbound",
                    "startingheight", "synced_headers", "synced_blocks", "inflight",
                    "addr_processed", "addr_rate_limited", "permissions", "minfeefilter",
                    "bytessent_per_msg", "bytesrecv_per_msg", "connection_type"):
            assert key in p, key
        assert p["version"] == 70016 and p["subver"] == "/minibtc:0.1.0/"
        assert p["services"] == "0000000000000c09"  # (Core's: NETWORK_LIMITED and P2P_V2 too)
        assert p["servicesnames"] == ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"]
        assert p["inbound"] is False and p["connection_type"] == "manual"
        assert p["minfeefilter"] == Decimal("0.00000100")  # (Core's -minrelaytxfee now)
        [q] = b.call("getpeerinfo")
        assert q["inbound"] is True and q["connection_type"] == "inbound"
        net = a.call("getnetworkinfo")
        assert net["protocolversion"] == 70016 and net["subversion"] == "/minibtc:0.1.0/"
        assert net["localservicesnames"] == ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"]
        assert (net["connections"], net["connections_in"], net["connections_out"]) == (1, 0, 1)
        assert net["relayfee"] == Decimal("0.00000100") and net["networkactive"] is True
        totals = a.call("getnettotals")
        assert totals["totalbytessent"] == p["bytessent"] or totals["totalbytessent"] > 0
        assert totals["totalbytesrecv"] > 0 and "uploadtarget" in totals
        assert a.call("ping") is None
        # disconnectnode: by id, by address, errors
        with pytest.raises(RPCFailure) as e:
            a.call("disconnectnode", "1.2.3.4:5")
        assert e.value.code == -29
        with pytest.raises(RPCFailure) as e:
            a.call("disconnectnode", b.p2p_addr, p["id"])
        assert e.value.code == -32602
        a.call("addnode", b.p2p_addr, "remove")
        with pytest.raises(RPCFailure) as e:
            a.call("addnode", b.p2p_addr, "remove")
        assert e.value.code == -24
        a.call("disconnectnode", nodeid=p["id"])
        wait_until(lambda: a.call("getconnectioncount") == 0, 5, "disconnect")
        time.sleep(1.5)  # removed: not reconnected
        assert a.call("getconnectioncount") == 0
        a.call("addnode", b.p2p_addr, "onetry")
        wait_until(lambda: a.call("getconnectioncount") == 1, 5, "onetry")
        assert a.call("getaddednodeinfo") == []
        with pytest.raises(RPCFailure) as e:
            a.call("addnode", b.p2p_addr, "bogus")
        assert e.value.code == -1
        assert a.call("setnetworkactive", False) is False
        wait_until(lambda: a.call("getconnectioncount") == 0, 5, "network off")
        assert a.call("getnetworkinfo")["networkactive"] is False
        assert a.call("setnetworkactive", True) is True
    finally:
        a.stop()
        b.stop()


def test_address_book_rpcs_and_persistence(tmp_path):
    a = NodeProcess(tmp_path / "a").start()
    try:
        assert a.call("addpeeraddress", "1.2.3.4", 8333) == {"success": True}
        assert a.call("addpeeraddress", "1.2.3.4", 8333) == {"success": False}  # known
        assert a.call("addpeeraddress", "2001:db8::1", 8333)["success"] is False  # documentation
        assert a.call("addpeeraddress", "2a00:1450::1", 18444, True) == {"success": True}
        assert a.call("addpeeraddress", "127.0.0.1", 1)["success"] is False  # not routable
        assert a.call("addpeeraddress", "not an ip", 1)["success"] is False
        got = {(x["address"], x["port"], x["network"]) for x in a.call("getnodeaddresses", 0)}
        assert ("1.2.3.4", 8333, "ipv4") in got and ("2a00:1450::1", 18444, "ipv6") in got
        assert [x["address"] for x in a.call("getnodeaddresses", 0, "ipv6")] == ["2a00:1450::1"]
        assert len(a.call("getnodeaddresses")) == 1  # count defaults to 1
        with pytest.raises(RPCFailure) as e:
            a.call("getnodeaddresses", -1)
        assert e.value.code == -8
        with pytest.raises(RPCFailure) as e:
            a.call("getnodeaddresses", 0, "carrier-pigeon")
        assert e.value.code == -8 and "Network not recognized" in e.value.message
        a.stop()
        a.start()
        again = {(x["address"], x["port"]) for x in a.call("getnodeaddresses", 0)}
        assert {("1.2.3.4", 8333), ("2a00:1450::1", 18444)} <= again
    finally:
        a.stop()


def test_connect_listen_and_connection_limits(tmp_path):
    from node.p2p import messages as m
    from tests.functional.p2p_peer import RawPeer

    # -maxconnections=12 leaves one inbound slot beside the 11 kept for automatic outbound
    # peers (Core's: 8 full-relay, 2 block-relay-only, 1 feeler); -inboundrelaypercent=100
    # lets a transaction-relaying peer take it (by default, half the slots, here none).
    a = NodeProcess(tmp_path / "a", "-maxconnections=12", "-inboundrelaypercent=100").start()
    b = None
    try:
        first = RawPeer(a.p2pport)
        first.handshake()
        first.send(m.Ping(1))  # (answered once the node has taken our verack too)
        first.wait_for("pong", pred=lambda msg: msg.nonce == 1)
        second = RawPeer(a.p2pport)
        assert second.is_closed(5)  # slots full, and nobody to evict
        first.close()
        wait_until(lambda: a.call("getconnectioncount") == 0, 5, "slot free")
        # -connect: only that peer, and (by default then) no listening.
        b = NodeProcess(tmp_path / "b", f"-connect={a.p2p_addr}").start()
        wait_until(lambda: b.call("getconnectioncount") == 1, 5, "-connect")
        [p] = b.call("getpeerinfo")
        assert p["addr"] == a.p2p_addr and p["connection_type"] == "manual"
        with pytest.raises(ConnectionRefusedError):
            RawPeer(b.p2pport)
        a.call("generatetoaddress", 3, ADDR)
        wait_until(lambda: b.call("getblockcount") == 3, 10, "sync over -connect")
        # and -connect peers come back after a disconnect
        a.call("disconnectnode", nodeid=a.call("getpeerinfo")[0]["id"])
        wait_until(lambda: a.call("getconnectioncount") == 1, 5, "reconnected")
    finally:
        a.stop()
        if b is not None:
            b.stop()


def _recv(node, what: str) -> dict[str, int]:
    """Bytes of `what` received from each peer, by address."""
    return {p["addr"]: p["bytesrecv_per_msg"].get(what, 0) for p in node.call("getpeerinfo")}


def test_line_relays_a_full_block_by_compact_block(tmp_path):
    """BIP152: the transactions gossiped first, a block mined at one end of a four-node line
    crosses it as cmpctblock messages (high-bandwidth: each node asked its upstream peer,
    which delivered the last block, to announce the next ones that way), rebuilt from each
    mempool: no full 'block' message and no getblocktxn anywhere."""
    nodes = []
    try:
        for i in range(4):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            nodes.append(NodeProcess(tmp_path / f"n{i}", *extra).start())
        for i in range(1, 4):
            wait_until(lambda i=i: nodes[i].call("getconnectioncount") >= 1, 10, "line links")
        first = nodes[0]
        hashes = first.call("generatetoaddress", 120, ADDR)
        wait_until(lambda: tips(nodes) == [hashes[-1]] * 4, 60, "initial blocks")
        # A few single blocks: each delivered alone, so every node picks its upstream peer
        # as a high-bandwidth one (Core's MaybeSetPeerAsAnnouncingHeaderAndIDs).
        for _ in range(3):
            [h] = first.call("generatetoaddress", 1, ADDR)
            wait_until(lambda h=h: tips(nodes) == [h] * 4, 30, "single block")
        for n in nodes[1:]:
            assert [p["bip152_hb_to"] for p in n.call("getpeerinfo") if not p["inbound"]] \
                == [True]
        for n in nodes[:-1]:
            assert [p["bip152_hb_from"] for p in n.call("getpeerinfo") if p["inbound"]] \
                == [True]
        txids = [first.call("sendrawtransaction", coinbase_spend(first, h, outputs=2)
                            .serialize().hex()) for h in range(1, 21)]
        wait_until(lambda: all(len(n.call("getrawmempool")) == 20 for n in nodes), 30,
                   "transactions gossiped")
        blocks_before = [_recv(n, "block") for n in nodes]
        cmpct_before = [_recv(n, "cmpctblock") for n in nodes]
        [h] = first.call("generatetoaddress", 1, ADDR)
        wait_until(lambda: tips(nodes) == [h] * 4, 30, "the full block")
        assert set(txids) <= set(nodes[-1].call("getblock", h)["tx"])
        for i, n in enumerate(nodes[1:], 1):
            assert _recv(n, "block") == blocks_before[i]  # no full block needed
            cmpct = _recv(n, "cmpctblock")
            assert sum(cmpct.values()) > sum(cmpct_before[i].values())
            assert sum(_recv(n, "blocktxn").values()) == 0
        for n in nodes[:-1]:
            sent = [p["bytessent_per_msg"] for p in n.call("getpeerinfo") if p["inbound"]]
            assert sent and sent[0].get("cmpctblock", 0) > 0
    finally:
        for n in nodes:
            n.stop()


def test_compact_block_rebuilt_with_missing_transactions_asked_for(tmp_path):
    """A transaction the receiver never saw is asked for with getblocktxn and the block is
    still rebuilt (no full block)."""
    a = NodeProcess(tmp_path / "a").start()
    b = NodeProcess(tmp_path / "b", f"-addnode={a.p2p_addr}").start()
    try:
        wait_until(lambda: b.call("getconnectioncount") == 1, 10, "link")
        hashes = a.call("generatetoaddress", 110, ADDR)
        wait_until(lambda: tips([a, b]) == [hashes[-1]] * 2, 30, "sync")
        for _ in range(2):
            [h] = a.call("generatetoaddress", 1, ADDR)
            wait_until(lambda h=h: tips([a, b]) == [h] * 2, 30, "single block")
        a.call("setnetworkactive", False)  # (b does not hear of this one)
        wait_until(lambda: b.call("getconnectioncount") == 0, 10, "disconnected")
        secret = a.call("sendrawtransaction", coinbase_spend(a, 1).serialize().hex())
        a.call("setnetworkactive", True)
        wait_until(lambda: b.call("getconnectioncount") == 1, 20, "reconnected")
        for _ in range(2):  # (b chooses a as high-bandwidth peer again)
            h = a.call("generateblock", ADDR, [])["hash"]  # (without the transaction)
            wait_until(lambda h=h: tips([a, b]) == [h] * 2, 30, "single block")
        assert b.call("getrawmempool") == []
        blocks_before = sum(_recv(b, "block").values())
        [h] = a.call("generatetoaddress", 1, ADDR)
        wait_until(lambda: tips([a, b]) == [h] * 2, 30, "block with the unseen transaction")
        assert secret in b.call("getblock", h)["tx"]
        assert sum(_recv(b, "blocktxn").values()) > 0
        assert sum(_recv(b, "block").values()) == blocks_before
    finally:
        a.stop()
        b.stop()


def test_fast_mining_on_a_line_keeps_every_link(tmp_path):
    """issue 16: thousands of blocks mined as fast as the miner can on a three-node line
    (minibtc-net mine 5000): nobody is found misbehaving (headers that do not connect are
    asked for, not punished), nobody is disconnected (a peer busy validating is paused, not
    dropped for a full send buffer), and all end on the same tip."""
    nodes = []
    try:
        for i in range(3):
            extra = [f"-addnode={nodes[-1].p2p_addr}"] if nodes else []
            nodes.append(NodeProcess(tmp_path / f"n{i}", "-debug=net", *extra).start())
        wait_until(lambda: nodes[1].call("getconnectioncount") == 2, 10, "line links")
        links = [sorted(p["id"] for p in n.call("getpeerinfo")) for n in nodes]
        first = nodes[0]
        for _ in range(3):
            hashes = first.call("generatetoaddress", 1000, ADDR)
        wait_until(lambda: tips(nodes) == [hashes[-1]] * 3, 120, "every node at the tip")
        assert [sorted(p["id"] for p in n.call("getpeerinfo")) for n in nodes] == links
        for n in nodes:
            log = (n.chain_dir / "debug.log").read_text(errors="replace")
            assert "Misbehaving" not in log and "disconnecting peer" not in log
    finally:
        for n in nodes:
            n.stop()
