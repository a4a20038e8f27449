"""Every index and the servers reading them answer, after reorgs, a clean restart and SIGKILLs
at random moments (while the indexes are first built for a chain that exists, while blocks are
connected and reorganised, while the indexes catch up), exactly as the same node does once
-reindex has rebuilt them from the block files, and as a fresh node that synced the chain over
P2P does: txindex (getrawtransaction, REST /tx),
the basic block filter index (getblockfilter, REST blockfilter and blockfilterheaders, BIP157
cfilter/cfheaders/cfcheckpt over P2P), coinstatsindex (gettxoutsetinfo muhash at every
height), txospenderindex (gettxspendingprevout for every confirmed output, Esplora outspends)
and the address index (Esplora address stats, histories and unspents); REST getutxos too.

The chain is built here (coinbases and outputs paying to P2WSH(OP_TRUE), so no keys are
needed), as a tree: each round extends the tip, then a competing branch replaces its last 2 to
4 blocks with one more. A branch takes each transaction of the blocks it replaces again or
double-spends its inputs, so no transaction returns to the mempool and the answers depend on
the chain alone (the mempool is checked to be empty)."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from decimal import Decimal

from consensus.block import Block
from consensus.hashes import hash160
from consensus.params import REGTEST
from consensus.script.standard import p2wpkh_script
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.p2p import cfilters as cf
from node.p2p import messages as m
from tests.chainbuilder import OP_TRUE, P2WSH_TRUE, ChainBuilder
from tests.functional.framework import NodeProcess, RPCFailure, free_port
from tests.functional.netutil import connect, wait_until
from tests.functional.p2p_peer import RawPeer
from wallet.address import script_to_address

MATURITY = 100
PAYEES = [p2wpkh_script(hash160(b"payee %d" % i)) for i in range(5)]
ADDRESSES = [script_to_address(s, REGTEST) for s in PAYEES]
OPTIONS = ("-txindex", "-blockfilterindex", "-coinstatsindex", "-txospenderindex", "-rest",
           "-peerblockfilters")


# -- the chain ------------------------------------------------------------------------------------

class Tree:
    """Blocks built on any block of the tree, each block's spendable coins kept (a coin is
    (txid, n, value, coinbase height or None))."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # (blocks 10 minutes apart, the last ones some hours old: not in the future, and the
        # node out of initial block download)
        self.cb = ChainBuilder(start_time=int(time.time()) - 400 * 600)
        g = REGTEST.genesis
        self.coins: dict[bytes, list] = {g.hash: []}
        self.height: dict[bytes, int] = {g.hash: 0}
        self.parent: dict[bytes, bytes] = {}
        self.tag = 0

    def _spendable(self, pool: list, height: int) -> list[int]:
        return [i for i, c in enumerate(pool)
                if c[3] is None or height - c[3] >= MATURITY]

    def _tx(self, inputs: list, pool: list) -> Transaction:
        """Spend `inputs` (coins) to one to three P2WSH(OP_TRUE) outputs (back into the pool),
        maybe a payment to a payee and maybe an OP_RETURN carrying some value."""
        rng = self.rng
        total = sum(c[2] for c in inputs)
        fee = rng.randrange(300, 3000)
        outs = []
        if rng.random() < 0.7 and total > 200_000:
            outs.append(TxOut(rng.randrange(10_000, total // 4), rng.choice(PAYEES)))
        if rng.random() < 0.15 and total > 200_000:  # value that leaves the UTXO set
            outs.append(TxOut(rng.choice([0, 1000]), b"\x6a\x04" + rng.randbytes(4)))
        rest = total - fee - sum(o.value for o in outs)
        change = rng.choice([1, 1, 2, 3]) if rest > 100_000 else 1
        for k in range(change):
            value = rest // change + (rest % change if k == 0 else 0)
            outs.insert(rng.randrange(len(outs) + 1), TxOut(value, P2WSH_TRUE))
        tx = Transaction(2, [TxIn(OutPoint(c[0], c[1]), b"", 0xFFFFFFFF, [OP_TRUE])
                             for c in inputs], outs)
        for n, o in enumerate(outs):
            if o.script_pubkey == P2WSH_TRUE:
                pool.append((tx.txid, n, o.value, None))
        return tx

    def block(self, parent: bytes, n_txs: int | None = None,
              again: list[Transaction] = ()) -> Block:
        """A block on `parent`: first each of `again` (transactions of a block this one
        replaces), taken as it is or double-spent when its inputs are all there, then
        random spends of the pool."""
        rng = self.rng
        height = self.height[parent] + 1
        pool = list(self.coins[parent])
        txs: list[Transaction] = []
        spent = 0
        for old in again:
            keys = [(i.prevout.hash, i.prevout.n) for i in old.vin]
            where = {(c[0], c[1]): k for k, c in enumerate(pool)}
            if not all(k in where for k in keys):
                continue  # a parent of it was double-spent: it can never come back
            inputs = [pool[where[k]] for k in keys]
            for k in sorted((where[k] for k in keys), reverse=True):
                pool.pop(k)
            spent += sum(c[2] for c in inputs)
            if rng.random() < 0.5:
                txs.append(old)
                for n, o in enumerate(old.vout):
                    if o.script_pubkey == P2WSH_TRUE:
                        pool.append((old.txid, n, o.value, None))
            else:
                txs.append(self._tx(inputs, pool))
        if n_txs is None:
            n_txs = rng.randrange(5, 30)
        for _ in range(n_txs):
            ok = self._spendable(pool, height)
            if not ok:
                break
            picks = rng.sample(ok, min(len(ok), rng.choice([1, 1, 1, 2, 3])))
            inputs = [pool[i] for i in picks]
            for i in sorted(picks, reverse=True):
                pool.pop(i)
            spent += sum(c[2] for c in inputs)
            txs.append(self._tx(inputs, pool))
        fees = spent - sum(o.value for t in txs for o in t.vout)
        self.tag += 1
        b = self.cb.next_block(parent, txs, spk=P2WSH_TRUE, fees=fees,
                               tag=self.tag.to_bytes(4, "little"))
        cb = b.txs[0]
        pool.append((cb.txid, 0, cb.vout[0].value, height))
        self.coins[b.hash] = pool
        self.height[b.hash] = height
        self.parent[b.hash] = parent
        return b

    def extend(self, parent: bytes, n: int, **kw) -> list[Block]:
        out = []
        for _ in range(n):
            out.append(self.block(parent, **kw))
            parent = out[-1].hash
        return out

    def fork(self, tip: bytes, depth: int, blocks: dict[bytes, Block]) -> list[Block]:
        """depth + 1 blocks replacing the last `depth` blocks up to `tip`."""
        stale = []
        h = tip
        for _ in range(depth):
            stale.append(blocks[h])
            h = self.parent[h]
        stale.reverse()
        out = []
        parent = h
        for i in range(depth + 1):
            again = stale[i].txs[1:] if i < depth else ()
            out.append(self.block(parent, again=again))
            parent = out[-1].hash
        return out


def build_rounds(seed: int = 17) -> tuple[list[list[Block]], bytes]:
    """The blocks in submission order, in rounds: a base chain, then rounds of an extension
    and a competing branch that wins. Returns (rounds, final tip)."""
    tree = Tree(seed)
    blocks: dict[bytes, Block] = {}

    def keep(bs: list[Block]) -> list[Block]:
        for b in bs:
            blocks[b.hash] = b
        return bs

    base = keep(tree.extend(REGTEST.genesis.hash, MATURITY + 1, n_txs=0))
    base += keep(tree.extend(base[-1].hash, 12, n_txs=15))
    rounds = [base]
    tip = base[-1].hash
    for r in range(7):
        ext = keep(tree.extend(tip, tree.rng.randrange(4, 8), n_txs=tree.rng.randrange(10, 30)))
        branch = keep(tree.fork(ext[-1].hash, [3, 2, 4][r % 3], blocks))
        rounds.append(ext + branch)
        tip = branch[-1].hash
    return rounds, tip


# -- talking to the node -------------------------------------------------------------------------

def batch(node: NodeProcess, calls: list[tuple]) -> list:
    """Results of a JSON-RPC batch (an RPC error as ("error", code, message))."""
    out = []
    for i in range(0, len(calls), 500):
        part = calls[i:i + 500]
        payload = [{"jsonrpc": "1.0", "id": k, "method": c[0], "params": list(c[1:])}
                   for k, c in enumerate(part)]
        status, replies = node.request(payload)
        assert isinstance(replies, list), (status, replies)
        by_id = {r["id"]: r for r in replies}
        for k in range(len(part)):
            r = by_id[k]
            out.append(("error", r["error"]["code"], r["error"]["message"])
                       if r.get("error") else r["result"])
    return out


class Http:
    """One keep-alive HTTP connection (REST, Esplora)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, bytes]:
        for attempt in range(2):
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path: str):
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body, parse_float=Decimal)

    def close(self) -> None:
        self.conn.close()


def wait_indexes(node: NodeProcess, esplora_port: int, timeout: float = 60) -> int:
    deadline = time.time() + timeout
    es = Http(esplora_port)
    try:
        while True:
            node.call("syncwithvalidationinterfacequeue")
            height = node.call("getblockcount")
            info = node.call("getindexinfo")
            if all(v == {"synced": True, "best_block_height": height} for v in info.values()) \
                    and es.get("/blocks/tip/hash")[1].decode() == node.call("getbestblockhash"):
                assert len(info) == 5, info
                return height
            assert time.time() < deadline, f"indexes not synced: {info} at {height}"
            time.sleep(0.05)
    finally:
        es.close()


def h2b(hex_hash: str) -> bytes:
    return bytes.fromhex(hex_hash)[::-1]


def snapshot(node: NodeProcess, esplora_port: int, stale_txids: set[str]) -> dict:
    """Every answer the indexes and servers give about the active chain."""
    height = wait_indexes(node, esplora_port)
    assert node.call("getrawmempool") == []
    out: dict = {"getindexinfo": node.call("getindexinfo")}
    hashes = batch(node, [("getblockhash", h) for h in range(height + 1)])
    blocks = batch(node, [("getblock", bh, 1) for bh in hashes])
    txids = [t for b in blocks[1:] for t in b["tx"]]
    nouts = {t["txid"]: len(t["vout"]) for b in batch(node, [("getblock", bh, 2)
                                                            for bh in hashes[1:]])
             for t in b["tx"]}

    # RPC: filters, UTXO set statistics at every height, transactions, spenders
    for bh, f in zip(hashes, batch(node, [("getblockfilter", bh) for bh in hashes])):
        out[f"getblockfilter {bh}"] = f
    for h, s in enumerate(batch(node, [("gettxoutsetinfo", "muhash", h) for h in
                                       range(height + 1)])):
        out[f"gettxoutsetinfo {h}"] = s
    scan = node.call("gettxoutsetinfo", "muhash", None, False)
    tip_stats = out[f"gettxoutsetinfo {height}"]
    for k in ("height", "bestblock", "txouts", "bogosize", "muhash", "total_amount"):
        assert tip_stats[k] == scan[k], k  # the index agrees with a scan of the UTXO set
    for t, r in zip(txids, batch(node, [("getrawtransaction", t, 1) for t in txids])):
        out[f"getrawtransaction {t}"] = r
    outpoints = [{"txid": t, "vout": n} for t in txids for n in range(nouts[t])]
    for o, r in zip(outpoints, node.call("gettxspendingprevout", outpoints)):
        out[f"gettxspendingprevout {o['txid']}:{o['vout']}"] = r
    # A transaction only in stale blocks: a txindex that still has it says it is not in the
    # active chain (as Core's); after -reindex it is unknown. Not compared.
    gone = sorted(stale_txids - set(txids))
    for t, r in zip(gone, batch(node, [("getrawtransaction", t, 1) for t in gone])):
        assert isinstance(r, tuple) or r["confirmations"] == 0, (t, r)

    # REST
    rest = Http(node.rpcport)
    try:
        for bh in hashes:
            out[f"rest blockfilter {bh}"] = rest.get(f"/rest/blockfilter/basic/{bh}.bin")
        for bh in hashes[::50] + hashes[-1:]:
            out[f"rest blockfilterheaders {bh}"] = rest.get(
                f"/rest/blockfilterheaders/basic/{bh}.json?count=2000")
        for t in txids[::3] + txids[-5:]:
            out[f"rest tx {t}"] = rest.get(f"/rest/tx/{t}.hex")
        for i in range(0, len(outpoints), 15):
            path = "/".join(f"{o['txid']}-{o['vout']}" for o in outpoints[i:i + 15])
            out[f"rest getutxos {i}"] = rest.get(f"/rest/getutxos/{path}.json")
        for bh in hashes[-40:]:
            out[f"rest spenttxouts {bh}"] = rest.get(f"/rest/spenttxouts/{bh}.hex")
    finally:
        rest.close()

    # BIP157 over P2P
    peer = RawPeer(node.p2pport)
    try:
        peer.handshake()
        tip = h2b(hashes[-1])
        peer.send(cf.GetCFCheckpt(0, tip))
        out["cfcheckpt"] = peer.wait_for("cfcheckpt").headers
        peer.send(cf.GetCFHeaders(0, 0, tip))
        got = peer.wait_for("cfheaders")
        out["cfheaders"] = (got.prev_header, got.filter_hashes)
        assert [x[::-1].hex() for x in got.headers()] == [
            out[f"getblockfilter {bh}"]["header"] for bh in hashes]
        start = len(peer.received)
        peer.send(cf.GetCFilters(0, max(0, height - 999), tip))
        peer.send(m.Ping(0x77))
        peer.wait_for("pong", pred=lambda p: p.nonce == 0x77)
        got = [(msg.block_hash, msg.filter) for cmd, msg in peer.received[start:]
               if cmd == "cfilter"]
        assert len(got) == min(height + 1, 1000)
        out["cfilters"] = got
    finally:
        peer.close()

    # Esplora (the address index, txospenderindex, txindex)
    es = Http(esplora_port)
    try:
        for a in ADDRESSES:
            out[f"esplora /address/{a}"] = es.json(f"/address/{a}")
            page = es.json(f"/address/{a}/txs/chain")
            history = list(page)
            while page:
                page = es.json(f"/address/{a}/txs/chain/{history[-1]['txid']}")
                history += page
            out[f"esplora history {a}"] = history
            out[f"esplora /address/{a}/utxo"] = sorted(
                es.json(f"/address/{a}/utxo"), key=lambda u: (u["txid"], u["vout"]))
        for t in txids[1::4]:
            out[f"esplora /tx/{t}/outspends"] = es.json(f"/tx/{t}/outspends")
    finally:
        es.close()
    return out


# -- the test ------------------------------------------------------------------------------------

class Submitter(threading.Thread):
    """submitblock for each block in turn until done or the node goes away."""

    def __init__(self, node: NodeProcess, blocks: list[Block]) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.blocks = blocks
        self.acked = 0

    def run(self) -> None:
        for b in self.blocks:
            try:
                r = self.node.call("submitblock", b.serialize().hex())
            except (OSError, RPCFailure, ValueError, http.client.HTTPException):
                return
            assert r in (None, "duplicate", "inconclusive"), r
            self.acked += 1


def submit_all(node: NodeProcess, blocks: list[Block]) -> None:
    for b in blocks:
        assert node.call("submitblock", b.serialize().hex()) in (
            None, "duplicate", "inconclusive")


def compare(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b), (what, set(a) ^ set(b))
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, (what, len(diff), diff[:5], [(a[k], b[k]) for k in diff[:2]])


def test_indexes_after_reorgs_restart_and_kills_equal_a_rebuild(tmp_path):
    rounds, final_tip = build_rounds()
    stale_txids = {t.txid_hex() for r in rounds for b in r for t in b.txs}
    rng = random.Random(4)
    esplora_port = free_port()
    node = NodeProcess(tmp_path / "n")
    options = (*OPTIONS, f"-esplora={esplora_port}")
    fresh_port = free_port()
    fresh = NodeProcess(tmp_path / "fresh", *OPTIONS, f"-esplora={fresh_port}")
    try:
        # The base chain on a node without indexes; then the indexes turned on, built in the
        # background for that chain, and the node killed while they are.
        node.start()
        submit_all(node, rounds[0])
        node.stop()
        log = node.chain_dir / "debug.log"
        size = len(log.read_text())
        node.start(*options, wait=False)
        wait_until(lambda: "addridx thread start" in log.read_text()[size:], 60,
                   "the index threads")
        time.sleep(rng.uniform(0.0, 0.05))
        node.kill()
        node.start(*options)
        for i, blocks in enumerate(rounds[1:], 1):
            # Each round submitted from a thread, the node killed at a random moment of it:
            # soon after a random block, or while the round's last block (the one that makes
            # the competing branch win) is being connected and the chain reorganised; once,
            # a clean restart instead. Then the round is submitted again in full.
            sub = Submitter(node, blocks)
            sub.start()
            if i == 3:
                sub.join(60)
                node.stop()
            else:
                after = len(blocks) - 1 if i % 2 else rng.randrange(len(blocks))
                deadline = time.time() + 60
                while sub.acked < after and sub.is_alive() and time.time() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, 0.03))
                node.kill()
                sub.join(60)
            node.start(*options)
            for b in blocks[:sub.acked]:  # nothing acknowledged was lost
                node.call("getblockheader", b.hash[::-1].hex())
            submit_all(node, blocks)
        # killed once more right after the last reorg, the indexes catching up
        node.kill()
        node.start(*options)
        assert node.call("getbestblockhash") == final_tip[::-1].hex()
        before = snapshot(node, esplora_port, stale_txids)

        # A fresh node that syncs the chain from this one over P2P (the best chain only)
        fresh.start()
        connect(fresh, node)
        wait_until(lambda: fresh.call("getbestblockhash") == final_tip[::-1].hex(), 60,
                   "the fresh node's sync")
        fresh_answers = snapshot(fresh, fresh_port, stale_txids)
        fresh.stop()
        node.stop()

        # The same node with everything rebuilt from its block files
        node.start(*options, "-reindex")
        after = snapshot(node, esplora_port, stale_txids)
    finally:
        node.stop()
        fresh.stop()
    compare(before, after, "-reindex")
    compare(before, fresh_answers, "fresh node")
