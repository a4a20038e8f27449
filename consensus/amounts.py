"""Amounts in satoshis, MAX_MONEY and the block subsidy schedule."""

from __future__ import annotations

COIN = 100_000_000
# Not the total supply, but the sanity bound Core uses for any single amount or sum.
MAX_MONEY = 21_000_000 * COIN


def money_range(value: int) -> bool:
    return 0 <= value <= MAX_MONEY


def block_subsidy(height: int, halving_interval: int) -> int:
    """New coins a block at `height` may create: 50 BTC halved every interval.

    After 64 halvings the shift would be undefined in C++; Core returns 0 from then on.
    """
    halvings = height // halving_interval
    if halvings >= 64:
        return 0
    return (50 * COIN) >> halvings
