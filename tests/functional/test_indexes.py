"""The optional indexes in a running minibtcd, as Core's: getindexinfo, getblockfilter,
gettxoutsetinfo from -coinstatsindex at any height, gettxspendingprevout's confirmed spends
from -txospenderindex; kept across restarts, wiped by -reindex only, and a damaged index
database refused at start-up with Core's error."""

from __future__ import annotations

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from consensus.tx import TxOut
from node.index import bip158
from tests.chainbuilder import P2WSH_TRUE, ChainBuilder, spend_tx
from tests.functional.framework import NodeProcess, RPCFailure

INDEXES = ("-txindex", "-blockfilterindex", "-coinstatsindex", "-txospenderindex")


def rpc_error(node, method, *params, **named) -> tuple[int, str]:
    with pytest.raises(RPCFailure) as e:
        node.call(method, *params, **named)
    return e.value.code, e.value.message


def submit(node, blocks) -> None:
    for b in blocks:
        assert node.call("submitblock", b.serialize().hex()) is None


@pytest.fixture(scope="module")
def built():
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101)
    cb1 = blocks[0].txs[0].txid
    tx = spend_tx([(cb1, 0)], [30 * COIN, 19 * COIN])
    tx.vout[1] = TxOut(19 * COIN, P2WSH_TRUE)  # a script no other block has
    tx.rehash()
    blocks.append(cb.next_block(blocks[-1], [tx], fees=COIN))
    return blocks, tx


def test_indexes_in_a_running_node(tmp_path, built):
    blocks, tx = built
    node = NodeProcess(tmp_path / "n", *INDEXES)
    with node:
        submit(node, blocks)
        node.call("syncwithvalidationinterfacequeue")
        info = node.call("getindexinfo")
        assert info == {name: {"synced": True, "best_block_height": 102} for name in (
            "txindex", "basic block filter index", "coinstatsindex", "txospenderindex")}
        assert node.call("getindexinfo", "txindex") == {"txindex": info["txindex"]}
        assert node.call("getindexinfo", "nonexistent") == {}

        # getblockfilter: the BIP158 filter of the block and the chain of headers.
        last = blocks[-1]
        got = node.call("getblockfilter", last.hash[::-1].hex())
        spent = [blocks[0].txs[0].vout[0].script_pubkey]
        assert got["filter"] == bip158.basic_filter(last, spent).hex()
        prev = node.call("getblockfilter", blocks[-2].hash[::-1].hex(), "basic")
        header = bip158.filter_header(bytes.fromhex(got["filter"]),
                                      bytes.fromhex(prev["header"])[::-1])
        assert got["header"] == header[::-1].hex()
        assert rpc_error(node, "getblockfilter", last.hash[::-1].hex(), "extended") == (
            -5, "Unknown filtertype")
        assert rpc_error(node, "getblockfilter", "00" * 32) == (-5, "Block not found")

        # gettxoutsetinfo: from the index (muhash as the scan's), at any height.
        indexed = node.call("gettxoutsetinfo", "muhash")
        scanned = node.call("gettxoutsetinfo", "muhash", None, False)
        for k in ("height", "bestblock", "txouts", "bogosize", "muhash", "total_amount"):
            assert indexed[k] == scanned[k]
        assert "transactions" in scanned and "transactions" not in indexed
        assert indexed["block_info"]["prevout_spent"] == 50
        assert indexed["block_info"]["new_outputs_ex_coinbase"] == 49
        assert indexed["total_unspendable_amount"] == 50  # the genesis block's subsidy
        at50 = node.call("gettxoutsetinfo", "none", 50)
        assert (at50["height"], at50["txouts"]) == (50, 50)
        assert "muhash" not in at50
        by_hash = node.call("gettxoutsetinfo", "muhash", blocks[49].hash[::-1].hex())
        assert by_hash["height"] == 50
        assert rpc_error(node, "gettxoutsetinfo", "hash_serialized_3", 5) == (
            -8, "hash_serialized_3 hash type cannot be queried for a specific block")
        assert rpc_error(node, "gettxoutsetinfo", "muhash", 5, False) == (
            -8, "Cannot set use_index to false when querying for a specific block")
        assert rpc_error(node, "gettxoutsetinfo", "muhash", 500) == (
            -8, "Target block height 500 after current tip 102")

        # gettxspendingprevout: a confirmed spend, from the index.
        out = {"txid": blocks[0].txs[0].txid_hex(), "vout": 0}
        assert node.call("gettxspendingprevout", [out]) == [
            dict(out, spendingtxid=tx.txid_hex(), blockhash=last.hash[::-1].hex())]
        with_tx = node.call("gettxspendingprevout", [out], {"return_spending_tx": True})
        assert with_tx[0]["spendingtx"] == tx.serialize().hex()
        assert node.call("gettxspendingprevout", [out], {"mempool_only": True}) == [out]
        unspent = {"txid": tx.txid_hex(), "vout": 1}
        assert node.call("gettxspendingprevout", [unspent]) == [unspent]

        # scanblocks: the blocks whose filters match the scripts.
        desc = [f"raw({P2WSH_TRUE.hex()})"]
        scan = node.call("scanblocks", "start", desc, 0, None, "basic",
                         {"filter_false_positives": True})
        assert scan == {"from_height": 0, "to_height": 102,
                        "relevant_blocks": [last.hash[::-1].hex()], "completed": True}
        assert node.call("scanblocks", "start", desc, 50, 60)["relevant_blocks"] == []
        assert node.call("scanblocks", "status") is None
        assert node.call("scanblocks", "abort") is False
        assert rpc_error(node, "scanblocks", "start", desc, 200) == (-1, "Invalid start_height")
        assert rpc_error(node, "scanblocks", "start", desc, 10, 5) == (-1, "Invalid stop_height")
        assert rpc_error(node, "scanblocks", "start", desc, 0, 10, "extended") == (
            -5, "Unknown filtertype")

        # The transaction index.
        raw = node.call("getrawtransaction", tx.txid_hex(), True)
        assert raw["blockhash"] == last.hash[::-1].hex()
    log = node.chain_dir / "debug.log"
    db = node.chain_dir / "indexes" / "blockfilter" / "basic" / "db"
    for name in ("txidx", "blkfltbscidx", "coinstatsidx", "txospenderidx"):
        assert f"{name} thread start" in log.read_text()

    # A restart resumes the indexes; -reindex wipes them and they are built again.
    size = len(log.read_text())
    with node:
        assert node.call("getindexinfo")["coinstatsindex"]["best_block_height"] == 102
        text = log.read_text()[size:]
        assert f"Opening LevelDB in {db}" in text and "Wiping LevelDB" not in text
    size = len(log.read_text())
    node.start("-reindex")
    try:
        node.call("syncwithvalidationinterfacequeue")
        text = log.read_text()[size:]
        assert f"Wiping LevelDB in {db}" in text
        assert node.call("getindexinfo", "basic block filter index") == {
            "basic block filter index": {"synced": True, "best_block_height": 102}}
        assert node.call("getblockfilter", last.hash[::-1].hex()) == got
    finally:
        node.stop()

    # A damaged index database stops start-up with Core's error.
    for manifest in (node.chain_dir / "indexes" / "txindex").glob("MANIFEST*"):
        manifest.unlink()
    node.start(wait=False)
    assert node.proc.wait(60) == 1
    out = (node.datadir / "stdout.log").read_text()
    assert "Error: Fatal LevelDB error: Corruption: CURRENT points to a non-existent file" in out
    node.proc = None


