"""The script interpreter: Bitcoin Core's EvalScript, VerifyWitnessProgram and VerifyScript.

Every failure raises ScriptError with Core's error name; success returns None. The rules,
limits and the order in which they are checked follow Core's interpreter.cpp, because the
order decides which error is reported and, in a few places (CHECKMULTISIG, NULLFAIL,
FindAndDelete), whether a script passes at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from consensus.hashes import ripemd160
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.num import cast_to_bool, decode_num, encode_num
from consensus.script.opcodes import DISABLED_OPCODES, OP_SUCCESS_TABLE
from consensus.script.script import (
    MAX_PUBKEYS_PER_MULTISIG,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SCRIPT_SIZE,
    is_minimal_push,
    is_p2sh,
    is_push_only,
    op_end,
    push_data,
    witness_program,
)
from consensus.script.sigcheck import (
    SIGNATURE_CACHE,
    SignatureCache,
    check_tap_tweak,
    ecdsa_verify,
    is_compressed_or_uncompressed_pubkey,
    is_compressed_pubkey,
    is_defined_hashtype_signature,
    is_low_s,
    is_valid_signature_encoding,
    pubkey_valid_size,
    schnorr_verify,
)
from consensus.script.sighash import (
    SIGVERSION_BASE,
    SIGVERSION_TAPROOT,
    SIGVERSION_TAPSCRIPT,
    SIGVERSION_WITNESS_V0,
    PrecomputedTxData,
    annex_hash,
    legacy_sighash,
    segwit_v0_sighash,
    taproot_sighash_or_none,
)
from consensus.script.standard import p2pkh_script
from consensus.script.taproot import (
    ANNEX_TAG,
    TAPROOT_LEAF_MASK,
    TAPROOT_LEAF_TAPSCRIPT,
    control_block_merkle_root,
    tapleaf_hash,
    taptweak_hash,
    valid_control_size,
)
from consensus.serialize import compact_size_len
from consensus.tx import (
    LOCKTIME_THRESHOLD,
    SEQUENCE_FINAL,
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_MASK,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
    Transaction,
)

MAX_OPS_PER_SCRIPT = 201
MAX_STACK_SIZE = 1000
VALIDATION_WEIGHT_PER_SIGOP_PASSED = 50
VALIDATION_WEIGHT_OFFSET = 50

_sha256 = hashlib.sha256
_sha1 = hashlib.sha1

_TRUE = b"\x01"
_FALSE = b""
# What OP_1NEGATE, OP_1 .. OP_16 push (OP_RESERVED, 0x50, has no entry).
_SMALLNUM = {op: encode_num(op - 0x50) for op in range(0x4F, 0x61) if op != 0x50}

_DISABLED = bytes(1 if op in DISABLED_OPCODES else 0 for op in range(256))
_UPGRADABLE_NOPS = frozenset((0xB0, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9))


def verify_ecdsa_cached(
    pub: bytes, der: bytes, sighash: bytes, cache: SignatureCache | None, store: bool
) -> bool:
    """ecdsa_verify through the signature cache (successes only are remembered)."""
    if cache is None:
        return ecdsa_verify(pub, der, sighash)
    key = cache.key(b"E", sighash, pub, der)
    if cache.contains(key):
        return True
    ok = ecdsa_verify(pub, der, sighash)
    if ok and store:
        cache.add(key)
    return ok


def verify_schnorr_cached(
    pub: bytes, sig64: bytes, sighash: bytes, cache: SignatureCache | None, store: bool
) -> bool:
    if cache is None:
        return schnorr_verify(pub, sig64, sighash)
    key = cache.key(b"S", sighash, pub, sig64)
    if cache.contains(key):
        return True
    ok = schnorr_verify(pub, sig64, sighash)
    if ok and store:
        cache.add(key)
    return ok


class ScriptExecutionData:
    """State shared between the witness-program check and the script it runs (taproot)."""

    __slots__ = ("codesep_pos", "annex_hash", "tapleaf_hash", "validation_weight_left")

    def __init__(self) -> None:
        self.codesep_pos = 0xFFFFFFFF
        self.annex_hash: bytes | None = None  # None: no annex
        self.tapleaf_hash: bytes | None = None
        self.validation_weight_left = 0


class BaseSignatureChecker:
    """A checker with no transaction: every signature and lock-time check fails."""

    __slots__ = ()

    def check_ecdsa(self, sig: bytes, pub: bytes, script_code: bytes, sigversion: int) -> bool:
        return False

    def check_schnorr(
        self, sig: bytes, pub: bytes, sigversion: int, execdata: ScriptExecutionData
    ) -> None:
        raise ScriptError("SCHNORR_SIG")

    def check_locktime(self, locktime: int) -> bool:
        return False

    def check_sequence(self, sequence: int) -> bool:
        return False


class TransactionSignatureChecker(BaseSignatureChecker):
    """Checks signatures and lock times against input `index` of `tx`.

    amount is the value of the output being spent (segwit signatures commit to it).
    With a cache, verified signatures are looked up first and, if `store`, remembered.
    """

    __slots__ = ("tx", "index", "amount", "txdata", "cache", "store")

    def __init__(
        self,
        tx: Transaction,
        index: int,
        amount: int,
        txdata: PrecomputedTxData | None = None,
        cache: SignatureCache | None = SIGNATURE_CACHE,
        store: bool = True,
    ) -> None:
        self.tx = tx
        self.index = index
        self.amount = amount
        self.txdata = txdata if txdata is not None else PrecomputedTxData(tx)
        self.cache = cache
        self.store = store

    def verify_ecdsa_hash(self, pub: bytes, der: bytes, sighash: bytes) -> bool:
        return verify_ecdsa_cached(pub, der, sighash, self.cache, self.store)

    def verify_schnorr_hash(self, pub: bytes, sig64: bytes, sighash: bytes) -> bool:
        return verify_schnorr_cached(pub, sig64, sighash, self.cache, self.store)

    def check_ecdsa(self, sig: bytes, pub: bytes, script_code: bytes, sigversion: int) -> bool:
        if not pubkey_valid_size(pub) or not sig:
            return False
        hash_type = sig[-1]
        if sigversion == SIGVERSION_WITNESS_V0:
            sighash = segwit_v0_sighash(
                self.tx, self.index, script_code, self.amount, hash_type, self.txdata
            )
        else:
            sighash = legacy_sighash(self.tx, self.index, script_code, hash_type, self.txdata)
        return self.verify_ecdsa_hash(pub, sig[:-1], sighash)

    def check_schnorr(
        self, sig: bytes, pub: bytes, sigversion: int, execdata: ScriptExecutionData
    ) -> None:
        n = len(sig)
        if n != 64 and n != 65:
            raise ScriptError("SCHNORR_SIG_SIZE")
        hash_type = 0
        if n == 65:
            hash_type = sig[64]
            if hash_type == 0:
                raise ScriptError("SCHNORR_SIG_HASHTYPE")
            sig = sig[:64]
        sighash = taproot_sighash_or_none(
            self.txdata,
            self.index,
            hash_type,
            sigversion,
            execdata.annex_hash,
            execdata.tapleaf_hash,
            execdata.codesep_pos,
        )
        if sighash is None:
            raise ScriptError("SCHNORR_SIG_HASHTYPE")
        if not self.verify_schnorr_hash(pub, sig, sighash):
            raise ScriptError("SCHNORR_SIG")

    def check_locktime(self, locktime: int) -> bool:
        tx_lock = self.tx.locktime
        # Compare like with like: both block heights or both timestamps.
        if (tx_lock < LOCKTIME_THRESHOLD) != (locktime < LOCKTIME_THRESHOLD):
            return False
        if locktime > tx_lock:
            return False
        # A final input would let the transaction bypass nLockTime altogether.
        return self.tx.vin[self.index].sequence != SEQUENCE_FINAL

    def check_sequence(self, sequence: int) -> bool:
        tx_seq = self.tx.vin[self.index].sequence
        if self.tx.version < 2:  # unsigned, as Core compares it since v28
            return False
        if tx_seq & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            return False
        mask = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK
        tx_masked = tx_seq & mask
        masked = sequence & mask
        if (tx_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) != (masked < SEQUENCE_LOCKTIME_TYPE_FLAG):
            return False
        return masked <= tx_masked


# -- signature encoding rules ------------------------------------------------------------------


def check_signature_encoding(sig: bytes, flags: int) -> None:
    """Core's CheckSignatureEncoding (the empty signature is always allowed)."""
    if not sig:
        return
    if flags & (F.DERSIG | F.LOW_S | F.STRICTENC) and not is_valid_signature_encoding(sig):
        raise ScriptError("SIG_DER")
    if flags & F.LOW_S and not is_low_s(sig[:-1]):
        raise ScriptError("SIG_HIGH_S")
    if flags & F.STRICTENC and not is_defined_hashtype_signature(sig):
        raise ScriptError("SIG_HASHTYPE")


