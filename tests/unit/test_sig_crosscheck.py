"""Independent cross-checks of the signature path.

ECDSA: signatures made by the pure-Python `ecdsa` library (its own arithmetic, nothing shared
with libsecp256k1) must verify through our coincurve path, low or high S, and tampered ones
must not. Schnorr: a straight transcription of BIP340's reference signing algorithm in Python
signs; our libsecp256k1 path verifies, including taproot-tweaked keys.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigdecode_der, sigencode_der, sigencode_der_canonize

from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.keys import taproot_tweak_pubkey
from consensus.script.sigcheck import (
    SECP256K1_ORDER,
    ecdsa_verify,
    is_low_s,
    is_valid_signature_encoding,
    schnorr_verify,
)
from consensus.script.sighash import legacy_sighash, segwit_v0_sighash, taproot_sighash
from consensus.script.standard import p2pkh_script, p2tr_script, p2wpkh_script
from consensus.script.taproot import taptweak_hash
from consensus.script.verify import verify_input
from consensus.tx import OutPoint, Transaction, TxIn, TxOut

N = SECP256K1_ORDER


def _ecdsa_key(rng: random.Random) -> tuple[SigningKey, bytes]:
    sk = SigningKey.from_secret_exponent(rng.randrange(1, N), curve=SECP256k1)
    return sk, sk.get_verifying_key().to_string("compressed")


def test_ecdsa_library_signatures_verify() -> None:
    rng = random.Random(10)
    high_s_seen = 0
    for _ in range(40):
        sk, pub = _ecdsa_key(rng)
        digest = rng.randbytes(32)
        k = rng.randrange(1, N)
        low = sk.sign_digest(digest, sigencode=sigencode_der_canonize, k=k)
        raw = sk.sign_digest(digest, sigencode=sigencode_der, k=k)
        assert is_valid_signature_encoding(low + b"\x01") and is_low_s(low)
        assert ecdsa_verify(pub, low, digest)
        # The un-normalised form verifies too: Core normalises S before verifying.
        assert ecdsa_verify(pub, raw, digest)
        if not is_low_s(raw):
            high_s_seen += 1
            assert sigdecode_der(raw, N)[1] > N // 2
        # Uncompressed form of the same key.
        upub = sk.get_verifying_key().to_string("uncompressed")
        assert ecdsa_verify(upub, low, digest)
        # Tampering: another digest, a flipped bit in r, another key.
        assert not ecdsa_verify(pub, low, bytes(a ^ b for a, b in zip(digest, b"\x01" + bytes(31),
                                                                     strict=True)))
        bad = bytearray(low)
        bad[6] ^= 0x01
        assert not ecdsa_verify(pub, bytes(bad), digest)
        assert not ecdsa_verify(_ecdsa_key(rng)[1], low, digest)
    assert high_s_seen > 5  # both halves of S were exercised


def test_ecdsa_library_signs_a_p2wpkh_and_p2pkh_spend() -> None:
    rng = random.Random(11)
    sk, pub = _ecdsa_key(rng)
    amount = 123_456
    for spk in (p2wpkh_script(hash160(pub)), p2pkh_script(hash160(pub))):
        tx = Transaction(2, [TxIn(OutPoint(rng.randbytes(32), 1))], [TxOut(1000, b"\x51")], 0)
        spent = [TxOut(amount, spk)]
        if spk[0] == 0:
            h = segwit_v0_sighash(tx, 0, p2pkh_script(hash160(pub)), amount, 1)
        else:
            h = legacy_sighash(tx, 0, spk, 1)
        sig = sk.sign_digest(h, sigencode=sigencode_der_canonize) + b"\x01"
        if spk[0] == 0:
            tx.vin[0].witness = [sig, pub]
        else:
            tx.vin[0].script_sig = bytes((len(sig),)) + sig + bytes((len(pub),)) + pub
        verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=None)

        # A high-S encoding of the same signature: valid by consensus, not by policy.
        r, s = sigdecode_der(sig[:-1], N)
        high = sigencode_der(r, N - s, N) + b"\x01"
        if spk[0] == 0:
            tx.vin[0].witness = [high, pub]
        else:
            tx.vin[0].script_sig = bytes((len(high),)) + high + bytes((len(pub),)) + pub
        tx.rehash()
        verify_input(tx, 0, spent, F.MANDATORY_SCRIPT_VERIFY_FLAGS, sigcache=None)
        with pytest.raises(ScriptError) as e:
            verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=None)
        assert e.value.code == "SIG_HIGH_S"


# -- BIP340 reference signing, transcribed ---------------------------------------------------

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)


def _point_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and p1[1] != p2[1]:
        return None
    if p1 == p2:
        lam = (3 * p1[0] * p1[0] * pow(2 * p1[1], P - 2, P)) % P
    else:
        lam = ((p2[1] - p1[1]) * pow(p2[0] - p1[0], P - 2, P)) % P
    x3 = (lam * lam - p1[0] - p2[0]) % P
    return (x3, (lam * (p1[0] - x3) - p1[1]) % P)


def _point_mul(p, n):
    r = None
    for i in range(256):
        if (n >> i) & 1:
            r = _point_add(r, p)
        p = _point_add(p, p)
    return r


def _tagged(tag: str, msg: bytes) -> bytes:
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + msg).digest()


def _bip340_sign(seckey: int, msg: bytes, aux: bytes) -> tuple[bytes, bytes]:
    """BIP340's reference `schnorr_sign` -> (signature, x-only public key)."""
    pt = _point_mul(G, seckey)
    d = seckey if pt[1] % 2 == 0 else N - seckey
    t = d ^ int.from_bytes(_tagged("BIP0340/aux", aux), "big")
    px = pt[0].to_bytes(32, "big")
    k0 = int.from_bytes(_tagged("BIP0340/nonce", t.to_bytes(32, "big") + px + msg), "big") % N
    r = _point_mul(G, k0)
    k = k0 if r[1] % 2 == 0 else N - k0
    rx = r[0].to_bytes(32, "big")
    e = int.from_bytes(_tagged("BIP0340/challenge", rx + px + msg), "big") % N
    return rx + ((k + e * d) % N).to_bytes(32, "big"), px


