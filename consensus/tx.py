"""Transactions: OutPoint, TxIn, TxOut, Transaction, with BIP144 witness serialization.

Objects are plain and mutable while being built; once a transaction's txid, wtxid or size
has been asked for, those are cached, so treat it as frozen from then on (or call
`rehash()` after changing it). Parsed transactions get their hashes and sizes computed
from the input bytes directly, without re-serializing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from consensus.hashes import hash_to_hex, sha256d
from consensus.serialize import (
    DeserializationError,
    Reader,
    compact_size,
    expect_end,
)

WITNESS_SCALE_FACTOR = 4
NULL_HASH = b"\x00" * 32
NULL_INDEX = 0xFFFFFFFF
SEQUENCE_FINAL = 0xFFFFFFFF
LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; at or above: a UNIX time

# BIP68 sequence number fields (read by the contextual checks and OP_CHECKSEQUENCEVERIFY).
SEQUENCE_LOCKTIME_DISABLE_FLAG = 1 << 31
SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22
SEQUENCE_LOCKTIME_MASK = 0x0000FFFF
SEQUENCE_LOCKTIME_GRANULARITY = 9  # time locks count units of 512 seconds

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_OUTPOINT = struct.Struct("<32sI")


class OutPoint:
    """A reference to an output: the txid (internal byte order) and output index."""

    __slots__ = ("hash", "n")

    def __init__(self, hash: bytes = NULL_HASH, n: int = NULL_INDEX) -> None:
        self.hash = hash
        self.n = n

    def is_null(self) -> bool:
        return self.n == NULL_INDEX and self.hash == NULL_HASH

    def serialize(self) -> bytes:
        return _OUTPOINT.pack(self.hash, self.n)

    def key(self) -> tuple[bytes, int]:
        return (self.hash, self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutPoint) and self.hash == other.hash and self.n == other.n

    def __hash__(self) -> int:
        return hash((self.hash, self.n))

    def __repr__(self) -> str:
        return f"OutPoint({hash_to_hex(self.hash)}:{self.n})"


class TxIn:
    __slots__ = ("prevout", "script_sig", "sequence", "witness")

    def __init__(
        self,
        prevout: OutPoint | None = None,
        script_sig: bytes = b"",
        sequence: int = SEQUENCE_FINAL,
        witness: list[bytes] | None = None,
    ) -> None:
        self.prevout = prevout if prevout is not None else OutPoint()
        self.script_sig = script_sig
        self.sequence = sequence
        self.witness = witness if witness is not None else []

    def __repr__(self) -> str:
        return (
            f"TxIn({self.prevout!r}, script_sig={self.script_sig.hex()}, "
            f"sequence={self.sequence:#x}, witness={[w.hex() for w in self.witness]})"
        )


class TxOut:
    __slots__ = ("value", "script_pubkey")

    def __init__(self, value: int = -1, script_pubkey: bytes = b"") -> None:
        self.value = value
        self.script_pubkey = script_pubkey

    def serialize(self) -> bytes:
        return struct.pack("<q", self.value) + compact_size(len(self.script_pubkey)) + (
            self.script_pubkey
        )

    @classmethod
    def deserialize(cls, r: Reader) -> TxOut:
        return cls(r.i64(), r.var_bytes())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TxOut)
            and self.value == other.value
            and self.script_pubkey == other.script_pubkey
        )

    def __repr__(self) -> str:
        return f"TxOut({self.value}, {self.script_pubkey.hex()})"


class Transaction:
    __slots__ = ("version", "vin", "vout", "locktime", "_txid", "_wtxid", "_base_size", "_size")

    def __init__(
        self,
        version: int = 2,
        vin: Iterable[TxIn] = (),
        vout: Iterable[TxOut] = (),
        locktime: int = 0,
    ) -> None:
        self.version = version  # uint32, as Core stores it since v28
        self.vin = list(vin)
        self.vout = list(vout)
        self.locktime = locktime
        self._txid: bytes | None = None
        self._wtxid: bytes | None = None
        self._base_size: int | None = None
        self._size: int | None = None

    # -- identity ---------------------------------------------------------------------------

    def rehash(self) -> None:
        """Forget cached hashes and sizes after the transaction was changed."""
        self._txid = self._wtxid = None
        self._base_size = self._size = None

    def _compute(self) -> None:
        base = self.serialize(witness=False)
        self._txid = sha256d(base)
        self._base_size = len(base)
        if self.has_witness():
            full = self.serialize(witness=True)
            self._wtxid = sha256d(full)
            self._size = len(full)
        else:
            self._wtxid = self._txid
            self._size = self._base_size

    @property
    def txid(self) -> bytes:
        """Hash of the serialization without witness (internal byte order)."""
        if self._txid is None:
            self._compute()
        return self._txid  # type: ignore[return-value]

    @property
    def wtxid(self) -> bytes:
        """Hash of the serialization with witness; equals txid when there is none."""
        if self._wtxid is None:
            self._compute()
        return self._wtxid  # type: ignore[return-value]

    def txid_hex(self) -> str:
        return hash_to_hex(self.txid)

    def wtxid_hex(self) -> str:
        return hash_to_hex(self.wtxid)

    # -- sizes ------------------------------------------------------------------------------

    @property
    def base_size(self) -> int:
        """Serialized size without witness ("stripped size")."""
        if self._base_size is None:
            self._compute()
        return self._base_size  # type: ignore[return-value]

    @property
    def size(self) -> int:
        """Serialized size with witness (the "total size")."""
        if self._size is None:
            self._compute()
        return self._size  # type: ignore[return-value]

    @property
    def weight(self) -> int:
        return self.base_size * (WITNESS_SCALE_FACTOR - 1) + self.size

    @property
    def vsize(self) -> int:
        return (self.weight + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR

    # -- predicates -------------------------------------------------------------------------

    def is_coinbase(self) -> bool:
        return len(self.vin) == 1 and self.vin[0].prevout.is_null()

    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.vin)

    def total_out(self) -> int:
        return sum(o.value for o in self.vout)

    # -- encoding ---------------------------------------------------------------------------

    def serialize(self, witness: bool = True) -> bytes:
        """BIP144 serialization; witness=False gives the legacy (txid) form."""
        parts = [_U32.pack(self.version)]
        with_wit = witness and self.has_witness()
        if with_wit:
            parts.append(b"\x00\x01")
        parts.append(compact_size(len(self.vin)))
        for txin in self.vin:
            parts.append(_OUTPOINT.pack(txin.prevout.hash, txin.prevout.n))
            parts.append(compact_size(len(txin.script_sig)))
            parts.append(txin.script_sig)
            parts.append(_U32.pack(txin.sequence))
        parts.append(compact_size(len(self.vout)))
        for txout in self.vout:
            parts.append(struct.pack("<q", txout.value))
            parts.append(compact_size(len(txout.script_pubkey)))
            parts.append(txout.script_pubkey)
        if with_wit:
            for txin in self.vin:
                parts.append(compact_size(len(txin.witness)))
                for item in txin.witness:
                    parts.append(compact_size(len(item)))
                    parts.append(item)
        parts.append(_U32.pack(self.locktime))
        return b"".join(parts)

    def to_hex(self, witness: bool = True) -> str:
        return self.serialize(witness).hex()

    @classmethod
    def deserialize(cls, r: Reader, allow_witness: bool = True) -> Transaction:
        """Read one transaction from r, following Core's SerializeTransaction rules.

        The txid, wtxid and sizes are computed from the bytes read, once.
        """
        buf = r.buf
        start = r.pos
        tx = cls.__new__(cls)
        tx.version = r.u32()
        vin = _read_inputs(r)
        flags = 0
        if not vin and allow_witness:
            # Either a dummy empty vector (extended format) or a genuinely empty one.
            flags = r.u8()
            if flags != 0:
                vin = _read_inputs(r)
                vout = _read_outputs(r)
            else:
                vout = []
        else:
            vout = _read_outputs(r)
        body_end = r.pos
        has_wit = False
        if flags & 1 and allow_witness:
            flags ^= 1
            has_wit = _read_witnesses(r, vin)
            if not has_wit:
                raise DeserializationError("Superfluous witness record")
        if flags:
            raise DeserializationError("Unknown transaction optional data")
        tx.locktime = r.u32()
        end = r.pos
        tx.vin = vin
        tx.vout = vout
        if has_wit:
            # Legacy form = version || body (without marker/flag) || locktime.
            body_start = start + 6
            base = b"".join((buf[start : start + 4], buf[body_start:body_end], buf[end - 4 : end]))
            tx._txid = sha256d(base)
            tx._base_size = len(base)
            tx._wtxid = sha256d(buf[start:end])
            tx._size = end - start
        else:
            tx._txid = tx._wtxid = sha256d(buf[start:end])
            tx._base_size = tx._size = end - start
        return tx

    @classmethod
    def from_bytes(cls, data: bytes, allow_witness: bool = True) -> Transaction:
        r = Reader(data)
        tx = cls.deserialize(r, allow_witness)
        expect_end(r, "transaction")
        return tx

    @classmethod
    def from_hex(cls, s: str) -> Transaction:
        try:
            data = bytes.fromhex(s)
        except ValueError as e:
            raise DeserializationError(f"not hex: {e}") from None
        return cls.from_bytes(data)

    def copy(self) -> Transaction:
        """A deep copy with no cached hashes, for building variants in tests and wallets."""
        return Transaction(
            self.version,
            [
                TxIn(OutPoint(i.prevout.hash, i.prevout.n), i.script_sig, i.sequence,
                     list(i.witness))
                for i in self.vin
            ],
            [TxOut(o.value, o.script_pubkey) for o in self.vout],
            self.locktime,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and self.serialize() == other.serialize()

    def __repr__(self) -> str:
        return f"Transaction({self.txid_hex()}, vin={len(self.vin)}, vout={len(self.vout)})"


_unpack_outpoint_seq = struct.Struct("<32sI").unpack_from
_unpack_u32 = _U32.unpack_from
_unpack_i64 = struct.Struct("<q").unpack_from


def _read_len(buf, pos: int, end: int) -> tuple[int, int]:
    """Inline CompactSize read on the hot path; defers to Reader for anything unusual."""
    if pos < end:
        first = buf[pos]
        if first < 0xFD:
            return first, pos + 1
    r = Reader(buf, pos)
    r.end = end
    n = r.compact_size()
    return n, r.pos


def _truncated(pos: int, end: int) -> DeserializationError:
    return DeserializationError(f"truncated data at offset {min(pos, end)}")


def _read_inputs(r: Reader) -> list[TxIn]:
    buf, pos, end = r.buf, r.pos, r.end
    n, pos = _read_len(buf, pos, end)
    out = []
    new_in = TxIn.__new__
    new_op = OutPoint.__new__
    for _ in range(n):
        if pos + 37 > end:
            raise _truncated(pos, end)
        h, idx = _unpack_outpoint_seq(buf, pos)
        slen, pos = _read_len(buf, pos + 36, end)
        script_end = pos + slen
        if script_end + 4 > end:
            raise _truncated(script_end, end)
        txin = new_in(TxIn)
        op = new_op(OutPoint)
        op.hash = h
        op.n = idx
        txin.prevout = op
        txin.script_sig = bytes(buf[pos:script_end])
        txin.sequence = _unpack_u32(buf, script_end)[0]
        txin.witness = []
        pos = script_end + 4
        out.append(txin)
    r.pos = pos
    return out


def _read_outputs(r: Reader) -> list[TxOut]:
    buf, pos, end = r.buf, r.pos, r.end
    n, pos = _read_len(buf, pos, end)
    out = []
    new_out = TxOut.__new__
    for _ in range(n):
        if pos + 9 > end:
            raise _truncated(pos, end)
        value = _unpack_i64(buf, pos)[0]
        slen, pos = _read_len(buf, pos + 8, end)
        script_end = pos + slen
        if script_end > end:
            raise _truncated(script_end, end)
        txout = new_out(TxOut)
        txout.value = value
        txout.script_pubkey = bytes(buf[pos:script_end])
        pos = script_end
        out.append(txout)
    r.pos = pos
    return out


def _read_witnesses(r: Reader, vin: list[TxIn]) -> bool:
    """Read each input's witness stack (the hot loop of segwit parsing, inlined like the
    input and output readers). Returns whether any stack is non-empty."""
    buf, pos, end = r.buf, r.pos, r.end
    any_item = False
    for txin in vin:
        n, pos = _read_len(buf, pos, end)
        stack = []
        for _ in range(n):
            size, pos = _read_len(buf, pos, end)
            item_end = pos + size
            if item_end > end:
                raise _truncated(item_end, end)
            stack.append(bytes(buf[pos:item_end]))
            pos = item_end
        txin.witness = stack
        if n:
            any_item = True
    r.pos = pos
    return any_item
