"""BIP324 (v2 transport): node/p2p/v2transport.py against the BIP's test vectors (packet
encoding, ElligatorSwift decoding, XSwiftECInv; see tests/data/bip324/README.md), Bitcoin
Core's FSChaCha20 / FSChaCha20Poly1305 vectors, and two V2Transport objects talking to each
other, in memory and over loopback TCP."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import random

import pytest
from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.p2p import messages as m
from node.p2p import v2transport as v2
from node.p2p.v2transport import (
    EXPANSION,
    KEY_NAMES,
    MAX_CONTENTS_LEN,
    MAX_GARBAGE_LEN,
    SHORT_IDS,
    FSChaCha20,
    FSChaCha20Poly1305,
    V2Cipher,
    V2Transport,
    V2TransportError,
    decode_contents,
    derive_keys,
    detect_v1,
    ellswift_create,
    ellswift_decode,
    encode_contents,
    v2_ecdh,
)
from tests.conftest import DATA

VECTORS = DATA / "bip324"
MAINNET = bytes.fromhex("f9beb4d9")  # the packet vectors are for mainnet
REGTEST = bytes.fromhex("fabfb5da")
SIGNET = bytes.fromhex("0a03cf40")


def _csv(name: str) -> list[dict[str, str]]:
    with open(VECTORS / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- an independent ElligatorSwift, straight from the BIP's formulas -----------------------
# libsecp256k1 does not export XSwiftECInv, so its vectors are checked against this; the
# decode vectors are checked against both this and libsecp256k1.

P = 2**256 - 2**32 - 977
C = 0xA2D2BA93507F1DF233770C2A797962CC61F6D15DA14ECD47D8D27AE1CD5F852  # sqrt(-3), a square
HALF = pow(2, P - 2, P)


def _inv(a: int) -> int:
    return pow(a, P - 2, P)


def _sqrt(a: int) -> int | None:
    """The square root that is itself a square, or None."""
    r = pow(a, (P + 1) // 4, P)
    return r if r * r % P == a % P else None


def _on_curve_x(x: int) -> bool:
    return _sqrt((x * x * x + 7) % P) is not None


def xswiftec(u: int, t: int) -> int:
    u %= P
    t %= P
    if u == 0:
        u = 1
    if t == 0:
        t = 1
    if (u**3 + t * t + 7) % P == 0:
        t = 2 * t % P
    x = (u**3 + 7 - t * t) * _inv(2 * t) % P
    y = (x + t) * _inv(C * u) % P
    for cand in ((u + 4 * y * y) % P, (-x * _inv(y) - u) * HALF % P,
                 (x * _inv(y) - u) * HALF % P):
        if _on_curve_x(cand):
            return cand
    raise AssertionError("XSwiftEC found no X")


def xswiftec_inv(x: int, u: int, case: int) -> int | None:
    if case & 2 == 0:
        if _on_curve_x((-x - u) % P):
            return None
        v = x
        s = -(u**3 + 7) * _inv(u * u + u * v + v * v) % P
    else:
        s = (x - u) % P
        if s == 0:
            return None
        r = _sqrt(-s * (4 * (u**3 + 7) + 3 * u * u * s) % P)
        if r is None or (case & 1 and r == 0):
            return None
        v = (r * _inv(s) - u) * HALF % P
    w = _sqrt(s)
    if w is None:
        return None
    low = (u * (1 - C) * HALF + v) % P
    high = (u * (1 + C) * HALF + v) % P
    return {0: -w * low, 1: w * high, 4: w * low, 5: -w * high}[case & 5] % P


def py_ellswift_decode(ell: bytes) -> bytes:
    return xswiftec(int.from_bytes(ell[:32], "big"), int.from_bytes(ell[32:], "big")) \
        .to_bytes(32, "big")


def lib_x(ell: bytes) -> bytes:
    return ellswift_decode(ell).format()[1:]


def tagged_hash(tag: str, data: bytes) -> bytes:
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()


# -- ElligatorSwift vectors ----------------------------------------------------------------

DECODE_ROWS = _csv("ellswift_decode_test_vectors.csv")
INV_ROWS = _csv("xswiftec_inv_test_vectors.csv")


def test_vector_files_complete():
    assert len(DECODE_ROWS) == 76
    assert len(INV_ROWS) == 32
    assert len(_csv("packet_encoding_test_vectors.csv")) == 7
    assert len(_csv("packet_encoding_test_vectors_draft.csv")) == 7


@pytest.mark.parametrize("row", DECODE_ROWS, ids=lambda r: r["comment"][:40])
def test_ellswift_decode_vectors(row):
    ell = bytes.fromhex(row["ellswift"])
    assert lib_x(ell).hex() == row["x"]
    assert py_ellswift_decode(ell).hex() == row["x"]


@pytest.mark.parametrize("row", INV_ROWS, ids=lambda r: r["u"][:16])
def test_xswiftec_inv_vectors(row):
    u = int(row["u"], 16)
    x = int(row["x"], 16)
    found = 0
    for case in range(8):
        t = xswiftec_inv(x, u, case)
        want = row[f"case{case}_t"]
        if t is None:
            assert want == "", f"case {case}"
            continue
        found += 1
        assert t.to_bytes(32, "big").hex() == want, f"case {case}"
        assert xswiftec(u, t) == x
        # libsecp256k1 decodes the encoding (u, t) to the same X.
        assert lib_x(u.to_bytes(32, "big") + t.to_bytes(32, "big")) == x.to_bytes(32, "big")
    assert found == sum(1 for c in range(8) if row[f"case{c}_t"])


def test_ellswift_create_roundtrip():
    for _ in range(20):
        priv, ell = ellswift_create()
        assert len(ell) == 64
        x = PrivateKey(priv).public_key.format()[1:]
        assert lib_x(ell) == x
        assert py_ellswift_decode(ell) == x
    priv = bytes(31) + b"\x07"
    _, e1 = ellswift_create(priv, bytes(32))
    _, e2 = ellswift_create(priv, bytes(31) + b"\x01")
    _, e3 = ellswift_create(priv, bytes(32))
    assert e1 == e3 and e1 != e2  # auxrnd picks the encoding
    assert lib_x(e1) == lib_x(e2)
    with pytest.raises(ValueError):
        ellswift_create(bytes(32))


# -- packet encoding vectors ---------------------------------------------------------------

PACKET_ROWS = [("current", r) for r in _csv("packet_encoding_test_vectors.csv")] + \
    [("draft", r) for r in _csv("packet_encoding_test_vectors_draft.csv")]


def _packet_case(row):
    contents_col = "in_contents" if "in_contents" in row else "in_content"
    session_col = "out_session_id" if "out_session_id" in row else "mid_session_id"
    return dict(
        idx=int(row["in_idx"]),
        priv=bytes.fromhex(row["in_priv_ours"]),
        ours=bytes.fromhex(row["in_ellswift_ours"]),
        theirs=bytes.fromhex(row["in_ellswift_theirs"]),
        initiator=row["in_initiating"] == "1",
        contents=bytes.fromhex(row[contents_col]) * int(row["in_multiply"]),
        aad=bytes.fromhex(row["in_aad"]),
        ignore=row["in_ignore"] == "1",
        session_id=row[session_col],
    )


@pytest.mark.parametrize("kind,row", PACKET_ROWS,
                         ids=[f"{k}-{r['in_idx']}" for k, r in PACKET_ROWS])
def test_packet_vectors(kind, row):
    c = _packet_case(row)
    priv, ours, theirs, initiator = c["priv"], c["ours"], c["theirs"], c["initiator"]
    # keys and ECDH
    assert PrivateKey(priv).public_key.format()[1:].hex() == row["mid_x_ours"]
    assert lib_x(ours).hex() == row["mid_x_ours"]
    assert py_ellswift_decode(ours).hex() == row["mid_x_ours"]
    x_theirs = lib_x(theirs)
    assert py_ellswift_decode(theirs) == x_theirs
    if "mid_x_theirs" in row:
        assert x_theirs.hex() == row["mid_x_theirs"]
    x_shared = ellswift_decode(theirs).multiply(priv).format()[1:]
    assert x_shared.hex() == row["mid_x_shared"]
    secret = v2_ecdh(priv, theirs, ours, initiator)
    assert secret.hex() == row["mid_shared_secret"]
    pair = ours + theirs if initiator else theirs + ours
    assert tagged_hash("bip324_ellswift_xonly_ecdh", pair + x_shared) == secret
    # HKDF, checked against cryptography's too
    keys = derive_keys(secret, MAINNET)
    for name in ("initiator_L", "initiator_P", "responder_L", "responder_P"):
        assert keys[name].hex() == row["mid_" + name.lower()], name
    for name in KEY_NAMES:
        ref = HKDF(hashes.SHA256(), 32, b"bitcoin_v2_shared_secret" + MAINNET,
                   name.encode()).derive(secret)
        assert keys[name] == ref, name
    cipher = V2Cipher.from_ecdh(priv, ours, theirs, initiator, MAINNET)
    assert cipher.send_garbage_terminator.hex() == row["mid_send_garbage_terminator"]
    assert cipher.recv_garbage_terminator.hex() == row["mid_recv_garbage_terminator"]
    assert cipher.session_id.hex() == c["session_id"]
    # the packet, after in_idx empty ones
    dummies = [cipher.encrypt(b"") for _ in range(c["idx"])]
    contents, aad, ignore = c["contents"], c["aad"], c["ignore"]
    packet = cipher.encrypt(contents, aad, ignore)
    assert len(packet) == len(contents) + EXPANSION
    assert row["out_ciphertext"] or row["out_ciphertext_endswith"]
    if row["out_ciphertext"]:
        assert packet.hex() == row["out_ciphertext"]
    if row["out_ciphertext_endswith"]:
        assert packet.endswith(bytes.fromhex(row["out_ciphertext_endswith"]))

    # The other side decrypts it; tampering, a wrong AAD or the wrong side fail.
    def receiver(role: bool) -> V2Cipher:
        """A cipher of side `role` that has received the in_idx empty packets."""
        r = V2Cipher(keys, role)
        for d in dummies:
            n = r.decrypt_length(d[:3])
            if role == initiator:  # the wrong side: nothing decrypts, but the counters move
                with pytest.raises(V2TransportError):
                    r.decrypt(d[3:])
            else:
                assert n == 0 and r.decrypt(d[3:]) == b"\x00"
        return r

    peer = receiver(not initiator)
    assert peer.decrypt_length(packet[:3]) == len(contents)
    plain = peer.decrypt(packet[3:], aad)
    assert plain[0] == (0x80 if ignore else 0) and plain[1:] == contents
    # the receiver of the other side sends what we receive: same keys, mirrored
    assert peer.send_garbage_terminator == cipher.recv_garbage_terminator
    assert peer.session_id == cipher.session_id

    rng = random.Random(c["idx"])
    bad = bytearray(packet)
    bad[rng.randrange(3, len(bad))] ^= 1 << rng.randrange(8)
    for sealed, bad_aad, role in ((bytes(bad[3:]), aad, not initiator),
                                  (packet[3:], aad + b"\x00", not initiator),
                                  (packet[3:], aad, initiator)):
        r = receiver(role)
        r.decrypt_length(packet[:3])
        with pytest.raises(V2TransportError, match="decryption failure"):
            r.decrypt(sealed, bad_aad)
    if aad:
        flipped = bytearray(aad)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        r = receiver(not initiator)
        r.decrypt_length(packet[:3])
        with pytest.raises(V2TransportError):
            r.decrypt(packet[3:], bytes(flipped))


# -- the rekeying ciphers: Bitcoin Core's vectors (src/test/crypto_tests.cpp, as
# test/functional/test_framework/crypto/{chacha20,bip324_cipher}.py carry them) -------------

FSCHACHA20_VECTORS = [  # plaintext, key, rekey interval, ciphertext of the chunk after it
    ("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "0000000000000000000000000000000000000000000000000000000000000000", 256,
     "a93df4ef03011f3db95f60d996e1785df5de38fc39bfcb663a47bb5561928349"),
    ("01", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 5, "ea"),
    ("e93fdb5c762804b9a706816aca31e35b11d2aa3080108ef46a5b1f1508819c0a",
     "8ec4c3ccdaea336bdeb245636970be01266509b33f3d2642504eaf412206207a", 4096,
     "8bfaa4eacff308fdb4a94a5ff25bd9d0c1f84b77f81239f67ff39d6e1ac280c9"),
]

FSAEAD_VECTORS = [  # plaintext, aad, key, message index, ciphertext
    ("d6a4cb04ef0f7c09c1866ed29dc24d820e75b0491032a51b4c3366f9ca35c19e"
     "a3047ec6be9d45f9637b63e1cf9eb4c2523a5aab7b851ebeba87199db0e839cf"
     "0d5c25e50168306377aedbe9089fd2463ded88b83211cf51b73b150608cc7a60"
     "0d0f11b9a742948482e1b109d8faf15b450aa7322e892fa2208c6691e3fecf4c"
     "711191b14d75a72147",
     "786cb9b6ebf44288974cf0",
     "5c9e1c3951a74fba66708bf9d2c217571684556b6a6a3573bff2847d38612654",
     500,
     "9dcebbd3281ea3dd8e9a1ef7d55a97abd6743e56ebc0c190cb2c4e14160b385e"
     "0bf508dddf754bd02c7c208447c131ce23e47a4a14dfaf5dd8bc601323950f75"
     "4e05d46e9232f83fc5120fbbef6f5347a826ec79a93820718d4ec7a2b7cfaaa4"
     "4b21e16d726448b62f803811aff4f6d827ed78e738ce8a507b81a8ae13131192"
     "8039213de18a5120dc9b7370baca878f50ff254418de3da50c"),
    ("8349b7a2690b63d01204800c288ff1138a1d473c832c90ea8b3fc102d0bb3adc"
     "44261b247c7c3d6760bfbe979d061c305f46d94c0582ac3099f0bf249f8cb234",
     "",
     "3bd2093fcbcb0d034d8c569583c5425c1a53171ea299f8cc3bbf9ae3530adfce",
     60000,
     "30a6757ff8439b975363f166a0fa0e36722ab35936abd704297948f45083f4d4"
     "99433137ce931f7fca28a0acd3bc30f57b550acbc21cbd45bbef0739d9caf30c"
     "14b94829deb27f0b1923a2af704ae5d6"),
]


@pytest.mark.parametrize("plain,key,interval,want", FSCHACHA20_VECTORS)
def test_fschacha20_vectors(plain, key, interval, want):
    plain = bytes.fromhex(plain)
    enc = FSChaCha20(bytes.fromhex(key), interval)
    dec = FSChaCha20(bytes.fromhex(key), interval)
    for _ in range(interval):
        assert dec.crypt(enc.crypt(plain)) == plain
    assert enc.crypt(plain).hex() == want
    assert dec.crypt(bytes.fromhex(want)) == plain


@pytest.mark.parametrize("plain,aad,key,idx,want", FSAEAD_VECTORS)
def test_fschacha20poly1305_vectors(plain, aad, key, idx, want):
    plain, aad, key = bytes.fromhex(plain), bytes.fromhex(aad), bytes.fromhex(key)
    enc = FSChaCha20Poly1305(key)
    dec = FSChaCha20Poly1305(key)
    for _ in range(idx):
        assert dec.decrypt(b"", enc.encrypt(b"", b"")) == b""
    sealed = enc.encrypt(aad, plain)
    assert sealed.hex() == want
    assert dec.decrypt(aad, sealed) == plain
    assert FSChaCha20Poly1305(key).decrypt(aad, sealed) is None  # the wrong message index


def test_fschacha20_stream_spans_packets():
    """One keystream across chunks of any size: crypting chunk by chunk equals crypting the
    concatenation, until the rekey."""
    key = os.urandom(32)
    chunks = [os.urandom(random.randrange(0, 100)) for _ in range(50)]
    a = FSChaCha20(key, 1000)
    b = FSChaCha20(key, 1000)
    assert b"".join(a.crypt(x) for x in chunks) == b.crypt(b"".join(chunks))


# -- message types -------------------------------------------------------------------------


def test_short_ids_table():
    assert [SHORT_IDS[i] for i in range(1, 29)] == [
        "addr", "block", "blocktxn", "cmpctblock", "feefilter", "filteradd", "filterclear",
        "filterload", "getblocks", "getblocktxn", "getdata", "getheaders", "headers", "inv",
        "mempool", "merkleblock", "notfound", "ping", "pong", "sendcmpct", "tx",
        "getcfilters", "cfilter", "getcfheaders", "cfheaders", "getcfcheckpt", "cfcheckpt",
        "addrv2"]
    for i in range(1, 29):
        cmd = SHORT_IDS[i]
        contents = encode_contents(cmd, b"payload")
        assert contents == bytes([i]) + b"payload"
        assert decode_contents(contents) == (cmd, b"payload")
        assert decode_contents(bytes([i])) == (cmd, b"")


@pytest.mark.parametrize("cmd", ["version", "verack", "sendaddrv2", "wtxidrelay", "getaddr",
                                 "sendheaders", "feature", "abcdefghijkl", "x"])
def test_long_message_types(cmd):
    contents = encode_contents(cmd, b"\x01\x02")
    assert contents[0] == 0 and len(contents) == 13 + 2
    assert contents[1:13] == cmd.encode().ljust(12, b"\x00")
    assert decode_contents(contents) == (cmd, b"\x01\x02")


def test_received_only_ids():
    assert decode_contents(b"\x25data") == ("feature", b"data")  # Core's id 37
    for i in [29, 30, 31, 32, 33, 36, 38, 99, 255]:  # reserved (Erlay) and undefined
        assert decode_contents(bytes([i]) + b"x") == (None, bytes([i]) + b"x")


@pytest.mark.parametrize("contents", [
    b"",  # no type at all
    b"\x00verack",  # a long type needs 12 bytes
    b"\x00" + bytes(12),  # empty name
    b"\x00ver\x00ack\x00\x00\x00\x00\x00",  # bytes after the padding
    b"\x00verack\x01\x00\x00\x00\x00\x00",
    b"\x00ver\xe9ck\x00\x00\x00\x00\x00\x00",
])
def test_unreadable_types(contents):
    assert decode_contents(contents) == (None, contents)


def test_long_types_as_core_reads_them():
    """Core's GetMessageType: bytes ' ' to 0x7F before the padding (space and DEL too)."""
    assert decode_contents(b"\x00ver ack\x00\x00\x00\x00\x00x") == ("ver ack", b"x")
    assert decode_contents(b"\x00ab\x7f" + bytes(9)) == ("ab\x7f", b"")


