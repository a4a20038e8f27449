"""Packages as Core's, on a real node: submitpackage judges a child and its parents by the
package fee rate (a child pays for a parent below the minimum relay fee, CPFP), and
testmempoolaccept tests several transactions as a package (per-transaction results, Core's
package errors), leaving the mempool as it was."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.amounts import COIN
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.netutil import ADDR, W, coinbase_spend, spend_outputs

_next = [1]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("pk") / "n")
    n.start()
    n.call("generatetoaddress", 150, ADDR)
    yield n
    n.stop()


def coin_spend(node, fee: int, outputs: int = 1) -> Transaction:
    """A spend of a fresh mature coinbase, paying `fee`."""
    _next[0] += 1
    return coinbase_spend(node, _next[0], fee=fee, outputs=outputs)


def child_of(parents: list[Transaction], fee: int) -> Transaction:
    return spend_outputs([(OutPoint(p.txid, 0), p.vout[0].value) for p in parents], fee=fee)


def hexes(*txs: Transaction) -> list[str]:
    return [t.serialize().hex() for t in txs]


def btc(sats: int) -> Decimal:
    return Decimal(sats) / COIN


def sequence(node) -> int:
    return node.call("getrawmempool", False, True)["mempool_sequence"]


def test_child_pays_for_parent_below_min_relay_fee(node):
    parent = coin_spend(node, fee=0)
    child = child_of([parent], fee=20_000)
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", parent.serialize().hex())
    assert e.value.message.startswith("min relay fee not met, 0 < ")
    res = node.call("submitpackage", hexes(parent, child))
    assert res["package_msg"] == "success" and res["replaced-transactions"] == []
    mempool = node.call("getrawmempool")
    assert parent.txid_hex() in mempool and child.txid_hex() in mempool
    pr = res["tx-results"][parent.wtxid_hex()]
    cr = res["tx-results"][child.wtxid_hex()]
    size = pr["vsize"] + cr["vsize"]
    for r in (pr, cr):
        # Both at the package's fee rate, computed over both.
        assert Decimal(str(r["fees"]["effective-feerate"])) == btc(20_000 * 1000 // size)
        assert r["fees"]["effective-includes"] == [parent.wtxid_hex(), child.wtxid_hex()]
    assert Decimal(str(pr["fees"]["base"])) == 0
    assert Decimal(str(cr["fees"]["base"])) == btc(20_000)
    # The block template takes them together.
    node.call("generatetoaddress", 1, ADDR)
    assert node.call("getrawmempool") == []


def test_parent_paying_its_own_way_is_accepted_alone(node):
    parent = coin_spend(node, fee=5_000)
    child = child_of([parent], fee=0)  # (refused alone and with its parent already in)
    res = node.call("submitpackage", hexes(parent, child))
    assert res["package_msg"] == "transaction failed"
    pr = res["tx-results"][parent.wtxid_hex()]
    assert pr["fees"]["effective-includes"] == [parent.wtxid_hex()]
    assert Decimal(str(pr["fees"]["effective-feerate"])) == btc(5_000 * 1000 // pr["vsize"])
    assert res["tx-results"][child.wtxid_hex()]["error"].startswith("min relay fee not met")
    assert node.call("getrawmempool") == [parent.txid_hex()]
    node.call("generatetoaddress", 1, ADDR)


def test_package_fee_rate_too_low_leaves_nothing_behind(node):
    before = sequence(node)
    parent = coin_spend(node, fee=0)
    child = child_of([parent], fee=15)  # enough for itself, not for both
    res = node.call("submitpackage", hexes(parent, child))
    assert res["package_msg"] == "transaction failed"
    assert res["tx-results"][parent.wtxid_hex()]["error"].startswith("min relay fee not met, 0 < ")
    # The package's fees against the package's size.
    cerr = res["tx-results"][child.wtxid_hex()]["error"]
    assert cerr.startswith("min relay fee not met, 15 < ")
    assert node.call("getrawmempool") == []
    assert sequence(node) == before  # (tried and taken back: nothing numbered)


def test_parent_invalid_for_other_reasons_quits(node):
    parent = coin_spend(node, fee=0)
    bad = W.sign(Transaction(2, [TxIn(i.prevout, b"", i.sequence) for i in parent.vin],
                             [TxOut(parent.vout[0].value, b"\x51\x51")], 0),  # nonstandard
                 [TxOut(50 * COIN, W.p2wpkh)])
    child = Transaction(2, [TxIn(OutPoint(bad.txid, 0), b"", 0xFFFFFFFD)],
                        [TxOut(bad.vout[0].value - 50_000, W.p2wpkh)], 0)
    res = node.call("submitpackage", hexes(bad, child))
    assert res["package_msg"] == "transaction failed"
    assert res["tx-results"][bad.wtxid_hex()]["error"] == "scriptpubkey"
    assert res["tx-results"][child.wtxid_hex()]["error"] == "bad-txns-inputs-missingorspent"
    assert node.call("getrawmempool") == []


def test_child_must_spend_only_package_or_confirmed_outputs(node):
    other = coin_spend(node, fee=5_000)
    node.call("sendrawtransaction", other.serialize().hex())
    parent = coin_spend(node, fee=0)
    child = spend_outputs([(OutPoint(parent.txid, 0), parent.vout[0].value),
                           (OutPoint(other.txid, 0), other.vout[0].value)], fee=40_000)
    res = node.call("submitpackage", hexes(parent, child))
    assert res == {"package_msg": "package-not-child-with-unconfirmed-parents",
                   "tx-results": {}, "replaced-transactions": []}
    assert node.call("getrawmempool") == [other.txid_hex()]
    node.call("generatetoaddress", 1, ADDR)


def test_testmempoolaccept_chain_as_sequential_submission(node):
    a = coin_spend(node, fee=3_000)
    b = child_of([a], fee=3_000)
    c = child_of([b], fee=3_000)
    before = sequence(node)
    together = node.call("testmempoolaccept", hexes(a, b, c))
    assert node.call("getrawmempool") == [] and sequence(node) == before
    one_by_one = []
    for tx in (a, b, c):
        one_by_one.append(node.call("testmempoolaccept", hexes(tx))[0])
        node.call("sendrawtransaction", tx.serialize().hex())
    assert together == one_by_one
    assert all(r["allowed"] for r in together)
    assert together[1]["fees"]["effective-includes"] == [b.wtxid_hex()]
    node.call("generatetoaddress", 1, ADDR)


def test_testmempoolaccept_package_errors(node):
    a = coin_spend(node, fee=3_000)
    b = child_of([a], fee=3_000)
    a2 = coin_spend(node, fee=3_000)
    conflict = Transaction(a2.version, a2.vin, [TxOut(a2.vout[0].value - 1000, W.p2wpkh)], 0)
    conflict = W.sign(Transaction(2, [TxIn(i.prevout, b"", i.sequence) for i in a2.vin],
                                  conflict.vout, 0), [TxOut(50 * COIN, W.p2wpkh)])
    for txs, err in [((a, a), "package-contains-duplicates"),
                     ((b, a), "package-not-sorted"),
                     ((a2, conflict), "conflict-in-package")]:
        assert node.call("testmempoolaccept", hexes(*txs)) == [
            {"txid": t.txid_hex(), "wtxid": t.wtxid_hex(), "package-error": err} for t in txs]
    too_many = [str(i) for i in range(26)]
    with pytest.raises(RPCFailure) as e:
        node.call("testmempoolaccept", too_many)
    assert (e.value.code, e.value.message) == (
        -8, "Array must contain between 1 and 25 transactions.")


def test_testmempoolaccept_each_pays_its_own_way(node):
    parent = coin_spend(node, fee=0)
    child = child_of([parent], fee=30_000)
    res = node.call("testmempoolaccept", hexes(parent, child))
    assert res[0]["allowed"] is False and res[0]["reject-reason"] == "min relay fee not met"
    assert res[1] == {"txid": child.txid_hex(), "wtxid": child.wtxid_hex()}  # not evaluated


def test_testmempoolaccept_package_replaces_nothing(node):
    first = coin_spend(node, fee=1_000)
    node.call("sendrawtransaction", first.serialize().hex())
    replacement = spend_outputs([(first.vin[0].prevout, 50 * COIN)], fee=60_000)
    assert node.call("testmempoolaccept", hexes(replacement))[0]["allowed"] is True
    other = coin_spend(node, fee=2_000)
    res = node.call("testmempoolaccept", hexes(other, replacement))
    assert res[0] == {"txid": other.txid_hex(), "wtxid": other.wtxid_hex()}
    assert res[1]["allowed"] is False
    assert res[1]["reject-reason"] == "bip125-replacement-disallowed"
    node.call("generatetoaddress", 1, ADDR)


def test_testmempoolaccept_maxfeerate_stops_the_rest(node):
    rich = coin_spend(node, fee=COIN)  # far over 0.10 BTC/kvB
    other = coin_spend(node, fee=2_000)
    res = node.call("testmempoolaccept", hexes(rich, other))
    assert res == [{"txid": rich.txid_hex(), "wtxid": rich.wtxid_hex(), "allowed": False,
                    "reject-reason": "max-fee-exceeded"},
                   {"txid": other.txid_hex(), "wtxid": other.wtxid_hex()}]
    assert node.call("testmempoolaccept", hexes(rich, other), 0)[0]["allowed"] is True


def test_truc_parent_and_child(node):
    """TRUC (version 3): a 0-fee parent with its child as a package; the TRUC rules hold in
    the package (a second child of the parent is refused: no sibling eviction here)."""
    def v3(tx: Transaction, prevs: list[TxOut]) -> Transaction:
        return W.sign(Transaction(3, [TxIn(i.prevout, b"", i.sequence) for i in tx.vin],
                                  tx.vout, 0), prevs)

    parent = coin_spend(node, fee=0, outputs=2)
    parent = v3(parent, [TxOut(50 * COIN, W.p2wpkh)])
    child = v3(child_of([parent], fee=20_000), [parent.vout[0]])
    res = node.call("submitpackage", hexes(parent, child))
    assert res["package_msg"] == "success", res
    assert node.call("getmempoolentry", parent.txid_hex())["fees"]["base"] == 0
    second = v3(spend_outputs([(OutPoint(parent.txid, 1), parent.vout[1].value)], fee=30_000),
                [parent.vout[1]])
    res = node.call("testmempoolaccept", hexes(second))[0]
    assert res["allowed"] is True  # alone it may evict its sibling (as Core's)
    other = coin_spend(node, fee=2_000)
    res = node.call("testmempoolaccept", hexes(other, second))
    assert res[1]["reject-reason"] == "TRUC-violation"
    assert "would exceed descendant count limit" in res[1]["reject-details"]
    node.call("generatetoaddress", 1, ADDR)
