"""The Esplora HTTP API of a running minibtcd (-esplora): every endpoint against the node's
own RPC answers (an oracle built from getblock verbosity 3 for address histories and sums),
electrs's errors for bad requests, and the address index kept right across a reorg, a restart,
a SIGKILL and -reindex (the answers equal a fresh rebuild's)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from consensus.hashes import sha256d
from tests.functional.framework import NodeProcess, RPCFailure, free_port

SATS = Decimal(100_000_000)


def sats(btc) -> int:
    return int(Decimal(str(btc)) * SATS)


class Esplora:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def request(self, path: str, data: bytes | None = None, method: str | None = None):
        req = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path: str):
        status, headers, body = self.request(path)
        assert status == 200, (path, status, body)
        if headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(body)
        if headers.get("Content-Type", "").startswith("text/plain"):
            return body.decode()
        return body

    def error(self, path: str, data: bytes | None = None) -> tuple[int, str]:
        status, headers, body = self.request(path, data)
        assert headers.get("Content-Type", "").startswith("text/plain")
        return status, body.decode()

    def history(self, kind: str, a: str) -> list[dict]:
        """Every confirmed transaction of an address, newest first, page after page."""
        out = self.get(f"/{kind}/{a}/txs/chain")
        while True:
            page = self.get(f"/{kind}/{a}/txs/chain/{out[-1]['txid']}") if out else []
            if not page:
                return out
            out += page


def oracle(node) -> dict:
    """From RPC alone: for each address, its confirmed transactions (newest first) and its
    funded/spent counts and sums; each output's spender; each tx's block and position."""
    hist: dict[str, list] = {}
    stats: dict[str, list[int]] = {}
    spender: dict[tuple[str, int], tuple[str, int]] = {}
    where: dict[str, tuple[str, int, int]] = {}
    outputs: dict[tuple[str, int], dict] = {}
    for h in range(1, node.call("getblockcount") + 1):
        block = node.call("getblock", node.call("getblockhash", h), 3)
        for pos, tx in enumerate(block["tx"]):
            touched = set()
            where[tx["txid"]] = (block["hash"], h, pos)
            for i, vin in enumerate(tx["vin"]):
                if "coinbase" in vin:
                    continue
                spender[(vin["txid"], vin["vout"])] = (tx["txid"], i)
                a = vin["prevout"]["scriptPubKey"].get("address")
                if a:
                    st = stats.setdefault(a, [0, 0, 0, 0, 0])
                    st[3] += 1
                    st[4] += sats(vin["prevout"]["value"])
                    touched.add(a)
            for n, out in enumerate(tx["vout"]):
                outputs[(tx["txid"], n)] = out
                a = out["scriptPubKey"].get("address")
                if a:
                    st = stats.setdefault(a, [0, 0, 0, 0, 0])
                    st[1] += 1
                    st[2] += sats(out["value"])
                    touched.add(a)
            for a in touched:
                stats[a][0] += 1
                hist.setdefault(a, []).append(tx["txid"])
    return {"hist": {a: v[::-1] for a, v in hist.items()}, "stats": stats,
            "spender": spender, "where": where, "outputs": outputs}


def digest(es: Esplora, node, addresses: list[str]) -> dict:
    """The API's confirmed answers for a set of addresses and every block and transaction."""
    out: dict = {}
    for a in addresses:
        out[f"/address/{a}"] = es.get(f"/address/{a}")
        out[f"history {a}"] = es.history("address", a)
        out[f"/address/{a}/utxo"] = es.get(f"/address/{a}/utxo")
    for h in range(node.call("getblockcount") + 1):
        bh = es.get(f"/block-height/{h}")
        out[f"/block/{bh}"] = es.get(f"/block/{bh}")
        out[f"/block/{bh}/status"] = es.get(f"/block/{bh}/status")
        txids = es.get(f"/block/{bh}/txids")
        out[f"/block/{bh}/txs"] = es.get(f"/block/{bh}/txs")
        for t in txids:
            if h == 0:
                continue
            for tail in ("", "/status", "/outspends", "/merkle-proof"):
                out[f"/tx/{t}{tail}"] = es.get(f"/tx/{t}{tail}")
    return out


def wait_synced(node, es: Esplora) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if es.get("/blocks/tip/hash") == node.call("getbestblockhash") and all(
                v["synced"] for v in node.call("getindexinfo").values()):
            return
        time.sleep(0.1)
    raise TimeoutError("esplora not synced")


