"""A ZMQ notifier's message number counts the messages sent: one that could not be sent
does not use up a number (as Core's nSequence, increased after a successful send)."""

import zmq

from node.zmqpub import Notifier


def test_failed_send_keeps_the_number() -> None:
    ctx = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVTIMEO, 10_000)
        n = Notifier("pubhashtx", "inproc://seq", 1000)
        n.socket = ctx.socket(zmq.PUB)
        n.socket.bind("inproc://seq")
        sub.connect("inproc://seq")
        # (a PUB socket drops what it sends before the subscription arrives: send until one
        # gets through)
        first = None
        for _ in range(100_000):
            n.send(b"first")
            try:
                first = sub.recv_multipart(flags=zmq.NOBLOCK)
                break
            except zmq.Again:
                pass
        assert first is not None
        assert first[:2] == [b"hashtx", b"first"]
        number = int.from_bytes(first[2], "little")
        assert n.seq == number + 1
        live = n.socket
        n.socket = ctx.socket(zmq.PUB)
        n.socket.close()  # (sending on it fails: ENOTSOCK)
        n.send(b"lost")
        assert n.seq == number + 1
        n.socket = live
        n.send(b"second")
        assert sub.recv_multipart() == [b"hashtx", b"second", (number + 1).to_bytes(4, "little")]
        live.close()
        sub.close()
    finally:
        ctx.term()