def test_without_indexes(tmp_path, built):
    blocks, _ = built
    with NodeProcess(tmp_path / "n") as node:
        submit(node, blocks[:3])
        assert node.call("getindexinfo") == {}
        assert rpc_error(node, "getblockfilter", blocks[0].hash[::-1].hex()) == (
            -1, "Index is not enabled for filtertype basic")
        assert rpc_error(node, "gettxoutsetinfo", "muhash", 1) == (
            -8, "Querying specific block heights requires coinstatsindex")
        out = {"txid": blocks[0].txs[0].txid_hex(), "vout": 0}
        assert node.call("gettxspendingprevout", [out]) == [out]
        assert rpc_error(node, "scanblocks", "start", ["raw(51)"]) == (
            -1, "Index is not enabled for filtertype basic")
        assert rpc_error(node, "gettxspendingprevout", [out], {"mempool_only": False}) == (
            -1, "Mempool lacks a relevant spend, and txospenderindex is unavailable.")


def test_option_errors_stop_start_up_before_anything_changes(tmp_path, built):
    blocks, _ = built
    node = NodeProcess(tmp_path / "n")
    with node:
        submit(node, blocks[:5])
    chainstate = sorted(p.name for p in (node.chain_dir / "chainstate").iterdir())
    node.start("-coinstatsindex", "-reindex-chainstate", wait=False)
    assert node.proc.wait(60) == 1
    node.proc = None
    out = (node.datadir / "stdout.log").read_text()
    assert ("Error: -reindex-chainstate option is not compatible with -coinstatsindex. Please "
            "temporarily disable coinstatsindex while using -reindex-chainstate, or replace "
            "-reindex-chainstate with -reindex to fully rebuild all indexes.") in out
    assert sorted(p.name for p in (node.chain_dir / "chainstate").iterdir()) == chainstate
    with node:
        assert node.call("getblockcount") == 5
