"""A rescan never freezes the RPC server (issue 18 #4): while a mounted wallet rescans, with
its own large requests back to the node, other wallet calls still answer promptly."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from consensus.params import REGTEST
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, RPCFailure
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)


def test_other_calls_answer_during_a_rescan(tmp_path):
    with NodeProcess(tmp_path / "n", "-rpcthreads=2") as node:
        node.create_wallet()
        for _ in range(4):
            node.call("generatetoaddress", 500, ADDR)
        with ThreadPoolExecutor(8) as pool:
            t0 = time.time()
            rescan = pool.submit(node.call, "rescanblockchain", 0, wallet="default")
            others = [pool.submit(node.call, "getnewaddress", wallet="default")
                      for _ in range(3)] + [pool.submit(node.call, "getblockcount")
                                            for _ in range(3)]
            for f in others:
                f.result(timeout=60)
            assert rescan.result(timeout=120)["stop_height"] == 2000
        assert time.time() - t0 < 60  # (a deadlock waited for the 120 s client timeout)


def test_scanning_progress_and_abortrescan(tmp_path):
    """Core's rescan controls: getwalletinfo's `scanning` shows a running rescan's duration and
    progress, abortrescan stops it (the rescan fails with Core's -1 'Rescan aborted by user.'),
    and the wallet works on afterwards; with nothing scanning, abortrescan answers false."""
    with NodeProcess(tmp_path / "n") as node:
        node.create_wallet()
        w = dict(wallet="default")
        assert node.call("abortrescan", **w) is False
        assert node.call("getwalletinfo", **w)["scanning"] is False
        for _ in range(8):
            node.call("generatetoaddress", 500, ADDR)
        for _ in range(3):  # (a rescan that ends before it is stopped is started again)
            with ThreadPoolExecutor(1) as pool:
                rescan = pool.submit(node.call, "rescanblockchain", 0, **w)
                scanning = False
                while not rescan.done():
                    scanning = node.call("getwalletinfo", **w)["scanning"]
                    if scanning:
                        break
                    time.sleep(0.005)
                aborted = bool(scanning) and node.call("abortrescan", **w)
                try:
                    result = rescan.result(timeout=120)
                except RPCFailure as e:
                    result = e
            if aborted:
                break
        assert aborted, "no running rescan was seen and stopped in 3 attempts"
        assert set(scanning) == {"duration", "progress"}
        assert isinstance(scanning["duration"], int) and scanning["duration"] >= 0
        assert 0 <= scanning["progress"] <= 1
        assert isinstance(result, RPCFailure), result
        assert (result.code, result.message) == (-1, "Rescan aborted by user.")
        assert node.call("getwalletinfo", **w)["scanning"] is False
        assert node.call("abortrescan", **w) is False
        assert node.call("rescanblockchain", 3990, **w) == {"start_height": 3990,
                                                             "stop_height": 4000}
