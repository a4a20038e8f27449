"""secp256k1 key checks for the wallet (with InvalidKeyError), and BIP341 Taproot script-tree
roots and output keys.

The hashes and tweaks themselves are consensus code: tapleaf_hash and tapbranch_hash are in
consensus.script.taproot, taproot_tweak_seckey and taproot_tweak_pubkey in
consensus.script.keys.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from coincurve import PublicKey
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _GLOBAL_CONTEXT

from consensus.script.keys import pubkey as _pubkey_of_secret
from consensus.script.keys import taproot_tweak_pubkey
from consensus.script.sigcheck import SECP256K1_ORDER as SECP256K1_N
from consensus.script.sigcheck import pubkey_valid_size
from consensus.script.taproot import tapbranch_hash, taptweak_hash


class InvalidKeyError(ValueError):
    """An invalid private or public key."""


def is_valid_secret(secret: bytes) -> bool:
    return len(secret) == 32 and 0 < int.from_bytes(secret, "big") < SECP256K1_N


def pubkey_from_secret(secret: bytes, compressed: bool = True) -> bytes:
    if not is_valid_secret(secret):
        raise InvalidKeyError("private key must be 32 bytes in 1..n-1")
    return _pubkey_of_secret(secret, compressed)


def is_hybrid(pubkey: bytes) -> bool:
    return len(pubkey) == 65 and pubkey[0] in (6, 7)


def is_fully_valid_pubkey(pubkey: bytes) -> bool:
    """A compressed or uncompressed key that is a point on the curve."""
    if not pubkey_valid_size(pubkey) or is_hybrid(pubkey):
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


# --- Taproot (BIP341) ---------------------------------------------------------------------------


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


def taproot_output_key(internal_xonly: bytes, merkle_root: bytes | None = None) -> bytes:
    """Q = lift_x(P) + t*G as an x-only key (BIP341; no script path when merkle_root is None).

    consensus.script.keys.taproot_tweak_pubkey with InvalidKeyError for a bad internal key.
    """
    if not is_valid_xonly(internal_xonly):
        raise InvalidKeyError("invalid x-only internal key")
    try:
        return taproot_tweak_pubkey(internal_xonly, merkle_root)[0]
    except ValueError as e:  # a tweak >= n, or Q at infinity: negligible odds
        raise InvalidKeyError(f"taproot {e}") from None


# --- signing, straight on libsecp256k1 ------------------------------------------------------
# coincurve's PrivateKey() computes the public key and a keypair each time it is built (two
# point multiplications before the one signing needs); a wallet signing many inputs from
# fresh secrets pays that on every input. These call the library directly: RFC6979 nonces and
# low S as coincurve's signatures, BIP340 with random aux data, a third of the work.

_CTX = _GLOBAL_CONTEXT.ctx


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """DER ECDSA signature (low S, RFC6979) of a 32-byte digest, ground to a low R as Core's
    wallet signs (CKey::Sign with grinding): the plain RFC6979 signature when the first byte of
    its 32-byte R is under 0x80, else the first of the signatures made with extra entropy
    1, 2, 3, ... (a 32-byte buffer holding the counter as a little-endian uint32) whose R is.
    So R never needs DER's 0x00 pad: at most 70 bytes, 71 with the sighash byte, which is
    what the wallet's size estimates count. Byte-identical to Core's for the same key and
    digest; half the signatures take more than one try, two tries on average."""
    sig = _ffi.new("secp256k1_ecdsa_signature *")
    if not _lib.secp256k1_ecdsa_sign(_CTX, sig, digest, secret, _ffi.NULL, _ffi.NULL):
        raise InvalidKeyError("ECDSA signing failed (invalid secret)")
    compact = _ffi.new("unsigned char[64]")
    _lib.secp256k1_ecdsa_signature_serialize_compact(_CTX, compact, sig)
    counter = 0
    while compact[0] >= 0x80:
        counter += 1
        extra = counter.to_bytes(4, "little") + bytes(28)
        _lib.secp256k1_ecdsa_sign(_CTX, sig, digest, secret, _ffi.NULL, extra)
        _lib.secp256k1_ecdsa_signature_serialize_compact(_CTX, compact, sig)
    out = _ffi.new("unsigned char[72]")
    size = _ffi.new("size_t *", 72)
    _lib.secp256k1_ecdsa_signature_serialize_der(_CTX, out, size, sig)
    return bytes(_ffi.buffer(out, size[0]))


# The largest ECDSA signature, sighash byte included, that size estimates count (Core's two
# dummy signature creators): 71 bytes for one of this wallet's (a 32-byte low R and a 32-byte
# low S, as sign_digest makes), 72 where the signer may not grind R (Core: an external
# input's final size, a wallet whose signer is external), whose R may need DER's 0x00 pad.
ECDSA_SIG_SIZE = 71
ECDSA_MAX_SIG_SIZE = 72


def dummy_ecdsa_signature(max_sig: bool = False) -> bytes:
    """A placeholder signature of that size, DER-shaped (R of 32 or 33 bytes, S of 32, each
    0x01 then zeros) with SIGHASH_ALL, for dummy-signed size estimates."""
    r = b"\x01" + bytes(32 if max_sig else 31)
    s = b"\x01" + bytes(31)
    body = b"\x02" + bytes((len(r),)) + r + b"\x02" + bytes((len(s),)) + s
    return b"\x30" + bytes((len(body),)) + body + b"\x01"


def sign_taproot_key_path(secret: bytes, digest: bytes, merkle_root: bytes | None = None,
                          aux_rand: bytes | None = None) -> bytes:
    """64-byte BIP340 signature by the BIP341-tweaked key of `secret` (a key-path spend of the
    output made from its x-only public key and merkle_root)."""
    keypair = _ffi.new("secp256k1_keypair *")
    if not _lib.secp256k1_keypair_create(_CTX, keypair, secret):
        raise InvalidKeyError("invalid secret")
    xpub = _ffi.new("secp256k1_xonly_pubkey *")
    _lib.secp256k1_keypair_xonly_pub(_CTX, xpub, _ffi.NULL, keypair)
    ser = _ffi.new("unsigned char[32]")
    _lib.secp256k1_xonly_pubkey_serialize(_CTX, ser, xpub)
    tweak = taptweak_hash(bytes(_ffi.buffer(ser, 32)), merkle_root)
    if not _lib.secp256k1_keypair_xonly_tweak_add(_CTX, keypair, tweak):
        raise InvalidKeyError("taproot tweak out of range")
    sig = _ffi.new("unsigned char[64]")
    aux = aux_rand if aux_rand is not None else os.urandom(32)
    if not _lib.secp256k1_schnorrsig_sign32(_CTX, sig, digest, keypair, aux):
        raise InvalidKeyError("Schnorr signing failed")
    return bytes(_ffi.buffer(sig, 64))

