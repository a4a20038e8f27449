"""The mempool sequence (Core's m_sequence_number, what ZMQ's sequence topic numbers A/R
with and getrawmempool's mempool_sequence reports): one number per addition and per removal,
each used once, in the order listeners hear of them; trimming after an addition is numbered
after it; prioritisetransaction moves only the block template's version."""

from __future__ import annotations

from consensus.amounts import COIN
from tests.unit.test_mempool import Env


class Recorder:
    """Listens as ZMQ's publisher does: reads the sequence inside the callback."""

    def __init__(self, mempool) -> None:
        self.mempool = mempool
        self.events: list[tuple[str, bytes, int]] = []
        mempool.on_added.append(lambda tx: self.events.append(
            ("A", tx.txid, mempool.transactions_updated)))
        mempool.on_removed.append(lambda tx, why: self.events.append(
            ("R", tx.txid, mempool.transactions_updated)))


def test_trim_after_add_is_numbered_after_the_add(tmp_path):
    env = Env(tmp_path / "n")
    try:
        mp = env.mempool
        cheap = env.spend([env.coin(0)], [50 * COIN - 5_000])
        mp.accept(cheap)
        rec = Recorder(mp)
        start = mp.transactions_updated
        # Room for exactly what is there now: the next addition pushes the cheapest out.
        mp.max_bytes = mp.usage
        rich = env.spend([env.coin(1)], [50 * COIN - 80_000])
        mp.accept(rich)
        assert cheap.txid not in mp and rich.txid in mp
        assert rec.events == [("A", rich.txid, start + 1), ("R", cheap.txid, start + 2)]
        assert mp.entries[rich.txid].sequence == start + 1
        assert mp.transactions_updated == start + 2
    finally:
        env.close()


def test_added_then_trimmed_itself(tmp_path):
    """A transaction too cheap for a full pool: its addition and its removal, in order."""
    env = Env(tmp_path / "n")
    try:
        mp = env.mempool
        mp.accept(env.spend([env.coin(0)], [50 * COIN - 80_000]))
        rec = Recorder(mp)
        start = mp.transactions_updated
        mp.max_bytes = mp.usage
        cheap = env.spend([env.coin(1)], [50 * COIN - 5_000])
        try:
            mp.accept(cheap)
            raise AssertionError("accepted")
        except Exception as err:  # MempoolReject
            assert str(err) == "mempool full"
        assert rec.events == [("A", cheap.txid, start + 1), ("R", cheap.txid, start + 2)]
    finally:
        env.close()


def test_every_event_numbered_once_in_order(tmp_path):
    env = Env(tmp_path / "n")
    try:
        mp = env.mempool
        rec = Recorder(mp)
        a = env.spend([env.coin(0)], [50 * COIN - 10_000])
        b = env.spend([env.coin(1)], [50 * COIN - 10_000])
        mp.accept(a)
        mp.accept(b)
        bump = env.spend([env.coin(0)], [50 * COIN - 60_000])  # replaces a
        mp.accept(bump)
        env.mine()  # b and bump confirmed: removed (numbered too, as Core's)
        numbers = [n for _, _, n in rec.events]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert [k for k, _, _ in rec.events] == ["A", "A", "R", "A", "R", "R"]
    finally:
        env.close()


def test_prioritise_does_not_move_the_sequence(tmp_path):
    env = Env(tmp_path / "n")
    try:
        mp = env.mempool
        tx = env.spend([env.coin(0)], [50 * COIN - 10_000])
        mp.accept(tx)
        seq, version = mp.transactions_updated, mp.template_version
        mp.prioritise(tx.txid, 5_000)
        assert mp.transactions_updated == seq
        assert mp.template_version > version  # long polls still see the new fees
        mp.prioritise(b"\x11" * 32, 5_000)  # unknown txid: nothing moves
        assert mp.transactions_updated == seq
    finally:
        env.close()