def check_pubkey_encoding(pub: bytes, flags: int, sigversion: int) -> None:
    if flags & F.STRICTENC and not is_compressed_or_uncompressed_pubkey(pub):
        raise ScriptError("PUBKEYTYPE")
    if (
        flags & F.WITNESS_PUBKEYTYPE
        and sigversion == SIGVERSION_WITNESS_V0
        and not is_compressed_pubkey(pub)
    ):
        raise ScriptError("WITNESS_PUBKEYTYPE")


def find_and_delete(script: bytes, pattern: bytes) -> tuple[bytes, int]:
    """Core's FindAndDelete: remove every occurrence of `pattern` that starts on an
    operation boundary (re-checking after each removal). Returns (script, count)."""
    if not pattern or pattern not in script:
        return script, 0
    end = len(script)
    plen = len(pattern)
    found = 0
    out = []
    pc = 0
    pc2 = 0
    while True:
        out.append(script[pc2:pc])
        while end - pc >= plen and script.startswith(pattern, pc):
            pc += plen
            found += 1
        pc2 = pc
        ok, pc = op_end(script, pc, end)
        if not ok:
            break
    if not found:
        return script, 0
    out.append(script[pc2:])
    return b"".join(out), found


# -- EvalScript --------------------------------------------------------------------------------


