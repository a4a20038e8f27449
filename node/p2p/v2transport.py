"""BIP324: the v2 encrypted P2P transport, sans I/O.

This module knows nothing of sockets or asyncio. It turns application messages (command,
payload) into bytes for the wire and bytes from the wire back into messages; the caller moves
the bytes (see V2Transport for how a connection drives it).

Layers, bottom up:

- ElligatorSwift keys and X-only ECDH, through libsecp256k1's ellswift module as coincurve
  builds it (`secp256k1_ellswift_create`, `_decode`, `_xdh` with the BIP324 hash).
- Key derivation: HKDF-SHA256 with salt b"bitcoin_v2_shared_secret" + network magic gives the
  length and packet keys of each direction, the two 16-byte garbage terminators and the
  session id (derive_keys).
- FSChaCha20 (the 3-byte length fields, one keystream across packets) and
  FSChaCha20Poly1305 (the packets), both rekeyed every 224 messages, on the `cryptography`
  package's ChaCha20 and ChaCha20Poly1305.
- V2Cipher: one connection's four ciphers; a packet is encrypted length (3) | AEAD(header
  byte with the ignore bit 0x80 | contents) with its 16-byte tag, 20 bytes more than the
  contents.
- Contents of an application packet: a one-byte message id (SHORT_IDS), or 0 and the 12-byte
  NUL-padded ASCII command as in v1, then the payload (encode_contents, decode_contents).
- V2Transport: the handshake (our key and garbage, their key, their garbage up to the
  terminator, the version packet; the first packet after the garbage carries the garbage as
  associated data) and the application phase, decoys ignored; plus detect_v1, for a
  responder, on the first 16 bytes of an inbound connection.

Errors that must end the connection raise V2TransportError, with Bitcoin Core's wording after
"V2 transport error: " where Core has one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct

from coincurve import GLOBAL_CONTEXT, PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from node.p2p.messages import MAX_PROTOCOL_MESSAGE_LENGTH

REKEY_INTERVAL = 224  # messages per key, for both ciphers
ELLSWIFT_PUBKEY_LEN = 64
GARBAGE_TERMINATOR_LEN = 16
MAX_GARBAGE_LEN = 4095
LENGTH_LEN = 3
HEADER_LEN = 1
TAG_LEN = 16
EXPANSION = LENGTH_LEN + HEADER_LEN + TAG_LEN  # a packet's bytes beyond its contents
IGNORE_BIT = 0x80  # in the header byte: a decoy packet
COMMAND_SIZE = 12
MAX_CONTENTS_LEN_LIMIT = (1 << 24) - 1  # what the 3-byte length field can say
# Core's limit: a long message type and the largest payload; a longer packet ends the link.
MAX_CONTENTS_LEN = 1 + COMMAND_SIZE + MAX_PROTOCOL_MESSAGE_LENGTH
TRANSPORT_VERSION = b""  # contents of our version packet (BIP324 defines only the empty one)
V1_VERSION_COMMAND = b"version\x00\x00\x00\x00\x00"  # bytes 4..16 of a v1 version message
V1_PREFIX_LEN = 4 + len(V1_VERSION_COMMAND)

# BIP324's one-byte message type ids. 29..32 are reserved there for Erlay (BIP330), which
# Bitcoin Core does not map either: received, they are unknown types, as in Core. 37 is
# "feature" in current Bitcoin Core; we accept it but send "feature" in the long form, which
# every v2 peer understands.
SHORT_IDS: dict[int, str] = {
    1: "addr", 2: "block", 3: "blocktxn", 4: "cmpctblock", 5: "feefilter", 6: "filteradd",
    7: "filterclear", 8: "filterload", 9: "getblocks", 10: "getblocktxn", 11: "getdata",
    12: "getheaders", 13: "headers", 14: "inv", 15: "mempool", 16: "merkleblock",
    17: "notfound", 18: "ping", 19: "pong", 20: "sendcmpct", 21: "tx", 22: "getcfilters",
    23: "cfilter", 24: "getcfheaders", 25: "cfheaders", 26: "getcfcheckpt", 27: "cfcheckpt",
    28: "addrv2", 37: "feature",
}
_RECV_TYPE: list[str | None] = [SHORT_IDS.get(i) for i in range(256)]
# The one-byte ids we send (other commands go in the 13-byte long form).
_SEND_TYPE: dict[str, bytes] = {cmd: bytes([i]) for i, cmd in SHORT_IDS.items() if i <= 28}

_NONCE = struct.Struct("<IQ")
_ZERO32 = bytes(32)


class V2TransportError(Exception):
    """Bytes that end a v2 connection: failed decryption, no garbage terminator, an oversized
    packet, a v1 peer of another network."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.messages: list = []  # V2Transport.receive: what came before the bad bytes