def test_reference_schnorr_signatures_verify() -> None:
    rng = random.Random(12)
    for _ in range(8):
        d = rng.randrange(1, N)
        msg = rng.randbytes(32)
        sig, px = _bip340_sign(d, msg, rng.randbytes(32))
        assert schnorr_verify(px, sig, msg)
        assert not schnorr_verify(px, sig, msg[::-1])
        assert not schnorr_verify(px, sig[:63] + bytes((sig[63] ^ 1,)), msg)


def test_reference_schnorr_signs_a_taproot_key_path_spend() -> None:
    rng = random.Random(13)
    d = rng.randrange(1, N)
    pt = _point_mul(G, d)
    internal = pt[0].to_bytes(32, "big")
    # Tweak the secret by hand (BIP341), independently of keys.taproot_tweak_seckey.
    d_even = d if pt[1] % 2 == 0 else N - d
    tweaked = (d_even + int.from_bytes(taptweak_hash(internal), "big")) % N
    q = _point_mul(G, tweaked)
    output_key, parity = taproot_tweak_pubkey(internal)
    assert output_key == q[0].to_bytes(32, "big") and parity == q[1] % 2

    spent = [TxOut(50_000, p2tr_script(output_key)), TxOut(7, b"\x51")]
    tx = Transaction(
        2,
        [TxIn(OutPoint(rng.randbytes(32), 0)), TxIn(OutPoint(rng.randbytes(32), 3))],
        [TxOut(40_000, b"\x00\x14" + rng.randbytes(20))],
        0,
    )
    sig, _ = _bip340_sign(tweaked, taproot_sighash(tx, 0, spent), rng.randbytes(32))
    tx.vin[0].witness = [sig]
    verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=None)
    tx.vin[0].witness = [sig[:-1] + bytes((sig[-1] ^ 0x80,))]
    with pytest.raises(ScriptError) as e:
        verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=None)
    assert e.value.code == "SCHNORR_SIG"