@pytest.mark.parametrize("cmd", ["", "thirteenchars", "vérack", "a b", "a\x00"])
def test_bad_commands_rejected(cmd):
    with pytest.raises((ValueError, UnicodeEncodeError)):
        encode_contents(cmd)
    t = V2Transport(True, REGTEST)
    with pytest.raises((ValueError, UnicodeEncodeError)):
        t.send(cmd)


# -- v1 detection --------------------------------------------------------------------------


def test_detect_v1():
    prefix = REGTEST + b"version" + bytes(5)
    for n in range(16):
        assert detect_v1(prefix[:n], REGTEST) is None
        assert detect_v1(prefix[:n] + bytes([prefix[n] ^ 1]), REGTEST) is False
    assert detect_v1(prefix, REGTEST) is True
    assert detect_v1(prefix + b"more", REGTEST) is True
    assert detect_v1(m.frame(REGTEST, "version", b"x" * 100), REGTEST) is True
    assert detect_v1(m.frame(REGTEST, "verack"), REGTEST) is False
    assert detect_v1(m.frame(MAINNET, "version"), REGTEST) is False


def test_responder_falls_back_to_v1():
    version = m.frame(REGTEST, "version", os.urandom(90)) + m.frame(REGTEST, "verack")
    t = V2Transport(False, REGTEST)
    assert t.data_to_send() == b""  # a responder says nothing before it knows
    for i in range(15):
        assert t.bytes_needed() == 16 - i
        assert t.receive(version[i:i + 1]) == []
        assert t.data_to_send() == b"" and not t.v1_fallback
    assert t.receive(version[15:40]) == []
    assert t.v1_fallback and t.bytes_needed() == 0
    assert t.data_to_send() == b""  # no key was sent to a v1 peer
    t.receive(version[40:])
    assert t.take_v1_bytes() == version
    assert t.session_id is None


