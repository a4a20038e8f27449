"""Coin selection as Bitcoin Core does it (wallet/coinselection.cpp), in its parts that matter
for one wallet's coins: Branch and Bound for a change-less exact match, and as fallbacks a
single random draw and largest-first accumulation; of the results, the one with the least
waste wins.

Amounts are satoshis and sizes weight units. A coin's effective value is its value less the
fee for spending it at the transaction's fee rate; waste is what the selection costs beyond
the cheapest possible: (fee now - fee at the long-term rate) per input, plus the cost of a
change output or, without one, the excess given to the miners.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

BNB_MAX_TRIES = 100_000


def fee_for(weight: int, fee_rate_kvb: int) -> int:
    """Fee of `weight` WU at sat/kvB: over the vsize (weight/4 rounded up), rounded up, as
    Core's CFeeRate::GetFee."""
    vsize = (weight + 3) // 4
    return (fee_rate_kvb * vsize + 999) // 1000


@dataclass(frozen=True)
class Candidate:
    key: object  # what the caller uses to find the coin again
    value: int
    input_weight: int


@dataclass
class Selection:
    coins: list[Candidate]
    algorithm: str
    waste: int
    change: bool  # whether the selection is meant to carry a change output


class InsufficientFunds(Exception):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"need {needed}, have {available}")
        self.needed = needed
        self.available = available


class MaxWeightExceeded(InsufficientFunds):
    """A selection covering the target was found, but only over the weight allowed for
    inputs (Core's ErrorMaxWeightExceeded)."""


class ChangeTooHeavy(InsufficientFunds):
    """No change-less selection, and no room for a change output within the weight allowed
    (Core: "can not accommodate change output")."""


class _WeightFlag:
    """Set by an algorithm that dropped a solution for its weight."""

    def __init__(self) -> None:
        self.hit = False


@dataclass(frozen=True)
class Params:
    fee_rate: int  # sat/kvB
    long_term_fee_rate: int  # sat/kvB (Core's -consolidatefeerate, 10 sat/vB)
    change_output_weight: int
    change_spend_weight: int
    min_change: int  # smallest change output worth making (above dust)
    subtract_fee: bool = False  # fees come out of the recipients: select by value

    def effective(self, c: Candidate) -> int:
        if self.subtract_fee:
            return c.value
        return c.value - fee_for(c.input_weight, self.fee_rate)

    @property
    def cost_of_change(self) -> int:
        return (fee_for(self.change_output_weight, self.fee_rate)
                + fee_for(self.change_spend_weight, self.long_term_fee_rate))

    def waste(self, coins: Sequence[Candidate], target: int, change: bool) -> int:
        w = sum(fee_for(c.input_weight, self.fee_rate)
                - fee_for(c.input_weight, self.long_term_fee_rate) for c in coins)
        if change:
            return w + self.cost_of_change
        return w + sum(self.effective(c) for c in coins) - target


def branch_and_bound(coins: Sequence[Candidate], target: int, p: Params,
                     max_weight: int | None = None, flag: _WeightFlag | None = None
                     ) -> list[Candidate] | None:
    """Core's SelectCoinsBnB: a depth-first search over coins by descending effective value
    for a set worth between target and target + cost_of_change, least waste first, and
    weighing at most max_weight."""
    pool = sorted((c for c in coins if p.effective(c) > 0), key=p.effective, reverse=True)
    eff = [p.effective(c) for c in pool]
    fees = [fee_for(c.input_weight, p.fee_rate) for c in pool]
    waste_of = [f - fee_for(c.input_weight, p.long_term_fee_rate) for f, c in zip(fees, pool)]
    upper = target + p.cost_of_change
    available = sum(eff)
    if available < target:
        return None
    high_fee = p.fee_rate > p.long_term_fee_rate
    best: list[int] | None = None
    best_waste = 0
    chosen: list[int] = []
    value = waste = weight = 0
    i = 0
    for _ in range(BNB_MAX_TRIES):
        backtrack = False
        if (value + available < target or value > upper
                or (best is not None and waste > best_waste and high_fee)):
            backtrack = True
        elif max_weight is not None and weight > max_weight:
            if flag is not None:
                flag.hit = True
            backtrack = True
        elif value >= target:
            total = waste + value - target
            if best is None or total <= best_waste:
                best, best_waste = list(chosen), total
            backtrack = True
        if backtrack:
            if not chosen:
                break  # every branch explored
            # put back the coins omitted after the last one included, then omit that one
            i -= 1
            while i > chosen[-1]:
                available += eff[i]
                i -= 1
            j = chosen.pop()
            value -= eff[j]
            waste -= waste_of[j]
            weight -= pool[j].input_weight
        else:
            available -= eff[i]
            # a coin equal to the one just omitted would only repeat the same sets
            if (not chosen or i - 1 == chosen[-1] or eff[i] != eff[i - 1]
                    or fees[i] != fees[i - 1]):
                chosen.append(i)
                value += eff[i]
                waste += waste_of[i]
                weight += pool[i].input_weight
        i += 1
    if best is None:
        return None
    return [pool[k] for k in best]


