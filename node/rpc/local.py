"""The mounted wallets' client of their own node: the JSON-RPC of wallet.nodeclient, handed
to this process's RPC server directly instead of through a loopback HTTP connection.

The wallet still reaches the node only through JSON-RPC: its requests are encoded and its
replies decoded exactly as over HTTP (the server's own parser and encoder run), so a mounted
wallet sees what a wallet in another process sees. What goes is the transport: a socket
round trip, authentication and a hop to an RPC thread, about 1.9 ms of each wallet call
that looks at the node (gettransaction syncs with the chain and mempool first), and the
work queue a wallet call could wait in behind calls that wait for it.
"""

from __future__ import annotations

from typing import Any

from wallet.nodeclient import NodeClient

PEER = "local"  # (what getrpcinfo and the debug log show as the caller)


class LocalNodeClient(NodeClient):
    def __init__(self, server: Any, url: str) -> None:
        super().__init__(url)
        self.server = server

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        status, data = self.server.process_local(body, PEER)
        return status, data if data is not None else b""
