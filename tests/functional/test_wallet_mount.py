"""Wallets mounted in minibtcd: the node's RPC server hands wallet methods to a
wallet.service.WalletManager (at /wallet/<name>, and at / when one wallet is loaded). As
Core, minibtcd creates no wallet by itself; one created with load_on_startup is loaded again
at every start, before RPC warm-up ends, so its methods work as soon as the node answers.

The wallet reaches the node over the node's own JSON-RPC, and with only two RPC threads a
burst of wallet calls must still not deadlock: wallet calls run on threads of their own
(node/rpc/server.py)."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from tests.functional.framework import ROOT, NodeProcess, RPCFailure


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("mount") / "n", "-rpcthreads=2")
    n.start()
    assert n.call("listwallets") == []  # none made by the node itself
    n.create_wallet()
    try:
        yield n
    finally:
        n.stop()


def _wait_wallet(n: NodeProcess) -> None:
    assert n.call("listwallets") == ["default"]  # loaded before warm-up ended


def test_default_wallet_on_first_start(node):
    addr = node.call("getnewaddress")  # at /, the one wallet loaded
    assert addr.startswith("bcrt1q")
    node.call("generatetoaddress", 101, addr)
    assert node.call("getbalance") == 50
    assert node.call("getbalances", wallet="default")["mine"]["immature"] == 5000
    assert (node.datadir / "regtest" / "wallets" / "default" / "wallet.sqlite").exists()
    # amounts written as the node writes them, zero included
    import base64
    import urllib.request

    user, pw = node.auth()
    req = urllib.request.Request(node.url, data=b'{"method":"getbalances","params":[],"id":1}',
                                 headers={"Authorization": "Basic " + base64.b64encode(
                                     f"{user}:{pw}".encode()).decode()})
    body = urllib.request.urlopen(req, timeout=60).read()
    assert b'"untrusted_pending":0.00000000' in body and b'"trusted":50.00000000' in body


def test_wallet_paths_and_errors(node):
    _wait_wallet(node)
    assert node.call("createwallet", "second") == {"name": "second"}
    with pytest.raises(RPCFailure) as e:
        node.call("getnewaddress")  # two loaded, none named
    assert e.value.code == -19
    with pytest.raises(RPCFailure) as e:
        node.call("getbalance", wallet="nosuch")
    assert e.value.code == -18
    to = node.call("getnewaddress", wallet="second")
    txid = node.call("sendtoaddress", to, 1.5, wallet="default")
    assert txid in node.call("getrawmempool")
    assert node.call("getbalances", wallet="second")["mine"]["untrusted_pending"] == 1.5
    # node methods still answer at /wallet/<name>, as in Core
    assert node.call("getblockcount", wallet="second") == 101
    # batches mixing node and wallet calls
    status, replies = node.request([
        {"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "getwalletinfo", "params": []}],
        path="/wallet/second")
    assert status == 200
    assert replies[0]["result"] == 101 and replies[1]["result"]["walletname"] == "second"
    node.call("unloadwallet", "second")
    assert node.call("listwallets") == ["default"]


def test_many_wallet_calls_do_not_starve_the_node(node):
    """Each wallet call makes node calls on the same server; with -rpcthreads=2 they must
    not wait on threads that are waiting on them."""
    _wait_wallet(node)
    results: list = []
    lock = threading.Lock()

    def one(_):
        r = node.call("getbalances")
        with lock:
            results.append(r)

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(one, range(24), timeout=60))
    assert len(results) == 24
    assert node.call("getblockcount") == 101


def test_restart_loads_the_wallet_again(node):
    _wait_wallet(node)
    addr = node.call("getnewaddress")
    before = node.call("getbalances")
    node.stop()
    node.start()
    _wait_wallet(node)
    assert node.call("getaddressinfo", addr)["ismine"] is True
    assert node.call("getbalances") == before  # the pending payment too (mempool persisted)


def test_minibtc_cli_with_rpcwallet(node):
    import json
    import subprocess
    from decimal import Decimal

    from tests.functional.framework import cli_env

    _wait_wallet(node)

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "node.cli", f"-datadir={node.datadir}",
                            "-regtest", f"-rpcport={node.rpcport}", "-rpcwallet=default",
                            *args], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    to = cli("getnewaddress", "", "bech32m")
    assert to.startswith("bcrt1p")
    if node.call("getbalance", wallet="default") < 1:  # (run alone: nothing mined yet)
        node.call("generatetoaddress", 101, to)
    # amount, subtractfeefromamount and fee_rate are sent as JSON (cli_params), not strings
    # (avoid_reuse null: true is Core's -4 on a wallet without the avoid_reuse flag)
    txid = cli("sendtoaddress", to, "0.25", "", "", "false", "true", "null", "unset", "null",
               "7")
    tx = json.loads(cli("gettransaction", txid), parse_float=Decimal)
    assert tx["amount"] == 0 and tx["fee"] < 0  # paid to itself: only the fee left


def test_minibtc_wallet_cli_against_the_node(node):
    import subprocess

    from tests.functional.framework import cli_env

    def wcli(*args):
        return subprocess.run([sys.executable, "-m", "wallet.cli", "--datadir", str(node.datadir),
                               "--node", node.url, *args], cwd=ROOT, env=cli_env(),
                              capture_output=True, text=True, timeout=60)

    # the node holds the default wallet: opening its file directly is refused, with the way out
    r = wcli("balance")
    assert r.returncode == 1 and "in use" in r.stderr and f"--server {node.url}" in r.stderr
    # through the node (its cookie found in the datadir)
    r = wcli("--server", node.url, "balance")
    assert r.returncode == 0, r.stderr
    assert "confirmed" in r.stdout and "immature" in r.stdout
    addr = wcli("--server", node.url, "receive", "--type", "bech32m").stdout.strip()
    assert node.call("getaddressinfo", addr)["ismine"] is True


def test_help_lists_the_wallet_methods(node, tmp_path):
    listing = node.call("help")
    section = listing.split("== Wallet ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert 'sendtoaddress "address" amount ( "comment" "comment_to" subtractfeefromamount ' \
           'replaceable conf_target "estimate_mode" avoid_reuse fee_rate verbose )' in section
    assert "getbalance" in [line.split()[0] for line in section]
    text = node.call("help", "getnewaddress")
    assert text.startswith('getnewaddress ( "label" "address_type" )')
    assert '1. label    (string, optional, default="")' in text  # string defaults quoted
    assert "2. address_type    (string, optional, default=null)" in text
    # the node's own methods keep their place
    assert node.call("help", "getblock").startswith('getblock "blockhash" ( verbosity )')
    with NodeProcess(tmp_path / "bare", "-disablewallet") as bare:
        assert "== Wallet ==" not in bare.call("help")
        assert bare.call("help", "sendtoaddress") == "help: unknown command: sendtoaddress"


def test_lockunspent(tmp_path):
    """Locked coins stay out of automatic coin selection and listunspent but count in the
    balance; persistent locks survive a restart; a locked coin chosen by hand is unlocked
    once spent; errors as Core's."""
    with NodeProcess(tmp_path / "n") as n:
        n.create_wallet()
        n.call("generatetoaddress", 103, n.call("getnewaddress"))  # 3 mature coinbases
        coins = [{"txid": c["txid"], "vout": c["vout"]} for c in n.call("listunspent")]
        assert len(coins) == 3
        balance = n.call("getbalance")
        assert n.call("lockunspent", False, coins[:2]) is True
        assert n.call("lockunspent", False, [coins[1]], True) is True  # made persistent
        assert sorted(n.call("listlockunspent"), key=str) == sorted(coins[:2], key=str)
        assert [c["txid"] for c in n.call("listunspent")] == [coins[2]["txid"]]
        assert n.call("getbalance") == balance
        with pytest.raises(RPCFailure) as e:  # only the unlocked coin may be chosen
            n.call("sendtoaddress", n.call("getnewaddress"), 60)
        assert e.value.code == -6
        paid = n.call("getrawtransaction", n.call("sendtoaddress", n.call("getnewaddress"), 1),
                      True)
        assert [(i["txid"], i["vout"]) for i in paid["vin"]] == [
            (coins[2]["txid"], coins[2]["vout"])]

        def error(*params):
            with pytest.raises(RPCFailure) as e:
                n.call("lockunspent", *params)
            return e.value.code, e.value.message

        assert error(False, [coins[0]]) == (-8, "Invalid parameter, output already locked")
        assert error(True, [coins[2]]) == (-8, "Invalid parameter, expected unspent output")
        assert error(True, [{"txid": paid["txid"], "vout": 0}])[0] == -8  # not locked
        assert error(False, [{"txid": "00" * 32, "vout": 0}]) == (
            -8, "Invalid parameter, unknown transaction")
        assert error(False, [{"txid": coins[0]["txid"], "vout": 9}]) == (
            -8, "Invalid parameter, vout index out of bounds")
        assert error(False, [{"txid": coins[0]["txid"], "vout": -1}]) == (
            -8, "Invalid parameter, vout cannot be negative")
        assert error(False, [{"txid": coins[0]["txid"]}]) == (-3, "Missing vout")
        assert error(False, [{"txid": "zz", "vout": 0}])[0] == -8
        # nothing changed by a call that failed part-way
        assert error(True, [coins[0], {"txid": "00" * 32, "vout": 0}])[0] == -8
        assert len(n.call("listlockunspent")) == 2

        n.stop()
        n.start()
        assert n.call("listlockunspent") == [coins[1]]  # only the persistent lock is kept
        # a locked coin chosen by hand may be spent, and is unlocked then
        psbt = n.call("walletcreatefundedpsbt", [coins[1]], [{n.call("getnewaddress"): 1}])
        signed = n.call("walletprocesspsbt", psbt["psbt"])
        n.call("sendrawtransaction", signed["hex"])
        n.call("getbalance")  # (brings the wallet up to the node's mempool)
        assert n.call("listlockunspent") == []
        # lockUnspents locks what funding chose; unlock with no list unlocks everything
        funded = n.call("walletcreatefundedpsbt", [], [{n.call("getnewaddress"): 1}], 0,
                        {"lockUnspents": True})
        chosen = [{"txid": i["previous_txid"], "vout": i["previous_vout"]}  # (PSBT v2)
                  for i in n.call("decodepsbt", funded["psbt"])["inputs"]]
        assert sorted(n.call("listlockunspent"), key=str) == sorted(
            ({"txid": i["txid"], "vout": i["vout"]} for i in chosen), key=str)
        assert n.call("lockunspent", True) is True
        assert n.call("listlockunspent") == []


