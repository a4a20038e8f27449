"""Blockchain RPCs as Bitcoin Core answers them: deployments (getdeploymentinfo, BIP9
signalling in mined blocks), getchaintxstats, getblockstats, waitfor*, submitheader,
gettxoutproof/verifytxoutproof, echo/echojson with named arguments, help, setmocktime's range,
the coinbase Core's miner builds, and the start-up check against a tip from the future."""

from __future__ import annotations

import threading

import pytest

from consensus.params import REGTEST
from tests.functional.framework import NodeProcess, RPCFailure

ADDR = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
GENESIS_TIME = REGTEST.genesis.header.time
HEIGHT = 150


def fails(code: int, text: str, fn, *args, **named) -> None:
    with pytest.raises(RPCFailure) as e:
        fn(*args, **named)
    assert e.value.code == code and text in str(e.value), (e.value.code, str(e.value))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("bc") / "node")
    n.start()
    # One block every ten minutes from the genesis block, as rpc_blockchain.py mines them.
    for i in range(HEIGHT):
        n.call("setmocktime", GENESIS_TIME + (i + 1) * 600)
        n.call("generatetoaddress", 1, ADDR)
    yield n
    n.stop()


def test_deployments_and_signalling(node):
    info = node.call("getdeploymentinfo")
    assert info["height"] == HEIGHT and info["hash"] == node.call("getbestblockhash")
    assert info["script_flags"] == ["CHECKLOCKTIMEVERIFY", "CHECKSEQUENCEVERIFY", "DERSIG",
                                    "NULLDUMMY", "P2SH", "TAPROOT", "WITNESS"]
    deps = info["deployments"]
    assert deps["bip34"] == {"type": "buried", "active": True, "height": 1}
    assert deps["segwit"] == {"type": "buried", "active": True, "height": 0}
    dummy = deps["testdummy"]
    assert dummy["active"] is False and dummy["type"] == "bip9"
    bip9 = dummy["bip9"]
    assert (bip9["bit"], bip9["status"], bip9["status_next"], bip9["since"]) == (
        28, "started", "started", 144)
    assert bip9["statistics"] == {"period": 144, "threshold": 108, "elapsed": HEIGHT - 143,
                                  "count": HEIGHT - 143, "possible": True}
    assert bip9["signalling"] == "#" * (HEIGHT - 143)
    # Blocks of the first period do not signal (the deployment was only defined then).
    assert node.call("getblockheader", node.call("getblockhash", 143))["version"] == 0x20000000
    assert node.call("getblockheader", node.call("getblockhash", 144))["version"] == 0x30000000
    # At an earlier block.
    early = node.call("getdeploymentinfo", node.call("getblockhash", 10))
    assert early["deployments"]["testdummy"]["bip9"]["status"] == "defined"
    assert "statistics" not in early["deployments"]["testdummy"]["bip9"]
    fails(-5, "Block not found", node.call, "getdeploymentinfo", "00" * 32)


def test_coinbase_as_cores_miner(node):
    block = node.call("getblock", node.call("getblockhash", 20), 2)
    cb = block["tx"][0]
    assert cb["locktime"] == 19 and cb["vin"][0]["sequence"] == 0xFFFFFFFE
    assert block["coinbase_tx"] == {"version": 2, "locktime": 19, "sequence": 0xFFFFFFFE,
                                    "coinbase": cb["vin"][0]["coinbase"],
                                    "witness": "00" * 32}


def test_getchaintxstats(node):
    stats = node.call("getchaintxstats")
    b1 = node.call("getblockheader", node.call("getblockhash", 1))
    tip = node.call("getblockheader", node.call("getbestblockhash"))
    assert stats["txcount"] == HEIGHT + 1 and stats["time"] == tip["time"]
    assert stats["window_final_block_height"] == HEIGHT
    assert stats["window_block_count"] == HEIGHT - 1 == stats["window_tx_count"]
    assert stats["window_interval"] == tip["mediantime"] - b1["mediantime"]
    one = node.call("getchaintxstats", blockhash=b1["hash"])
    assert one["txcount"] == 2 and one["window_block_count"] == 0
    assert "window_tx_count" not in one and "txrate" not in one
    fails(-8, "Invalid block count: should be between 0 and the block's height - 1",
          node.call, "getchaintxstats", HEIGHT)
    fails(-5, "Block not found", node.call, "getchaintxstats", blockhash="00" * 32)


