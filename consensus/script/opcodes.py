"""Script opcodes, with the names Core prints (GetOpName) and parses in asm."""

from __future__ import annotations

# Pushes
OP_0 = OP_FALSE = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1NEGATE = 0x4F
OP_RESERVED = 0x50
OP_1 = OP_TRUE = 0x51
OP_2, OP_3, OP_4, OP_5, OP_6, OP_7, OP_8 = range(0x52, 0x59)
OP_9, OP_10, OP_11, OP_12, OP_13, OP_14, OP_15, OP_16 = range(0x59, 0x61)

# Control
OP_NOP = 0x61
OP_VER = 0x62
OP_IF = 0x63
OP_NOTIF = 0x64
OP_VERIF = 0x65
OP_VERNOTIF = 0x66
OP_ELSE = 0x67
OP_ENDIF = 0x68
OP_VERIFY = 0x69
OP_RETURN = 0x6A

# Stack
OP_TOALTSTACK = 0x6B
OP_FROMALTSTACK = 0x6C
OP_2DROP = 0x6D
OP_2DUP = 0x6E
OP_3DUP = 0x6F
OP_2OVER = 0x70
OP_2ROT = 0x71
OP_2SWAP = 0x72
OP_IFDUP = 0x73
OP_DEPTH = 0x74
OP_DROP = 0x75
OP_DUP = 0x76
OP_NIP = 0x77
OP_OVER = 0x78
OP_PICK = 0x79
OP_ROLL = 0x7A
OP_ROT = 0x7B
OP_SWAP = 0x7C
OP_TUCK = 0x7D

# Splice
OP_CAT = 0x7E
OP_SUBSTR = 0x7F
OP_LEFT = 0x80
OP_RIGHT = 0x81
OP_SIZE = 0x82

# Bitwise logic
OP_INVERT = 0x83
OP_AND = 0x84
OP_OR = 0x85
OP_XOR = 0x86
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_RESERVED1 = 0x89
OP_RESERVED2 = 0x8A

# Numeric
OP_1ADD = 0x8B
OP_1SUB = 0x8C
OP_2MUL = 0x8D
OP_2DIV = 0x8E
OP_NEGATE = 0x8F
OP_ABS = 0x90
OP_NOT = 0x91
OP_0NOTEQUAL = 0x92
OP_ADD = 0x93
OP_SUB = 0x94
OP_MUL = 0x95
OP_DIV = 0x96
OP_MOD = 0x97
OP_LSHIFT = 0x98
OP_RSHIFT = 0x99
OP_BOOLAND = 0x9A
OP_BOOLOR = 0x9B
OP_NUMEQUAL = 0x9C
OP_NUMEQUALVERIFY = 0x9D
OP_NUMNOTEQUAL = 0x9E
OP_LESSTHAN = 0x9F
OP_GREATERTHAN = 0xA0
OP_LESSTHANOREQUAL = 0xA1
OP_GREATERTHANOREQUAL = 0xA2
OP_MIN = 0xA3
OP_MAX = 0xA4
OP_WITHIN = 0xA5

# Crypto
OP_RIPEMD160 = 0xA6
OP_SHA1 = 0xA7
OP_SHA256 = 0xA8
OP_HASH160 = 0xA9
OP_HASH256 = 0xAA
OP_CODESEPARATOR = 0xAB
OP_CHECKSIG = 0xAC
OP_CHECKSIGVERIFY = 0xAD
OP_CHECKMULTISIG = 0xAE
OP_CHECKMULTISIGVERIFY = 0xAF

# Expansion
OP_NOP1 = 0xB0
OP_CHECKLOCKTIMEVERIFY = OP_NOP2 = 0xB1
OP_CHECKSEQUENCEVERIFY = OP_NOP3 = 0xB2
OP_NOP4 = 0xB3
OP_NOP5 = 0xB4
OP_NOP6 = 0xB5
OP_NOP7 = 0xB6
OP_NOP8 = 0xB7
OP_NOP9 = 0xB8
OP_NOP10 = 0xB9