def test_sendall(tmp_path):
    """sendall as Core's: every spendable coin (or the given ones) to the recipients, those
    without an amount sharing the rest after the fee; locked and immature coins stay."""
    elsewhere = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with NodeProcess(tmp_path / "n") as n:
        n.create_wallet()
        n.call("generatetoaddress", 104, n.call("getnewaddress"))  # 4 mature coinbases
        coins = [{"txid": c["txid"], "vout": c["vout"]} for c in n.call("listunspent")]
        assert len(coins) == 4

        def error(*params):
            with pytest.raises(RPCFailure) as e:
                n.call("sendall", *params)
            return e.value.code, e.value.message

        assert error([{elsewhere: 1}]) == (
            -8, "Must provide at least one address without a specified amount")
        assert error([elsewhere, elsewhere])[0] == -8  # duplicated address
        assert error([elsewhere], None, None, None, {"inputs": coins[:1], "send_max": True}
                     ) == (-8, "Cannot combine send_max with specific inputs.")
        assert error([elsewhere], None, None, None, {"minconf": -1})[0] == -8
        assert error([elsewhere], 6) == (-8, "Specify estimate_mode")
        assert error([elsewhere], None, None, 2, {"fee_rate": 2})[0] == -8
        assert error([{elsewhere: 300}, n.call("getnewaddress")]) == (
            -6, "Assigned more value to outputs than available funds.")
        assert error([elsewhere], None, None, None,
                     {"inputs": [{"txid": "00" * 32, "vout": 0}]})[0] == -8
        assert error([{elsewhere: "0.00000100"}, n.call("getnewaddress")])[0] == -8  # dust

        # not added to the wallet: signed and handed back, nothing sent
        r = n.call("sendall", [elsewhere], None, None, 3, {"add_to_wallet": False})
        assert r["complete"] is True and r["psbt"] and n.call("getrawmempool") == []
        tx = n.call("decoderawtransaction", r["hex"])
        assert tx["txid"] == r["txid"] and len(tx["vin"]) == 4 and len(tx["vout"]) == 1
        fee = Decimal(200) - tx["vout"][0]["value"]
        assert 3 * tx["vsize"] <= fee * 10**8 <= 3 * (tx["vsize"] + 8)  # the estimate bounds

        # two coins: 10 BTC elsewhere, the rest shared by two of our addresses
        mine = [n.call("getnewaddress"), n.call("getnewaddress")]
        r = n.call("sendall", [{elsewhere: 10}, *mine], None, None, 2, {"inputs": coins[:2]})
        assert r["complete"] is True and "hex" not in r
        assert n.call("getrawmempool") == [r["txid"]]
        tx = n.call("getrawtransaction", r["txid"], True)
        values = [o["value"] for o in tx["vout"]]
        assert values[0] == 10 and 0 <= values[1] - values[2] <= Decimal("0.00000001")
        shared = values[1] + values[2]
        assert n.call("getbalance") == 100 + shared  # the other two coins and the shares

        # a locked coin stays; the rest (unconfirmed change of our own included) goes
        n.call("lockunspent", False, [coins[3]])
        r = n.call("sendall", [elsewhere], None, None, 2)
        spent = {(i["txid"], i["vout"]) for i in n.call("getrawtransaction", r["txid"],
                                                          True)["vin"]}
        assert (coins[2]["txid"], coins[2]["vout"]) in spent and len(spent) == 3
        assert n.call("getbalance") == 50
        assert n.call("getbalances")["mine"]["immature"] > 0  # immature coinbases untouched
        # lock_unspents keeps what a transaction not yet sent spends
        r = n.call("sendall", [elsewhere], None, None, 2,
                   {"inputs": [coins[3]], "add_to_wallet": False, "lock_unspents": True})
        assert n.call("listlockunspent") == [coins[3]]


