"""Mempool acceptance with Core's policy and reasons, RBF, package limits, orphans, eviction,
expiry, following the chain, persistence; block templates by ancestor fee rate."""

from __future__ import annotations

import pytest

from consensus.amounts import COIN
from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node import mining
from node.chain import ChainState
from node.mempool import Mempool, MempoolReject
from node.scriptcheck import ScriptChecker
from tests.chainbuilder import Wallet

RBF = 0xFFFFFFFD
FINAL = 0xFFFFFFFF


class Env:
    """A chain with 110 blocks whose coinbases pay a test wallet, and a mempool."""

    def __init__(self, path, **mempool_kw) -> None:
        self.chain = ChainState(path, REGTEST, dbcache_mb=8, scripts=ScriptChecker(0))
        self.chain.load()
        self.clock = [1_800_000_000.0]
        self.mempool = Mempool(self.chain, now=lambda: self.clock[0], **mempool_kw)
        self.w = Wallet()
        self.coinbases = []
        for _ in range(110):
            self.coinbases.append(self.mine().txs[0])

    def mine(self, txids=None, txs=None) -> object:
        t = mining.create_template(self.chain, self.mempool, self.w.p2wpkh, txids=txids,
                                   txs=txs)
        assert mining.solve(t.block, REGTEST, 10**6)
        self.chain.process_block(t.block)
        return t.block

    def coin(self, i: int) -> tuple[OutPoint, TxOut]:
        cb = self.coinbases[i]
        return OutPoint(cb.txid, 0), cb.vout[0]

    def spend(self, prevs: list[tuple[OutPoint, TxOut]], values: list[int], spk=None,
              seq=RBF, version=2, locktime=0) -> Transaction:
        tx = Transaction(version, [TxIn(p, b"", seq) for p, _ in prevs],
                         [TxOut(v, spk or self.w.p2wpkh) for v in values], locktime)
        return self.w.sign(tx, [o for _, o in prevs])

    def close(self) -> None:
        self.chain.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "n")
    yield e
    e.close()


def reason(env, tx, **kw) -> str:
    with pytest.raises(MempoolReject) as e:
        env.mempool.accept(tx, **kw)
    return e.value.reason


def out(tx, n=0):
    return OutPoint(tx.txid, n), tx.vout[n]


# -- acceptance ------------------------------------------------------------------------------


def test_accept_and_lookup(env):
    tx = env.spend([env.coin(0)], [49 * COIN])
    r = env.mempool.accept(tx)
    assert r.fee == COIN and tx.txid in env.mempool
    assert env.mempool.is_spent(env.coinbases[0].txid, 0)
    assert env.mempool.get_output(tx.txid, 0).value == 49 * COIN
    assert reason(env, tx) == "txn-already-in-mempool"


def test_min_relay_fee(env):
    p, o = env.coin(0)
    tx = env.spend([(p, o)], [o.value - 10])  # 10 sat for ~110 vB: 0.1 sat/vB is 11
    assert reason(env, tx) == "min relay fee not met"
    ok = env.spend([(p, o)], [o.value - 20])
    env.mempool.accept(ok)


def test_dust(env):
    p, o = env.coin(0)
    assert reason(env, env.spend([(p, o)], [o.value - 10_000, 293])) == "dust"  # P2WPKH: 294
    env.mempool.accept(env.spend([(p, o)], [o.value - 10_000, 294]))


def test_nonstandard_outputs_and_versions(env):
    p, o = env.coin(0)
    assert reason(env, env.spend([(p, o)], [COIN], spk=b"\x51\x51")) == "scriptpubkey"
    # Several OP_RETURN outputs are standard (Core since v30), up to -datacarriersize bytes
    # of them together.
    tx = env.spend([(p, o)], [COIN])
    tx.vout += [TxOut(0, b"\x6a\x01\x01"), TxOut(0, b"\x6a\x01\x02")]
    env.w.sign(tx, [o])
    env.mempool.accept(tx, test_only=True)
    env.mempool.max_datacarrier_bytes = 5
    assert reason(env, tx) == "datacarrier"
    env.mempool.max_datacarrier_bytes = None  # -datacarrier=0
    assert reason(env, env.spend([(p, o)], [0], spk=b"\x6a")) == "datacarrier"
    assert reason(env, env.spend([(p, o)], [COIN], version=4)) == "version"
    assert reason(env, env.spend([(p, o)], [COIN], version=0)) == "version"


