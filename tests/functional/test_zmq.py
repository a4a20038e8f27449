"""ZMQ notifications (-zmqpub*) of a running minibtcd, as Core's: a subscriber sees every block
and transaction, in order, with Core's message layout (topic, body, 4-byte LE sequence per
topic) and the sequence topic's C/D/A/R labels with the mempool sequence, across a
replacement, an invalidateblock and reorgs to competing branches (in Core's order of
disconnections, mempool changes, connections and new tips); getzmqnotifications lists the
notifiers."""

from __future__ import annotations

import time

import pytest

from tests.functional.framework import NodeProcess, free_port
from tests.functional.netutil import ADDR, ADDR2, coinbase_spend, spend_outputs

zmq = pytest.importorskip("zmq")

TOPICS = ("hashblock", "hashtx", "rawblock", "rawtx", "sequence")


class Subscriber:
    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVTIMEO, 15_000)
        for t in TOPICS:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(address)
        self.seqs: dict[str, int] = {}

    def receive(self) -> tuple[str, bytes]:
        topic, body, seq = self.sock.recv_multipart()
        topic = topic.decode()
        n = int.from_bytes(seq, "little")
        assert len(seq) == 4
        if topic in self.seqs:  # every message of a topic, none lost: counters follow
            assert n == self.seqs[topic] + 1, (topic, n, self.seqs[topic])
        self.seqs[topic] = n
        if topic == "sequence":
            self.last_sequence_body = body
        return topic, body

    def receive_n(self, n: int) -> list[tuple[str, bytes]]:
        return [self.receive() for _ in range(n)]

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def h(hex_hash: str) -> bytes:
    return bytes.fromhex(hex_hash)


def tx_msgs(tx) -> list[tuple[str, bytes]]:
    return [("hashtx", tx.txid[::-1]), ("rawtx", tx.serialize())]


def block_msgs(node, block_hash: str, label: str) -> list[tuple[str, bytes]]:
    """A block connected (label C, with its tip messages) or disconnected (D)."""
    out = []
    for t in node.call("getblock", block_hash, 2)["tx"]:
        out += [("hashtx", h(t["txid"])), ("rawtx", h(t["hex"]))]
    out.append(("sequence", h(block_hash) + label.encode()))
    if label == "C":
        out += [("hashblock", h(block_hash)), ("rawblock", h(node.call("getblock", block_hash, 0)))]
    return out


def added(node, tx) -> list[tuple[str, bytes]]:
    seq = mempool_sequence(node) - 1
    return tx_msgs(tx) + [("sequence", tx.txid[::-1] + b"A" + seq.to_bytes(8, "little"))]


def sub_number(sub: Subscriber) -> int:
    """The mempool sequence of the last sequence-topic message received."""
    return int.from_bytes(sub.last_sequence_body[-8:], "little")


