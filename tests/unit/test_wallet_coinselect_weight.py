"""Coin selection within a weight limit (Core's max_tx_weight / max_selection_weight): every
algorithm keeps its inputs under the limit, and the errors tell a selection that only fails
for its weight (MaxWeightExceeded), or one with no room left for change (ChangeTooHeavy),
from plain insufficient funds."""

import random

import pytest

from wallet.coinselect import (
    Candidate,
    ChangeTooHeavy,
    InsufficientFunds,
    MaxWeightExceeded,
    Params,
    branch_and_bound,
    largest_first,
    select_coins,
    single_random_draw,
)

P = Params(fee_rate=5000, long_term_fee_rate=10000, change_output_weight=124,
           change_spend_weight=272, min_change=295)


def _coins(values, weight=272):
    return [Candidate(i, v, weight) for i, v in enumerate(values)]


def test_selections_stay_under_the_weight_limit():
    coins = _coins([10_000] * 20 + [200_000])
    for seed in range(20):
        sel = select_coins(coins, 150_000, P, random.Random(seed), max_weight=272 + 124)
        assert sum(c.input_weight for c in sel.coins) <= 272
        assert [c.value for c in sel.coins] == [200_000]


def test_srd_puts_back_the_least_valuable_coin_when_too_heavy():
    coins = _coins([5_000] * 10 + [100_000, 100_000])
    for seed in range(20):
        out = single_random_draw(coins, 150_000, P, random.Random(seed), max_weight=2 * 272)
        assert out is not None and sorted(c.value for c in out) == [100_000, 100_000]


def test_bnb_and_largest_first_respect_the_limit():
    coins = _coins([30_000, 30_000, 30_000, 30_000])
    target = 4 * P.effective(coins[0])
    assert branch_and_bound(coins, target, P) is not None
    assert branch_and_bound(coins, target, P, max_weight=3 * 272) is None
    assert largest_first(coins, target, P, max_weight=3 * 272) is None


def test_weight_errors_are_told_apart_from_insufficient_funds():
    coins = _coins([30_000] * 10)
    with pytest.raises(MaxWeightExceeded):
        select_coins(coins, 100_000, P, random.Random(1), max_weight=2 * 272 + 124)
    with pytest.raises(ChangeTooHeavy):  # no change-less set, no room for a change output
        select_coins(coins, 100_000, P, random.Random(1), max_weight=100)
    with pytest.raises(InsufficientFunds) as e:
        select_coins(coins, 10**9, P, random.Random(1), max_weight=10**6)
    assert type(e.value) is InsufficientFunds
