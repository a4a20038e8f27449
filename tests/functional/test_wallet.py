"""The wallet end to end: a real minibtcd, and `minibtc-wallet serve` in its own process
following it over JSON-RPC, driven with Bitcoin Core's wallet methods; then the CLI.

One node and one wallet server for the module; the tests run in order on a shared chain
(each notes what it leaves behind)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from tests.functional.framework import ROOT, NodeProcess, RPCFailure, cli_env, free_port

# An address no test wallet owns, for mining blocks that pay none of them.
ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
COIN = Decimal("50")


class WalletServer:
    """`minibtc-wallet serve` as a process, and JSON-RPC calls to it."""

    def __init__(self, node: NodeProcess, wallets_dir) -> None:
        self.node = node
        self.wallets_dir = wallets_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> WalletServer:
        log = open(self.wallets_dir.parent / "wallet-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wallet.cli", "--datadir", str(self.node.datadir),
             "--node", self.node.url, "--wallets-dir", str(self.wallets_dir), "serve",
             "--port", str(self.port)], cwd=ROOT, env=cli_env(), stdout=log,
            stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                self.call("listwallets")
                return self
            except (OSError, RPCFailure):
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("wallet server did not start: " + (
                        self.wallets_dir.parent / "wallet-server.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)

    def call(self, method: str, *params, wallet: str | None = None, **named):
        cookie = (self.wallets_dir / ".cookie").read_text()
        # positional and named together: the positional ones as "args", as bitcoin-cli does
        args = ({**named, "args": list(params)} if params else named) if named else list(params)
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": args},
                          default=str)
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}" + (f"/wallet/{wallet}" if wallet else "/"),
            data=body.encode(),
            headers={"Authorization": "Basic " + base64.b64encode(cookie.encode()).decode()})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                reply = json.loads(r.read(), parse_float=Decimal)
        except urllib.error.HTTPError as e:
            reply = json.loads(e.read(), parse_float=Decimal)
        if reply.get("error"):
            raise RPCFailure(reply["error"]["code"], reply["error"]["message"], 500)
        return reply["result"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wallet")
    node = NodeProcess(tmp / "node").start()
    server = WalletServer(node, tmp / "wallets").start()
    try:
        yield node, server
    finally:
        server.stop()
        node.stop()


def bal(server, name) -> dict:
    """getbalances' mine, less nonmempool (0 but in the test that refuses a transaction)."""
    mine = server.call("getbalances", wallet=name)["mine"]
    assert mine.pop("nonmempool") == 0
    return mine


def test_mine_send_mine_exact_balances(env):
    node, w = env
    assert w.call("createwallet", "A") == {"name": "A"}
    w.call("createwallet", "B")
    a_addr = w.call("getnewaddress", "mining", wallet="A")
    node.call("generatetoaddress", 101, a_addr)
    assert bal(w, "A") == {"trusted": COIN, "untrusted_pending": Decimal(0),
                           "immature": 100 * COIN}
    b_addr = w.call("getnewaddress", wallet="B")
    amount = Decimal("12.34567891")
    txid = w.call("sendtoaddress", b_addr, str(amount), fee_rate=3, wallet="A")
    assert txid in node.call("getrawmempool")
    fee = -w.call("gettransaction", txid, wallet="A")["fee"]
    assert fee == Decimal(node.call("getmempoolentry", txid)["fees"]["base"])
    # unconfirmed: B's coins are pending, A's change is its own and so trusted
    assert bal(w, "B") == {"trusted": 0, "untrusted_pending": amount, "immature": 0}
    assert bal(w, "A")["trusted"] == COIN - amount - fee
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert bal(w, "B") == {"trusted": amount, "untrusted_pending": 0, "immature": 0}
    # block 2's coinbase matured with block 102; blocks 3..101 are still immature
    assert bal(w, "A") == {"trusted": 2 * COIN - amount - fee, "untrusted_pending": 0,
                           "immature": 99 * COIN}
    # the wallet's coins are the node's unspent outputs
    for u in w.call("listunspent", wallet="B"):
        out = node.call("gettxout", u["txid"], u["vout"])
        assert Decimal(out["value"]) == u["amount"] and out["confirmations"] == 1
    assert w.call("getbalance", wallet="B") == amount
    entry = w.call("listtransactions", wallet="B")[-1]
    assert (entry["category"], entry["amount"], entry["confirmations"]) == ("receive", amount, 1)
    assert w.call("gettransaction", txid, wallet="A")["details"][0]["category"] == "send"


