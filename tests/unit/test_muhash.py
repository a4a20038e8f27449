"""MuHash3072 and its ChaCha20 against Bitcoin Core's crypto_tests.cpp (muhash_tests,
chacha20_testvector) and RFC 8439."""

import hashlib
import random
import struct

import pytest

from consensus.contextual import Coin
from consensus.muhash import (
    BYTE_SIZE,
    MODULUS,
    MuHash3072,
    _keystreams,
    chacha20_block,
    chacha20_keystream,
    muhash_of_utxos,
    to_num3072,
    to_num3072_many,
    txout_ser,
)
from consensus.serialize import compact_size

# --- ChaCha20 ---------------------------------------------------------------------------------

RFC_KEY = bytes(range(32))


def test_rfc8439_block_function():
    """RFC 8439 section 2.3.2: the serialized block for counter 1."""
    out = chacha20_block(RFC_KEY, 1, bytes.fromhex("000000090000004a00000000"))
    assert out.hex() == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )


def _nonce(iv: int) -> bytes:
    # Core's ChaCha20 of the time: a 64-bit block counter (words 12-13) and a 64-bit IV
    # (words 14-15); with the counter below 2^32 that is RFC 8439's layout with this nonce.
    return bytes(4) + iv.to_bytes(8, "little")


# Core's chacha20_testvector keystream cases: (key, iv, first block, keystream). The first is
# RFC 7539 section 2.4.2's keystream, the others draft-agl-tls-chacha20poly1305-04 section 7.
CORE_CHACHA20_KEYSTREAMS = [
    (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0x4A000000, 1,
        "224f51f3401bd9e12fde276fb8631ded8c131f823d2c06e27e4fcaec9ef3cf788a3b0aa372600a92b57974cded"
        "2b9334794cb"
        "a40c63e34cdea212c4cf07d41b769a6749f3f630f4122cafe28ec4dc47e26d4346d70b98c73f3e9c53ac40c594"
        "5398b6eda1a"
        "832c89c167eacd901d7e2bf363",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000", 0, 0,
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8"
        "d84a376a43b"
        "8f41518a11cc387b669b2ee6586",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001", 0, 0,
        "4540f05a9f1fb296d7736e7b208e3c96eb4fe1834688d2604f450952ed432d41bbe2a0b6ea7566d2a5d1e7e20d"
        "42af2c53d79"
        "2b1c43fea817e9ad275ae546963",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000", 0x0100000000000000, 0,
        "de9cba7bf3d69ef5e786dc63973f653a0b49e015adbff7134fcb7df137821031e85a050278a7084527214f73ef"
        "c7fa5b52770"
        "62eb7a0433e445f41e3",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000", 1, 0,
        "ef3fdfd6c61578fbf5cf35bd3dd33b8009631634d21e42ac33960bd138e50d32111e4caf237ee53ca8ad642619"
        "4a88545ddc4"
        "97a0b466e7d6bbdb0041b2f586b",
    ),
    (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0x0706050403020100, 0,
        "f798a189f195e66982105ffb640bb7757f579da31602fc93ec01ac56f85ac3c134a4547b733b46413042c94400"
        "49176905d3b"
        "e59ea1c53f15916155c2be8241a38008b9a26bc35941e2444177c8ade6689de95264986d95889fb60e84629c9b"
        "d9a5acb1cc1"
        "18be563eb9b3a4a472f82e09a7e778492b562ef7130e88dfe031c79db9d4f7c7a899151b9a475032b63fc38524"
        "5fe054e3dd5"
        "a97a5f576fe064025d3ce042c566ab2c507b138db853e3d6959660996546cc9c4a6eafdc777c040d70eaf46f76"
        "dad3979e5c5"
        "360c3317166a1c894c94a371876a94df7628fe4eaaf2ccb27d5aaae0ad7ad0f9d4b6ad3b54098746d4524d3840"
        "7a6deb3ab78"
        "fab78c9",
    ),
]


@pytest.mark.parametrize("key,iv,seek,expected", CORE_CHACHA20_KEYSTREAMS)
def test_core_chacha20_keystream(key, iv, seek, expected):
    out = chacha20_keystream(bytes.fromhex(key), len(expected) // 2, _nonce(iv), seek)
    assert out.hex() == expected


def test_rfc8439_encryption():
    """RFC 8439 section 2.4.2 (also Core's first chacha20_testvector): keystream XOR text."""
    text = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
        b"future, sunscreen would be it."
    )
    stream = chacha20_keystream(RFC_KEY, len(text), _nonce(0x4A000000), 1)
    assert bytes(a ^ b for a, b in zip(text, stream, strict=True)).hex() == (
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd"
        "62b357"
        "1639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7"
        "793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )


def test_chacha20_block_rejects_bad_sizes():
    with pytest.raises(ValueError):
        chacha20_block(bytes(31), 0, bytes(12))
    with pytest.raises(ValueError):
        chacha20_block(bytes(32), 0, bytes(8))
    with pytest.raises(ValueError):
        chacha20_block(bytes(32), 1 << 32, bytes(12))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17])
