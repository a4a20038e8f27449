"""minibtc-net --hosts: each node in a network namespace of its own with its own address on a
bridge (as separate hosts), end to end; skipped where network namespaces cannot be made
(not root, no iproute2)."""

from __future__ import annotations

import json
import os
import shutil
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


def _netem_why() -> str | None:
    if WHY is not None:
        return WHY
    from regtest.hosts import netem_available

    return netem_available()


NETEM = _netem_why()


@pytest.mark.skipif(NETEM is not None, reason=NETEM or "")
def test_link_conditions(folder):
    """`up --delay` on every link, `link A B` on one, shown by status, applied with tc netem
    on the nodes' eth0 (each way), and removed by `link --clear` and `heal`."""
    net_cli(folder, "up", "--nodes", "3", "--topology", "line", "--miners", "0", "--hosts",
            "--delay", "40ms", "--detach")
    net = Network(folder)
    hosts = Hosts(folder, 3)

    def qdiscs(i: int) -> str:
        return subprocess.run(["ip", "netns", "exec", hosts.netns(i), "tc", "qdisc", "show",
                               "dev", "eth0"], capture_output=True, text=True).stdout

    def rtt_ms(i: int, j: int) -> float:
        out = subprocess.run(["ip", "netns", "exec", hosts.netns(i), "ping", "-c", "3", "-i",
                              "0.2", "-q", hosts.addr(j)], capture_output=True, text=True).stdout
        return float(out.rsplit("=", 1)[1].split("/")[1])  # rtt min/avg/max/mdev = ...

    assert "delay 40ms" in qdiscs(1) and "netem" in qdiscs(0)
    assert "links: delay 40ms" in net_cli(folder, "status")
    out = net_cli(folder, "link", "1", "2", "--delay", "100ms", "--jitter", "5ms",
                  "--loss", "0%", "--rate", "10mbit")
    assert "link 1-2: delay 100ms ± 5ms" in out
    assert "delay 100ms" in qdiscs(2) and "delay 40ms" in qdiscs(0)
    if shutil.which("ip") and subprocess.run(["ip", "netns", "exec", hosts.netns(0), "ping",
                                              "-c", "1", hosts.addr(1)],
                                             capture_output=True).returncode == 0:
        assert rtt_ms(0, 1) >= 75  # 40 ms each way
    status = json.loads(net_cli(folder, "status", "--json"))
    assert status["link_conditions"]["1-2"]["delay"] == "100ms"
    wait_until(lambda: net.call(1, "getconnectioncount") == 2, 20, "links through netem")
    net_cli(folder, "link", "1", "2", "--clear")
    assert "delay 100ms" not in qdiscs(2) and "delay 40ms" in qdiscs(1)
    net_cli(folder, "heal")
    assert "netem" not in qdiscs(0) + qdiscs(1) + qdiscs(2)
    net.reload()
    assert net.describe_links() == [] and "link" not in net_cli(folder, "status")