def test_reorg_removes_a_confirmation(env):
    node, w = env
    b_addr = w.call("getnewaddress", wallet="B")
    before = bal(w, "B")
    txid = w.call("sendtoaddress", b_addr, "1", wallet="A")
    block = node.call("generatetoaddress", 1, ELSEWHERE)[0]
    assert w.call("gettransaction", txid, wallet="B")["confirmations"] == 1
    assert bal(w, "B")["trusted"] == before["trusted"] + 1
    node.call("invalidateblock", block)
    # the block is gone: the payment is unconfirmed again (the node put it back in its pool)
    tx = w.call("gettransaction", txid, wallet="B")
    assert tx["confirmations"] == 0 and "blockhash" not in tx
    assert bal(w, "B") == {"trusted": before["trusted"], "untrusted_pending": Decimal(1),
                           "immature": 0}
    assert w.call("getwalletinfo", wallet="B")["lastprocessedblock"]["height"] == 102
    # a block paying A: its coinbase (with the fee of the payment it confirms again) is A's,
    # until that block is removed too; then it counts no more
    immature = bal(w, "A")["immature"]
    assert immature == 99 * COIN  # blocks 3..101
    fee = -w.call("gettransaction", txid, wallet="A")["fee"]
    a_addr = w.call("getnewaddress", wallet="A")
    cb_block = node.call("generatetoaddress", 1, a_addr)[0]
    assert w.call("gettransaction", txid, wallet="B")["confirmations"] == 1
    assert bal(w, "A")["immature"] == 99 * COIN + fee  # block 3 matured, block 103 came
    node.call("invalidateblock", cb_block)
    assert bal(w, "A")["immature"] == immature
    orphan = [e for e in w.call("listtransactions", "*", 1000, wallet="A")
              if e["category"] == "orphan"]
    assert len(orphan) == 1 and orphan[0]["confirmations"] == 0  # (Core: inactive, 0)
    node.call("reconsiderblock", cb_block)
    assert bal(w, "A")["immature"] == 99 * COIN + fee
    assert w.call("gettransaction", txid, wallet="B")["confirmations"] == 1
    node.call("generatetoaddress", 1, ELSEWHERE)  # leaves the chain at 104, mempool empty


def test_rbf_bump_replaces_the_original(env):
    node, w = env
    b_addr = w.call("getnewaddress", wallet="B")
    before = bal(w, "B")
    txid = w.call("sendtoaddress", b_addr, "2", fee_rate=2, wallet="A")
    assert w.call("gettransaction", txid, wallet="A")["bip125-replaceable"] == "yes"
    r = w.call("bumpfee", txid, {"fee_rate": 10}, wallet="A")
    assert r["errors"] == [] and r["fee"] > r["origfee"]
    pool = node.call("getrawmempool")
    assert r["txid"] in pool and txid not in pool
    old = w.call("gettransaction", txid, wallet="A")
    assert old["replaced_by_txid"] == r["txid"] and r["txid"] in old["walletconflicts"]
    assert w.call("gettransaction", r["txid"], wallet="A")["replaces_txid"] == txid
    # the recipient counts the payment once
    assert bal(w, "B")["untrusted_pending"] == before["untrusted_pending"] + 2
    with pytest.raises(RPCFailure) as e:
        w.call("bumpfee", txid, wallet="A")
    assert e.value.code == -4 and "already bumped" in e.value.message
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert w.call("gettransaction", r["txid"], wallet="A")["confirmations"] == 1
    assert w.call("gettransaction", txid, wallet="A")["confirmations"] == -1
    assert bal(w, "B")["trusted"] == before["trusted"] + 2
    with pytest.raises(RPCFailure) as e:
        w.call("bumpfee", r["txid"], wallet="A")
    assert e.value.code == -4 and "mined" in e.value.message
    # not replaceable: refused
    t2 = w.call("sendtoaddress", b_addr, "0.5", replaceable=False, wallet="A")
    with pytest.raises(RPCFailure, match="not BIP 125 replaceable"):
        w.call("bumpfee", t2, wallet="A")
    node.call("generatetoaddress", 1, ELSEWHERE)


