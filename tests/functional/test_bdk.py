"""A BDK wallet (bdkpython, the Bitcoin Dev Kit's Python bindings, as app developers use it)
on a minibtcd backend: through the node's Esplora API (-esplora) it finds its coins with a
full scan (across an address gap), sees its exact confirmed and unconfirmed balance, builds,
signs and broadcasts a payment, and syncs the result."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.functional.bdkutil import bip84_wallet
from tests.functional.framework import NodeProcess, free_port

bdk = pytest.importorskip("bdkpython")

MNEMONIC = ("abandon abandon abandon abandon abandon abandon abandon abandon abandon "
            "abandon abandon about")  # BIP39's test phrase: a fixed, known wallet


def sats(btc) -> int:
    return int(Decimal(str(btc)) * 100_000_000)


def bdk_wallet():
    return bip84_wallet(MNEMONIC)


def wait_for(cond, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TimeoutError
        time.sleep(0.1)


def test_bdk_wallet_syncs_and_spends_through_esplora(tmp_path):
    port = free_port()
    with NodeProcess(tmp_path / "n", f"-esplora={port}", "-fallbackfee=0.0002") as node:
        node.create_wallet()
        w = dict(wallet="default")
        miner = node.call("getnewaddress", **w)
        node.call("generatetoaddress", 101, miner)

        wallet = bdk_wallet()
        first = str(wallet.peek_address(bdk.KeychainKind.EXTERNAL, 0).address)
        later = str(wallet.peek_address(bdk.KeychainKind.EXTERNAL, 7).address)  # past a gap
        node.call("sendtoaddress", first, 1.5, **w)
        node.call("sendtoaddress", later, 0.25, **w)
        node.call("generatetoaddress", 1, miner)
        node.call("sendtoaddress", first, 0.1, **w)  # unconfirmed

        client = bdk.EsploraClient(f"http://127.0.0.1:{port}")
        wait_for(lambda: client.get_height() == node.call("getblockcount"))
        update = client.full_scan(wallet.start_full_scan().build(), 10, 2)
        wallet.apply_update(update)
        bal = wallet.balance()
        assert bal.confirmed.to_sat() == sats("1.75")
        assert bal.trusted_pending.to_sat() + bal.untrusted_pending.to_sat() == sats("0.1")
        assert wallet.latest_checkpoint().height == node.call("getblockcount")

        # pay the node: built, signed and broadcast by BDK through the API
        to = bdk.Address(miner, bdk.Network.REGTEST).script_pubkey()
        psbt = (bdk.TxBuilder().add_recipient(to, bdk.Amount.from_sat(50_000_000))
                .fee_rate(bdk.FeeRate.from_sat_per_vb(2)).finish(wallet))
        assert wallet.sign(psbt)
        tx = psbt.extract_tx()
        fee = wallet.calculate_fee(tx).to_sat()
        client.broadcast(tx)
        txid = str(tx.compute_txid())
        assert txid in node.call("getrawmempool")
        assert node.call("getmempoolentry", txid)["fees"]["base"] == Decimal(fee) / 10**8
        node.call("generatetoaddress", 1, miner)
        wait_for(lambda: client.get_height() == node.call("getblockcount"))

        wallet.apply_update(client.sync(wallet.start_sync_with_revealed_spks().build(), 2))
        wallet.apply_update(client.full_scan(wallet.start_full_scan().build(), 10, 2))
        bal = wallet.balance()
        assert bal.total.to_sat() == sats("1.85") - 50_000_000 - fee
        assert bal.confirmed.to_sat() == bal.total.to_sat()  # the 0.1 confirmed with it
        # the node agrees: the UTXO set holds exactly that much on the wallet's descriptors
        descs = [wallet.public_descriptor(k) for k in (bdk.KeychainKind.EXTERNAL,
                                                       bdk.KeychainKind.INTERNAL)]
        scan = node.call("scantxoutset", "start", [{"desc": d, "range": 20} for d in descs])
        assert sats(scan["total_amount"]) == bal.total.to_sat()
        status = client.get_tx_status(tx.compute_txid())
        assert status.confirmed and status.block_height == node.call("getblockcount")
        # the rest of BDK's esplora client
        tip = node.call("getbestblockhash")
        bh = bdk.BlockHash.from_string(tip)
        assert str(client.get_tip_hash()) == tip
        assert str(client.get_block_hash(3)) == node.call("getblockhash", 3)
        assert isinstance(client.get_fee_estimates(), dict)
        header = client.get_header_by_hash(bh)
        assert str(header.merkle_root) == node.call("getblockheader", tip)["merkleroot"]
        block = client.get_block_by_hash(bh)
        assert [str(t.compute_txid()) for t in block.txdata] == node.call("getblock", tip)["tx"]
        assert str(client.get_txid_at_block_index(bh, 1)) == node.call("getblock", tip)["tx"][1]
        assert client.get_txid_at_block_index(bh, 99) is None
        proof = client.get_merkle_proof(tx.compute_txid())
        assert proof.block_height == node.call("getblockcount")
        assert proof.pos == node.call("getblock", tip)["tx"].index(txid)
        assert client.get_output_status(tx.compute_txid(), 0).spent is False
        info = client.get_tx_info(tx.compute_txid())
        assert (str(info.txid), info.fee, info.weight) == (
            txid, fee, node.call("getrawtransaction", txid, 1)["weight"])
        assert info.status.block_hash is not None and str(info.status.block_hash) == tip
        history = client.get_address_txs(bdk.Address(first, bdk.Network.REGTEST), None)
        assert {str(t.txid) for t in history} == {
            t["txid"] for t in node.call("listtransactions", "*", 100, **w)
            if t.get("address") == first} | {txid}
