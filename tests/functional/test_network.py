"""minibtc-net end to end, real processes: a 4-node network partitioned 2+2 with both halves
mining, then healed (every node on the most-work chain, the losing side's transaction back in
the mempools and confirmed, every wallet balance equal to its coins in the UTXO set); a
network stopped and brought up again resumes where it was; whatever ends the launcher
(Ctrl-C with or without a pipe, SIGTERM, SIGHUP from a closed terminal, a broken stdout)
leaves nothing running; a node that exits is shown down while the others run, and is
stopped, started, restarted and killed on its own; miners find blocks on their own and on
waiting transactions."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal

import pytest

from regtest.network import Network
from tests.functional.framework import ROOT, cli_env
from tests.functional.netutil import daemons_of, net_cli, wait_until


def wallet_matches_utxo_set(net: Network, i: int) -> Decimal:
    """The wallet's confirmed + immature balance must be what the UTXO set holds for its
    descriptors (an independent count). Returns it."""
    bal = net.call(i, "getbalances", wallet=True)["mine"]
    descs = [d["desc"] for d in net.call(i, "listdescriptors", wallet=True)["descriptors"]]
    scan = net.call(i, "scantxoutset", "start",
                    [{"desc": d, "range": [0, 200]} for d in descs])
    wallet_total = Decimal(str(bal["trusted"])) + Decimal(str(bal["immature"]))
    assert wallet_total == Decimal(str(scan["total_amount"])), (i, bal, scan["total_amount"])
    return wallet_total


def test_partition_both_halves_mine_heal_and_resume(folder):
    net_cli(folder, "up", "--nodes", "4", "--topology", "line", "--miners", "0", "--detach")
    net = Network(folder)
    assert [net.call(i, "getconnectioncount") for i in range(4)] == [1, 2, 2, 1]
    net_cli(folder, "mine", "101", "--node", "0")
    # Node 3 mines on node 0's blocks: it must have them first (else two chains of equal
    # work, and each node keeps the one it saw first).
    wait_until(lambda: net.call(3, "getblockcount") == 101, 30, "node 0's blocks at node 3")
    net_cli(folder, "mine", "101", "--node", "3")
    wait_until(lambda: len({net.call(i, "getbestblockhash") for i in range(4)}) == 1, 30,
               "shared start")
    out = net_cli(folder, "partition", "0,1", "2,3")
    assert "0,1 | 2,3" in out
    wait_until(lambda: net.call(1, "getconnectioncount") == 1
               and net.call(2, "getconnectioncount") == 1, 10, "the cut")
    # The left half pays node 1 and confirms it; the right half mines more.
    txid = net_cli(folder, "send", "0", "1", "2.5").strip()
    net_cli(folder, "mine", "2", "--node", "0")
    net_cli(folder, "mine", "5", "--node", "3")
    wait_until(lambda: net.call(1, "getblockcount") == 204 and net.call(2, "getblockcount")
               == 207, 30, "each half on its own chain")
    assert net.call(1, "gettransaction", txid, wallet=True)["confirmations"] == 2
    status = json.loads(net_cli(folder, "status", "--json"))
    assert [r["height"] for r in status["nodes"]] == [204, 204, 207, 207]
    net_cli(folder, "heal")
    wait_until(lambda: len({net.call(i, "getbestblockhash") for i in range(4)}) == 1, 60,
               "one chain again")
    assert net.call(0, "getblockcount") == 207  # the most work wins
    # The left side's payment lost its block: it is back in every mempool...
    wait_until(lambda: all(txid in net.call(i, "getrawmempool") for i in range(4)), 30,
               "the payment back in the mempools")
    assert net.call(1, "gettransaction", txid, wallet=True)["confirmations"] == 0
    # ... and confirmed by the next block, whichever side mines it.
    net_cli(folder, "mine", "1", "--node", "2")
    wait_until(lambda: all(net.call(i, "getrawmempool") == [] for i in range(4)), 30,
               "confirmed")
    wait_until(lambda: net.call(1, "gettransaction", txid, wallet=True)["confirmations"] == 1,
               30, "node 1's wallet sees it confirmed")
    before = [wallet_matches_utxo_set(net, i) for i in range(4)]
    assert before[1] == Decimal("2.5")
    tip = net.call(0, "getbestblockhash")
    # Stopped and brought up again, it resumes where it was.
    net_cli(folder, "down")
    assert daemons_of(folder) == []
    net_cli(folder, "up", "--detach")
    assert net.call(3, "getbestblockhash") == tip
    wait_until(lambda: [net.call(i, "getconnectioncount") for i in range(4)] == [1, 2, 2, 1],
               10, "links again")
    assert [wallet_matches_utxo_set(net, i) for i in range(4)] == before


def test_ctrl_c_stops_everything(folder):
    proc = subprocess.Popen([sys.executable, "-m", "regtest.cli", "up", "--dir", str(folder),
                             "--nodes", "2", "--miners", "1", "--interval", "0.5"],
                            cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        net = Network(folder)
        wait_until(lambda: net.read_run() is not None and net.read_run()["ready"], 120, "up")
        assert len(daemons_of(folder)) == 3  # two nodes and a miner
        wait_until(lambda: net.call(1, "getblockcount") >= 2, 60, "the miner's blocks")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Stopping the network" in out and "Stopped." in out
    assert daemons_of(folder) == [] and not (folder / "run.json").exists()


def test_miner_on_waiting_transactions(folder):
    net_cli(folder, "up", "--nodes", "2", "--miners", "1", "--interval", "0", "--mine-on-tx",
            "--detach")
    net = Network(folder)
    net_cli(folder, "mine", "101", "--node", "1")
    wait_until(lambda: net.call(0, "getblockcount") == 101, 30, "sync")
    time.sleep(1)
    assert net.call(0, "getblockcount") == 101  # nothing waits: no block
    address = net.call(0, "getnewaddress", wallet=True)
    out = net_cli(folder, "faucet", address, "1")
    txid = out.split()[0]
    wait_until(lambda: net.call(0, "getblockcount") == 102, 30, "a block for the payment")
    wait_until(lambda: txid in net.call(0, "getblock", net.call(0, "getbestblockhash"))["tx"],
               30, "the payment in it")
    assert "found block" in (folder / "miner0.log").read_text()


def test_cli_errors(folder):
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "status", "--dir", str(folder)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "no network in" in r.stderr
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "up", "--dir", str(folder),
                        "--topology", "blob"], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True)
    assert r.returncode == 1 and "unknown topology" in r.stderr


def test_partition_again_restores_what_the_new_groups_keep(folder):
    net_cli(folder, "up", "--nodes", "4", "--topology", "line", "--miners", "0", "--detach")
    net = Network(folder)
    net_cli(folder, "partition", "0,1", "2,3")
    wait_until(lambda: net.call(1, "getconnectioncount") == 1, 10, "cut")
    net_cli(folder, "partition", "0", "1,2,3")  # 1-2 are together again, 0-1 apart
    wait_until(lambda: [net.call(i, "getconnectioncount") for i in range(4)] == [0, 1, 2, 1],
               10, "the new grouping")


def test_down_after_the_supervisor_died(folder):
    net_cli(folder, "up", "--nodes", "2", "--miners", "1", "--interval", "30", "--detach")
    net = Network(folder)
    run = net.read_run()
    os.kill(run["supervisor"], signal.SIGKILL)  # no clean-up at all
    wait_until(lambda: net.read_run() is None, 10, "supervisor gone")
    # its nodes are still there (its miner stops by itself once it sees its parent gone,
    # which may already have happened)
    assert len(daemons_of(folder)) in (2, 3)
    out = net_cli(folder, "down")
    assert "Stopped 2 node(s)" in out
    wait_until(lambda: daemons_of(folder) == [], 30, "nothing left")
    assert not (folder / "run.json").exists()
    net_cli(folder, "up", "--detach")  # and it comes back
    assert net.call(0, "getblockcount") >= 0


def _row(folder, i: int) -> dict:
    return json.loads(net_cli(folder, "status", "--json"))["nodes"][i]


def test_a_node_down_alone_and_per_node_control(folder):
    net_cli(folder, "up", "--nodes", "3", "--topology", "line", "--miners", "0", "--detach")
    net = Network(folder)
    net_cli(folder, "mine", "3", "--node", "0")
    wait_until(lambda: net.call(2, "getblockcount") == 3, 30, "sync")
    # kill -9 from outside: node 1 is down, the others keep running
    os.kill(net.read_run()["nodes"]["1"], signal.SIGKILL)
    wait_until(lambda: "1" in Network(folder).spec.down, 10, "node 1 marked down")
    assert "SIGKILL" in Network(folder).spec.down["1"]
    row = _row(folder, 1)
    assert row["up"] is False and "SIGKILL" in row["error"]
    assert net.call(0, "getblockcount") == net.call(2, "getblockcount") == 3
    state = json.load(urllib.request.urlopen(
        f"http://127.0.0.1:{net.spec.explorer_port}/api/state"))
    assert [n["up"] for n in state["nodes"]] == [True, False, True]
    # the node's own `stop` (through `minibtc-net cli`), and `minibtc-net stop`
    net_cli(folder, "cli", "2", "stop")
    wait_until(lambda: "2" in Network(folder).spec.down, 30, "node 2 marked down")
    assert "stopped" in _row(folder, 2)["error"]
    assert "node 0 stopped" in net_cli(folder, "stop", "0")
    assert sorted(Network(folder).spec.down) == ["0", "1", "2"]
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "stop", "0", "--dir",
                        str(folder)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "node 0 is not running" in r.stderr
    # `up` on the running network starts the nodes that are down, with their links
    out = net_cli(folder, "up")
    assert all(f"node {i} started" in out for i in range(3))
    assert Network(folder).spec.down == {}
    wait_until(lambda: [net.call(i, "getconnectioncount") for i in range(3)] == [1, 2, 1],
               20, "links again")
    assert net.call(1, "getblockcount") == 3  # recovered from the kill
    # restart, kill, start: one node at a time
    assert "node 1 restarted" in net_cli(folder, "restart", "1")
    assert "node 1 killed" in net_cli(folder, "kill", "1")
    assert "SIGKILL" in _row(folder, 1)["error"]
    net_cli(folder, "mine", "1", "--node", "0")
    assert "node 1 started" in net_cli(folder, "start", "1")
    wait_until(lambda: net.call(2, "getblockcount") == 4, 30, "node 1 relays again")
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "start", "1", "--dir",
                        str(folder)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "node 1 is already running" in r.stderr
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "kill", "7", "--dir",
                        str(folder)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "no node 7" in r.stderr


def _launch(folder, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regtest.cli", "up", "--dir", str(folder),
                             "--nodes", "2", "--miners", "1", "--interval", "30"],
                            cwd=ROOT, env=cli_env(), **kw)


def _wait_up(folder) -> None:
    net = Network(folder)
    wait_until(lambda: net.read_run() is not None and net.read_run()["ready"], 120, "up")
    assert len(daemons_of(folder)) == 3  # two nodes and a miner


@pytest.mark.parametrize("how", ["ctrl-c-piped", "sigterm", "closed-terminal",
                                 "broken-stdout"])
def test_whatever_ends_the_launcher_stops_everything(folder, how):
    if how == "closed-terminal":
        # the launcher on a terminal of its own (its controlling one), which then goes away
        master, slave = pty.openpty()

        def own_terminal() -> None:
            import fcntl
            import termios

            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = _launch(folder, stdin=slave, stdout=slave, stderr=slave,
                       start_new_session=True, preexec_fn=own_terminal)
        os.close(slave)

        done = threading.Event()

        def drain() -> None:  # (what the terminal shows)
            while not done.is_set():
                if select.select([master], [], [], 0.1)[0]:
                    try:
                        os.read(master, 4096)
                    except OSError:
                        return

        reader = threading.Thread(target=drain)
        reader.start()
        _wait_up(folder)
        done.set()
        reader.join()
        os.close(master)  # the terminal closes: SIGHUP
    else:
        proc = _launch(folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait_up(folder)
        if how in ("ctrl-c-piped", "broken-stdout"):
            proc.stdout.close()  # (Ctrl-C in `up | tee log` ends tee too)
        if how == "ctrl-c-piped":
            proc.send_signal(signal.SIGINT)
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: daemons_of(folder) == [], 10, "nothing left")
    assert not (folder / "run.json").exists()


def test_no_ports_to_look_up(folder):
    out = net_cli(folder, "up", "--nodes", "2", "--miners", "0", "--detach")
    net = Network(folder)
    for i in range(2):  # every node's endpoints, and the explorer
        assert f"Node {i}: JSON-RPC 127.0.0.1:{net.spec.rpc_ports[i]}, " \
               f"P2P 127.0.0.1:{net.spec.p2p_ports[i]}" in out
    assert f"explorer: http://127.0.0.1:{net.spec.explorer_port}/" in out
    status = json.loads(net_cli(folder, "status", "--json"))
    assert status["running"] and status["explorer"] == \
        f"http://127.0.0.1:{net.spec.explorer_port}/"
    assert [r["rpc"] for r in status["nodes"]] == [
        f"http://127.0.0.1:{p}" for p in net.spec.rpc_ports]
    assert status["nodes"][1]["peer_list"][0]["node"] == 0  # peers by node number
    assert status["nodes"][0]["peer_list"][0]["node"] == 1
    table = net_cli(folder, "status")
    assert f"127.0.0.1:{net.spec.p2p_ports[1]}" in table and "explorer: http" in table
    # minibtc-cli and minibtc-wallet against a node, by its number
    assert net_cli(folder, "cli", "1", "getblockcount").strip() == "0"
    address = net_cli(folder, "cli", "1", "getnewaddress").strip()  # (its wallet)
    assert address.startswith("bcrt1")
    assert net_cli(folder, "cli", "1", "-named", "getaddressinfo",
                   f"address={address}").count('"ismine": true') == 1
    net_cli(folder, "mine", "101", "--node", "1")
    assert "50.00000000" in net_cli(folder, "wallet", "1", "balance")
    assert '"trusted": 50.00000000' in net_cli(folder, "cli", "1", "getbalances")
    # stopped: one line; brought up with more nodes: they are added
    net_cli(folder, "down")
    out = net_cli(folder, "status")
    assert out.count("\n") == 1 and "not running" in out
    out = net_cli(folder, "up", "--nodes", "3", "--topology", "ring", "--detach")
    assert "added node(s) 2: now 3 nodes" in out and "topology: ring (was line)" in out
    net.reload()
    wait_until(lambda: net.call(2, "getblockcount") == 101, 30, "the new node syncs")
    net_cli(folder, "down")
    out = net_cli(folder, "up", "--nodes", "2", "--detach")
    assert "not changed: it keeps its 3 nodes" in out


def test_scenarios(folder, tmp_path):
    """The two example scenarios of regtest/scenarios/ pass against a live network; a
    failing one says where, in its own file; a missing one is a clear error."""
    net_cli(folder, "up", "--nodes", "3", "--miners", "0", "--detach")
    scenarios = ROOT / "regtest" / "scenarios"
    out = net_cli(folder, "run", str(scenarios / "partition_reorg.py"))
    assert "scenario partition_reorg.py passed" in out and "healed: every node on" in out
    out = net_cli(folder, "run", str(scenarios / "crash_recovery.py"), "1")
    assert "scenario crash_recovery.py passed" in out and "node 1 is back" in out
    bad = tmp_path / "bad.py"
    bad.write_text("def run(net):\n    net.mine(1)\n    assert net.nodes[0].getblockcount() "
                   "== 0, 'not at genesis'\n")
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "run", str(bad), "--dir",
                        str(folder)], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "scenario bad.py failed (line 3:" in r.stderr
    assert "not at genesis" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "run", str(tmp_path / "no.py"),
                        "--dir", str(folder)], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True)
    assert r.returncode == 1 and "no scenario file" in r.stderr


def test_link_conditions_need_hosts_mode(folder):
    """Link conditions are tc netem on --hosts mode's veth pairs: elsewhere, a clear no."""
    def fails(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "regtest.cli", *args, "--dir", str(folder)],
                           cwd=ROOT, env=cli_env(), capture_output=True, text=True)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        return r.stderr

    assert "need --hosts" in fails("up", "--nodes", "2", "--delay", "100ms", "--detach")
    net_cli(folder, "up", "--nodes", "2", "--miners", "0", "--detach")
    assert "need --hosts mode" in fails("link", "0", "1", "--delay", "100ms")
    assert "give --delay" in fails("link", "0", "1")


