"""minibtc-net --hosts: each node in a network namespace of its own with its own address on a
bridge (as separate hosts), end to end; skipped where network namespaces cannot be made
(not root, no iproute2)."""

from __future__ import annotations

import subprocess

import pytest

from regtest.hosts import Hosts, available
from regtest.network import Network
from tests.functional.netutil import daemons_of, net_cli, wait_until
from wallet.nodeclient import NodeRPCError


def _can_make_namespaces() -> str | None:
    why = available()
    if why is not None:
        return why
    r = subprocess.run(["ip", "netns", "add", "mbprobe"], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", "mbprobe"], capture_output=True)
    return None if r.returncode == 0 else f"cannot create a network namespace: {r.stderr}"


WHY = _can_make_namespaces()
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")


def test_nodes_as_separate_hosts(folder):
    net_cli(folder, "up", "--nodes", "3", "--topology", "line", "--miners", "1",
            "--interval", "0", "--mine-on-tx", "--hosts", "--detach")
    net = Network(folder)
    hosts = Hosts(folder, 3)
    assert [net.host(i) for i in range(3)] == [hosts.addr(i) for i in range(3)]
    assert all(net.spec.p2p_ports[i] == 18444 for i in range(3))  # each its own address
    net_cli(folder, "mine", "101", "--node", "2")
    wait_until(lambda: net.call(0, "getblockcount") == 101, 30, "blocks across the bridge")
    peers = net.call(1, "getpeerinfo")
    assert sorted(p["addr"].split(":")[0] for p in peers) == [hosts.addr(0), hosts.addr(2)]
    assert {p["addrbind"].split(":")[0] for p in peers} == {hosts.addr(1)}
    # a payment, mined by the miner on a waiting transaction, and a partition across hosts
    txid = net.send(2, 0, "3")

    def confirmations() -> int:
        try:
            return net.call(0, "gettransaction", txid, wallet=True)["confirmations"]
        except NodeRPCError:  # (not seen by node 0's wallet yet)
            return -1

    wait_until(lambda: confirmations() >= 1, 60, "the payment confirmed")
    net_cli(folder, "partition", "0", "1,2")
    wait_until(lambda: net.call(0, "getconnectioncount") == 0, 10, "node 0 cut off")
    net_cli(folder, "heal")
    wait_until(lambda: net.call(0, "getconnectioncount") == 1, 10, "healed")
    net_cli(folder, "down")
    assert daemons_of(folder) == [] and hosts.leftovers() == []
