"""Coin selection: Branch and Bound finds the least-waste change-less set (checked against
brute force), the fallbacks cover the rest, and the least waste wins."""

import itertools
import random

import pytest

from wallet.coinselect import (
    Candidate,
    InsufficientFunds,
    Params,
    branch_and_bound,
    fee_for,
    largest_first,
    select_coins,
    single_random_draw,
)

P = Params(fee_rate=5000, long_term_fee_rate=10000, change_output_weight=124,
           change_spend_weight=272, min_change=295)


def _coins(values, weight=272):
    return [Candidate(i, v, weight) for i, v in enumerate(values)]


def test_fee_rounds_up_over_vsize():
    assert fee_for(4, 1000) == 1
    assert fee_for(5, 1000) == 2  # 5 WU is 2 vB
    assert fee_for(272, 5000) == 340
    assert fee_for(273, 1) == 1


def _brute(coins, target, p):
    best = None
    for k in range(1, len(coins) + 1):
        for comb in itertools.combinations(coins, k):
            v = sum(p.effective(c) for c in comb)
            if target <= v <= target + p.cost_of_change:
                w = p.waste(comb, target, False)
                best = w if best is None or w < best else best
    return best


@pytest.mark.parametrize("seed", range(25))
def test_bnb_matches_brute_force(seed):
    rng = random.Random(seed)
    coins = _coins([rng.choice([1, 2, 5, 10, 20, 50]) * 10_000 + rng.randrange(3) * 700
                    for _ in range(9)])
    total = sum(P.effective(c) for c in coins)
    for target in (rng.randrange(10_000, total) for _ in range(6)):
        got = branch_and_bound(coins, target, P)
        want = _brute(coins, target, P)
        if want is None:
            assert got is None
        else:
            assert got is not None
            value = sum(P.effective(c) for c in got)
            assert target <= value <= target + P.cost_of_change
            assert P.waste(got, target, False) == want


def test_bnb_exact_match_is_chosen_over_change():
    coins = _coins([100_000, 60_000, 40_000, 30_000])
    target = 70_000 - 2 * fee_for(272, P.fee_rate)
    sel = select_coins(coins, target, P, random.Random(1))
    assert sel.algorithm == "bnb" and not sel.change
    assert sorted(c.value for c in sel.coins) == [30_000, 40_000]


def test_fallback_with_change_when_no_exact_match():
    coins = _coins([100_000, 300_000])
    sel = select_coins(coins, 150_000, P, random.Random(1))
    assert sel.change
    assert [c.value for c in sel.coins] == [300_000]  # least waste: one input, not two


def test_low_fee_rate_prefers_consolidating_many_inputs():
    # below the long-term rate, each extra input *lowers* waste (cheaper now than later)
    cheap = Params(1000, 10000, 124, 272, 295)
    coins = _coins([50_000] * 6)
    sel = select_coins(coins, 120_000, cheap, random.Random(3))
    assert cheap.waste(sel.coins, 120_000, sel.change) < 0
    assert len(sel.coins) >= 3


def test_srd_and_largest_first_cover_target_and_change():
    coins = _coins([10_000, 20_000, 500_000, 7_000])
    need = 100_000 + P.min_change + fee_for(P.change_output_weight, P.fee_rate)
    srd = single_random_draw(coins, 100_000, P, random.Random(5))
    assert sum(P.effective(c) for c in srd) >= need
    lf = largest_first(coins, 100_000, P)
    assert [c.value for c in lf] == [500_000]


def test_uneconomic_coins_are_never_picked():
    dust = _coins([300, 200])  # worth less than the fee to spend them at 5 sat/vB
    with pytest.raises(InsufficientFunds):
        select_coins(dust, 100, P)


def test_insufficient_funds_reports_amounts():
    with pytest.raises(InsufficientFunds) as e:
        select_coins(_coins([10_000, 20_000]), 1_000_000, P)
    assert e.value.needed == 1_000_000
    assert e.value.available == 30_000 - 2 * fee_for(272, P.fee_rate)


def test_subtract_fee_selects_by_value():
    p = Params(5000, 10000, 124, 272, 295, subtract_fee=True)
    coins = _coins([50_000, 50_000])
    sel = select_coins(coins, 100_000, p, random.Random(1))
    assert sum(c.value for c in sel.coins) == 100_000