def test_lanes_match_plain_chacha20(n):
    """The lane-parallel ChaCha20 that MuHash uses gives the RFC block function's bytes, for
    every element of a batch (6 blocks each, nonce 0, counter 0)."""
    rng = random.Random(n)
    keys = [rng.randbytes(32) for _ in range(n)]
    packed = _keystreams(keys).to_bytes(BYTE_SIZE * n, "little")
    for i, key in enumerate(keys):
        assert packed[BYTE_SIZE * i : BYTE_SIZE * (i + 1)] == chacha20_keystream(key, BYTE_SIZE)


# --- MuHash3072 (Core's muhash_tests) -----------------------------------------------------------


def from_int(i: int) -> MuHash3072:
    """Core's FromInt: the singleton set of a 32-byte element i, 0, 0, ..."""
    return MuHash3072(bytes([i]) + bytes(31))


def _elem(i: int) -> bytes:
    return bytes([i]) + bytes(31)


# uint256S("..."): display order, reversed from the bytes finalize() returns
CORE_VECTOR = "10d312b100cbd32ada024a6646e40d3482fcff103668d2625f10002a607d5863"


def test_core_vector_multiply_divide():
    acc = from_int(0)
    acc *= from_int(1)
    acc /= from_int(2)
    assert acc.finalize()[::-1].hex() == CORE_VECTOR


def test_core_vector_insert_remove():
    acc = from_int(0)
    acc.insert(_elem(1))
    acc.remove(_elem(2))
    assert acc.finalize()[::-1].hex() == CORE_VECTOR


def test_core_test_framework_vector():
    """test/functional/test_framework/crypto/muhash.py: the same set built from empty."""
    acc = MuHash3072()
    acc.insert(bytes(32)).insert(_elem(1)).remove(_elem(2))
    assert acc.finalize()[::-1].hex() == CORE_VECTOR


# Core's ser_exp for FromInt(1) *= FromInt(2): numerator (reduced) then denominator (1), each
# 384 bytes little-endian. Core's literal begins with SER_EXP_CORE_PREFIX; the full numerator
# is the same literal as transcribed in full by another port (their muhash tests).
SER_EXP_CORE_PREFIX = "1fa093295ea30a6a3acdc7b3f770fa538eff537528e990e2910e40bbcfd7f6696b1256901"
SER_EXP_NUMERATOR = (
    "1fa093295ea30a6a3acdc7b3f770fa538eff537528e990e2910e40bbcfd7f6696b1256901929094694b56316de"
    "342f5933"
    "03dd12ac43e06dce1be1ff8301c845beb15468fff0ef002dbf80c29f26e6452bccc91b5cb9437ad410d2a67ea8"
    "47887fa3"
    "c6a6553309946880fe20db2c73fe0641adbd4e86edfee0d9f8cd0ee1230898873dc13ed8ddcaf045c80faa0827"
    "74279007"
    "a2253f8922ee3ef361d378a6af3ddaf180b190ac97e556888c36b3d1fb1c85aab9ccd46e3deaeb7b7cf5db067a"
    "7e9ff86b"
    "658cf3acd6662bbcce37232daa753c48b794356c020090c831a8304416e2aa7ad633c0ddb2f11be1be316a81be"
    "7f7e4720"
    "71c042cb68faef549c221ebff209273638b741aba5a81675c45a5fa92fea4ca821d7a324cb1e1a2ccd3b76c422"
    "8ec8066d"
    "ad2a5df6e1bd0de45c7dd5de8070bdb46db6c554cf9aefc9b7b2bbf9f75b1864d9f95005314593905c0109b71f"
    "703d4994"
    "4ae94477b51dac10a816bb6d1c700bafabc8bd86fac8df24be519a2f2836b16392e18036cb13e48c5c"
)


def test_core_serialization():
    serchk = from_int(1)
    serchk *= from_int(2)
    ser = serchk.serialize().hex()
    assert ser.startswith(SER_EXP_CORE_PREFIX)
    assert ser == SER_EXP_NUMERATOR + "01" + "00" * (BYTE_SIZE - 1)
    # Deserializing gives back the same set.
    deserchk = MuHash3072.deserialize(bytes.fromhex(ser))
    assert deserchk.finalize() == serchk.finalize()


