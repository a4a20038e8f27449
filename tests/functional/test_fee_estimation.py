"""Fee estimation on a real node, as Bitcoin Core's: estimatesmartfee and estimaterawfee with
no data (Core's result shapes), after blocks confirming transactions that all paid 20 sat/vB
(the rate paid, not the lowest bucket), and fee_estimates.dat across a restart."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from consensus.amounts import COIN
from consensus.hashes import hex_to_hash
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, RPCFailure
from wallet.address import script_to_address

W = Wallet(b"fee estimation")
ADDR = script_to_address(W.p2wpkh, REGTEST)
NO_DATA = ["Insufficient data or no feerate found"]
RATE = Decimal("0.00020000")  # BTC/kvB: 20 sat/vB


def near_rate(est: dict, blocks: int) -> bool:
    """estimatesmartfee's answer: ~20 sat/vB (each signature's size moves a rate by up to 1
    vbyte in 110), for `blocks`, without errors."""
    return set(est) == {"feerate", "blocks"} and est["blocks"] == blocks \
        and abs(est["feerate"] - RATE) <= Decimal("0.00000020")
RAW_NO_DATA = ["Insufficient data or no feerate found which meets threshold"]


def pay(prev: OutPoint, value: int, sat_vb: int, outputs: int = 1) -> Transaction:
    """A transaction spending `prev` (worth `value`) at sat_vb per vbyte (exactly, with one
    output: signed again until the size it is priced for is its size)."""
    fee = 0
    for _ in range(5):
        each = (value - fee) // outputs
        tx = Transaction(2, [TxIn(prev, b"", 0xFFFFFFFD)],
                         [TxOut(each, W.p2wpkh) for _ in range(outputs)])
        W.sign(tx, [TxOut(value, W.p2wpkh)])
        if value - each * outputs == sat_vb * tx.vsize:
            break
        fee = sat_vb * tx.vsize
    return tx


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("fees") / "n")
    n.start()
    yield n
    n.stop()


def test_no_data_gives_cores_shapes(node):
    node.call("generatetoaddress", 110, ADDR)
    for target in (1, 2, 6, 1008):
        for mode in ("economical", "conservative", "unset"):
            assert node.call("estimatesmartfee", target, mode) == {"errors": NO_DATA,
                                                                   "blocks": 0}
    with pytest.raises(RPCFailure) as e:
        node.call("estimatesmartfee", 1009)
    assert (e.value.code, e.value.message) == (-8, "Invalid conf_target, must be between 1 "
                                                   "and 1008")
    raw = node.call("estimaterawfee", 1)
    assert list(raw) == ["short", "medium", "long"]
    for name, decay, scale in (("short", 0.962, 1), ("medium", 0.9952, 2),
                               ("long", 0.99931, 24)):
        h = raw[name]
        assert set(h) == {"decay", "scale", "fail", "errors"}
        assert (float(h["decay"]), h["scale"], h["errors"]) == (decay, scale, RAW_NO_DATA)
        # nothing passed: the whole range, too thin to judge, is reported as failed
        assert {k: float(v) for k, v in h["fail"].items()} == {
            "startrange": 0, "endrange": 1e99, "withintarget": 0, "totalconfirmed": 0,
            "inmempool": 0, "leftmempool": 0}
    assert list(node.call("estimaterawfee", 13)) == ["medium", "long"]
    assert list(node.call("estimaterawfee", 49)) == ["long"]


def test_everything_confirming_next_block_estimates_the_rate_paid(node):
    # 5 coinbases split into 40 coins each (at 30 sat/vB: too few to be judged alone)
    coins = []
    for height in range(1, 6):
        cb = node.call("getblock", node.call("getblockhash", height), 2)["tx"][0]
        value = int(Decimal(str(cb["vout"][0]["value"])) * COIN)
        tx = pay(OutPoint(hex_to_hash(cb["txid"]), 0), value, 30, outputs=40)
        node.call("sendrawtransaction", tx.serialize().hex())
        coins += [(OutPoint(tx.txid, i), out.value) for i, out in enumerate(tx.vout)]
    node.call("generatetoaddress", 1, ADDR)
    for _ in range(20):
        for _ in range(5):
            prev, value = coins.pop()
            node.call("sendrawtransaction", pay(prev, value, 20).serialize().hex())
        node.call("generatetoaddress", 1, ADDR)
        assert node.call("getrawmempool") == []
    for mode in ("economical", "conservative"):
        assert near_rate(node.call("estimatesmartfee", 2, mode), 2)
    # 1 is answered as 2; 20 blocks of data allow targets up to 10
    assert near_rate(node.call("estimatesmartfee", 1), 2)
    assert near_rate(node.call("estimatesmartfee", 25), 10)
    raw = node.call("estimaterawfee", 2, 0.85)
    short = raw["short"]
    assert near_rate({"feerate": short["feerate"], "blocks": 2}, 2)
    assert (float(short["decay"]), short["scale"]) == (0.962, 1)
    assert short["pass"]["startrange"] < 20_000 <= short["pass"]["endrange"]
    assert short["pass"]["withintarget"] == short["pass"]["totalconfirmed"] > 13
    assert "fail" in short and "errors" not in short  # the thin range below failed
    assert raw["medium"]["feerate"] == short["feerate"]


def test_estimates_survive_a_restart_in_cores_file(node):
    before = [node.call("estimatesmartfee", t) for t in (2, 5, 10)]
    height = node.call("getblockcount")
    node.stop()
    data = (node.chain_dir / "fee_estimates.dat").read_bytes()
    assert struct.unpack_from("<iI", data) == (309900, height)  # version, last block seen
    node.start()
    assert [node.call("estimatesmartfee", t) for t in (2, 5, 10)] == before
    # restarted at the tip it saved, it keeps tracking transactions at once
    node.call("generatetoaddress", 1, ADDR)
    assert near_rate(node.call("estimatesmartfee", 2), 2)
