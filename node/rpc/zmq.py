"""RPC of the ZMQ notifications (node/zmqpub.py): getzmqnotifications."""

from __future__ import annotations

from node.rpc.registry import rpc


@rpc("getzmqnotifications", "Zmq", [],
     description="Returns information about the active ZeroMQ notifications.",
     examples=["getzmqnotifications"])
def getzmqnotifications(node) -> list:
    publisher = getattr(node, "zmq", None)
    return publisher.active() if publisher is not None else []
