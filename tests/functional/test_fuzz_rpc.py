"""Bad input never breaks the node: every RPC method called with random junk arguments, and
byte-mutated transactions and blocks submitted, must be answered with an ordinary error (never
an internal one), and the node must keep its chain."""

from __future__ import annotations

import random
from decimal import Decimal

from consensus.params import REGTEST
from node.rpc import methods  # noqa: F401  (registers every method)
from node.rpc.registry import REGISTRY
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)
JUNK = [
    None, 0, -1, 1, 2**40, -(2**70), 1.5, Decimal("0.1"), "", "x", "00", "zz" * 32, "ab" * 32,
    "0" * 64, True, False, [], [1], ["a"], {}, {"a": 1}, {"txid": "00" * 32, "vout": 0},
    [{"txid": 5}], ADDR, f"addr({ADDR})", "wpkh(0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d"
    "959f2815b16f81798)", "01000000000000000000", "ffff" * 100,
]


def no_internal_error(node, method, params) -> dict:
    status, reply = node.request({"method": method, "params": params, "id": 1})
    assert isinstance(reply, dict), (method, params, status, reply)
    err = reply.get("error")
    assert not err or err["code"] != -32603, (method, params, err)
    return reply


def test_junk_arguments_and_mutated_data(tmp_path):
    rng = random.Random(20261122)
    with NodeProcess(tmp_path / "n") as node:
        hashes = node.call("generatetoaddress", 110, ADDR)
        for name, m in sorted(REGISTRY.items()):
            if name == "stop":
                continue
            for _ in range(25):
                params = [rng.choice(JUNK) for _ in range(rng.randint(0, len(m.args) + 1))]
                if name.startswith("generate") and params and isinstance(params[0], int):
                    params[0] = min(abs(params[0]), 2)  # keep the chain short
                if name == "getblocktemplate":
                    params = params[:1]  # a long poll would wait for a new block
                if name.startswith("waitfor"):  # timeout (ms, last) 1: 0 or none waits forever
                    params = (params + [None] * len(m.args))[:len(m.args) - 1] + [1]
                if name == "setmocktime":
                    params = [0]  # (a clock far away would only slow the rest down)
                no_internal_error(node, name, params)
        # Mutated versions of a real block and a real transaction.
        block = bytes.fromhex(node.call("getblock", hashes[-1], 0))
        tx = bytes.fromhex(node.call("getblock", hashes[5], 2)["tx"][0]["hex"])
        for _ in range(150):
            for raw, method in ((block, "submitblock"), (tx, "sendrawtransaction"),
                                (tx, "decoderawtransaction")):
                b = bytearray(raw)
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                if rng.random() < 0.3:
                    b = b[: rng.randrange(len(b))]
                no_internal_error(node, method, [b.hex()])
        # The chain still holds (junk generate* calls may have mined a few blocks on top).
        tip_height = node.call("getblockcount")
        assert tip_height >= 110 and node.call("getblockhash", 110) == hashes[-1]
        assert node.call("verifychain", 4, 0) is True
