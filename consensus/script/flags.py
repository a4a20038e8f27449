"""Script verification flags, with Bitcoin Core's names and bit values (interpreter.h).

Flags only ever make verification stricter: a spend valid under some set of flags stays valid
under any subset of it (for combinations that respect the dependencies noted below). That
property is what makes new rules soft forks, and the script execution cache relies on it.

Dependencies (Core asserts them): WITNESS requires P2SH; CLEANSTACK requires P2SH and WITNESS.
"""

from __future__ import annotations

NONE = 0
P2SH = 1 << 0
STRICTENC = 1 << 1
DERSIG = 1 << 2
LOW_S = 1 << 3
NULLDUMMY = 1 << 4
SIGPUSHONLY = 1 << 5
MINIMALDATA = 1 << 6
DISCOURAGE_UPGRADABLE_NOPS = 1 << 7
CLEANSTACK = 1 << 8
CHECKLOCKTIMEVERIFY = 1 << 9
CHECKSEQUENCEVERIFY = 1 << 10
WITNESS = 1 << 11
DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM = 1 << 12
MINIMALIF = 1 << 13
NULLFAIL = 1 << 14
WITNESS_PUBKEYTYPE = 1 << 15
CONST_SCRIPTCODE = 1 << 16
TAPROOT = 1 << 17
DISCOURAGE_UPGRADABLE_TAPROOT_VERSION = 1 << 18
DISCOURAGE_OP_SUCCESS = 1 << 19
DISCOURAGE_UPGRADABLE_PUBKEYTYPE = 1 << 20

# Name -> bit, in bit order (the names Core's tests and RPC use).
FLAG_NAMES: dict[str, int] = {
    "P2SH": P2SH,
    "STRICTENC": STRICTENC,
    "DERSIG": DERSIG,
    "LOW_S": LOW_S,
    "NULLDUMMY": NULLDUMMY,
    "SIGPUSHONLY": SIGPUSHONLY,
    "MINIMALDATA": MINIMALDATA,
    "DISCOURAGE_UPGRADABLE_NOPS": DISCOURAGE_UPGRADABLE_NOPS,
    "CLEANSTACK": CLEANSTACK,
    "CHECKLOCKTIMEVERIFY": CHECKLOCKTIMEVERIFY,
    "CHECKSEQUENCEVERIFY": CHECKSEQUENCEVERIFY,
    "WITNESS": WITNESS,
    "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM": DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM,
    "MINIMALIF": MINIMALIF,
    "NULLFAIL": NULLFAIL,
    "WITNESS_PUBKEYTYPE": WITNESS_PUBKEYTYPE,
    "CONST_SCRIPTCODE": CONST_SCRIPTCODE,
    "TAPROOT": TAPROOT,
    "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION": DISCOURAGE_UPGRADABLE_TAPROOT_VERSION,
    "DISCOURAGE_OP_SUCCESS": DISCOURAGE_OP_SUCCESS,
    "DISCOURAGE_UPGRADABLE_PUBKEYTYPE": DISCOURAGE_UPGRADABLE_PUBKEYTYPE,
}

ALL_FLAGS = 0
for _bit in FLAG_NAMES.values():
    ALL_FLAGS |= _bit
del _bit

# Rules every block must follow (Core's policy.h MANDATORY_SCRIPT_VERIFY_FLAGS).
MANDATORY_SCRIPT_VERIFY_FLAGS = (
    P2SH | DERSIG | NULLDUMMY | CHECKLOCKTIMEVERIFY | CHECKSEQUENCEVERIFY | WITNESS | TAPROOT
)

# What the mempool enforces for relay (Core's STANDARD_SCRIPT_VERIFY_FLAGS).
STANDARD_SCRIPT_VERIFY_FLAGS = (
    MANDATORY_SCRIPT_VERIFY_FLAGS
    | STRICTENC
    | MINIMALDATA
    | DISCOURAGE_UPGRADABLE_NOPS
    | CLEANSTACK
    | MINIMALIF
    | NULLFAIL
    | LOW_S
    | DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM
    | WITNESS_PUBKEYTYPE
    | CONST_SCRIPTCODE
    | DISCOURAGE_UPGRADABLE_TAPROOT_VERSION
    | DISCOURAGE_OP_SUCCESS
    | DISCOURAGE_UPGRADABLE_PUBKEYTYPE
)


def parse_flags(text: str) -> int:
    """"P2SH,WITNESS" -> bits. "" and "NONE" mean no flags; an unknown name raises ValueError."""
    flags = 0
    for name in text.split(","):
        name = name.strip()
        if not name or name == "NONE":
            continue
        try:
            flags |= FLAG_NAMES[name]
        except KeyError:
            raise ValueError(f"unknown script verification flag {name!r}") from None
    return flags


def flags_to_names(flags: int) -> list[str]:
    """Bits -> names in bit order; bits without a name are ignored."""
    return [name for name, bit in FLAG_NAMES.items() if flags & bit]


def format_flags(flags: int) -> str:
    """Bits -> "P2SH,WITNESS" (Core's FormatScriptFlags), "" for none."""
    return ",".join(flags_to_names(flags))


def fill_flags(flags: int) -> int:
    """Add the flags the given ones depend on (CLEANSTACK -> WITNESS -> P2SH)."""
    if flags & CLEANSTACK:
        flags |= WITNESS
    if flags & WITNESS:
        flags |= P2SH
    return flags


def trim_flags(flags: int) -> int:
    """Drop flags whose dependencies are missing (the inverse of fill_flags)."""
    if not flags & P2SH:
        flags &= ~WITNESS
    if not flags & WITNESS:
        flags &= ~CLEANSTACK
    return flags
