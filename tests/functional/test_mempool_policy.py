"""Mempool policy options and RPCs as Core's, on real nodes: options read at start-up
(-permitbaremultisig, -incrementalrelayfee, -dustrelayfee, -limitclustercount), the
unbroadcast set and its rebroadcast on the node's scheduler (mockscheduler), replacement
messages, getprioritisedtransactions, estimaterawfee, getorphantxs with the announcing peers,
gettxspendingprevout."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.tx import OutPoint, TxOut
from node.p2p import messages as m
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, W, coinbase_spend, connect, spend_outputs, wait_until
from tests.functional.p2p_peer import RawPeer


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("mp") / "n", "-permitbaremultisig=0",
                    "-incrementalrelayfee=0.00000500", "-deprecatedrpc=fullrbf",
                    "-limitclustercount=3")
    n.start()
    n.call("generatetoaddress", 130, ADDR)
    yield n
    n.stop()


def rpc_error(node, *args) -> RPCFailure:
    with pytest.raises(RPCFailure) as e:
        node.call(*args)
    return e.value


def test_options_shown_in_getmempoolinfo(node):
    info = node.call("getmempoolinfo")
    assert info["permitbaremultisig"] is False
    # Only -incrementalrelayfee given: the minimum relay fee follows it up.
    assert info["incrementalrelayfee"] == Decimal("0.00000500")
    assert info["minrelaytxfee"] == Decimal("0.00000500")
    assert info["fullrbf"] is True  # -deprecatedrpc=fullrbf
    assert info["limitclustercount"] == 3 and info["limitclustersize"] == 101_000
    assert info["maxdatacarriersize"] == 100_000 and info["unbroadcastcount"] == 0


def test_cluster_limit_and_feerate_diagram(node):
    a = coinbase_spend(node, 1, fee=100_000)
    node.call("sendrawtransaction", a.serialize().hex())
    b = spend_outputs([(OutPoint(a.txid, 0), a.vout[0].value)])
    node.call("sendrawtransaction", b.serialize().hex())
    c = spend_outputs([(OutPoint(b.txid, 0), b.vout[0].value)])
    node.call("sendrawtransaction", c.serialize().hex())
    d = spend_outputs([(OutPoint(c.txid, 0), c.vout[0].value)])
    err = rpc_error(node, "sendrawtransaction", d.serialize().hex())
    assert (err.code, err.message) == (-26, "too-large-cluster")  # -limitclustercount=3
    # More fees than a, b and c together, but at a much lower rate: the mempool's feerate
    # diagram would get worse where a's high rate was.
    value = a.vout[0].value + 100_000
    wide = spend_outputs([(a.vin[0].prevout, value)], fee=150_000, outputs=100)
    err = rpc_error(node, "sendrawtransaction", wide.serialize().hex())
    assert (err.code, err.message) == (
        -26, "replacement-failed, insufficient feerate: does not improve feerate diagram")
    # A replacement at a higher rate is fine, and takes b and c with it.
    better = spend_outputs([(a.vin[0].prevout, value)], fee=200_000)
    node.call("sendrawtransaction", better.serialize().hex())
    assert node.call("getrawmempool") == [better.txid_hex()]
    node.call("generatetoaddress", 1, ADDR)


def test_replacement_needs_incremental_fee_formatted_as_core(node):
    tx = coinbase_spend(node, 2)
    node.call("sendrawtransaction", tx.serialize().hex())
    same = spend_outputs([(tx.vin[0].prevout, tx.vout[0].value + 10_000)], fee=10_000)
    same.vout[0].script_pubkey = b"\x00\x14" + b"\x11" * 20
    same = W.sign(same, [TxOut(tx.vout[0].value + 10_000, W.p2wpkh)])
    need = -(-500 * same.vsize // 1000)
    err = rpc_error(node, "sendrawtransaction", same.serialize().hex())
    assert (err.code, err.message) == (
        -26, f"insufficient fee, rejecting replacement {same.txid_hex()}, not enough additional "
             f"fees to relay; 0.00 < 0.{need:08d}".rstrip("0"))
    res = node.call("testmempoolaccept", [same.serialize().hex()])[0]
    assert res["reject-reason"] == "insufficient fee"
    node.call("generatetoaddress", 1, ADDR)


def test_bare_multisig_refused(node):
    tx = coinbase_spend(node, 3)
    key = bytes([2]) + b"\x22" * 32
    tx.vout[0].script_pubkey = b"\x51" + bytes([33]) + key + b"\x51\xae"  # 1-of-1 bare
    tx = W.sign(tx, [TxOut(50 * 10**8, W.p2wpkh)])
    res = node.call("testmempoolaccept", [tx.serialize().hex()])[0]
    assert res["reject-reason"] == "bare-multisig"


def test_prioritised_transactions(node):
    tx = coinbase_spend(node, 4)
    node.call("sendrawtransaction", tx.serialize().hex())
    node.call("prioritisetransaction", tx.txid_hex(), 0, 5000)
    unknown = "ab" * 32
    node.call("prioritisetransaction", unknown, 0, -7)
    got = node.call("getprioritisedtransactions")
    assert got[tx.txid_hex()] == {"fee_delta": 5000, "in_mempool": True,
                                  "modified_fee": 15000}
    assert got[unknown] == {"fee_delta": -7, "in_mempool": False}
    entry = node.call("getmempoolentry", tx.txid_hex())
    assert entry["fees"]["modified"] == Decimal("0.00015000")
    assert "bip125-replaceable" not in entry  # deprecated: -deprecatedrpc=bip125 shows it
    node.call("generatetoaddress", 1, ADDR)
    assert tx.txid_hex() not in node.call("getprioritisedtransactions")  # mined: cleared


def test_fee_estimation_rpcs(node):
    raw = node.call("estimaterawfee", 1)
    assert set(raw) == {"short", "medium", "long"}
    assert raw["short"]["errors"] and raw["short"]["scale"] == 1
    assert set(node.call("estimaterawfee", 100)) == {"long"}
    assert rpc_error(node, "estimaterawfee", 1009).code == -8
    assert rpc_error(node, "estimaterawfee", 1, 2).message == "Invalid threshold"
    node.call("estimatesmartfee", 1, "economical", {"fee_rate_estimator": "block_policy"})
    err = rpc_error(node, "estimatesmartfee", 1, "economical", {"block_policy_only": True})
    assert (err.code, err.message) == (-3, "Unexpected key block_policy_only")
    err = rpc_error(node, "estimatesmartfee", 1, "economical", {"verbosity": "x"})
    assert err.message == ("JSON value of type string for field verbosity is not of expected "
                           "type number")


def test_gettxspendingprevout(node):
    tx = coinbase_spend(node, 5)
    node.call("sendrawtransaction", tx.serialize().hex())
    prev = tx.vin[0].prevout
    out = node.call("gettxspendingprevout", [{"txid": prev.hash[::-1].hex(), "vout": 0},
                                             {"txid": tx.txid_hex(), "vout": 0}])
    assert out == [{"txid": prev.hash[::-1].hex(), "vout": 0, "spendingtxid": tx.txid_hex()},
                   {"txid": tx.txid_hex(), "vout": 0}]
    assert rpc_error(node, "gettxspendingprevout", []).message == \
        "Invalid parameter, outputs are missing"
    err = rpc_error(node, "gettxspendingprevout", [{"txid": tx.txid_hex(), "vout": -1}])
    assert (err.code, err.message) == (-8, "Invalid parameter, vout cannot be negative")
    node.call("generatetoaddress", 1, ADDR)


def test_getorphantxs_lists_announcers(node):
    p = RawPeer(node.p2pport)
    p.handshake(wtxid=True)
    q = RawPeer(node.p2pport)
    q.handshake(wtxid=True)
    parent = coinbase_spend(node, 6)
    child = spend_outputs([(OutPoint(parent.txid, 0), parent.vout[0].value)])
    p.send_payload("tx", child.serialize())
    wait_until(lambda: node.call("getorphantxs") == [child.txid_hex()], 10, "orphan kept")
    [o] = node.call("getorphantxs", 2)
    assert o["txid"] == child.txid_hex() and o["wtxid"] == child.wtxid_hex()
    assert o["hex"] == child.serialize().hex() and o["weight"] == child.weight
    assert len(o["from"]) == 1
    q.send(m.InvMsg([m.Inv(m.MSG_WTX, child.wtxid)]))  # a second peer announces it
    wait_until(lambda: len(node.call("getorphantxs", 1)[0]["from"]) == 2, 10, "announcer")
    assert rpc_error(node, "getorphantxs", 3).message == "Invalid verbosity value 3"
    err = rpc_error(node, "getorphantxs", True)
    assert (err.code, err.message) == (-3, "Verbosity was boolean but only integer allowed")
    assert "getorphantxs" not in node.call("help")  # hidden, as Core's
    p.send_payload("tx", parent.serialize())
    wait_until(lambda: node.call("getorphantxs") == [], 10, "orphan resolved")
    assert child.txid_hex() in node.call("getrawmempool")
    p.close()
    q.close()
    node.call("generatetoaddress", 1, ADDR)


def test_unbroadcast_until_a_peer_asks_then_rebroadcast(tmp_path):
    a = NodeProcess(tmp_path / "a")
    a.start()
    b = NodeProcess(tmp_path / "b")
    b.start()
    try:
        a.call("generatetoaddress", 101, ADDR)
        tx = coinbase_spend(a, 1)
        a.call("sendrawtransaction", tx.serialize().hex())
        assert a.call("getmempoolinfo")["unbroadcastcount"] == 1
        assert a.call("getmempoolentry", tx.txid_hex())["unbroadcast"] is True
        # Kept across a restart (mempool.dat).
        a.stop()
        a.start()
        assert a.call("getmempoolentry", tx.txid_hex())["unbroadcast"] is True
        connect(b, a)
        wait_until(lambda: b.call("getblockcount") == 101, 30, "synced")
        assert tx.txid_hex() not in b.call("getrawmempool")  # not announced on connect
        a.call("mockscheduler", 900)  # the rebroadcast comes within 15 minutes
        wait_until(lambda: tx.txid_hex() in b.call("getrawmempool"), 30, "rebroadcast")
        wait_until(lambda: a.call("getmempoolinfo")["unbroadcastcount"] == 0, 10,
                   "asked for, so broadcast")
        # Submitted again while in the mempool: not unbroadcast again.
        a.call("sendrawtransaction", tx.serialize().hex())
        assert a.call("getmempoolentry", tx.txid_hex())["unbroadcast"] is False
    finally:
        b.stop()
        a.stop()