def _checksig_pre_tapscript(
    sig: bytes,
    pub: bytes,
    script: bytes,
    begincodehash: int,
    flags: int,
    checker: BaseSignatureChecker,
    sigversion: int,
) -> bool:
    script_code = script[begincodehash:]
    if sigversion == SIGVERSION_BASE:
        # A signature cannot sign itself: drop it from the scriptCode (legacy scripts only).
        script_code, found = find_and_delete(script_code, push_data(sig))
        if found and flags & F.CONST_SCRIPTCODE:
            raise ScriptError("SIG_FINDANDDELETE")
    check_signature_encoding(sig, flags)
    check_pubkey_encoding(pub, flags, sigversion)
    ok = checker.check_ecdsa(sig, pub, script_code, sigversion)
    if not ok and flags & F.NULLFAIL and sig:
        raise ScriptError("SIG_NULLFAIL")
    return ok


def _checksig_tapscript(
    sig: bytes,
    pub: bytes,
    flags: int,
    checker: BaseSignatureChecker,
    execdata: ScriptExecutionData,
) -> bool:
    # Order matters (consensus): budget first, then key type, then the signature itself.
    success = len(sig) > 0
    if success:
        execdata.validation_weight_left -= VALIDATION_WEIGHT_PER_SIGOP_PASSED
        if execdata.validation_weight_left < 0:
            raise ScriptError("TAPSCRIPT_VALIDATION_WEIGHT")
    n = len(pub)
    if n == 0:
        raise ScriptError("TAPSCRIPT_EMPTY_PUBKEY")
    if n == 32:
        if success:
            checker.check_schnorr(sig, pub, SIGVERSION_TAPSCRIPT, execdata)
    elif flags & F.DISCOURAGE_UPGRADABLE_PUBKEYTYPE:
        raise ScriptError("DISCOURAGE_UPGRADABLE_PUBKEYTYPE")
    return success


