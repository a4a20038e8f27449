"""The wallet methods minibtcd answered -32601 to before, against a real node: expectations
computed here from the transactions themselves.

listaddressgroupings groups a spend's inputs with its change; simulaterawtransaction's
balance change equals the change getbalances shows after the transactions are sent;
settxfee (behind -deprecatedrpc, as Core 30) sets the rate a send pays; setwalletflag
avoid_reuse: reused coins are marked, counted apart and left out of sendtoaddress's coin
selection; importprunedfunds puts back a transaction removeprunedfunds took out, with its
block; createwalletdescriptor derives Core's descriptor from the wallet's HD key;
migratewallet and walletdisplayaddress answer as Core does for descriptor wallets without
an external signer."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from consensus.params import CHAINS
from tests.functional.framework import NodeProcess, funded_wallet_node, rpc_error
from wallet.bip32 import ExtKey
from wallet.descriptors import add_checksum

REGTEST = CHAINS["regtest"]
ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with funded_wallet_node(tmp_path_factory.mktemp("walletmore") / "n",
                            "-deprecatedrpc=settxfee") as n:
        yield n


_err = rpc_error


def _mine(node):
    node.call("generatetoaddress", 1, node.call("getnewaddress", wallet="w"))


def _fund(node, wallet, amounts, label=""):
    addrs = []
    for amount in amounts:
        a = node.call("getnewaddress", label, wallet=wallet)
        node.call("sendtoaddress", a, amount, wallet="w")
        addrs.append(a)
    _mine(node)
    return addrs


def test_listaddressgroupings_groups_inputs_and_change(node):
    node.call("createwallet", "g")
    a1, a2 = _fund(node, "g", [Decimal(1), Decimal(1)])
    txid = node.call("sendtoaddress", ELSEWHERE, Decimal("1.5"), wallet="g")
    _mine(node)
    tx = node.call("decoderawtransaction", node.call("gettransaction", txid, wallet="g")["hex"])
    spent = {(i["txid"], i["vout"]) for i in tx["vin"]}
    assert len(spent) == 2  # 1.5 needs both coins
    change = [o for o in tx["vout"] if o["scriptPubKey"].get("address") != ELSEWHERE]
    assert len(change) == 1
    c_addr, c_value = change[0]["scriptPubKey"]["address"], change[0]["value"]
    (a3,) = _fund(node, "g", [Decimal("0.25")], label="lone")
    groups = node.call("listaddressgroupings", wallet="g")
    as_sets = sorted((sorted(tuple(e) for e in g) for g in groups), key=len)
    assert as_sets == [
        [(a3, Decimal("0.25"), "lone")],
        sorted([(a1, Decimal(0), ""), (a2, Decimal(0), ""), (c_addr, c_value)]),
    ]


def test_simulaterawtransaction_matches_the_balance_change(node):
    node.call("createwallet", "s")
    _fund(node, "s", [Decimal(2)])
    g = {"wallet": "s"}

    def total():
        m = node.call("getbalances", **g)["mine"]
        return m["trusted"] + m["untrusted_pending"]

    raw = node.call("createrawtransaction", [], [{ELSEWHERE: Decimal("0.7")}])
    funded = node.call("fundrawtransaction", raw, **g)["hex"]
    tx1 = node.call("signrawtransactionwithwallet", funded, **g)["hex"]
    # a second transaction spending the first one's change (a new output of the array)
    dec = node.call("decoderawtransaction", tx1)
    change = next(o for o in dec["vout"] if o["scriptPubKey"].get("address") != ELSEWHERE)
    inputs = [{"txid": dec["txid"], "vout": change["n"]}]
    raw2 = node.call("createrawtransaction", inputs,
                     [{ELSEWHERE: change["value"] - Decimal("0.0001")}])
    tx2 = node.call("signrawtransactionwithwallet", raw2, [{
        "txid": dec["txid"], "vout": change["n"], "scriptPubKey": change["scriptPubKey"]["hex"],
        "amount": change["value"]}], **g)["hex"]
    one = node.call("simulaterawtransaction", [tx1], **g)["balance_change"]
    both = node.call("simulaterawtransaction", [tx1, tx2], **g)["balance_change"]
    assert both == -Decimal(2)  # everything leaves the wallet
    assert _err(node.call, "simulaterawtransaction", [tx1, tx1], **g) == (
        -8, "Transaction(s) are spending the same output more than once")
    assert _err(node.call, "simulaterawtransaction", [tx2], **g) == (
        -8, "One or more transaction inputs are missing or have been spent already")
    assert _err(node.call, "simulaterawtransaction", ["zz"], **g) == (
        -22, "Transaction hex string decoding failure.")
    assert _err(node.call, "simulaterawtransaction", [tx1], {"foo": 1}, **g)[0] == -3
    before = total()
    node.call("sendrawtransaction", tx1)
    assert total() - before == one
    node.call("sendrawtransaction", tx2)
    assert total() - before == both


def test_settxfee(node, tmp_path):
    g = {"wallet": "w"}
    assert node.call("settxfee", Decimal("0.00025"), **g) is True
    assert node.call("getwalletinfo", **g)["paytxfee"] == Decimal("0.00025")
    txid = node.call("sendtoaddress", ELSEWHERE, Decimal("0.1"), **g)
    fee = -node.call("gettransaction", txid, **g)["fee"]
    vsize = node.call("getmempoolentry", txid)["vsize"]
    assert fee == Decimal(25 * vsize) / 10**8  # 25 sat/vB
    assert node.call("settxfee", 0, **g) is True
    assert node.call("getwalletinfo", **g)["paytxfee"] == 0
    code, msg = _err(node.call, "settxfee", Decimal("0.00000001"), **g)
    assert code == -8 and msg.startswith("txfee cannot be less than min relay tx fee (")
    assert _err(node.call, "settxfee", Decimal("0.5"), **g) == (
        -8, "txfee cannot be more than wallet max tx fee (0.10000000 BTC/kvB)")
    # without -deprecatedrpc=settxfee: Core 30's -32
    with NodeProcess(tmp_path / "plain") as plain:
        plain.call("createwallet", "x")
        code, msg = _err(plain.call, "settxfee", Decimal("0.0001"), wallet="x")
        assert code == -32
        assert msg.startswith("settxfee is deprecated and will be fully removed in v31.0.")


def test_avoid_reuse(node):
    node.call("createwallet", "r")
    g = {"wallet": "r"}
    r1 = node.call("getnewaddress", **g)
    for _ in range(2):
        node.call("sendtoaddress", r1, Decimal(1), wallet="w")
    (r2,) = _fund(node, "r", [Decimal(1)])
    assert "avoid_reuse" not in node.call("getbalances", **g)["mine"]
    assert _err(node.call, "getbalance", avoid_reuse=True, **g) == (
        -4, 'wallet does not have the "avoid reuse" feature enabled')
    res = node.call("setwalletflag", "avoid_reuse", **g)
    assert res["flag_name"] == "avoid_reuse" and res["flag_state"] is True
    assert res["warnings"].startswith("You need to rescan the blockchain")
    assert node.call("getwalletinfo", **g)["avoid_reuse"] is True
    assert _err(node.call, "setwalletflag", "avoid_reuse", **g) == (
        -8, "Wallet flag is already set to true: avoid_reuse")
    assert _err(node.call, "setwalletflag", "blank", **g) == (
        -8, "Wallet flag is immutable: blank")
    assert _err(node.call, "setwalletflag", "nope", **g) == (-8, "Unknown wallet flag: nope")

    # spend one of r1's two coins: r1 becomes used, its other coin reused
    coins = [u for u in node.call("listunspent", **g) if u["address"] == r1]
    assert len(coins) == 2 and not any(u["reused"] for u in coins)
    node.call("send", [{ELSEWHERE: Decimal("0.9")}], None, None, 10,
              {"inputs": [{"txid": coins[0]["txid"], "vout": coins[0]["vout"]}],
               "add_inputs": False}, **g)
    _mine(node)
    unspent = {(u["txid"], u["vout"]): u for u in node.call("listunspent", **g)}
    left = unspent[(coins[1]["txid"], coins[1]["vout"])]
    assert left["reused"] is True
    assert all(not u["reused"] for k, u in unspent.items() if k != (left["txid"],
                                                                    left["vout"]))
    total = sum(u["amount"] for u in unspent.values())
    assert node.call("getbalances", **g)["mine"]["used"] == Decimal(1)
    assert node.call("getbalance", **g) == total - 1
    assert node.call("getbalance", avoid_reuse=False, **g) == total
    # sendtoaddress leaves the reused coin out: without it 1.5 cannot be paid
    assert total - 1 < Decimal("1.5") < total
    assert _err(node.call, "sendtoaddress", ELSEWHERE, Decimal("1.5"), **g)[0] == -6
    txid = node.call("sendtoaddress", address=ELSEWHERE, amount=Decimal("1.5"),
                     avoid_reuse=False, **g)
    ins = {(i["txid"], i["vout"]) for i in node.call("getrawtransaction", txid, True)["vin"]}
    assert (left["txid"], left["vout"]) in ins
    # set at creation
    node.call("createwallet", wallet_name="r2", avoid_reuse=True)
    assert node.call("getwalletinfo", wallet="r2")["avoid_reuse"] is True
    assert node.call("setwalletflag", "avoid_reuse", False, wallet="r2") == {
        "flag_name": "avoid_reuse", "flag_state": False}


def test_importprunedfunds_removeprunedfunds(node):
    node.call("createwallet", "p")
    g = {"wallet": "p"}
    addr = node.call("getnewaddress", **g)
    txid = node.call("sendtoaddress", addr, Decimal("0.3"), wallet="w")
    other = node.call("sendtoaddress", ELSEWHERE, Decimal("0.2"), wallet="w")
    _mine(node)
    before = node.call("gettransaction", txid, **g)
    assert node.call("getbalance", **g) == Decimal("0.3")
    raw = node.call("gettransaction", txid, wallet="w")["hex"]
    proof = node.call("gettxoutproof", [txid])
    assert node.call("removeprunedfunds", txid, **g) is None
    assert node.call("getbalance", **g) == 0
    assert _err(node.call, "gettransaction", txid, **g)[0] == -5
    assert _err(node.call, "removeprunedfunds", txid, **g) == (
        -4, f"Transaction {txid} does not belong to this wallet")
    # a proof of another transaction, a transaction not ours
    assert _err(node.call, "importprunedfunds", raw, node.call("gettxoutproof", [other]),
                **g) == (-5, "Transaction given doesn't exist in proof")
    assert _err(node.call, "importprunedfunds",
                node.call("gettransaction", other, wallet="w")["hex"],
                node.call("gettxoutproof", [other]), **g) == (
        -5, "No addresses in wallet correspond to included transaction")
    assert _err(node.call, "importprunedfunds", raw, "zz", **g)[0] == -8
    assert node.call("importprunedfunds", raw, proof, **g) is None
    after = node.call("gettransaction", txid, **g)
    for key in ("amount", "confirmations", "blockhash", "blockheight", "blockindex",
                "blocktime", "txid"):
        assert after[key] == before[key], key
    assert node.call("getbalance", **g) == Decimal("0.3")


def test_createwalletdescriptor(node):
    g = {"wallet": "cd"}
    node.call("createwallet", "cd", False, True)  # blank: no HD key yet
    assert _err(node.call, "createwalletdescriptor", "bech32", **g) == (
        -4, "Unable to determine which HD key to use from active descriptors. Please specify "
            "with 'hdkey'")
    master = ExtKey.from_seed(secrets.token_bytes(32))
    xprv = master.serialize(REGTEST)
    res = node.call("importdescriptors", [{
        "desc": add_checksum(f"wpkh({xprv}/84h/1h/0h/0/*)"), "timestamp": "now",
        "active": True}], **g)
    assert res[0]["success"] is True
    assert _err(node.call, "createwalletdescriptor", "foo", **g) == (
        -5, "Unknown address type 'foo'")
    fp = master.fingerprint.hex()
    acct = master.derive_path([86 | 1 << 31, 1 | 1 << 31, 0 | 1 << 31]).neuter()
    want = [add_checksum(f"tr([{fp}/86h/1h/0h]{acct.serialize(REGTEST)}/{i}/*)")
            for i in (0, 1)]
    assert node.call("createwalletdescriptor", "bech32m", **g) == {"descs": want}
    # the new descriptor is the active bech32m one
    assert node.call("getnewaddress", "", "bech32m", **g) == \
        node.call("deriveaddresses", want[0], [0, 0])[0]
    assert _err(node.call, "createwalletdescriptor", "bech32m", **g) == (
        -4, "Descriptor already exists")
    one = node.call("createwalletdescriptor", "legacy", {"internal": True}, **g)["descs"]
    assert len(one) == 1 and one[0].startswith(f"pkh([{fp}/44h/1h/0h]") and "/1/*)#" in one[0]
    stranger = ExtKey.from_seed(secrets.token_bytes(32)).neuter().serialize(REGTEST)
    assert _err(node.call, "createwalletdescriptor", "p2sh-segwit", {"hdkey": stranger},
                **g) == (-4, f"Private key for {stranger} is not known")
    assert _err(node.call, "createwalletdescriptor", "p2sh-segwit", {"hdkey": "xyz"},
                **g) == (-5, "Unable to parse HD key. Please provide a valid xpub")
    hd = master.neuter().serialize(REGTEST)
    made = node.call("createwalletdescriptor", "p2sh-segwit", {"hdkey": hd}, **g)["descs"]
    assert [d.split("]")[0] for d in made] == [f"sh(wpkh([{fp}/49h/1h/0h"] * 2


def test_migratewallet_and_walletdisplayaddress(node):
    already = (-4, "Error: This wallet is already a descriptor wallet")
    assert _err(node.call, "migratewallet", wallet="w") == already
    assert _err(node.call, "migratewallet", "w") == already
    assert _err(node.call, "migratewallet") == (
        -8, "Either RPC endpoint wallet or wallet_name parameter must be provided")
    assert _err(node.call, "migratewallet", "g", wallet="w") == (
        -8, "RPC endpoint wallet and wallet_name parameter specify different wallets")
    code, msg = _err(node.call, "migratewallet", "nosuchwallet")
    assert code == -4 and msg.startswith("Wallet file verification failed.")
    assert _err(node.call, "walletdisplayaddress", "nonsense", wallet="w") == (
        -5, "Invalid address")
    own = node.call("getnewaddress", wallet="w")
    assert _err(node.call, "walletdisplayaddress", own, wallet="w") == (
        -1, "There is no ScriptPubKeyManager for this address")
    text = node.call("help")
    for name in ("listaddressgroupings", "settxfee", "setwalletflag", "simulaterawtransaction",
                 "importprunedfunds", "removeprunedfunds", "createwalletdescriptor",
                 "migratewallet", "walletdisplayaddress"):
        assert f"\n{name}" in text, name