# Tapscript
OP_CHECKSIGADD = 0xBA

OP_INVALIDOPCODE = 0xFF

MAX_OPCODE = OP_CHECKSIGADD

_NAMES = {
    OP_0: "0",
    OP_PUSHDATA1: "OP_PUSHDATA1",
    OP_PUSHDATA2: "OP_PUSHDATA2",
    OP_PUSHDATA4: "OP_PUSHDATA4",
    OP_1NEGATE: "-1",
    OP_RESERVED: "OP_RESERVED",
    **{OP_1 + i: str(i + 1) for i in range(16)},
    OP_NOP: "OP_NOP",
    OP_VER: "OP_VER",
    OP_IF: "OP_IF",
    OP_NOTIF: "OP_NOTIF",
    OP_VERIF: "OP_VERIF",
    OP_VERNOTIF: "OP_VERNOTIF",
    OP_ELSE: "OP_ELSE",
    OP_ENDIF: "OP_ENDIF",
    OP_VERIFY: "OP_VERIFY",
    OP_RETURN: "OP_RETURN",
    OP_TOALTSTACK: "OP_TOALTSTACK",
    OP_FROMALTSTACK: "OP_FROMALTSTACK",
    OP_2DROP: "OP_2DROP",
    OP_2DUP: "OP_2DUP",
    OP_3DUP: "OP_3DUP",
    OP_2OVER: "OP_2OVER",
    OP_2ROT: "OP_2ROT",
    OP_2SWAP: "OP_2SWAP",
    OP_IFDUP: "OP_IFDUP",
    OP_DEPTH: "OP_DEPTH",
    OP_DROP: "OP_DROP",
    OP_DUP: "OP_DUP",
    OP_NIP: "OP_NIP",
    OP_OVER: "OP_OVER",
    OP_PICK: "OP_PICK",
    OP_ROLL: "OP_ROLL",
    OP_ROT: "OP_ROT",
    OP_SWAP: "OP_SWAP",
    OP_TUCK: "OP_TUCK",
    OP_CAT: "OP_CAT",
    OP_SUBSTR: "OP_SUBSTR",
    OP_LEFT: "OP_LEFT",
    OP_RIGHT: "OP_RIGHT",
    OP_SIZE: "OP_SIZE",
    OP_INVERT: "OP_INVERT",
    OP_AND: "OP_AND",
    OP_OR: "OP_OR",
    OP_XOR: "OP_XOR",
    OP_EQUAL: "OP_EQUAL",
    OP_EQUALVERIFY: "OP_EQUALVERIFY",
    OP_RESERVED1: "OP_RESERVED1",
    OP_RESERVED2: "OP_RESERVED2",
    OP_1ADD: "OP_1ADD",
    OP_1SUB: "OP_1SUB",
    OP_2MUL: "OP_2MUL",
    OP_2DIV: "OP_2DIV",
    OP_NEGATE: "OP_NEGATE",
    OP_ABS: "OP_ABS",
    OP_NOT: "OP_NOT",
    OP_0NOTEQUAL: "OP_0NOTEQUAL",
    OP_ADD: "OP_ADD",
    OP_SUB: "OP_SUB",
    OP_MUL: "OP_MUL",
    OP_DIV: "OP_DIV",
    OP_MOD: "OP_MOD",
    OP_LSHIFT: "OP_LSHIFT",
    OP_RSHIFT: "OP_RSHIFT",
    OP_BOOLAND: "OP_BOOLAND",
    OP_BOOLOR: "OP_BOOLOR",
    OP_NUMEQUAL: "OP_NUMEQUAL",
    OP_NUMEQUALVERIFY: "OP_NUMEQUALVERIFY",
    OP_NUMNOTEQUAL: "OP_NUMNOTEQUAL",
    OP_LESSTHAN: "OP_LESSTHAN",
    OP_GREATERTHAN: "OP_GREATERTHAN",
    OP_LESSTHANOREQUAL: "OP_LESSTHANOREQUAL",
    OP_GREATERTHANOREQUAL: "OP_GREATERTHANOREQUAL",
    OP_MIN: "OP_MIN",
    OP_MAX: "OP_MAX",
    OP_WITHIN: "OP_WITHIN",
    OP_RIPEMD160: "OP_RIPEMD160",
    OP_SHA1: "OP_SHA1",
    OP_SHA256: "OP_SHA256",
    OP_HASH160: "OP_HASH160",
    OP_HASH256: "OP_HASH256",
    OP_CODESEPARATOR: "OP_CODESEPARATOR",
    OP_CHECKSIG: "OP_CHECKSIG",
    OP_CHECKSIGVERIFY: "OP_CHECKSIGVERIFY",
    OP_CHECKMULTISIG: "OP_CHECKMULTISIG",
    OP_CHECKMULTISIGVERIFY: "OP_CHECKMULTISIGVERIFY",
    OP_NOP1: "OP_NOP1",
    OP_CHECKLOCKTIMEVERIFY: "OP_CHECKLOCKTIMEVERIFY",
    OP_CHECKSEQUENCEVERIFY: "OP_CHECKSEQUENCEVERIFY",
    OP_NOP4: "OP_NOP4",
    OP_NOP5: "OP_NOP5",
    OP_NOP6: "OP_NOP6",
    OP_NOP7: "OP_NOP7",
    OP_NOP8: "OP_NOP8",
    OP_NOP9: "OP_NOP9",
    OP_NOP10: "OP_NOP10",
    OP_CHECKSIGADD: "OP_CHECKSIGADD",
    OP_INVALIDOPCODE: "OP_INVALIDOPCODE",
}


