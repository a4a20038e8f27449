"""JSON encoding as Bitcoin Core writes it: BTC values as numbers with exactly 8 decimals
(50.00000000), doubles with 16 significant digits."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import orjson

from consensus.amounts import COIN


class JSONObject(dict):
    """A JSON object written with a key more than once: as a dict the last value wins (as
    with json.loads), and `pairs` keeps every pair in order, as UniValue does (Core's
    createrawtransaction sees {"addr": 1, "addr": 1} as a duplicated address)."""

    pairs: list


def json_object(pairs: list) -> dict:
    """object_pairs_hook for json.loads: a plain dict unless a key repeats."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = JSONObject(obj)
    dup.pairs = pairs
    return dup


class Amount:
    """Satoshis that serialize as a BTC number with exactly 8 decimals."""

    __slots__ = ("sats",)

    def __init__(self, sats: int) -> None:
        self.sats = sats

    def btc_str(self) -> str:
        sign = "-" if self.sats < 0 else ""
        q, r = divmod(abs(self.sats), COIN)
        return f"{sign}{q}.{r:08d}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Amount) and other.sats == self.sats

    def __repr__(self) -> str:
        return f"Amount({self.btc_str()})"


class Double:
    """A float written as UniValue writes doubles: 16 significant digits."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


def btc(sats: int) -> Amount:
    return Amount(sats)


def double(value: float) -> Double:
    return Double(value)


def _tagger(marker: str):
    def default(o):
        if isinstance(o, Amount):
            return marker + o.btc_str()
        if isinstance(o, Double):
            return f"{marker}{o.value:.16g}"
        if isinstance(o, Decimal):
            return f"{marker}{o}"
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
    return default


def dumps_bytes(obj) -> bytes:
    """dumps as UTF-8 bytes with a newline at the end (an RPC reply), made with as few
    copies as possible: a big reply (a getblock 2, a decodescript of megabytes) is written
    once by orjson and only copied again when it holds numbers to unquote. A lone surrogate
    in a string is written as its JSON escape (\\ud800)."""
    marker = "\x00" + os.urandom(6).hex() + ":"
    try:
        data = orjson.dumps(obj, default=_tagger(marker), option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as err:
        if isinstance(err.__cause__, TypeError):
            raise err.__cause__ from None
        # (integers beyond 64 bits, lone surrogates: the stdlib encoder's way)
        return (dumps(obj) + "\n").encode("utf-8", "backslashreplace")
    tag = ('"' + json.dumps(marker)[1:-1]).encode()
    if tag not in data:
        return data
    pieces = data.split(tag)
    out = [pieces[0]]
    for piece in pieces[1:]:
        end = piece.index(b'"')
        out.append(piece[:end])
        out.append(piece[end + 1:])
    del data, pieces
    return b"".join(out)


def dumps(obj, indent: int | None = None) -> str:
    """JSON text with Amounts, Doubles and Decimals written as exact numbers.

    The encoder hands them to `default`, which returns them as strings tagged with a random
    per-call marker; the tags are then removed, leaving bare numbers. User data (never
    trusted) cannot forge the marker, so nothing else is ever unquoted. orjson does the
    encoding (about ten times faster than json on big replies such as getblock 2); the
    stdlib encoder takes over for what orjson refuses (integers beyond 64 bits, indent)."""
    marker = "\x00" + os.urandom(6).hex() + ":"
    default = _tagger(marker)
    text = None
    if indent is None:
        try:
            text = orjson.dumps(obj, default=default).decode()
        except orjson.JSONEncodeError as err:
            if isinstance(err.__cause__, TypeError):
                raise err.__cause__ from None  # an unserializable object: as json would
    if text is None:
        text = json.dumps(obj, indent=indent, ensure_ascii=False, default=default,
                          separators=(",", ": ") if indent is not None else (",", ":"))
    # Unquote: each tagged string is `"<marker><number>"`; drop the opening quote with the
    # marker and the closing quote after the number (split/join: faster than a regex).
    pieces = text.split('"' + json.dumps(marker)[1:-1])
    out = [pieces[0]]
    for piece in pieces[1:]:
        end = piece.index('"')
        out.append(piece[:end])
        out.append(piece[end + 1:])
    return "".join(out)


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
