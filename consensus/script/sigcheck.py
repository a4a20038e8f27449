"""Signature and public-key checks on libsecp256k1 (through coincurve's cffi bindings).

ECDSA verification follows Core's CPubKey::Verify: the signature is parsed with a lax DER
parser (any BER-ish encoding that Core accepted before BIP66), normalised to low S, then
verified. Encoding rules (strict DER, low S, defined hash type, key formats) are separate
functions, applied by the interpreter only under the flags that ask for them.

A bounded SignatureCache remembers successful verifications, so a transaction checked when it
entered the mempool is not checked again when its block arrives.
"""

from __future__ import annotations

import hashlib
import os
import threading

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

_CTX = GLOBAL_CONTEXT.ctx
_new = ffi.new
_ec_pubkey_parse = lib.secp256k1_ec_pubkey_parse
_sig_parse_compact = lib.secp256k1_ecdsa_signature_parse_compact
_sig_normalize = lib.secp256k1_ecdsa_signature_normalize
_ecdsa_verify = lib.secp256k1_ecdsa_verify
_xonly_parse = lib.secp256k1_xonly_pubkey_parse
_schnorr_verify = lib.secp256k1_schnorrsig_verify
_tweak_add_check = lib.secp256k1_xonly_pubkey_tweak_add_check

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER >> 1
_ZERO32 = b"\x00" * 32


# -- encoding rules (used by the interpreter under STRICTENC / DERSIG / LOW_S) -------------


def is_valid_signature_encoding(sig: bytes) -> bool:
    """BIP66 strict DER, with the trailing hash-type byte (Core's IsValidSignatureEncoding)."""
    n = len(sig)
    if n < 9 or n > 73:
        return False
    if sig[0] != 0x30 or sig[1] != n - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= n:
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != n:
        return False
    if sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    if len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80:
        return False
    return True


def is_low_s(der_sig: bytes) -> bool:
    """Core's CPubKey::CheckLowS on a DER signature without its hash-type byte.

    Lax-parsed; an r or s that overflows the group order turns the signature into (0, 0),
    which counts as low (it can never verify anyway).
    """
    rs = parse_der_lax(der_sig)
    if rs is None:
        return False
    s = int.from_bytes(rs[32:], "big")
    return s <= _HALF_ORDER


def is_defined_hashtype_signature(sig: bytes) -> bool:
    if not sig:
        return False
    ht = sig[-1] & 0x7F  # ignore ANYONECANPAY
    return 1 <= ht <= 3


def is_compressed_or_uncompressed_pubkey(pub: bytes) -> bool:
    n = len(pub)
    if n < 33:
        return False
    if pub[0] == 0x04:
        return n == 65
    if pub[0] == 0x02 or pub[0] == 0x03:
        return n == 33
    return False


def is_compressed_pubkey(pub: bytes) -> bool:
    return len(pub) == 33 and (pub[0] == 0x02 or pub[0] == 0x03)


def pubkey_valid_size(pub: bytes) -> bool:
    """Core's CPubKey::ValidSize / IsValid: the first byte's implied length matches."""
    if not pub:
        return False
    h = pub[0]
    if h == 2 or h == 3:
        return len(pub) == 33
    if h == 4 or h == 6 or h == 7:
        return len(pub) == 65
    return False


# -- lax DER -----------------------------------------------------------------------------


def _read_len(sig: bytes, pos: int, n: int) -> tuple[int, int] | None:
    """One lax DER integer length at pos -> (length, next pos), or None."""
    if pos == n:
        return None
    lenbyte = sig[pos]
    pos += 1
    if not lenbyte & 0x80:
        return lenbyte, pos
    lenbyte -= 0x80
    if lenbyte > n - pos:
        return None
    while lenbyte > 0 and sig[pos] == 0:
        pos += 1
        lenbyte -= 1
    if lenbyte >= 4:
        return None
    value = 0
    while lenbyte > 0:
        value = (value << 8) | sig[pos]
        pos += 1
        lenbyte -= 1
    return value, pos


_ORDER_BYTES = SECP256K1_ORDER.to_bytes(32, "big")
_ZERO64 = _ZERO32 + _ZERO32
# One-entry memo: the encoding checks and the verification parse the same signature.
_memo: tuple[bytes, bytes | None] = (b"", None)


def _compact(rb: bytes, sb: bytes) -> bytes:
    """r and s (big-endian, leading zeros allowed) -> 64-byte compact form, or zeros when
    either does not fit below the group order (Core's "parsed but invalid" signature)."""
    rb = rb.lstrip(b"\x00")
    sb = sb.lstrip(b"\x00")
    if len(rb) > 32 or len(sb) > 32:
        return _ZERO64
    if (len(rb) == 32 and rb >= _ORDER_BYTES) or (len(sb) == 32 and sb >= _ORDER_BYTES):
        return _ZERO64
    return rb.rjust(32, b"\x00") + sb.rjust(32, b"\x00")