def eval_script(
    stack: list[bytes],
    script: bytes,
    flags: int,
    checker: BaseSignatureChecker,
    sigversion: int = SIGVERSION_BASE,
    execdata: ScriptExecutionData | None = None,
) -> None:
    """Run `script` on `stack` (modified in place). Raises ScriptError on failure."""
    tapscript = sigversion == SIGVERSION_TAPSCRIPT
    if not tapscript and len(script) > MAX_SCRIPT_SIZE:
        raise ScriptError("SCRIPT_SIZE")
    if execdata is None:
        execdata = ScriptExecutionData()
    execdata.codesep_pos = 0xFFFFFFFF
    end = len(script)
    pc = 0
    begincodehash = 0
    op_count = 0
    opcode_pos = -1
    rm = bool(flags & F.MINIMALDATA)
    const_scriptcode = sigversion == SIGVERSION_BASE and flags & F.CONST_SCRIPTCODE
    # Condition stack as Core's ConditionStack: its size and the position of the first false.
    cond_size = 0
    first_false = -1
    altstack: list[bytes] = []
    append = stack.append
    pop = stack.pop
    disabled = _DISABLED
    smallnum = _SMALLNUM

    while pc < end:
        opcode_pos += 1
        fexec = first_false < 0
        op = script[pc]
        pc += 1

        # -- pushes ---------------------------------------------------------------------------
        if op <= 0x4E:
            if op < 0x4C:
                n = op
            elif op == 0x4C:
                if pc >= end:
                    raise ScriptError("BAD_OPCODE")
                n = script[pc]
                pc += 1
            elif op == 0x4D:
                if end - pc < 2:
                    raise ScriptError("BAD_OPCODE")
                n = script[pc] | script[pc + 1] << 8
                pc += 2
            else:
                if end - pc < 4:
                    raise ScriptError("BAD_OPCODE")
                n = int.from_bytes(script[pc : pc + 4], "little")
                pc += 4
            if end - pc < n:
                raise ScriptError("BAD_OPCODE")
            if n > MAX_SCRIPT_ELEMENT_SIZE:
                raise ScriptError("PUSH_SIZE")
            if fexec:
                data = script[pc : pc + n]
                if rm and not is_minimal_push(data, op):
                    raise ScriptError("MINIMALDATA")
                append(data)
                if len(stack) + len(altstack) > MAX_STACK_SIZE:
                    raise ScriptError("STACK_SIZE")
            pc += n
            continue

        # -- everything else ------------------------------------------------------------------
        if op > 0x60 and not tapscript:
            op_count += 1
            if op_count > MAX_OPS_PER_SCRIPT:
                raise ScriptError("OP_COUNT")
        if disabled[op]:
            raise ScriptError("DISABLED_OPCODE")
        if op == 0xAB and const_scriptcode:
            raise ScriptError("OP_CODESEPARATOR")
        if not fexec and not 0x63 <= op <= 0x68:
            continue

        if op <= 0x60:  # OP_1NEGATE, OP_1 .. OP_16 (OP_RESERVED fails)
            v = smallnum.get(op)
            if v is None:
                raise ScriptError("BAD_OPCODE")
            append(v)

        elif op == 0x76:  # OP_DUP
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            append(stack[-1])

        elif op == 0xA9 or op == 0xA8 or op == 0xA6 or op == 0xA7 or op == 0xAA:
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            v = stack[-1]
            if op == 0xA9:
                stack[-1] = ripemd160(_sha256(v).digest())
            elif op == 0xA8:
                stack[-1] = _sha256(v).digest()
            elif op == 0xAA:
                stack[-1] = _sha256(_sha256(v).digest()).digest()
            elif op == 0xA6:
                stack[-1] = ripemd160(v)
            else:
                stack[-1] = _sha1(v).digest()

        elif op == 0x87 or op == 0x88:  # OP_EQUAL, OP_EQUALVERIFY
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            equal = pop() == pop()
            if op == 0x88:
                if not equal:
                    raise ScriptError("EQUALVERIFY")
            else:
                append(_TRUE if equal else _FALSE)

        elif op == 0xAC or op == 0xAD:  # OP_CHECKSIG, OP_CHECKSIGVERIFY
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            sig = stack[-2]
            pub = stack[-1]
            if tapscript:
                ok = _checksig_tapscript(sig, pub, flags, checker, execdata)
            else:
                ok = _checksig_pre_tapscript(
                    sig, pub, script, begincodehash, flags, checker, sigversion
                )
            pop()
            pop()
            if op == 0xAD:
                if not ok:
                    raise ScriptError("CHECKSIGVERIFY")
            else:
                append(_TRUE if ok else _FALSE)

        elif 0x63 <= op <= 0x68:  # IF NOTIF VERIF VERNOTIF ELSE ENDIF
            if op == 0x63 or op == 0x64:
                value = False
                if fexec:
                    if not stack:
                        raise ScriptError("INVALID_STACK_OPERATION")
                    v = stack[-1]
                    if tapscript:
                        if len(v) > 1 or (len(v) == 1 and v[0] != 1):
                            raise ScriptError("TAPSCRIPT_MINIMALIF")
                    elif sigversion == SIGVERSION_WITNESS_V0 and flags & F.MINIMALIF:
                        if len(v) > 1 or (len(v) == 1 and v[0] != 1):
                            raise ScriptError("MINIMALIF")
                    value = cast_to_bool(v)
                    if op == 0x64:
                        value = not value
                    pop()
                if first_false < 0 and not value:
                    first_false = cond_size
                cond_size += 1
            elif op == 0x67:  # OP_ELSE
                if not cond_size:
                    raise ScriptError("UNBALANCED_CONDITIONAL")
                if first_false < 0:
                    first_false = cond_size - 1
                elif first_false == cond_size - 1:
                    first_false = -1
            elif op == 0x68:  # OP_ENDIF
                if not cond_size:
                    raise ScriptError("UNBALANCED_CONDITIONAL")
                cond_size -= 1
                if first_false == cond_size:
                    first_false = -1
            else:  # OP_VERIF / OP_VERNOTIF: invalid even when not executed
                raise ScriptError("BAD_OPCODE")

        elif op == 0x69:  # OP_VERIFY
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            if not cast_to_bool(stack[-1]):
                raise ScriptError("VERIFY")
            pop()

        elif op == 0x75:  # OP_DROP
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            pop()

        elif op == 0x7C:  # OP_SWAP
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack[-2], stack[-1] = stack[-1], stack[-2]

        elif 0x8B <= op <= 0x92:  # 1ADD 1SUB (2MUL 2DIV) NEGATE ABS NOT 0NOTEQUAL
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            bn = decode_num(stack[-1], rm)
            if op == 0x8B:
                bn += 1
            elif op == 0x8C:
                bn -= 1
            elif op == 0x8F:
                bn = -bn
            elif op == 0x90:
                bn = abs(bn)
            elif op == 0x91:
                bn = 1 if bn == 0 else 0
            else:
                bn = 0 if bn == 0 else 1
            stack[-1] = encode_num(bn)

        elif 0x93 <= op <= 0xA4:  # ADD SUB ... MIN MAX (MUL DIV MOD LSHIFT RSHIFT disabled)
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            a = decode_num(stack[-2], rm)
            b = decode_num(stack[-1], rm)
            if op == 0x93:
                r = a + b
            elif op == 0x94:
                r = a - b
            elif op == 0x9A:
                r = 1 if a != 0 and b != 0 else 0
            elif op == 0x9B:
                r = 1 if a != 0 or b != 0 else 0
            elif op == 0x9C or op == 0x9D:
                r = 1 if a == b else 0
            elif op == 0x9E:
                r = 1 if a != b else 0
            elif op == 0x9F:
                r = 1 if a < b else 0
            elif op == 0xA0:
                r = 1 if a > b else 0
            elif op == 0xA1:
                r = 1 if a <= b else 0
            elif op == 0xA2:
                r = 1 if a >= b else 0
            elif op == 0xA3:
                r = a if a < b else b
            else:
                r = a if a > b else b
            pop()
            if op == 0x9D:
                pop()
                if not r:
                    raise ScriptError("NUMEQUALVERIFY")
            else:
                stack[-1] = encode_num(r)

        elif op == 0xA5:  # OP_WITHIN
            if len(stack) < 3:
                raise ScriptError("INVALID_STACK_OPERATION")
            x = decode_num(stack[-3], rm)
            lo = decode_num(stack[-2], rm)
            hi = decode_num(stack[-1], rm)
            del stack[-3:]
            append(_TRUE if lo <= x < hi else _FALSE)

        elif op == 0xAE or op == 0xAF:  # OP_CHECKMULTISIG(VERIFY)
            if tapscript:
                raise ScriptError("TAPSCRIPT_CHECKMULTISIG")
            op_count = _checkmultisig(
                stack, op, script, begincodehash, flags, checker, sigversion, rm, op_count
            )

        elif op == 0xBA:  # OP_CHECKSIGADD
            if not tapscript:
                raise ScriptError("BAD_OPCODE")
            if len(stack) < 3:
                raise ScriptError("INVALID_STACK_OPERATION")
            sig = stack[-3]
            num = decode_num(stack[-2], rm)
            pub = stack[-1]
            ok = _checksig_tapscript(sig, pub, flags, checker, execdata)
            del stack[-3:]
            append(encode_num(num + 1 if ok else num))

        elif op == 0xAB:  # OP_CODESEPARATOR
            begincodehash = pc
            execdata.codesep_pos = opcode_pos

        elif op == 0x61:  # OP_NOP
            pass

        elif op == 0xB1 or op == 0xB2:  # CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY
            cltv = op == 0xB1
            if not flags & (F.CHECKLOCKTIMEVERIFY if cltv else F.CHECKSEQUENCEVERIFY):
                continue  # not enabled: a NOP
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            # Five-byte operands: lock times are uint32 and must not overflow at 2**31.
            n = decode_num(stack[-1], rm, 5)
            if n < 0:
                raise ScriptError("NEGATIVE_LOCKTIME")
            if cltv:
                if not checker.check_locktime(n):
                    raise ScriptError("UNSATISFIED_LOCKTIME")
            elif not n & SEQUENCE_LOCKTIME_DISABLE_FLAG and not checker.check_sequence(n):
                raise ScriptError("UNSATISFIED_LOCKTIME")

        elif op in _UPGRADABLE_NOPS:
            if flags & F.DISCOURAGE_UPGRADABLE_NOPS:
                raise ScriptError("DISCOURAGE_UPGRADABLE_NOPS")

        elif op == 0x6A:  # OP_RETURN
            raise ScriptError("OP_RETURN")

        elif op == 0x6B:  # OP_TOALTSTACK
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            altstack.append(pop())

        elif op == 0x6C:  # OP_FROMALTSTACK
            if not altstack:
                raise ScriptError("INVALID_ALTSTACK_OPERATION")
            append(altstack.pop())

        elif op == 0x6D:  # OP_2DROP
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            del stack[-2:]

        elif op == 0x6E:  # OP_2DUP
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack.extend(stack[-2:])

        elif op == 0x6F:  # OP_3DUP
            if len(stack) < 3:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack.extend(stack[-3:])

        elif op == 0x70:  # OP_2OVER
            if len(stack) < 4:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack.extend(stack[-4:-2])

        elif op == 0x71:  # OP_2ROT
            if len(stack) < 6:
                raise ScriptError("INVALID_STACK_OPERATION")
            moved = stack[-6:-4]
            del stack[-6:-4]
            stack.extend(moved)

        elif op == 0x72:  # OP_2SWAP
            if len(stack) < 4:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack[-4:] = stack[-2:] + stack[-4:-2]

        elif op == 0x73:  # OP_IFDUP
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            if cast_to_bool(stack[-1]):
                append(stack[-1])

        elif op == 0x74:  # OP_DEPTH
            append(encode_num(len(stack)))

        elif op == 0x77:  # OP_NIP
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            del stack[-2]

        elif op == 0x78:  # OP_OVER
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            append(stack[-2])

        elif op == 0x79 or op == 0x7A:  # OP_PICK, OP_ROLL
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            n = decode_num(stack[-1], rm)
            pop()
            if n < 0 or n >= len(stack):
                raise ScriptError("INVALID_STACK_OPERATION")
            v = stack[-n - 1]
            if op == 0x7A:
                del stack[-n - 1]
            append(v)

        elif op == 0x7B:  # OP_ROT
            if len(stack) < 3:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack[-3], stack[-2], stack[-1] = stack[-2], stack[-1], stack[-3]

        elif op == 0x7D:  # OP_TUCK
            if len(stack) < 2:
                raise ScriptError("INVALID_STACK_OPERATION")
            stack.insert(-2, stack[-1])

        elif op == 0x82:  # OP_SIZE
            if not stack:
                raise ScriptError("INVALID_STACK_OPERATION")
            append(encode_num(len(stack[-1])))

        else:
            # OP_RESERVED is handled above; OP_VER, OP_RESERVED1/2, 0xbb.. and unknown bytes.
            raise ScriptError("BAD_OPCODE")

        if len(stack) + len(altstack) > MAX_STACK_SIZE:
            raise ScriptError("STACK_SIZE")

    if cond_size:
        raise ScriptError("UNBALANCED_CONDITIONAL")


