"""The wallet's funding (Core's FundTransaction and CreateTransaction) as Bitcoin Core's
rpc_psbt.py exercises it, against a real minibtcd: max_tx_weight and its four errors, the fee
rate options of walletcreatefundedpsbt (an explicit rate taken as it is, zero included; Core's
amount and type errors; the -maxtxfee ceiling), inputs given by hand that a mempool
transaction already spends, their order, the coin eligibility filters (confirmed coins
before unconfirmed change), and minconf/maxconf.

One node for the module; the tests run in order on a shared chain."""

from __future__ import annotations

import secrets
from decimal import Decimal

import coincurve
import pytest

from consensus.params import CHAINS
from tests.functional.framework import funded_wallet_node, rpc_error
from wallet.address import encode_wif
from wallet.descriptors import add_checksum

MAX_STANDARD_TX_WEIGHT = 400_000
MIN_TX_WEIGHT = 65 * 4  # MIN_STANDARD_TX_NONWITNESS_SIZE in weight


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with funded_wallet_node(tmp_path_factory.mktemp("funding") / "n", "-keypool=1") as n:
        yield n


_err = rpc_error


def _fund(node, inputs, outputs, options=None, wallet="w"):
    return node.call("walletcreatefundedpsbt", inputs, outputs, 0, options or {},
                     wallet=wallet)


def _inputs(node, psbt: str) -> list[tuple[str, int]]:
    return [(i["previous_txid"], i["previous_vout"])
            for i in node.call("decodepsbt", psbt)["inputs"]]


def test_max_tx_weight(node):
    one = [{node.call("getnewaddress", wallet="w"): 1}]
    two = [{node.call("getnewaddress", wallet="w"): 1},
           {node.call("getnewaddress", wallet="w"): 1}]
    for bad in (-1, 0, MAX_STANDARD_TX_WEIGHT + 1):
        assert _err(_fund, node, [], one, {"max_tx_weight": bad}) == (
            -4, f"Maximum transaction weight must be between {MIN_TX_WEIGHT} and "
                f"{MAX_STANDARD_TX_WEIGHT}")
    # two P2WPKH outputs: 10 + 1 + 2 * 31 = 73 vbytes without inputs
    no_inputs = 73 * 4
    for limit in (MIN_TX_WEIGHT, no_inputs):
        assert _err(_fund, node, [], two, {"max_tx_weight": limit}) == (
            -4, "Maximum transaction weight is less than transaction weight without inputs")
    assert _err(_fund, node, [], two, {"max_tx_weight": no_inputs + 4}) == (
        -4, "Maximum transaction weight is too low, can not accommodate change output")
    code, msg = _err(_fund, node, [], two, {"max_tx_weight": no_inputs + 31 * 4})
    assert code == -4 and msg.startswith("The inputs size exceeds the maximum weight")
    psbt = _fund(node, [], one, {"max_tx_weight": 1000})["psbt"]
    signed = node.call("walletprocesspsbt", psbt, wallet="w")
    assert signed["complete"]
    assert node.call("decoderawtransaction", signed["hex"])["weight"] <= 1000