def test_several_recipients_and_send_max(env):
    node, w = env
    w.call("createwallet", "C")
    c1, c2 = (w.call("getnewaddress", wallet="C") for _ in range(2))
    c3 = w.call("getnewaddress", "", "bech32m", wallet="C")
    txid = w.call("sendmany", "", {c1: "0.1", c2: "0.2", c3: "0.3"}, wallet="A")
    tx = node.call("getrawtransaction", txid, 1)
    assert sorted(Decimal(o["value"]) for o in tx["vout"])[:3] == [
        Decimal("0.1"), Decimal("0.2"), Decimal("0.3")]
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert bal(w, "C")["trusted"] == Decimal("0.6")
    # send-max: the whole balance, the fee taken from it; nothing is left
    sink = w.call("getnewaddress", wallet="B")
    txid = w.call("sendtoaddress", sink, "0.6", subtractfeefromamount=True, wallet="C")
    fee = -w.call("gettransaction", txid, wallet="C")["fee"]
    assert fee > 0
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert bal(w, "C")["trusted"] == 0
    got = w.call("getreceivedbyaddress", sink, wallet="B")
    assert got == Decimal("0.6") - fee


def test_restore_from_mnemonic_finds_the_funds(env):
    node, w = env
    m = w.call("getmnemonic", wallet="B")["mnemonic"]
    w.call("createwallet", "Brestored", mnemonic=m)
    assert bal(w, "Brestored") == bal(w, "B")
    key = {(u["txid"], u["vout"], u["amount"]) for u in w.call("listunspent", wallet="B")}
    assert {(u["txid"], u["vout"], u["amount"])
            for u in w.call("listunspent", wallet="Brestored")} == key
    first = w.call("listtransactions", "*", 1000, wallet="B")[0]["address"]
    assert w.call("getaddressinfo", first, wallet="Brestored")["ismine"] is True
    # the restored wallet hands out the next unused address, as the original does
    assert w.call("getnewaddress", wallet="Brestored") == w.call("getnewaddress", wallet="B")
    with pytest.raises(RPCFailure) as e:
        w.call("createwallet", "Bad", mnemonic="abandon " * 12)
    assert e.value.code == -8 and "checksum" in e.value.message