def _checkmultisig(
    stack: list[bytes],
    op: int,
    script: bytes,
    begincodehash: int,
    flags: int,
    checker: BaseSignatureChecker,
    sigversion: int,
    rm: bool,
    op_count: int,
) -> int:
    """OP_CHECKMULTISIG(VERIFY), exactly as Core walks the stack. Returns the new op count."""
    i = 1
    if len(stack) < i:
        raise ScriptError("INVALID_STACK_OPERATION")
    nkeys = decode_num(stack[-i], rm)
    if nkeys < 0 or nkeys > MAX_PUBKEYS_PER_MULTISIG:
        raise ScriptError("PUBKEY_COUNT")
    op_count += nkeys
    if op_count > MAX_OPS_PER_SCRIPT:
        raise ScriptError("OP_COUNT")
    i += 1
    ikey = i
    # ikey2: position of the last non-signature item; with NULLFAIL, used when cleaning up.
    ikey2 = nkeys + 2
    i += nkeys
    if len(stack) < i:
        raise ScriptError("INVALID_STACK_OPERATION")
    nsigs = decode_num(stack[-i], rm)
    if nsigs < 0 or nsigs > nkeys:
        raise ScriptError("SIG_COUNT")
    i += 1
    isig = i
    i += nsigs
    if len(stack) < i:
        raise ScriptError("INVALID_STACK_OPERATION")

    script_code = script[begincodehash:]
    if sigversion == SIGVERSION_BASE:
        for k in range(nsigs):
            script_code, found = find_and_delete(script_code, push_data(stack[-isig - k]))
            if found and flags & F.CONST_SCRIPTCODE:
                raise ScriptError("SIG_FINDANDDELETE")

    success = True
    while success and nsigs > 0:
        sig = stack[-isig]
        pub = stack[-ikey]
        # Encoding is checked pair by pair, so the evaluation order is observable.
        check_signature_encoding(sig, flags)
        check_pubkey_encoding(pub, flags, sigversion)
        if checker.check_ecdsa(sig, pub, script_code, sigversion):
            isig += 1
            nsigs -= 1
        ikey += 1
        nkeys -= 1
        # More signatures left than keys: it can no longer succeed.
        if nsigs > nkeys:
            success = False

    while i > 1:
        i -= 1
        if not success and flags & F.NULLFAIL and not ikey2 and stack[-1]:
            raise ScriptError("SIG_NULLFAIL")
        if ikey2 > 0:
            ikey2 -= 1
        stack.pop()

    # The historic off-by-one: one more item is consumed (BIP147 requires it be empty).
    if not stack:
        raise ScriptError("INVALID_STACK_OPERATION")
    if flags & F.NULLDUMMY and stack[-1]:
        raise ScriptError("SIG_NULLDUMMY")
    stack.pop()
    if op == 0xAF:
        if not success:
            raise ScriptError("CHECKMULTISIGVERIFY")
    else:
        stack.append(_TRUE if success else _FALSE)
    return op_count


