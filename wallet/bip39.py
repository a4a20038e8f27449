"""BIP39 mnemonics on the `mnemonic` package (trezor/python-mnemonic, the reference
implementation): entropy <-> English words, and mnemonic + passphrase -> 64-byte seed.

This module only adds errors that say what is wrong (which word, the count, the checksum),
checked before the package is asked, so that bad input never reaches it as a bare ValueError.
"""

from __future__ import annotations

import secrets
import unicodedata

from mnemonic import Mnemonic

_ENGLISH = Mnemonic("english")
WORDS: tuple[str, ...] = tuple(_ENGLISH.wordlist)
_INDEX = {w: i for i, w in enumerate(WORDS)}


class MnemonicError(ValueError):
    """A mnemonic with an unknown word, a wrong word count or a bad checksum."""


def entropy_to_mnemonic(entropy: bytes) -> str:
    """16, 20, 24, 28 or 32 bytes of entropy -> 12..24 words."""
    if len(entropy) not in (16, 20, 24, 28, 32):
        raise MnemonicError(f"entropy must be 16, 20, 24, 28 or 32 bytes, not {len(entropy)}")
    return _ENGLISH.to_mnemonic(bytes(entropy))


def _words(mnemonic: str) -> list[str]:
    words = unicodedata.normalize("NFKD", mnemonic).split()
    if len(words) not in (12, 15, 18, 21, 24):
        raise MnemonicError(f"mnemonic must have 12, 15, 18, 21 or 24 words, not {len(words)}")
    for pos, w in enumerate(words):
        if w not in _INDEX:
            raise MnemonicError(f"word {pos + 1} ({w!r}) is not in the BIP39 English list")
    return words


def mnemonic_to_entropy(mnemonic: str) -> bytes:
    """Inverse of entropy_to_mnemonic; raises MnemonicError naming what is wrong."""
    words = _words(mnemonic)
    if not _ENGLISH.check(" ".join(words)):
        raise MnemonicError("invalid mnemonic checksum")
    return bytes(_ENGLISH.to_entropy(words))


def normalize_mnemonic(mnemonic: str) -> str:
    """The checked mnemonic as single-spaced lowercase words (what a wallet stores)."""
    mnemonic_to_entropy(mnemonic.lower())
    return " ".join(_words(mnemonic.lower()))


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
    return Mnemonic.to_seed(mnemonic, passphrase)
