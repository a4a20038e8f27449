"""MuHash3072: Bitcoin Core's rolling set hash (src/crypto/muhash.{h,cpp}), used by
`gettxoutsetinfo hash_type=muhash` and the coinstats index.

An element is hashed to a number below 2^3072: SHA-256 of its bytes keys ChaCha20 (nonce 0,
counter 0), whose first 384 keystream bytes, read little-endian, are the number. A set is the
product of its elements modulo the prime 2^3072 - 1103717; removals multiply a denominator, so
the state is a fraction, and `finalize()` divides once and hashes the 384-byte little-endian
result with SHA-256. Order does not matter: insert(a), insert(b) equals insert(b), insert(a),
and insert(x), remove(x) is the empty set.

Python's integers do the 3072-bit arithmetic. ChaCha20 is written here (hashlib has none) twice:
`chacha20_block` is the plain RFC 8439 block function, and `_keystreams` runs the 6 blocks of
an element (and the elements of a batch) side by side as lanes of a few big integers, which
is what makes `insert_many` and `muhash_of_utxos` affordable in pure Python.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from consensus.serialize import compact_size

MODULUS_DIFF = 1103717
MODULUS = (1 << 3072) - MODULUS_DIFF  # the largest 3072-bit safe prime
BYTE_SIZE = 384  # Num3072::BYTE_SIZE
_MASK3072 = (1 << 3072) - 1

_sha256 = hashlib.sha256

# --- ChaCha20 (RFC 8439) ------------------------------------------------------------------------

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_M32 = 0xFFFFFFFF


def _quarter_round(x: list[int], a: int, b: int, c: int, d: int) -> None:
    xa, xb, xc, xd = x[a], x[b], x[c], x[d]
    xa = (xa + xb) & _M32
    xd ^= xa
    xd = ((xd << 16) | (xd >> 16)) & _M32
    xc = (xc + xd) & _M32
    xb ^= xc
    xb = ((xb << 12) | (xb >> 20)) & _M32
    xa = (xa + xb) & _M32
    xd ^= xa
    xd = ((xd << 8) | (xd >> 24)) & _M32
    xc = (xc + xd) & _M32
    xb ^= xc
    xb = ((xb << 7) | (xb >> 25)) & _M32
    x[a], x[b], x[c], x[d] = xa, xb, xc, xd


def chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    """RFC 8439 section 2.3: one 64-byte block (32-byte key, 32-bit counter, 12-byte nonce)."""
    if len(key) != 32 or len(nonce) != 12 or not 0 <= counter <= _M32:
        raise ValueError("chacha20_block needs a 32-byte key, a 12-byte nonce, a u32 counter")
    state = [*_SIGMA, *struct.unpack("<8I", key), counter, *struct.unpack("<3I", nonce)]
    x = list(state)
    for _ in range(10):
        _quarter_round(x, 0, 4, 8, 12)
        _quarter_round(x, 1, 5, 9, 13)
        _quarter_round(x, 2, 6, 10, 14)
        _quarter_round(x, 3, 7, 11, 15)
        _quarter_round(x, 0, 5, 10, 15)
        _quarter_round(x, 1, 6, 11, 12)
        _quarter_round(x, 2, 7, 8, 13)
        _quarter_round(x, 3, 4, 9, 14)
    return struct.pack("<16I", *((a + b) & _M32 for a, b in zip(x, state, strict=True)))


def chacha20_keystream(key: bytes, length: int, nonce: bytes = bytes(12), counter: int = 0
                       ) -> bytes:
    """The first `length` keystream bytes from block `counter` on (Core's ChaCha20Aligned
    with a zero nonce when nonce and counter are left alone)."""
    out = b"".join(chacha20_block(key, counter + i, nonce) for i in range(-(-length // 64)))
    return out[:length]


# --- ChaCha20 on lanes of big integers ----------------------------------------------------------
#
# The 16-word state is four rows of four words (a = words 0-3, b = 4-7, c = 8-11, d = 12-15).
# Each row is one integer holding, for every block being computed, its four words in 64-bit
# lanes: lane 4*m + k (bits 64*(4*m+k) up) is word k of the row in block m, where block m is
# block m % 6 of element m // 6. A column round is then a quarter round applied to whole rows;
# a diagonal round first rotates rows b, c, d by one, two and three lanes inside each block.
# Words stay below 2^32, so a sum carries into the unused top half of its lane, and a rotate
# shifts left by n and folds the top half back: ((x << n) | (x << n) >> 32) & low32.

_BLOCKS = BYTE_SIZE // 64  # keystream blocks per element: 6
_LANE_Q = struct.Struct("<4Q")
_KEY_WORDS = struct.Struct("<8I")


class _Lanes:
    """Masks and constant rows for a batch of n elements (6n blocks), built once per n."""

    __slots__ = ("m32", "l1", "l2", "l3", "row_a", "row_d", "p0", "p1", "q0", "q1", "spread")

    def __init__(self, n: int) -> None:
        blocks = n * _BLOCKS

        def rep(pattern: bytes) -> int:
            return int.from_bytes(pattern * blocks, "little")

        lane32 = b"\xff" * 4 + b"\x00" * 4
        full = b"\xff" * 8
        zero = b"\x00" * 8
        self.m32 = rep(lane32 * 4)
        self.l1 = rep(full + zero * 3)  # lane 0 of each block
        self.l2 = rep(full * 2 + zero * 2)  # lanes 0-1
        self.l3 = rep(full * 3 + zero)  # lanes 0-2
        self.row_a = rep(_LANE_Q.pack(*_SIGMA))
        self.row_d = int.from_bytes(
            b"".join(_LANE_Q.pack(i, 0, 0, 0) for i in range(_BLOCKS)) * n, "little"
        )
        # Packing a row's four words together: lanes 1 and 3 down by 32 bits, then the pair in
        # lanes 2-3 down by 64, leaving words 0-3 in the low 128 bits of each 256-bit block.
        w = b"\xff" * 4
        z = b"\x00" * 4
        self.p0 = rep(w + z * 3 + w + z * 3)  # bits 0-31 and 128-159 of each block
        self.p1 = rep(z + w + z * 2 + z + w + z * 2)  # bits 32-63 and 160-191
        self.q0 = rep(b"\xff" * 8 + b"\x00" * 24)  # bits 0-63
        self.q1 = rep(b"\x00" * 8 + b"\xff" * 8 + b"\x00" * 16)  # bits 64-127
        # Spreading 256-bit block halves from a 256-bit to a 512-bit pitch (Morton style: the
        # top half of every aligned run of 2^(k+1) halves moves up by 2^k halves, for k from
        # high to low), so that each element's 384 bytes come out contiguous.
        size = 1
        while size < blocks:
            size <<= 1
        steps = []
        k = size >> 1
        while k:
            ones = b"\xff" * (32 * k)
            zeros = b"\x00" * (32 * k)
            mask = int.from_bytes((ones + zeros) * (size // k), "little")
            steps.append((256 * k, mask))
            k >>= 1
        self.spread = tuple(steps)


_LANES_CACHE: dict[int, _Lanes] = {}


def _lanes(n: int) -> _Lanes:
    lanes = _LANES_CACHE.get(n)
    if lanes is None:
        if len(_LANES_CACHE) > 16:
            _LANES_CACHE.clear()
        lanes = _LANES_CACHE[n] = _Lanes(n)
    return lanes


def _keystreams(keys: Sequence[bytes]) -> int:
    """384 keystream bytes (nonce 0, counter 0) per key, as one integer: element i's bytes,
    read little-endian, are bits 3072*i up."""
    n = len(keys)
    ln = _lanes(n)
    m = ln.m32
    l1, l2, l3 = ln.l1, ln.l2, ln.l3
    unpack = _KEY_WORDS.unpack
    pack = _LANE_Q.pack
    rows_b = []
    rows_c = []
    for key in keys:
        w = unpack(key)
        rows_b.append(pack(w[0], w[1], w[2], w[3]) * _BLOCKS)
        rows_c.append(pack(w[4], w[5], w[6], w[7]) * _BLOCKS)
    a0 = a = ln.row_a
    b0 = b = int.from_bytes(b"".join(rows_b), "little")
    c0 = c = int.from_bytes(b"".join(rows_c), "little")
    d0 = d = ln.row_d
    for _ in range(10):
        # column round
        a = (a + b) & m
        t = (d ^ a) << 16
        d = (t | t >> 32) & m
        c = (c + d) & m
        t = (b ^ c) << 12
        b = (t | t >> 32) & m
        a = (a + b) & m
        t = (d ^ a) << 8
        d = (t | t >> 32) & m
        c = (c + d) & m
        t = (b ^ c) << 7
        b = (t | t >> 32) & m
        # diagonal round: lane k of b, c, d takes lane k+1, k+2, k+3 (mod 4)
        b = (b >> 64 & l3) | (b & l1) << 192
        c = (c >> 128 & l2) | (c & l2) << 128
        d = (d >> 192 & l1) | (d & l3) << 64
        a = (a + b) & m
        t = (d ^ a) << 16
        d = (t | t >> 32) & m
        c = (c + d) & m
        t = (b ^ c) << 12
        b = (t | t >> 32) & m
        a = (a + b) & m
        t = (d ^ a) << 8
        d = (t | t >> 32) & m
        c = (c + d) & m
        t = (b ^ c) << 7
        b = (t | t >> 32) & m
        b = (b >> 192 & l1) | (b & l3) << 64
        c = (c >> 128 & l2) | (c & l2) << 128
        d = (d >> 64 & l3) | (d & l1) << 192
    p0, p1, q0, q1 = ln.p0, ln.p1, ln.q0, ln.q1
    rows = []
    for x, x0 in ((a, a0), (b, b0), (c, c0), (d, d0)):
        x = (x + x0) & m
        x = (x & p0) | (x >> 32 & p1)
        rows.append((x & q0) | (x >> 64 & q1))
    ab = rows[0] | rows[1] << 128  # block m's words 0-7 in bits 256*m .. 256*m+255
    cd = rows[2] | rows[3] << 128  # and its words 8-15
    for shift, mask in ln.spread:
        ab = (ab | ab << shift) & mask
        cd = (cd | cd << shift) & mask
    return ab | cd << 256


def to_num3072(data: bytes) -> int:
    """Core's MuHash3072::ToNum3072: the number an element hashes to (not reduced)."""
    return _keystreams([_sha256(data).digest()])


