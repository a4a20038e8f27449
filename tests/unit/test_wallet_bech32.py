"""Bech32/Bech32m strings and segwit addresses: the BIP173 and BIP350 test vectors, and Core's
error location."""

import pytest

from tests.conftest import load_json
from wallet.bech32 import (
    Bech32Error,
    Encoding,
    SegwitAddressError,
    bech32_decode,
    bech32_encode,
    convertbits,
    decode_segwit_address,
    encode_segwit_address,
    locate_errors,
)

BIP173 = load_json("bip173_vectors.json")
BIP350 = load_json("bip350_vectors.json")


def _witness_script(version: int, program: bytes) -> str:
    op = 0 if version == 0 else 0x50 + version
    return (bytes([op, len(program)]) + program).hex()


@pytest.mark.parametrize(
    "s,enc",
    [(s, Encoding.BECH32) for s in BIP173["valid_strings"]]
    + [(s, Encoding.BECH32M) for s in BIP350["valid_strings"]],
)
def test_valid_strings(s, enc):
    got_enc, hrp, data = bech32_decode(s)
    assert got_enc is enc
    assert hrp == s[: s.rfind("1")].lower()
    # Re-encoding gives the lowercase string back.
    assert bech32_encode(hrp, data, enc) == s.lower()
    assert locate_errors(s) == ("", [])


@pytest.mark.parametrize("s,reason", BIP173["invalid_strings"] + BIP350["invalid_strings"])
def test_invalid_strings(s, reason):
    with pytest.raises(Bech32Error) as e:
        bech32_decode(s)
    assert e.value.message


def test_a_valid_bech32_string_is_not_valid_bech32m_and_back():
    for s in BIP173["valid_strings"]:
        assert bech32_decode(s)[0] is Encoding.BECH32
    for s in BIP350["valid_strings"]:
        assert bech32_decode(s)[0] is Encoding.BECH32M


@pytest.mark.parametrize("addr,spk", BIP350["valid_addresses"] + BIP173["valid_addresses"])
def test_valid_segwit_addresses(addr, spk):
    hrp = addr[:2].lower()
    version, program = decode_segwit_address(hrp, addr)
    assert _witness_script(version, program) == spk
    assert encode_segwit_address(hrp, version, program) == addr.lower()


@pytest.mark.parametrize("addr,spk", BIP173["superseded_bech32_v1plus"])
def test_bip173_v1plus_addresses_are_rejected_since_bip350(addr, spk):
    with pytest.raises(SegwitAddressError, match="checksum variant"):
        decode_segwit_address(addr[:2].lower(), addr)


@pytest.mark.parametrize("addr,reason", BIP350["invalid_addresses"] + BIP173["invalid_addresses"])
def test_invalid_segwit_addresses(addr, reason):
    for hrp in ("bc", "tb"):
        with pytest.raises((Bech32Error, SegwitAddressError)):
            decode_segwit_address(hrp, addr)


def test_segwit_error_messages():
    with pytest.raises(SegwitAddressError, match=r"expected bc, got tc"):
        decode_segwit_address("bc", "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty")
    with pytest.raises(SegwitAddressError, match=r"Invalid program length \(1 byte"):
        decode_segwit_address("bc", "bc1pw5dgrnzv")
    with pytest.raises(SegwitAddressError, match="witness version 0"):
        decode_segwit_address("bc", "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P")
    with pytest.raises(SegwitAddressError, match="padding"):
        decode_segwit_address(
            "bc", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf"
        )
    with pytest.raises(SegwitAddressError, match="Empty data section"):
        decode_segwit_address("bc", "bc1gmk9yu")
    with pytest.raises(Bech32Error, match="mixed case"):
        decode_segwit_address(
            "tb", "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq"
        )


def test_encoder_rules():
    with pytest.raises(SegwitAddressError):
        encode_segwit_address("bc", 17, b"\x00" * 20)
    with pytest.raises(SegwitAddressError):
        encode_segwit_address("bc", 0, b"\x00" * 21)
    with pytest.raises(SegwitAddressError):
        encode_segwit_address("bc", 1, b"\x00")
    with pytest.raises(ValueError):
        bech32_encode("BC", [0], Encoding.BECH32)
    # Version 0 is bech32, any other version bech32m.
    assert bech32_decode(encode_segwit_address("bc", 0, b"\x01" * 20))[0] is Encoding.BECH32
    for v in (1, 2, 16):
        assert bech32_decode(encode_segwit_address("bc", v, b"\x01" * 32))[0] is Encoding.BECH32M


def test_length_limit():
    # 90 characters is the limit; one more is "too long", with every extra position reported.
    s = BIP173["valid_strings"][4]
    assert len(s) == 90
    msg, locs = locate_errors(s + "q")
    assert msg == "Bech32 string too long" and locs == [90]
    with pytest.raises(Bech32Error, match="too long"):
        bech32_decode(s + "q")


def test_convertbits_padding():
    assert convertbits([0xFF], 8, 5, True) == [31, 28]
    assert convertbits([31, 28], 5, 8, False) == [0xFF]
    assert convertbits([31, 29], 5, 8, False) is None  # non-zero padding
    assert convertbits([32], 5, 8, False) is None


# Core's LocateErrors (src/bech32.cpp): messages and positions, from Core's bech32_tests.cpp
# reasoning: one or two substitutions are located exactly.


def test_locate_single_substitution():
    good = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    for pos in (4, 10, 20, len(good) - 1):
        c = good[pos]
        bad = good[:pos] + ("q" if c != "q" else "p") + good[pos + 1 :]
        msg, locs = locate_errors(bad)
        assert msg == "Invalid Bech32 checksum"
        assert locs == [pos]


def test_locate_two_substitutions_bech32m():
    good = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
    p1, p2 = 9, 30
    bad = list(good)
    for p in (p1, p2):
        bad[p] = "q" if good[p] != "q" else "p"
    msg, locs = locate_errors("".join(bad))
    assert msg == "Invalid Bech32m checksum"
    assert locs == [p1, p2]


@pytest.mark.parametrize(
    "s,msg,locs",
    [
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "Invalid Bech32 checksum", [41]),
        ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3t4", "Invalid character or mixed case", [40]),
        ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
         "Invalid Base 32 character", [59]),
        ("pzry9x0s0muk", "Missing separator", []),
        ("1pzry9x0s0muk", "Invalid separator position", [0]),
        ("li1dgmt3", "Invalid separator position", [2]),
    ],
)
def test_locate_errors_messages(s, msg, locs):
    assert locate_errors(s) == (msg, locs)
