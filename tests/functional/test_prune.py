"""Pruning as Core's: -prune=1 with pruneblockchain deletes whole block/undo files below the
last 288 blocks, the pruned blocks answer "pruned data", a restart keeps the pruned chain,
getblockfrompeer fetches a pruned block back from a peer, and -prune's option errors."""

from __future__ import annotations

import time

import pytest

from consensus.params import REGTEST
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.test_core_startup import start_fails
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)


def test_prune_and_fetch_back(tmp_path):
    full = NodeProcess(tmp_path / "full")
    pruned = NodeProcess(tmp_path / "pruned", "-fastprune", "-prune=1")
    with full, pruned:
        hashes = full.call("generatetoaddress", 600, ADDR)
        pruned.call("addnode", full.p2p_addr, "onetry")
        deadline = time.time() + 120
        while pruned.call("getblockcount") < 600:
            assert time.time() < deadline, "sync did not finish"
            time.sleep(0.2)
        blocks = pruned.chain_dir / "blocks"
        before = sorted(p.name for p in blocks.glob("blk*.dat"))
        assert len(before) > 2  # 64 KiB files with -fastprune
        with pytest.raises(RPCFailure, match="Blockchain is shorter than the attempted"):
            pruned.call("pruneblockchain", 601)
        height = pruned.call("pruneblockchain", 600)  # capped at tip - 288
        assert 0 < height <= 600 - 288
        after = sorted(p.name for p in blocks.glob("blk*.dat"))
        assert "blk00000.dat" not in after and len(after) < len(before)
        assert not (blocks / "rev00000.dat").exists()
        with pytest.raises(RPCFailure, match=r"Block not available \(pruned data\)"):
            pruned.call("getblock", hashes[1])
        info = pruned.call("getblockchaininfo")
        assert info["pruned"] is True and info["pruneheight"] == height + 1
        assert pruned.call("getblock", hashes[-1])["height"] == 600  # recent ones stay
        peer = pruned.call("getpeerinfo")[0]["id"]
        with pytest.raises(RPCFailure, match="Block already downloaded"):
            pruned.call("getblockfrompeer", hashes[-1], peer)
        with pytest.raises(RPCFailure, match="Peer does not exist"):
            pruned.call("getblockfrompeer", hashes[1], peer + 100)
        assert pruned.call("getblockfrompeer", hashes[1], peer) == {}
        deadline = time.time() + 30
        while True:
            try:
                assert pruned.call("getblock", hashes[1])["height"] == 2
                break
            except RPCFailure:
                assert time.time() < deadline, "the block did not come back"
                time.sleep(0.1)
    with pruned:  # a restart keeps the pruned chain and its tip
        assert pruned.call("getblockcount") == 600
        pruned.call("generatetoaddress", 1, ADDR)
    with full:
        with pytest.raises(RPCFailure, match="not in prune mode"):
            full.call("pruneblockchain", 10)


@pytest.mark.parametrize("args, message", [
    (["-prune=5"], "Prune configured below the minimum of 550 MiB"),
    (["-prune=550", "-txindex"], "Prune mode is incompatible with -txindex."),
])
def test_prune_option_errors(tmp_path, args, message):
    assert message in start_fails(NodeProcess(tmp_path / "n"), *args)