def test_send(tmp_path):
    """send as Core's: funded like walletcreatefundedpsbt, then sent, or handed back as hex
    and PSBT (add_to_wallet false, psbt true)."""
    elsewhere = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with NodeProcess(tmp_path / "n") as n:
        n.create_wallet()
        n.call("generatetoaddress", 102, n.call("getnewaddress"))  # 2 mature coinbases
        r = n.call("send", {elsewhere: 1}, None, None, 2)
        assert r["complete"] is True and set(r) == {"txid", "complete"}
        assert n.call("getrawmempool") == [r["txid"]]
        tx = n.call("getrawtransaction", r["txid"], True)
        assert elsewhere in [o["scriptPubKey"].get("address") for o in tx["vout"]]
        # the fee from the recipient; the input given, none added; nothing sent
        coin = next(c for c in n.call("listunspent") if c["amount"] == 50)
        r = n.call("send", [{elsewhere: 50}], None, None, None,
                   {"fee_rate": 3, "subtract_fee_from_outputs": [0], "add_to_wallet": False,
                    "inputs": [{"txid": coin["txid"], "vout": coin["vout"]}]})
        assert r["complete"] is True and r["hex"] and r["psbt"]
        assert len(n.call("getrawmempool")) == 1
        tx = n.call("decoderawtransaction", r["hex"])
        assert [(i["txid"], i["vout"]) for i in tx["vin"]] == [(coin["txid"], coin["vout"])]
        assert len(tx["vout"]) == 1 and 3 * tx["vsize"] <= (50 - tx["vout"][0]["value"]) * 10**8
        r = n.call("send", {elsewhere: 1}, None, None, 2, {"psbt": True, "lock_unspents": True})
        assert r["complete"] is True and r["psbt"] and r["hex"]
        assert len(n.call("listlockunspent")) == len(n.call("decoderawtransaction",
                                                            r["hex"])["vin"])
        with pytest.raises(RPCFailure) as e:
            n.call("send", {elsewhere: 1}, None, None, 2, {"fee_rate": 2})
        assert e.value.code == -8
        with pytest.raises(RPCFailure) as e:
            n.call("send", {elsewhere: 1000})
        assert e.value.code == -4  # (Core: send answers FundTransaction errors with -4)