def test_responder_v2_after_partial_prefix():
    """A key that starts like the v1 prefix is v2 from the first byte that differs."""
    prefix = REGTEST + b"version" + bytes(5)
    key = prefix[:15] + bytes([prefix[15] ^ 0xFF]) + os.urandom(48)
    t = V2Transport(False, REGTEST, garbage=b"")
    assert t.receive(key[:15]) == [] and t.data_to_send() == b""
    t.receive(key[15:16])
    assert len(t.data_to_send()) == 64  # our key, no garbage
    assert t.bytes_needed() == 48


def test_v1_peer_of_another_network():
    t = V2Transport(False, REGTEST)
    t.receive(SIGNET)  # differs from the first byte: v2 as far as we know
    with pytest.raises(V2TransportError, match="V1 peer with wrong MessageStart 0a03cf40"):
        t.receive(b"version" + bytes(5) + os.urandom(48))
    with pytest.raises(V2TransportError):
        t.receive(b"x")


def test_responder_without_detection_sends_key_at_once():
    t = V2Transport(False, REGTEST, detect_v1=False, garbage=b"g" * 10)
    out = t.data_to_send()
    assert len(out) == 74 and out[64:] == b"g" * 10
    assert lib_x(out[:64]) == lib_x(t.our_ellswift)


