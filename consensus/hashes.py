"""The hash functions of Bitcoin: sha256d, hash160, BIP340 tagged hashes, uint256 hex."""

from __future__ import annotations

import hashlib
from functools import lru_cache

_sha256 = hashlib.sha256


def sha256(data: bytes) -> bytes:
    return _sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, the hash of transactions, blocks and merkle nodes."""
    return _sha256(_sha256(data).digest()).digest()


def _ripemd160_available() -> bool:
    try:
        hashlib.new("ripemd160", b"")
        return True
    except ValueError:  # OpenSSL 3 without the legacy provider
        return False


if _ripemd160_available():
    _RIPEMD160 = hashlib.new("ripemd160")  # copied per use: hashlib.new's name lookup
    # costs as much again as hashing a key

    def ripemd160(data: bytes) -> bytes:
        h = _RIPEMD160.copy()
        h.update(data)
        return h.digest()

else:
    from consensus._ripemd160 import ripemd160  # noqa: F401  (pure-Python fallback)


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the hash in P2PKH, P2SH and P2WPKH."""
    return ripemd160(_sha256(data).digest())


@lru_cache(maxsize=64)
def _tag_prefix(tag: str) -> bytes:
    t = _sha256(tag.encode()).digest()
    return t + t


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP340 tagged hash: sha256(sha256(tag) || sha256(tag) || data)."""
    return _sha256(_tag_prefix(tag) + data).digest()


def tagged_hasher(tag: str):
    """A sha256 object already fed with the tag prefix; copy() it per use (midstate)."""
    h = _sha256()
    h.update(_tag_prefix(tag))
    return h


def hash_to_hex(h: bytes) -> str:
    """Internal byte order -> display hex (uint256::GetHex reverses the bytes)."""
    return h[::-1].hex()


def hex_to_hash(s: str) -> bytes:
    """Display hex -> internal byte order. Raises ValueError unless 64 hex digits."""
    if len(s) != 64:
        raise ValueError(f"hash must be 64 hex characters, got {len(s)}")
    return bytes.fromhex(s)[::-1]