# -- ElligatorSwift and ECDH (libsecp256k1 through coincurve) -------------------------------


def _require_ellswift() -> None:
    if not hasattr(lib, "secp256k1_ellswift_xdh"):
        raise RuntimeError("this coincurve build lacks libsecp256k1's ellswift module "
                           "(coincurve 20 and 21 wheels have it)")


def ellswift_create(privkey: bytes | None = None, auxrnd: bytes | None = None
                    ) -> tuple[bytes, bytes]:
    """(32-byte private key, its 64-byte ElligatorSwift encoding). A fresh random key unless
    one is given; auxrnd (32 bytes, random by default) picks one of the key's many
    encodings."""
    _require_ellswift()
    if privkey is None:
        privkey = PrivateKey().secret
    out = ffi.new("unsigned char[64]")
    if not lib.secp256k1_ellswift_create(GLOBAL_CONTEXT.ctx, out, privkey,
                                         auxrnd if auxrnd is not None else os.urandom(32)):
        raise ValueError("invalid private key")
    return privkey, bytes(out)


def ellswift_decode(ellswift: bytes) -> PublicKey:
    """The public key a 64-byte encoding stands for (every 64-byte string is one)."""
    _require_ellswift()
    if len(ellswift) != ELLSWIFT_PUBKEY_LEN:
        raise ValueError("an ElligatorSwift encoding is 64 bytes")
    pub = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ellswift_decode(GLOBAL_CONTEXT.ctx, pub, ellswift):
        raise ValueError("ellswift decode failed")
    out = ffi.new("unsigned char[33]")
    size = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(GLOBAL_CONTEXT.ctx, out, size, pub,
                                      lib.SECP256K1_EC_COMPRESSED)
    return PublicKey(bytes(out))


def v2_ecdh(privkey: bytes, ellswift_theirs: bytes, ellswift_ours: bytes,
            initiator: bool) -> bytes:
    """BIP324's shared secret: the tagged hash "bip324_ellswift_xonly_ecdh" of the
    initiator's encoding, the responder's and the X coordinate of the ECDH point."""
    _require_ellswift()
    if len(ellswift_theirs) != ELLSWIFT_PUBKEY_LEN or len(ellswift_ours) != ELLSWIFT_PUBKEY_LEN:
        raise ValueError("an ElligatorSwift encoding is 64 bytes")
    ell_a, ell_b = (ellswift_ours, ellswift_theirs) if initiator else \
        (ellswift_theirs, ellswift_ours)
    out = ffi.new("unsigned char[32]")
    if not lib.secp256k1_ellswift_xdh(GLOBAL_CONTEXT.ctx, out, ell_a, ell_b, privkey,
                                      0 if initiator else 1,
                                      lib.secp256k1_ellswift_xdh_hash_function_bip324,
                                      ffi.NULL):
        raise ValueError("invalid private key")
    return bytes(out)


# -- key derivation -------------------------------------------------------------------------

KEY_NAMES = ("initiator_L", "initiator_P", "responder_L", "responder_P",
             "garbage_terminators", "session_id")


def derive_keys(ecdh_secret: bytes, magic: bytes) -> dict[str, bytes]:
    """HKDF-SHA256 (RFC 5869) of the shared secret: the 32-byte values named in KEY_NAMES.
    garbage_terminators is the initiator's (first 16 bytes) and the responder's (last 16)."""
    prk = hmac.new(b"bitcoin_v2_shared_secret" + magic, ecdh_secret, hashlib.sha256).digest()
    # HKDF-Expand to 32 bytes is one block: HMAC(prk, info || 0x01).
    return {name: hmac.new(prk, name.encode() + b"\x01", hashlib.sha256).digest()
            for name in KEY_NAMES}


# -- the rekeying ciphers -------------------------------------------------------------------


