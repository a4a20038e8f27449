"""Mempool and mining over JSON-RPC on a real node: mine 101 blocks to an address and spend
the first coinbase, RBF, CPFP in templates, a template turned into a block outside the node
and submitted, generateblock, reorgs returning transactions, a mempool surviving restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.amounts import COIN
from consensus.block import Block, add_witness_commitment
from consensus.hashes import hex_to_hash
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.mining import make_coinbase
from tests.blocktools import solve
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, RPCFailure, coinbase_out
from wallet.address import script_to_address

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)


def spend(prevs, values, spk=None, seq=0xFFFFFFFD) -> Transaction:
    tx = Transaction(2, [TxIn(p, b"", seq) for p, _ in prevs],
                     [TxOut(v, spk or W.p2wpkh) for v in values])
    return W.sign(tx, [o for _, o in prevs])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("mm") / "n")
    n.start()
    # 120 blocks: coinbases 1..20 are mature, one for each test below.
    hashes = n.call("generatetoaddress", 120, ADDR)
    assert len(hashes) == 120 and n.call("getblockcount") == 120
    yield n
    n.stop()


def test_spend_first_coinbase_and_mine_it(node):
    prev = coinbase_out(node, 1, W.p2wpkh)
    tx = spend([prev], [prev[1].value - 10_000])
    res = node.call("testmempoolaccept", [tx.serialize().hex()])[0]
    assert res["allowed"] is True and res["vsize"] == tx.vsize
    assert res["fees"]["base"] == Decimal("0.00010000")
    txid = node.call("sendrawtransaction", tx.serialize().hex())
    assert txid == tx.txid_hex()
    assert node.call("sendrawtransaction", tx.serialize().hex()) == txid  # idempotent
    assert node.call("getrawmempool") == [txid]
    entry = node.call("getmempoolentry", txid)
    assert entry["fees"]["base"] == Decimal("0.00010000") and entry["ancestorcount"] == 1
    info = node.call("getmempoolinfo")
    assert info["size"] == 1 and info["loaded"] and "fullrbf" not in info  # deprecated
    assert info["unbroadcastcount"] == 1 and entry["unbroadcast"] is True
    assert node.call("gettxout", txid, 0)["confirmations"] == 0  # from the mempool
    assert node.call("gettxout", prev[0].hash[::-1].hex(), 0) is None  # spent in mempool
    assert node.call("gettxout", prev[0].hash[::-1].hex(), 0, False) is not None
    assert node.call("getrawtransaction", txid) == tx.serialize().hex()
    [bh] = node.call("generatetoaddress", 1, ADDR)
    block = node.call("getblock", bh)
    assert txid in block["tx"] and node.call("getrawmempool") == []
    cb = node.call("getblock", bh, 2)["tx"][0]
    assert cb["vout"][0]["value"] == Decimal("50.00010000")  # subsidy + fee


def test_rejections_over_rpc(node):
    prev = coinbase_out(node, 2, W.p2wpkh)
    low = spend([prev], [prev[1].value - 5])  # 0.1 sat/vB is the minimum
    res = node.call("testmempoolaccept", [low.serialize().hex()])[0]
    assert res == {"txid": low.txid_hex(), "wtxid": low.wtxid_hex(), "allowed": False,
                   "reject-reason": "min relay fee not met",
                   "reject-details": res["reject-details"]}
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", low.serialize().hex())
    assert e.value.code == -26 and e.value.message.startswith("min relay fee not met")
    dust = spend([prev], [prev[1].value - 10_000, 100])
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", dust.serialize().hex())
    # One dust output is allowed only in a transaction paying no fee (ephemeral dust)
    assert (e.value.code, e.value.message) == (-26, "dust, tx with dust output must be 0-fee")
    missing = spend([(OutPoint(b"\x01" * 32, 0), TxOut(COIN, W.p2wpkh))], [COIN // 2])
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", missing.serialize().hex())
    assert e.value.code == -25 and "missingorspent" in e.value.message
    assert node.call("testmempoolaccept", [missing.serialize().hex()])[0]["reject-reason"] == (
        "missing-inputs"
    )
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", "00")
    assert (e.value.code, e.value.message) == (-22, "TX decode failed")
    greedy = spend([prev], [prev[1].value - 5 * COIN])
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", greedy.serialize().hex())
    assert e.value.code == -25 and "Fee exceeds maximum" in e.value.message
    assert node.call("sendrawtransaction", greedy.serialize().hex(), 0) == greedy.txid_hex()
    # Replace it by fee (full RBF) with a higher fee still.
    rbf = spend([prev], [prev[1].value - 6 * COIN])
    assert node.call("sendrawtransaction", rbf.serialize().hex(), 0) == rbf.txid_hex()
    assert node.call("getrawmempool") == [rbf.txid_hex()]
    worse = spend([prev], [prev[1].value - 1 * COIN])
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", worse.serialize().hex(), 0)
    assert e.value.code == -26 and e.value.message.startswith("insufficient fee")
    node.call("generatetoaddress", 1, ADDR)
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", rbf.serialize().hex())
    assert e.value.code == -27


def test_cpfp_ancestors_descendants_and_prioritise(node):
    a_prev, b_prev = coinbase_out(node, 3, W.p2wpkh), coinbase_out(node, 4, W.p2wpkh)
    parent = spend([a_prev], [a_prev[1].value - 200])  # barely above the minimum
    node.call("sendrawtransaction", parent.serialize().hex())
    other = spend([b_prev], [b_prev[1].value - 5_000])
    node.call("sendrawtransaction", other.serialize().hex())
    child = spend([(OutPoint(parent.txid, 0), parent.vout[0])],
                  [parent.vout[0].value - 100_000])
    node.call("sendrawtransaction", child.serialize().hex())
    assert node.call("getmempoolancestors", child.txid_hex()) == [parent.txid_hex()]
    assert node.call("getmempooldescendants", parent.txid_hex()) == [child.txid_hex()]
    verbose = node.call("getrawmempool", True)
    assert verbose[child.txid_hex()]["depends"] == [parent.txid_hex()]
    assert verbose[parent.txid_hex()]["spentby"] == [child.txid_hex()]
    tmpl = node.call("getblocktemplate", {"rules": ["segwit"]})
    order = [t["txid"] for t in tmpl["transactions"]]
    # The child pays for its parent: both come before `other`, parent first.
    assert order == [parent.txid_hex(), child.txid_hex(), other.txid_hex()]
    assert tmpl["transactions"][1]["depends"] == [1]
    assert node.call("prioritisetransaction", other.txid_hex(), 0, 10 * COIN) is True
    tmpl = node.call("getblocktemplate", {"rules": ["segwit"]})
    assert tmpl["transactions"][0]["txid"] == other.txid_hex()
    assert node.call("getmempoolentry", other.txid_hex())["fees"]["modified"] == Decimal(
        "10.00005000")
    node.call("generatetoaddress", 1, ADDR)
    assert node.call("getrawmempool") == []


def test_template_block_built_outside_and_submitted(node):
    prev = coinbase_out(node, 5, W.p2wpkh)
    tx = spend([prev], [prev[1].value - 20_000])
    node.call("sendrawtransaction", tx.serialize().hex())
    with pytest.raises(RPCFailure) as e:
        node.call("getblocktemplate", {"rules": []})
    assert e.value.code == -8
    t = node.call("getblocktemplate", {"rules": ["segwit"]})
    assert t["coinbasevalue"] == 50 * COIN + 20_000 and t["height"] == node.call(
        "getblockcount") + 1
    # Build the block as a miner would, from the template alone.
    txs = [Transaction.from_hex(x["data"]) for x in t["transactions"]]
    cb = make_coinbase(t["height"], t["coinbasevalue"], W.p2tr)
    block = Block(None, [cb, *txs])
    block.header.version = t["version"]
    block.header.prev_hash = hex_to_hash(t["previousblockhash"])
    block.header.time = t["curtime"]
    block.header.bits = int(t["bits"], 16)
    add_witness_commitment(block)
    assert block.txs[0].vout[-1].script_pubkey.hex() == t["default_witness_commitment"]
    block.header.merkle_root = block.compute_merkle_root()[0]
    solve(block)
    proposal = node.call("getblocktemplate", {"mode": "proposal",
                                              "data": block.serialize().hex()})
    assert proposal is None
    assert node.call("submitblock", block.serialize().hex()) is None
    assert node.call("getbestblockhash") == block.hash_hex()
    assert node.call("submitblock", block.serialize().hex()) == "duplicate"
    # An invalid block gets its BIP22 reason.
    bad_cb = make_coinbase(t["height"] + 1, 51 * COIN, W.p2tr)
    bad = Block(None, [bad_cb])
    bad.header.version = t["version"]
    bad.header.prev_hash = block.hash
    bad.header.time = t["curtime"] + 1
    bad.header.bits = block.header.bits
    add_witness_commitment(bad)
    bad.header.merkle_root = bad.compute_merkle_root()[0]
    solve(bad)
    assert node.call("submitblock", bad.serialize().hex()) == "bad-cb-amount"
    with pytest.raises(RPCFailure) as e:
        node.call("submitblock", "beef")
    assert (e.value.code, e.value.message) == (-22, "Block decode failed")


def test_generateblock_and_generatetodescriptor(node):
    prev = coinbase_out(node, 6, W.p2wpkh)
    tx = spend([prev], [prev[1].value - 30_000])
    node.call("sendrawtransaction", tx.serialize().hex())
    prev2 = coinbase_out(node, 7, W.p2wpkh)
    raw = spend([prev2], [prev2[1].value - 1_000])
    res = node.call("generateblock", ADDR, [tx.txid_hex(), raw.serialize().hex()])
    block = node.call("getblock", res["hash"])
    assert block["tx"][1:] == [tx.txid_hex(), raw.txid_hex()]
    res = node.call("generateblock", ADDR, [], False)
    assert set(res) == {"hash", "hex"} and node.call("getbestblockhash") != res["hash"]
    with pytest.raises(RPCFailure) as e:
        node.call("generateblock", ADDR, ["11" * 32])
    assert e.value.code == -5 and "not in mempool" in e.value.message
    desc = node.call("getdescriptorinfo", f"addr({ADDR})")["descriptor"]
    [h] = node.call("generatetodescriptor", 1, desc)
    cb = node.call("getblock", h, 2)["tx"][0]
    assert cb["vout"][0]["scriptPubKey"]["address"] == ADDR
    with pytest.raises(RPCFailure) as e:
        node.call("generatetoaddress", 1, "notanaddress")
    assert (e.value.code, e.value.message) == (-5, "Error: Invalid address")


def test_mining_info_and_fee_estimate(node):
    info = node.call("getmininginfo")
    assert info["blocks"] == node.call("getblockcount") and info["chain"] == "regtest"
    assert info["pooledtx"] == len(node.call("getrawmempool"))
    assert node.call("getnetworkhashps") > 0
    # Core's shape without enough data: no fee rate (the wallets fall back on -fallbackfee
    # themselves), the error, and the longest target the data so far allows
    est = node.call("estimatesmartfee", 6)
    assert set(est) == {"errors", "blocks"} and 0 <= est["blocks"] < 6
    assert est["errors"] == ["Insufficient data or no feerate found"]
    with pytest.raises(RPCFailure) as e:
        node.call("estimatesmartfee", 0)
    assert e.value.code == -8


def test_reorg_returns_transactions(node):
    prev = coinbase_out(node, 8, W.p2wpkh)
    tx = spend([prev], [prev[1].value - 12_345])
    node.call("sendrawtransaction", tx.serialize().hex())
    [h] = node.call("generatetoaddress", 1, ADDR)
    assert node.call("getrawmempool") == []
    node.call("invalidateblock", h)
    assert node.call("getrawmempool") == [tx.txid_hex()]
    node.call("reconsiderblock", h)
    assert node.call("getrawmempool") == [] and node.call("getbestblockhash") == h


def test_mempool_survives_restart(tmp_path):
    n = NodeProcess(tmp_path / "n")
    with n:
        n.call("generatetoaddress", 101, ADDR)
        prev = coinbase_out(n, 1, W.p2wpkh)
        tx = spend([prev], [prev[1].value - 10_000])
        n.call("sendrawtransaction", tx.serialize().hex())
        n.call("prioritisetransaction", tx.txid_hex(), 0, 777)
    assert (n.chain_dir / "mempool.dat").exists()
    n2 = NodeProcess(tmp_path / "n")
    with n2:
        assert n2.call("getrawmempool") == [tx.txid_hex()]
        fees = n2.call("getmempoolentry", tx.txid_hex())["fees"]
        assert fees["modified"] - fees["base"] == Decimal("0.00000777")
    n3 = NodeProcess(tmp_path / "n", "-persistmempool=0")
    with n3:
        assert n3.call("getrawmempool") == []


def test_edge_answers_like_core(node):
    prev = coinbase_out(node, 9, W.p2wpkh)
    assert node.call("gettxout", prev[0].hash[::-1].hex(), -1) is None  # not an error
    # Same txid, other witness (a high-S signature): Core answers with the txid.
    from tests.unit.test_mempool import _high_s

    tx = spend([prev], [prev[1].value - 10_000])
    node.call("sendrawtransaction", tx.serialize().hex())
    twin = tx.copy()
    twin.vin[0].witness[0] = _high_s(tx.vin[0].witness[0])
    twin.rehash()
    assert twin.txid == tx.txid and twin.wtxid != tx.wtxid
    assert node.call("sendrawtransaction", twin.serialize().hex()) == tx.txid_hex()
    # Resubmitting an invalid block: duplicate-invalid.
    t = node.call("getblocktemplate", {"rules": ["segwit"]})
    cb = make_coinbase(t["height"] + 5, t["coinbasevalue"], W.p2tr)  # wrong BIP34 height
    cb.locktime = 0  # (final: the height check is the one that fails)
    cb.rehash()
    block = Block(None, [cb])
    block.header.version = t["version"]
    block.header.prev_hash = hex_to_hash(t["previousblockhash"])
    block.header.time = t["curtime"]
    block.header.bits = int(t["bits"], 16)
    add_witness_commitment(block)
    block.header.merkle_root = block.compute_merkle_root()[0]
    solve(block)
    assert node.call("submitblock", block.serialize().hex()) == "bad-cb-height"
    assert node.call("submitblock", block.serialize().hex()) == "duplicate-invalid"
    node.call("generatetoaddress", 1, ADDR)


def test_confirmed_transactions_get_minus_27(node):
    cb_hex = node.call("getblock", node.call("getblockhash", 50), 2)["tx"][0]["hex"]  # unspent
    with pytest.raises(RPCFailure) as e:
        node.call("sendrawtransaction", cb_hex)  # a confirmed coinbase
    assert (e.value.code, e.value.message) == (-27, "Transaction outputs already in utxo set")
    with pytest.raises(RPCFailure) as e:
        node.call("getnetworkhashps", 120, -5)
    assert e.value.code == -8


def test_batches_checked_on_the_worker_pool(tmp_path):
    """With script-check workers (the tests otherwise run -par=1): a batch of submissions
    whose scripts are verified in the background, including a duplicate and a bad one."""
    n = NodeProcess(tmp_path / "n", "-par=2")
    with n:
        n.call("generatetoaddress", 110, ADDR)
        txs = []
        for h in range(1, 11):
            prev = coinbase_out(n, h, W.p2wpkh)
            txs.append(spend([prev], [prev[1].value - 5_000]))
        bad = txs[3].copy()
        bad.vin[0].witness = [txs[3].vin[0].witness[0][:-2] + b"\x00\x01",
                              txs[3].vin[0].witness[1]]
        bad.vout[0].value -= 1
        bad.rehash()
        hexes = [t.serialize().hex() for t in txs[:3]] + [bad.serialize().hex()] + [
            t.serialize().hex() for t in txs[4:]] + [txs[0].serialize().hex()]
        status, replies = n.request([{"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction",
                                      "params": [h]} for i, h in enumerate(hexes)])
        assert status == 200 and len(replies) == len(hexes)
        by_id = {r["id"]: r for r in replies}
        assert by_id[3]["error"]["code"] == -26
        assert "script-verify-flag-failed" in by_id[3]["error"]["message"]
        assert by_id[len(hexes) - 1]["result"] == txs[0].txid_hex()  # the duplicate
        ok = {by_id[i]["result"] for i in range(len(hexes)) if i != 3}
        assert ok == {t.txid_hex() for i, t in enumerate(txs) if i != 3}
        assert sorted(n.call("getrawmempool")) == sorted(ok)

        # A large batch (many pieces for the workers, some left to the accepting thread):
        # 400 spends of one fan-out, a bad signature deep inside, a child of an earlier
        # transaction of the same batch, and blocks mined from another connection meanwhile.
        n.call("generatetoaddress", 1, ADDR)
        prev = coinbase_out(n, 11, W.p2wpkh)
        each = (prev[1].value - 100_000) // 400
        fan = spend([prev], [each] * 400)
        n.call("sendrawtransaction", fan.serialize().hex())
        n.call("generatetoaddress", 1, ADDR)
        spends = [spend([(OutPoint(fan.txid, i), TxOut(each, W.p2wpkh))], [each - 1_000])
                  for i in range(400)]
        bad = spends[250].copy()
        sig = bad.vin[0].witness[0]
        bad.vin[0].witness = [sig[:10] + bytes((sig[10] ^ 1,)) + sig[11:], bad.vin[0].witness[1]]
        bad.rehash()
        spends[250] = bad
        child = spend([(OutPoint(spends[10].txid, 0), spends[10].vout[0])], [each - 3_000])
        batch = [t.serialize().hex() for t in spends] + [child.serialize().hex()]

        import threading
        mined = []
        def mine() -> None:
            for _ in range(3):
                mined.extend(n.call("generatetoaddress", 1, ADDR))

        miner = threading.Thread(target=mine)
        miner.start()
        status, replies = n.request([{"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction",
                                      "params": [h]} for i, h in enumerate(batch)])
        miner.join(60)
        assert status == 200 and len(mined) == 3
        by_id = {r["id"]: r for r in replies}
        assert by_id[250]["error"]["code"] == -26
        assert "script-verify-flag-failed" in by_id[250]["error"]["message"]
        expect = [t.txid_hex() for i, t in enumerate(spends) if i != 250] + [child.txid_hex()]
        assert [by_id[i]["result"] for i in range(len(batch)) if i != 250] == expect
        pool = set(n.call("getrawmempool"))
        confirmed = {txid for h in mined for txid in n.call("getblock", h)["tx"]}
        assert set(expect) == (pool | confirmed) & set(expect)
        assert bad.txid_hex() not in pool | confirmed