def check_against_rpc(node, es: Esplora, addresses: list[str]) -> dict:
    o = oracle(node)
    for a in addresses:
        info = es.get(f"/address/{a}")
        assert info["address"] == a
        st = o["stats"].get(a, [0] * 5)
        assert info["chain_stats"] == {
            "tx_count": st[0], "funded_txo_count": st[1], "funded_txo_sum": st[2],
            "spent_txo_count": st[3], "spent_txo_sum": st[4]}
        got = [t["txid"] for t in es.history("address", a)]
        assert got == o["hist"].get(a, [])
        sh = hashlib.sha256(bytes.fromhex(
            node.call("validateaddress", a)["scriptPubKey"])).hexdigest()
        assert es.get(f"/scripthash/{sh}")["chain_stats"] == info["chain_stats"]
        assert [t["txid"] for t in es.history("scripthash", sh)] == got
        # unspent confirmed outputs: the UTXO set's (scantxoutset), less the mempool's spends
        utxos = es.get(f"/address/{a}/utxo")
        scan = node.call("scantxoutset", "start", [f"addr({a})"])
        spent_in_mempool = {(i["txid"], i["vout"]) for t in node.call("getrawmempool")
                            for i in node.call("getrawtransaction", t, 1)["vin"]}
        want = {(u["txid"], u["vout"], sats(u["amount"])) for u in scan["unspents"]
                if (u["txid"], u["vout"]) not in spent_in_mempool}
        assert {(u["txid"], u["vout"], u["value"]) for u in utxos
                if u["status"]["confirmed"]} == want
    return o


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    port = free_port()
    node = NodeProcess(tmp_path_factory.mktemp("esplora") / "n", f"-esplora={port}",
                       "-fallbackfee=0.0002")
    node.start()
    node.create_wallet()
    es = Esplora(port)
    w = dict(wallet="default")
    miner = node.call("getnewaddress", **w)
    node.call("generatetoaddress", 110, miner)
    addrs = {kind: node.call("getnewaddress", "", kind, **w)
             for kind in ("bech32", "bech32m", "p2sh-segwit", "legacy")}
    for round_ in range(3):
        for a in addrs.values():
            node.call("sendtoaddress", a, 1 + round_, **w)
        node.call("sendmany", "", {addrs["bech32"]: 0.5, addrs["legacy"]: 0.25}, **w)
        node.call("generatetoaddress", 1, miner)
    # spends from those addresses (the wallet picks them), one left in the mempool
    node.call("sendtoaddress", miner, 9, **w)
    node.call("generatetoaddress", 1, miner)
    node.call("sendtoaddress", addrs["bech32m"], 0.3, **w)
    yield node, es, miner, addrs
    node.stop()


def test_chain_endpoints_against_rpc(net):
    node, es, miner, addrs = net
    wait_synced(node, es)
    tip = node.call("getblockcount")
    assert es.get("/blocks/tip/height") == str(tip)
    assert es.get("/blocks/tip/hash") == node.call("getbestblockhash")
    blocks = es.get("/blocks")
    assert [b["height"] for b in blocks] == list(range(tip, tip - 10, -1))
    assert [b["height"] for b in es.get("/blocks/5")] == [5, 4, 3, 2, 1, 0]
    for h in (0, 1, tip - 1, tip):
        bh = node.call("getblockhash", h)
        assert es.get(f"/block-height/{h}") == bh
        b = es.get(f"/block/{bh}")
        rpc = node.call("getblock", bh, 1)
        assert b.pop("difficulty") == pytest.approx(float(rpc["difficulty"]), rel=1e-12)
        assert b == {"id": bh, "height": h, "version": rpc["version"], "timestamp": rpc["time"],
                     "tx_count": rpc["nTx"], "size": rpc["size"], "weight": rpc["weight"],
                     "merkle_root": rpc["merkleroot"],
                     "previousblockhash": rpc.get("previousblockhash"),
                     "mediantime": rpc["mediantime"], "nonce": rpc["nonce"],
                     "bits": int(rpc["bits"], 16)}
        assert b["id"] in [x["id"] for x in blocks] or h < tip - 9 or h == 0
        assert es.get(f"/block/{bh}/status") == {
            "in_best_chain": True, "height": h, "next_best": rpc.get("nextblockhash")}
        assert es.get(f"/block/{bh}/txids") == rpc["tx"]
        assert es.get(f"/block/{bh}/txid/0") == rpc["tx"][0]
        assert es.get(f"/block/{bh}/header") == node.call("getblockheader", bh, False)
        assert es.get(f"/block/{bh}/raw").hex() == node.call("getblock", bh, 0)
        txs = es.get(f"/block/{bh}/txs")
        full = node.call("getblock", bh, 3)
        assert [t["txid"] for t in txs] == rpc["tx"][:25]
        for t, r in zip(txs, full["tx"]):
            assert t["fee"] == sats(r.get("fee", 0))
            assert t["status"] == {"confirmed": True, "block_height": h, "block_hash": bh,
                                   "block_time": rpc["time"]}