def test_services_beside_the_nodes(folder):
    """up --services: Esplora, REST, ZMQ and BIP157 filters in the node, ElectrumX beside it;
    their URLs in up's and status's output and network.json; they follow the node through a
    restart; down stops them too."""
    import zmq

    from regtest.electrum import ElectrumClient

    services = "esplora,electrum,rest,zmq,cbf"
    out = net_cli(folder, "up", "--nodes", "2", "--miners", "0", "--services", services,
                  "--service-nodes", "all", "--detach")
    net = Network(folder)
    urls = net.spec.services
    assert sorted(urls) == ["0", "1"]
    for i in range(2):
        assert f"esplora {urls[str(i)]['esplora']}" in out
    status = json.loads(net_cli(folder, "status", "--json"))
    assert status["nodes"][1]["esplora"] == urls["1"]["esplora"]
    net_cli(folder, "mine", "3", "--node", "0")
    wait_until(lambda: urllib.request.urlopen(urls["1"]["esplora"] + "/blocks/tip/height")
               .read() == b"3", 30, "node 1's Esplora at height 3")
    assert "node 1 restarted" in net_cli(folder, "restart", "1")
    assert urllib.request.urlopen(urls["1"]["esplora"] + "/blocks/tip/height").read() == b"3"
    rest = json.loads(urllib.request.urlopen(urls["1"]["rest"] + "chaininfo.json").read())
    assert rest["blocks"] == 3
    assert urls["1"]["cbf"] == status["nodes"][1]["p2p"]
    assert "COMPACT_FILTERS" in net.call(1, "getnetworkinfo")["localservicesnames"]
    assert "basic block filter index" in net.call(1, "getindexinfo")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        sub.setsockopt(zmq.RCVTIMEO, 30_000)
        sub.connect(urls["1"]["zmq"])
        time.sleep(0.5)  # (a subscription takes a moment to reach the publisher)
        tip = net.mine(0, 1)[-1]
        topic, body, _seq = sub.recv_multipart()
        assert (topic, body.hex()) == (b"hashblock", tip)
    finally:
        sub.close(0)
        ctx.term()
    host, port = urls["0"]["electrum"].split("//")[1].split(":")
    with ElectrumClient(host, int(port)) as c:
        wait_until(lambda: c.call("blockchain.headers.subscribe")["height"] == 4, 30,
                   "node 0's ElectrumX at height 4")
    assert urls["0"]["electrum"] in net_cli(folder, "status")
    net_cli(folder, "down")
    assert daemons_of(folder) == []
    r = subprocess.run([sys.executable, "-m", "regtest.cli", "up", "--dir", str(folder),
                        "--services", "ftp"], cwd=ROOT, env=cli_env(), capture_output=True,
                       text=True)
    assert r.returncode == 1 and "unknown service 'ftp'" in r.stderr