def test_encrypted_wallet_file_has_no_key_material(env):
    node, w = env
    w.call("createwallet", "E", passphrase="s3cret pass")
    with pytest.raises(RPCFailure) as e:
        w.call("getmnemonic", wallet="E")
    assert e.value.code == -13
    with pytest.raises(RPCFailure) as e:
        w.call("walletpassphrase", "wrong", 10, wallet="E")
    assert e.value.code == -14
    w.call("walletpassphrase", "s3cret pass", 30, wallet="E")
    assert w.call("getwalletinfo", wallet="E")["unlocked_until"] > time.time()
    words = w.call("getmnemonic", wallet="E")["mnemonic"]
    private = [d["desc"] for d in w.call("listdescriptors", True, wallet="E")["descriptors"]]
    assert all("tprv" in d for d in private)
    e_addr = w.call("getnewaddress", wallet="E")
    w.call("sendtoaddress", e_addr, "1", wallet="A")
    node.call("generatetoaddress", 1, ELSEWHERE)
    w.call("walletlock", wallet="E")
    with pytest.raises(RPCFailure) as e:
        w.call("sendtoaddress", ELSEWHERE, "0.1", wallet="E")
    assert e.value.code == -13
    raw = (w.wallets_dir / "E" / "wallet.sqlite").read_bytes()
    assert words.encode() not in raw and words.split()[0].encode() + b" " not in raw
    for d in private:
        tprv = "tprv" + d.split("tprv")[1].split("/")[0]  # the master tprv, as Core's
        assert tprv.encode() not in raw
    # a short unlock runs out on its own
    w.call("walletpassphrase", "s3cret pass", 1, wallet="E")
    w.call("sendtoaddress", ELSEWHERE, "0.1", wallet="E")
    time.sleep(1.2)
    with pytest.raises(RPCFailure) as e:
        w.call("sendtoaddress", ELSEWHERE, "0.1", wallet="E")
    assert e.value.code == -13
    node.call("generatetoaddress", 1, ELSEWHERE)


def test_unlock_timeout_also_stops_psbt_signing(env):
    node, w = env
    w.call("createwallet", "T", passphrase="pw pw")
    w.call("walletpassphrase", "pw pw", 30, wallet="T")
    t_addr = w.call("getnewaddress", wallet="T")
    w.call("walletlock", wallet="T")
    w.call("sendtoaddress", t_addr, "1", wallet="A")
    node.call("generatetoaddress", 1, ELSEWHERE)
    w.call("walletpassphrase", "pw pw", 1, wallet="T")
    funded = w.call("walletcreatefundedpsbt", [], [{ELSEWHERE: "0.1"}], wallet="T")
    time.sleep(1.5)  # the time is up; nothing asked in between
    with pytest.raises(RPCFailure) as e:
        w.call("walletprocesspsbt", funded["psbt"], wallet="T")
    assert e.value.code == -13
    assert w.call("getwalletinfo", wallet="T")["unlocked_until"] == 0


def test_bumpfee_never_spends_the_originals_own_change(env):
    node, w = env
    w.call("createwallet", "F")
    w.call("sendtoaddress", w.call("getnewaddress", wallet="F"), "0.001", wallet="A")
    node.call("generatetoaddress", 1, ELSEWHERE)
    # 100,000 sat in, 80,000 out: about 19,860 of change
    txid = w.call("sendtoaddress", ELSEWHERE, "0.0008", fee_rate=1, wallet="F")
    # At 200 sat/vB the fee outgrows the change, so another coin is needed, and F's only
    # other coin is the original's own change, which the replacement may not spend (it
    # would conflict with itself): insufficient funds.
    with pytest.raises(RPCFailure) as e:
        w.call("bumpfee", txid, {"fee_rate": 200}, wallet="F")
    assert e.value.code == -6, e.value.message
    # With a second coin (confirmed in a block without the original) that one is added.
    fund = w.call("sendtoaddress", w.call("getnewaddress", wallet="F"), "0.001", wallet="A")
    node.call("generateblock", ELSEWHERE, [fund])
    r = w.call("bumpfee", txid, {"fee_rate": 200}, wallet="F")
    replacement = node.call("getrawtransaction", r["txid"], True)
    assert txid not in {v["txid"] for v in replacement["vin"]}
    assert len(replacement["vin"]) == 2 and r["txid"] in node.call("getrawmempool")
    node.call("generatetoaddress", 1, ELSEWHERE)


def test_a_recipient_named_twice_is_refused(env):
    node, w = env
    with pytest.raises(RPCFailure) as e:
        w.call("walletcreatefundedpsbt", [], [{ELSEWHERE: "0.1"}, {ELSEWHERE: "0.2"}],
               wallet="A")
    assert e.value.code == -8 and "duplicated address" in e.value.message