def test_abandontransaction(tmp_path):
    """A payment that left the mempool (the node restarted without it) can be abandoned,
    with its child; one in the mempool or confirmed cannot; a conflicted one cannot."""
    elsewhere = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with NodeProcess(tmp_path / "n", "-persistmempool=0") as n:
        n.create_wallet()
        n.call("generatetoaddress", 101, n.call("getnewaddress"))
        parent = n.call("sendtoaddress", n.call("getnewaddress"), 10)
        child = n.call("sendtoaddress", elsewhere, 49)  # spends the parent's outputs
        assert parent in [i["txid"] for i in n.call("getrawtransaction", child, True)["vin"]]

        def error(txid):
            with pytest.raises(RPCFailure) as e:
                n.call("abandontransaction", txid)
            return e.value.code, e.value.message

        assert error(parent) == (-5, "Transaction not eligible for abandonment")
        assert error("00" * 32) == (-5, "Invalid or non-wallet transaction id")
        n.stop()
        n.start()
        assert n.call("getrawmempool") == []
        assert n.call("abandontransaction", parent) is None
        for txid in (parent, child):
            sends = [d for d in n.call("gettransaction", txid)["details"]
                     if d["category"] == "send"]
            assert sends and all(d["abandoned"] is True for d in sends)
        assert n.call("getbalance") == 50  # the coin they spent is ours again
        # sent again: no longer abandoned
        n.call("sendrawtransaction", n.call("gettransaction", parent)["hex"])
        n.call("getbalance")  # (brings the wallet up to the mempool)
        assert not any(d.get("abandoned") for d in n.call("gettransaction", parent)["details"])
        n.call("generatetoaddress", 1, elsewhere)
        assert error(parent) == (-5, "Transaction not eligible for abandonment")
        # the child conflicted by a confirmed spend of the same coin: not eligible either
        raw = n.call("gettransaction", child)["hex"]
        swept = n.call("sendall", [elsewhere], None, None, 2)["txid"]
        n.call("generatetoaddress", 1, elsewhere)
        child_inputs = {(i["txid"], i["vout"]) for i in n.call("decoderawtransaction", raw)["vin"]}
        swept_tx = n.call("decoderawtransaction", n.call("gettransaction", swept)["hex"])
        assert child_inputs <= {(i["txid"], i["vout"]) for i in swept_tx["vin"]}
        assert error(n.call("decoderawtransaction", raw)["txid"]) == (
            -5, "Transaction not eligible for abandonment")
