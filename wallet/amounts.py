"""BTC amounts at the RPC edge: JSON numbers with up to 8 decimals <-> integer satoshis.

Inside the wallet every amount is an int of satoshis; only requests and replies carry BTC.
Replies carry Decimal values quantized to 8 places, written as bare numbers by wallet.jsonrpc.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from consensus.amounts import COIN, MAX_MONEY
from wallet.errors import RPC_TYPE_ERROR, WalletError


def to_btc(sats: int) -> Decimal:
    """Exactly 8 decimals, zero included (0.00000000, not 0E-8)."""
    return Decimal(format_btc(sats))


def format_btc(sats: int) -> str:
    sign = "-" if sats < 0 else ""
    q, r = divmod(abs(sats), COIN)
    return f"{sign}{q}.{r:08d}"


def quantize_btc(value: object) -> Decimal:
    """A BTC amount from a reply (Decimal, int, float or text) as Core prints it: exactly 8
    decimals (0.00000000 in text, not 0E-8: see btc_text)."""
    return Decimal(str(value)).quantize(Decimal("0.00000001"))


def btc_text(value: object) -> str:
    """quantize_btc's amount as text: '1.50000000', '0.00000000'."""
    return format(quantize_btc(value), "f")


def json_integer(value: int | float | Decimal) -> int:
    """A JSON number as an integer (UniValue's getInt), its range checked before any
    conversion: int() of a Decimal such as 1E+1000000 would build a million-digit integer
    while holding the GIL. Not finite, over 19 digits or not integral: ValueError with
    Core's text ("JSON integer out of range"); callers give it their error type."""
    if isinstance(value, int):
        return value
    d = value if isinstance(value, Decimal) else Decimal(value)
    if not d.is_finite() or d.adjusted() > 18 or d != d.to_integral_value():
        raise ValueError("JSON integer out of range")
    return int(d)


def _decimal(value: object) -> Decimal:
    """A finite JSON number or numeric string, with Core's errors."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise WalletError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise WalletError(RPC_TYPE_ERROR, "Invalid amount") from None
    if not d.is_finite():
        raise WalletError(RPC_TYPE_ERROR, "Invalid amount")
    return d


def parse_btc(value: object, allow_zero: bool = True) -> int:
    """A BTC amount (number or numeric string) to satoshis, with Core's AmountFromValue errors."""
    sats = _decimal(value) * COIN
    if sats != sats.to_integral_value() or abs(sats) >= 10**18:  # (ParseFixedPoint's bound)
        raise WalletError(RPC_TYPE_ERROR, "Invalid amount")
    n = int(sats)
    if n < 0 or n > MAX_MONEY:
        raise WalletError(RPC_TYPE_ERROR, "Amount out of range")
    if n == 0 and not allow_zero:
        raise WalletError(RPC_TYPE_ERROR, "Invalid amount for send")
    return n


def parse_fee_rate_sat_vb(value: object) -> int:
    """A fee rate in sat/vB (may have up to 3 decimals, as Core) to sat/kvB."""
    d = _decimal(value)
    kvb = d * 1000
    # Core's AmountFromValue(value, 3): ParseFixedPoint (3 decimals, under 10^18), then the
    # money range
    if kvb != kvb.to_integral_value() or abs(kvb) >= 10**18:
        raise WalletError(RPC_TYPE_ERROR, "Invalid amount")
    if kvb < 0 or kvb > MAX_MONEY:
        raise WalletError(RPC_TYPE_ERROR, "Amount out of range")
    return int(kvb)