# -- witness programs ------------------------------------------------------------------------


def _execute_witness_script(
    stack: list[bytes],
    script: bytes,
    flags: int,
    sigversion: int,
    checker: BaseSignatureChecker,
    execdata: ScriptExecutionData,
) -> None:
    if sigversion == SIGVERSION_TAPSCRIPT:
        # OP_SUCCESSx anywhere (not inside a push) makes the script succeed: checked first,
        # before any size limit.
        end = len(script)
        pc = 0
        table = OP_SUCCESS_TABLE
        while pc < end:
            op = script[pc]
            ok, pc = op_end(script, pc, end)
            if not ok:
                raise ScriptError("BAD_OPCODE")
            if table[op]:
                if flags & F.DISCOURAGE_OP_SUCCESS:
                    raise ScriptError("DISCOURAGE_OP_SUCCESS")
                return
        if len(stack) > MAX_STACK_SIZE:
            raise ScriptError("STACK_SIZE")
    for item in stack:
        if len(item) > MAX_SCRIPT_ELEMENT_SIZE:
            raise ScriptError("PUSH_SIZE")
    eval_script(stack, script, flags, checker, sigversion, execdata)
    # Witness scripts must leave exactly one true element.
    if len(stack) != 1:
        raise ScriptError("CLEANSTACK")
    if not cast_to_bool(stack[0]):
        raise ScriptError("EVAL_FALSE")


