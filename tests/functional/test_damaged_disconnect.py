"""A chain change over damaged block data (issue 18): a block of the active chain whose
stored copy still parses but has one output value flipped (its header, and hash, intact) is
found before anything moves. invalidateblock answers Core's -20 (RPC_DATABASE_ERROR) naming
the blk file; a longer branch given with submitblock is stored but not switched to
("inconclusive", an error in debug.log), preciousblock on it answers -20; the tip and the
UTXO set stay as they were (equal to a replay of the chain), and the node keeps mining."""

from __future__ import annotations

import time

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from node.store.blockfiles import load_xor_key
from tests.chainbuilder import ChainBuilder, spend_tx
from tests.functional.framework import NodeProcess, RPCFailure
from tests.functional.test_kill_chain import ADDR, Replay, hexh, wait_for_height
from tests.unit.test_chain_atomic import flip_output_value
from tests.unit.test_reorg import write_blk_file

RPC_DATABASE_ERROR = -20


def test_chain_changes_over_a_flipped_output_value_change_nothing(tmp_path):
    cb = ChainBuilder()
    main = cb.chain(REGTEST.genesis, 101)
    tx = spend_tx([(main[0].txs[0].txid, 0)], [20 * COIN, 29 * COIN])
    main.append(cb.next_block(main[-1], [tx], fees=COIN))  # height 102
    main += cb.chain(main[-1], 18)  # tip 120: block 102 is deeper than start-up's check
    replay = Replay()
    replay.add(main)
    write_blk_file(tmp_path / "main.dat", main)

    node = NodeProcess(tmp_path / "n")
    node.start(f"-loadblock={tmp_path / 'main.dat'}")
    try:
        wait_for_height(node, len(main))
        node.stop()
        # flip the low bit of tx's first output value in the node's blk file
        blocks_dir = node.chain_dir / "blocks"
        flip_output_value(blocks_dir / "blk00000.dat", load_xor_key(blocks_dir), tx, 20 * COIN)

        node.start()  # (the damage is deeper than the blocks checked at start-up)
        tip = node.call("getbestblockhash")
        digest = node.call("gettxoutsetinfo")["hash_serialized_3"]
        assert digest == replay.digest(main[-1].hash)

        # invalidateblock below the damaged block: Core's -20, nothing moved
        with pytest.raises(RPCFailure) as err:
            node.call("invalidateblock", hexh(main[100].hash))
        assert err.value.code == RPC_DATABASE_ERROR, err.value
        assert "blk00000.dat" in err.value.message and "bad-txnmrklroot" in err.value.message
        assert node.call("getbestblockhash") == tip
        assert node.call("gettxoutsetinfo")["hash_serialized_3"] == digest
        assert node.call("getblockheader", hexh(main[100].hash))["confirmations"] == 20
        mined = node.call("generatetoaddress", 1, ADDR)
        assert node.call("getblockcount") == 121

        # a longer branch from height 101: stored, but the reorg over block 102 is refused
        branch = cb.chain(main[100], 21, tag=b"alt")  # tip 122 > 121
        results = [node.call("submitblock", b.serialize().hex()) for b in branch]
        assert results[-1] == "inconclusive", results[-3:]
        assert node.call("getbestblockhash") == mined[0]
        replay.fetch_active(node)
        digest = node.call("gettxoutsetinfo")["hash_serialized_3"]
        assert digest == replay.digest(bytes.fromhex(mined[0])[::-1])
        with pytest.raises(RPCFailure) as err:  # the same reorg asked for: the same answer
            node.call("preciousblock", hexh(branch[-1].hash))
        assert err.value.code == RPC_DATABASE_ERROR, err.value
        assert node.call("getbestblockhash") == mined[0]
        assert node.call("gettxoutsetinfo")["hash_serialized_3"] == digest

        # the node keeps mining on its chain, and its UTXO set is a replay's
        mined = node.call("generatetoaddress", 2, ADDR)
        assert node.call("getblockcount") == 123
        replay.fetch_active(node)
        assert node.call("gettxoutsetinfo")["hash_serialized_3"] == \
            replay.digest(bytes.fromhex(mined[-1])[::-1])
        deadline = time.time() + 10
        log = ""
        while "cannot reorganise" not in log:
            assert time.time() < deadline, "no error logged for the refused reorg"
            log = (node.chain_dir / "debug.log").read_text(errors="replace")
            time.sleep(0.1)
        line = next(x for x in log.splitlines() if "cannot reorganise" in x)
        assert "blk00000.dat" in line, line
        assert "Traceback" not in log
    finally:
        node.stop()