def test_every_block_and_transaction_in_order(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    node = NodeProcess(tmp_path / "n", *(f"-zmqpub{t}={address}" for t in TOPICS),
                       "-zmqpubrawtxhwm=5000")
    with node:
        assert node.call("getzmqnotifications") == [
            {"type": f"pub{t}", "address": address, "hwm": 5000 if t == "rawtx" else 1000}
            for t in TOPICS]
        sub = subscribed(node, address)
        try:
            node.call("generatetoaddress", 110 - node.call("getblockcount"), ADDR)
            tip = node.call("getbestblockhash")
            while sub.receive() != ("rawblock", h(node.call("getblock", tip, 0))):
                pass

            # A transaction, then its replacement: A, then R and A, numbered from the
            # mempool sequence getrawmempool gave before, one each, prioritisetransaction
            # between them taking no number (as Core's).
            first = mempool_sequence(node)
            tx = coinbase_spend(node, 1)
            node.call("sendrawtransaction", tx.serialize().hex())
            assert sub.receive_n(3) == added(node, tx)
            assert sub_number(sub) == first
            node.call("prioritisetransaction", tx.txid_hex(), 0, 1000)
            assert mempool_sequence(node) == first + 1
            bump = coinbase_spend(node, 1, fee=50_000, outputs=2)
            node.call("sendrawtransaction", bump.serialize().hex())
            got = sub.receive_n(4)
            assert got[0] == ("sequence", tx.txid[::-1] + b"R" + (first + 1).to_bytes(8, "little"))
            assert got[1:] == added(node, bump)
            assert sub_number(sub) == first + 2

            # A block with it: its transactions, C, then the new tip.
            [b1] = node.call("generatetoaddress", 1, ADDR)
            want = block_msgs(node, b1, "C")
            assert sub.receive_n(len(want)) == want

            # A reorg: the block leaves (its transactions, D), its transaction returns to the
            # mempool (A), and two other blocks take its place.
            child = spend_outputs([(_outpoint(bump, 0), bump.vout[0].value)])
            node.call("invalidateblock", b1)
            want = block_msgs(node, b1, "D") + added(node, bump)
            assert sub.receive_n(len(want)) == want
            node.call("sendrawtransaction", child.serialize().hex())
            assert sub.receive_n(3) == added(node, child)
            blocks = node.call("generatetoaddress", 2, ADDR2)
            want = block_msgs(node, blocks[0], "C") + block_msgs(node, blocks[1], "C")
            assert sub.receive_n(len(want)) == want
            txids = node.call("getblock", blocks[0])["tx"]
            assert bump.txid_hex() in txids and child.txid_hex() in txids

            # Nothing else was published.
            sub.sock.setsockopt(zmq.RCVTIMEO, 500)
            with pytest.raises(zmq.Again):
                sub.receive()
        finally:
            sub.close()


def tip_msgs(node, block_hash: str) -> list[tuple[str, bytes]]:
    return [("hashblock", h(block_hash)), ("rawblock", h(node.call("getblock", block_hash, 0)))]


def connected(node, block_hash: str) -> list[tuple[str, bytes]]:
    """A block connected without becoming a tip of its own (a step of a reorg)."""
    return block_msgs(node, block_hash, "C")[:-2]


def seq_msg(tx, label: bytes, number: int) -> tuple[str, bytes]:
    return ("sequence", tx.txid[::-1] + label + number.to_bytes(8, "little"))


def described(msgs: list[tuple[str, bytes]]) -> list[str]:
    """Messages in words (for a readable difference): topic, hash prefix, sequence label."""
    out = []
    for topic, body in msgs:
        if topic == "sequence":
            out.append(f"sequence {body[32:33].decode()} {body[:4].hex()}")
        elif topic in ("hashtx", "hashblock"):
            out.append(f"{topic} {body[:4].hex()}")
        else:
            out.append(topic)
    return out


def mempool_sequence(node) -> int:
    return node.call("getrawmempool", False, True)["mempool_sequence"]


def subscribed(node, address: str) -> Subscriber:
    """A subscriber that has seen a message (mining until one shows), with nothing left
    unread."""
    sub = Subscriber(address)
    sub.sock.setsockopt(zmq.RCVTIMEO, 200)
    deadline = time.time() + 30
    while True:
        node.call("generatetoaddress", 1, ADDR)
        try:
            sub.receive()
            break
        except zmq.Again:
            assert time.time() < deadline, "no ZMQ message"
    while True:
        try:
            sub.receive()
        except zmq.Again:
            break
    sub.sock.setsockopt(zmq.RCVTIMEO, 15_000)
    return sub


def test_reorg_from_a_competing_chain(tmp_path):
    """Three blocks replaced by four from a competing branch (submitted with submitblock), then
    two by four, as Core publishes them: each block that leaves (its transactions, D, the tip
    first), the mempool's changes (a transaction the new chain conflicts with removed, R; the
    disconnected transactions the new chain lacks back, A, oldest first), then the blocks of
    the new branch (transactions, C) and the new tip (hashblock, rawblock) once the branch has
    more work than the old tip; each block after that a tip of its own. Nothing for a branch
    that has not won yet; every topic's numbers without a gap."""
    from consensus.block import Block
    from tests.chainbuilder import Built, ChainBuilder

    address = f"tcp://127.0.0.1:{free_port()}"
    node = NodeProcess(tmp_path / "n", *(f"-zmqpub{t}={address}" for t in TOPICS))
    with node:
        sub = subscribed(node, address)
        try:
            node.call("generatetoaddress", 120 - node.call("getblockcount"), ADDR)
            tip = node.call("getbestblockhash")
            while sub.receive() != ("rawblock", h(node.call("getblock", tip, 0))):
                pass
            fork = node.call("getbestblockhash")
            cb = ChainBuilder()
            raw = bytes.fromhex(node.call("getblock", fork, 0))
            fork_block = Block.from_bytes(raw)
            cb.built[fork_block.hash] = Built(fork_block, 120, fork_block.header.time)

            # The old branch: tx1 in o1, tx2 and tx3 in o2, tx4 in o3; m1 and m2 left in the
            # mempool.
            tx1, tx2, tx3, tx4, m1, m2 = (coinbase_spend(node, k) for k in range(1, 7))
            old = []
            for txs in ([tx1], [tx2, tx3], [tx4]):
                for tx in txs:
                    node.call("sendrawtransaction", tx.serialize().hex())
                    assert sub.receive_n(3) == added(node, tx)
                old += node.call("generatetoaddress", 1, ADDR)
                want = block_msgs(node, old[-1], "C")
                assert sub.receive_n(len(want)) == want
            for tx in (m1, m2):
                node.call("sendrawtransaction", tx.serialize().hex())
                assert sub.receive_n(3) == added(node, tx)

            # The new branch: n1 has tx2 again; n2 double-spends m1's coin and tx3's.
            tx5 = coinbase_spend(node, 5, fee=20_000)
            tx3b = coinbase_spend(node, 3, fee=30_000)
            fees = 10_000 + 20_000 + 30_000
            n1 = cb.next_block(fork_block, [tx2], fees=10_000, time_delta=60)
            n2 = cb.next_block(n1, [tx5, tx3b], fees=fees - 10_000, time_delta=60)
            n3 = cb.next_block(n2, time_delta=60)
            n4 = cb.next_block(n3, time_delta=60)
            for b in (n1, n2, n3):  # (n3: as much work as the old tip, which stays)
                node.call("submitblock", b.serialize().hex())
            assert node.call("getbestblockhash") == old[-1]
            number = mempool_sequence(node)
            node.call("submitblock", n4.serialize().hex())
            assert node.call("getbestblockhash") == n4.hash[::-1].hex()

            want = []
            for b in reversed(old):
                want += block_msgs(node, b, "D")
            want.append(seq_msg(m1, b"R", number))
            for k, tx in enumerate((tx1, tx4)):
                want += tx_msgs(tx) + [seq_msg(tx, b"A", number + 1 + k)]
            for b in (n1, n2, n3, n4):
                want += connected(node, b.hash[::-1].hex())
            want += tip_msgs(node, n4.hash[::-1].hex())
            got = sub.receive_n(len(want))
            assert described(got) == described(want)
            assert got == want
            assert mempool_sequence(node) == number + 3
            assert sorted(node.call("getrawmempool")) == sorted(
                t.txid_hex() for t in (m2, tx1, tx4))

            # Two blocks (the first with the mempool's transactions) replaced by four, which
            # connect at once (their headers and the last three first, then the first): the
            # third has more work than the old tip, and is a tip; the fourth is a tip of its
            # own.
            old = node.call("generatetoaddress", 2, ADDR)
            for b in old:
                want = block_msgs(node, b, "C")
                assert sub.receive_n(len(want)) == want
            base = Block.from_bytes(bytes.fromhex(node.call("getblock", n4.hash[::-1].hex(),
                                                            0)))
            new = cb.chain(base, 4, time_delta=60, tag=b"other branch")
            for b in new:
                node.call("submitheader", b.header.serialize().hex())
            for b in new[1:]:
                node.call("submitblock", b.serialize().hex())
            assert node.call("getbestblockhash") == old[-1]
            number = mempool_sequence(node)
            node.call("submitblock", new[0].serialize().hex())
            assert node.call("getbestblockhash") == new[-1].hash[::-1].hex()
            want = []
            for b in reversed(old):
                want += block_msgs(node, b, "D")
            back = [t for b in old for t in node.call("getblock", b, 2)["tx"][1:]]
            for k, t in enumerate(back):
                want += [("hashtx", h(t["txid"])), ("rawtx", h(t["hex"])),
                         ("sequence", h(t["txid"]) + b"A" + (number + k).to_bytes(8, "little"))]
            hashes = [b.hash[::-1].hex() for b in new]
            for b in hashes[:3]:
                want += connected(node, b)
            want += tip_msgs(node, hashes[2]) + block_msgs(node, hashes[3], "C")
            got = sub.receive_n(len(want))
            assert described(got) == described(want)
            assert got == want
            assert sorted(node.call("getrawmempool")) == sorted(t["txid"] for t in back)
            assert sorted(t["txid"] for t in back) == sorted(
                t.txid_hex() for t in (m2, tx1, tx4))

            # Two blocks on the tip connecting at once (the second arrived first): each is a
            # tip of its own, as each is a step for Core.
            more = cb.chain(new[-1], 2, time_delta=60, tag=b"more")
            for b in more:
                node.call("submitheader", b.header.serialize().hex())
            node.call("submitblock", more[1].serialize().hex())
            node.call("submitblock", more[0].serialize().hex())
            assert node.call("getbestblockhash") == more[1].hash[::-1].hex()
            want = []
            for b in more:
                want += block_msgs(node, b.hash[::-1].hex(), "C")
            got = sub.receive_n(len(want))
            assert described(got) == described(want)
            assert got == want

            # Nothing else was published.
            sub.sock.setsockopt(zmq.RCVTIMEO, 500)
            with pytest.raises(zmq.Again):
                sub.receive()
        finally:
            sub.close()


def _outpoint(tx, n: int):
    from consensus.tx import OutPoint

    return OutPoint(tx.txid, n)


def test_no_notifications_without_options(tmp_path):
    node = NodeProcess(tmp_path / "n")
    with node:
        assert node.call("getzmqnotifications") == []
