"""Script bytes without execution: walking operations, the legacy signature-operation count,
the template tests every layer shares (P2SH, witness programs, push-only, unspendable) and the
push encodings of `CScript() << data` and `CScript() << n`.

Depends only on opcodes and script numbers, so any module (interpreter, standard templates,
contextual checks, the wallet) can import it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from consensus.script.num import encode_num
from consensus.script.opcodes import (
    OP_0,
    OP_1,
    OP_1NEGATE,
    OP_16,
    OP_CHECKMULTISIG,
    OP_CHECKMULTISIGVERIFY,
    OP_CHECKSIG,
    OP_CHECKSIGVERIFY,
    OP_DUP,
    OP_EQUAL,
    OP_EQUALVERIFY,
    OP_HASH160,
    OP_NOP10,
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_PUSHDATA4,
    OP_RETURN,
    decode_op_n,
)

MAX_SCRIPT_SIZE = 10_000
MAX_SCRIPT_ELEMENT_SIZE = 520  # bytes in one stack element
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


# A byte of OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_CHECKMULTISIG or OP_CHECKMULTISIGVERIFY
# (0xac..0xaf) anywhere in a script, or None: a script without one has no sigops (one C
# call, where the walk of sigop_count costs a Python call per operation).
find_sigop_byte = re.compile(rb"[\xac-\xaf]").search


def sigop_count(script: bytes, accurate: bool = False) -> int:
    """Core's CScript::GetSigOpCount.

    CHECKSIG counts 1; CHECKMULTISIG counts 20, or with `accurate` the preceding OP_1..OP_16.
    Counting stops silently at a malformed push, as in Core.
    """
    if find_sigop_byte(script) is None:
        return 0
    end = len(script)
    first = script[0]
    if (first == 0 or 0x51 <= first <= 0x60) and script[1] <= 0x4B and script[1] + 2 == end:
        return 0  # OP_0..OP_16 and one direct push to the end (every witness program): the
        # CHECKSIG-looking bytes are push data (a quarter of P2WPKH/P2TR outputs have one)
    n = 0
    last = 0xFF
    pc = 0
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


def op_end(script: bytes, pc: int, end: int) -> tuple[bool, int]:
    """Advance over the operation at pc as Core's GetScriptOp does: (True, next pc), or
    (False, where it stopped) for a truncated push (after the opcode byte and any length bytes
    it could read) or pc at the end. Core's FindAndDelete depends on that stopping point."""
    if pc >= end:
        return False, pc
    op = script[pc]
    pc += 1
    if op <= OP_PUSHDATA4:
        if op < OP_PUSHDATA1:
            n = op
        elif op == OP_PUSHDATA1:
            if end - pc < 1:
                return False, pc
            n = script[pc]
            pc += 1
        elif op == OP_PUSHDATA2:
            if end - pc < 2:
                return False, pc
            n = script[pc] | script[pc + 1] << 8
            pc += 2
        else:
            if end - pc < 4:
                return False, pc
            n = int.from_bytes(script[pc : pc + 4], "little")
            pc += 4
        if end - pc < n:
            return False, pc
        pc += n
    return True, pc


def is_push_only(script: bytes) -> bool:
    """Core's CScript::IsPushOnly: every operation is a push and none is truncated.

    As in Core, "push" means any opcode up to OP_16, so OP_RESERVED (0x50) counts as one (it
    fails when executed, so that cannot matter to P2SH or SIGPUSHONLY), and so do OP_0,
    OP_1NEGATE and OP_1..OP_16.
    """
    end = len(script)
    pc = 0
    while pc < end:
        if script[pc] > OP_16:
            return False
        ok, pc = op_end(script, pc, end)
        if not ok:
            return False
    return True


