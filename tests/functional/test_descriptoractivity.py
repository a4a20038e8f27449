"""getdescriptoractivity on a real node: the receives and spends of a descriptor's scripts in
given blocks (in height order, whatever order the hashes come in) and in the mempool, equal
to what the test's own transactions say; Core's errors."""

from __future__ import annotations

from decimal import Decimal

from consensus.amounts import COIN
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, coinbase_out, rpc_error
from wallet.address import script_to_address

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)
TR = script_to_address(W.p2tr, REGTEST)
OTHER = Wallet(b"other")
OTHER_ADDR = script_to_address(OTHER.p2wpkh, REGTEST)



def test_descriptor_activity(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        n.call("generatetoaddress", 1, ADDR)
        n.call("generatetoaddress", 100, OTHER_ADDR)
        b1 = n.call("getblockhash", 1)
        prev, coin = coinbase_out(n, 1, W.p2wpkh)
        spend = Transaction(2, [TxIn(prev, b"", 0xFFFFFFFD)],
                            [TxOut(COIN, W.p2tr),
                             TxOut(coin.value - COIN - 10_000, OTHER.p2wpkh)])
        W.sign(spend, [coin])
        n.call("sendrawtransaction", spend.serialize().hex())
        b102 = n.call("generatetoaddress", 1, OTHER_ADDR)[0]
        # unconfirmed: the P2TR output spent back to ADDR
        again = Transaction(2, [TxIn(OutPoint(spend.txid, 0), b"", 0xFFFFFFFD)],
                            [TxOut(COIN - 5_000, W.p2wpkh)])
        W.sign(again, [TxOut(COIN, W.p2tr)])
        n.call("sendrawtransaction", again.serialize().hex())

        wpkh = n.call("getdescriptorinfo", f"addr({ADDR})")["descriptor"]
        res = n.call("getdescriptoractivity", [b102, b1], [wpkh, f"addr({TR})"])
        acts = res["activity"]
        assert [(a["type"], a.get("height")) for a in acts] == [
            ("receive", 1), ("spend", 102), ("receive", 102), ("spend", None),
            ("receive", None)]
        r1, s102, r102, s_mem, r_mem = acts
        assert r1 == {"type": "receive", "amount": Decimal(coin.value) / COIN, "blockhash": b1,
                      "height": 1, "txid": prev.hash[::-1].hex(), "vout": 0,
                      "output_spk": r1["output_spk"]}
        assert r1["output_spk"]["address"] == ADDR and r1["output_spk"]["hex"] == \
            W.p2wpkh.hex() and r1["output_spk"]["type"] == "witness_v0_keyhash"
        assert s102 == {"type": "spend", "amount": Decimal(coin.value) / COIN, "blockhash": b102,
                        "height": 102, "spend_txid": spend.txid_hex(), "spend_vin": 0,
                        "prevout_txid": prev.hash[::-1].hex(), "prevout_vout": 0,
                        "prevout_spk": s102["prevout_spk"]}
        assert s102["prevout_spk"]["address"] == ADDR
        assert (r102["txid"], r102["vout"], r102["amount"]) == (spend.txid_hex(), 0,
                                                                Decimal(1))
        assert r102["output_spk"]["address"] == TR
        assert "blockhash" not in s_mem and s_mem["spend_txid"] == again.txid_hex()
        assert (s_mem["prevout_txid"], s_mem["amount"]) == (spend.txid_hex(), Decimal(1))
        assert r_mem["txid"] == again.txid_hex() and "height" not in r_mem
        # without the mempool, and only the P2TR script
        only = n.call("getdescriptoractivity", [b102], [f"addr({TR})"], False)["activity"]
        assert [(a["type"], a.get("txid")) for a in only] == [("receive", spend.txid_hex())]
        # no blocks: the mempool only (the P2TR spend is not a wpkh event)
        assert n.call("getdescriptoractivity", [], [wpkh])["activity"] == [r_mem]
        assert rpc_error(n.call, "getdescriptoractivity", ["00" * 32], [wpkh]) == (
            -5, "Block not found")
        n.call("invalidateblock", b102)
        assert rpc_error(n.call, "getdescriptoractivity", [b102], [wpkh]) == (
            -8, "Block is not in main chain")
        n.call("reconsiderblock", b102)
        code, _ = rpc_error(n.call, "getdescriptoractivity", ["zz"], [wpkh])
        assert code == -8
        assert "getdescriptoractivity ( blockhashes ) scanobjects ( include_mempool )" in \
            n.call("help")
