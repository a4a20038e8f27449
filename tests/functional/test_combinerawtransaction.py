"""combinerawtransaction on a real node: two transactions each signed by one key of a 2-of-3
multisig (P2WSH and legacy P2SH) combine into one the mempool accepts, and which is byte for
byte what signing with both keys at once gives (RFC 6979 signatures are deterministic); a
single partial stays partial; Core's errors."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, coinbase_out, rpc_error
from wallet.address import address_to_script, encode_wif, script_to_address
from wallet.keys import pubkey_from_secret

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("combine") / "n")
    n.start()
    n.call("generatetoaddress", 110, ADDR)
    yield n
    n.stop()



@pytest.mark.parametrize("address_type,height", [("bech32", 1), ("legacy", 2)])
def test_combine_partial_multisig_signatures(node, address_type, height):
    keys = [secrets.token_bytes(32) for _ in range(3)]
    wifs = [encode_wif(k, REGTEST) for k in keys]
    pubs = [pubkey_from_secret(k, True).hex() for k in keys]
    ms = node.call("createmultisig", 2, pubs, address_type)
    spk = address_to_script(ms["address"], REGTEST)
    prev, prev_out = coinbase_out(node, height, W.p2wpkh)
    fund = Transaction(2, [TxIn(prev, b"", 0xFFFFFFFD)],
                       [TxOut(prev_out.value - 10_000, spk)])
    fund = W.sign(fund, [prev_out])
    node.call("sendrawtransaction", fund.serialize().hex())
    node.call("generatetoaddress", 1, ADDR)

    amount = Decimal(fund.vout[0].value) / COIN
    raw = node.call("createrawtransaction", [{"txid": fund.txid_hex(), "vout": 0}],
                    [{ADDR: amount - Decimal("0.0002")}])
    prevtx = {"txid": fund.txid_hex(), "vout": 0, "scriptPubKey": spk.hex(),
              "amount": amount}
    prevtx["witnessScript" if address_type == "bech32" else "redeemScript"] = \
        ms["redeemScript"]
    part = [node.call("signrawtransactionwithkey", raw, [w], [prevtx]) for w in wifs[:3:2]]
    assert [p["complete"] for p in part] == [False, False]
    # one partial alone is still partial
    alone = node.call("combinerawtransaction", [part[0]["hex"]])
    assert node.call("testmempoolaccept", [alone])[0]["allowed"] is False

    combined = node.call("combinerawtransaction", [part[1]["hex"], part[0]["hex"]])
    both = node.call("signrawtransactionwithkey", raw, [wifs[0], wifs[2]], [prevtx])
    assert both["complete"] is True
    assert combined == both["hex"]
    # with an unsigned variant and a complete one, the complete one is taken as it is
    assert node.call("combinerawtransaction", [raw, both["hex"]]) == both["hex"]
    assert node.call("testmempoolaccept", [combined])[0]["allowed"] is True
    txid = node.call("sendrawtransaction", combined)
    assert txid in node.call("getrawmempool")


def test_combine_errors(node):
    assert rpc_error(node.call, "combinerawtransaction", []) == (-22, "Missing transactions")
    assert rpc_error(node.call, "combinerawtransaction", ["00", "zz"]) == (
        -22, "TX decode failed for tx 0. Make sure the tx has at least one input.")
    unknown = Transaction(2, [TxIn(OutPoint(b"\x42" * 32, 0), b"", 0xFFFFFFFF)],
                          [TxOut(1000, W.p2wpkh)])
    assert rpc_error(node.call, "combinerawtransaction", [unknown.serialize().hex()]) == (
        -25, "Input not found or already spent")
    assert rpc_error(node.call, "combinerawtransaction", "x")[0] == -3
    assert "combinerawtransaction [\"txs\",...]" not in node.call("help")
    assert "combinerawtransaction txs" in node.call("help")
