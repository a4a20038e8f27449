"""Script numbers (Core's CScriptNum): little-endian sign-magnitude byte strings."""

from __future__ import annotations

from consensus.script.errors import ScriptError

DEFAULT_MAX_NUM_SIZE = 4


def decode_num(data: bytes, require_minimal: bool, max_size: int = DEFAULT_MAX_NUM_SIZE) -> int:
    """Read a stack element as a number.

    Longer than max_size, or (with require_minimal) not minimally encoded: ScriptError SCRIPTNUM
    (Core throws scriptnum_error, which EvalScript turns into SCRIPT_ERR_SCRIPTNUM).
    """
    n = len(data)
    if n > max_size:
        raise ScriptError("SCRIPTNUM")
    if n == 0:
        return 0
    last = data[-1]
    if require_minimal and not last & 0x7F:
        # The top byte may only be 0x00/0x80 when it carries the sign bit for the byte below.
        if n == 1 or not data[-2] & 0x80:
            raise ScriptError("SCRIPTNUM")
    if last & 0x80:
        return -(int.from_bytes(data, "little") & ~(0x80 << (8 * (n - 1))))
    return int.from_bytes(data, "little")


def _encode(value: int) -> bytes:
    if value == 0:
        return b""
    neg = value < 0
    mag = -value if neg else value
    out = bytearray(mag.to_bytes((mag.bit_length() + 7) // 8, "little"))
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0x00)
    elif neg:
        out[-1] |= 0x80
    return bytes(out)


_SMALL = {i: _encode(i) for i in range(-1, 17)}


def encode_num(value: int) -> bytes:
    """A number as the minimal stack element (CScriptNum::serialize)."""
    r = _SMALL.get(value)
    return r if r is not None else _encode(value)


def cast_to_bool(data: bytes) -> bool:
    """Core's CastToBool: false for any zero-valued string, including negative zero."""
    if not data:
        return False
    last = data[-1]
    if last != 0 and last != 0x80:
        return True
    # Last byte is 0 or 0x80: true only if some earlier byte is non-zero.
    return any(data[:-1])
