"""minibtc-net --hosts: each node in a network namespace of its own with its own address on a
bridge (as separate hosts), end to end; skipped where network namespaces cannot be made
(not root, no iproute2)."""

from __future__ import annotations

import json
import os
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
    name = f"mbprobe{os.getpid()}"  # (every test worker probes at collection)
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
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


def _conditions_why() -> str | None:
    if WHY is not None:
        return WHY
    from regtest.hosts import conditions_available

    return conditions_available()


CONDITIONS = _conditions_why()


@pytest.mark.skipif(CONDITIONS is not None, reason=CONDITIONS or "")
def test_link_conditions(folder):
    """`up --delay` on every link, `link A B` on one, shown by status, removed by `link
    --clear` and `heal`, measured as the nodes see them: P2P ping times. Applied with tc netem
    where the kernel has sch_netem, else by the userspace emulator (regtest/linkemu.py; this
    project's machine and CI), which status names, whose death status reports, and which
    `down` leaves nothing of."""
    from regtest.hosts import netem_available
    from regtest.linkemu import read_state, running

    net_cli(folder, "up", "--nodes", "3", "--topology", "line", "--miners", "0", "--hosts",
            "--delay", "40ms", "--detach")
    net = Network(folder)
    hosts = Hosts(folder, 3)
    netem = netem_available() is None

    def peer(i: int, j: int) -> dict:
        return next(p for p in net.call(i, "getpeerinfo")
                    if p["addr"].split(":")[0] == hosts.addr(j))

    def rtt(i: int, j: int) -> float:
        """Node i's round trip to node j, a P2P ping asked for now (seconds)."""
        wait_until(lambda: "pingwait" not in peer(i, j), 10, "no ping in flight")
        net.call(i, "ping")
        wait_until(lambda: "pingwait" not in peer(i, j), 10, f"node {i}'s ping of node {j}")
        return peer(i, j)["pingtime"]

    def qdiscs(i: int) -> str:
        return subprocess.run(["ip", "netns", "exec", hosts.netns(i), "tc", "qdisc", "show",
                               "dev", "eth0"], capture_output=True, text=True).stdout

    def devices(i: int) -> str:
        return subprocess.run(["ip", "-n", hosts.netns(i), "-o", "link"], capture_output=True,
                              text=True).stdout

    wait_until(lambda: net.call(1, "getconnectioncount") == 2, 20, "the links up")
    assert 0.075 <= rtt(0, 1) < 0.2 and 0.075 <= rtt(2, 1) < 0.2  # 40 ms each way
    status = net_cli(folder, "status")
    assert "links: delay 40ms (every link of the topology)" in status
    if netem:
        assert "delay 40ms" in qdiscs(1) and "netem" in qdiscs(0)
    else:
        assert "links emulated in userspace" in status
        assert hosts.tun(0, 1) in devices(0) and hosts.tun(1, 0) in devices(1)
    # the nodes' addresses are what they are without conditions (node 1 dials 0 and 2)
    assert peer(1, 0)["addr"] == f"{hosts.addr(0)}:18444"
    assert peer(1, 0)["addrbind"].split(":")[0] == hosts.addr(1)
    assert peer(0, 1)["addrbind"] == f"{hosts.addr(0)}:18444" and peer(0, 1)["inbound"]

    assert "link 0-1: delay 100ms" in net_cli(folder, "link", "0", "1", "--delay", "100ms")
    assert 0.19 <= rtt(0, 1) < 0.35 and 0.075 <= rtt(1, 2) < 0.2
    out = net_cli(folder, "link", "1", "2", "--delay", "100ms", "--jitter", "5ms",
                  "--loss", "0%", "--rate", "10mbit")
    assert "link 1-2: delay 100ms ± 5ms, loss 0%, rate 10mbit" in out
    assert 0.18 <= rtt(2, 1) < 0.35
    status = json.loads(net_cli(folder, "status", "--json"))
    assert status["link_conditions"]["1-2"]["delay"] == "100ms"
    if netem:
        assert "delay 100ms" in qdiscs(2) and "delay 40ms" not in qdiscs(0)
    else:
        assert status["link_emulator"]["running"]
        assert status["link_emulator"]["links"]["1-2"]["rate"] == "10mbit"
    net.mine(0, 1)  # a block crosses both slow links
    wait_until(lambda: net.call(2, "getblockcount") == 1, 10, "the block at node 2")

    net_cli(folder, "link", "0", "1", "--clear")  # none on 0-1, not even the default
    assert rtt(0, 1) < 0.05 and 0.18 <= rtt(1, 2) < 0.35
    if not netem:  # the emulator dies: no conditions left, and status says so
        os.kill(read_state(folder)["pid"], 9)
        wait_until(lambda: not running(read_state(folder)), 5, "the emulator gone")
        assert "the link emulator" in net_cli(folder, "status") and rtt(1, 2) < 0.05
        wait_until(lambda: hosts.tun(1, 2) not in devices(1), 5, "its tun devices gone")
        net_cli(folder, "link", "1", "2", "--delay", "100ms")  # (sets them all again)
        assert 0.19 <= rtt(1, 2) < 0.35
    net_cli(folder, "heal")
    assert rtt(1, 2) < 0.05
    if netem:
        assert "netem" not in qdiscs(0) + qdiscs(1) + qdiscs(2)
    else:
        assert read_state(folder) is None and f"mb{hosts.tag}t" not in devices(1)
    net.reload()
    assert net.describe_links() == [] and "link" not in net_cli(folder, "status")
    net_cli(folder, "down")
    assert daemons_of(folder) == [] and hosts.leftovers() == []
