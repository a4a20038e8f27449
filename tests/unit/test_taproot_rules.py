"""Taproot and tapscript rules, each on a spend built and signed here: where the vectors are
thin (codeseparator positions, validation weight, annexes, upgrade hooks), one test per rule."""

from __future__ import annotations

import random

import pytest

from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.keys import (
    control_block,
    sign_p2tr_key_input,
    sign_schnorr,
    taproot_tweak_pubkey,
    xonly_pubkey,
)
from consensus.script.script import push_data
from consensus.script.sighash import taproot_sighash
from consensus.script.standard import p2sh_script, p2tr_script, parse_asm
from consensus.script.taproot import merkle_root_from_path, tapleaf_hash
from consensus.script.verify import verify_input
from consensus.tx import OutPoint, Transaction, TxIn, TxOut

MANDATORY = F.MANDATORY_SCRIPT_VERIFY_FLAGS
STANDARD = F.STANDARD_SCRIPT_VERIFY_FLAGS
rng = random.Random(77)
K_INTERNAL = rng.randbytes(32)
K1, K2, K3 = (rng.randbytes(32) for _ in range(3))
X1, X2, X3 = (xonly_pubkey(k) for k in (K1, K2, K3))
SIBLING = tapleaf_hash(b"\x51")  # another leaf in the tree, never spent


class TapSpend:
    """A one-input transaction spending `script` (leaf version `leaf_version`) from a
    two-leaf tree; items are the stack below the script."""

    def __init__(self, script: bytes, leaf_version: int = 0xC0, n_outputs: int = 1) -> None:
        self.script = script
        self.leaf_version = leaf_version
        self.leaf = tapleaf_hash(script, leaf_version)
        self.internal = xonly_pubkey(K_INTERNAL)
        self.root = merkle_root_from_path(self.leaf, [SIBLING])
        self.output, self.parity = taproot_tweak_pubkey(self.internal, self.root)
        self.spent = [TxOut(90_000, p2tr_script(self.output))]
        self.tx = Transaction(
            2,
            [TxIn(OutPoint(rng.randbytes(32), 0), b"", 0xFFFFFFFE)],
            [TxOut(1000 + i, b"\x00\x14" + bytes(20)) for i in range(n_outputs)],
            0,
        )

    def control(self) -> bytes:
        return control_block(self.internal, self.parity, [SIBLING], self.leaf_version)

    def sign(self, key: bytes, hash_type: int = 0, codesep_pos: int = 0xFFFFFFFF,
             annex: bytes | None = None) -> bytes:
        h = taproot_sighash(self.tx, 0, self.spent, hash_type, leaf_hash=self.leaf,
                            codesep_pos=codesep_pos, annex=annex)
        sig = sign_schnorr(key, h)
        return sig + bytes((hash_type,)) if hash_type else sig

    def verify(self, items: list[bytes], flags: int = STANDARD, annex: bytes | None = None,
               control: bytes | None = None) -> str:
        wit = [*items, self.script, control if control is not None else self.control()]
        if annex is not None:
            wit.append(annex)
        self.tx.vin[0].witness = wit
        self.tx.rehash()
        try:
            verify_input(self.tx, 0, self.spent, flags, sigcache=None)
        except ScriptError as e:
            return e.code
        return "OK"


def asm(text: str) -> bytes:
    return parse_asm(text)


def x(key: bytes) -> str:
    return "0x20 0x" + key.hex()


def test_checksig_valid_invalid_and_empty() -> None:
    t = TapSpend(asm(f"{x(X1)} CHECKSIG"))
    assert t.verify([t.sign(K1)]) == "OK"
    assert t.verify([t.sign(K2)]) == "SCHNORR_SIG"  # a failing non-empty signature aborts
    assert t.verify([b""]) == "EVAL_FALSE"  # the empty signature is a clean "false"
    assert t.verify([t.sign(K1, 0x01)]) == "OK"  # explicit SIGHASH_ALL
    assert t.verify([t.sign(K1)[:63]]) == "SCHNORR_SIG_SIZE"


def test_checksigadd_threshold() -> None:
    t = TapSpend(asm(f"{x(X1)} CHECKSIG {x(X2)} CHECKSIGADD {x(X3)} CHECKSIGADD 2 NUMEQUAL"))
    # Stack order: the signature for the last key is deepest.
    assert t.verify([t.sign(K3), b"", t.sign(K1)]) == "OK"
    assert t.verify([b"", b"", t.sign(K1)]) == "EVAL_FALSE"
    assert t.verify([t.sign(K3), t.sign(K2), t.sign(K1)]) == "EVAL_FALSE"  # 3 != 2


