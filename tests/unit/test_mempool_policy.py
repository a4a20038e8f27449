"""Core's current mempool policy in node/mempool.py and node/policy.py: options read from the
node's config, feerate diagrams for replacements, TRUC (version 3) rules, pay-to-anchor
spends, the unbroadcast set (kept in mempool.dat), orphans with their announcers, clusters
trimmed to the limit after a reorg, a deterministic listing order."""

from __future__ import annotations

import logging

import pytest

from consensus.amounts import COIN
from consensus.script.standard import PAY_TO_ANCHOR
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node import policy
from node.confparse import ConfigError
from node.mempool import Mempool, chunk_diagram, diagram_improves, format_money
from tests.unit.test_mempool import Env, out, reason


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "n")
    yield e
    e.close()


class FakeConfig:
    """What the mempool reads of node.config.NodeConfig: Core's options as strings."""

    def __init__(self, minrelaytxfee=None, **args: str) -> None:
        self.minrelaytxfee = minrelaytxfee
        self.args = {k: [v] for k, v in args.items()}

    def arg_set(self, name):
        return name in self.args

    def arg_str(self, name, default=None):
        return self.args.get(name, [default])[-1]

    def arg_bool(self, name, default=False):
        v = self.arg_str(name)
        return default if v is None else v not in ("0", "false")

    def arg_int(self, name, default=0):
        v = self.arg_str(name)
        return default if v is None else int(v)


def test_format_money_as_core():
    assert format_money(0) == "0.00"
    assert format_money(11) == "0.00000011"
    assert format_money(3 * COIN) == "3.00"
    assert format_money(150_000_000) == "1.50"
    assert format_money(-1) == "-0.00000001"


def test_feerate_diagram():
    # One chunk 100 sat / 100 vB vs 150 sat / 1000 vB: more fee, but worse at 100 vB.
    old = chunk_diagram({b"a": (100, 100, set())})
    new = chunk_diagram({b"b": (150, 1000, set())})
    assert not diagram_improves(old, new)
    assert diagram_improves(old, chunk_diagram({b"b": (101, 100, set())}))
    assert not diagram_improves(old, old)  # equal is not better
    # A child paying for its parent is one chunk.
    chunks = chunk_diagram({b"p": (10, 100, set()), b"c": (1000, 100, {b"p"})})
    assert chunks == [(1010, 200)]
    # A child paying less than its parent stays apart, after it.
    assert chunk_diagram({b"p": (1000, 100, set()), b"c": (10, 100, {b"p"})}) == \
        [(1000, 100), (10, 100)]


def test_options_from_config(env):
    mp = env.mempool
    mp.config = FakeConfig(permitbaremultisig="0", datacarriersize="10", dustrelayfee="0",
                           incrementalrelayfee="0.00002", limitclustercount="5",
                           limitclustersize="20", acceptnonstdtxn="1")
    assert mp.permit_bare_multisig is False and mp.max_datacarrier_bytes == 10
    assert mp.dust_relay_fee == 0 and mp.incremental_relay_fee == 2000
    assert mp.min_relay_fee == 2000  # raised with the incremental fee (no -minrelaytxfee)
    assert (mp.cluster_count, mp.cluster_size) == (5, 20_000)
    assert mp.require_standard is False
    other = Mempool(env.chain, min_relay_fee=100)
    other.config = FakeConfig(minrelaytxfee="0.000001", incrementalrelayfee="0.00002")
    assert other.min_relay_fee == 100  # given explicitly: kept
    with pytest.raises(ConfigError) as e:
        other.config = FakeConfig(dustrelayfee="abc")
    assert str(e.value) == "Error: Invalid amount for -dustrelayfee=<amount>: 'abc'"
    other.config = FakeConfig(datacarrier="0")
    assert other.max_datacarrier_bytes is None


def test_dust_relay_fee_zero_and_one_dust_output(env):
    p, o = env.coin(0)
    tx = env.spend([(p, o)], [o.value - 10_000, 1])
    assert reason(env, tx) == "dust"  # one dust output only in a transaction without fee
    env.mempool.dust_relay_fee = 0
    env.mempool.accept(tx)


def test_nonstandard_accepted_with_acceptnonstdtxn(env):
    p, o = env.coin(0)
    tx = env.spend([(p, o)], [COIN], version=4)
    assert reason(env, tx) == "version"
    env.mempool.require_standard = False
    env.mempool.accept(tx)