def test_transactions_against_rpc(net):
    node, es, miner, addrs = net
    wait_synced(node, es)
    o = oracle(node)
    mempool = node.call("getrawmempool")
    txids = list(o["where"])[-12:] + mempool
    types = {"witness_v0_keyhash": "v0_p2wpkh", "witness_v1_taproot": "v1_p2tr",
             "scripthash": "p2sh", "pubkeyhash": "p2pkh", "nulldata": "op_return",
             "witness_v0_scripthash": "v0_p2wsh"}
    for txid in txids:
        rpc = node.call("getrawtransaction", txid, 2)
        t = es.get(f"/tx/{txid}")
        assert (t["txid"], t["version"], t["locktime"], t["size"], t["weight"]) == (
            txid, rpc["version"], rpc["locktime"], rpc["size"], rpc["weight"])
        if txid in mempool:  # (no undo data: Core's verbosity 2 has no fee nor prevouts)
            assert t["fee"] == sats(node.call("getmempoolentry", txid)["fees"]["base"])
        else:
            assert t["fee"] == sats(rpc.get("fee", 0))
        for v, r in zip(t["vout"], rpc["vout"]):
            assert v["value"] == sats(r["value"])
            assert v["scriptpubkey"] == r["scriptPubKey"]["hex"]
            assert v.get("scriptpubkey_address") == r["scriptPubKey"].get("address")
            assert v["scriptpubkey_type"] == types[r["scriptPubKey"]["type"]]
        for v, r in zip(t["vin"], rpc["vin"]):
            assert v["is_coinbase"] == ("coinbase" in r)
            assert v["sequence"] == r["sequence"]
            assert v.get("witness") == r.get("txinwitness")
            if "coinbase" in r:
                assert v["prevout"] is None and v["vout"] == 0xFFFFFFFF
                continue
            assert (v["txid"], v["vout"]) == (r["txid"], r["vout"])
            assert v["scriptsig"] == r["scriptSig"]["hex"]
            if txid in mempool:
                parent = node.call("getrawtransaction", r["txid"], 1)["vout"][r["vout"]]
                r["prevout"] = {"value": parent["value"],
                                "scriptPubKey": parent["scriptPubKey"]}
            assert v["prevout"]["value"] == sats(r["prevout"]["value"])
            assert v["prevout"]["scriptpubkey"] == r["prevout"]["scriptPubKey"]["hex"]
        assert es.get(f"/tx/{txid}/hex") == node.call("getrawtransaction", txid)
        assert es.get(f"/tx/{txid}/raw").hex() == node.call("getrawtransaction", txid)
        status = es.get(f"/tx/{txid}/status")
        assert t["status"] == status
        if txid in mempool:
            assert status == {"confirmed": False}
            for tail in ("merkle-proof", "merkleblock-proof"):
                assert es.error(f"/tx/{txid}/{tail}") == (
                    404, "Transaction not found or is unconfirmed")
        else:
            bh, height, pos = o["where"][txid]
            header = node.call("getblockheader", bh)
            assert status == {"confirmed": True, "block_height": height, "block_hash": bh,
                              "block_time": header["time"]}
            proof = es.get(f"/tx/{txid}/merkle-proof")
            assert (proof["block_height"], proof["pos"]) == (height, pos)
            h, p = bytes.fromhex(txid)[::-1], pos
            for sib in proof["merkle"]:
                s = bytes.fromhex(sib)[::-1]
                h = sha256d(s + h) if p & 1 else sha256d(h + s)
                p >>= 1
            assert h[::-1].hex() == header["merkleroot"]
            mb = es.get(f"/tx/{txid}/merkleblock-proof")
            assert mb == node.call("gettxoutproof", [txid])
            assert node.call("verifytxoutproof", mb) == [txid]
        # outspends: the oracle's confirmed spenders, the mempool's
        spends = es.get(f"/tx/{txid}/outspends")
        assert len(spends) == len(rpc["vout"])
        for n, s in enumerate(spends):
            assert s == es.get(f"/tx/{txid}/outspend/{n}")
            by = o["spender"].get((txid, n))
            mem = node.call("gettxspendingprevout", [{"txid": txid, "vout": n}])[0]
            if by is not None:
                sh_bh, sh_h, _ = o["where"][by[0]]
                assert s == {"spent": True, "txid": by[0], "vin": by[1], "status": {
                    "confirmed": True, "block_height": sh_h, "block_hash": sh_bh,
                    "block_time": node.call("getblockheader", sh_bh)["time"]}}
            elif "spendingtxid" in mem:
                assert s["spent"] and s["txid"] == mem["spendingtxid"]
                assert s["status"] == {"confirmed": False}
            else:
                assert s == {"spent": False}


