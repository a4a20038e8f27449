"""A rescan never freezes the RPC server (issue 18 #4): while a mounted wallet rescans, with
its own large requests back to the node, other wallet calls still answer promptly."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from consensus.params import REGTEST
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
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