def parse_der_lax(sig: bytes) -> bytes | None:
    """Core's ecdsa_signature_parse_der_lax: DER-ish bytes -> 64-byte compact r || s.

    None where Core's parser fails (the signature is then simply invalid). Values that do
    not fit below the group order give 64 zero bytes, a parsed signature that never verifies.
    """
    global _memo
    key, val = _memo
    if sig == key:
        return val
    val = _parse_der_lax(sig)
    _memo = (sig, val)
    return val


def _parse_der_lax(sig: bytes) -> bytes | None:
    n = len(sig)
    # Common case: short-form lengths that add up exactly (every DER signature). The lax
    # parser reads such input the same way, so take the values directly.
    if n >= 8 and sig[0] == 0x30 and sig[1] < 0x80 and sig[2] == 0x02:
        lr = sig[3]
        if lr < 0x80 and 6 + lr <= n and sig[4 + lr] == 0x02:
            ls = sig[5 + lr]
            if ls < 0x80 and 6 + lr + ls == n:
                return _compact(sig[4 : 4 + lr], sig[6 + lr :])
    if n == 0 or sig[0] != 0x30:
        return None
    pos = 1
    # Sequence length: read and skipped, never checked (that is what makes this lax).
    if pos == n:
        return None
    lenbyte = sig[pos]
    pos += 1
    if lenbyte & 0x80:
        lenbyte -= 0x80
        if lenbyte > n - pos:
            return None
        pos += lenbyte
    # R
    if pos >= n or sig[pos] != 0x02:
        return None
    r = _read_len(sig, pos + 1, n)
    if r is None:
        return None
    rlen, pos = r
    if rlen > n - pos:
        return None
    rpos = pos
    pos += rlen
    # S
    if pos >= n or sig[pos] != 0x02:
        return None
    s = _read_len(sig, pos + 1, n)
    if s is None:
        return None
    slen, pos = s
    if slen > n - pos:
        return None
    return _compact(sig[rpos : rpos + rlen], sig[pos : pos + slen])


# -- verification --------------------------------------------------------------------------

def ecdsa_verify(pub: bytes, der_sig: bytes, msg32: bytes) -> bool:
    """Core's CPubKey::Verify: pub in any form libsecp256k1 parses (compressed, uncompressed,
    hybrid), der_sig without the hash-type byte, lax-parsed and normalised to low S."""
    if not pubkey_valid_size(pub):
        return False
    compact = parse_der_lax(der_sig)
    if compact is None:
        return False
    key = _new("secp256k1_pubkey *")
    if not _ec_pubkey_parse(_CTX, key, pub, len(pub)):
        return False
    sig = _new("secp256k1_ecdsa_signature *")
    if not _sig_parse_compact(_CTX, sig, compact):
        return False
    _sig_normalize(_CTX, sig, sig)
    return bool(_ecdsa_verify(_CTX, sig, msg32, key))


def schnorr_verify(xonly32: bytes, sig64: bytes, msg32: bytes) -> bool:
    """BIP340 verification (Core's XOnlyPubKey::VerifySchnorr)."""
    key = _new("secp256k1_xonly_pubkey *")
    if not _xonly_parse(_CTX, key, xonly32):
        return False
    return bool(_schnorr_verify(_CTX, sig64, msg32, 32, key))


def check_tap_tweak(output32: bytes, internal32: bytes, tweak32: bytes, parity: int) -> bool:
    """Whether output == internal + tweak*G with the given Y parity (XOnlyPubKey::CheckTapTweak)."""
    internal = _new("secp256k1_xonly_pubkey *")
    if not _xonly_parse(_CTX, internal, internal32):
        return False
    return bool(_tweak_add_check(_CTX, output32, parity, internal, tweak32))


# -- signature cache -------------------------------------------------------------------------


class SignatureCache:
    """Bounded set of (sighash, pubkey, signature) triples that verified.

    Entries are salted SHA-256 digests, so memory per entry is fixed and nobody can craft
    colliding entries. Only successes are stored. When full, the oldest entries go first.
    Safe to share between threads.
    """

    __slots__ = ("max_entries", "_salt", "_set", "_lock", "hits", "misses")

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._salt = os.urandom(32)
        self._set: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, kind: bytes, sighash: bytes, pub: bytes, sig: bytes) -> bytes:
        return hashlib.sha256(b"".join((self._salt, kind, sighash, pub, sig))).digest()

    def contains(self, key: bytes) -> bool:
        if key in self._set:
            self.hits += 1
            return True
        self.misses += 1
        return False

    def add(self, key: bytes) -> None:
        s = self._set
        if len(s) >= self.max_entries:
            with self._lock:
                # Drop the oldest eighth in one go so the cost is amortised.
                drop = max(1, self.max_entries // 8)
                for k in list(s)[:drop]:
                    s.pop(k, None)
        s[key] = None

    def resize(self, max_entries: int) -> None:
        """A new bound; the oldest entries beyond it go now."""
        with self._lock:
            self.max_entries = max(1, max_entries)
            s = self._set
            for k in list(s)[: max(0, len(s) - self.max_entries)]:
                s.pop(k, None)

    def clear(self) -> None:
        self._set.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._set)


# The process-wide default cache (each worker process has its own).
SIGNATURE_CACHE = SignatureCache()