# -- two transports ------------------------------------------------------------------------


def pump(a: V2Transport, b: V2Transport, rng: random.Random | None = None,
         inbox: dict | None = None) -> dict:
    """Move bytes both ways (in random slices when rng is given) until neither side has any
    to send; what each side received, in order, under its id."""
    got = inbox if inbox is not None else {id(a): [], id(b): []}
    moved = True
    while moved:
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.data_to_send()
            if not data:
                continue
            moved = True
            while data:
                n = rng.randrange(1, 2 * len(data) + 1) if rng else len(data)
                for msg in dst.receive(data[:n]):
                    got[id(dst)].append(msg)
                data = data[n:]
    return got


@pytest.mark.parametrize("glen_i,glen_r", [(0, 0), (4095, 4095), (1, 4094), (None, None)])
def test_handshake_and_messages(glen_i, glen_r):
    rng = random.Random(f"{glen_i}{glen_r}")
    ini = V2Transport(True, REGTEST, garbage_len=glen_i)
    res = V2Transport(False, REGTEST, garbage_len=glen_r)
    first = ini.data_to_send()
    if glen_i is not None:
        assert len(first) == 64 + glen_i
    assert lib_x(first[:64]) == lib_x(ini.our_ellswift)
    # application messages queued before the keys exist go out after the version packet
    ini.send("version", b"v" * 100)
    ini.send_decoy(10)
    res.send("version", b"w" * 50)
    got = pump(ini, res, rng, {id(ini): [], id(res): []})
    # `first` was never delivered: deliver it now, in pieces
    for i in range(0, len(first), 7):
        for msg in res.receive(first[i:i + 7]):
            got[id(res)].append(msg)
    reply = res.data_to_send()
    if glen_r is not None:
        assert reply[:64] == res.our_ellswift
        assert reply[64 + glen_r:64 + glen_r + 16] == res.cipher.send_garbage_terminator
    for msg in ini.receive(reply):
        got[id(ini)].append(msg)
    pump(ini, res, rng, got)
    assert ini.handshake_done and res.handshake_done
    assert ini.session_id == res.session_id and len(ini.session_id) == 32
    assert ini.version_contents == res.version_contents == b""
    assert got[id(res)] == [("version", b"v" * 100, 13 + 100 + EXPANSION)]
    assert got[id(ini)] == [("version", b"w" * 50, 13 + 50 + EXPANSION)]
    # many more than 224 messages each way (rekeying), decoys between them
    sent = {id(ini): [], id(res): []}
    got = {id(ini): [], id(res): []}
    cmds = ["ping", "pong", "inv", "tx", "verack", "headers", "getdata", "sendcmpct"]
    for _ in range(1200):
        src, dst = (ini, res) if rng.random() < 0.5 else (res, ini)
        cmd = rng.choice(cmds)
        payload = os.urandom(rng.choice([0, 1, 8, 100, 5000]))
        if rng.random() < 0.2:
            src.send_decoy(rng.randrange(0, 300))
        src.send(cmd, payload)
        sent[id(dst)].append((cmd, payload))
        if rng.random() < 0.3:
            pump(ini, res, rng, got)
    pump(ini, res, rng, got)
    for side in (ini, res):
        assert [(c, p) for c, p, _ in got[id(side)]] == sent[id(side)]
        assert all(size == len(encode_contents(c, p)) + EXPANSION
                   for c, p, size in got[id(side)])
        assert len(sent[id(side)]) > 2 * 224


