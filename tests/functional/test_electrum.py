"""ElectrumX (spesmilo's e-x) serving a minibtcd through regtest/electrum.py: real processes,
answers checked against the node's RPC; after a reorg, node restarts and SIGKILLs the server's
answers equal a fresh rebuild's; a BDK wallet syncs its exact balance and spends through it."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from pathlib import Path

import pytest

from regtest.electrum import (
    ElectrumClient,
    ElectrumError,
    ElectrumService,
    electrumx_available,
)
from tests.functional.bdkutil import bip84_wallet, next_address
from tests.functional.framework import NodeProcess, free_port

pytestmark = pytest.mark.skipif(not electrumx_available(),
                                reason="ElectrumX (e-x) is not installed")

BANNER = "minibtc regtest Electrum server"


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def sats(btc) -> int:
    return int(Decimal(str(btc)) * 100_000_000)


def scripthash(spk_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(spk_hex)).digest()[::-1].hex()


def status_of(history: list[dict]) -> str | None:
    """The Electrum status of a history (protocol: sha256 of 'txid:height:' concatenated)."""
    if not history:
        return None
    text = "".join(f"{h['tx_hash']}:{h['height']}:" for h in history)
    return hashlib.sha256(text.encode()).hexdigest()


def merkle_root_from_branch(leaf_hex: str, branch: list[str], pos: int) -> str:
    h = bytes.fromhex(leaf_hex)[::-1]
    for i, b in enumerate(branch):
        b = bytes.fromhex(b)[::-1]
        h = sha256d(b + h) if (pos >> i) & 1 else sha256d(h + b)
    return h[::-1].hex()


def wait_for(cond, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Env:
    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.node = NodeProcess(tmp / "node", "-txindex", "-txospenderindex",
                                "-fallbackfee=0.0002")
        self.node.start()
        self.node.create_wallet()
        self.mine(101)
        self.svc = self.service("ex", ssl=True)
        self.svc.start()
        self.client = ElectrumClient("127.0.0.1", self.svc.port)
        self.addresses: list[str] = []

    def service(self, name: str, ssl: bool = False) -> ElectrumService:
        return ElectrumService(self.node.chain_dir, self.node.rpcport,
                               self.node.chain_dir / ".cookie", free_port(), self.tmp / name,
                               ssl_port=free_port() if ssl else None, banner=BANNER,
                               poll_ms=100)

    def call(self, method, *params, **kw):
        return self.node.call(method, *params, **kw)

    def mine(self, n: int = 1) -> list[str]:
        return self.call("generatetoaddress", n, self.call("getnewaddress", wallet="default"))

    def new_address(self) -> tuple[str, str]:
        addr = self.call("getnewaddress", wallet="default")
        self.addresses.append(addr)
        spk = self.call("getaddressinfo", addr, wallet="default")["scriptPubKey"]
        return addr, scripthash(spk)

    def synced(self, svc: ElectrumService | None = None, also: tuple[str, ...] = ()) -> None:
        """Wait until the server's tip is the node's, and the mempool transactions of the
        addresses used (and `also`) are the node's."""
        svc = svc or self.svc
        best = self.call("getbestblockhash")
        want = self.call("getblockheader", best, False)
        with ElectrumClient("127.0.0.1", svc.port) as c:
            wait_for(lambda: c.call("blockchain.headers.subscribe")["hex"] == want, 60,
                     "the Electrum server to reach the node's tip")
        # ... and its mempool the node's
        mempool = set(self.call("getrawmempool"))
        for addr in (*self.addresses, *also):
            spk = self.call("getaddressinfo", addr, wallet="default")["scriptPubKey"]
            sh = scripthash(spk)
            want = {t for t in mempool if any(
                o["scriptPubKey"]["hex"] == spk
                for o in self.call("getrawtransaction", t, True)["vout"])}
            with ElectrumClient("127.0.0.1", svc.port) as c:
                wait_for(lambda c=c, sh=sh, want=want: want <= {m["tx_hash"] for m in c.call(
                    "blockchain.scripthash.get_mempool", sh)} <= mempool, 30, "mempool")

    def expected_history(self, addr: str) -> list[dict]:
        """An address's history from the node's RPC alone: every transaction paying to it or
        spending from it (wallet view with -txindex), confirmed by height then block
        position, then the mempool's."""
        txids = {t["txid"] for t in self.call("listtransactions", "*", 100000, 0, True,
                                              wallet="default")}
        spk = self.call("getaddressinfo", addr, wallet="default")["scriptPubKey"]
        confirmed, pending = [], []
        for txid in txids:
            tx = self.call("getrawtransaction", txid, True)
            touches = any(o["scriptPubKey"]["hex"] == spk for o in tx["vout"])
            for i in tx["vin"]:
                if "txid" in i:
                    prev = self.call("getrawtransaction", i["txid"], True)
                    touches |= prev["vout"][i["vout"]]["scriptPubKey"]["hex"] == spk
            if not touches:
                continue
            if "blockhash" in tx:
                block = self.call("getblock", tx["blockhash"])
                confirmed.append((block["height"], block["tx"].index(txid), txid))
            else:
                entry = self.call("getmempoolentry", txid)
                height = -1 if entry["depends"] else 0
                pending.append({"tx_hash": txid, "height": height,
                                "fee": sats(entry["fees"]["base"])})
        out = [{"tx_hash": t, "height": h} for h, _, t in sorted(confirmed)]
        # (Electrum orders the mempool part by height then txid)
        return out + sorted(pending, key=lambda m: (-m["height"], m["tx_hash"]))

    def stop(self) -> None:
        self.client.close()
        self.svc.stop()
        self.node.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("electrum"))
    try:
        yield e
    finally:
        e.stop()


