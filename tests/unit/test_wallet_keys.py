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


def _core_ground_signature(secret: bytes, digest: bytes) -> tuple[bytes, int]:
    """Core's CKey::Sign with grinding, rebuilt on python-ecdsa (an implementation of its own
    of RFC6979, extra entropy appended to key and message as libsecp256k1 does): the first of
    counter 0 (no extra data), 1, 2, ... (the counter as a little-endian uint32 at the start
    of 32 bytes) whose R has its top bit clear. Returns (DER signature, counter)."""
    import ecdsa
    from ecdsa.util import sigencode_der_canonize, sigencode_strings_canonize

    sk = ecdsa.SigningKey.from_string(secret, curve=ecdsa.SECP256k1, hashfunc=hashlib.sha256)
    counter = 0
    while True:
        extra = b"" if counter == 0 else counter.to_bytes(4, "little") + bytes(28)
        r, _ = sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, extra_entropy=extra,
                                            sigencode=sigencode_strings_canonize)
        if r[0] < 0x80:
            return sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256,
                                                extra_entropy=extra,
                                                sigencode=sigencode_der_canonize), counter
        counter += 1


def test_sign_digest_grinds_low_r_as_core():
    from coincurve import PublicKey

    from wallet.keys import sign_digest

    counters = set()
    for i in range(200):
        secret = hashlib.sha256(b"k%d" % i).digest()
        msg = hashlib.sha256(b"m%d" % i).digest()
        sig = sign_digest(secret, msg)
        plain = PrivateKey(secret).sign(msg, hasher=None)  # RFC6979, low S, R as it comes
        if plain[3] <= 32:  # R needs no 0x00 pad: its top bit is clear, taken as it is
            assert sig == plain
        else:
            assert sig != plain
        expected, counter = _core_ground_signature(secret, msg)
        counters.add(counter)
        assert sig == expected
        assert sig[3] <= 32 and len(sig) <= 70  # 71 with the sighash byte
        assert PublicKey.from_secret(secret).verify(sig, msg, hasher=None)
    assert {0, 1, 2} <= counters  # plain, ground once, ground more than once


def test_sign_digest_core_vectors():
    from consensus.hashes import sha256d
    from consensus.params import MAIN, REGTEST
    from wallet.address import decode_wif
    from wallet.keys import InvalidKeyError, sign_digest

    # Core's key_tests (key_test1, "test deterministic signing"): RFC6979 signatures whose R is
    # low as it comes, so the same with or without grinding
    msg = sha256d(b"Very deterministic message")
    for wif, sig in (
        ("5HxWvvfubhXpYYpS3tJkw6fq9jE9j18THftkZjHHfmFiWtmAbrj",
         "304402205dbbddda71772d95ce91cd2d14b592cfbc1dd0aabd6a394b6c2d377bbe59d31d022014ddda21"
         "494a4e221f0824f0b8b924c43fa43c0ad57dccdaa11f81a6bd4582f6"),
        ("5KC4ejrDjv152FGwP386VD1i2NYc5KkfSMyv1nGy1VGDxGHqVY3",
         "3044022052d8a32079c11e79db95af63bb9600c5b04f21a9ca33dc129c2bfa8ac9dc1cd5022061d8ae5e"
         "0f6c1a16bde3719c64c2fd70e404b6428ab9a69566962e8771b5944d"),
    ):
        assert sign_digest(decode_wif(wif, MAIN)[0], msg).hex() == sig
    # A ground one: Core's rpc_psbt.json signer vector 1 (BIP174's), the signature of its first
    # input by cT7J9Y...; plain RFC6979 gives an R with its top bit set (3045022100f610...)
    secret = decode_wif("cT7J9YpCwY3AVRFSjN6ukeEeWY6mhpbJPxRaDaP5QTdygQRxP9Au", REGTEST)[0]
    digest = bytes.fromhex("ff089a1634a922b1dc623aca50b2b922c1487786bae4476ab1ade9897ea65d5f")
    assert PrivateKey(secret).sign(digest, hasher=None)[3] == 33
    assert sign_digest(secret, digest).hex() == (
        "30440220631a989fe738a92ad01986023312c19214fe2802b39e5cbc1ac3678806c692c3022039db6c38"
        "7bd267716dfdb3d4d8da50b8e85d213326ba7c7daaa4c0ce41eb9223")
    with pytest.raises(InvalidKeyError):
        sign_digest(b"\x00" * 32, msg)


def test_dummy_signatures_are_the_estimated_sizes():
    from consensus.script.sigcheck import is_valid_signature_encoding
    from wallet.keys import ECDSA_MAX_SIG_SIZE, ECDSA_SIG_SIZE, dummy_ecdsa_signature

    assert (ECDSA_SIG_SIZE, ECDSA_MAX_SIG_SIZE) == (71, 72)
    assert len(dummy_ecdsa_signature()) == 71 and len(dummy_ecdsa_signature(True)) == 72
    assert is_valid_signature_encoding(dummy_ecdsa_signature())
    assert is_valid_signature_encoding(dummy_ecdsa_signature(True))


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