def op_name(op: int) -> str:
    """Core's GetOpName: 'OP_UNKNOWN' for bytes that are not opcodes."""
    return _NAMES.get(op, "OP_UNKNOWN")


def decode_op_n(op: int) -> int:
    """Value of OP_0, OP_1 .. OP_16."""
    if op == OP_0:
        return 0
    assert OP_1 <= op <= OP_16
    return op - (OP_1 - 1)


def encode_op_n(n: int) -> int:
    """Opcode for the small integer n (0..16)."""
    assert 0 <= n <= 16
    return OP_0 if n == 0 else OP_1 + n - 1


# Opcodes that fail a script even in an unexecuted branch (CVE-2010-5137).
DISABLED_OPCODES = frozenset(
    (
        OP_CAT, OP_SUBSTR, OP_LEFT, OP_RIGHT, OP_INVERT, OP_AND, OP_OR, OP_XOR,
        OP_2MUL, OP_2DIV, OP_MUL, OP_DIV, OP_MOD, OP_LSHIFT, OP_RSHIFT,
    )
)


def is_op_success(op: int) -> bool:
    """BIP342 OP_SUCCESSx: opcodes that make a tapscript unconditionally valid."""
    return (
        op == 80
        or op == 98
        or 126 <= op <= 129
        or 131 <= op <= 134
        or 137 <= op <= 138
        or 141 <= op <= 142
        or 149 <= op <= 153
        or 187 <= op <= 254
    )


OP_SUCCESS_TABLE = bytes(1 if is_op_success(i) else 0 for i in range(256))


def _asm_names() -> dict[str, int]:
    """Names Core's ParseScript accepts: opcode names from OP_NOP up (plus OP_RESERVED),
    each with and without the OP_ prefix. Small numbers are written as decimals instead."""
    names: dict[str, int] = {}
    for op in range(MAX_OPCODE + 1):
        if op < OP_NOP and op != OP_RESERVED:
            continue
        name = op_name(op)
        if name == "OP_UNKNOWN":
            continue
        names[name] = op
        if name.startswith("OP_"):
            names[name[3:]] = op
    return names


ASM_NAMES = _asm_names()