class FSChaCha20:
    """BIP324's length cipher: one ChaCha20 keystream over consecutive chunks; after every
    `rekey_interval` chunks the next 32 keystream bytes become the key, the block counter
    restarts at 0 and the nonce is 4 zero bytes | rekeyings so far (u64 LE)."""

    __slots__ = ("_stream", "_chunks", "_rekeys", "_interval")

    def __init__(self, key: bytes, rekey_interval: int = REKEY_INTERVAL) -> None:
        self._interval = rekey_interval
        self._chunks = 0
        self._rekeys = 0
        self._stream = self._keystream(key)

    def _keystream(self, key: bytes):
        # cryptography's 16-byte ChaCha20 nonce: block counter (u32 LE) | 96-bit nonce.
        nonce = b"\x00\x00\x00\x00" + _NONCE.pack(0, self._rekeys)
        return Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()

    def crypt(self, chunk: bytes) -> bytes:
        """Encrypts or decrypts (the same XOR) one chunk."""
        out = self._stream.update(chunk)
        self._chunks += 1
        if self._chunks == self._interval:
            key = self._stream.update(_ZERO32)
            self._chunks = 0
            self._rekeys += 1
            self._stream = self._keystream(key)
        return out


class FSChaCha20Poly1305:
    """BIP324's packet AEAD: ChaCha20Poly1305 with nonce messages-with-this-key (u32 LE) |
    rekeyings (u64 LE); after every 224 messages the new key is the first 32 bytes of the
    encryption of 32 zero bytes under nonce 0xffffffff | rekeyings."""

    __slots__ = ("_aead", "_packets", "_rekeys", "_interval")

    def __init__(self, key: bytes, rekey_interval: int = REKEY_INTERVAL) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._packets = 0
        self._rekeys = 0
        self._interval = rekey_interval

    def _next(self) -> None:
        self._packets += 1
        if self._packets == self._interval:
            key = self._aead.encrypt(_NONCE.pack(0xFFFFFFFF, self._rekeys), _ZERO32, None)[:32]
            self._aead = ChaCha20Poly1305(key)
            self._packets = 0
            self._rekeys += 1

    def encrypt(self, aad: bytes, plaintext: bytes) -> bytes:
        """The ciphertext with its 16-byte tag appended."""
        out = self._aead.encrypt(_NONCE.pack(self._packets, self._rekeys), plaintext,
                                 aad or None)
        self._next()
        return out

    def decrypt(self, aad: bytes, ciphertext) -> bytes | None:
        """The plaintext, or None when the tag does not verify. The message counts either
        way (a failure ends the connection)."""
        try:
            out = self._aead.decrypt(_NONCE.pack(self._packets, self._rekeys), ciphertext,
                                     aad or None)
        except InvalidTag:
            out = None
        self._next()
        return out


