"""The network's explorer page, rendered by headless Chromium (Debian's chromium package;
.ci/run installs it) against a real network: nodes, links (one cut by a partition), the
block tree with both sides of a fork and its legend, a waiting transaction with its fee
rate, peers by node number, a block's transactions with inputs and fees, the reorg log, and
the transaction and address pages read from node 0's Esplora API. Skipped where no Chromium
is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest

from regtest.network import Network
from tests.functional.netutil import net_cli, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed "
                                "(apt-get install chromium)")


def render(url: str, tmp_path) -> str:
    """The page's DOM once its scripts have run and its requests are answered."""
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'chromium'}",
                        "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_explorer_page(folder, tmp_path):
    net_cli(folder, "up", "--nodes", "4", "--topology", "line", "--miners", "0", "--detach")
    net = Network(folder)
    url = f"http://127.0.0.1:{net.spec.explorer_port}/"
    net_cli(folder, "mine", "101", "--node", "0")
    wait_until(lambda: len({net.call(i, "getbestblockhash") for i in range(4)}) == 1, 30, "sync")
    net_cli(folder, "partition", "0,1", "2,3")
    left = net.mine(0, 2)[-1]
    right = net.mine(3, 1)[-1]
    txid = net.send(0, 1, "1")
    wait_until(lambda: net.call(1, "getbestblockhash") == left
               and net.call(2, "getbestblockhash") == right
               and txid in net.call(1, "getrawmempool"), 30, "two sides")
    state = json.load(urllib.request.urlopen(url + "api/state"))
    assert [n["height"] for n in state["nodes"]] == [103, 103, 102, 102]
    assert sorted((link["from"], link["to"], link["cut"]) for link in state["links"]) == [
        (1, 0, False), (2, 1, True), (3, 2, False)]

    dom = render(url, tmp_path)
    assert 'data-loaded="yes"' in dom
    assert dom.count('class="node"') == 4  # the picture of the network
    assert dom.count('class="link up"') == 2 and dom.count('class="link cut"') == 1
    assert 'data-tips="2"' in dom and "2 different tips" in dom  # the fork
    assert f'data-hash="{left}"' in dom and f'data-hash="{right}"' in dom
    assert txid[:12] in dom  # the mempool
    assert "127.0.0.1:" in dom and "outbound" in dom  # peers, by node number
    assert "<td class=\"l\">node 1</td>" in dom and "<td class=\"l\">outside</td>" not in dom
    assert 'class="legend-node" data-node="3"' in dom and "that node's tip" in dom
    assert "<th>sat/vB</th>" in dom and "0E-8" not in dom
    for n in range(4):
        assert '<circle cx=' in dom and f'data-node="{n}"' in dom

    # A block's transactions (what clicking a block shows; also a link: #block=<hash>).
    net_cli(folder, "heal")
    wait_until(lambda: len({net.call(i, "getbestblockhash") for i in range(4)}) == 1, 30,
               "healed")
    mined = net.mine(0, 1)[-1]
    wait_until(lambda: txid not in net.call(0, "getrawmempool"), 30, "payment mined")
    block = json.load(urllib.request.urlopen(url + f"api/block/{mined}"))
    assert txid in [t["txid"] for t in block["txs"]]
    paid = next(t for t in block["txs"] if t["txid"] == txid)
    assert paid["fee"] is not None and float(paid["feerate"]) > 0
    assert paid["inputs"][0]["value"].endswith(".00000000")  # a coinbase's 50 BTC
    assert block["txs"][0]["inputs"] == [{"coinbase": True}]
    dom = render(url + f"#block={mined}", tmp_path)
    assert 'id="blocktxs"' in dom and txid in dom and "1 different tips" not in dom
    assert "all on one tip" in dom
    assert '<th class="l">inputs</th>' in dom and "<th>fee (BTC)</th>" in dom
    assert "coinbase (new coins)" in dom and paid["fee"] in dom
    # the heal made nodes 2 and 3 leave their one-block branch: the reorg log
    reorgs = json.load(urllib.request.urlopen(url + "api/state"))["reorgs"]
    assert sorted((r["node"], r["depth"], r["old_tip"]) for r in reorgs) == [
        (2, 1, right), (3, 1, right)]
    assert '<div id="noreorgs" class="muted" style="display: none;">' in dom
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "api/block/nothex")
    assert e.value.code == 400

    # Transaction and address pages, from node 0's Esplora API (up's default service)
    assert "esplora" in net.spec.services["0"]
    address = net.call(1, "getnewaddress", wallet=True)
    paid = net.call(0, "sendtoaddress", address, "0.3", wallet=True)
    wait_until(lambda: paid in net.call(0, "getrawmempool"), 30, "the payment")
    dom = render(url + f"#tx={txid}", tmp_path)
    assert 'id="search"' in dom and f'id="txview" data-txid="{txid}"' in dom
    assert f"confirmed in block {net.call(0, 'getblockcount')}" in dom and "sat/vB" in dom
    dom = render(url + f"#address={address}", tmp_path)
    assert f'id="addrview" data-address="{address}"' in dom
    assert "0.30000000 BTC unconfirmed" in dom and paid in dom
    assert "unconfirmed (mempool)" in dom

    # A node that is down: shown so, with why, the others as they are
    net_cli(folder, "kill", "3")
    dom = render(url, tmp_path)
    assert "node 3 (down)" in dom and "killed (SIGKILL" in dom
    assert 'class="l down"' in dom and dom.count('class="node"') == 4
