"""A pruned node (NODE_NETWORK_LIMITED without NODE_NETWORK) that mines hundreds of blocks in
one generatetoaddress call: its peers keep up and sync it all. As Core's, they never ask a
limited peer for blocks more than NODE_NETWORK_LIMITED_MIN_BLOCKS - 2 below its best block, so
a peer that fell that far behind would stall for good; as Core's miner (which cannot run ahead
of its validation-interface queue while its message handler serves peers), ours lets the P2P
loop take each new tip before mining the next block. (Core's rpc_rawtransaction.py mines 400
blocks on a pruned node this way.)"""

from __future__ import annotations

import time

from consensus.params import REGTEST
from node.p2p import messages as m
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
from tests.functional.p2p_peer import RawPeer
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)
NOBAN = "-whitelist=noban,in,out@127.0.0.1"


def _wait_height(nodes, height: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(n.call("getblockcount") >= height for n in nodes):
            return True
        time.sleep(0.05)
    return False


def test_peers_keep_up_with_a_pruned_miner(tmp_path):
    full0 = NodeProcess(tmp_path / "n0", NOBAN)
    full1 = NodeProcess(tmp_path / "n1", NOBAN)
    pruned = NodeProcess(tmp_path / "n2", NOBAN, "-fastprune", "-prune=1")
    with full0, full1, pruned:
        full0.call("addnode", full1.p2p_addr, "onetry")
        full1.call("addnode", pruned.p2p_addr, "onetry")
        full0.call("addnode", pruned.p2p_addr, "onetry")
        deadline = time.time() + 30
        while any(len(n.call("getpeerinfo")) < 2 for n in (full0, full1, pruned)):
            assert time.time() < deadline, "the nodes did not connect"
            time.sleep(0.05)
        full0.call("generatetoaddress", 200, ADDR)  # (a full node takes the others out of IBD)
        assert _wait_height([full1, pruned], 200, 60)
        services = {p["addr"]: p["servicesnames"] for p in full0.call("getpeerinfo")}
        limited = services[pruned.p2p_addr]
        assert "NETWORK_LIMITED" in limited and "NETWORK" not in limited
        for i in range(3):  # the pruned node's blocks reach the others, one at a time
            pruned.call("generatetoaddress", 1, ADDR)
            assert _wait_height([full0, full1], 201 + i, 30)
        # Then in bursts of 100 (each generatetoaddress paced by the P2P loop): peers that
        # fall 286 blocks behind a pruned node cannot fetch from it any more (Core's limited
        # peer window), which one burst of 400 did on a loaded CI machine.
        for height in (303, 403, 503, 603):
            tip = pruned.call("generatetoaddress", 100, ADDR)[-1]
            assert _wait_height([full0, full1], height, 60), \
                [n.call("getblockcount") for n in (full0, full1)]
        assert full0.call("getbestblockhash") == full1.call("getbestblockhash") == tip


def test_each_mined_block_reaches_the_p2p_loop_before_the_next(tmp_path):
    """generatetoaddress waits, block after block, until the P2P loop has taken the new tip
    (Core's LimitValidationInterfaceQueue): a peer is told of every block as our new tip, one
    announcement each, instead of the loop catching up once the miner is done."""
    with NodeProcess(tmp_path / "n") as node:
        node.call("generatetoaddress", 1, ADDR)  # (out of the initial download: we announce)
        peer = RawPeer(node.p2pport)
        peer.handshake(start_height=1)
        peer.wait_for("ping")  # (sent once our verack is handled: we are a peer now)
        hashes = node.call("generatetoaddress", 60, ADDR)
        announced = []
        try:
            while len(announced) < len(hashes):
                cmd, msg = peer.read_message(5)
                if cmd == "inv":
                    announced += [i.hash[::-1].hex() for i in msg.items
                                  if i.type == m.MSG_BLOCK]
        except TimeoutError:
            pass
        peer.close()
        assert announced == hashes
