"""Standard script templates: classification (Core's Solver), builders, and the asm text forms.

`script_to_asm` renders like Core's ScriptToAsmStr (what RPC shows as "asm"); `parse_asm`
reads the syntax of Core's test vectors (core_read.cpp ParseScript).
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.script.errors import ScriptError
from consensus.script.num import decode_num
from consensus.script.opcodes import (
    ASM_NAMES,
    OP_1,
    OP_16,
    OP_CHECKMULTISIG,
    OP_CHECKSIG,
    OP_PUSHDATA4,
    OP_RETURN,
    encode_op_n,
    op_name,
)
from consensus.script.script import (
    MAX_PUBKEYS_PER_MULTISIG,
    ScriptParseError,
    get_op,
    is_minimal_push,
    is_p2pkh,
    is_p2sh,
    is_push_only,
    is_unspendable,
    push_data,
    push_int,
    witness_program,
)
from consensus.script.sigcheck import is_valid_signature_encoding, pubkey_valid_size

# Core's TxoutType names (GetTxnOutputType).
NONSTANDARD = "nonstandard"
PUBKEY = "pubkey"
PUBKEYHASH = "pubkeyhash"
SCRIPTHASH = "scripthash"
MULTISIG = "multisig"
NULL_DATA = "nulldata"
ANCHOR = "anchor"
WITNESS_V0_KEYHASH = "witness_v0_keyhash"
WITNESS_V0_SCRIPTHASH = "witness_v0_scripthash"
WITNESS_V1_TAPROOT = "witness_v1_taproot"
WITNESS_UNKNOWN = "witness_unknown"

PAY_TO_ANCHOR = bytes((0x51, 0x02, 0x4E, 0x73))


# -- classification ----------------------------------------------------------------------------


def script_number(op: int, data: bytes | None, lo: int, hi: int) -> int | None:
    """A number written as OP_1..OP_16 or as a minimal push, within [lo, hi]."""
    if OP_1 <= op <= OP_16:
        n = op - (OP_1 - 1)
    elif op <= OP_PUSHDATA4 and data is not None:
        if not is_minimal_push(data, op):
            return None
        try:
            n = decode_num(data, True)
        except ScriptError:
            return None
    else:
        return None
    return n if lo <= n <= hi else None


def _match_multisig(script: bytes) -> tuple[int, list[bytes]] | None:
    if not script or script[-1] != OP_CHECKMULTISIG:
        return None
    end = len(script)
    try:
        op, data, pc = get_op(script, 0)
    except ScriptParseError:
        return None
    required = script_number(op, data, 1, MAX_PUBKEYS_PER_MULTISIG)
    if required is None:
        return None
    keys: list[bytes] = []
    while True:
        try:
            op, data, pc = get_op(script, pc)
        except ScriptParseError:
            return None
        if data is None or not pubkey_valid_size(data):
            break
        keys.append(data)
    count = script_number(op, data, required, MAX_PUBKEYS_PER_MULTISIG)
    if count is None or count != len(keys):
        return None
    return (required, keys) if pc + 1 == end else None


def solver(script: bytes) -> tuple[str, list[bytes]]:
    """Core's Solver: (type name, solutions).

    Solutions: pubkey -> [pubkey]; pubkeyhash/scripthash -> [hash]; multisig ->
    [bytes([m]), key..., bytes([n])]; witness_v0_* and witness_v1_taproot -> [program];
    witness_unknown -> [bytes([version]), program]; others -> [].
    """
    if is_p2sh(script):
        return SCRIPTHASH, [script[2:22]]
    wp = witness_program(script)
    if wp is not None:
        version, program = wp
        if version == 0 and len(program) == 20:
            return WITNESS_V0_KEYHASH, [program]
        if version == 0 and len(program) == 32:
            return WITNESS_V0_SCRIPTHASH, [program]
        if version == 1 and len(program) == 32:
            return WITNESS_V1_TAPROOT, [program]
        if script == PAY_TO_ANCHOR:
            return ANCHOR, []
        if version != 0:
            return WITNESS_UNKNOWN, [bytes((version,)), program]
        return NONSTANDARD, []
    # Provably unspendable data carrier: OP_RETURN then pushes only.
    if script and script[0] == OP_RETURN and is_push_only(script[1:]):
        return NULL_DATA, []
    n = len(script)
    if (n == 67 and script[0] == 65 or n == 35 and script[0] == 33) and script[-1] == OP_CHECKSIG:
        key = script[1:-1]
        if pubkey_valid_size(key):
            return PUBKEY, [key]
    if is_p2pkh(script):
        return PUBKEYHASH, [script[3:23]]
    ms = _match_multisig(script)
    if ms is not None:
        required, keys = ms
        return MULTISIG, [bytes((required,)), *keys, bytes((len(keys),))]
    return NONSTANDARD, []


# -- builders ------------------------------------------------------------------------------------


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def p2pk_script(pubkey: bytes) -> bytes:
    return push_data(pubkey) + b"\xac"


def p2sh_script(script_hash: bytes) -> bytes:
    return b"\xa9\x14" + script_hash + b"\x87"


def p2wpkh_script(pubkey_hash: bytes) -> bytes:
    return b"\x00\x14" + pubkey_hash


def p2wsh_script(script_hash: bytes) -> bytes:
    return b"\x00\x20" + script_hash


def p2tr_script(output_key: bytes) -> bytes:
    return b"\x51\x20" + output_key


def witness_v_script(version: int, program: bytes) -> bytes:
    """OP_n <program>: the scriptPubKey of a native segwit output of any version (BIP141)."""
    if not 0 <= version <= 16 or not 2 <= len(program) <= 40:
        raise ValueError("witness version must be 0..16 and program 2..40 bytes")
    return bytes((encode_op_n(version), len(program))) + program


def multisig_script(required: int, pubkeys: Sequence[bytes]) -> bytes:
    return (
        push_int(required)
        + b"".join(push_data(k) for k in pubkeys)
        + push_int(len(pubkeys))
        + bytes((OP_CHECKMULTISIG,))
    )


def nulldata_script(*pushes: bytes) -> bytes:
    return bytes((OP_RETURN,)) + b"".join(push_data(p) for p in pushes)


# -- asm -----------------------------------------------------------------------------------------

_SIGHASH_NAMES = {
    0x01: "ALL",
    0x81: "ALL|ANYONECANPAY",
    0x02: "NONE",
    0x82: "NONE|ANYONECANPAY",
    0x03: "SINGLE",
    0x83: "SINGLE|ANYONECANPAY",
}


def script_to_asm(script: bytes, attempt_sighash_decode: bool = False) -> str:
    """Core's ScriptToAsmStr.

    Pushes of up to 4 bytes print as (non-minimal allowed) numbers, longer ones as hex; with
    attempt_sighash_decode, data that is a strictly encoded signature gets its hash type as a
    suffix such as [ALL]. A truncated push ends the text with [error].
    """
    out: list[str] = []
    pc = 0
    end = len(script)
    decode = attempt_sighash_decode and not is_unspendable(script)
    while pc < end:
        try:
            op, data, pc = get_op(script, pc)
        except ScriptParseError:
            out.append("[error]")
            break
        if data is not None:
            if len(data) <= 4:
                out.append(str(decode_num(data, False)))
            else:
                suffix = ""
                if decode and is_valid_signature_encoding(data):
                    name = _SIGHASH_NAMES.get(data[-1])
                    if name is not None:
                        suffix = f"[{name}]"
                        data = data[:-1]
                out.append(data.hex() + suffix)
        else:
            out.append(op_name(op))
    return " ".join(out)


def parse_asm(text: str) -> bytes:
    """Core's ParseScript (the script language of its JSON test vectors).

    Tokens: decimal numbers (pushed as script numbers, OP_n where possible), 0x-prefixed hex
    (inserted raw, not pushed), 'quoted strings' (pushed), and opcode names with or without
    the OP_ prefix. Raises ValueError on anything else.
    """
    out = bytearray()
    for w in text.split():
        if w.isdigit() or (w[0] == "-" and len(w) > 1 and w[1:].isdigit()):
            if not w.isascii():
                raise ValueError(f"script parse error: {w!r}")
            n = int(w)
            if n > 0xFFFFFFFF or n < -0xFFFFFFFF:
                raise ValueError(
                    "script parse error: decimal numeric value only allowed in the range "
                    "-0xFFFFFFFF...0xFFFFFFFF"
                )
            out += push_int(n)
        elif w.startswith("0x") and len(w) > 2:
            try:
                if len(w) % 2:
                    raise ValueError
                out += bytes.fromhex(w[2:])
            except ValueError:
                raise ValueError(f"script parse error: bad hex {w!r}") from None
        elif len(w) >= 2 and w[0] == "'" and w[-1] == "'":
            out += push_data(w[1:-1].encode())
        elif w in ASM_NAMES:
            out.append(ASM_NAMES[w])
        else:
            raise ValueError(f"script parse error: unknown opcode {w!r}")
    return bytes(out)


# The public names of this module. The shared helpers it uses (is_p2sh, witness_program,
# is_push_only, push_data, push_int) live in consensus.script.script: import them from there.
__all__ = [
    "ANCHOR",
    "MULTISIG",
    "NONSTANDARD",
    "NULL_DATA",
    "PUBKEY",
    "PUBKEYHASH",
    "SCRIPTHASH",
    "WITNESS_UNKNOWN",
    "WITNESS_V0_KEYHASH",
    "WITNESS_V0_SCRIPTHASH",
    "WITNESS_V1_TAPROOT",
    "multisig_script",
    "nulldata_script",
    "p2pk_script",
    "p2pkh_script",
    "p2sh_script",
    "p2tr_script",
    "p2wpkh_script",
    "p2wsh_script",
    "parse_asm",
    "script_to_asm",
    "solver",
    "witness_v_script",
]