def test_getblockstats(node):
    stats = node.call("getblockstats", 1)
    assert stats["height"] == 1 and stats["txs"] == 1 and stats["ins"] == 0
    # Two outputs (the payment and the witness commitment), one of them unspendable; each
    # UTXO entry counts its output's size and 40 bytes.
    assert stats["utxo_increase"] == 2 and stats["utxo_increase_actual"] == 1
    assert stats["utxo_size_inc_actual"] == 8 + 1 + 22 + 40
    assert stats["subsidy"] == 50 * 10**8
    assert node.call("getblockstats", 1, ["minfee", "maxfee"]) == {"maxfee": 0, "minfee": 0}
    genesis = node.call("getblockstats", 0)
    assert genesis["utxo_increase"] == 1 and genesis["utxo_size_inc"] == 116
    assert genesis["utxo_increase_actual"] == 0
    fails(-8, "Invalid selected statistic 'nope'", node.call, "getblockstats", 1, ["nope"])
    fails(-8, "Target block height -1 is negative", node.call, "getblockstats", -1)
    fails(-8, f"Target block height {HEIGHT + 1} after current tip {HEIGHT}",
          node.call, "getblockstats", HEIGHT + 1)


def test_wait_for_blocks(node):
    tip = node.call("getbestblockhash")
    height = node.call("getblockcount")
    assert node.call("waitforblockheight", height + 5, 100) == {"hash": tip, "height": height}
    assert node.call("waitforblock", "11" * 32, 100)["hash"] == tip
    fails(-1, "Negative timeout", node.call, "waitfornewblock", -1)
    got = {}
    # (with the tip it knows: the thread may call only after the block below is mined)
    waiter = threading.Thread(
        target=lambda: got.update(node.call("waitfornewblock", 30000, tip)))
    waiter.start()
    node.call("setmocktime", GENESIS_TIME + (HEIGHT + 1) * 600)
    new = node.call("generatetoaddress", 1, ADDR)[0]
    waiter.join(30)
    assert got == {"hash": new, "height": height + 1}
    # current_tip already outdated: answers at once.
    assert node.call("waitfornewblock", 0, tip)["hash"] == new
    node.call("invalidateblock", new)
    node.call("reconsiderblock", new)


def test_submitheader(node):
    block = node.call("generateblock", ADDR, [], False)
    node.call("submitheader", block["hex"])
    info = node.call("getblockchaininfo")
    assert info["headers"] == info["blocks"] + 1
    fails(-1, "Block not available (not fully downloaded)", node.call, "getblock",
          block["hash"])
    fails(-1, "Block not available (not fully downloaded)", node.call, "getblockstats",
          block["hash"])
    fails(-22, "Block header decode failed", node.call, "submitheader", "00")
    orphan = "00000020" + "11" * 32 + block["hex"][72:160]
    fails(-25, f"Must submit previous header ({'11' * 32}) first", node.call,
          "submitheader", orphan)
    node.call("submitblock", block["hex"])  # the data completes it
    assert node.call("getbestblockhash") == block["hash"]


def test_txoutproof(node):
    blockhash = node.call("getblockhash", 5)
    coinbase = node.call("getblock", blockhash)["tx"][0]
    proof = node.call("gettxoutproof", [coinbase])
    assert node.call("verifytxoutproof", proof) == [coinbase]
    assert node.call("verifytxoutproof", node.call("gettxoutproof", [coinbase], blockhash)) == [
        coinbase]
    fails(-5, "Transaction not yet in block", node.call, "gettxoutproof", ["22" * 32])
    fails(-8, "Parameter 'txids' cannot be empty", node.call, "gettxoutproof", [])
    fails(-8, "Invalid parameter, duplicated txid", node.call, "gettxoutproof",
          [coinbase, coinbase])
    other = node.call("getblock", node.call("getblockhash", 6))["tx"][0]
    fails(-5, "Not all transactions found in specified or retrieved block", node.call,
          "gettxoutproof", [coinbase, other])


def test_echo_help_and_mocktime(node):
    assert node.call("echojson", arg9=None) == [None] * 10
    assert node.call("echojson", arg1=1) == [None, 1]
    assert node.call("echo", "a", None) == ["a", None]
    fails(-8, "Parameter arg1 specified twice both as positional and named argument",
          node.call, "echojson", args=[0, None], arg1=1)
    assert node.call("help", "generate") == (
        "generate\n\nhas been replaced by the -generate cli option. Refer to -help for more "
        "information.\n")
    assert "setmocktime" not in node.call("help")
    fails(-8, "Mocktime must be in the range [0, 4294967295], not 4294967296.",
          node.call, "setmocktime", 2**32)


def test_tip_from_the_future_refuses_to_start(tmp_path):
    n = NodeProcess(tmp_path / "n")
    with n:
        n.call("setmocktime", 2_000_000_000)
        n.call("generatetoaddress", 1, ADDR)
    n.start(f"-mocktime={2_000_000_000 - 2 * 60 * 60 - 1}", wait=False)
    assert n.proc.wait(60) != 0
    out = (n.datadir / "stdout.log").read_text()
    assert ("The block database contains a block which appears to be from the future. This "
            "may be due to your computer's date and time being set incorrectly. Only rebuild "
            "the block database if you are sure that your computer's date and time are "
            "correct.\nPlease restart with -reindex or -reindex-chainstate to recover.") in out
    n.proc = None
    with n.start(f"-mocktime={2_000_000_000 - 2 * 60 * 60}"):
        assert n.call("getblockcount") == 1