def test_addresses_against_rpc(net):
    node, es, miner, addrs = net
    wait_synced(node, es)
    check_against_rpc(node, es, [miner, *addrs.values()])
    # the miner has 100+ coinbases: pages of 25, newest first
    first = es.get(f"/address/{miner}/txs/chain")
    assert len(first) == 25
    heights = [t["status"]["block_height"] for t in first]
    assert heights == sorted(heights, reverse=True)
    # mempool: the unconfirmed payment shows in mempool_stats, /txs first and /txs/mempool
    a = addrs["bech32m"]
    mem = es.get(f"/address/{a}/txs/mempool")
    assert len(mem) == 1 and mem[0]["status"] == {"confirmed": False}
    assert mem[0]["txid"] in node.call("getrawmempool")
    txs = es.get(f"/address/{a}/txs")
    assert txs[0] == mem[0] and [t["txid"] for t in txs[1:]] == [
        t["txid"] for t in es.get(f"/address/{a}/txs/chain")]
    ms = es.get(f"/address/{a}")["mempool_stats"]
    assert (ms["tx_count"], ms["funded_txo_count"], ms["funded_txo_sum"]) == (1, 1, 30_000_000)
    assert {"txid": mem[0]["txid"], "vout": next(
        n for n, v in enumerate(mem[0]["vout"]) if v.get("scriptpubkey_address") == a),
        "status": {"confirmed": False}, "value": 30_000_000} in es.get(f"/address/{a}/utxo")
    # an address nothing paid
    fresh = node.call("getnewaddress", wallet="default")
    assert es.get(f"/address/{fresh}") == {"address": fresh, "chain_stats": {
        k: 0 for k in ("funded_txo_count", "funded_txo_sum", "spent_txo_count",
                       "spent_txo_sum", "tx_count")}, "mempool_stats": {
        k: 0 for k in ("funded_txo_count", "funded_txo_sum", "spent_txo_count",
                       "spent_txo_sum", "tx_count")}}
    assert es.get(f"/address/{fresh}/txs") == []
    assert es.get(f"/address/{fresh}/utxo") == []
    # a txid that is not in the address's history: no page
    other = es.get(f"/address/{miner}/txs/chain")[0]["txid"]
    assert es.get(f"/address/{fresh}/txs/chain/{other}") == []


def test_mempool_fees_and_broadcast(net):
    node, es, miner, addrs = net
    wait_synced(node, es)
    w = dict(wallet="default")
    raw = node.call("createrawtransaction", [], {addrs["legacy"]: 0.1})
    funded = node.call("fundrawtransaction", raw, **w)["hex"]
    signed = node.call("signrawtransactionwithwallet", funded, **w)["hex"]
    status, headers, body = es.request("/tx", signed.encode(), "POST")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    txid = body.decode()
    assert txid in node.call("getrawmempool")
    # the same again: known, same answer (as sendrawtransaction); also by electrs's GET form
    assert es.request("/tx", signed.encode(), "POST")[2].decode() == txid
    assert es.get(f"/broadcast?tx={signed}") == txid
    assert es.error("/broadcast") == (400, "Missing tx")
    info = node.call("getmempoolinfo")
    entries = node.call("getrawmempool", True)
    backlog = es.get("/mempool")
    assert backlog["count"] == info["size"]
    assert backlog["vsize"] == sum(e["vsize"] for e in entries.values())
    assert backlog["total_fee"] == sum(sats(e["fees"]["base"]) for e in entries.values())
    assert sum(v for _, v in backlog["fee_histogram"]) == backlog["vsize"]
    assert sorted(es.get("/mempool/txids")) == sorted(entries)
    recent = es.get("/mempool/recent")
    assert recent[0]["txid"] == txid
    assert recent[0] == {"txid": txid, "fee": sats(entries[txid]["fees"]["base"]),
                         "vsize": entries[txid]["vsize"],
                         "value": sum(sats(v["value"]) for v in node.call(
                             "getrawtransaction", txid, 1)["vout"])}
    # a package (parent and child, neither broadcast): electrs's POST /txs/package
    change = node.call("getnewaddress", **w)
    raw = node.call("createrawtransaction", [], {change: 0.3})
    parent = node.call("signrawtransactionwithwallet", node.call(
        "fundrawtransaction", raw, {"changePosition": 1}, **w)["hex"], **w)["hex"]
    pdec = node.call("decoderawtransaction", parent)
    child_raw = node.call("createrawtransaction", [{"txid": pdec["txid"], "vout": 0}],
                          {miner: 0.2999})
    child = node.call("signrawtransactionwithwallet", child_raw, [{
        "txid": pdec["txid"], "vout": 0, "scriptPubKey": pdec["vout"][0]["scriptPubKey"]["hex"],
        "amount": pdec["vout"][0]["value"]}], **w)["hex"]
    status, headers, body = es.request("/txs/package", json.dumps([parent, child]).encode(),
                                       "POST")
    assert status == 200 and headers["Content-Type"].startswith("application/json"), body
    result = json.loads(body)
    assert result["package_msg"] == "success", result
    mempool = node.call("getrawmempool")
    assert pdec["txid"] in mempool and node.call("decoderawtransaction", child)["txid"] in mempool
    assert es.error("/txs/package", b"[1]")[0] == 400
    assert es.error("/txs/package", json.dumps(["00" * 100] * 26).encode()) == (
        400, "Exceeded maximum of 25 transactions")
    assert es.error("/txs/package", b'["0011"]') == (
        400, "Invalid transaction size for item 0")
    assert es.error("/txs/package", json.dumps(["zz" * 100]).encode()) == (
        400, "Invalid transaction hex for item 0")
    assert es.error("/txs/package?maxfeerate=abc", b"[]") == (400, "Invalid maxfeerate")
    status, text = es.error("/txs/package", json.dumps(["00" * 100] * 2).encode())
    assert status == 400 and text.startswith("submitpackage RPC error -22: ")
    est = es.get("/fee-estimates")
    assert isinstance(est, dict)
    for target, rate in est.items():
        assert int(target) >= 1 and rate > 0
    # a mempool transaction spending a mempool output: its prevout comes from the mempool
    t = es.get(f"/tx/{txid}")
    assert t["status"] == {"confirmed": False} and all(v["prevout"] for v in t["vin"])


