"""Base58 and Base58Check, the encodings of legacy addresses, WIF keys and BIP32 extended keys."""

from __future__ import annotations

from consensus.hashes import sha256d

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


class Base58Error(ValueError):
    """A string that is not Base58, or decodes to more bytes than allowed."""


class Base58ChecksumError(Base58Error):
    """Valid Base58 whose last four bytes are not the sha256d checksum of the rest."""


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(ALPHABET[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(s: str, max_len: int | None = None) -> bytes:
    """Decode Base58. Like Core, leading and trailing whitespace is ignored.

    Raises Base58Error naming the first bad character, or when the result would exceed max_len.
    """
    s = s.strip(" \t\n\v\f\r")
    n = 0
    for pos, c in enumerate(s):
        v = _INDEX.get(c)
        if v is None:
            raise Base58Error(f"invalid Base58 character {c!r} at position {pos}")
        n = n * 58 + v
    zeros = len(s) - len(s.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    out = b"\x00" * zeros + body
    if max_len is not None and len(out) > max_len:
        raise Base58Error(f"Base58 data is {len(out)} bytes, more than {max_len}")
    return out


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + sha256d(payload)[:4])


def b58check_decode(s: str, max_len: int | None = None) -> bytes:
    """Decode Base58Check and return the payload (without the 4-byte checksum).

    max_len bounds the payload, as Core's DecodeBase58Check(str, out, max_ret_len) does.
    """
    raw = b58decode(s, None if max_len is None else max_len + 4)
    if len(raw) < 4:
        raise Base58ChecksumError("Base58Check data shorter than its 4-byte checksum")
    payload, check = raw[:-4], raw[-4:]
    if sha256d(payload)[:4] != check:
        raise Base58ChecksumError("invalid Base58Check checksum")
    return payload
