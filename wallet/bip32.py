"""BIP32 hierarchical deterministic keys: derivation, fingerprints, xprv/xpub serialization.

The version bytes come from ChainParams (xprv/xpub on main, tprv/tpub on regtest), as Core's
EncodeExtKey/DecodeExtKey use the chain's prefixes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from coincurve import PublicKey

from consensus.hashes import hash160
from consensus.params import ChainParams
from wallet.base58 import Base58Error, b58check_decode, b58check_encode
from wallet.keys import SECP256K1_N, pubkey_from_secret

HARDENED = 0x80000000
EXTKEY_SIZE = 74  # depth(1) fingerprint(4) child(4) chaincode(32) key(33), without version


class BIP32Error(ValueError):
    """An invalid extended key, path or derivation."""


def _hmac512(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha512).digest()


@dataclass(frozen=True)
class ExtKey:
    """An extended key. `key` is the 32-byte secret when private, else the 33-byte pubkey."""

    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    key: bytes
    is_private: bool

    # --- construction ---

    @classmethod
    def from_seed(cls, seed: bytes) -> ExtKey:
        if not 16 <= len(seed) <= 64:
            raise BIP32Error("seed must be 16 to 64 bytes")
        i = _hmac512(b"Bitcoin seed", seed)
        il, ir = i[:32], i[32:]
        if not 0 < int.from_bytes(il, "big") < SECP256K1_N:
            raise BIP32Error("seed gives an invalid master key; use another seed")
        return cls(0, b"\x00" * 4, 0, ir, il, True)

    # --- properties ---

    @cached_property
    def pubkey(self) -> bytes:
        """The compressed public key (computed from the secret for a private key)."""
        return pubkey_from_secret(self.key) if self.is_private else self.key

    @property
    def secret(self) -> bytes:
        if not self.is_private:
            raise BIP32Error("extended public key has no private key")
        return self.key

    @cached_property
    def identifier(self) -> bytes:
        return hash160(self.pubkey)

    @property
    def fingerprint(self) -> bytes:
        """First four bytes of hash160(pubkey): what children record as parent fingerprint."""
        return self.identifier[:4]

    def neuter(self) -> ExtKey:
        if not self.is_private:
            return self
        return ExtKey(
            self.depth, self.parent_fingerprint, self.child_number, self.chain_code,
            self.pubkey, False,
        )

    # --- derivation ---

    def derive(self, index: int) -> ExtKey:
        """CKDpriv / CKDpub. Raises BIP32Error for hardened public derivation or the ~2^-127
        case of an invalid child (BIP32 says: go on with the next index)."""
        if not 0 <= index <= 0xFFFFFFFF:
            raise BIP32Error(f"child index {index} out of range")
        if self.depth >= 255:
            raise BIP32Error("maximum derivation depth reached")
        hardened = index >= HARDENED
        if hardened:
            if not self.is_private:
                raise BIP32Error("hardened derivation requires a private key")
            data = b"\x00" + self.key + index.to_bytes(4, "big")
        else:
            data = self.pubkey + index.to_bytes(4, "big")
        i = _hmac512(self.chain_code, data)
        il, ir = i[:32], i[32:]
        tweak = int.from_bytes(il, "big")
        if tweak >= SECP256K1_N:
            raise BIP32Error(f"invalid child at index {index}")
        fp = self.fingerprint
        if self.is_private:
            k = (tweak + int.from_bytes(self.key, "big")) % SECP256K1_N
            if k == 0:
                raise BIP32Error(f"invalid child at index {index}")
            return ExtKey(self.depth + 1, fp, index, ir, k.to_bytes(32, "big"), True)
        try:
            child = PublicKey(self.key).add(il).format(compressed=True)
        except ValueError:
            raise BIP32Error(f"invalid child at index {index}") from None
        return ExtKey(self.depth + 1, fp, index, ir, child, False)

    def derive_path(self, path: str | Iterable[int]) -> ExtKey:
        key = self
        for index in parse_path(path) if isinstance(path, str) else path:
            key = key.derive(index)
        return key

    # --- serialization ---

    def to_bytes(self, version: bytes) -> bytes:
        keydata = b"\x00" + self.key if self.is_private else self.key
        return (
            version
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + keydata
        )

    def serialize(self, params: ChainParams) -> str:
        version = params.ext_secret_key_prefix if self.is_private else params.ext_public_key_prefix
        return b58check_encode(self.to_bytes(version))

    @classmethod
    def from_bytes(cls, data: bytes, private: bool) -> ExtKey:
        """Parse the 74 bytes after the version, with BIP32's validity rules."""
        if len(data) != EXTKEY_SIZE:
            raise BIP32Error(f"extended key must be {EXTKEY_SIZE} bytes after its version")
        depth = data[0]
        fp = data[1:5]
        child = int.from_bytes(data[5:9], "big")
        chain_code = data[9:41]
        keydata = data[41:74]
        if depth == 0 and (fp != b"\x00" * 4 or child != 0):
            raise BIP32Error("zero depth with non-zero parent fingerprint or child number")
        if private:
            if keydata[0] != 0:
                raise BIP32Error("private key data must start with 0x00")
            secret = keydata[1:]
            if not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
                raise BIP32Error("private key not in 1..n-1")
            return cls(depth, fp, child, chain_code, secret, True)
        if keydata[0] not in (2, 3):
            raise BIP32Error("invalid public key prefix")
        try:
            PublicKey(keydata)
        except ValueError:
            raise BIP32Error("invalid public key (not on the curve)") from None
        return cls(depth, fp, child, chain_code, keydata, False)

    @classmethod
    def deserialize(cls, s: str, params: ChainParams) -> ExtKey:
        """Decode an xprv/xpub (tprv/tpub) of params' chain; BIP32Error otherwise."""
        try:
            data = b58check_decode(s, 78)
        except Base58Error as e:
            raise BIP32Error(f"invalid extended key encoding: {e}") from None
        if len(data) != 78:
            raise BIP32Error("invalid extended key length")
        version = data[:4]
        if version == params.ext_secret_key_prefix:
            return cls.from_bytes(data[4:], True)
        if version == params.ext_public_key_prefix:
            return cls.from_bytes(data[4:], False)
        raise BIP32Error(f"unknown extended key version {version.hex()} for {params.name}")