def test_bad_requests(net):
    node, es, miner, addrs = net
    tip = node.call("getbestblockhash")
    unknown = "00" * 32
    assert es.error("/tx/xyz") == (400, "Invalid hex string")
    assert es.error(f"/tx/{unknown}") == (404, "Transaction not found")
    assert es.error(f"/tx/{unknown}/hex") == (404, "Transaction not found")
    assert es.error(f"/tx/{unknown}/outspends") == (404, "Transaction not found")
    assert es.get(f"/tx/{unknown}/status") == {"confirmed": False}
    assert es.get(f"/tx/{unknown}/outspend/0") == {"spent": False}
    assert es.error(f"/tx/{unknown}/outspend/x") == (400, "Invalid number")
    assert es.error(f"/block/{unknown}") == (404, "Block not found")
    assert es.get(f"/block/{unknown}/status") == {
        "in_best_chain": False, "height": None, "next_best": None}
    assert es.error("/block/zz/txids") == (400, "Invalid hex string")
    assert es.error(f"/block/{tip}/txs/3") == (400, "start index must be a multiple of 25")
    assert es.error(f"/block/{tip}/txs/25") == (400, "start index out of range")
    assert es.error(f"/block/{tip}/txid/999") == (404, "tx index out of range")
    assert es.error("/block-height/abc") == (400, "Invalid number")
    assert es.error("/block-height/99999") == (404, "Block not found")
    assert es.error("/blocks/99999") == (404, "Block not found")
    # numbers longer than int() reads (4,300 digits): as any number out of range
    long = "9" * 5000
    assert es.error(f"/tx/{unknown}/outspend/{long}") == (400, "Invalid number")
    assert es.error(f"/block/{tip}/txid/{long}") == (400, "Invalid number")
    assert es.error(f"/block-height/{long}") == (400, "Invalid number")
    assert es.get(f"/blocks/{long}") == es.get("/blocks")  # (electrs: not a usize: the tip)
    assert es.get(f"/block/{tip}/txs/{long}") == es.get(f"/block/{tip}/txs")  # (page 0)
    assert es.error("/address/notanaddress")[0] == 400
    assert es.error("/address/bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq") == (
        400, "Address on invalid network")
    assert es.error("/address/1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2") == (
        400, "Address on invalid network")
    assert es.error("/address/tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx") == (
        400, "Address on invalid network")
    assert es.error("/address/bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081")[0] == 400
    assert es.error("/scripthash/abcd") == (400, "Invalid scripthash")
    assert es.error("/nothing/here") == (404, 'endpoint does not exist "/nothing/here"')
    assert es.error("/blocks/tip/height/") == (404, 'endpoint does not exist "/blocks/tip/height/"')
    status, text = es.error("/tx", b"zz")
    assert (status, text.split(":")[0]) == (400, "sendrawtransaction RPC error -22")
    assert es.error("/tx", b"\xff\xfe")[0] == 400
    assert es.request("/tx", b"0" * 1_000_001, "POST")[0] == 413
    # random paths built from the API's words, hashes, numbers and junk: an answer each,
    # never a server error
    import random
    import urllib.parse

    rng = random.Random(3)
    txid = node.call("getblock", tip)["tx"][0]
    words = ["tx", "block", "blocks", "address", "scripthash", "mempool", "txs", "chain",
             "utxo", "status", "outspend", "outspends", "raw", "hex", "txid", "txids",
             "merkle-proof", "merkleblock-proof", "block-height", "tip", "height", "hash",
             "recent", "fee-estimates", "header", tip, txid, unknown, miner, "0", "25", "-1",
             "99999999999999999999", "", "%00", "..", "\u00e9", "a" * 300, tip.upper()]
    for _ in range(300):
        path = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        status, _, body = es.request(urllib.parse.quote(path, safe="/%"))
        assert status in (200, 400, 404), (path, status, body[:200])
    # still serving
    assert es.get("/blocks/tip/hash") == node.call("getbestblockhash")