def test_fee_rate_options(node):
    out = [{node.call("getnewaddress", wallet="w"): 1}]
    # an explicit rate is taken as it is: under the wallet's minimum, and zero
    low = _fund(node, [], out, {"fee_rate": "0.999"})
    assert Decimal("0") < low["fee"] < Decimal("0.00000200")
    for param, zero in (("fee_rate", 0), ("fee_rate", "0.000"), ("feeRate", 0)):
        assert _fund(node, [], out, {param: zero})["fee"] == 0
    # (send keeps the minimum)
    code, msg = _err(node.call, "send", out, None, None, "0.999", wallet="w")
    assert code == -4 and msg.startswith("Fee rate (0.999 sat/vB) is lower than the minimum")
    assert _err(_fund, node, [], [{"data": "deadbeef"}], {"fee_rate": "0"}) == (
        -4, "Transaction requires one destination of non-zero value, a non-zero feerate, or a "
            "pre-selected input")
    assert _err(_fund, node, [], out, {"fee_rate": 1000000}) == (
        -4, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
    assert _err(_fund, node, [], out, {"feeRate": 1}) == (
        -4, "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
    for param in ("fee_rate", "feeRate"):
        assert _err(_fund, node, [], out, {param: -1}) == (-3, "Amount out of range")
        assert _err(_fund, node, [], out, {param: 1111111111111111}) == (-3, "Invalid amount")
        assert _err(_fund, node, [], out, {param: {"foo": "bar"}}) == (
            -3, "Amount is not a number or string")
    assert _err(_fund, node, [], out, {"fee_rate": 0.0001}) == (-3, "Invalid amount")
    assert _err(_fund, node, [], out, {"estimate_mode": 42, "conf_target": 1}) == (
        -3, "JSON value of type number for field estimate_mode is not of expected type string")
    assert _err(_fund, node, [], out, {"conf_target": "", "estimate_mode": "unset"}) == (
        -3, "JSON value of type string for field conf_target is not of expected type number")
    utxo = node.call("listunspent", wallet="w")[0]
    assert _err(_fund, node, [{"txid": utxo["txid"], "vout": utxo["vout"]}], out,
                {"input_weights": [{"txid": utxo["txid"], "vout": utxo["vout"],
                                    "weight": 1000}]}) == (
        -8, "Input weights should be specified in inputs rather than in options.")
    assert _err(node.call, "send", out, None, None, None,
                {"input_weights": [{"txid": utxo["txid"], "vout": utxo["vout"],
                                    "weight": 1000}]}, wallet="w") == (
        -8, "Input weights should be specified in inputs rather than in options.")
    assert _err(_fund, node, [{"txid": utxo["txid"], "vout": utxo["vout"], "weight": 100}],
                out) == (
        -8, "Invalid parameter, weight cannot be less than 165 (41 bytes (size of outpoint + "
            "sequence + empty scriptSig) * 4 (witness scaling factor)) + 1 (empty witness)")


def test_preset_input_spent_in_mempool(node):
    coins = sorted(node.call("listunspent", wallet="w"), key=lambda u: u["confirmations"])
    a, b = coins[0], coins[1]
    presets = [{"txid": a["txid"], "vout": a["vout"]}, {"txid": b["txid"], "vout": b["vout"]}]
    dest = node.call("getnewaddress", wallet="w")
    first = _fund(node, presets, [{dest: 1}])["psbt"]
    # the inputs given come first, in their order
    assert _inputs(node, first) == [(a["txid"], a["vout"]), (b["txid"], b["vout"])]
    signed = node.call("walletprocesspsbt", first, wallet="w")
    sent = node.call("sendrawtransaction", signed["hex"])
    # spent by a mempool transaction, they are still taken (a replacement is the user's
    # choice), and the coins added to them are confirmed ones, not the unconfirmed change
    # of the transaction they replace
    total = a["amount"] + b["amount"]
    again = _fund(node, presets, [{dest: total + 1}], {"add_inputs": True, "fee_rate": 10})
    ins = _inputs(node, again["psbt"])
    assert ins[:2] == [(a["txid"], a["vout"]), (b["txid"], b["vout"])] and len(ins) >= 3
    assert all(txid != sent for txid, _ in ins)
    for txid, _ in ins[2:]:
        assert node.call("gettransaction", txid, wallet="w")["confirmations"] >= 1
    node.call("generatetoaddress", 1, node.call("getnewaddress", wallet="w"))


def test_minconf_maxconf(node):
    node.call("createwallet", "mc")
    for _ in range(2):
        node.call("sendmany", "", {node.call("getnewaddress", wallet="mc"): 1,
                                   node.call("getnewaddress", wallet="mc"): 1}, wallet="w")
        node.call("generatetoaddress", 1, node.call("getnewaddress", wallet="w"))
    unconfirmed = node.call("sendtoaddress", node.call("getnewaddress", wallet="mc"), 0.5,
                            wallet="mc")
    target = node.call("getnewaddress", wallet="w")
    psbt = _fund(node, [], {target: 0.1}, {"fee_rate": 1, "maxconf": 0}, wallet="mc")["psbt"]
    ins = _inputs(node, psbt)
    assert len(ins) == 1 and ins[0][0] == unconfirmed
    assert _err(_fund, node, [], {target: 1}, {"minconf": 3, "fee_rate": 10},
                wallet="mc")[1].startswith("Insufficient funds")
    psbt = _fund(node, [], {target: 0.6}, {"minconf": 2, "fee_rate": 10}, wallet="mc")["psbt"]
    for txid, _ in _inputs(node, psbt):
        assert node.call("gettransaction", txid, wallet="mc")["confirmations"] >= 2
    assert _err(_fund, node, [], {target: 1}, {"minconf": 2, "maxconf": 1},
                wallet="mc") == (-8, "maxconf can't be lower than minconf: 1 < 2")
    assert _err(_fund, node, [], {target: 1}, {"minconf": -1}, wallet="mc") == (
        -8, "Negative minconf")


def test_sendall_sizes_script_inputs_by_their_descriptor(node):
    """sendall of a watch-only wsh(pkh()) coin pays at least its fee rate once signed: the
    input is sized from its descriptor (witness script included), not as a P2WPKH one."""
    secret = secrets.token_bytes(32)
    pub = coincurve.PrivateKey(secret).public_key.format(compressed=True).hex()
    wif = encode_wif(secret, CHAINS["regtest"])
    node.call("createwallet", "wo", True, True)
    node.call("createwallet", "signer", False, True)
    assert node.call("importdescriptors", [{"desc": add_checksum(f"wsh(pkh({pub}))"),
                                            "timestamp": "now"}], wallet="wo")[0]["success"]
    assert node.call("importdescriptors", [{"desc": add_checksum(f"wsh(pkh({wif}))"),
                                            "timestamp": "now"}],
                     wallet="signer")[0]["success"]
    addr = node.call("deriveaddresses", add_checksum(f"wsh(pkh({pub}))"))[0]
    node.call("sendtoaddress", addr, 10, wallet="w")
    node.call("generatetoaddress", 1, node.call("getnewaddress", wallet="w"))
    dest = node.call("getnewaddress", wallet="w")
    psbt = node.call("sendall", [dest], None, None, 10, wallet="wo")["psbt"]
    signed = node.call("walletprocesspsbt", psbt, wallet="signer")
    assert signed["complete"]
    tx = node.call("decoderawtransaction", signed["hex"])
    fee_sat = (Decimal(10) - tx["vout"][0]["value"]) * 10**8
    assert fee_sat >= tx["vsize"] * 10
