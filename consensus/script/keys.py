"""Key and signing helpers for wallets and tests: ECDSA (DER, low S), BIP340 Schnorr, and the
BIP341 key tweak for taproot outputs. Private keys are 32-byte big-endian secrets."""

from __future__ import annotations

import os

from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from consensus.hashes import hash160
from consensus.script.script import push_data
from consensus.script.sigcheck import SECP256K1_ORDER
from consensus.script.sighash import (
    PrecomputedTxData,
    legacy_sighash,
    segwit_v0_sighash,
    taproot_sighash,
)
from consensus.script.standard import p2pkh_script
from consensus.script.taproot import taptweak_hash
from consensus.tx import Transaction, TxOut

_CTX = GLOBAL_CONTEXT.ctx

# BIP341's provably unspendable internal key ("NUMS" point H).
NUMS_H = bytes.fromhex("50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0")


def pubkey(seckey: bytes, compressed: bool = True) -> bytes:
    """The public key of a secret, SEC1-encoded."""
    return PrivateKey(seckey).public_key.format(compressed=compressed)


def xonly_pubkey(seckey: bytes) -> bytes:
    """The 32-byte x-only public key (BIP340) of a secret."""
    return PrivateKey(seckey).public_key.format(compressed=True)[1:]


def sign_ecdsa(seckey: bytes, sighash: bytes) -> bytes:
    """DER signature of a 32-byte digest, low S (RFC6979 nonce). Append the hash type byte
    yourself before putting it in a script."""
    return PrivateKey(seckey).sign(sighash, hasher=None)


def sign_schnorr(seckey: bytes, msg32: bytes, aux_rand: bytes | None = None) -> bytes:
    """64-byte BIP340 signature. For a taproot key-path spend, sign with the tweaked secret
    (taproot_tweak_seckey)."""
    if aux_rand is None:
        aux_rand = os.urandom(32)
    return PrivateKey(seckey).sign_schnorr(msg32, aux_rand)


def taproot_tweak_pubkey(
    internal_key: bytes, merkle_root: bytes | None = None
) -> tuple[bytes, int]:
    """BIP341 taproot_tweak_pubkey: (output key x-only, parity of its Y) for an internal x-only
    key and an optional script tree root. The scriptPubKey is OP_1 <output key>; the parity
    goes into the low bit of a control block's first byte."""
    tweak = taptweak_hash(internal_key, merkle_root)
    if int.from_bytes(tweak, "big") >= SECP256K1_ORDER:
        raise ValueError("tweak out of range")
    internal = ffi.new("secp256k1_xonly_pubkey *")
    if not lib.secp256k1_xonly_pubkey_parse(_CTX, internal, internal_key):
        raise ValueError("invalid internal key")
    full = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_xonly_pubkey_tweak_add(_CTX, full, internal, tweak):
        raise ValueError("tweak gives the point at infinity")
    out = ffi.new("secp256k1_xonly_pubkey *")
    parity = ffi.new("int *")
    lib.secp256k1_xonly_pubkey_from_pubkey(_CTX, out, parity, full)
    ser = ffi.new("unsigned char[32]")
    lib.secp256k1_xonly_pubkey_serialize(_CTX, ser, out)
    return bytes(ffi.buffer(ser, 32)), parity[0]


def taproot_tweak_seckey(seckey: bytes, merkle_root: bytes | None = None) -> bytes:
    """BIP341 taproot_tweak_seckey: the secret that signs for the tweaked output key."""
    d = int.from_bytes(seckey, "big")
    pub = PublicKey.from_secret(seckey).format(compressed=True)
    if pub[0] == 0x03:  # BIP340 keys have even Y: negate the secret for an odd one
        d = SECP256K1_ORDER - d
    t = int.from_bytes(taptweak_hash(pub[1:], merkle_root), "big")
    if t >= SECP256K1_ORDER:
        raise ValueError("tweak out of range")
    return ((d + t) % SECP256K1_ORDER).to_bytes(32, "big")


def control_block(
    internal_key: bytes, parity: int, path: list[bytes] | tuple[bytes, ...] = (),
    leaf_version: int = 0xC0,
) -> bytes:
    """A script-path control block: leaf version | output parity, internal key, merkle path."""
    return bytes((leaf_version | parity,)) + internal_key + b"".join(path)


# -- signing whole inputs ------------------------------------------------------------------


def sign_p2pkh_input(
    tx: Transaction, index: int, seckey: bytes, hash_type: int = 1, compressed: bool = True,
    txdata: PrecomputedTxData | None = None,
) -> None:
    """Fill input `index`'s scriptSig with `<sig> <pubkey>` for a P2PKH output of this key."""
    pub = pubkey(seckey, compressed)
    h = legacy_sighash(tx, index, p2pkh_script(hash160(pub)), hash_type, txdata)
    sig = sign_ecdsa(seckey, h) + bytes((hash_type,))
    tx.vin[index].script_sig = push_data(sig) + push_data(pub)
    tx.rehash()


def sign_p2wpkh_input(
    tx: Transaction, index: int, seckey: bytes, amount: int, hash_type: int = 1,
    txdata: PrecomputedTxData | None = None,
) -> None:
    """Fill input `index`'s witness with [sig, pubkey] for a P2WPKH output of this key."""
    pub = pubkey(seckey)
    h = segwit_v0_sighash(tx, index, p2pkh_script(hash160(pub)), amount, hash_type, txdata)
    tx.vin[index].witness = [sign_ecdsa(seckey, h) + bytes((hash_type,)), pub]
    tx.rehash()


def sign_p2tr_key_input(
    tx: Transaction, index: int, seckey: bytes, spent_outputs: list[TxOut], hash_type: int = 0,
    merkle_root: bytes | None = None, annex: bytes | None = None,
) -> None:
    """Fill input `index`'s witness with a BIP341 key-path signature for the output made from
    this internal key (and script tree root, if any)."""
    h = taproot_sighash(tx, index, spent_outputs, hash_type, annex=annex)
    sig = sign_schnorr(taproot_tweak_seckey(seckey, merkle_root), h)
    if hash_type:
        sig += bytes((hash_type,))
    tx.vin[index].witness = [sig] if annex is None else [sig, annex]
    tx.rehash()