def to_num3072_many(items: Iterable[bytes], batch: int = 128) -> Iterable[int]:
    """to_num3072 of each item, computed `batch` at a time."""
    keys: list[bytes] = []
    for data in items:
        keys.append(_sha256(data).digest())
        if len(keys) == batch:
            yield from _split(_keystreams(keys), len(keys))
            keys = []
    if keys:
        yield from _split(_keystreams(keys), len(keys))


def _split(packed: int, n: int) -> list[int]:
    if n == 1:
        return [packed]
    raw = packed.to_bytes(BYTE_SIZE * n, "little")
    return [int.from_bytes(raw[i : i + BYTE_SIZE], "little") for i in range(0, len(raw), BYTE_SIZE)]


# --- Num3072 arithmetic -------------------------------------------------------------------------


def _mulmod(a: int, b: int) -> int:
    """a * b mod 2^3072 - 1103717, fully reduced (a and b below 2^3072)."""
    x = a * b
    x = (x & _MASK3072) + (x >> 3072) * MODULUS_DIFF
    x = (x & _MASK3072) + (x >> 3072) * MODULUS_DIFF
    return x - MODULUS if x >= MODULUS else x


def _product(nums: Iterable[int], start: int = 1) -> int:
    acc = start
    for x in nums:
        acc = _mulmod(acc, x)
    return acc