class V2Cipher:
    """The four ciphers of one connection, the garbage terminators and the session id."""

    __slots__ = ("initiator", "session_id", "send_garbage_terminator",
                 "recv_garbage_terminator", "_send_l", "_send_p", "_recv_l", "_recv_p")

    def __init__(self, keys: dict[str, bytes], initiator: bool) -> None:
        self.initiator = initiator
        self.session_id = keys["session_id"]
        terms = keys["garbage_terminators"]
        ours, theirs = ("initiator", "responder") if initiator else ("responder", "initiator")
        self._send_l = FSChaCha20(keys[ours + "_L"])
        self._send_p = FSChaCha20Poly1305(keys[ours + "_P"])
        self._recv_l = FSChaCha20(keys[theirs + "_L"])
        self._recv_p = FSChaCha20Poly1305(keys[theirs + "_P"])
        if initiator:
            self.send_garbage_terminator, self.recv_garbage_terminator = terms[:16], terms[16:]
        else:
            self.send_garbage_terminator, self.recv_garbage_terminator = terms[16:], terms[:16]

    @classmethod
    def from_ecdh(cls, privkey: bytes, ellswift_ours: bytes, ellswift_theirs: bytes,
                  initiator: bool, magic: bytes) -> V2Cipher:
        secret = v2_ecdh(privkey, ellswift_theirs, ellswift_ours, initiator)
        return cls(derive_keys(secret, magic), initiator)

    def encrypt(self, contents: bytes, aad: bytes = b"", ignore: bool = False) -> bytes:
        """One whole packet for the wire."""
        return self.encrypt_plaintext((b"\x80" if ignore else b"\x00") + contents, aad)

    def encrypt_plaintext(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """A packet from its plaintext: the header byte followed by the contents (so a
        caller builds header, type and payload with a single copy)."""
        n = len(plaintext) - HEADER_LEN
        if not 0 <= n <= MAX_CONTENTS_LEN_LIMIT:
            raise ValueError(f"packet contents of {n} bytes")
        sealed = self._send_p.encrypt(aad, plaintext)
        return self._send_l.crypt(n.to_bytes(LENGTH_LEN, "little")) + sealed

    def decrypt_length(self, enc_length: bytes) -> int:
        """The contents length of the next packet, from its first 3 bytes."""
        return int.from_bytes(self._recv_l.crypt(enc_length), "little")

    def decrypt(self, sealed, aad: bytes = b"") -> bytes:
        """The plaintext (header byte | contents) of a packet's bytes after the length field
        (its contents length + 17 bytes). Raises V2TransportError when it does not
        authenticate."""
        plaintext = self._recv_p.decrypt(aad, sealed)
        if plaintext is None:
            raise V2TransportError("V2 transport error: packet decryption failure "
                                   f"({len(sealed) - HEADER_LEN - TAG_LEN} bytes)")
        return plaintext


# -- application message types --------------------------------------------------------------


def _type_bytes(command: str) -> bytes:
    """The bytes that begin a packet's contents for this command: its one-byte id, or 0 and
    the command NUL-padded to 12 bytes (printable ASCII, as v1 commands)."""
    prefix = _SEND_TYPE.get(command)
    if prefix is not None:
        return prefix
    raw = command.encode("ascii")
    if not raw or len(raw) > COMMAND_SIZE or not all(0x20 < c < 0x7F for c in raw):
        raise ValueError(f"bad message type {command!r}")
    return b"\x00" + raw.ljust(COMMAND_SIZE, b"\x00")


def packet_size(command: str, payload_len: int) -> int:
    """The wire size of an application message's packet."""
    return (1 if command in _SEND_TYPE else 1 + COMMAND_SIZE) + payload_len + EXPANSION


def encode_contents(command: str, payload: bytes = b"") -> bytes:
    """A packet's contents for an application message."""
    return _type_bytes(command) + payload


def decode_contents(contents: bytes) -> tuple[str | None, bytes]:
    """(command, payload) of an application packet; command is None for a type we cannot
    read (an unknown id, a malformed long type, empty contents), whose payload is then the
    whole contents. Like Core, such a message is dropped, the connection kept."""
    if not contents:
        return None, contents
    first = contents[0]
    if first:
        command = _RECV_TYPE[first]
        return (command, contents[1:]) if command is not None else (None, contents)
    if len(contents) < 1 + COMMAND_SIZE:
        return None, contents
    raw = contents[1:1 + COMMAND_SIZE]
    name, _, pad = raw.partition(b"\x00")
    if not name or pad.strip(b"\x00") or not all(0x20 <= c <= 0x7F for c in name):
        return None, contents
    return name.decode("ascii"), contents[1 + COMMAND_SIZE:]


# -- v1 detection ---------------------------------------------------------------------------


def v1_prefix(magic: bytes) -> bytes:
    """The first 16 bytes of any v1 connection: the magic and the version message's
    command."""
    return magic + V1_VERSION_COMMAND


def detect_v1(data: bytes, magic: bytes) -> bool | None:
    """For a responder, on the first bytes of an inbound connection: True when they are a v1
    version message's start (all 16 bytes of it needed), False as soon as one byte differs
    (a v2 initiator's key), None while what came so far matches and is shorter."""
    prefix = v1_prefix(magic)
    n = min(len(data), V1_PREFIX_LEN)
    if data[:n] != prefix[:n]:
        return False
    return True if n == V1_PREFIX_LEN else None


# -- the connection state machine -----------------------------------------------------------

# receive states
DETECTING = "detecting"  # responder: are these the first bytes of a v1 version message?
KEY = "key"  # their 64-byte public key
GARB_GARBTERM = "garbage"  # their garbage, up to the terminator
VERSION = "version"  # packets up to their version packet (decoys before it allowed)
APP = "app"  # application packets
V1 = "v1"  # responder: the peer speaks v1; the caller takes over (take_v1_bytes)
CLOSED = "closed"  # an error was raised; nothing more is read

Message = tuple[str | None, bytes, int]  # command (None: unreadable type), payload, wire bytes


class V2Transport:
    """One v2 connection, sans I/O.

    Driving it::

        t = V2Transport(initiator, magic)
        write(t.data_to_send())        # the initiator's key and garbage; b"" for a responder
        t.send("version", payload)     # queued until the keys exist, then encrypted
        loop:
            data = read(t.bytes_needed())   # or any amount: extra bytes are kept
            for command, payload, size in t.receive(data):  # may raise V2TransportError
                ...                         # command None: unknown type, drop it
            write(t.data_to_send())         # after every receive: handshake replies
            if t.v1_fallback: switch to v1 framing, starting with t.take_v1_bytes()

    bytes_needed() never asks for more than the peer must send before waiting for us, so
    `readexactly(t.bytes_needed())` cannot deadlock, and the transport holds at most one
    packet. Messages are returned in order; decoy packets and the version packet are not
    messages. A responder made with detect_v1=True (the default) first checks whether the
    peer speaks v1 and says so in v1_fallback.
    """

    __slots__ = ("initiator", "magic", "state", "cipher", "max_contents_len", "_privkey",
                 "_ellswift", "_send_garbage", "_recv_buf", "_recv_garbage", "_recv_len",
                 "_out", "_pending", "_send_ready", "version_contents")

    def __init__(self, initiator: bool, magic: bytes, *, detect_v1: bool = True,
                 privkey: bytes | None = None, garbage: bytes | None = None,
                 garbage_len: int | None = None,
                 max_contents_len: int = MAX_CONTENTS_LEN) -> None:
        if len(magic) != 4:
            raise ValueError("network magic is 4 bytes")
        if garbage is None:
            if garbage_len is None:
                garbage_len = secrets.randbelow(MAX_GARBAGE_LEN + 1)
            garbage = os.urandom(garbage_len)
        if len(garbage) > MAX_GARBAGE_LEN:
            raise ValueError(f"at most {MAX_GARBAGE_LEN} bytes of garbage")
        self.initiator = initiator
        self.magic = magic
        self.max_contents_len = max_contents_len
        self._privkey, self._ellswift = ellswift_create(privkey)
        self._send_garbage = garbage
        self.cipher: V2Cipher | None = None
        self._recv_buf = bytearray()
        self._recv_garbage = b""  # associated data of the next received packet
        self._recv_len = -1  # contents length of the packet being received, once known
        self._out: list[bytes] = []
        self._pending: list[tuple[str, bytes] | int] = []  # before the keys: messages, decoys
        self._send_ready = False
        self.version_contents: bytes | None = None  # what the peer's version packet said
        if initiator:
            self.state = KEY
            self._out.append(self._ellswift + garbage)
        else:
            self.state = DETECTING if detect_v1 else KEY
            if not detect_v1:
                self._out.append(self._ellswift + garbage)

    # -- state --------------------------------------------------------------------------------

    @property
    def our_ellswift(self) -> bytes:
        return self._ellswift

    @property
    def session_id(self) -> bytes | None:
        """32 bytes once the keys exist (Core shows it as hex in getpeerinfo)."""
        return self.cipher.session_id if self.cipher is not None else None

    @property
    def ready(self) -> bool:
        """The keys exist: messages are encrypted as they are sent (encrypt_message)."""
        return self._send_ready

    @property
    def handshake_done(self) -> bool:
        """Their version packet has arrived: application messages flow both ways."""
        return self.state == APP

    @property
    def v1_fallback(self) -> bool:
        """Responder: the peer's first 16 bytes were a v1 version message's."""
        return self.state == V1

    @property
    def should_reconnect_v1(self) -> bool:
        """Initiator, for when the connection closes: nothing at all came back, as when a v1
        node drops our key as a bad message header; Core then retries the peer with v1 (it
        also requires that more than a v1 header was sent, true once data_to_send()'s first
        64 bytes were written)."""
        return self.initiator and self.state == KEY and not self._recv_buf

    def take_pending(self) -> list[tuple[str, bytes]]:
        """After v1_fallback: the messages queued with send() before the peer's transport was
        known (for the caller to send them with v1 framing)."""
        out = [item for item in self._pending if not isinstance(item, int)]
        self._pending.clear()
        return out

    def take_v1_bytes(self) -> bytes:
        """After v1_fallback: the bytes received so far, which begin the peer's v1 stream."""
        data = bytes(self._recv_buf)
        self._recv_buf.clear()
        return data

    # -- sending ------------------------------------------------------------------------------

    def send(self, command: str, payload: bytes = b"") -> None:
        """Queue one application message (encrypted at once when the keys exist)."""
        if self._send_ready:
            self._out.append(self._app_packet(command, payload))
        else:
            _type_bytes(command)  # a bad command fails here, not later
            self._pending.append((command, payload))

    def send_decoy(self, length: int | None = None) -> None:
        """Queue a decoy packet of random contents (its length random below 1000 unless
        given), which the peer authenticates and ignores."""
        if length is None:
            length = secrets.randbelow(1000)
        if self._send_ready:
            self._out.append(self.cipher.encrypt(os.urandom(length), ignore=True))
        else:
            self._pending.append(length)

    def encrypt_message(self, command: str, payload: bytes = b"") -> bytes:
        """The packet of one application message, returned rather than queued: the lean path
        for a caller that writes it straight away. Only once the keys exist (RuntimeError
        before), and after writing what data_to_send() holds."""
        if not self._send_ready:
            raise RuntimeError("v2 keys not established yet")
        return self._app_packet(command, payload)

    def _app_packet(self, command: str, payload: bytes) -> bytes:
        # header byte, message type and payload in one copy
        return self.cipher.encrypt_plaintext(b"".join((b"\x00", _type_bytes(command), payload)))

    def data_to_send(self) -> bytes:
        """All bytes queued for the wire, and forget them."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _start_sending(self) -> None:
        """Responder: their first byte was not v1's; send our key and garbage."""
        self._out.append(self._ellswift + self._send_garbage)

    def _keys_ready(self, ellswift_theirs: bytes) -> None:
        self.cipher = V2Cipher.from_ecdh(self._privkey, self._ellswift, ellswift_theirs,
                                         self.initiator, self.magic)
        self._privkey = b""  # forward secrecy: the ephemeral key is not needed any more
        cipher = self.cipher
        out = self._out
        out.append(cipher.send_garbage_terminator)
        # Our version packet, authenticating our garbage as its associated data.
        out.append(cipher.encrypt(TRANSPORT_VERSION, aad=self._send_garbage))
        self._send_garbage = b""
        self._send_ready = True
        for item in self._pending:
            if isinstance(item, int):
                out.append(cipher.encrypt(os.urandom(item), ignore=True))
            else:
                out.append(self._app_packet(*item))
        self._pending.clear()

    # -- receiving ----------------------------------------------------------------------------

    def bytes_needed(self) -> int:
        """How many more bytes to read: never more than the peer sends before it waits for
        us, at least 1 while the connection is open, 0 after v1 detection or an error."""
        state = self.state
        have = len(self._recv_buf)
        if state == APP or state == VERSION:
            if self._recv_len < 0:
                return LENGTH_LEN - have
            return LENGTH_LEN + HEADER_LEN + self._recv_len + TAG_LEN - have
        if state == GARB_GARBTERM:
            # The terminator is not in the buffer yet; after it the peer sends at least its
            # version packet (an empty one is EXPANSION bytes) without waiting.
            term = self.cipher.recv_garbage_terminator
            buf = self._recv_buf
            overlap = 0
            for k in range(min(GARBAGE_TERMINATOR_LEN - 1, have), 0, -1):
                if buf.endswith(term[:k]):
                    overlap = k
                    break
            return GARBAGE_TERMINATOR_LEN - overlap + EXPANSION
        if state == KEY:
            return ELLSWIFT_PUBKEY_LEN - have
        if state == DETECTING:
            return V1_PREFIX_LEN - have
        return 0

    def receive(self, data: bytes) -> list[Message]:
        """Take bytes from the wire; the application messages they complete, as (command,
        payload, wire size). Raises V2TransportError, after which the connection must end
        (its `messages` are those the same bytes completed before the bad one)."""
        if self.state == CLOSED:
            raise V2TransportError("V2 transport error: connection already failed")
        self._recv_buf += data
        if self.state == V1:
            return []
        msgs: list[Message] = []
        try:
            self._process(msgs)
        except V2TransportError as err:
            self.state = CLOSED
            err.messages = msgs
            raise
        return msgs

    def _process(self, msgs: list[Message]) -> None:
        buf = self._recv_buf
        if self.state == DETECTING:
            verdict = detect_v1(bytes(buf[:V1_PREFIX_LEN]), self.magic)
            if verdict is None:
                return
            if verdict:
                self.state = V1
                return
            self.state = KEY
            self._start_sending()
        if self.state == KEY:
            if not self.initiator and len(buf) >= V1_PREFIX_LEN and \
                    buf[4:V1_PREFIX_LEN] == V1_VERSION_COMMAND:
                # A v1 version message, but for another network (its magic differed): said
                # as soon as its 16 bytes are in, as Core does.
                raise V2TransportError(
                    "V2 transport error: V1 peer with wrong MessageStart "
                    f"{bytes(buf[:4]).hex()}")
            if len(buf) < ELLSWIFT_PUBKEY_LEN:
                return
            theirs = bytes(buf[:ELLSWIFT_PUBKEY_LEN])
            del buf[:ELLSWIFT_PUBKEY_LEN]
            self._keys_ready(theirs)
            self.state = GARB_GARBTERM
        if self.state == GARB_GARBTERM:
            limit = MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN
            at = buf.find(self.cipher.recv_garbage_terminator, 0, limit)
            if at < 0:
                if len(buf) >= limit:
                    raise V2TransportError("V2 transport error: missing garbage terminator")
                return
            self._recv_garbage = bytes(buf[:at])
            del buf[:at + GARBAGE_TERMINATOR_LEN]
            self.state = VERSION
        cipher = self.cipher
        while True:  # packets
            if self._recv_len < 0:
                if len(buf) < LENGTH_LEN:
                    return
                n = cipher.decrypt_length(bytes(buf[:LENGTH_LEN]))
                if n > self.max_contents_len:
                    raise V2TransportError(
                        f"V2 transport error: packet too large ({n} bytes)")
                self._recv_len = n
            n = self._recv_len
            end = LENGTH_LEN + HEADER_LEN + n + TAG_LEN
            if len(buf) < end:
                return
            with memoryview(buf) as view, view[LENGTH_LEN:end] as sealed:
                plaintext = cipher.decrypt(sealed, self._recv_garbage)
            del buf[:end]
            self._recv_len = -1
            self._recv_garbage = b""  # only the first packet authenticates the garbage
            if plaintext[0] & IGNORE_BIT:
                continue  # a decoy
            if self.state == VERSION:
                self.version_contents = plaintext[1:]  # ignored: only one version exists
                self.state = APP
                continue
            msgs.append(_message(plaintext, n))

    # -- the application phase's lean path ----------------------------------------------------

    @property
    def packet_reads(self) -> bool:
        """The handshake is over and nothing is buffered: the caller may read each packet
        with read_length (its first 3 bytes) and read_packet (the rest) instead of receive,
        two calls with no buffering in between."""
        return self.state == APP and self._recv_len < 0 and not self._recv_buf

    def read_length(self, enc_length: bytes) -> int:
        """(packet_reads) The next packet's encrypted length field: how many more bytes make
        the packet. Raises V2TransportError for a packet over the limit."""
        n = self.cipher.decrypt_length(enc_length)
        if n > self.max_contents_len:
            self.state = CLOSED
            raise V2TransportError(f"V2 transport error: packet too large ({n} bytes)")
        return HEADER_LEN + n + TAG_LEN

    def read_packet(self, sealed: bytes) -> Message | None:
        """(packet_reads) The rest of the packet read_length announced: its message, or None
        for a decoy. Raises V2TransportError when it does not authenticate."""
        try:
            plaintext = self.cipher.decrypt(sealed)
        except V2TransportError:
            self.state = CLOSED
            raise
        if plaintext[0] & IGNORE_BIT:
            return None
        return _message(plaintext, len(plaintext) - HEADER_LEN)


def _message(plaintext: bytes, n: int) -> Message:
    """An application packet's message, from its plaintext (header byte | n bytes of
    contents)."""
    if n:
        command = _RECV_TYPE[plaintext[1]]
        if command is not None:
            return command, plaintext[2:], n + EXPANSION
    command, payload = decode_contents(plaintext[1:])
    return command, payload, n + EXPANSION
