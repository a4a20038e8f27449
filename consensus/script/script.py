"""Walking a script's operations, and the legacy signature-operation count."""

from __future__ import annotations

from collections.abc import Iterator

from consensus.script.opcodes import (
    OP_1,
    OP_16,
    OP_CHECKMULTISIG,
    OP_CHECKMULTISIGVERIFY,
    OP_CHECKSIG,
    OP_CHECKSIGVERIFY,
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_PUSHDATA4,
    decode_op_n,
)

MAX_PUBKEYS_PER_MULTISIG = 20


class ScriptParseError(ValueError):
    """A push runs past the end of the script (Core's GetOp returning false)."""


def get_op(script: bytes, pc: int) -> tuple[int, bytes | None, int]:
    """Decode the operation at pc: (opcode, pushed data or None, next pc).

    Raises ScriptParseError where Core's GetScriptOp fails (a truncated push).
    """
    end = len(script)
    if pc >= end:
        raise ScriptParseError("read past end of script")
    op = script[pc]
    pc += 1
    if op > OP_PUSHDATA4:
        return op, None, pc
    if op < OP_PUSHDATA1:
        n = op
    elif op == OP_PUSHDATA1:
        if pc + 1 > end:
            raise ScriptParseError("truncated OP_PUSHDATA1")
        n = script[pc]
        pc += 1
    elif op == OP_PUSHDATA2:
        if pc + 2 > end:
            raise ScriptParseError("truncated OP_PUSHDATA2")
        n = int.from_bytes(script[pc : pc + 2], "little")
        pc += 2
    else:
        if pc + 4 > end:
            raise ScriptParseError("truncated OP_PUSHDATA4")
        n = int.from_bytes(script[pc : pc + 4], "little")
        pc += 4
    if pc + n > end:
        raise ScriptParseError("push past end of script")
    return op, script[pc : pc + n], pc + n


def iter_ops(script: bytes) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (opcode, data, pc after op) for each operation; raises at a truncated push."""
    pc = 0
    end = len(script)
    while pc < end:
        op, data, pc = get_op(script, pc)
        yield op, data, pc


def sigop_count(script: bytes, accurate: bool = False) -> int:
    """Core's CScript::GetSigOpCount.

    CHECKSIG counts 1; CHECKMULTISIG counts 20, or with `accurate` the preceding OP_1..OP_16.
    Counting stops silently at a malformed push, as in Core.
    """
    n = 0
    last = 0xFF
    pc = 0
    end = len(script)
    while pc < end:
        try:
            op, _, pc = get_op(script, pc)
        except ScriptParseError:
            break
        if op == OP_CHECKSIG or op == OP_CHECKSIGVERIFY:
            n += 1
        elif op == OP_CHECKMULTISIG or op == OP_CHECKMULTISIGVERIFY:
            if accurate and OP_1 <= last <= OP_16:
                n += decode_op_n(last)
            else:
                n += MAX_PUBKEYS_PER_MULTISIG
        last = op
    return n


def is_push_only(script: bytes) -> bool:
    """True if every operation is a push (OP_RESERVED and OP_1NEGATE..OP_16 count as pushes)."""
    try:
        for op, _, _ in iter_ops(script):
            if op > OP_16:
                return False
    except ScriptParseError:
        return False
    return True
