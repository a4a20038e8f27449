"""Proof of work: compact "bits" <-> 256-bit targets, block work, difficulty retargeting."""

from __future__ import annotations

from typing import Protocol

from consensus.params import ChainParams

_MASK256 = (1 << 256) - 1


def compact_to_target(bits: int) -> tuple[int, bool, bool]:
    """arith_uint256::SetCompact: (target, negative, overflow).

    The compact form is a base-256 float: one size byte and a 23-bit mantissa with a sign bit.
    """
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)  # the shifted word decides sign and overflow below
        target = word
    else:
        target = (word << (8 * (size - 3))) & _MASK256
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    return target, negative, overflow


def target_to_compact(target: int, negative: bool = False) -> int:
    """arith_uint256::GetCompact."""
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = (target << (8 * (3 - size))) & 0xFFFFFFFF
    else:
        compact = (target >> (8 * (size - 3))) & 0xFFFFFFFF
    # The mantissa's top bit is the sign bit, so keep it clear by growing the exponent.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and (compact & 0x007FFFFF):
        compact |= 0x00800000
    return compact


def block_work(bits: int) -> int:
    """Expected number of hashes for a block at this target: 2**256 / (target + 1)."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0:
        return 0
    return (1 << 256) // (target + 1)


def check_proof_of_work(block_hash: bytes, bits: int, params: ChainParams) -> bool:
    """The hash, read as a little-endian number, must not exceed a valid target."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        return False
    return int.from_bytes(block_hash, "little") <= target


class HeaderLike(Protocol):
    """What the retarget rule needs of the previous block's index entry."""

    height: int
    bits: int
    time: int

    @property
    def prev(self) -> HeaderLike | None: ...

    def ancestor(self, height: int) -> HeaderLike: ...


def calculate_next_work(last: HeaderLike, first_block_time: int, params: ChainParams) -> int:
    """Core's CalculateNextWorkRequired: scale the target by the last interval's duration."""
    if params.pow_no_retargeting:
        return last.bits
    timespan = last.time - first_block_time
    lo, hi = params.pow_target_timespan // 4, params.pow_target_timespan * 4
    timespan = min(max(timespan, lo), hi)
    target = compact_to_target(last.bits)[0]
    target = (target * timespan) & _MASK256
    target //= params.pow_target_timespan
    target = min(target, params.pow_limit)
    return target_to_compact(target)


def next_work_required(last: HeaderLike, new_time: int, params: ChainParams) -> int:
    """Core's GetNextWorkRequired: the bits a block following `last` must carry."""
    limit_bits = target_to_compact(params.pow_limit)
    interval = params.difficulty_adjustment_interval
    if (last.height + 1) % interval != 0:
        if params.pow_allow_min_difficulty_blocks:
            if params.pow_no_retargeting:
                # Shortcut of the walk below: without retargeting every block of the chain
                # carries the genesis bits, so the walk would return exactly last.bits.
                return last.bits
            # Testnet rule: a block more than 20 minutes late may use the minimum difficulty;
            # otherwise use the last bits that were not such a special block.
            if new_time > last.time + params.pow_target_spacing * 2:
                return limit_bits
            node = last
            while node.prev is not None and node.height % interval != 0 and node.bits == limit_bits:
                node = node.prev
            return node.bits
        return last.bits
    first = last.ancestor(last.height - (interval - 1))
    return calculate_next_work(last, first.time, params)