def test_block_pages_scripthashes_and_fee_estimates(net):
    """A block's transactions past the first page of 25; an address's history, mempool
    transactions and unspent outputs by its script hash (/scripthash/:hash/...) as by the
    address; /fee-estimates, once fee-paying transactions have confirmed, with an estimate for
    each of electrs's targets: estimatesmartfee's economical rate, in sat/vB."""
    node, es, miner, addrs = net
    w = dict(wallet="default")
    a = node.call("getnewaddress", **w)
    spk = node.call("validateaddress", a)["scriptPubKey"]
    sh = hashlib.sha256(bytes.fromhex(spk)).hexdigest()
    paid = [node.call("sendtoaddress", a, 0.1, **w) for _ in range(30)]
    [bh] = node.call("generatetoaddress", 1, miner)
    pending = node.call("sendtoaddress", a, 0.2, **w)
    wait_synced(node, es)

    # the block's second page: /tx's answers for its transactions 25 to 49
    rpc = node.call("getblock", bh, 3)
    txids = [t["txid"] for t in rpc["tx"]]
    assert set(paid) <= set(txids) and 31 <= len(txids) <= 50
    page = es.get(f"/block/{bh}/txs/25")
    assert [t["txid"] for t in page] == txids[25:]
    for t, r in zip(page, rpc["tx"][25:]):
        assert t == es.get(f"/tx/{t['txid']}")
        assert t["fee"] == sats(r["fee"])
        assert t["status"] == {"confirmed": True, "block_height": rpc["height"],
                               "block_hash": bh, "block_time": rpc["time"]}
    assert [t["txid"] for t in es.get(f"/block/{bh}/txs/0")] == txids[:25]
    assert es.error(f"/block/{bh}/txs/50") == (400, "start index out of range")

    # by script hash, as by address
    info = es.get(f"/scripthash/{sh}")
    by_address = es.get(f"/address/{a}")
    assert by_address.pop("address") == a
    assert info == {"scripthash": sh, **by_address}
    assert info["chain_stats"]["funded_txo_count"] == 30
    assert info["mempool_stats"]["funded_txo_count"] == 1
    txs = es.get(f"/scripthash/{sh}/txs")
    assert txs == es.get(f"/address/{a}/txs")
    assert [t["txid"] for t in txs] == [pending] + sorted(
        paid, key=txids.index, reverse=True)[:25]
    mem = es.get(f"/scripthash/{sh}/txs/mempool")
    assert mem == es.get(f"/address/{a}/txs/mempool")
    assert [t["txid"] for t in mem] == [pending] and mem[0]["status"] == {"confirmed": False}
    assert es.get(f"/scripthash/{sh}/txs/chain") == es.get(f"/address/{a}/txs/chain") == txs[1:]
    assert es.history("scripthash", sh) == es.history("address", a)
    utxo = es.get(f"/scripthash/{sh}/utxo")
    assert utxo == es.get(f"/address/{a}/utxo")
    # (the outputs paid to it that are unspent, in the chain and the mempool (the wallet
    # spends them too), and the mempool transaction's)
    want = {(t, n, 10_000_000, True) for t in paid for n, out in enumerate(
        node.call("getrawtransaction", t, 1)["vout"]) if out["scriptPubKey"]["hex"] == spk
        and node.call("gettxout", t, n, True) is not None}
    want |= {(pending, n, 20_000_000, False) for n, out in enumerate(
        node.call("getrawtransaction", pending, 1)["vout"]) if out["scriptPubKey"]["hex"] == spk}
    assert {(u["txid"], u["vout"], u["value"], u["status"]["confirmed"]) for u in utxo} == want
    assert len(utxo) == len(want) > 1
    check_against_rpc(node, es, [a])

    # fee estimates: electrs asks estimatesmartfee (economical) for each target, and keeps
    # those answered without errors
    est = es.get("/fee-estimates")
    targets = [*range(1, 26), 144, 504, 1008]
    assert sorted(est, key=int) == [str(t) for t in targets]
    for t in targets:
        rpc_est = node.call("estimatesmartfee", t, "economical")
        assert "errors" not in rpc_est, (t, rpc_est)
        assert est[str(t)] == pytest.approx(float(rpc_est["feerate"]) * 100_000, rel=1e-12)
    assert all(rate >= 1 for rate in est.values()), est  # (at least the minimum relay fee)


def test_reorg_restart_kill_and_reindex(net):
    node, es, miner, addrs = net
    w = dict(wallet="default")
    watched = [miner, *addrs.values()]
    node.call("generatetoaddress", 1, miner)  # the mempool confirmed: answers are chain only
    # a reorg: the last 3 blocks replaced by 4 others (their transactions mined again at
    # other heights and positions)
    stale = node.call("getblockhash", node.call("getblockcount") - 2)
    stale_txid = node.call("getblock", stale)["tx"][1]
    node.call("invalidateblock", stale)
    node.call("sendtoaddress", addrs["bech32"], 0.7, **w)
    node.call("generatetoaddress", 4, miner)
    wait_synced(node, es)
    assert es.get(f"/block/{stale}/status")["in_best_chain"] is False
    check_against_rpc(node, es, watched)
    assert es.get(f"/tx/{stale_txid}/status")["confirmed"] == (
        stale_txid in oracle(node)["where"])
    before = digest(es, node, watched)

    node.stop()
    node.start()
    wait_synced(node, es)
    assert digest(es, node, watched) == before

    # SIGKILL right after blocks were mined: the index resumes where its last batch left it
    node.call("sendtoaddress", addrs["p2sh-segwit"], 0.4, **w)
    node.call("generatetoaddress", 3, miner)
    node.kill()
    node.start()
    wait_synced(node, es)
    node.call("generatetoaddress", 1, miner)  # (the mempool, if kept, confirmed)
    wait_synced(node, es)
    check_against_rpc(node, es, watched)
    after_kill = digest(es, node, watched)

    node.stop()
    rows = index_rows(node)
    node.start("-reindex")
    wait_synced(node, es)
    assert digest(es, node, watched) == after_kill
    node.stop()
    # and the database itself: row for row what a fresh build over the same chain writes
    assert index_rows(node) == rows
    node.start()


