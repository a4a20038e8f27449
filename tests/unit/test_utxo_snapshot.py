"""node/utxo_snapshot.py against Bitcoin Core's own test vectors: VARINT bit patterns
(serialize_tests.cpp varint_bitpatterns), amount compression (compress_tests.cpp), the
special script forms (compressor.cpp), and the snapshot metadata's checks and texts."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey

from consensus.contextual import Coin
from consensus.serialize import DeserializationError, Reader
from node import utxo_snapshot as us

COIN = 100_000_000
REGTEST = bytes.fromhex("fabfb5da")


@pytest.mark.parametrize("n,hexstr", [
    (0, "00"), (0x7F, "7f"), (0x80, "8000"), (0x1234, "a334"), (0xFFFF, "82fe7f"),
    (0x123456, "c7e756"), (0x80123456, "86ffc7e756"), (0xFFFFFFFF, "8efefefe7f"),
    (0x7FFFFFFFFFFFFFFF, "fefefefefefefefe7f"), (0xFFFFFFFFFFFFFFFF, "80fefefefefefefefe7f"),
])
def test_varint_core_bit_patterns(n, hexstr):
    assert us.write_varint(n).hex() == hexstr
    assert us.read_varint(Reader(bytes.fromhex(hexstr))) == n


def test_varint_too_large():
    with pytest.raises(DeserializationError):
        us.read_varint(Reader(bytes.fromhex("8efefefe80")), 2**32 - 1)


@pytest.mark.parametrize("amount,compressed", [
    (0, 0x0), (1, 0x1), (1_000_000, 0x7), (COIN, 0x9), (50 * COIN, 0x32),
    (21_000_000 * COIN, 0x1406F40),
])
def test_amount_compression_core_pairs(amount, compressed):
    assert us.compress_amount(amount) == compressed
    assert us.decompress_amount(compressed) == amount


def test_amount_compression_round_trips():
    for i in range(1, 20_000):
        for unit in (1, 1_000_000, COIN, 5000 * COIN):
            assert us.decompress_amount(us.compress_amount(i * unit)) == i * unit
    for x in range(100_000):
        assert us.compress_amount(us.decompress_amount(x)) == x


def _key(compressed: bool) -> bytes:
    return PrivateKey().public_key.format(compressed=compressed)


@pytest.mark.parametrize("script,first,size", [
    (b"\x76\xa9\x14" + b"\x11" * 20 + b"\x88\xac", 0, 21),       # P2PKH
    (b"\xa9\x14" + b"\x22" * 20 + b"\x87", 1, 21),                # P2SH
    (None, None, 33),                                              # P2PK compressed
    (None, None, -33),                                             # P2PK uncompressed
    (b"\x00\x14" + b"\x33" * 20, None, 22 + 1),                    # P2WPKH: size + 6, raw
    (b"\x51\x20" + b"\x44" * 32, None, 34 + 1),                    # P2TR
])
def test_script_compression(script, first, size):
    if size == 33:
        pub = _key(True)
        script, first = b"\x21" + pub + b"\xac", pub[0]
    elif size == -33:
        pub = _key(False)
        script, first, size = b"\x41" + pub + b"\xac", 4 | (pub[64] & 1), 33
    coin = Coin(12345, script, 77, True)
    data = us.serialize_coin(coin)
    r = Reader(data)
    assert us.read_varint(r) == 155
    assert us.decompress_amount(us.read_varint(r)) == 12345
    rest = data[r.pos:]
    if first is not None:
        assert rest[0] == first and len(rest) == size
    else:
        assert rest[0] == len(script) + 6 and rest[1:] == script
    back = us.deserialize_coin(Reader(data))
    assert (back.value, back.script_pubkey, back.height, back.coinbase) == (12345, script, 77,
                                                                             True)


def test_invalid_uncompressed_key_is_kept_whole():
    script = b"\x41\x04" + b"\x00" * 64 + b"\xac"  # not on the curve: not compressed
    assert us.compress_script(script) is None


def test_metadata_layout_and_errors():
    base = bytes(range(32))
    meta = us.metadata(REGTEST, base, 1000)
    assert meta == b"utxo\xff" + b"\x02\x00" + REGTEST + base + (1000).to_bytes(8, "little")
    assert len(meta) == us.METADATA_SIZE
    assert us.read_metadata(Reader(meta), REGTEST) == (base, 1000)
    with pytest.raises(DeserializationError, match="Invalid UTXO set snapshot magic bytes"):
        us.read_metadata(Reader(b"utxo\xfe" + meta[5:]), REGTEST)
    with pytest.raises(DeserializationError, match="Version of snapshot 1 does not match"):
        us.read_metadata(Reader(meta[:5] + b"\x01\x00" + meta[7:]), REGTEST)
    main = meta[:7] + bytes.fromhex("f9beb4d9") + meta[11:]
    with pytest.raises(DeserializationError) as e:
        us.read_metadata(Reader(main), REGTEST)
    assert str(e.value) == ("The network of the snapshot (main) does not match the network "
                            "of this node (regtest).")
    with pytest.raises(DeserializationError, match="unrecognized network"):
        us.read_metadata(Reader(meta[:7] + b"\x01\x02\x03\x04" + meta[11:]), REGTEST)


def test_coins_grouped_by_txid_and_read_back():
    a, b = b"\x01" * 32, b"\x02" * 32
    coins = [(a, 0, Coin(1, b"\x51", 1, False)), (a, 5, Coin(2, b"\x52", 1, False)),
             (b, 300, Coin(3, b"\x53", 2, True))]
    data = b"".join(us.write_coins(coins))
    # Core's layout: txid, CompactSize count, then CompactSize vout + coin per output
    assert data[:32] == a and data[32] == 2 and data[33] == 0
    assert list(us.read_coins(Reader(data), 3)) == coins
    with pytest.raises(DeserializationError, match="Mismatch in coins count"):
        list(us.read_coins(Reader(data), 1))