def single_random_draw(coins: Sequence[Candidate], target: int, p: Params,
                       rng: random.Random, max_weight: int | None = None,
                       flag: _WeightFlag | None = None) -> list[Candidate] | None:
    """Core's SelectCoinsSRD: coins in random order until they cover target plus change
    (over max_weight, the least valuable coin taken so far is put back)."""
    pool = [c for c in coins if p.effective(c) > 0]
    rng.shuffle(pool)
    out, total = _accumulate(pool, target, p, max_weight, flag)
    return out if total >= target + _change_need(p) else None


def largest_first(coins: Sequence[Candidate], target: int, p: Params,
                  max_weight: int | None = None, flag: _WeightFlag | None = None
                  ) -> list[Candidate] | None:
    """Fewest inputs: the biggest coins until target plus change is covered (or, failing that,
    at least target, the rest going to fees)."""
    pool = sorted((c for c in coins if p.effective(c) > 0), key=p.effective, reverse=True)
    out, total = _accumulate(pool, target, p, max_weight, flag)
    return out if total >= target else None


def lowest_larger(coins: Sequence[Candidate], target: int, p: Params,
                  max_weight: int | None = None, flag: _WeightFlag | None = None
                  ) -> list[Candidate] | None:
    """One coin covering target plus change, the cheapest to spend and then the smallest (as
    Core's knapsack falls back to its lowest larger coin): the same answer for the same
    coins, where the random draw may take a costlier one."""
    need = target + _change_need(p)
    fits = [c for c in coins if p.effective(c) >= need]
    if max_weight is not None:
        light = [c for c in fits if c.input_weight <= max_weight]
        if flag is not None and len(light) < len(fits):
            flag.hit = True
        fits = light
    if not fits:
        return None
    return [min(fits, key=lambda c: (c.input_weight, c.value))]


def _change_need(p: Params) -> int:
    """What a change output costs and must at least hold."""
    return p.min_change + fee_for(p.change_output_weight, p.fee_rate)


def _accumulate(pool: Sequence[Candidate], target: int, p: Params,
                max_weight: int | None = None, flag: _WeightFlag | None = None
                ) -> tuple[list[Candidate], int]:
    """Coins of pool in order until they cover target plus a change output (or all of them),
    and their effective value; whenever they weigh more than max_weight, the one of least
    effective value is dropped again."""
    need = target + _change_need(p)
    out: list[Candidate] = []
    total = weight = 0
    for c in pool:
        out.append(c)
        total += p.effective(c)
        weight += c.input_weight
        while max_weight is not None and weight > max_weight and out:
            if flag is not None:
                flag.hit = True
            least = min(range(len(out)), key=lambda k: p.effective(out[k]))
            dropped = out.pop(least)
            total -= p.effective(dropped)
            weight -= dropped.input_weight
        if total >= need:
            break
    return out, total


def select_coins(coins: Sequence[Candidate], target: int, p: Params,
                 rng: random.Random | None = None, max_weight: int | None = None
                 ) -> Selection:
    """The least-waste result of BnB (no change) and the fallbacks (with change when it is
    worth making). target is what the outputs and the transaction's fixed part need;
    max_weight, when given, what the inputs may weigh (Core's max_selection_weight: the
    fallbacks keep room for the change output within it). Raises MaxWeightExceeded when
    only selections over it would do."""
    rng = rng or random.Random()
    results: list[Selection] = []
    flag = _WeightFlag()
    bnb = None if p.subtract_fee else branch_and_bound(coins, target, p, max_weight, flag)
    if bnb is not None:
        results.append(Selection(bnb, "bnb", p.waste(bnb, target, False), False))
    rest = None if max_weight is None else max_weight - p.change_output_weight
    if rest is not None and rest < 0 and not results:
        raise ChangeTooHeavy(target, 0)
    for name, picked in (("srd", single_random_draw(coins, target, p, rng, rest, flag)),
                         ("largest_first", largest_first(coins, target, p, rest, flag)),
                         ("lowest_larger", lowest_larger(coins, target, p, rest, flag))):
        if picked is None:
            continue
        total = sum(p.effective(c) for c in picked)
        excess = total - target - fee_for(p.change_output_weight, p.fee_rate)
        change = excess >= p.min_change
        results.append(Selection(picked, name, p.waste(picked, target, change), change))
    if not results:
        available = sum(max(0, p.effective(c)) for c in coins)
        if flag.hit:
            raise MaxWeightExceeded(target, available)
        raise InsufficientFunds(target, available)
    # least waste; on a tie the fewer inputs, then BnB first (as listed)
    return min(results, key=lambda s: (s.waste, len(s.coins)))