def test_psbt_round_trip_between_two_wallets(env):
    node, w = env
    # W watches A's keys (public descriptors only) and builds; A signs.
    w.call("createwallet", "W", True)
    pub = [{"desc": d["desc"], "timestamp": 0, "active": d["active"],
            "internal": d.get("internal", False), "range": d["range"]}
           for d in w.call("listdescriptors", wallet="A")["descriptors"]]
    res = w.call("importdescriptors", pub, wallet="W")
    assert all(r["success"] for r in res), res
    assert bal(w, "W") == bal(w, "A")
    b_addr = w.call("getnewaddress", wallet="B")
    funded = w.call("walletcreatefundedpsbt", [], [{b_addr: "3"}], 0, {"fee_rate": 4},
                    wallet="W")
    processed = w.call("walletprocesspsbt", funded["psbt"], wallet="W")
    assert processed["complete"] is False  # no keys there
    decoded = w.call("decodepsbt", processed["psbt"])
    assert decoded["fee"] == funded["fee"]
    fp = w.call("getaddressinfo", b_addr, wallet="B")  # B is not the signer
    a_fp = w.call("listdescriptors", wallet="A")["descriptors"][0]["desc"].split("[")[1][:8]
    assert fp["hdmasterfingerprint"] != a_fp
    assert all(d["master_fingerprint"] == a_fp for i in decoded["inputs"]
               for d in i["bip32_derivs"])
    signed = w.call("walletprocesspsbt", processed["psbt"], True, "DEFAULT", True, False,
                    wallet="A")
    assert signed["complete"] is False  # signed, not finalized
    final = w.call("finalizepsbt", signed["psbt"])
    assert final["complete"] is True
    pending = bal(w, "B")["untrusted_pending"]
    txid = node.call("sendrawtransaction", final["hex"])
    # sent by no wallet of the server: B finds it in the node's mempool
    assert bal(w, "B")["untrusted_pending"] == pending + 3
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert w.call("gettransaction", txid, wallet="A")["confirmations"] == 1
    assert w.call("gettransaction", txid, wallet="B")["amount"] == Decimal(3)
    assert bal(w, "W") == bal(w, "A")


def test_reorg_to_a_competing_branch(env):
    node, w = env
    b_addr = w.call("getnewaddress", wallet="B")
    txid = w.call("sendtoaddress", b_addr, "0.7", wallet="A")
    old = node.call("generatetoaddress", 1, ELSEWHERE)[0]
    assert w.call("gettransaction", txid, wallet="B")["blockhash"] == old
    height = node.call("getblockcount")
    node.call("invalidateblock", old)
    # a longer branch from the block below: the same height has another block now
    # (mined to another address, or the first block would be the invalidated one again)
    new = node.call("generatetoaddress", 2, w.call("getnewaddress", wallet="C"))
    assert node.call("getblockcount") == height + 1
    tx = w.call("gettransaction", txid, wallet="B")
    assert tx["blockhash"] == new[0] and tx["confirmations"] == 2  # mined again on the branch
    info = w.call("getwalletinfo", wallet="B")["lastprocessedblock"]
    assert info == {"hash": new[1], "height": height + 1}
    assert w.call("getwalletinfo", wallet="A")["lastprocessedblock"] == info