def test_server_methods_match_the_node(env):
    c = env.client
    assert c.server_version[0].startswith("ElectrumX") and c.server_version[1] == "1.4"
    assert c.call("server.ping") is None
    assert c.call("server.banner") == BANNER
    features = c.call("server.features")
    assert features["genesis_hash"] == env.call("getblockhash", 0)
    assert features["hash_function"] == "sha256"
    assert features["protocol_min"] == "1.4"
    # the node states Core's interface version ElectrumX requires (31.0 and later)
    assert env.call("getnetworkinfo")["version"] >= 310000
    assert env.call("getnetworkinfo")["subversion"].startswith("/minibtc:")
    assert Decimal(str(c.call("blockchain.relayfee"))) == \
        Decimal(str(env.call("getnetworkinfo")["relayfee"]))
    for blocks in (1, 2, 6):
        node_est = env.call("estimatesmartfee", blocks)
        expect = Decimal(str(node_est["feerate"])) if "feerate" in node_est else Decimal(-1)
        assert Decimal(str(c.call("blockchain.estimatefee", blocks))) == expect
    assert c.call("mempool.get_fee_histogram") == []
    # TLS, with the self-signed certificate the service made
    with ElectrumClient("127.0.0.1", env.svc.ssl_port, use_ssl=True,
                        cafile=str(env.svc.cert_file)) as s:
        assert s.server_version[1] == "1.4"
        assert s.call("blockchain.headers.subscribe")["height"] == env.call("getblockcount")


def test_bad_requests_get_errors_and_the_server_stays_up(env):
    c = env.client
    for method, params in [("blockchain.block.header", [10 ** 6]),
                           ("blockchain.transaction.get", ["zz"]),
                           ("blockchain.transaction.get", ["00" * 32]),
                           ("blockchain.scripthash.get_history", ["nothex"]),
                           ("blockchain.transaction.broadcast", ["0200"]),
                           ("no.such.method", [])]:
        with pytest.raises(ElectrumError):
            c.call(method, *params)
    assert c.call("server.ping") is None