def test_coinbase_and_size_small(env):
    assert reason(env, env.coinbases[0]) == "coinbase"
    p, o = env.coin(0)
    tx = Transaction(2, [TxIn(p, b"", RBF)], [TxOut(o.value - 1000, b"\x6a")])
    env.w.sign(tx, [o])
    assert tx.base_size < 65
    assert reason(env, tx) == "tx-size-small"


def test_nonstandard_input(env):
    # An OP_TRUE output is valid to spend but not a standard input.
    p, o = env.coin(0)
    fund = env.spend([(p, o)], [10 * COIN, 39 * COIN], spk=None)
    fund.vout[0].script_pubkey = b"\x51"
    env.w.sign(fund, [o])
    assert reason(env, fund) == "scriptpubkey"  # creating it is not standard either...
    env.mine(txs=[fund])  # ...but a miner may
    tx = Transaction(2, [TxIn(OutPoint(fund.txid, 0), b"", RBF)], [TxOut(9 * COIN, env.w.p2wpkh)])
    assert reason(env, tx) == "bad-txns-nonstandard-inputs"


def test_missing_and_already_known(env):
    tx = env.spend([(OutPoint(b"\x77" * 32, 0), TxOut(COIN, env.w.p2wpkh))], [COIN // 2])
    with pytest.raises(MempoolReject) as e:
        env.mempool.accept(tx)
    assert e.value.reason == "bad-txns-inputs-missingorspent" and e.value.missing_inputs
    # A transaction already confirmed: its outputs are in the UTXO set.
    tx = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(tx)
    env.mine()
    with pytest.raises(MempoolReject) as e:
        env.mempool.accept(tx)
    assert e.value.already_known and e.value.reason == "txn-already-known"


def test_immature_coinbase(env):
    # Coinbase of block 101 at next height 111: depth 10.
    assert reason(env, env.spend([env.coin(100)], [49 * COIN])) == (
        "bad-txns-premature-spend-of-coinbase"
    )


def test_locktime_and_bip68(env):
    height = env.chain.height
    assert reason(env, env.spend([env.coin(0)], [49 * COIN], locktime=height + 2)) == "non-final"
    env.mempool.accept(env.spend([env.coin(0)], [49 * COIN], locktime=height))
    # Relative lock of 200 blocks on a coin at height 2.
    assert reason(env, env.spend([env.coin(1)], [49 * COIN], seq=200)) == "non-BIP68-final"
    env.mempool.accept(env.spend([env.coin(1)], [49 * COIN], seq=100))


def _high_s(der_sig_with_type: bytes) -> bytes:
    """The same ECDSA signature with S replaced by n - S: valid, but not low-S."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    der, hashtype = der_sig_with_type[:-1], der_sig_with_type[-1:]
    rlen = der[3]
    r = der[4:4 + rlen]
    s = int.from_bytes(der[6 + rlen:], "big")
    s_bytes = (n - s).to_bytes(33, "big").lstrip(b"\x00")
    if s_bytes[0] & 0x80:
        s_bytes = b"\x00" + s_bytes
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s_bytes)]) + s_bytes
    return b"\x30" + bytes([len(body)]) + body + hashtype


def test_script_failures_classified(env):
    p, o = env.coin(0)
    tx = env.spend([(p, o)], [49 * COIN])
    tx.vin[0].witness[0] = tx.vin[0].witness[0][:-2] + b"\x00\x01"  # corrupt the signature
    tx.rehash()
    # As Core's: the same reason whether consensus or only policy refuses it.
    assert reason(env, tx).startswith("mempool-script-verify-flag-failed (")
    # Valid by consensus, not by policy: a high-S signature (LOW_S is a policy flag).
    tx = env.spend([(p, o)], [49 * COIN])
    tx.vin[0].witness[0] = _high_s(tx.vin[0].witness[0])
    tx.rehash()
    assert reason(env, tx) == ("mempool-script-verify-flag-failed (Non-canonical signature: "
                               "S value is unnecessarily high)")
    env.mine(txs=[tx])  # a miner may include it: consensus accepts it
    assert env.chain.tip.n_tx == 2


def test_full_rbf_rules(env):
    p, o = env.coin(0)
    a = env.spend([(p, o)], [o.value - 10_000], seq=FINAL)  # not signalling: full RBF anyway
    env.mempool.accept(a)
    same_fee = env.spend([(p, o)], [o.value - 10_001], seq=FINAL)
    assert reason(env, same_fee) == "insufficient fee"  # needs +incremental relay fee
    lower = env.spend([(p, o)], [o.value - 5_000])
    assert reason(env, lower) == "insufficient fee"
    better = env.spend([(p, o)], [o.value - 20_000])
    r = env.mempool.accept(better)
    assert [t.txid for t in r.replaced] == [a.txid] and a.txid not in env.mempool


def test_rbf_pays_for_descendants_and_no_new_unconfirmed(env):
    p, o = env.coin(0)
    parent = env.spend([(p, o)], [o.value - 10_000])
    env.mempool.accept(parent)
    child = env.spend([out(parent)], [parent.vout[0].value - 100_000])
    env.mempool.accept(child)
    # Must pay more than parent + child together.
    rep = env.spend([(p, o)], [o.value - 50_000])
    assert reason(env, rep) == "insufficient fee"
    rep = env.spend([(p, o)], [o.value - 200_000])
    r = env.mempool.accept(rep)
    assert {t.txid for t in r.replaced} == {parent.txid, child.txid}


def test_spends_conflicting_tx(env):
    p, o = env.coin(0)
    parent = env.spend([(p, o)], [o.value - 10_000])
    env.mempool.accept(parent)
    bad = env.spend([(p, o), out(parent)], [o.value + parent.vout[0].value - 10**6])
    assert reason(env, bad) == "bad-txns-spends-conflicting-tx"


def test_opt_in_rbf_when_full_rbf_is_off(tmp_path):
    env = Env(tmp_path / "n", full_rbf=False)
    try:
        p, o = env.coin(0)
        env.mempool.accept(env.spend([(p, o)], [o.value - 10_000], seq=FINAL))
        assert reason(env, env.spend([(p, o)], [o.value - 50_000])) == "txn-mempool-conflict"
        p, o = env.coin(1)
        env.mempool.accept(env.spend([(p, o)], [o.value - 10_000], seq=RBF))
        env.mempool.accept(env.spend([(p, o)], [o.value - 50_000]))
    finally:
        env.close()


def test_too_many_replacements(env):
    # 101 confirmed outputs each spent by its own transaction (101 clusters): a replacement
    # of them all conflicts with more than 100 clusters; of 100, it may.
    p, o = env.coin(0)
    split = env.spend([(p, o)], [o.value // 101 - 1000] * 101)
    env.mine(txs=[split])
    for n in range(101):
        env.mempool.accept(env.spend([out(split, n)], [split.vout[n].value - 1000]))
    rep = env.spend([out(split, n) for n in range(101)], [COIN])
    assert reason(env, rep) == "too many potential replacements"
    assert "too many conflicting clusters (101 > 100)" in str(env_reject(env, rep))
    env.mempool.accept(env.spend([out(split, n) for n in range(100)], [COIN]))


def env_reject(env, tx) -> MempoolReject:
    with pytest.raises(MempoolReject) as e:
        env.mempool.accept(tx)
    return e.value


def test_cluster_count_limit(env):
    # No ancestor limit of 25 any more (Core's cluster mempool): 64 in a chain is the most.
    tx = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(tx)
    chain = [tx]
    for _ in range(63):
        nxt = env.spend([out(chain[-1])], [chain[-1].vout[0].value - 1000])
        env.mempool.accept(nxt)
        chain.append(nxt)
    assert len(env.mempool) == 64
    nxt = env.spend([out(chain[-1])], [chain[-1].vout[0].value - 1000])
    assert reason(env, nxt) == "too-large-cluster"


def test_orphans_resolve_when_parent_arrives(env):
    parent = env.spend([env.coin(0)], [49 * COIN])
    child = env.spend([out(parent)], [49 * COIN - 10_000])
    with pytest.raises(MempoolReject) as e:
        env.mempool.accept(child)
    assert e.value.missing_inputs
    assert env.mempool.add_orphan(child)
    env.mempool.accept(parent)
    assert child.txid in env.mempool and not env.mempool.has_orphan(child.txid)


def test_orphan_pool_is_bounded(env):
    from node.mempool import MAX_ORPHANS

    for i in range(MAX_ORPHANS + 20):
        ghost = (OutPoint(bytes([i % 256, i // 256]) * 16, 0), TxOut(COIN, env.w.p2wpkh))
        env.mempool.add_orphan(env.spend([ghost], [COIN - 1000]))
    assert len(env.mempool.orphans) == MAX_ORPHANS


def test_eviction_by_descendant_feerate(tmp_path):
    env = Env(tmp_path / "n")
    try:
        txs = []
        for i, fee in enumerate([5_000, 50_000, 20_000, 80_000]):
            tx = env.spend([env.coin(i)], [50 * COIN - fee])
            env.mempool.accept(tx)
            txs.append(tx)
        env.mempool.max_bytes = env.mempool.usage - 1  # one must go: the cheapest
        env.mempool.trim_to_size()
        assert txs[0].txid not in env.mempool and len(env.mempool) == 3
        assert env.mempool.min_fee_rate() > env.mempool.min_relay_fee
        # Now a low fee rate is refused with the mempool's minimum.
        low = env.spend([env.coin(5)], [50 * COIN - 3_000])
        assert reason(env, low) == "mempool min fee not met"
        # The rolling minimum decays with time, but only once a block came since the bump.
        env.mempool.max_bytes = 10**9
        env.clock[0] += 3 * 24 * 3600
        assert env.mempool.min_fee_rate() > env.mempool.min_relay_fee
        env.mine()
        env.clock[0] += 3 * 24 * 3600
        assert env.mempool.min_fee_rate() == 0
    finally:
        env.close()


def test_expiry(env):
    old = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(old)
    env.clock[0] += 337 * 3600
    env.mempool.accept(env.spend([env.coin(1)], [49 * COIN]))  # triggers expiry
    assert old.txid not in env.mempool and len(env.mempool) == 1


# -- following the chain -----------------------------------------------------------------


def test_block_removes_confirmed_and_conflicts(env):
    a = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(a)
    child = env.spend([out(a)], [49 * COIN - 10_000])
    env.mempool.accept(child)
    # A block that confirms a conflicting spend of coin 1, plus a.
    conflict = env.spend([env.coin(1)], [48 * COIN])
    mine_other = env.spend([env.coin(1)], [49 * COIN])
    env.mempool.accept(mine_other)
    env.mempool.entries.pop(mine_other.txid)  # keep it out of the template, unseen otherwise
    env.mempool.spent.pop(env.coin(1)[0].hash + (0).to_bytes(4, "big"))
    env.mempool.accept(conflict)
    env.mine()
    assert len(env.mempool) == 0


def test_reorg_returns_transactions_and_drops_invalid(env):
    a = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(a)
    block = env.mine()
    assert a.txid not in env.mempool
    # A spend of the new block's coinbase output... is immature; instead spend a's output.
    b = env.spend([out(a)], [a.vout[0].value - 10_000])
    env.mempool.accept(b)
    env.chain.invalidate_block(block.hash)
    # a comes back, b still there (its parent is back in the mempool).
    assert a.txid in env.mempool and b.txid in env.mempool
    assert env.mempool.entries[b.txid].parents == {a.txid}


def test_reorg_drops_spends_of_vanished_coinbase(env):
    # Spend the coinbase of block 10; then reorg away blocks 10..: that coin no longer exists.
    env.mempool.accept(env.spend([env.coin(9)], [49 * COIN]))
    target = env.chain.active[10].hash
    env.chain.invalidate_block(target)
    assert len(env.mempool) == 0


def test_persistence(env, tmp_path):
    a = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(a)
    env.mempool.prioritise(a.txid, 12345)
    path = tmp_path / "mempool.dat"
    assert env.mempool.save(path) == 1
    fresh = Mempool(env.chain, now=lambda: env.clock[0])
    ok, failed = fresh.load(path)
    assert (ok, failed) == (1, 0) and fresh.entries[a.txid].delta == 12345
    path.write_bytes(b"garbage")
    assert Mempool(env.chain).load(path) == (0, 0)  # a damaged file is reported, not fatal


# -- templates ------------------------------------------------------------------------------


def test_template_cpfp(env):
    low = env.spend([env.coin(0)], [50 * COIN - 200])  # ~1.3 sat/vB
    env.mempool.accept(low)
    mid = env.spend([env.coin(1)], [50 * COIN - 5_000])
    env.mempool.accept(mid)
    child = env.spend([out(low)], [low.vout[0].value - 100_000])  # pays for its parent
    env.mempool.accept(child)
    order = mining.select_transactions(env.mempool)
    assert order.index(low.txid) < order.index(child.txid)
    assert order[0] == low.txid and order[-1] == mid.txid
    # With a tight weight budget only the best package fits.
    w = env.mempool.entries[low.txid].weight + env.mempool.entries[child.txid].weight
    assert mining.select_transactions(env.mempool, max_weight=4000 + w) == [low.txid, child.txid]


def test_template_block_is_valid_and_pays_fees(env):
    for i in range(5):
        env.mempool.accept(env.spend([env.coin(i)], [50 * COIN - 1000 * (i + 1)]))
    t = mining.create_template(env.chain, env.mempool, env.w.p2tr)
    assert len(t.block.txs) == 6 and t.total_fees == 15_000
    assert t.block.txs[0].vout[0].value == 50 * COIN + 15_000
    env.chain.test_block_validity(t.block)
    assert mining.solve(t.block, REGTEST, 10**6)
    env.chain.process_block(t.block)
    assert len(env.mempool) == 0


def test_prioritise_changes_selection(env):
    a = env.spend([env.coin(0)], [50 * COIN - 1000])
    b = env.spend([env.coin(1)], [50 * COIN - 2000])
    env.mempool.accept(a)
    env.mempool.accept(b)
    assert mining.select_transactions(env.mempool)[0] == b.txid
    env.mempool.prioritise(a.txid, 5000)
    assert mining.select_transactions(env.mempool)[0] == a.txid


def test_opt_in_signal_is_not_inherited_for_conflicts(tmp_path):
    # Core checks only the conflicting transaction (CVE-2021-31876 behaviour): a child that
    # does not signal cannot be replaced even though its parent signals.
    env = Env(tmp_path / "n", full_rbf=False)
    try:
        p, o = env.coin(0)
        parent = env.spend([(p, o)], [o.value - 10_000], seq=RBF)
        env.mempool.accept(parent)
        child = env.spend([out(parent)], [parent.vout[0].value - 10_000], seq=FINAL)
        env.mempool.accept(child)
        assert env.mempool._signals_rbf(child.txid)  # bip125-replaceable (inherited)
        rival = env.spend([out(parent)], [parent.vout[0].value - 50_000])
        assert reason(env, rival) == "txn-mempool-conflict"
    finally:
        env.close()


def test_orphans_dropped_when_a_block_conflicts(env):
    parent = env.spend([env.coin(0)], [49 * COIN])
    orphan = env.spend([out(parent), env.coin(1)], [98 * COIN])
    env.mempool.add_orphan(orphan)
    env.mine(txs=[env.spend([env.coin(2)], [49 * COIN])])
    assert env.mempool.has_orphan(orphan.txid)  # unrelated block: still waiting
    env.mine(txs=[env.spend([env.coin(1)], [48 * COIN])])  # spends one of its inputs
    assert not env.mempool.has_orphan(orphan.txid)