def test_validation_weight_budget() -> None:
    # One signature checked n times: each check costs 50 units, each repetition adds only
    # 35 witness bytes, so a long enough script runs out of budget.
    def script(n: int) -> bytes:
        return asm(" ".join([f"DUP {x(X1)} CHECKSIGVERIFY"] * n + ["DROP 1"]))

    small, large = TapSpend(script(5)), TapSpend(script(40))
    assert small.verify([small.sign(K1)]) == "OK"
    assert large.verify([large.sign(K1)]) == "TAPSCRIPT_VALIDATION_WEIGHT"
    # Padding the witness (here with an annex) raises the budget: the same script passes.
    pad = b"\x50" + bytes(1200)
    assert large.verify([large.sign(K1, annex=pad)], flags=MANDATORY, annex=pad) == "OK"


def test_codeseparator_position_is_signed() -> None:
    t = TapSpend(asm(f"{x(X1)} CHECKSIGVERIFY CODESEPARATOR {x(X2)} CHECKSIG"))
    # Opcode positions: push 0, CHECKSIGVERIFY 1, CODESEPARATOR 2, push 3, CHECKSIG 4.
    good = [t.sign(K2, codesep_pos=2), t.sign(K1)]
    assert t.verify(good) == "OK"
    assert t.verify([t.sign(K2), t.sign(K1)]) == "SCHNORR_SIG"
    assert t.verify([t.sign(K2, codesep_pos=2), t.sign(K1, codesep_pos=2)]) == "SCHNORR_SIG"


def test_annex_is_committed_to() -> None:
    t = TapSpend(asm(f"{x(X1)} CHECKSIG"))
    annex = b"\x50\xaa\xbb"
    assert t.verify([t.sign(K1, annex=annex)], annex=annex) == "OK"
    assert t.verify([t.sign(K1)], annex=annex) == "SCHNORR_SIG"
    # Key path too.
    spent = [TxOut(5000, p2tr_script(taproot_tweak_pubkey(X1)[0]))]
    tx = Transaction(2, [TxIn(OutPoint(rng.randbytes(32), 1))], [TxOut(10, b"\x51")], 0)
    sign_p2tr_key_input(tx, 0, K1, spent, annex=annex)
    verify_input(tx, 0, spent, MANDATORY, sigcache=None)
    tx.vin[0].witness = [tx.vin[0].witness[0], b"\x50\xaa\xbc"]
    with pytest.raises(ScriptError) as e:
        verify_input(tx, 0, spent, MANDATORY, sigcache=None)
    assert e.value.code == "SCHNORR_SIG"


def test_op_success_and_upgrade_hooks() -> None:
    t = TapSpend(b"\x50" + asm("RETURN"))  # OP_SUCCESS80 wins over everything after it
    assert t.verify([]) == "DISCOURAGE_OP_SUCCESS"
    assert t.verify([], flags=MANDATORY) == "OK"
    # An OP_SUCCESS byte inside a push is data, not an opcode.
    t = TapSpend(b"\x01\x50" + asm("DROP 0"))
    assert t.verify([], flags=MANDATORY) == "EVAL_FALSE"
    # A truncated push before any OP_SUCCESS is a parse error.
    assert TapSpend(b"\x05\x50").verify([], flags=MANDATORY) == "BAD_OPCODE"
    # Unknown leaf versions are unencumbered, but discouraged by policy.
    t = TapSpend(asm("RETURN"), leaf_version=0xC2)
    assert t.verify([], flags=MANDATORY) == "OK"
    assert t.verify([]) == "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION"
    # Public keys of unknown type count as success for non-empty signatures.
    t = TapSpend(asm("0x21 0x02" + "11" * 32 + " CHECKSIG"))
    assert t.verify([b"\x01"], flags=MANDATORY) == "OK"
    assert t.verify([b"\x01"]) == "DISCOURAGE_UPGRADABLE_PUBKEYTYPE"
    assert TapSpend(asm("0 CHECKSIG")).verify([b"\x01"]) == "TAPSCRIPT_EMPTY_PUBKEY"


