"""JSON for the wallet's server and CLI: Decimal amounts written as bare numbers, exactly as
given (50.00000000), and parsed back as Decimal so no amount goes through a float."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any


def dumps(obj: Any, indent: int | None = None) -> str:
    # Decimals become strings tagged with a random marker, then the tags and their quotes
    # are cut out. User text cannot forge the marker, so nothing else is ever unquoted.
    marker = "\x00" + os.urandom(6).hex() + ":"

    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return f"{marker}{o:f}"  # positional always: 0.00000000, never 0E-8
        if isinstance(o, bytes):
            return o.hex()
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    text = json.dumps(obj, indent=indent, default=default, ensure_ascii=False)
    tag = '"' + json.dumps(marker)[1:-1]
    pieces = text.split(tag)
    out = [pieces[0]]
    for piece in pieces[1:]:
        end = piece.index('"')
        out.append(piece[:end])
        out.append(piece[end + 1:])
    return "".join(out)


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)