def _ready_pair(magic=REGTEST) -> tuple[V2Transport, V2Transport]:
    ini = V2Transport(True, magic)
    res = V2Transport(False, magic)
    pump(ini, res)
    assert ini.handshake_done and res.handshake_done
    return ini, res


def test_big_messages_and_limit():
    ini, res = _ready_pair()
    block = os.urandom(m.MAX_PROTOCOL_MESSAGE_LENGTH)
    ini.send("block", block)  # short id: contents 1 + 4,000,000
    ini.send("bigmessage", block)  # long type: contents 13 + 4,000,000, Core's maximum
    got = pump(ini, res)[id(res)]
    assert got == [("block", block, 1 + len(block) + EXPANSION),
                   ("bigmessage", block, MAX_CONTENTS_LEN + EXPANSION)]
    # one byte more is refused as soon as its length field arrives
    packet = ini.cipher.encrypt(b"\x00" * (MAX_CONTENTS_LEN + 1))
    with pytest.raises(V2TransportError, match=r"packet too large \(4000014 bytes\)"):
        res.receive(packet[:3])
    with pytest.raises(V2TransportError, match="already failed"):
        res.receive(packet[3:])


def test_tampered_packet_fails():
    ini, res = _ready_pair()
    ini.send("ping", bytes(8))
    data = bytearray(ini.data_to_send())
    data[10] ^= 0x04
    with pytest.raises(V2TransportError, match="decryption failure") as err:
        res.receive(bytes(data))
    assert err.value.messages == []
    # messages the same bytes completed before the bad packet come with the error
    ini, res = _ready_pair()
    ini.send("ping", bytes(8))
    ini.send("pong", bytes(8))
    data = bytearray(ini.data_to_send())
    data[-1] ^= 0x01
    with pytest.raises(V2TransportError) as err:
        res.receive(bytes(data))
    assert err.value.messages == [("ping", bytes(8), 9 + EXPANSION)]