def index_rows(node) -> dict:
    import plyvel

    db = plyvel.DB(str(node.chain_dir / "indexes" / "addrindex" / "db"))
    try:
        return {k: v for k, v in db if k != b"B"}
    finally:
        db.close()


def start_fails(node: NodeProcess, *args: str) -> str:
    import subprocess
    import sys

    from tests.functional.framework import ROOT

    p = subprocess.run([sys.executable, "-m", "node.daemon", *node.args(), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    return p.stderr.strip()


def test_options(tmp_path):
    import socket

    node = NodeProcess(tmp_path / "n")
    assert start_fails(node, "-esplora=abc") == "Error: Invalid port specified in -esplora: 'abc'"
    assert start_fails(node, "-esplora", "-prune=550") == (
        "Error: Prune mode is incompatible with -esplora.")
    assert start_fails(node, "-esplora", "-reindex-chainstate").startswith(
        "Error: -reindex-chainstate option is not compatible with -esplora.")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert start_fails(node, f"-esplora={port}").startswith(
            f"Error: Unable to bind the Esplora port {port}")
    # -esplora alone (its default port) with the address given by -esplorabind; the CORS
    # header as asked
    port = free_port()
    node.start("-esplora", f"-esplorabind=127.0.0.1:{port}", "-esploracors=http://x.test")
    try:
        status, headers, body = Esplora(port).request("/blocks/tip/height")
        assert (status, body, headers["Access-Control-Allow-Origin"]) == (200, b"0",
                                                                          "http://x.test")
        # it implies the indexes it needs
        assert {"txindex", "txospenderindex", "addrindex"} <= set(node.call("getindexinfo"))
    finally:
        node.stop()
    port = free_port()
    node.start(f"-esplora={port}", "-noesploracors")
    try:
        status, headers, _ = Esplora(port).request("/blocks/tip/hash")
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
    finally:
        node.stop()
    node.start()  # without -esplora: the indexes are not turned on
    try:
        assert "txindex" not in node.call("getindexinfo")
    finally:
        node.stop()


def test_script_asm_as_rust_bitcoin_writes_it():
    from node.esplora.encode import script_asm, script_type

    h20 = bytes(range(20))
    assert script_asm(b"\x76\xa9\x14" + h20 + b"\x88\xac") == (
        f"OP_DUP OP_HASH160 OP_PUSHBYTES_20 {h20.hex()} OP_EQUALVERIFY OP_CHECKSIG")
    assert script_asm(b"\x00\x14" + h20) == f"OP_0 OP_PUSHBYTES_20 {h20.hex()}"
    assert script_asm(b"\x51\x20" + bytes(32)) == f"OP_PUSHNUM_1 OP_PUSHBYTES_32 {'00' * 32}"
    assert script_asm(b"\x6a\x04\xde\xad\xbe\xef") == "OP_RETURN OP_PUSHBYTES_4 deadbeef"
    assert script_asm(b"\x4c\x4c" + b"\x01" * 76) == "OP_PUSHDATA1 " + "01" * 76
    assert script_asm(b"\x4f\x60\xb0\xb1\xb2\xb3\xb9\xba\xbb\xfe\xff\x50") == (
        "OP_PUSHNUM_NEG1 OP_PUSHNUM_16 OP_NOP1 OP_CLTV OP_CSV OP_NOP4 OP_NOP10 "
        "OP_CHECKSIGADD OP_RETURN_187 OP_RETURN_254 OP_INVALIDOPCODE OP_RESERVED")
    assert script_asm(b"\x05\xab") == "OP_PUSHBYTES_5 <push past end>"
    assert script_asm(b"\x51\x4d\x01") == "OP_PUSHNUM_1<unexpected end>"
    assert script_asm(b"") == ""
    assert [script_type(s) for s in (b"", b"\x6a", b"\x21" + bytes(33) + b"\xac",
                                     b"\x76\xa9\x14" + h20 + b"\x88\xac",
                                     b"\xa9\x14" + h20 + b"\x87", b"\x00\x14" + h20,
                                     b"\x00\x20" + bytes(32), b"\x51\x20" + bytes(32),
                                     b"\x52\x02\x00\x00", b"\x51")] == [
        "empty", "op_return", "p2pk", "p2pkh", "p2sh", "v0_p2wpkh", "v0_p2wsh", "v1_p2tr",
        "unknown", "unknown"]


def test_no_partial_answers_while_the_index_is_first_built(tmp_path):
    """-esplora turned on for a chain that exists: until the address index has caught up,
    the API says so (503) instead of answering from part of the chain."""
    from consensus.hashes import hash160
    from consensus.params import REGTEST
    from consensus.script.standard import p2wpkh_script
    from consensus.tx import OutPoint, Transaction, TxIn, TxOut
    from tests.chainbuilder import OP_TRUE, P2WSH_TRUE, ChainBuilder
    from wallet.address import script_to_address

    target = p2wpkh_script(hash160(b"target"))
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    coin = (blocks[0].txs[0].txid, 0, blocks[0].txs[0].vout[0].value)
    n_txs = 0
    for _ in range(6):
        txs = []
        for _ in range(500):
            txid, n, value = coin
            tx = Transaction(2, [TxIn(OutPoint(txid, n), b"", 0xFFFFFFFF, [OP_TRUE])],
                             [TxOut(1000, target), TxOut(value - 1200, P2WSH_TRUE)])
            txs.append(tx)
            coin = (tx.txid, 1, value - 1200)
        blocks.append(cb.next_block(blocks[-1], txs, spk=P2WSH_TRUE, fees=200 * len(txs)))
        n_txs += len(txs)
    node = NodeProcess(tmp_path / "n")
    with node:
        for b in blocks:
            assert node.call("submitblock", b.serialize().hex()) is None
    port = free_port()
    es = Esplora(port)
    addr = script_to_address(target, REGTEST)
    node.start(f"-esplora={port}", wait=False)
    try:
        while True:
            try:
                status, _, body = es.request(f"/address/{addr}")
            except OSError:  # not listening yet
                time.sleep(0.01)
                continue
            if status == 503:
                assert body.decode().startswith("Index is syncing (at height ")
                time.sleep(0.01)
                continue
            assert status == 200
            assert json.loads(body)["chain_stats"]["tx_count"] == n_txs
            break
    finally:
        node.stop()


def test_sigkill_at_any_point_of_import_and_indexing(tmp_path):
    """Killed again and again while -loadblock imports a chain and the address index follows
    it, the node resumes each time; in the end the index is row for row a fresh build's."""
    import random

    from consensus.params import REGTEST
    from consensus.tx import OutPoint, Transaction, TxIn, TxOut
    from tests.chainbuilder import OP_TRUE, P2WSH_TRUE, ChainBuilder

    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 101, spk=P2WSH_TRUE)
    scripts = [bytes([0x00, 0x14]) + bytes([i]) * 20 for i in range(8)]  # 8 "addresses"
    first = blocks[0].txs[0]  # mature from height 101 on: fanned out into 40 coins
    fan = Transaction(2, [TxIn(OutPoint(first.txid, 0), b"", 0xFFFFFFFF, [OP_TRUE])],
                      [TxOut(first.vout[0].value // 50, P2WSH_TRUE) for _ in range(40)])
    coins = [(fan.txid, n, o.value) for n, o in enumerate(fan.vout)]
    rng = random.Random(5)
    for i in range(150):
        txs = [fan] if i == 0 else []
        for _ in range(12):
            txid, n, value = coins.pop(rng.randrange(len(coins)))
            pay = rng.choice(scripts)
            tx = Transaction(2, [TxIn(OutPoint(txid, n), b"", 0xFFFFFFFF, [OP_TRUE])],
                             [TxOut(10_000, pay), TxOut(value - 10_300, P2WSH_TRUE)])
            txs.append(tx)
            coins.append((tx.txid, 1, value - 10_300))
        fees = 300 * (len(txs) - (i == 0)) + (first.vout[0].value % 50 if i == 0 else 0)
        blocks.append(cb.next_block(blocks[-1], txs, spk=P2WSH_TRUE, fees=fees))
    blk = tmp_path / "chain.dat"
    with open(blk, "wb") as f:
        for b in blocks:
            raw = b.serialize()
            f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
    port = free_port()
    es = Esplora(port)
    node = NodeProcess(tmp_path / "n", f"-esplora={port}")
    for target in (120, 160, 200, 235):  # killed when the chain passes these heights
        node.start(f"-loadblock={blk}", wait=False)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                height = node.call("getblockcount")
            except (OSError, RPCFailure, ValueError):
                height = -1
            if height >= target:
                break
            time.sleep(0.005)
        node.kill()
    node.start(f"-loadblock={blk}")
    try:
        deadline = time.time() + 120
        while node.call("getblockcount") < len(blocks):
            assert time.time() < deadline, "the chain was not imported"
            time.sleep(0.1)
        wait_synced(node, es)
        sh = hashlib.sha256(scripts[0]).hexdigest()
        answers = (es.get(f"/scripthash/{sh}"), es.history("scripthash", sh))
        assert answers[0]["chain_stats"]["tx_count"] > 0
    finally:
        node.stop()
    rows = index_rows(node)
    node.start("-reindex")
    try:
        wait_synced(node, es)
        assert (es.get(f"/scripthash/{sh}"), es.history("scripthash", sh)) == answers
    finally:
        node.stop()
    assert index_rows(node) == rows