def test_headers_and_header_notifications(env):
    c = env.client
    height = env.call("getblockcount")
    tip = c.call("blockchain.headers.subscribe")
    assert tip == {"height": height,
                   "hex": env.call("getblockheader", env.call("getbestblockhash"), False)}
    hashes = [env.call("getblockhash", h) for h in range(height + 1)]
    raw = [env.call("getblockheader", h, False) for h in hashes]
    for h in (0, 1, 50, height):
        assert c.call("blockchain.block.header", h) == raw[h]
    got = c.call("blockchain.block.headers", 0, 20)
    assert got["count"] == 20 and got["hex"] == "".join(raw[:20]) and got["max"] >= 20
    got = c.call("blockchain.block.headers", height - 1, 10)  # past the tip: what exists
    assert got["count"] == 2 and got["hex"] == "".join(raw[-2:])
    # a header with its proof against a checkpoint: the root of the headers' merkle tree
    proof = c.call("blockchain.block.header", 5, height)
    assert proof["header"] == raw[5]
    leaf = sha256d(bytes.fromhex(raw[5]))[::-1].hex()
    assert merkle_root_from_branch(leaf, proof["branch"], 5) == proof["root"]
    # new blocks are notified
    new = env.mine(1)[0]
    note = c.notification("blockchain.headers.subscribe")
    assert note == [{"height": height + 1, "hex": env.call("getblockheader", new, False)}]


def test_scripthash_history_balance_utxos_and_notifications(env):
    c = env.client
    addr, sh = env.new_address()
    assert c.call("blockchain.scripthash.subscribe", sh) is None
    assert c.call("blockchain.scripthash.get_history", sh) == []
    assert c.call("blockchain.scripthash.get_balance", sh) == {"confirmed": 0, "unconfirmed": 0}

    txid1 = env.call("sendtoaddress", addr, 1.5, wallet="default")
    note = c.notification("blockchain.scripthash.subscribe")
    expected = env.expected_history(addr)
    assert [m["tx_hash"] for m in expected] == [txid1]
    assert note == [sh, status_of(expected)]
    assert c.call("blockchain.scripthash.get_mempool", sh) == expected
    assert c.call("blockchain.scripthash.get_history", sh) == expected
    assert c.call("blockchain.scripthash.get_balance", sh) == {"confirmed": 0,
                                                               "unconfirmed": 150_000_000}
    [u] = c.call("blockchain.scripthash.listunspent", sh)
    assert u["tx_hash"] == txid1 and u["height"] == 0 and u["value"] == 150_000_000

    env.mine(1)
    note = c.notification("blockchain.scripthash.subscribe")
    expected = env.expected_history(addr)
    assert note == [sh, status_of(expected)]
    assert expected[0]["height"] == env.call("getblockcount")

    # a second payment and a spend from the address (of a coin the wallet's payment leaves)
    out = next(o for o in env.call("getrawtransaction", txid1, True)["vout"]
               if o["scriptPubKey"]["address"] == addr)
    assert env.call("lockunspent", False, [{"txid": txid1, "vout": out["n"]}],
                    wallet="default")
    txid2 = env.call("sendtoaddress", addr, 0.25, wallet="default")
    c.notification("blockchain.scripthash.subscribe")
    raw = env.call("createrawtransaction", [{"txid": txid1, "vout": out["n"]}],
                   [{env.call("getnewaddress", wallet="default"): 1.4999}])
    prev = [{"txid": txid1, "vout": out["n"], "scriptPubKey": out["scriptPubKey"]["hex"],
             "amount": out["value"]}]
    signed = env.call("signrawtransactionwithwallet", raw, prev, wallet="default")
    assert signed["complete"], signed
    signed = signed["hex"]
    txid3 = c.call("blockchain.transaction.broadcast", signed)
    assert txid3 in env.call("getrawmempool")
    note = c.notification("blockchain.scripthash.subscribe")
    expected = env.expected_history(addr)
    assert {m["tx_hash"] for m in expected} == {txid1, txid2, txid3}
    assert note == [sh, status_of(expected)]
    assert c.call("blockchain.scripthash.get_history", sh) == expected
    assert c.call("blockchain.scripthash.get_mempool", sh) == [m for m in expected
                                                               if m["height"] <= 0]
    assert c.call("blockchain.scripthash.get_balance", sh) == {
        "confirmed": 150_000_000, "unconfirmed": 25_000_000 - 150_000_000}

    env.mine(1)
    c.notification("blockchain.scripthash.subscribe")
    env.synced()
    scan = env.call("scantxoutset", "start", [f"addr({addr})"])
    assert c.call("blockchain.scripthash.get_balance", sh) == {
        "confirmed": sats(scan["total_amount"]), "unconfirmed": 0}
    utxos = c.call("blockchain.scripthash.listunspent", sh)
    assert sorted((u["tx_hash"], u["tx_pos"], u["height"], u["value"]) for u in utxos) == \
        sorted((u["txid"], u["vout"], u["height"], sats(u["amount"])) for u in scan["unspents"])
    assert c.call("blockchain.scripthash.get_history", sh) == env.expected_history(addr)


