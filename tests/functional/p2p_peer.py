"""A raw P2P test peer: a plain socket speaking the wire protocol through our codec
(node.p2p.messages) and nothing else of the node, so tests can send exactly the bytes they
want, garbage included, and see what the node answers."""

from __future__ import annotations

import socket
import struct
import time

from consensus.params import REGTEST
from node.p2p import messages as m
from node.p2p.netaddr import NetAddr

MAGIC = REGTEST.message_start


class Closed(Exception):
    """The node closed the connection."""


class RawPeer:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", source: str | None = None,
                 timeout: float = 10.0, sock: socket.socket | None = None) -> None:
        """Connect to host:port (optionally from a given source address), or wrap a socket
        the node connected to (see listen/accept)."""
        self.sock = sock or socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.received: list[tuple[str, object]] = []  # everything read, in order
        self.answer_pings = True

    # -- raw bytes -------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg) -> None:
        self.sock.sendall(m.encode(MAGIC, msg))

    def send_payload(self, command: str, payload: bytes) -> None:
        self.sock.sendall(m.frame(MAGIC, command, payload))

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                raise TimeoutError("no message in time") from None
            except (ConnectionResetError, BrokenPipeError):
                raise Closed() from None
            if not chunk:
                raise Closed()
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self, timeout: float = 10.0) -> tuple[str, object]:
        deadline = time.time() + timeout
        head = m.MessageHeader.parse(self._read(m.HEADER_LEN, deadline))
        assert head.magic == MAGIC
        payload = self._read(head.length, deadline)
        assert m.checksum(payload) == head.checksum
        msg = m.decode_payload(head.command, payload)
        self.received.append((head.command, msg))
        if head.command == "ping" and self.answer_pings:
            self.send(m.Pong(msg.nonce))
        return head.command, msg

    def wait_for(self, command: str, timeout: float = 10.0, pred=None):
        """The next message of this kind (skipping others), or TimeoutError."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"no {command} message in {timeout} s")
            cmd, msg = self.read_message(left)
            if cmd == command and (pred is None or pred(msg)):
                return msg

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True once the node has closed the connection (read everything until then)."""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self.read_message(deadline - time.time())
        except Closed:
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()

    @classmethod
    def accept(cls, listener: socket.socket, timeout: float = 10.0) -> RawPeer:
        listener.settimeout(timeout)
        conn, _ = listener.accept()
        return cls(sock=conn)

    # -- protocol ----------------------------------------------------------------------------

    def version_msg(self, start_height: int = 0, relay: bool = True,
                    services: int = m.NODE_NETWORK | m.NODE_WITNESS) -> m.Version:
        return m.Version(services=services, timestamp=int(time.time()),
                         addr_recv=NetAddr.from_ip("127.0.0.1", 0), nonce=0x1234567890ABCDEF,
                         user_agent="/testpeer:0.1/", start_height=start_height, relay=relay)

    def handshake_inbound(self) -> m.Version:
        """Answer a node that connected to us: its version first, then ours."""
        version = self.wait_for("version")
        self.send(self.version_msg())
        self.send(m.WTxidRelay())
        self.send(m.SendAddrV2())
        self.send(m.VerAck())
        self.wait_for("verack")
        return version

    def handshake(self, start_height: int = 0, relay: bool = True, wtxid: bool = True,
                  services: int = m.NODE_NETWORK | m.NODE_WITNESS) -> m.Version:
        self.send(self.version_msg(start_height, relay, services))
        version = self.wait_for("version")
        if wtxid:
            self.send(m.WTxidRelay())
        self.send(m.SendAddrV2())
        self.send(m.VerAck())
        self.wait_for("verack")
        return version


def listen() -> socket.socket:
    """A loopback listening socket for the node to connect to (addnode ... onetry)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def frame_with(command: str, payload: bytes, magic: bytes = MAGIC, length: int | None = None,
               check: bytes | None = None) -> bytes:
    """A message with any of its header fields wrong on purpose."""
    cmd = command.encode().ljust(12, b"\x00")
    return (magic + cmd + struct.pack("<I", len(payload) if length is None else length)
            + (m.checksum(payload) if check is None else check) + payload)