def test_tampered_garbage_fails():
    """The garbage is authenticated as the first packet's associated data."""
    ini = V2Transport(True, REGTEST, garbage_len=100)
    res = V2Transport(False, REGTEST)
    first = bytearray(ini.data_to_send())
    first[64 + 50] ^= 1
    res.receive(bytes(first))
    ini.receive(res.data_to_send())
    with pytest.raises(V2TransportError, match="decryption failure"):
        res.receive(ini.data_to_send())
    assert not res.handshake_done


def _crafting_pair() -> tuple[V2Cipher, V2Transport]:
    """A responder that has received an initiator's key and garbage b"GGGGG", and a cipher
    of that initiator's side to craft what comes next."""
    priv = os.urandom(32)
    ini = V2Transport(True, REGTEST, privkey=priv, garbage=b"G" * 5)
    res = V2Transport(False, REGTEST)
    assert res.receive(ini.data_to_send()) == []
    ellswift_res = res.data_to_send()[:64]
    return V2Cipher.from_ecdh(priv, ini.our_ellswift, ellswift_res, True, REGTEST), res


def test_decoys_before_version_and_unknown_types():
    """What a peer may send after its terminator: decoys (the first carrying the garbage as
    AAD) before the version packet, a version packet with contents (ignored: reserved for
    later versions), then messages of unknown or no type (returned with command None) among
    good ones."""
    cipher, res = _crafting_pair()
    stream = (cipher.send_garbage_terminator
              + cipher.encrypt(b"decoy1", aad=b"G" * 5, ignore=True)
              + cipher.encrypt(b"", ignore=True)
              + cipher.encrypt(b"future version data")
              + cipher.encrypt(bytes([99]) + b"d")
              + cipher.encrypt(b"")
              + cipher.encrypt(b"\x80" * 3, ignore=True)
              + cipher.encrypt(encode_contents("pong", bytes(8))))
    got = res.receive(stream)
    assert res.handshake_done and res.version_contents == b"future version data"
    assert got == [(None, bytes([99]) + b"d", 2 + EXPANSION), (None, b"", EXPANSION),
                   ("pong", bytes(8), 9 + EXPANSION)]


