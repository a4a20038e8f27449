"""secp256k1 key helpers on coincurve, and BIP341 Taproot output-key construction."""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly

from consensus.hashes import hash160, tagged_hash
from consensus.serialize import compact_size

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TAPROOT_LEAF_TAPSCRIPT = 0xC0


class InvalidKeyError(ValueError):
    """An invalid private or public key."""


def is_valid_secret(secret: bytes) -> bool:
    return len(secret) == 32 and 0 < int.from_bytes(secret, "big") < SECP256K1_N


def pubkey_from_secret(secret: bytes, compressed: bool = True) -> bytes:
    if not is_valid_secret(secret):
        raise InvalidKeyError("private key must be 32 bytes in 1..n-1")
    return PrivateKey(secret).public_key.format(compressed=compressed)


def pubkey_header_ok(pubkey: bytes) -> bool:
    """Core's CPubKey::IsValid: a size that matches the header byte (hybrid 06/07 included)."""
    if len(pubkey) == 33:
        return pubkey[0] in (2, 3)
    if len(pubkey) == 65:
        return pubkey[0] in (4, 6, 7)
    return False


def is_hybrid(pubkey: bytes) -> bool:
    return len(pubkey) == 65 and pubkey[0] in (6, 7)


def is_fully_valid_pubkey(pubkey: bytes) -> bool:
    """A compressed or uncompressed key that is a point on the curve."""
    if not pubkey_header_ok(pubkey) or is_hybrid(pubkey):
        return False
    try:
        PublicKey(pubkey)
    except (ValueError, TypeError):
        return False
    return True


def is_valid_xonly(xonly: bytes) -> bool:
    return len(xonly) == 32 and is_fully_valid_pubkey(b"\x02" + xonly)


def xonly(pubkey: bytes) -> bytes:
    """The BIP340 x-only form of a compressed (or uncompressed) public key."""
    if len(pubkey) == 32:
        return pubkey
    if len(pubkey) == 33:
        return pubkey[1:]
    if len(pubkey) == 65:
        return pubkey[1:33]
    raise InvalidKeyError(f"not a public key ({len(pubkey)} bytes)")


def compress(pubkey: bytes) -> bytes:
    return PublicKey(pubkey).format(compressed=True)


def key_id(pubkey: bytes) -> bytes:
    """hash160 of the serialized key (CKeyID)."""
    return hash160(pubkey)


# --- Taproot (BIP341) ---------------------------------------------------------------------------


def tapleaf_hash(script: bytes, leaf_version: int = TAPROOT_LEAF_TAPSCRIPT) -> bytes:
    return tagged_hash("TapLeaf", bytes([leaf_version]) + compact_size(len(script)) + script)


def tapbranch_hash(a: bytes, b: bytes) -> bytes:
    # Children are sorted so that a proof need not say which side a node is on.
    return tagged_hash("TapBranch", a + b if a < b else b + a)


def taproot_merkle_root(leaves: Sequence[tuple[int, bytes]]) -> bytes | None:
    """Merkle root of a script tree given as (depth, leaf hash) in depth-first order.

    This is how descriptors list a tree: `{A,{B,C}}` is [(1,A), (2,B), (2,C)]. Returns None for
    no leaves; raises ValueError when the depths do not describe a complete binary tree.
    """
    if not leaves:
        return None
    stack: list[tuple[int, bytes]] = []
    for depth, h in leaves:
        stack.append((depth, h))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            d, right = stack.pop()
            _, left = stack.pop()
            if d == 0:
                raise ValueError("invalid taproot tree depths")
            stack.append((d - 1, tapbranch_hash(left, right)))
    if len(stack) != 1 or stack[0][0] != 0:
        raise ValueError("invalid taproot tree depths")
    return stack[0][1]


def taproot_tweak(internal_xonly: bytes, merkle_root: bytes | None) -> bytes:
    """The 32-byte TapTweak of an internal key and an optional script-tree root."""
    return tagged_hash("TapTweak", internal_xonly + (merkle_root or b""))


def taproot_output_key(internal_xonly: bytes, merkle_root: bytes | None = None) -> bytes:
    """Q = lift_x(P) + t*G as an x-only key (BIP341; no script path when merkle_root is None)."""
    if not is_valid_xonly(internal_xonly):
        raise InvalidKeyError("invalid x-only internal key")
    t = taproot_tweak(internal_xonly, merkle_root)
    if int.from_bytes(t, "big") >= SECP256K1_N:
        raise InvalidKeyError("taproot tweak out of range")
    key = PublicKeyXOnly(internal_xonly)
    key.tweak_add(t)
    return key.format()


def taproot_tweak_seckey(secret: bytes, merkle_root: bytes | None = None) -> bytes:
    """The private key of the tweaked output key (negating first when P has odd y)."""
    pub = pubkey_from_secret(secret)
    d = int.from_bytes(secret, "big")
    if pub[0] == 3:
        d = SECP256K1_N - d
    t = int.from_bytes(taproot_tweak(pub[1:], merkle_root), "big")
    return ((d + t) % SECP256K1_N).to_bytes(32, "big")
