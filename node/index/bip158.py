"""BIP158 compact block filters: the basic filter of a block, its hash and header.

The basic filter holds every scriptPubKey a block creates (but empty ones and OP_RETURN
outputs) and every scriptPubKey its inputs spend, each once, as a Golomb-coded set: each item
is hashed with SipHash-2-4 keyed by the first 16 bytes of the block hash, mapped to
[0, N * M) by a 64x64 -> 128-bit multiply (high half), sorted, and the differences written
as Golomb-Rice codes with parameter P (quotient in unary: q ones and a zero, then P bits of
remainder, most significant bit first). The encoded filter is CompactSize(N) then those bits,
padded with zeros to a byte. Filter hash: sha256d(encoded filter); filter header:
sha256d(filter hash || previous header), the genesis block's previous header being zeros.
"""

from __future__ import annotations

from collections.abc import Iterable

from consensus.hashes import sha256d
from consensus.serialize import Reader, compact_size
from node.index.siphash import siphash24_many

BASIC_P = 19
BASIC_M = 784931
OP_RETURN = 0x6A


def basic_elements(block, spent_scripts: Iterable[bytes]) -> set[bytes]:
    """The items of a block's basic filter: output scripts and the scripts its inputs spent
    (from the block's undo data)."""
    items = set()
    add = items.add
    for tx in block.txs:
        for out in tx.vout:
            spk = out.script_pubkey
            if spk and spk[0] != OP_RETURN:
                add(bytes(spk))
    for spk in spent_scripts:
        if spk:
            add(bytes(spk))
    return items


def _key(block_hash: bytes) -> tuple[int, int]:
    return int.from_bytes(block_hash[0:8], "little"), int.from_bytes(block_hash[8:16], "little")


def hashed_set(block_hash: bytes, items: Iterable[bytes], m: int = BASIC_M) -> list[int]:
    """The items mapped into [0, N*M), sorted."""
    items = list(items)
    k0, k1 = _key(block_hash)
    f = len(items) * m
    return sorted((h * f) >> 64 for h in siphash24_many(k0, k1, items))


def encode_gcs(values: list[int], p: int = BASIC_P) -> bytes:
    """CompactSize(N) and the Golomb-Rice coded differences of sorted values."""
    n = len(values)
    if n == 0:
        return compact_size(0)
    parts = []
    append = parts.append
    rmask = (1 << p) - 1
    fmt = f"0{p}b"
    last = 0
    for v in values:
        d = v - last
        last = v
        append("1" * (d >> p) + "0" + format(d & rmask, fmt))
    bits = "".join(parts)
    pad = -len(bits) % 8
    nbytes = (len(bits) + pad) // 8
    return compact_size(n) + int(bits + "0" * pad, 2).to_bytes(nbytes, "big")


def basic_filter(block, spent_scripts: Iterable[bytes]) -> bytes:
    """The encoded basic filter of a block."""
    items = basic_elements(block, spent_scripts)
    return encode_gcs(hashed_set(block.hash, items))


def filter_hash(encoded: bytes) -> bytes:
    return sha256d(encoded)


def filter_header(encoded: bytes, prev_header: bytes) -> bytes:
    return sha256d(sha256d(encoded) + prev_header)


# -- reading a filter (matching, tests) ----------------------------------------------------


def decode_gcs(encoded: bytes, p: int = BASIC_P) -> list[int]:
    """The sorted values of an encoded filter."""
    r = Reader(encoded)
    n = r.compact_size()
    rest = encoded[len(compact_size(n)):]
    bits = bin(int.from_bytes(rest, "big"))[2:].zfill(len(rest) * 8) if rest else ""
    out = []
    pos = 0
    last = 0
    for _ in range(n):
        q = 0
        while bits[pos] == "1":
            q += 1
            pos += 1
        pos += 1
        rem = int(bits[pos:pos + p], 2)
        pos += p
        last += (q << p) | rem
        out.append(last)
    return out


def match_any(encoded: bytes, block_hash: bytes, items: Iterable[bytes],
              m: int = BASIC_M, p: int = BASIC_P) -> bool:
    """Whether any item (probably) is in the filter (false positives at a rate of 1/m)."""
    decoded = decode_gcs(encoded, p)
    if not decoded:
        return False
    values = set(decoded)
    f = len(decoded) * m
    k0, k1 = _key(block_hash)
    return any((h * f) >> 64 in values for h in siphash24_many(k0, k1, [bytes(i) for i in items]))
