"""Encryption at rest: a key from the passphrase by scrypt (memory-hard), and AES-256-GCM
(authenticated, so a wrong passphrase or a changed byte is detected, never silently decrypted)
from the `cryptography` package.

A sealed blob is nonce(12) || ciphertext+tag; the associated data names what the blob is
(e.g. b"seed"), so one blob cannot be swapped for another in the file unnoticed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# scrypt cost: 2^15 * 8 * 128 bytes = 32 MiB of memory, ~0.1 s here (the usual interactive
# setting); stored with each wallet so it can be raised later without breaking old files.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
NONCE_SIZE = 12


class DecryptionError(ValueError):
    """Wrong key, or the blob was altered."""


SALT_SIZE = 16


@dataclass(frozen=True)
class KDFParams:
    """scrypt's parameters. version 1 feeds scrypt the passphrase with its length in front:
    scrypt's HMAC pads a short key with zero bytes, so without it a passphrase and the same
    one with trailing null characters gave the same key (version 0, files made before)."""

    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    version: int = 1

    @classmethod
    def fresh(cls) -> KDFParams:
        return cls(os.urandom(SALT_SIZE))

    def to_bytes(self) -> bytes:
        out = (self.n.to_bytes(4, "big") + self.r.to_bytes(2, "big")
               + self.p.to_bytes(2, "big") + self.salt)
        return out + bytes((self.version,)) if self.version else out

    @classmethod
    def from_bytes(cls, data: bytes) -> KDFParams:
        if len(data) < 9:
            raise ValueError("bad key derivation parameters")
        n, r, p = (int.from_bytes(data[:4], "big"), int.from_bytes(data[4:6], "big"),
                   int.from_bytes(data[6:8], "big"))
        if len(data) == 8 + SALT_SIZE + 1:
            return cls(data[8:8 + SALT_SIZE], n, r, p, data[-1])
        return cls(data[8:], n, r, p, 0)


def derive_key(passphrase: str, params: KDFParams) -> bytes:
    """The 32-byte AES key for a passphrase."""
    kdf = Scrypt(salt=params.salt, length=32, n=params.n, r=params.r, p=params.p)
    # (any JSON string is a passphrase: a lone surrogate, which UTF-8 cannot hold, is kept
    # as its surrogate code unit's bytes)
    secret = passphrase.encode("utf-8", "surrogatepass")
    if params.version >= 1:
        secret = len(secret).to_bytes(4, "big") + secret
    return kdf.derive(secret)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_SIZE + 16:
        raise DecryptionError("encrypted data is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError("wrong key or altered data") from None