# --- paths --------------------------------------------------------------------------------------


def parse_path_element(elem: str) -> int:
    """One step: decimal index, hardened with a trailing ' or h. Core's messages."""
    hardened = elem.endswith(("'", "h"))
    digits = elem[:-1] if hardened else elem
    if not digits.isdigit() or not digits.isascii():
        raise BIP32Error(f"Key path value '{digits}' is not a valid uint32")
    value = int(digits)
    if value > 0xFFFFFFFF:
        raise BIP32Error(f"Key path value '{digits}' is not a valid uint32")
    if value >= HARDENED:
        raise BIP32Error(f"Key path value {value} is out of range")
    return value | HARDENED if hardened else value


def parse_path(path: str) -> list[int]:
    """'m/0h/1/2'' (the leading m optional, '' or 'm' for the root) -> child numbers."""
    parts = path.split("/")
    if parts and parts[0] == "m":
        parts = parts[1:]
    elif parts == [""]:
        parts = []
    return [parse_path_element(p) for p in parts]


def format_path(path: Sequence[int], apostrophe: bool = False, prefix: str = "") -> str:
    """[2147483648, 1] -> "/0h/1" (or "/0'/1"), as Core's FormatHDKeypath, after prefix."""
    mark = "'" if apostrophe else "h"
    return prefix + "".join(
        f"/{i & ~HARDENED}{mark}" if i & HARDENED else f"/{i}" for i in path
    )
