"""BIP39 mnemonics: entropy <-> English words, and mnemonic + passphrase -> 64-byte seed."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata

from wallet._bip39_english import WORDS

_INDEX = {w: i for i, w in enumerate(WORDS)}
PBKDF2_ROUNDS = 2048


class MnemonicError(ValueError):
    """A mnemonic with an unknown word, a wrong word count or a bad checksum."""


def entropy_to_mnemonic(entropy: bytes) -> str:
    """16, 20, 24, 28 or 32 bytes of entropy -> 12..24 words (checksum: first ENT/32 bits of
    sha256(entropy))."""
    n = len(entropy)
    if n not in (16, 20, 24, 28, 32):
        raise MnemonicError(f"entropy must be 16, 20, 24, 28 or 32 bytes, not {n}")
    cs_bits = n * 8 // 32
    checksum = hashlib.sha256(entropy).digest()[0] >> (8 - cs_bits)
    bits = (int.from_bytes(entropy, "big") << cs_bits) | checksum
    count = (n * 8 + cs_bits) // 11
    return " ".join(WORDS[(bits >> (11 * (count - 1 - i))) & 0x7FF] for i in range(count))


def mnemonic_to_entropy(mnemonic: str) -> bytes:
    """Inverse of entropy_to_mnemonic; raises MnemonicError naming what is wrong."""
    words = unicodedata.normalize("NFKD", mnemonic).split()
    if len(words) not in (12, 15, 18, 21, 24):
        raise MnemonicError(f"mnemonic must have 12, 15, 18, 21 or 24 words, not {len(words)}")
    bits = 0
    for pos, w in enumerate(words):
        i = _INDEX.get(w)
        if i is None:
            raise MnemonicError(f"word {pos + 1} ({w!r}) is not in the BIP39 English list")
        bits = (bits << 11) | i
    cs_bits = len(words) * 11 // 33
    entropy = (bits >> cs_bits).to_bytes(cs_bits * 4, "big")
    want = hashlib.sha256(entropy).digest()[0] >> (8 - cs_bits)
    if bits & ((1 << cs_bits) - 1) != want:
        raise MnemonicError("invalid mnemonic checksum")
    return entropy


def is_valid_mnemonic(mnemonic: str) -> bool:
    try:
        mnemonic_to_entropy(mnemonic)
    except MnemonicError:
        return False
    return True


def generate_mnemonic(strength_bits: int = 128) -> str:
    """A fresh mnemonic from the OS's CSPRNG (128 bits -> 12 words, 256 -> 24)."""
    if strength_bits not in (128, 160, 192, 224, 256):
        raise MnemonicError("strength must be 128, 160, 192, 224 or 256 bits")
    return entropy_to_mnemonic(secrets.token_bytes(strength_bits // 8))


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic" + NFKD(passphrase), 2048) -> 64 bytes.

    The words are not checked against the list, as BIP39 specifies; call mnemonic_to_entropy
    first to validate.
    """
    m = unicodedata.normalize("NFKD", mnemonic)
    salt = "mnemonic" + unicodedata.normalize("NFKD", passphrase)
    return hashlib.pbkdf2_hmac("sha512", m.encode(), salt.encode(), PBKDF2_ROUNDS)
