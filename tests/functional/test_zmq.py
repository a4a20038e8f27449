"""ZMQ notifications (-zmqpub*) of a running minibtcd, as Core's: a subscriber sees every block
and transaction, in order, with Core's message layout (topic, body, 4-byte LE sequence per
topic) and the sequence topic's C/D/A/R labels with the mempool sequence, across a
replacement and a reorg; getzmqnotifications lists the notifiers."""

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
    seq = node.call("getrawmempool", False, True)["mempool_sequence"] - 1
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
        sub = Subscriber(address)
        try:
            # The subscription takes a moment to reach the publisher: mine until it shows.
            sub.sock.setsockopt(zmq.RCVTIMEO, 200)
            deadline = time.time() + 30
            while True:
                node.call("generatetoaddress", 1, ADDR)
                try:
                    sub.receive()
                    break
                except zmq.Again:
                    assert time.time() < deadline, "no ZMQ message"
            sub.sock.setsockopt(zmq.RCVTIMEO, 15_000)
            node.call("generatetoaddress", 110 - node.call("getblockcount"), ADDR)
            tip = node.call("getbestblockhash")
            while sub.receive() != ("rawblock", h(node.call("getblock", tip, 0))):
                pass

            # A transaction, then its replacement: A, then R and A, numbered from the
            # mempool sequence getrawmempool gave before, one each, prioritisetransaction
            # between them taking no number (as Core's).
            first = node.call("getrawmempool", False, True)["mempool_sequence"]
            tx = coinbase_spend(node, 1)
            node.call("sendrawtransaction", tx.serialize().hex())
            assert sub.receive_n(3) == added(node, tx)
            assert sub_number(sub) == first
            node.call("prioritisetransaction", tx.txid_hex(), 0, 1000)
            assert node.call("getrawmempool", False, True)["mempool_sequence"] == first + 1
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


def _outpoint(tx, n: int):
    from consensus.tx import OutPoint

    return OutPoint(tx.txid, n)


def test_no_notifications_without_options(tmp_path):
    node = NodeProcess(tmp_path / "n")
    with node:
        assert node.call("getzmqnotifications") == []