def test_transactions_merkle_proofs_and_positions(env):
    c = env.client
    env.synced()
    height = env.call("getblockcount")
    block = env.call("getblock", env.call("getblockhash", height))
    assert len(block["tx"]) >= 2
    for pos, txid in enumerate(block["tx"]):
        assert c.call("blockchain.transaction.get", txid) == \
            env.call("getrawtransaction", txid)
        verbose = c.call("blockchain.transaction.get", txid, True)
        node_verbose = env.call("getrawtransaction", txid, True)
        for key in ("txid", "hash", "hex", "size", "vsize", "weight", "locktime", "blockhash",
                    "vin"):
            assert verbose[key] == node_verbose[key], key
        assert [sats(o["value"]) for o in verbose["vout"]] == \
            [sats(o["value"]) for o in node_verbose["vout"]]
        proof = c.call("blockchain.transaction.get_merkle", txid, height)
        assert proof["block_height"] == height and proof["pos"] == pos
        assert merkle_root_from_branch(txid, proof["merkle"], pos) == block["merkleroot"]
        assert c.call("blockchain.transaction.id_from_pos", height, pos) == txid
        got = c.call("blockchain.transaction.id_from_pos", height, pos, True)
        assert got["tx_hash"] == txid
        assert merkle_root_from_branch(txid, got["merkle"], pos) == block["merkleroot"]
    with pytest.raises(ElectrumError):
        c.call("blockchain.transaction.id_from_pos", height, len(block["tx"]))


def test_broadcast_errors_carry_the_nodes_reason(env):
    c = env.client
    unspent = env.call("listunspent", wallet="default")[0]
    raw = env.call("createrawtransaction", [{"txid": unspent["txid"], "vout": unspent["vout"]}],
                   [{env.call("getnewaddress", wallet="default"): 0.001}])
    signed = env.call("signrawtransactionwithwallet", raw, wallet="default")["hex"]
    with pytest.raises(ElectrumError, match="max-fee-exceeded|Fee exceeds maximum"):
        c.call("blockchain.transaction.broadcast", signed)
    assert c.call("server.ping") is None


def snapshot(env: Env, svc: ElectrumService) -> dict:
    """Everything a wallet would read for the addresses used so far."""
    with ElectrumClient("127.0.0.1", svc.port) as c:
        tip = c.call("blockchain.headers.subscribe")
        out = {"tip": tip, "headers": c.call("blockchain.block.headers", 0, tip["height"] + 1)}
        for addr in env.addresses:
            spk = env.call("getaddressinfo", addr, wallet="default")["scriptPubKey"]
            sh = scripthash(spk)
            out[addr] = {m: c.call(f"blockchain.scripthash.{m}", sh)
                         for m in ("get_history", "get_balance", "listunspent", "get_mempool")}
        return out