def test_link_condition_commands(tmp_path):
    """What `link`/`up --delay` give tc (the netem test itself needs root and sch_netem): a
    netem per link direction, matched on the other node's address; values checked."""
    from regtest.hosts import Hosts, HostsError, check_condition, describe, tc_commands

    hosts = Hosts(tmp_path, 3)
    cmds = tc_commands(hosts, {(0, 1): {"delay": "100ms", "jitter": "20ms", "loss": "1%"},
                               (1, 2): {}})
    assert cmds[2] == []  # no conditions: nothing
    netem = [c for c in cmds[1] if "netem" in c]
    assert len(netem) == 1 and netem[0][-6:] == ["netem", "delay", "100ms", "20ms", "loss",
                                                 "1%"]
    flt = [c for c in cmds[0] if "filter" in c][0]
    assert f"{hosts.addr(1)}/32" in flt and flt[:4] == ["ip", "netns", "exec", hosts.netns(0)]
    assert check_condition("rate", "1Mbit") == "1mbit"
    for name, bad in (("delay", "100"), ("loss", "1"), ("rate", "fast")):
        with pytest.raises(HostsError, match=f"--{name}"):
            check_condition(name, bad)
    assert describe({"delay": "100ms", "jitter": "20ms", "rate": "1mbit"}) == \
        "delay 100ms ± 20ms, rate 1mbit"