def test_errors_with_core_codes(env):
    node, w = env
    with pytest.raises(RPCFailure) as e:
        w.call("getbalances")  # several wallets loaded, none named
    assert e.value.code == -19
    with pytest.raises(RPCFailure) as e:
        w.call("getbalances", wallet="nosuch")
    assert e.value.code == -18
    with pytest.raises(RPCFailure) as e:
        w.call("createwallet", "A")
    assert e.value.code == -35
    with pytest.raises(RPCFailure) as e:
        w.call("sendtoaddress", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "1", wallet="A")
    assert e.value.code == -5 and "main address" in e.value.message
    with pytest.raises(RPCFailure) as e:
        w.call("sendtoaddress", ELSEWHERE, "100000", wallet="A")
    assert e.value.code == -6 and "BTC available" in e.value.message
    with pytest.raises(RPCFailure) as e:
        w.call("sendtoaddress", ELSEWHERE, "-1", wallet="A")
    assert e.value.code == -3
    w.call("unloadwallet", "C")
    assert "C" not in w.call("listwallets")
    with pytest.raises(RPCFailure) as e:
        w.call("createwallet", "C")
    assert e.value.code == -36
    assert w.call("loadwallet", "C") == {"name": "C"}
    path = w.wallets_dir.parent / "A-backup.sqlite"
    w.call("backupwallet", str(path), wallet="A")
    w.call("restorewallet", "Acopy", str(path))
    assert bal(w, "Acopy") == bal(w, "A")


def test_rescan(env):
    node, w = env
    r = w.call("rescanblockchain", 100, wallet="Acopy")
    assert r == {"start_height": 100, "stop_height": node.call("getblockcount")}
    assert bal(w, "Acopy") == bal(w, "A")


# -- the CLI, straight on a wallet file --------------------------------------------------------


def wcli(node: NodeProcess, wallets, *args: str):
    return subprocess.run(
        [sys.executable, "-m", "wallet.cli", "--datadir", str(node.datadir), "--node", node.url,
         "--wallets-dir", str(wallets), *args], cwd=ROOT, env=cli_env(), capture_output=True,
        text=True, timeout=120)


