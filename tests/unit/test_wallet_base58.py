"""Base58 and Base58Check against Bitcoin Core's base58_encode_decode.json."""

import pytest

from consensus.hashes import sha256d
from tests.conftest import load_json
from wallet.base58 import (
    Base58ChecksumError,
    Base58Error,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
)

VECTORS = load_json("base58_encode_decode.json")


@pytest.mark.parametrize("hexdata,encoded", VECTORS)
def test_core_vectors(hexdata, encoded):
    data = bytes.fromhex(hexdata)
    assert b58encode(data) == encoded
    assert b58decode(encoded) == data


def test_vector_count():
    assert len(VECTORS) == 21


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "3SEo3LWLoPntC\x00", "a b"])
def test_invalid_characters(bad):
    with pytest.raises(Base58Error, match="invalid Base58 character"):
        b58decode(bad)


def test_surrounding_whitespace_is_ignored_like_core():
    assert b58decode("  3SEo3LWLoPntC \n") == bytes.fromhex("bf4f89001e670274dd")


def test_max_len():
    with pytest.raises(Base58Error, match="more than 3"):
        b58decode("3SEo3LWLoPntC", max_len=3)


def test_check_roundtrip_and_checksum_error():
    payload = bytes.fromhex("00eb15231dfceb60925886b67d065299925915aeb1")
    s = b58check_encode(payload)
    assert b58decode(s) == payload + sha256d(payload)[:4]
    assert b58check_decode(s) == payload
    # Change one character: the checksum must catch it.
    i = 10
    other = "2" if s[i] != "2" else "3"
    with pytest.raises(Base58ChecksumError):
        b58check_decode(s[:i] + other + s[i + 1 :])
    with pytest.raises(Base58ChecksumError):
        b58check_decode("1")
    with pytest.raises(Base58Error):
        b58check_decode(s, max_len=20)
    assert isinstance(Base58ChecksumError("x"), ValueError)