def _inverse(x: int) -> int:
    """Core's Num3072::GetInverse (of a reduced value): 0 has no inverse and gives 0."""
    x %= MODULUS
    return pow(x, -1, MODULUS) if x else 0


class MuHash3072:
    """A set hash: numerator / denominator, each a number below 2^3072 (Core's Num3072).

    MuHash3072() is the empty set, MuHash3072(data) the set holding one element.
    """

    __slots__ = ("numerator", "denominator")

    def __init__(self, data: bytes | None = None) -> None:
        self.numerator = 1 if data is None else to_num3072(data)
        self.denominator = 1

    def insert(self, data: bytes) -> MuHash3072:
        self.numerator = _mulmod(self.numerator, to_num3072(data))
        return self

    def remove(self, data: bytes) -> MuHash3072:
        self.denominator = _mulmod(self.denominator, to_num3072(data))
        return self

    def insert_many(self, items: Iterable[bytes]) -> MuHash3072:
        """insert() each item; the same result, several times faster for many items."""
        self.numerator = _product(to_num3072_many(items), self.numerator)
        return self

    def remove_many(self, items: Iterable[bytes]) -> MuHash3072:
        self.denominator = _product(to_num3072_many(items), self.denominator)
        return self

    def combine(self, other: MuHash3072) -> MuHash3072:
        """In place: the hash of the union of the two sets (Core's operator*=)."""
        self.numerator = _mulmod(self.numerator, other.numerator)
        self.denominator = _mulmod(self.denominator, other.denominator)
        return self

    def difference(self, other: MuHash3072) -> MuHash3072:
        """In place: the hash of this set without the other's elements (Core's operator/=)."""
        self.numerator = _mulmod(self.numerator, other.denominator)
        self.denominator = _mulmod(self.denominator, other.numerator)
        return self

    def __imul__(self, other: MuHash3072) -> MuHash3072:
        return self.combine(other)

    def __itruediv__(self, other: MuHash3072) -> MuHash3072:
        return self.difference(other)

    def __mul__(self, other: MuHash3072) -> MuHash3072:
        return self.copy().combine(other)

    def __truediv__(self, other: MuHash3072) -> MuHash3072:
        return self.copy().difference(other)

    def copy(self) -> MuHash3072:
        out = MuHash3072()
        out.numerator = self.numerator
        out.denominator = self.denominator
        return out

    def finalize(self) -> bytes:
        """The 32-byte hash (a uint256 in internal order; shown reversed as hex by the RPC).

        Like Core, this folds the denominator into the numerator (the set is unchanged).
        """
        value = self.numerator % MODULUS
        if self.denominator % MODULUS != 1:
            value = _mulmod(value, _inverse(self.denominator))
        self.numerator = value
        self.denominator = 1
        return _sha256(value.to_bytes(BYTE_SIZE, "little")).digest()

    def serialize(self) -> bytes:
        """Core's serialization: numerator then denominator, 384 bytes little-endian each."""
        return self.numerator.to_bytes(BYTE_SIZE, "little") + self.denominator.to_bytes(
            BYTE_SIZE, "little"
        )

    @classmethod
    def deserialize(cls, data: bytes) -> MuHash3072:
        if len(data) != 2 * BYTE_SIZE:
            raise ValueError(f"MuHash3072 serialization is {2 * BYTE_SIZE} bytes, not {len(data)}")
        out = cls()
        out.numerator = int.from_bytes(data[:BYTE_SIZE], "little")
        out.denominator = int.from_bytes(data[BYTE_SIZE:], "little")
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when they hash the same set (compares the fractions, not the encodings)."""
        if not isinstance(other, MuHash3072):
            return NotImplemented
        return _mulmod(self.numerator % MODULUS, other.denominator % MODULUS) == _mulmod(
            other.numerator % MODULUS, self.denominator % MODULUS
        )

    __hash__ = None  # type: ignore[assignment]  # mutable


# --- the UTXO set -------------------------------------------------------------------------------

_OUTPOINT_CODE_VALUE = struct.Struct("<32sIIq")


def txout_ser(txid: bytes, n: int, coin: Any) -> bytes:
    """Core's TxOutSer (kernel/coinstats.cpp), the bytes hashed per coin by both
    hash_serialized_3 and muhash: outpoint | u32 (height << 1 | coinbase) | txout.

    txid is in internal byte order; coin has .value, .script_pubkey, .height and .coinbase.
    """
    spk = coin.script_pubkey
    return (
        _OUTPOINT_CODE_VALUE.pack(txid, n, coin.height << 1 | coin.coinbase, coin.value)
        + compact_size(len(spk))
        + spk
    )


def muhash_of_utxos(coins: Iterable[tuple[bytes, int, Any]]) -> bytes:
    """gettxoutsetinfo's muhash over (txid, n, coin) triples, in any order: the finalized
    32 bytes in internal order (the RPC shows them reversed, as uint256 hex)."""
    h = MuHash3072()
    h.insert_many(txout_ser(txid, n, coin) for txid, n, coin in coins)
    return h.finalize()