def test_reorg_restart_and_kill_match_a_fresh_rebuild(env):
    c = env.client
    addr, sh = env.new_address()
    txid = env.call("sendtoaddress", addr, 0.75, wallet="default")
    env.mine(1)
    confirmed_at = env.call("getblockcount")
    env.synced()
    assert c.call("blockchain.scripthash.get_history", sh) == [{"tx_hash": txid,
                                                                 "height": confirmed_at}]
    # reorg: the block confirming it replaced by two empty ones, then it confirms later
    env.call("invalidateblock", env.call("getblockhash", confirmed_at))
    addr0 = env.call("getnewaddress", wallet="default")
    env.call("generateblock", addr0, [])
    env.call("generateblock", addr0, [])
    env.mine(1)
    env.synced()
    moved = env.expected_history(addr)
    assert moved == [{"tx_hash": txid, "height": confirmed_at + 2}]
    assert c.call("blockchain.scripthash.get_history", sh) == moved
    # transactions left in the mempool, for the mempool answers and the fee histogram (whose
    # bins hold ~30,000 vB each: one payment to 1,000 addresses fills one)
    pending = env.call("sendtoaddress", addr, 0.1, wallet="default")
    desc = next(d["desc"] for d in env.call("listdescriptors", wallet="default")["descriptors"]
                if d["desc"].startswith("wpkh(") and not d["internal"])
    many = env.call("deriveaddresses", desc, [1000, 1999])
    env.call("sendmany", "", {a: 0.001 for a in many}, wallet="default")
    env.synced()

    fresh = env.service("fresh")
    fresh.start()
    try:
        env.synced(fresh)
        live = snapshot(env, env.svc)
        assert live == snapshot(env, fresh)
        assert any(m["tx_hash"] == pending for m in live[addr]["get_mempool"])
        with ElectrumClient("127.0.0.1", fresh.port) as f:
            hist = f.call("mempool.get_fee_histogram")
        assert hist, "a mempool of over 30,000 vB fills a bin"
        # bins by falling fee rate (sat/vB, to 0.1), each the vsize of the transactions paying
        # at most its rate and more than the next one's: all of the node's down to the last
        rates = [(int(sats(e["fees"]["base"]) * 10 // e["vsize"]) / 10, e["vsize"])
                 for e in env.call("getrawmempool", True).values()]
        assert [r for r, _ in hist] == sorted((r for r, _ in hist), reverse=True)
        assert {r for r, _ in hist} <= {r for r, _ in rates}
        assert sum(size for _, size in hist) == sum(v for r, v in rates if r >= hist[-1][0])

        # the node restarts (a new cookie: the services see it and tell ElectrumX), mines on
        env.node.stop()
        env.node.start()
        env.mine(2)
        env.synced()
        env.synced(fresh)
        assert snapshot(env, env.svc) == snapshot(env, fresh)

        # the server is killed (SIGKILL) mid-life and started again on its own database
        env.client.close()
        env.svc.proc.kill()
        env.svc.proc.wait()
        env.svc.proc = None
        env.mine(1)
        env.svc.start()
        env.client = ElectrumClient("127.0.0.1", env.svc.port)
        env.synced()
        env.synced(fresh)
        assert snapshot(env, env.svc) == snapshot(env, fresh)

        # the node is killed (SIGKILL) and restarts
        env.node.kill()
        env.node.start()
        env.mine(1)
        env.synced()
        env.synced(fresh)
        assert snapshot(env, env.svc) == snapshot(env, fresh)
    finally:
        fresh.stop()


def test_bdk_wallet_syncs_and_spends_through_electrum(env):
    bdk = pytest.importorskip("bdkpython")
    wallet = bip84_wallet()
    a1, a2 = next_address(wallet), next_address(wallet)
    env.call("sendtoaddress", a1, 1.25, wallet="default")
    env.call("sendtoaddress", a2, 0.5, wallet="default")
    env.mine(1)
    env.call("sendtoaddress", a1, 0.125, wallet="default")  # left unconfirmed
    env.synced(also=(a1, a2))
    client = bdk.ElectrumClient(env.svc.url)

    def sync():
        wallet.apply_update(client.full_scan(wallet.start_full_scan().build(), 10, 10, False))
        return wallet.balance()

    bal = sync()
    assert bal.confirmed.to_sat() == 175_000_000
    assert bal.untrusted_pending.to_sat() == 12_500_000
    assert bal.total.to_sat() == 187_500_000

    dest = env.call("getnewaddress", wallet="default")
    dest_spk = env.call("getaddressinfo", dest, wallet="default")["scriptPubKey"]
    psbt = (bdk.TxBuilder()
            .add_recipient(bdk.Script(bytes.fromhex(dest_spk)), bdk.Amount.from_sat(60_000_000))
            .fee_rate(bdk.FeeRate.from_sat_per_vb(3)).finish(wallet))
    assert wallet.sign(psbt)
    tx = psbt.extract_tx()
    fee = wallet.calculate_fee(tx).to_sat()
    txid = str(client.transaction_broadcast(tx))
    assert txid in env.call("getrawmempool")
    assert sats(env.call("getmempoolentry", txid)["fees"]["base"]) == fee
    env.mine(1)
    env.synced()
    assert env.call("getreceivedbyaddress", dest, wallet="default") == Decimal("0.6")
    bal = sync()
    assert bal.total.to_sat() == bal.confirmed.to_sat() == 187_500_000 - 60_000_000 - fee


def _parent_and_child(env: Env) -> tuple[str, str, str, str]:
    """A signed parent (paying a wallet address) and a child spending it: (hexes, txids)."""
    coin = next(u for u in env.call("listunspent", wallet="default")
                if Decimal(str(u["amount"])) >= 1)
    addr = env.call("getnewaddress", wallet="default")
    value = Decimal(str(coin["amount"])) - Decimal("0.0001")
    raw = env.call("createrawtransaction", [{"txid": coin["txid"], "vout": coin["vout"]}],
                   [{addr: str(value)}])
    parent = env.call("signrawtransactionwithwallet", raw, wallet="default")["hex"]
    ptx = env.call("decoderawtransaction", parent)
    raw = env.call("createrawtransaction", [{"txid": ptx["txid"], "vout": 0}],
                   [{env.call("getnewaddress", wallet="default"): str(value - Decimal("0.0001"))}])
    prev = [{"txid": ptx["txid"], "vout": 0, "amount": str(value),
             "scriptPubKey": ptx["vout"][0]["scriptPubKey"]["hex"]}]
    child = env.call("signrawtransactionwithwallet", raw, prev, wallet="default")["hex"]
    return parent, child, ptx["txid"], env.call("decoderawtransaction", child)["txid"]


def test_submitpackage_as_cores(env):
    from tests.functional.framework import RPCFailure

    parent, child, ptxid, ctxid = _parent_and_child(env)
    for bad, code, text in [
        ([parent], -8, "Array must contain between 2 and 25 transactions."),
        ([child, parent], -25, "package topology disallowed. not child-with-parents or "
                               "parents depend on each other."),
        ([parent, "00zz"], -22, "TX decode failed: 00zz Make sure the tx has at least one "
                                "input."),
    ]:
        with pytest.raises(RPCFailure) as err:
            env.call("submitpackage", bad)
        assert (err.value.code, err.value.message) == (code, text)
    with pytest.raises(RPCFailure) as err:
        env.call("submitpackage", "nope")
    assert err.value.code == -3
    # a child and its parent, accepted together
    res = env.call("submitpackage", [parent, child])
    assert res["package_msg"] == "success" and res["replaced-transactions"] == []
    pw = env.call("decoderawtransaction", parent)["hash"]
    cw = env.call("decoderawtransaction", child)["hash"]
    assert set(res["tx-results"]) == {pw, cw}
    for wtxid, txid in ((pw, ptxid), (cw, ctxid)):
        r = res["tx-results"][wtxid]
        entry = env.call("getmempoolentry", txid)
        assert r["txid"] == txid and r["vsize"] == entry["vsize"]
        assert Decimal(str(r["fees"]["base"])) == Decimal(str(entry["fees"]["base"]))
        assert r["fees"]["effective-includes"] == [wtxid]
    # again: both already in the mempool (no effective fee rate, as Core)
    again = env.call("submitpackage", [parent, child])
    assert again["package_msg"] == "success"
    assert all("effective-feerate" not in r["fees"] for r in again["tx-results"].values())
    env.mine(1)


def test_electrum_1_6_and_1_7_methods(env):
    """Protocol 1.6's broadcast_package and mempool.get_info, 1.7's outpoint status (from the
    node's -txospenderindex through gettxspendingprevout)."""
    parent, child, ptxid, ctxid = _parent_and_child(env)
    with ElectrumClient("127.0.0.1", env.svc.port, protocol="1.7") as c:
        assert c.server_version[1] == "1.7"
        assert c.call("blockchain.transaction.broadcast_package", [parent, child]) == \
            {"success": True}
        assert {ptxid, ctxid} <= set(env.call("getrawmempool"))
        info = env.call("getmempoolinfo")
        got = c.call("mempool.get_info")
        for key in ("mempoolminfee", "minrelaytxfee", "incrementalrelayfee"):
            assert Decimal(str(got[key])) == Decimal(str(info[key]))
        env.mine(1)
        env.synced()
        height = env.call("getblockcount")
        pvout = env.call("getrawtransaction", ptxid, True)["vout"][0]["scriptPubKey"]["hex"]
        cvout = env.call("getrawtransaction", ctxid, True)["vout"][0]["scriptPubKey"]["hex"]
        status = c.call("blockchain.outpoint.get_status", ptxid, 0, pvout)
        spend = env.call("gettxspendingprevout", [{"txid": ptxid, "vout": 0}])[0]
        assert spend["spendingtxid"] == ctxid
        assert status == {"funder_height": height, "spender_txhash": ctxid,
                          "spender_height": height}
        unspent = c.call("blockchain.outpoint.get_status", ctxid, 0, cvout)
        assert unspent == {"funder_height": height}
        assert c.call("blockchain.outpoint.get_status", "00" * 32, 0, cvout) == {}


def test_a_node_without_the_indexes_is_refused_clearly(tmp_path):
    with NodeProcess(tmp_path / "plain", "-txindex") as node:
        svc = ElectrumService(node.chain_dir, node.rpcport, node.chain_dir / ".cookie",
                              free_port(), tmp_path / "ex")
        with pytest.raises(ElectrumError, match="must run with -txospenderindex for ElectrumX"):
            svc.start()
        assert svc.proc is None


def test_command_line_service_stops_its_server_when_killed(env, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    server = None
    cli = subprocess.Popen([sys.executable, "-m", "regtest.electrum", "--datadir",
                            str(env.node.datadir), "--rpcport", str(env.node.rpcport),
                            "--port", str(port), "--db-dir", str(tmp_path / "ex")],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert cli.stdout.readline().strip() == f"tcp://127.0.0.1:{port}"
        with ElectrumClient("127.0.0.1", port) as c:
            assert c.call("blockchain.headers.subscribe")["height"] == \
                env.call("getblockcount")
        children = Path(f"/proc/{cli.pid}/task/{cli.pid}/children").read_text().split()
        assert len(children) == 1
        server = int(children[0])
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(60) == 0

        def gone() -> bool:
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{server}/stat").read_text().split()[2] == "Z"

        wait_for(gone, 60, "ElectrumX to stop with its command line")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        if server is not None:
            try:
                os.kill(server, signal.SIGKILL)  # (only if it outlived its command line)
            except ProcessLookupError:
                pass


def test_rpc_user_and_password_with_url_characters(tmp_path):
    user, password = "el@ctrum", "p@ss:w/rd%"
    node = NodeProcess(tmp_path / "n", "-txindex", "-txospenderindex", f"-rpcuser={user}",
                       f"-rpcpassword={password}")
    node.user, node.password = user, password
    with node:
        node.call("generatetoaddress", 3, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")
        svc = ElectrumService(node.chain_dir, node.rpcport, None, free_port(), tmp_path / "ex",
                              rpc_user=user, rpc_password=password)
        svc.start(timeout=60)  # (with the credentials garbled it never serves)
        try:
            with ElectrumClient("127.0.0.1", svc.port) as c:
                assert c.call("blockchain.headers.subscribe")["height"] == 3
        finally:
            svc.stop()
