"""The wallet's only way to the node: JSON-RPC over HTTP (stdlib http.client, one kept-alive
connection), with Basic auth from a user/password or the node's .cookie file.

Errors: NodeUnreachable names the URL tried; NodeRPCError carries the node's code and message.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wallet.errors import RPC_NODE_UNREACHABLE, WalletError


class NodeUnreachable(WalletError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(RPC_NODE_UNREACHABLE, f"Could not reach the node at {url}: {reason}")
        self.url = url


class NodeRPCError(WalletError):
    """An error the node answered (its code is passed on, as Core's wallet does)."""


class NodeClient:
    def __init__(self, url: str, user: str | None = None, password: str | None = None,
                 cookie_file: Path | None = None, timeout: float = 120) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or 80}{parts.path or '/'}"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.user = user if user is not None else parts.username
        self.password = password if password is not None else parts.password
        self.cookie_file = Path(cookie_file) if cookie_file else None
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        # Connections opened so far: a new one may reach a restarted node, whose mempool
        # sequence started again (what the wallet's mempool sync remembers it by)
        self.connections = 0
        self._lock = threading.Lock()
        self._id = 0

    def _auth(self) -> str:
        if self.user is not None and self.password is not None:
            cred = f"{self.user}:{self.password}"
        elif self.cookie_file is not None:
            try:
                cred = self.cookie_file.read_text().strip()
            except OSError as err:
                raise NodeUnreachable(self.url, f"cannot read the cookie file "
                                      f"{self.cookie_file} ({err.strerror}): is minibtcd "
                                      "running with that datadir? (or give the RPC user and "
                                      "password)") from None
        else:
            cred = ":"
        return "Basic " + base64.b64encode(cred.encode()).decode()

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload, default=_json_default).encode()
        status, data = self._exchange(body)
        if status == 401:
            raise NodeUnreachable(self.url, "authorization failed (wrong RPC user/password "
                                  "or cookie)")
        try:
            return json.loads(data, parse_float=Decimal)
        except ValueError:
            raise NodeUnreachable(self.url, f"HTTP {status}, not a JSON-RPC reply") from None

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        """The transport: a request body sent, (HTTP status, reply body) back."""
        headers = {"Content-Type": "application/json", "Authorization": self._auth()}
        with self._lock:
            for attempt in (0, 1):  # a kept-alive connection the server closed: retry once
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self.host, self.port,
                                                            timeout=self.timeout)
                    self.connections += 1
                try:
                    self._conn.request("POST", self.path, body, headers)
                    resp = self._conn.getresponse()
                    return resp.status, resp.read()
                except (http.client.RemoteDisconnected, BrokenPipeError,
                        ConnectionResetError) as err:
                    self._close()
                    if attempt:
                        raise NodeUnreachable(self.url, str(err) or type(err).__name__) from None
                except (OSError, http.client.HTTPException) as err:
                    self._close()
                    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
                    raise NodeUnreachable(self.url, reason) from None
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        reply = self._post({"jsonrpc": "1.0", "id": self._id, "method": method,
                            "params": list(params)})
        if not isinstance(reply, dict):
            raise NodeUnreachable(self.url, "not a JSON-RPC reply")
        err = reply.get("error")
        if err:
            raise NodeRPCError(int(err.get("code", -1)), str(err.get("message", "")))
        return reply.get("result")

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Several calls in one request; each result, or a NodeRPCError in its place."""
        if not calls:
            return []
        base = self._id
        self._id += len(calls)
        payload = [{"jsonrpc": "1.0", "id": base + i, "method": m, "params": p}
                   for i, (m, p) in enumerate(calls)]
        replies = self._post(payload)
        if not isinstance(replies, list):
            if isinstance(replies, dict) and replies.get("error"):
                e = replies["error"]
                raise NodeRPCError(int(e.get("code", -1)), str(e.get("message", "")))
            raise NodeUnreachable(self.url, "not a JSON-RPC batch reply")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any] = []
        for i in range(len(calls)):
            r = by_id.get(base + i)
            if r is None:
                out.append(NodeRPCError(-1, "missing reply in batch"))
            elif r.get("error"):
                out.append(NodeRPCError(int(r["error"].get("code", -1)),
                                        str(r["error"].get("message", ""))))
            else:
                out.append(r.get("result"))
        return out


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)  # only fee limits go this way; amounts are sent as strings
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