def witness_serialized_size(witness: Sequence[bytes]) -> int:
    n = compact_size_len(len(witness))
    for item in witness:
        n += compact_size_len(len(item)) + len(item)
    return n


def verify_taproot_commitment(control: bytes, program: bytes, leaf_hash: bytes) -> bool:
    root = control_block_merkle_root(control, leaf_hash)
    internal = control[1:33]
    return check_tap_tweak(program, internal, taptweak_hash(internal, root), control[0] & 1)


def verify_witness_program(
    witness: Sequence[bytes],
    version: int,
    program: bytes,
    flags: int,
    checker: BaseSignatureChecker,
    is_p2sh: bool,
) -> None:
    execdata = ScriptExecutionData()
    if version == 0:
        if len(program) == 32:  # P2WSH
            if not witness:
                raise ScriptError("WITNESS_PROGRAM_WITNESS_EMPTY")
            script = witness[-1]
            if _sha256(script).digest() != program:
                raise ScriptError("WITNESS_PROGRAM_MISMATCH")
            _execute_witness_script(
                list(witness[:-1]), script, flags, SIGVERSION_WITNESS_V0, checker, execdata
            )
            return
        if len(program) == 20:  # P2WPKH
            if len(witness) != 2:
                raise ScriptError("WITNESS_PROGRAM_MISMATCH")
            script = p2pkh_script(program)
            _execute_witness_script(
                list(witness), script, flags, SIGVERSION_WITNESS_V0, checker, execdata
            )
            return
        raise ScriptError("WITNESS_PROGRAM_WRONG_LENGTH")

    if version == 1 and len(program) == 32 and not is_p2sh:
        if not flags & F.TAPROOT:
            return
        stack = list(witness)
        if not stack:
            raise ScriptError("WITNESS_PROGRAM_WITNESS_EMPTY")
        if len(stack) >= 2 and stack[-1] and stack[-1][0] == ANNEX_TAG:
            execdata.annex_hash = annex_hash(stack.pop())
        if len(stack) == 1:  # key path
            checker.check_schnorr(stack[0], program, SIGVERSION_TAPROOT, execdata)
            return
        control = stack.pop()
        script = stack.pop()
        if not valid_control_size(len(control)):
            raise ScriptError("TAPROOT_WRONG_CONTROL_SIZE")
        leaf_version = control[0] & TAPROOT_LEAF_MASK
        execdata.tapleaf_hash = tapleaf_hash(script, leaf_version)
        if not verify_taproot_commitment(control, program, execdata.tapleaf_hash):
            raise ScriptError("WITNESS_PROGRAM_MISMATCH")
        if leaf_version == TAPROOT_LEAF_TAPSCRIPT:
            execdata.validation_weight_left = (
                witness_serialized_size(witness) + VALIDATION_WEIGHT_OFFSET
            )
            _execute_witness_script(
                stack, script, flags, SIGVERSION_TAPSCRIPT, checker, execdata
            )
            return
        if flags & F.DISCOURAGE_UPGRADABLE_TAPROOT_VERSION:
            raise ScriptError("DISCOURAGE_UPGRADABLE_TAPROOT_VERSION")
        return

    if version == 1 and program == b"\x4e\x73" and not is_p2sh:
        return  # pay-to-anchor: anyone can spend it, and spending it is standard
    # Unknown versions and sizes (and P2SH-wrapped v1) succeed: room for future soft forks.
    if flags & F.DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM:
        raise ScriptError("DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM")