def test_control_block_checks() -> None:
    t = TapSpend(asm("1"))
    assert t.verify([]) == "OK"
    assert t.verify([], control=t.control()[:-1]) == "TAPROOT_WRONG_CONTROL_SIZE"
    assert t.verify([], control=t.control() + bytes(32)) == "WITNESS_PROGRAM_MISMATCH"
    wrong_parity = bytes((t.control()[0] ^ 1,)) + t.control()[1:]
    assert t.verify([], control=wrong_parity) == "WITNESS_PROGRAM_MISMATCH"
    wrong_key = t.control()[:1] + X2 + t.control()[33:]
    assert t.verify([], control=wrong_key) == "WITNESS_PROGRAM_MISMATCH"


def test_tapscript_specific_rules() -> None:
    t = TapSpend(asm("IF 1 ELSE 1 ENDIF"))
    assert t.verify([b"\x01"]) == "OK"
    assert t.verify([b"\x02"], flags=MANDATORY) == "TAPSCRIPT_MINIMALIF"
    assert t.verify([b"\x01\x00"], flags=MANDATORY) == "TAPSCRIPT_MINIMALIF"
    assert TapSpend(asm("0 0 0 CHECKMULTISIG")).verify([]) == "TAPSCRIPT_CHECKMULTISIG"
    # No 201-opcode limit and no 10,000-byte size limit in tapscript.
    assert TapSpend(asm("NOP " * 300 + "1")).verify([]) == "OK"
    big = TapSpend(push_data(bytes(500)) + b"\x75" * 1 + asm("1") + b"\x61" * 10_000)
    assert big.verify([]) == "OK"
    # The initial stack counts against the 1,000-item limit.
    assert TapSpend(asm("DROP " * 1 + "1")).verify([b""] * 1001) == "STACK_SIZE"
    assert TapSpend(asm("2DROP " * 499 + "DROP 1")).verify([b""] * 999) == "OK"


def test_key_path_hash_types() -> None:
    spent = [TxOut(5000, p2tr_script(taproot_tweak_pubkey(X1)[0])), TxOut(7, b"\x51")]
    tx = Transaction(
        2, [TxIn(OutPoint(rng.randbytes(32), 0)), TxIn(OutPoint(rng.randbytes(32), 0))],
        [TxOut(10, b"\x51")], 0,
    )

    def code(witness: list[bytes]) -> str:
        tx.vin[0].witness = witness
        tx.rehash()
        try:
            verify_input(tx, 0, spent, STANDARD, sigcache=None)
        except ScriptError as e:
            return e.code
        return "OK"

    for ht in (0x00, 0x01, 0x02, 0x03, 0x81, 0x82, 0x83):
        sign_p2tr_key_input(tx, 0, K1, spent, ht)
        assert code(tx.vin[0].witness) == "OK"
    sign_p2tr_key_input(tx, 0, K1, spent, 0)
    sig = tx.vin[0].witness[0]
    assert code([sig + b"\x00"]) == "SCHNORR_SIG_HASHTYPE"
    assert code([sig + b"\x04"]) == "SCHNORR_SIG_HASHTYPE"
    assert code([sig + b"\x01"]) == "SCHNORR_SIG"  # valid type, but not what was signed
    assert code([sig[:-1]]) == "SCHNORR_SIG_SIZE"
    assert code([]) == "WITNESS_PROGRAM_WITNESS_EMPTY"
    # SIGHASH_SINGLE with no output at our index cannot be signed or verified.
    h_all = taproot_sighash(tx, 1, spent)  # input 1 exists; only output 0 does
    with pytest.raises(ValueError):
        taproot_sighash(tx, 1, spent, 0x03)
    assert len(h_all) == 32


def test_p2sh_wrapped_v1_is_unencumbered() -> None:
    redeem = b"\x51\x20" + X1
    spent = [TxOut(5000, p2sh_script(hash160(redeem)))]
    tx = Transaction(2, [TxIn(OutPoint(rng.randbytes(32), 0), push_data(redeem))],
                     [TxOut(10, b"\x51")], 0)
    tx.vin[0].witness = [b"anything"]
    verify_input(tx, 0, spent, MANDATORY, sigcache=None)
    with pytest.raises(ScriptError) as e:
        verify_input(tx, 0, spent, STANDARD, sigcache=None)
    assert e.value.code == "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM"
