"""UTXO set snapshots in Bitcoin Core's format (dumptxoutset / loadtxoutset, assumeutxo):
node/utxo_snapshot.h's metadata followed by the coins grouped by txid, each coin as Core's
Coin serialization (compressor.h, serialize.h VARINT).

    5 bytes    magic "utxo\\xff"
    u16        version (2)
    4 bytes    network magic (message start)
    32 bytes   base block hash
    u64        number of coins
    then per transaction: 32-byte txid, CompactSize count, and per output:
        CompactSize vout, VARINT(height * 2 + coinbase), VARINT(CompressAmount(value)),
        compressed script: 0x00 + 20 (P2PKH), 0x01 + 20 (P2SH), 0x02/0x03 + 32 (P2PK,
        compressed key), 0x04/0x05 + 32 (P2PK, uncompressed key: x and the parity of y),
        else VARINT(len + 6) + the script

Pure functions: the RPCs (node/rpc/txoutset.py) feed them the chain's coins.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from consensus.contextual import Coin
from consensus.serialize import DeserializationError, Reader, compact_size

SNAPSHOT_MAGIC = b"utxo\xff"
SNAPSHOT_VERSION = 2
SUPPORTED_VERSIONS = {SNAPSHOT_VERSION}
METADATA_SIZE = 5 + 2 + 4 + 32 + 8
MAX_SCRIPT_SIZE = 10_000
_SPECIAL_SCRIPTS = 6

# Message starts of the networks Core knows (kernel/chainparams.cpp), for its error texts.
NETWORK_MAGICS = {
    bytes.fromhex("f9beb4d9"): "main",
    bytes.fromhex("0b110907"): "test",
    bytes.fromhex("1c163f28"): "testnet4",
    bytes.fromhex("0a03cf40"): "signet",
    bytes.fromhex("fabfb5da"): "regtest",
}


# -- Core's VARINT (serialize.h, the default unsigned mode) ---------------------------------

def write_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if out else 0))
        if n <= 0x7F:
            break
        n = (n >> 7) - 1
    return bytes(reversed(out))


def read_varint(r: Reader, limit: int = 2**64 - 1) -> int:
    n = 0
    while True:
        ch = r.u8()
        if n > limit >> 7:
            raise DeserializationError("ReadVarInt(): size too large")
        n = (n << 7) | (ch & 0x7F)
        if ch & 0x80:
            if n == limit:
                raise DeserializationError("ReadVarInt(): size too large")
            n += 1
        else:
            return n


# -- amounts and scripts (compressor.cpp) ---------------------------------------------------

def compress_amount(n: int) -> int:
    if n == 0:
        return 0
    e = 0
    while n % 10 == 0 and e < 9:
        n //= 10
        e += 1
    if e < 9:
        d = n % 10
        n //= 10
        return 1 + (n * 9 + d - 1) * 10 + e
    return 1 + (n - 1) * 10 + 9


def decompress_amount(x: int) -> int:
    if x == 0:
        return 0
    x -= 1
    e = x % 10
    x //= 10
    if e < 9:
        d = x % 9 + 1
        x //= 9
        n = x * 10 + d
    else:
        n = x + 1
    return n * 10**e


def _full_pubkey_valid(pub: bytes) -> bool:
    from coincurve import PublicKey

    try:
        PublicKey(pub)
    except (ValueError, TypeError):
        return False
    return True


def compress_script(script: bytes) -> bytes | None:
    """Core's CompressScript: the special forms, or None."""
    n = len(script)
    if (n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac"):
        return b"\x00" + script[3:23]
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return b"\x01" + script[2:22]
    if n == 35 and script[0] == 33 and script[34] == 0xAC and script[1] in (2, 3):
        return script[1:34]
    if (n == 67 and script[0] == 65 and script[66] == 0xAC and script[1] == 4
            and _full_pubkey_valid(script[1:66])):
        return bytes((4 | (script[65] & 1),)) + script[2:34]
    return None


def decompress_script(kind: int, data: bytes) -> bytes:
    if kind == 0:
        return b"\x76\xa9\x14" + data + b"\x88\xac"
    if kind == 1:
        return b"\xa9\x14" + data + b"\x87"
    if kind in (2, 3):
        return b"\x21" + bytes((kind,)) + data + b"\xac"
    from coincurve import PublicKey  # 4, 5: the x coordinate and the parity of y

    try:
        full = PublicKey(bytes((kind - 2,)) + data).format(compressed=False)
    except (ValueError, TypeError):
        raise DeserializationError("snapshot: invalid compressed public key") from None
    return b"\x41" + full + b"\xac"


def serialize_coin(coin: Coin) -> bytes:
    out = write_varint(coin.height * 2 + int(coin.coinbase))
    out += write_varint(compress_amount(coin.value))
    special = compress_script(coin.script_pubkey)
    if special is not None:
        return out + special
    return out + write_varint(len(coin.script_pubkey) + _SPECIAL_SCRIPTS) + coin.script_pubkey


def deserialize_coin(r: Reader) -> Coin:
    code = read_varint(r, 2**32 - 1)
    value = decompress_amount(read_varint(r))
    size = read_varint(r, 2**32 - 1)
    if size < _SPECIAL_SCRIPTS:
        script = decompress_script(size, r.read(20 if size < 2 else 32))
    else:
        size -= _SPECIAL_SCRIPTS
        if size > MAX_SCRIPT_SIZE:  # as Core: kept as an unspendable OP_RETURN
            r.read(size)
            script = b"\x6a"
        else:
            script = r.read(size)
    return Coin(value, script, code >> 1, bool(code & 1))


# -- the file --------------------------------------------------------------------------------

def metadata(network_magic: bytes, base_hash: bytes, coins_count: int) -> bytes:
    return (SNAPSHOT_MAGIC + struct.pack("<H", SNAPSHOT_VERSION) + network_magic + base_hash
            + struct.pack("<Q", coins_count))


def read_metadata(r: Reader, network_magic: bytes) -> tuple[bytes, int]:
    """(base block hash, number of coins), with Core's SnapshotMetadata errors (raised as
    DeserializationError with its text)."""
    try:
        magic = r.read(5)
    except DeserializationError:
        raise DeserializationError("AutoFile::read: end of file") from None
    if magic != SNAPSHOT_MAGIC:
        raise DeserializationError(
            "Invalid UTXO set snapshot magic bytes. Please check if this is indeed a snapshot "
            "file or if you are using an outdated snapshot format.")
    try:
        version = r.u16()
        message = r.read(4)
        if version not in SUPPORTED_VERSIONS:
            raise DeserializationError(f"Version of snapshot {version} does not match any of "
                                       "the supported versions.")
        if message != network_magic:
            theirs = NETWORK_MAGICS.get(message)
            if theirs is None:
                raise DeserializationError(
                    "This snapshot has been created for an unrecognized network. This could "
                    "be a custom signet, a new testnet or possibly caused by data corruption.")
            raise DeserializationError(
                f"The network of the snapshot ({theirs}) does not match the network of this "
                f"node ({NETWORK_MAGICS.get(network_magic, 'unknown')}).")
        base = r.read(32)
        count = r.u64()
    except DeserializationError as err:
        if "end of data" in str(err) or "needs" in str(err):
            raise DeserializationError("AutoFile::read: end of file") from None
        raise
    return base, count


def write_coins(coins: Iterable[tuple[bytes, int, Coin]]) -> Iterator[bytes]:
    """The coin section, from (txid, vout, coin) in txid order (the UTXO database's), one
    chunk per transaction."""
    last = None
    group: list[bytes] = []

    def flush() -> bytes:
        return last + compact_size(len(group)) + b"".join(group)

    for txid, n, coin in coins:
        if txid != last:
            if group:
                yield flush()
            last, group = txid, []
        group.append(compact_size(n) + serialize_coin(coin))
    if group:
        yield flush()


def read_coins(r: Reader, count: int) -> Iterator[tuple[bytes, int, Coin]]:
    """The coins of a snapshot whose metadata said `count`."""
    left = count
    while left > 0:
        txid = r.read(32)
        per_tx = r.compact_size()
        if per_tx > left:
            raise DeserializationError("Mismatch in coins count in snapshot metadata and "
                                       "actual snapshot data")
        for _ in range(per_tx):
            n = r.compact_size()
            yield txid, n, deserialize_coin(r)
        left -= per_tx