# -- VerifyScript ----------------------------------------------------------------------------


def verify_script(
    script_sig: bytes,
    script_pubkey: bytes,
    witness: Sequence[bytes] | None,
    flags: int,
    checker: BaseSignatureChecker,
) -> None:
    """Core's VerifyScript: scriptSig, then scriptPubKey on the same stack, then P2SH and
    witness programs. Raises ScriptError; returns None when the spend is valid."""
    if witness is None:
        witness = ()
    if flags & F.SIGPUSHONLY and not is_push_only(script_sig):
        raise ScriptError("SIG_PUSHONLY")

    # Evaluated one after the other, never concatenated (CVE-2010-5141).
    stack: list[bytes] = []
    eval_script(stack, script_sig, flags, checker, SIGVERSION_BASE)
    stack_copy = list(stack) if flags & F.P2SH else None
    eval_script(stack, script_pubkey, flags, checker, SIGVERSION_BASE)
    if not stack or not cast_to_bool(stack[-1]):
        raise ScriptError("EVAL_FALSE")

    had_witness = False
    if flags & F.WITNESS:
        wp = witness_program(script_pubkey)
        if wp is not None:
            had_witness = True
            if script_sig:
                raise ScriptError("WITNESS_MALLEATED")
            verify_witness_program(witness, wp[0], wp[1], flags, checker, False)
            del stack[1:]  # the witness stack was separate; keep CLEANSTACK happy

    if flags & F.P2SH and is_p2sh(script_pubkey):
        if not is_push_only(script_sig):
            raise ScriptError("SIG_PUSHONLY")
        stack = stack_copy  # type: ignore[assignment]
        # Cannot be empty: HASH160 <h> EQUAL would have failed on an empty stack.
        redeem = stack.pop()
        eval_script(stack, redeem, flags, checker, SIGVERSION_BASE)
        if not stack or not cast_to_bool(stack[-1]):
            raise ScriptError("EVAL_FALSE")
        if flags & F.WITNESS:
            wp = witness_program(redeem)
            if wp is not None:
                had_witness = True
                # Exactly one push of the redeem script, or the txid could be malleated.
                if script_sig != push_data(redeem):
                    raise ScriptError("WITNESS_MALLEATED_P2SH")
                verify_witness_program(witness, wp[0], wp[1], flags, checker, True)
                del stack[1:]

    if flags & F.CLEANSTACK and len(stack) != 1:
        raise ScriptError("CLEANSTACK")

    if flags & F.WITNESS and not had_witness and witness:
        raise ScriptError("WITNESS_UNEXPECTED")
