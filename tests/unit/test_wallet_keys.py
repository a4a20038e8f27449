"""Key helpers and BIP341 Taproot construction (tree hashing, output key tweak)."""

import hashlib

import pytest
from coincurve import PrivateKey

from consensus.hashes import tagged_hash
from consensus.script.keys import taproot_tweak_seckey
from consensus.script.taproot import tapbranch_hash, tapleaf_hash
from wallet.keys import (
    InvalidKeyError,
    is_fully_valid_pubkey,
    is_valid_xonly,
    pubkey_from_secret,
    taproot_merkle_root,
    taproot_output_key,
    xonly,
)

SECRETS = [hashlib.sha256(bytes([i])).digest() for i in range(6)]


def test_tapleaf_hash_layout():
    script = bytes.fromhex("20" + "11" * 32 + "ac")
    assert tapleaf_hash(script) == tagged_hash("TapLeaf", b"\xc0" + bytes([len(script)]) + script)
    long_script = b"\x51" * 300  # compact size 0xfd 0x2c01
    assert tapleaf_hash(long_script) == tagged_hash(
        "TapLeaf", b"\xc0\xfd\x2c\x01" + long_script
    )


def test_branch_is_order_independent():
    a, b = b"\x01" * 32, b"\x02" * 32
    assert tapbranch_hash(a, b) == tapbranch_hash(b, a) == tagged_hash("TapBranch", a + b)


def test_merkle_root_shapes():
    h = [bytes([i]) * 32 for i in range(4)]
    assert taproot_merkle_root([]) is None
    assert taproot_merkle_root([(0, h[0])]) == h[0]
    # {A,{B,C}}
    assert taproot_merkle_root([(1, h[0]), (2, h[1]), (2, h[2])]) == tapbranch_hash(
        h[0], tapbranch_hash(h[1], h[2])
    )
    # {{A,B},{C,D}}
    assert taproot_merkle_root([(2, h[0]), (2, h[1]), (2, h[2]), (2, h[3])]) == tapbranch_hash(
        tapbranch_hash(h[0], h[1]), tapbranch_hash(h[2], h[3])
    )
    for bad in ([(1, h[0])], [(0, h[0]), (0, h[1])], [(1, h[0]), (2, h[1])]):
        with pytest.raises(ValueError):
            taproot_merkle_root(bad)


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("root", [None, b"\x07" * 32])
def test_output_key_matches_tweaked_private_key(secret, root):
    """Q computed on the public side (coincurve's x-only tweak) equals the public key of the
    tweaked private key computed with integers (negated first when P has odd y)."""
    internal = pubkey_from_secret(secret)[1:]
    q = taproot_output_key(internal, root)
    assert PrivateKey(taproot_tweak_seckey(secret, root)).public_key.format()[1:] == q


def test_key_checks():
    pk = pubkey_from_secret(SECRETS[0])
    assert is_fully_valid_pubkey(pk)
    assert is_fully_valid_pubkey(pubkey_from_secret(SECRETS[0], compressed=False))
    assert not is_fully_valid_pubkey(b"\x02" + b"\xff" * 32)  # x >= p
    assert not is_fully_valid_pubkey(b"\x06" + pubkey_from_secret(SECRETS[0], False)[1:])
    assert is_valid_xonly(pk[1:]) and not is_valid_xonly(b"\x00" * 32)
    assert xonly(pk) == pk[1:]
    with pytest.raises(InvalidKeyError):
        pubkey_from_secret(b"\x00" * 32)
    with pytest.raises(InvalidKeyError):
        taproot_output_key(b"\x00" * 32)


# -- signing straight on libsecp256k1 -------------------------------------------------------------


def test_sign_digest_is_coincurves_signature():
    import hashlib

    from coincurve import PrivateKey

    from wallet.keys import InvalidKeyError, sign_digest

    for i in range(20):
        secret = hashlib.sha256(b"k%d" % i).digest()
        msg = hashlib.sha256(b"m%d" % i).digest()
        assert sign_digest(secret, msg) == PrivateKey(secret).sign(msg, hasher=None)  # RFC6979
    with pytest.raises(InvalidKeyError):
        sign_digest(b"\x00" * 32, msg)


def test_sign_taproot_key_path_verifies_under_the_output_key():
    import hashlib

    from coincurve import PublicKeyXOnly

    from consensus.script.keys import taproot_tweak_pubkey, xonly_pubkey
    from wallet.keys import sign_taproot_key_path

    for i in range(10):
        secret = hashlib.sha256(b"t%d" % i).digest()  # odd and even Y both occur
        root = None if i % 2 else hashlib.sha256(b"root").digest()
        out_key, _ = taproot_tweak_pubkey(xonly_pubkey(secret), root)
        msg = hashlib.sha256(b"msg%d" % i).digest()
        sig = sign_taproot_key_path(secret, msg, root)
        assert PublicKeyXOnly(out_key).verify(sig, msg)
        assert not PublicKeyXOnly(xonly_pubkey(secret)).verify(sig, msg)