def test_garbage_aad_only_on_first_packet():
    cipher, res = _crafting_pair()
    stream = (cipher.send_garbage_terminator
              + cipher.encrypt(b"", ignore=True)  # no AAD: wrong for the first packet
              + cipher.encrypt(b""))
    with pytest.raises(V2TransportError, match="decryption failure"):
        res.receive(stream)


def test_missing_garbage_terminator():
    limit = 64 + MAX_GARBAGE_LEN + 16  # Core: MAX_KEY_GARB_AND_GARBTERM_LEN
    t = V2Transport(False, REGTEST)
    t.receive(b"\x00" * (limit - 1))
    assert t.bytes_needed() > 0 and not t.handshake_done
    with pytest.raises(V2TransportError, match="missing garbage terminator"):
        t.receive(b"\x00")
    # all at once as well
    t = V2Transport(True, REGTEST)
    with pytest.raises(V2TransportError, match="missing garbage terminator"):
        t.receive(os.urandom(limit + 100))


def test_other_network_never_completes():
    ini = V2Transport(True, REGTEST, garbage_len=0)
    res = V2Transport(False, MAINNET, garbage_len=0)
    pump(ini, res)
    assert not ini.handshake_done and not res.handshake_done
    with pytest.raises(V2TransportError, match="missing garbage terminator"):
        res.receive(os.urandom(MAX_GARBAGE_LEN))


def test_encrypt_message_lean_path():
    ini, res = _ready_pair()
    with pytest.raises(RuntimeError):
        V2Transport(True, REGTEST).encrypt_message("ping", bytes(8))
    packets = b"".join(ini.encrypt_message("ping", i.to_bytes(8, "little"))
                       for i in range(500))
    got = res.receive(packets)
    assert [p for _, p, _ in got] == [i.to_bytes(8, "little") for i in range(500)]


def test_should_reconnect_v1():
    ini = V2Transport(True, REGTEST)
    res = V2Transport(False, REGTEST)
    assert ini.should_reconnect_v1 and not res.should_reconnect_v1
    res.receive(ini.data_to_send())
    ini.receive(res.data_to_send()[:1])  # one byte back: a v2 peer, whatever happens next
    assert not ini.should_reconnect_v1


def test_ephemeral_key_forgotten():
    ini, res = _ready_pair()
    assert ini._privkey == b"" and res._privkey == b""


# -- over loopback TCP, reading exactly bytes_needed() --------------------------------------


async def _run_tcp(n_msgs: int) -> tuple[list, list, bytes, bytes]:
    """Initiator and responder on a real socket, each reading with readexactly(bytes_needed())
    as a peer loop would: the handshake must not deadlock and messages must arrive."""
    results: dict[str, object] = {}

    async def drive(t: V2Transport, reader, writer, to_send: list, name: str):
        writer.write(t.data_to_send())
        for cmd, payload in to_send:
            t.send(cmd, payload)
        writer.write(t.data_to_send())
        received = []
        while len(received) < n_msgs:
            data = await reader.readexactly(t.bytes_needed())
            received += t.receive(data)
            out = t.data_to_send()
            if out:
                writer.write(out)
            await writer.drain()
        results[name] = (received, t.session_id)

    msgs_a = [("ping", i.to_bytes(8, "little")) for i in range(n_msgs)]
    msgs_b = [("inv", os.urandom(37)) for _ in range(n_msgs)]
    done = asyncio.Event()

    async def on_client(reader, writer):
        await drive(V2Transport(False, REGTEST), reader, writer, msgs_b, "res")
        done.set()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(drive(V2Transport(True, REGTEST), reader, writer, msgs_a, "ini"),
                           20)
    await asyncio.wait_for(done.wait(), 20)
    writer.close()
    server.close()
    await server.wait_closed()
    (got_ini, sid_ini), (got_res, sid_res) = results["ini"], results["res"]
    assert [(c, p) for c, p, _ in got_res] == msgs_a
    assert [(c, p) for c, p, _ in got_ini] == msgs_b
    return got_ini, got_res, sid_ini, sid_res


