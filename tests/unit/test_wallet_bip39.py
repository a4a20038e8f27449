"""BIP39 (on the `mnemonic` package): the Trezor vectors of tests/data/bip39-english.json, the
word list it ships, and our errors."""

import hashlib

import pytest

from consensus.params import MAIN
from tests.conftest import load_json
from wallet.bip32 import ExtKey
from wallet.bip39 import (
    WORDS,
    MnemonicError,
    entropy_to_mnemonic,
    generate_mnemonic,
    is_valid_mnemonic,
    mnemonic_to_entropy,
    mnemonic_to_seed,
    normalize_mnemonic,
)

VECTORS = load_json("bip39-english.json")


@pytest.mark.parametrize("entropy,mnemonic,passphrase,seed,xprv", VECTORS)
def test_vectors(entropy, mnemonic, passphrase, seed, xprv):
    assert entropy_to_mnemonic(bytes.fromhex(entropy)) == mnemonic
    assert mnemonic_to_entropy(mnemonic).hex() == entropy
    s = mnemonic_to_seed(mnemonic, passphrase)
    assert s.hex() == seed
    assert ExtKey.from_seed(s).serialize(MAIN) == xprv


def test_vector_count():
    assert len(VECTORS) == 24


def test_word_list_is_the_standard_one():
    assert len(WORDS) == 2048 and len(set(WORDS)) == 2048
    assert list(WORDS) == sorted(WORDS)
    # BIP39: the first four letters identify a word.
    assert len({w[:4] for w in WORDS}) == 2048
    digest = hashlib.sha256(("\n".join(WORDS) + "\n").encode()).hexdigest()
    assert digest == "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"


def test_errors():
    good = VECTORS[0][1]
    with pytest.raises(MnemonicError, match="12, 15, 18, 21 or 24 words"):
        mnemonic_to_entropy(" ".join(good.split()[:11]))
    with pytest.raises(MnemonicError, match=r"word 3 \('bitcoinz'\)"):
        words = good.split()
        words[2] = "bitcoinz"
        mnemonic_to_entropy(" ".join(words))
    with pytest.raises(MnemonicError, match="checksum"):
        mnemonic_to_entropy(" ".join(["abandon"] * 12))
    with pytest.raises(MnemonicError):
        entropy_to_mnemonic(b"\x00" * 15)
    assert not is_valid_mnemonic("abandon " * 11 + "abandon")
    assert is_valid_mnemonic(good)


def test_bad_checksum_phrase_in_bip32_data_is_rejected():
    # tests/data/bip32.json carries a 12-word phrase whose checksum word does not match its
    # entropy (the `mnemonic` reference package rejects it too).
    assert not is_valid_mnemonic(load_json("bip32.json")["phrase"])


def test_generate():
    for bits, words in ((128, 12), (256, 24)):
        m = generate_mnemonic(bits)
        assert len(m.split()) == words and is_valid_mnemonic(m)
    with pytest.raises(MnemonicError):
        generate_mnemonic(100)


def test_seed_normalizes_unicode():
    # NFKD: a composed and a decomposed passphrase give the same seed.
    m = VECTORS[0][1]
    assert mnemonic_to_seed(m, "caf\u00e9") == mnemonic_to_seed(m, "cafe\u0301")


def test_normalize_mnemonic():
    m = VECTORS[0][1]
    assert normalize_mnemonic("  " + m.upper().replace(" ", "   ") + "\n") == m
    with pytest.raises(MnemonicError, match="checksum"):
        normalize_mnemonic(" ".join(["abandon"] * 12))