def is_minimal_push(data: bytes, op: int) -> bool:
    """Core's CheckMinimalPush: `data` pushed by opcode `op` uses the shortest encoding
    (OP_0, OP_1NEGATE or OP_1..OP_16 where they apply, else the smallest push opcode)."""
    n = len(data)
    if n == 0:
        return op == OP_0
    if n == 1:
        v = data[0]
        if 1 <= v <= 16:
            return op == OP_1 - 1 + v
        if v == 0x81:
            return op == OP_1NEGATE
    if n <= 75:
        return op == n
    if n <= 0xFF:
        return op == OP_PUSHDATA1
    if n <= 0xFFFF:
        return op == OP_PUSHDATA2
    return True


def last_push(script_sig: bytes) -> bytes | None:
    """What Core's GetP2SHSigOpCount and CountWitnessSigOps take as the P2SH redeem script:
    the data of the last operation of a push-only scriptSig (b"" when that operation is
    OP_0..OP_16, or the scriptSig is empty), or None when it is not push-only or is truncated.
    """
    data: bytes = b""
    pc = 0
    end = len(script_sig)
    try:
        while pc < end:
            op, pushed, pc = get_op(script_sig, pc)
            if op > OP_16:
                return None
            data = pushed if pushed is not None else b""
    except ScriptParseError:
        return None
    return data


def is_p2pkh(script: bytes) -> bool:
    """DUP HASH160 <20 bytes> EQUALVERIFY CHECKSIG."""
    return (
        len(script) == 25
        and script[0] == OP_DUP
        and script[1] == OP_HASH160
        and script[2] == 20
        and script[23] == OP_EQUALVERIFY
        and script[24] == OP_CHECKSIG
    )


def is_p2sh(script: bytes) -> bool:
    """HASH160 <20 bytes> EQUAL (Core's CScript::IsPayToScriptHash)."""
    return (
        len(script) == 23
        and script[0] == OP_HASH160
        and script[1] == 0x14
        and script[22] == OP_EQUAL
    )


def witness_program(script: bytes) -> tuple[int, bytes] | None:
    """(version, program) if script is OP_0..OP_16 then one direct push of 2..40 bytes and
    nothing else (Core's CScript::IsWitnessProgram, BIP141), else None."""
    n = len(script)
    if n < 4 or n > 42:
        return None
    v = script[0]
    if v != OP_0 and not OP_1 <= v <= OP_16:
        return None
    if script[1] + 2 != n:
        return None
    return (0 if v == OP_0 else v - (OP_1 - 1)), script[2:]


def is_unspendable(script: bytes) -> bool:
    """Core's CScript::IsUnspendable: starts with OP_RETURN, or is larger than a script may be."""
    return (len(script) > 0 and script[0] == OP_RETURN) or len(script) > MAX_SCRIPT_SIZE


# -- building --------------------------------------------------------------------------------


def push_data(data: bytes) -> bytes:
    """`CScript() << data`: the shortest push opcode for the length (never OP_n)."""
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((OP_PUSHDATA1, n)) + data
    if n <= 0xFFFF:
        return bytes((OP_PUSHDATA2,)) + n.to_bytes(2, "little") + data
    return bytes((OP_PUSHDATA4,)) + n.to_bytes(4, "little") + data


def push_int(n: int) -> bytes:
    """`CScript() << n`: OP_0, OP_1NEGATE, OP_1..OP_16, or a pushed script number.

    With n = a block height this is what BIP34 requires at the start of a coinbase scriptSig.
    """
    if n == 0:
        return bytes((OP_0,))
    if n == -1:
        return bytes((OP_1NEGATE,))
    if 1 <= n <= 16:
        return bytes((OP_1 + n - 1,))
    return push_data(encode_num(n))


def has_valid_ops(script: bytes) -> bool:
    """Core's CScript::HasValidOps: every operation parses, none is above OP_NOP10 (Core's
    MAX_OPCODE: OP_CHECKSIGADD exists only inside tapscript) and no push exceeds 520 bytes."""
    pc = 0
    end = len(script)
    try:
        while pc < end:
            op, data, pc = get_op(script, pc)
            if op > OP_NOP10 or (data is not None and len(data) > MAX_SCRIPT_ELEMENT_SIZE):
                return False
    except ScriptParseError:
        return False
    return True