def test_over_tcp_with_exact_reads():
    _, _, sid_a, sid_b = asyncio.run(_run_tcp(300))
    assert sid_a == sid_b


def _exact_read_step(ini: V2Transport, res: V2Transport, wires: dict, got: dict) -> bool:
    """Each side flushes what it has to send, then reads exactly bytes_needed() if that many
    bytes have arrived. False when neither could read."""
    progressed = False
    for side, other in ((ini, res), (res, ini)):
        wires[id(other)] += side.data_to_send()
        need = side.bytes_needed()
        wire = wires[id(side)]
        assert need > 0
        if len(wire) >= need:
            got[id(side)] += len(side.receive(bytes(wire[:need])))
            del wire[:need]
            progressed = True
    return progressed


def test_bytes_needed_never_overreads():
    """With every read exactly bytes_needed(), the handshake completes whatever the garbage
    lengths, with no application message to push bytes along, and messages flow after it: a
    side is never asked for more than the other has sent."""
    rng = random.Random(7)
    for _ in range(40):
        ini = V2Transport(True, REGTEST, garbage_len=rng.choice([0, 1, 15, 16, 17, 500, 4095]))
        res = V2Transport(False, REGTEST, garbage_len=rng.choice([0, 1, 16, 4095]))
        wires = {id(ini): bytearray(), id(res): bytearray()}  # bytes waiting for that side
        got = {id(ini): 0, id(res): 0}
        while not (ini.handshake_done and res.handshake_done):
            assert _exact_read_step(ini, res, wires, got), \
                "deadlock: each side waits for bytes the other never sends"
        assert not any(wires.values())
        for i in range(3):
            ini.send("ping", os.urandom(8 * i))
            res.send("pong", os.urandom(8 * i))
        while got != {id(ini): 3, id(res): 3}:
            assert _exact_read_step(ini, res, wires, got), "deadlock after the handshake"


def test_constants():
    assert v2.EXPANSION == 20
    assert MAX_CONTENTS_LEN == 4_000_013
    assert v2.REKEY_INTERVAL == 224


def test_v1_peer_of_another_network_seen_at_16_bytes():
    """As Core: the wrong-network v1 peer is told apart from its first 16 bytes, without
    waiting for 64 (it may send no more before it waits for us)."""
    t = V2Transport(False, REGTEST)
    with pytest.raises(V2TransportError, match="V1 peer with wrong MessageStart 0a03cf40"):
        t.receive(SIGNET + b"version" + bytes(5))


def test_packet_size_and_pending_after_v1_fallback():
    assert v2.packet_size("ping", 8) == 1 + 8 + EXPANSION
    assert v2.packet_size("sendaddrv2", 0) == 13 + EXPANSION
    t = V2Transport(False, REGTEST)
    t.send("version", b"v")
    t.send_decoy(5)
    t.receive(m.frame(REGTEST, "version", b"x" * 30)[:16])
    assert t.v1_fallback
    assert t.take_pending() == [("version", b"v")] and t.take_pending() == []
    ini = V2Transport(True, REGTEST)
    assert not ini.ready
    res = V2Transport(False, REGTEST, detect_v1=False)
    res.receive(ini.data_to_send())
    ini.receive(res.data_to_send())
    assert ini.ready and res.ready


def test_packet_reads_lean_path():
    """After the handshake a caller may read packet by packet (read_length, read_packet):
    the same messages as receive(), decoys as None, an oversized length refused."""
    ini = V2Transport(True, REGTEST)
    res = V2Transport(False, REGTEST, detect_v1=False)
    res.receive(ini.data_to_send())
    ini.receive(res.data_to_send())
    res.receive(ini.data_to_send())
    assert res.packet_reads and ini.packet_reads
    ini.send("ping", b"\x01" * 8)
    ini.send_decoy(10)
    ini.send("feefilter", b"\x02" * 8)
    ini.send("sendtxrcncl", b"x")  # long form
    wire = ini.data_to_send()
    got = []
    while wire:
        rest = res.read_length(wire[:3])
        got.append(res.read_packet(wire[3:3 + rest]))
        wire = wire[3 + rest:]
    assert got == [("ping", b"\x01" * 8, 29), None, ("feefilter", b"\x02" * 8, 29),
                   ("sendtxrcncl", b"x", 34)]
    small = V2Transport(False, REGTEST, detect_v1=False, max_contents_len=5)
    a = V2Transport(True, REGTEST)
    small.receive(a.data_to_send())
    a.receive(small.data_to_send())
    small.receive(a.data_to_send())
    a.send("ping", b"\x00" * 8)
    with pytest.raises(V2TransportError, match="packet too large"):
        small.read_length(a.data_to_send()[:3])
    assert not small.packet_reads