def test_truc_rules(env):
    p, o = env.coin(0)
    parent = env.spend([(p, o)], [o.value - 10_000], version=3)
    env.mempool.accept(parent)
    non_truc = env.spend([out(parent)], [parent.vout[0].value - 10_000])
    with pytest.raises(Exception) as e:
        env.mempool.accept(non_truc)
    assert e.value.reason == "TRUC-violation"
    assert "non-version=3 tx" in e.value.debug and "cannot spend from version=3 tx" in \
        e.value.debug
    child = env.spend([out(parent)], [parent.vout[0].value - 10_000], version=3)
    env.mempool.accept(child)
    # A second child: its sibling is evicted if it pays enough (sibling eviction).
    second = env.spend([out(parent)], [parent.vout[0].value - 50_000], version=3)
    r = env.mempool.accept(second)
    assert [t.txid for t in r.replaced] == [child.txid]
    grandchild = env.spend([out(second)], [second.vout[0].value - 10_000], version=3)
    with pytest.raises(Exception) as e:
        env.mempool.accept(grandchild)
    assert e.value.debug.endswith("would have too many ancestors")
    big = env.spend([env.coin(1)], [COIN // 200] * 400, version=3)
    assert big.vsize > policy.TRUC_MAX_VSIZE
    assert reason(env, big) == "TRUC-violation"


def test_pay_to_anchor(env):
    p, o = env.coin(0)
    fund = env.spend([(p, o)], [o.value - 20_000, 10_000])
    fund.vout[1].script_pubkey = PAY_TO_ANCHOR
    env.w.sign(fund, [o])
    env.mempool.accept(fund)  # creating an anchor is standard
    spend = Transaction(2, [TxIn(OutPoint(fund.txid, 1), b"", 0xFFFFFFFD)],
                        [TxOut(0, b"\x6a\x01\x01\x01\x01\x01\x01")])
    spend.vin[0].witness = [b"f"]
    assert reason(env, spend) == "bad-witness-nonstandard"  # a witness: malleable wtxid
    spend.vin[0].witness = []
    spend.vout[0].value = 9_000
    spend.vout[0].script_pubkey = env.w.p2wpkh
    env.mempool.accept(spend)


def test_unbroadcast_removed_with_a_log_line_and_persisted(env, tmp_path, caplog):
    a = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(a)
    env.mempool.unbroadcast.add(a.txid)
    path = tmp_path / "mempool.dat"
    env.mempool.save(path)
    fresh = Mempool(env.chain, now=lambda: env.clock[0])
    assert fresh.load(path) == (1, 0) and fresh.unbroadcast == {a.txid}
    caplog.set_level(logging.DEBUG, logger="mempool")
    env.mine()
    assert a.txid not in env.mempool and not env.mempool.unbroadcast
    assert (f"Removed {a.txid_hex()} from set of unbroadcast txns before confirmation that "
            "txn was sent out") in caplog.text


def test_orphans_keep_announcers(env):
    parent = env.spend([env.coin(0)], [49 * COIN])
    child = env.spend([out(parent)], [49 * COIN - 10_000])
    assert env.mempool.add_orphan(child, 7)
    assert not env.mempool.add_orphan(child, 8)  # known: one more announcer
    assert env.mempool.add_orphan_announcer(child.wtxid, 9)
    assert env.mempool.orphans[child.wtxid].announcers == [7, 8, 9]
    assert env.mempool.has_orphan(child.txid) and env.mempool.has_orphan(child.wtxid)
    env.mempool.peer_orphans_gone(7)
    env.mempool.peer_orphans_gone(8)
    assert env.mempool.has_orphan(child.txid)
    env.mempool.peer_orphans_gone(9)  # nobody left to ask: dropped
    assert not env.mempool.has_orphan(child.txid)


def test_cluster_over_the_limit_after_a_reorg_is_trimmed(env):
    tx = env.spend([env.coin(0)], [49 * COIN])
    env.mempool.accept(tx)
    chain = [tx]
    for _ in range(5):
        nxt = env.spend([out(chain[-1])], [chain[-1].vout[0].value - 1000])
        env.mempool.accept(nxt)
        chain.append(nxt)
    block = env.mine()
    assert len(env.mempool) == 0
    env.mempool.cluster_count = 4
    env.chain.invalidate_block(block.hash)
    # The chain of 6 comes back as far as the limit allows: its first 4.
    assert set(env.mempool.entries) == {t.txid for t in chain[:4]}


def test_listing_order_is_deterministic(env):
    a = env.spend([env.coin(0)], [49 * COIN])
    b = env.spend([out(a)], [a.vout[0].value - 1000])
    c = env.spend([env.coin(1)], [49 * COIN])
    for tx in (a, b, c):
        env.mempool.accept(tx)
    order = env.mempool.sorted_txids()
    assert order.index(a.txid) < order.index(b.txid)
    assert order[:2] == sorted([a.txid, c.txid], key=lambda t: t[::-1])


def test_listing_kept_while_the_entries_stay_and_redone_when_they_change(env):
    """sorted_txids answers from the last sort until an entry comes or goes (a block, a
    reorg's return), always equal to sorting afresh; callers get their own copy."""
    m = env.mempool
    a = env.spend([env.coin(0)], [49 * COIN])
    b = env.spend([out(a)], [a.vout[0].value - 1000])
    m.accept(a)
    first = m.sorted_txids()
    assert first == [a.txid] and m.sorted_txids() is not first
    first.append(b"junk")
    assert m.sorted_txids() == [a.txid]
    m.accept(b)
    assert m.sorted_txids() == m._sort_txids() == [a.txid, b.txid]
    block = env.mine()
    assert m.sorted_txids() == []
    env.chain.invalidate_block(block.hash)  # both come back
    assert m.sorted_txids() == m._sort_txids() == [a.txid, b.txid]
