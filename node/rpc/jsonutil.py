"""JSON encoding as Bitcoin Core writes it: BTC values as numbers with exactly 8 decimals
(50.00000000), doubles with 16 significant digits."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal

from consensus.amounts import COIN


class Amount(int):
    """Satoshis that serialize as a BTC number with 8 decimals."""

    __slots__ = ()

    def btc_str(self) -> str:
        sign = "-" if self < 0 else ""
        q, r = divmod(abs(int(self)), COIN)
        return f"{sign}{q}.{r:08d}"


def btc(sats: int) -> Amount:
    return Amount(sats)


def _prepare(obj, marker: str):
    """Replace Amounts (and Decimals) with marker strings the C encoder passes through."""
    if isinstance(obj, Amount):
        return f"{marker}{obj.btc_str()}"
    if isinstance(obj, dict):
        return {k: _prepare(v, marker) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_prepare(v, marker) for v in obj]
    if isinstance(obj, Decimal):
        return f"{marker}{obj}"
    if isinstance(obj, float):
        # UniValue writes doubles with 16 significant digits (4.656542373906925e-10, 1).
        return f"{marker}{obj:.16g}"
    return obj


def dumps(obj, indent: int | None = None) -> str:
    """json.dumps with exact amounts. A random per-call marker makes it impossible for user
    data (which is never trusted) to be mistaken for an amount."""
    marker = "\x00" + os.urandom(6).hex() + ":"
    text = json.dumps(_prepare(obj, marker), indent=indent, ensure_ascii=False,
                      separators=(",", ": ") if indent is not None else (",", ":"))
    enc = json.dumps(marker)[1:-1]  # the marker as it appears inside a JSON string
    return re.sub('"' + re.escape(enc) + r'(-?[0-9.]+(?:e[-+]?[0-9]+)?)"', r"\1", text)


def parse_amount(value, name: str = "amount") -> int:
    """A BTC amount from JSON (number or string) to satoshis, as Core's AmountFromValue:
    at most 8 decimals, within MAX_MONEY. Raises ValueError with Core's messages."""
    from consensus.amounts import MAX_MONEY

    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TypeError("Amount is not a number or string")
    try:
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except Exception:
        raise ValueError("Invalid amount") from None
    if not d.is_finite():
        raise ValueError("Invalid amount")
    sats = d * COIN
    if sats != sats.to_integral_value():
        raise ValueError("Invalid amount")
    sats = int(sats)
    if sats < 0:
        raise ValueError("Amount out of range")
    if sats > MAX_MONEY:
        raise ValueError("Amount out of range")
    return sats
