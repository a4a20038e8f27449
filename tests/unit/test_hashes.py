import hashlib

import pytest

from consensus import _ripemd160
from consensus.hashes import (
    hash160,
    hash_to_hex,
    hex_to_hash,
    ripemd160,
    sha256,
    sha256d,
    tagged_hash,
    tagged_hasher,
)


def test_sha256d_known():
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
    assert sha256(b"abc").hex().startswith("ba7816bf")


def test_hash160_known():
    # hash160 of the compressed generator point (private key 1).
    g = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert hash160(g).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"


def test_ripemd160_fallback_matches_reference_vectors():
    # Vectors from the RIPEMD-160 authors' page.
    vectors = {
        b"": "9c1185a5c5e9fc54612808977ee8f548b2258d31",
        b"abc": "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc",
        b"message digest": "5d0689ef49d2fae572b881b123a85ffa21595f36",
        b"a" * 1000: "aa69deee9a8922e92f8105e007f76110f381e9cf",
    }
    for msg, digest in vectors.items():
        assert _ripemd160.ripemd160(msg).hex() == digest
        assert ripemd160(msg).hex() == digest


def test_tagged_hash():
    t = hashlib.sha256(b"TapLeaf").digest()
    assert tagged_hash("TapLeaf", b"xyz") == hashlib.sha256(t + t + b"xyz").digest()
    h = tagged_hasher("TapLeaf").copy()
    h.update(b"xyz")
    assert h.digest() == tagged_hash("TapLeaf", b"xyz")


def test_uint256_hex_roundtrip():
    display = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    internal = hex_to_hash(display)
    assert internal[0] == 0x6F and internal[-1] == 0
    assert hash_to_hex(internal) == display
    with pytest.raises(ValueError):
        hex_to_hash("00")
    with pytest.raises(ValueError):
        hex_to_hash("zz" * 32)
