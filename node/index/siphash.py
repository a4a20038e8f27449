"""SipHash-2-4 (Aumasson and Bernstein), as BIP158 uses it: a 128-bit key given as two
little-endian 64-bit words, a 64-bit result.

`siphash24` hashes one message. `siphash24_many` hashes many messages under one key several
times faster: it runs the same rounds for every message at once, each message a 64-bit lane of
a few big Python integers (lanes 128 bits apart, so that the carries of the additions land in
the gap and are masked away), which turns ~200 interpreted operations per message into ~200
big-integer operations per batch of messages of the same length.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

M64 = 0xFFFFFFFFFFFFFFFF
_C0, _C1, _C2, _C3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & M64


def _blocks(data: bytes) -> list[int]:
    """The message as 64-bit little-endian words, the last one carrying the length byte."""
    n = len(data)
    full = n // 8
    words = list(struct.unpack_from(f"<{full}Q", data)) if full else []
    tail = data[full * 8:]
    words.append(int.from_bytes(tail, "little") | ((n & 0xFF) << 56))
    return words


def siphash24(k0: int, k1: int, data: bytes) -> int:
    v0, v1, v2, v3 = k0 ^ _C0, k1 ^ _C1, k0 ^ _C2, k1 ^ _C3
    rounds = 2
    for m in _blocks(data) + [None]:  # None: the finalization (4 rounds)
        if m is None:
            v2 ^= 0xFF
            rounds = 4
        else:
            v3 ^= m
        for _ in range(rounds):
            v0 = (v0 + v1) & M64
            v1 = ((v1 << 13) | (v1 >> 51)) & M64
            v1 ^= v0
            v0 = ((v0 << 32) | (v0 >> 32)) & M64
            v2 = (v2 + v3) & M64
            v3 = ((v3 << 16) | (v3 >> 48)) & M64
            v3 ^= v2
            v0 = (v0 + v3) & M64
            v3 = ((v3 << 21) | (v3 >> 43)) & M64
            v3 ^= v0
            v2 = (v2 + v1) & M64
            v1 = ((v1 << 17) | (v1 >> 47)) & M64
            v1 ^= v2
            v2 = ((v2 << 32) | (v2 >> 32)) & M64
        if m is not None:
            v0 ^= m
    return v0 ^ v1 ^ v2 ^ v3


# -- many messages at once -----------------------------------------------------------------

_LANE = 128  # bits per lane: 64 of value, 64 of room for carries and shifted-out bits
_lane_cache: dict[int, tuple[int, int]] = {}


def _lane_consts(n: int) -> tuple[int, int]:
    """(ones, mask): 1 in every lane, and 2^64-1 in every lane, for n lanes."""
    got = _lane_cache.get(n)
    if got is None:
        ones = int.from_bytes((b"\x01" + bytes(_LANE // 8 - 1)) * n, "little")
        got = (ones, ones * M64)
        if len(_lane_cache) > 64:
            _lane_cache.clear()
        _lane_cache[n] = got
    return got


_Z8 = bytes(8)


def _unpack(x: int, n: int) -> list[int]:
    return list(struct.unpack(f"<{2 * n}Q", x.to_bytes(n * 16, "little"))[::2])


def _sipround_lanes(v0: int, v1: int, v2: int, v3: int, mask: int
                    ) -> tuple[int, int, int, int]:
    # rotl(x, b) per lane: (x << b | x >> (64 - b)) & mask, with x < 2^64 in every lane.
    v0 = (v0 + v1) & mask
    v1 = ((v1 << 13) | (v1 >> 51)) & mask
    v1 ^= v0
    v0 = ((v0 << 32) | (v0 >> 32)) & mask
    v2 = (v2 + v3) & mask
    v3 = ((v3 << 16) | (v3 >> 48)) & mask
    v3 ^= v2
    v0 = (v0 + v3) & mask
    v3 = ((v3 << 21) | (v3 >> 43)) & mask
    v3 ^= v0
    v2 = (v2 + v1) & mask
    v1 = ((v1 << 17) | (v1 >> 47)) & mask
    v1 ^= v2
    v2 = ((v2 << 32) | (v2 >> 32)) & mask
    return v0, v1, v2, v3


def _same_length(k0: int, k1: int, msgs: Sequence[bytes], n_blocks: int) -> list[int]:
    n = len(msgs)
    ones, mask = _lane_consts(n)
    v0, v1, v2, v3 = (ones * (k0 ^ _C0), ones * (k1 ^ _C1), ones * (k0 ^ _C2),
                      ones * (k1 ^ _C3))
    # Each message padded to its blocks, the length in the top byte of the last one.
    size = n_blocks * 8
    padded = [m + bytes(size - 1 - len(m)) + bytes((len(m) & 0xFF,)) for m in msgs]
    from_bytes = int.from_bytes
    z8 = _Z8
    for j in range(0, size, 8):
        m = from_bytes(b"".join([p[j:j + 8] + z8 for p in padded]), "little")
        v3 ^= m
        for _ in range(2):
            v0, v1, v2, v3 = _sipround_lanes(v0, v1, v2, v3, mask)
        v0 ^= m
    v2 ^= ones * 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sipround_lanes(v0, v1, v2, v3, mask)
    return _unpack(v0 ^ v1 ^ v2 ^ v3, n)


def siphash24_many(k0: int, k1: int, msgs: Sequence[bytes]) -> list[int]:
    """siphash24(k0, k1, m) for every m, in order."""
    if len(msgs) < 4:
        return [siphash24(k0, k1, m) for m in msgs]
    by_len: dict[int, list[int]] = {}
    for i, m in enumerate(msgs):
        by_len.setdefault(len(m) // 8, []).append(i)  # same number of 64-bit blocks
    out = [0] * len(msgs)
    for idx in by_len.values():
        if len(idx) < 4:
            for i in idx:
                out[i] = siphash24(k0, k1, msgs[i])
            continue
        n_blocks = len(msgs[idx[0]]) // 8 + 1
        for i, h in zip(idx, _same_length(k0, k1, [msgs[i] for i in idx], n_blocks)):
            out[i] = h
    return out