def test_core_overflow():
    """A numerator of 2^3072 - 1 (above the modulus) with denominator 1. Core compares
    HexStr(out4), the uint256's bytes in their internal order."""
    ss_max = b"\xff" * BYTE_SIZE + b"\x01" + bytes(BYTE_SIZE - 1)
    out = MuHash3072.deserialize(ss_max).finalize()
    assert out.hex() == "3a31e6903aff0de9f62f9a9f7f8b861de76ce2cda09822b90014319ae5dc2271"


@pytest.mark.parametrize("seed", range(10))
def test_core_order_independence(seed):
    """Core's randomized loop: 4 multiplications/divisions by FromInt(0..3) give one hash in
    any order, and X*Y / (Y*X) is the empty set."""
    rng = random.Random(seed)
    table = [rng.getrandbits(3) for _ in range(4)]
    results = set()
    for order in range(4):
        acc = MuHash3072()
        for i in range(4):
            t = table[i ^ order]
            if t & 4:
                acc /= from_int(t & 3)
            else:
                acc *= from_int(t & 3)
        results.add(acc.finalize())
    assert len(results) == 1

    x = from_int(rng.getrandbits(4))
    y = from_int(rng.getrandbits(4))
    z = MuHash3072()
    z *= x
    z *= y
    y *= x
    z /= y
    assert z.finalize() == MuHash3072().finalize()


def test_empty_set_and_finalize_keeps_the_set():
    empty = MuHash3072()
    h = empty.finalize()
    assert h == empty.finalize()
    assert h == hashlib.sha256((1).to_bytes(BYTE_SIZE, "little")).digest()
    acc = MuHash3072()
    acc.insert(b"a").remove(b"b")
    first = acc.finalize()
    assert acc.denominator == 1  # folded in, as Core does
    assert acc.finalize() == first
    acc.insert(b"b").remove(b"a")
    assert acc.finalize() == h


def test_insert_many_equals_insert():
    items = [i.to_bytes(2, "little") * (i % 50 + 1) for i in range(300)]
    one = MuHash3072()
    for it in items:
        one.insert(it)
    many = MuHash3072().insert_many(items)
    assert one == many
    assert one.finalize() == many.finalize()
    # remove_many undoes insert_many, in another order.
    many.remove_many(reversed(items))
    assert many.finalize() == MuHash3072().finalize()
    assert [to_num3072(x) for x in items[:20]] == list(to_num3072_many(items[:20], batch=7))


def test_operators_and_copy():
    a = MuHash3072().insert(b"x").insert(b"y")
    b = MuHash3072().insert(b"y")
    c = a / b
    assert c == MuHash3072(b"x")
    assert (c * b) == a
    d = a.copy()
    d.insert(b"z")
    assert d != a
    assert a.combine(MuHash3072(b"z")) == d
    assert a.difference(MuHash3072(b"z")).finalize() == (MuHash3072(b"x") * b).finalize()


def test_values_stay_below_the_modulus():
    acc = MuHash3072()
    for i in range(20):
        acc.insert(bytes([i]))
        assert 0 <= acc.numerator < MODULUS
    with pytest.raises(ValueError):
        MuHash3072.deserialize(bytes(10))


# --- the UTXO set -------------------------------------------------------------------------------


def test_txout_ser_layout():
    """kernel/coinstats.cpp TxOutSer: outpoint | u32 (height << 1 | coinbase) | txout."""
    txid = bytes(range(32))
    spk = bytes.fromhex("0014") + bytes(20)
    coin = Coin(5_000_000_000, spk, 101, True)
    ser = txout_ser(txid, 3, coin)
    assert ser == (
        txid + struct.pack("<I", 3) + struct.pack("<I", 101 << 1 | 1)
        + struct.pack("<q", 5_000_000_000) + compact_size(len(spk)) + spk
    )
    big = Coin(1, b"\x6a" + bytes(300), 7, False)
    assert txout_ser(txid, 0, big)[48:51] == b"\xfd" + (301).to_bytes(2, "little")


def test_muhash_of_utxos():
    rng = random.Random(7)
    utxos = [
        (rng.randbytes(32), rng.randrange(4),
         Coin(rng.randrange(1, 10**10), rng.randbytes(rng.choice([22, 25, 34])),
              rng.randrange(1, 500), rng.random() < 0.2))
        for _ in range(150)
    ]
    expected = MuHash3072()
    for txid, n, coin in utxos:
        expected.insert(txout_ser(txid, n, coin))
    got = muhash_of_utxos(utxos)
    assert got == expected.finalize()
    assert muhash_of_utxos(reversed(utxos)) == got
    # Spending a coin is removing it.
    spent = MuHash3072().insert_many(txout_ser(*u) for u in utxos)
    spent.remove(txout_ser(*utxos[0]))
    assert spent.finalize() == muhash_of_utxos(utxos[1:])
    assert muhash_of_utxos([]) == MuHash3072().finalize()
