"""Bech32 (BIP173) and Bech32m (BIP350), segwit addresses, and Core-style error location.

`locate_errors` reproduces what Bitcoin Core's validateaddress reports in "error" and
"error_locations": it finds up to two substituted characters with the BCH code's syndromes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
MAX_LENGTH = 90  # BIP173's limit for a whole address string


class Encoding(Enum):
    """The checksum variant; the value is the constant the polymod must equal."""

    BECH32 = 1
    BECH32M = 0x2BC830A3


class Bech32Error(ValueError):
    """A string that does not decode; `locations` are the suspect character positions."""

    def __init__(self, message: str, locations: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.locations = list(locations)


class SegwitAddressError(ValueError):
    """A valid Bech32(m) string that is not a valid segwit address (BIP173/BIP350 rules)."""


# --- the checksum -------------------------------------------------------------------------------

_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


# XOR of the generators selected by each 5-bit value of the top bits: one lookup per step.
_GEN_TABLE = tuple(
    _GEN[0] * (v & 1) ^ _GEN[1] * (v >> 1 & 1) ^ _GEN[2] * (v >> 2 & 1)
    ^ _GEN[3] * (v >> 3 & 1) ^ _GEN[4] * (v >> 4 & 1)
    for v in range(32)
)


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    table = _GEN_TABLE
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _create_checksum(hrp: str, data: Sequence[int], encoding: Encoding) -> list[int]:
    mod = _polymod(_hrp_expand(hrp) + list(data) + [0] * 6) ^ encoding.value
    return [(mod >> (5 * (5 - i))) & 31 for i in range(6)]


def bech32_encode(hrp: str, data: Sequence[int], encoding: Encoding) -> str:
    """Encode 5-bit values under a lowercase HRP."""
    if any(c.isupper() for c in hrp):
        raise ValueError("the human-readable part must be lowercase")
    if any(not 0 <= v < 32 for v in data):
        raise ValueError("data values must be 5-bit")
    combined = list(data) + _create_checksum(hrp, data, encoding)
    return hrp + "1" + "".join(CHARSET[v] for v in combined)


def _check_characters(s: str) -> list[int]:
    """Positions of characters outside 33..126, and of case changes after the first letter."""
    bad = []
    lower = upper = False
    for i, c in enumerate(s):
        o = ord(c)
        if "a" <= c <= "z":
            if upper:
                bad.append(i)
            else:
                lower = True
        elif "A" <= c <= "Z":
            if lower:
                bad.append(i)
            else:
                upper = True
        elif o < 33 or o > 126:
            bad.append(i)
    return bad


def bech32_decode(s: str, max_len: int = MAX_LENGTH) -> tuple[Encoding, str, list[int]]:
    """Decode to (encoding, lowercase hrp, 5-bit data without checksum).

    Raises Bech32Error with Core's message and error positions (see locate_errors).
    """
    ok = (
        not _check_characters(s)
        and len(s) <= max_len
        and 0 < s.rfind("1")
        and s.rfind("1") + 7 <= len(s)
    )
    if ok:
        pos = s.rfind("1")
        values = [_CHARSET_REV.get(c.lower()) for c in s[pos + 1 :]]
        if None not in values:
            hrp = s[:pos].lower()
            data = [v for v in values if v is not None]
            check = _polymod(_hrp_expand(hrp) + data)
            for enc in Encoding:
                if check == enc.value:
                    return enc, hrp, data[:-6]
    message, locations = locate_errors(s, max_len)
    raise Bech32Error(message or "Invalid Bech32 string", locations)


# --- error location (GF(1024) syndromes of the BCH code) ----------------------------------------


def _gf_tables() -> tuple[list[int], list[int]]:
    # GF(32) is GF(2)[x]/(x^5 + x^3 + 1); GF(1024) extends it by e^2 + 9e + 23.
    exp32 = [0] * 31
    log32 = [-1] * 32
    exp32[0], log32[1] = 1, 0
    v = 1
    for i in range(1, 31):
        v <<= 1
        if v & 32:
            v ^= 41
        exp32[i], log32[v] = v, i

    def mul32(a: int, b_log: int) -> int:
        return exp32[(log32[a] + b_log) % 31] if a else 0

    exp = [0] * 1023
    log = [-1] * 1024
    exp[0], log[1] = 1, 0
    v = 1
    for i in range(1, 1023):
        v0, v1 = v & 31, v >> 5
        v = ((mul32(v1, log32[9]) ^ v0) << 5) | mul32(v1, log32[23])
        exp[i], log[v] = v, i
    return exp, log


_GF_EXP, _GF_LOG = _gf_tables()


def _syndrome_constants() -> list[int]:
    out = []
    for k in range(1, 6):
        for shift in range(5):
            b = _GF_LOG[1 << shift]
            c0, c1, c2 = (_GF_EXP[(j * k + b) % 1023] for j in (997, 998, 999))
            out.append(c2 << 20 | c1 << 10 | c0)
    return out


_SYNDROME = _syndrome_constants()


def _syndrome(residue: int) -> int:
    low = residue & 0x1F
    result = low ^ (low << 10) ^ (low << 20)
    for i in range(25):
        if (residue >> (5 + i)) & 1:
            result ^= _SYNDROME[i]
    return result


def _exp_log(log_value: int, add: int) -> int:
    return _GF_EXP[(log_value + add) % 1023]


def _error_positions(residue: int, length: int, str_len: int) -> list[int]:
    """Positions (from the left of the string) of one or two substitutions explaining residue."""
    syn = _syndrome(residue)
    s0, s1, s2 = syn & 0x3FF, (syn >> 10) & 0x3FF, syn >> 20
    l_s0, l_s1, l_s2 = _GF_LOG[s0], _GF_LOG[s1], _GF_LOG[s2]
    # One error e1*x^p1 gives s1^2 == s0*s2, and p1 = log(s1/s0).
    if l_s0 != -1 and l_s1 != -1 and l_s2 != -1 and (2 * l_s1 - l_s2 - l_s0 + 2046) % 1023 == 0:
        p1 = (l_s1 - l_s0 + 1023) % 1023
        l_e1 = l_s0 + (1023 - 997) * p1
        # The error value must lie in GF(32), the subgroup of powers that are multiples of 33.
        if p1 < length and l_e1 % 33 == 0:
            return [str_len - p1 - 1]
        return []
    # Two errors: try each first position and solve for the second.
    for p1 in range(length):
        s2_s1p1 = s2 ^ (_exp_log(l_s1, p1) if s1 else 0)
        if not s2_s1p1:
            continue
        s1_s0p1 = s1 ^ (_exp_log(l_s0, p1) if s0 else 0)
        if not s1_s0p1:
            continue
        l_s1_s0p1 = _GF_LOG[s1_s0p1]
        p2 = (_GF_LOG[s2_s1p1] - l_s1_s0p1 + 1023) % 1023
        if p2 >= length or p1 == p2:
            continue
        s1_s0p2 = s1 ^ (_exp_log(l_s0, p2) if s0 else 0)
        if not s1_s0p2:
            continue
        inv_p1_p2 = 1023 - _GF_LOG[_GF_EXP[p1] ^ _GF_EXP[p2]]
        l_e2 = l_s1_s0p1 + inv_p1_p2 + (1023 - 997) * p2
        if l_e2 % 33:
            continue
        l_e1 = _GF_LOG[s1_s0p2] + inv_p1_p2 + (1023 - 997) * p1
        if l_e1 % 33:
            continue
        return sorted([str_len - p1 - 1, str_len - p2 - 1])
    return []


def locate_errors(s: str, max_len: int = MAX_LENGTH) -> tuple[str, list[int]]:
    """Core's bech32::LocateErrors: ("", []) for a valid string, else (message, positions).

    Messages: "Bech32 string too long", "Invalid character or mixed case", "Missing separator",
    "Invalid separator position", "Invalid Base 32 character", "Invalid Bech32 checksum",
    "Invalid Bech32m checksum", "Invalid checksum".
    """
    if len(s) > max_len:
        return "Bech32 string too long", list(range(max_len, len(s)))
    bad = _check_characters(s)
    if bad:
        return "Invalid character or mixed case", bad
    pos = s.rfind("1")
    if pos == -1:
        return "Missing separator", []
    if pos == 0 or pos + 7 > len(s):
        return "Invalid separator position", [pos]
    hrp = s[:pos].lower()
    values = []
    for i in range(pos + 1, len(s)):
        v = _CHARSET_REV.get(s[i].lower())
        if v is None:
            return "Invalid Base 32 character", [i]
        values.append(v)
    length = len(values)
    poly = _polymod(_hrp_expand(hrp) + values)
    best: list[int] = []
    best_enc: Encoding | None = None
    # The witness version may itself be wrong, so try both checksums and keep the fewer errors.
    for enc in (Encoding.BECH32, Encoding.BECH32M):
        residue = poly ^ enc.value
        if residue == 0:
            return "", []
        found = _error_positions(residue, length, len(s))
        if not best or (found and len(found) < len(best)):
            best = found
            if found:
                best_enc = enc
    if best_enc is Encoding.BECH32M:
        return "Invalid Bech32m checksum", best
    if best_enc is Encoding.BECH32:
        return "Invalid Bech32 checksum", best
    return "Invalid checksum", best


# --- segwit addresses ---------------------------------------------------------------------------


def convertbits(data: Iterable[int], frombits: int, tobits: int, pad: bool) -> list[int] | None:
    """Regroup bits; None when a value is out of range or (without pad) the padding is bad."""
    acc = bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            return None
        acc = ((acc << frombits) | value) & ((1 << (frombits + tobits - 1)) - 1)
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return out


def encode_segwit_address(hrp: str, version: int, program: bytes) -> str:
    """Witness version 0 uses Bech32, 1..16 Bech32m (BIP350)."""
    if not 0 <= version <= 16:
        raise SegwitAddressError(f"Invalid witness version {version}")
    if not 2 <= len(program) <= 40:
        raise SegwitAddressError(f"Invalid program length ({len(program)} bytes)")
    if version == 0 and len(program) not in (20, 32):
        raise SegwitAddressError("Invalid program length for witness version 0 (per BIP141)")
    enc = Encoding.BECH32 if version == 0 else Encoding.BECH32M
    five = convertbits(program, 8, 5, True)
    assert five is not None
    return bech32_encode(hrp, [version] + five, enc)


def decode_segwit_address(hrp: str, addr: str) -> tuple[int, bytes]:
    """Decode a segwit address for `hrp` into (witness version, program), per BIP173/BIP350.

    Raises Bech32Error for a string that is not Bech32(m) at all, SegwitAddressError otherwise.
    """
    enc, got_hrp, data = bech32_decode(addr)
    if got_hrp != hrp:
        raise SegwitAddressError(f"Invalid human-readable part (expected {hrp}, got {got_hrp})")
    if not data:
        raise SegwitAddressError("Empty data section")
    version = data[0]
    if version > 16:
        raise SegwitAddressError("Invalid witness version")
    if (version == 0) != (enc is Encoding.BECH32):
        want = "bech32" if version == 0 else "bech32m"
        raise SegwitAddressError(f"Invalid checksum variant for witness version {version}"
                                 f" (must be {want})")
    program = convertbits(data[1:], 5, 8, False)
    if program is None:
        raise SegwitAddressError("Invalid padding in data section")
    if not 2 <= len(program) <= 40:
        raise SegwitAddressError(f"Invalid program length ({len(program)} bytes)")
    if version == 0 and len(program) not in (20, 32):
        raise SegwitAddressError("Invalid program length for witness version 0 (per BIP141)")
    return version, bytes(program)