def test_cli(env, tmp_path):
    node, w = env
    d = tmp_path / "cli-wallets"
    r = wcli(node, d, "create", "--passphrase", "pw")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split("mnemonic")[1].split("\n")[1].strip()
    assert len(words.split()) == 12
    addr = wcli(node, d, "receive", "--label", "salary").stdout.strip()
    w.call("sendtoaddress", addr, "2.5", wallet="A")
    out = wcli(node, d, "balance").stdout
    assert "unconfirmed            2.50000000 BTC" in out
    node.call("generatetoaddress", 1, ELSEWHERE)
    js = json.loads(wcli(node, d, "--json", "balance").stdout, parse_float=Decimal)
    assert js["confirmed"] == Decimal("2.5") and js["unconfirmed"] == 0
    r = wcli(node, d, "send", ELSEWHERE, "1")
    assert r.returncode == 1 and "passphrase" in r.stderr
    r = wcli(node, d, "send", ELSEWHERE, "1", "--passphrase", "nope")
    assert r.returncode == 1 and "incorrect" in r.stderr
    r = wcli(node, d, "send", ELSEWHERE, "1", "--fee-rate", "5", "--passphrase", "pw")
    assert r.returncode == 0, r.stderr
    txid = r.stdout.split()[1]
    assert txid in node.call("getrawmempool")
    r = wcli(node, d, "send", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "1")
    assert r.returncode == 1 and "main address" in r.stderr
    r = wcli(node, d, "send", ELSEWHERE, "50", "--passphrase", "pw")
    assert r.returncode == 1 and "Insufficient funds: need 50.0" in r.stderr
    hist = wcli(node, d, "history").stdout
    assert "receive" in hist and "send" in hist and txid in hist
    r = wcli(node, d, "bumpfee", txid, "--fee-rate", "20", "--passphrase", "pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[2] in node.call("getrawmempool")
    assert "confs" in wcli(node, d, "utxos").stdout
    # restore from the words elsewhere: same coins
    d2 = tmp_path / "restored"
    r = wcli(node, d2, "restore", "--mnemonic", words)
    assert r.returncode == 0, r.stderr
    node.call("generatetoaddress", 1, ELSEWHERE)
    a = json.loads(wcli(node, d, "--json", "balance").stdout, parse_float=Decimal)
    b = json.loads(wcli(node, d2, "--json", "balance").stdout, parse_float=Decimal)
    assert a == b and a["confirmed"] > 1
    # sweep: everything to one address, no change
    r = wcli(node, d, "sweep", ELSEWHERE, "--fee-rate", "2", "--passphrase", "pw")
    assert r.returncode == 0, r.stderr
    swept = node.call("getrawtransaction", r.stdout.split()[1], True)
    assert len(swept["vout"]) == 1 and swept["vout"][0]["scriptPubKey"]["address"] == ELSEWHERE
    js = json.loads(wcli(node, d, "--json", "balance").stdout, parse_float=Decimal)
    assert js["confirmed"] == 0 and js["unconfirmed"] == 0
    # the node is gone: the URL tried is in the error
    dead = f"http://127.0.0.1:{free_port()}"
    r = subprocess.run([sys.executable, "-m", "wallet.cli", "--wallets-dir", str(d), "--node",
                        dead, "--rpc-user", "u", "--rpc-password", "p", "balance"], cwd=ROOT,
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and dead in r.stderr and "Could not reach the node" in r.stderr


def test_cli_psbt_and_server_mode(env, tmp_path):
    node, w = env
    d = tmp_path / "psbt-wallets"
    assert wcli(node, d, "create").returncode == 0
    addr = wcli(node, d, "receive").stdout.strip()
    w.call("sendtoaddress", addr, "1", wallet="A")
    node.call("generatetoaddress", 1, ELSEWHERE)
    # psbt create -> decode -> sign -> finalize --broadcast, each a separate command
    r = wcli(node, d, "psbt", "create", f"{ELSEWHERE}=0.4", "--fee-rate", "3")
    assert r.returncode == 0, r.stderr
    psbt = r.stdout.split()[0]
    decoded = json.loads(wcli(node, d, "psbt", "decode", psbt).stdout, parse_float=Decimal)
    assert any(o["amount"] == Decimal("0.4") for o in decoded["outputs"])  # (PSBT v2)
    r = wcli(node, d, "psbt", "sign", psbt, "--no-finalize")
    assert r.returncode == 0 and r.stdout.split()[1] == "incomplete"
    signed = r.stdout.split()[0]
    r = wcli(node, d, "psbt", "finalize", signed, "--broadcast")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in node.call("getrawmempool")
    r = wcli(node, d, "psbt", "combine", signed, psbt)
    assert r.returncode == 0 and r.stdout.strip() == signed
    # through the wallet server: unlock lasts between commands there
    srv = ["--server", f"http://127.0.0.1:{w.port}", "--server-cookie",
           str(w.wallets_dir / ".cookie"), "-w", "E"]
    r = wcli(node, d, *srv, "unlock", "--passphrase", "s3cret pass", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    r = wcli(node, d, *srv, "send", ELSEWHERE, "0.01")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] in node.call("getrawmempool")
    assert wcli(node, d, *srv, "lock").returncode == 0
    r = wcli(node, d, *srv, "send", ELSEWHERE, "0.01")
    assert r.returncode == 1 and "passphrase" in r.stderr
    # --passphrase unlocks for that one command and locks again after it
    r = wcli(node, d, *srv, "send", ELSEWHERE, "0.01", "--passphrase", "s3cret pass")
    assert r.returncode == 0, r.stderr
    assert w.call("getwalletinfo", wallet="E")["unlocked_until"] == 0
    r = wcli(node, d, *srv, "send", ELSEWHERE, "0.01", "--to", f"{ELSEWHERE}=0.02")
    assert r.returncode != 0 and "named twice" in r.stderr
    r = wcli(node, d, "unlock", "--passphrase", "x")  # no server: refused, with why
    assert r.returncode == 1 and "--server" in r.stderr
    node.call("generatetoaddress", 1, ELSEWHERE)
