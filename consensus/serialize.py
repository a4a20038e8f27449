"""Bitcoin's byte encoding: a fast reader over a buffer, writers, and CompactSize.

Every decoding failure raises DeserializationError (a ValueError), never IndexError or
struct.error, so callers handling peer data need to catch exactly one type.
"""

from __future__ import annotations

import struct

# Core's MAX_SIZE: the largest CompactSize accepted for a length (32 MiB).
MAX_SIZE = 0x02000000

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class DeserializationError(ValueError):
    """Malformed or truncated bytes."""


class Reader:
    """Reads little-endian integers, CompactSizes and byte strings from a buffer.

    Slices are returned as bytes; the underlying buffer is never copied as a whole.
    """

    __slots__ = ("buf", "pos", "end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf = memoryview(data) if not isinstance(data, memoryview) else data
        self.pos = pos
        self.end = len(self.buf)

    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def _need(self, n: int) -> int:
        p = self.pos
        if n < 0 or p + n > self.end:
            raise DeserializationError(
                f"end of data (truncated): need {n} bytes at offset {p}, have {self.end - p}"
            )
        self.pos = p + n
        return p

    def read(self, n: int) -> bytes:
        p = self._need(n)
        return bytes(self.buf[p : p + n])

    def u8(self) -> int:
        p = self._need(1)
        return self.buf[p]

    def u16(self) -> int:
        return _U16.unpack_from(self.buf, self._need(2))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.buf, self._need(4))[0]

    def i32(self) -> int:
        return _I32.unpack_from(self.buf, self._need(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.buf, self._need(8))[0]

    def i64(self) -> int:
        return _I64.unpack_from(self.buf, self._need(8))[0]

    def compact_size(self, range_check: bool = True) -> int:
        """Read a CompactSize, rejecting non-canonical encodings as Core does.

        With range_check (the default, as for every length), values above MAX_SIZE fail.
        """
        first = self.u8()
        if first < 0xFD:
            n = first
        elif first == 0xFD:
            n = self.u16()
            if n < 0xFD:
                raise DeserializationError("non-canonical ReadCompactSize()")
        elif first == 0xFE:
            n = self.u32()
            if n < 0x10000:
                raise DeserializationError("non-canonical ReadCompactSize()")
        else:
            n = self.u64()
            if n < 0x100000000:
                raise DeserializationError("non-canonical ReadCompactSize()")
        if range_check and n > MAX_SIZE:
            raise DeserializationError("ReadCompactSize(): size too large")
        return n

    def var_bytes(self) -> bytes:
        return self.read(self.compact_size())

    def hash256(self) -> bytes:
        return self.read(32)


def compact_size(n: int) -> bytes:
    """Encode n as a CompactSize."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def var_bytes(b: bytes) -> bytes:
    """A byte string prefixed with its CompactSize length."""
    return compact_size(len(b)) + b


def compact_size_len(n: int) -> int:
    """Number of bytes compact_size(n) takes."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def u16(n: int) -> bytes:
    return _U16.pack(n)


def u32(n: int) -> bytes:
    return _U32.pack(n)


def i32(n: int) -> bytes:
    return _I32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)


def i64(n: int) -> bytes:
    return _I64.pack(n)


def expect_end(r: Reader, what: str) -> None:
    """Fail if bytes remain after a complete object."""
    if not r.at_end():
        raise DeserializationError(f"{r.remaining()} unexpected trailing bytes after {what}")
