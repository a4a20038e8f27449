"""Template classification (Core's Solver), builders, asm rendering and asm parsing."""

from __future__ import annotations

import random

import pytest

from consensus.hashes import hash160, sha256
from consensus.script.keys import pubkey, sign_ecdsa
from consensus.script.script import (
    is_minimal_push,
    is_p2sh,
    is_push_only,
    is_unspendable,
    last_push,
    op_end,
    push_data,
    push_int,
    witness_program,
)
from consensus.script.standard import (
    ANCHOR,
    MULTISIG,
    NONSTANDARD,
    NULL_DATA,
    PUBKEY,
    PUBKEYHASH,
    SCRIPTHASH,
    WITNESS_UNKNOWN,
    WITNESS_V0_KEYHASH,
    WITNESS_V0_SCRIPTHASH,
    WITNESS_V1_TAPROOT,
    multisig_script,
    nulldata_script,
    p2pk_script,
    p2pkh_script,
    p2sh_script,
    p2tr_script,
    p2wpkh_script,
    p2wsh_script,
    parse_asm,
    script_to_asm,
    solver,
    witness_v_script,
)

rng = random.Random(5)
KEYS = [pubkey(rng.randbytes(32)) for _ in range(20)]
UNCOMPRESSED = pubkey(rng.randbytes(32), compressed=False)


def test_solver_templates() -> None:
    h20, h32 = rng.randbytes(20), rng.randbytes(32)
    assert solver(p2pkh_script(h20)) == (PUBKEYHASH, [h20])
    assert solver(p2sh_script(h20)) == (SCRIPTHASH, [h20])
    assert solver(p2wpkh_script(h20)) == (WITNESS_V0_KEYHASH, [h20])
    assert solver(p2wsh_script(h32)) == (WITNESS_V0_SCRIPTHASH, [h32])
    assert solver(p2tr_script(h32)) == (WITNESS_V1_TAPROOT, [h32])
    assert solver(p2pk_script(KEYS[0])) == (PUBKEY, [KEYS[0]])
    assert solver(p2pk_script(UNCOMPRESSED)) == (PUBKEY, [UNCOMPRESSED])
    assert solver(bytes.fromhex("51024e73")) == (ANCHOR, [])
    prog = rng.randbytes(12)
    assert solver(witness_v_script(5, prog)) == (WITNESS_UNKNOWN, [b"\x05", prog])
    # v1 with a 20-byte program is not taproot; v0 with 25 bytes is nonstandard.
    assert solver(witness_v_script(1, h20)) == (WITNESS_UNKNOWN, [b"\x01", h20])
    assert solver(witness_v_script(0, rng.randbytes(25)))[0] == NONSTANDARD


def test_solver_multisig() -> None:
    ms = multisig_script(2, KEYS[:3])
    assert solver(ms) == (MULTISIG, [b"\x02", *KEYS[:3], b"\x03"])
    # 20 keys: counts above 16 are pushed numbers, which Solver accepts when minimal.
    big = multisig_script(17, KEYS)
    assert solver(big) == (MULTISIG, [bytes((17,)), *KEYS, bytes((20,))])
    # Wrong key count, m > n, invalid key sizes, trailing junk.
    assert solver(push_int(2) + push_data(KEYS[0]) + push_int(2) + b"\xae")[0] == NONSTANDARD
    assert solver(multisig_script(3, KEYS[:2]))[0] == NONSTANDARD
    assert solver(push_int(1) + push_data(b"\x02" + bytes(31)) + push_int(1) + b"\xae")[0] == (
        NONSTANDARD
    )
    assert solver(ms[:-1] + b"\x51\xae")[0] == NONSTANDARD
    # A non-minimal count push is not a number for Solver.
    assert solver(b"\x01\x01" + push_data(KEYS[0]) + b"\x51\xae")[0] == NONSTANDARD


def test_solver_nulldata_and_nonstandard() -> None:
    assert solver(nulldata_script(b"hello", b"world")) == (NULL_DATA, [])
    assert solver(b"\x6a") == (NULL_DATA, [])
    assert solver(b"\x6a\x61")[0] == NONSTANDARD  # OP_RETURN OP_NOP: not push-only
    assert solver(b"")[0] == NONSTANDARD
    assert solver(b"\x51")[0] == NONSTANDARD
    assert solver(push_data(b"\x05" + bytes(32)) + b"\xac")[0] == NONSTANDARD


def test_asm_rendering() -> None:
    h = bytes(range(20))
    assert script_to_asm(p2pkh_script(h)) == (
        f"OP_DUP OP_HASH160 {h.hex()} OP_EQUALVERIFY OP_CHECKSIG"
    )
    # Small pushes print as numbers; OP_n by name; non-minimal numbers still decode.
    assert script_to_asm(b"\x00\x4f\x51\x60\x01\x81\x02\xe8\x03\x02\x00\x80") == (
        "0 -1 1 16 -1 1000 0"
    )
    assert script_to_asm(b"\xb1\xb2\xba\xbb\xff") == (
        "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY OP_CHECKSIGADD OP_UNKNOWN "
        "OP_INVALIDOPCODE"
    )
    assert script_to_asm(b"\x51\x05\x01") == "1 [error]"


def test_asm_sighash_decoding() -> None:
    sig = sign_ecdsa(bytes(31) + b"\x07", bytes(32))
    for ht, name in ((1, "ALL"), (0x81, "ALL|ANYONECANPAY"), (2, "NONE"), (3, "SINGLE"),
                     (0x83, "SINGLE|ANYONECANPAY")):
        script_sig = push_data(sig + bytes((ht,))) + push_data(KEYS[0])
        assert script_to_asm(script_sig, True) == f"{sig.hex()}[{name}] {KEYS[0].hex()}"
        assert script_to_asm(script_sig) == f"{(sig + bytes((ht,))).hex()} {KEYS[0].hex()}"
    # Undefined hash type: left as hex. OP_RETURN outputs are never decoded.
    odd = push_data(sig + b"\x04")
    assert script_to_asm(odd, True) == (sig + b"\x04").hex()
    signed = sig + b"\x01"
    ret = b"\x6a" + push_data(signed)
    assert script_to_asm(ret, True) == f"OP_RETURN {signed.hex()}"


def test_parse_asm() -> None:
    assert parse_asm("DUP HASH160 0x14 0x" + "ab" * 20 + " EQUALVERIFY CHECKSIG") == (
        p2pkh_script(bytes.fromhex("ab" * 20))
    )
    assert parse_asm("0 -1 1 16 17 -2 1000") == (
        b"\x00\x4f\x51\x60" + push_data(b"\x11") + push_data(b"\x82") + push_data(b"\xe8\x03")
    )
    assert parse_asm("'abc' ''") == b"\x03abc\x00"
    assert parse_asm("OP_ADD ADD NOP10 OP_CHECKSEQUENCEVERIFY") == b"\x93\x93\xb9\xb2"
    assert parse_asm("  1   2  ") == b"\x51\x52"
    for bad in ("FOO", "0xabc", "4294967296", "NOP2", "OP_1"):
        with pytest.raises(ValueError):
            parse_asm(bad)


def _asm_to_parse_syntax(text: str) -> str:
    """Core's asm output -> its test-vector syntax: hex data becomes an explicit push."""
    out = []
    for tok in text.split():
        if tok.startswith("OP_") or tok.lstrip("-").isdigit():
            out.append(tok)
        else:
            out.append("0x" + push_data(bytes.fromhex(tok)).hex())
    return " ".join(out)


def test_asm_round_trip_of_templates() -> None:
    scripts = [
        p2pkh_script(rng.randbytes(20)),
        p2sh_script(rng.randbytes(20)),
        p2wsh_script(sha256(b"x")),
        p2tr_script(rng.randbytes(32)),
        multisig_script(2, KEYS[:3]),
        multisig_script(17, KEYS),
        p2pk_script(KEYS[1]),
        nulldata_script(b"some data here"),
    ]
    for s in scripts:
        assert parse_asm(_asm_to_parse_syntax(script_to_asm(s))) == s
    assert hash160(KEYS[0]) == solver(p2pkh_script(hash160(KEYS[0])))[1][0]


def test_shared_script_helpers() -> None:
    """consensus.script.script's template tests and push encodings, as Core defines them."""
    # IsPushOnly: anything up to OP_16 is a push, OP_RESERVED included; truncation is not.
    assert is_push_only(b"") and is_push_only(b"\x00\x4f\x50\x51\x60" + push_data(bytes(300)))
    assert not is_push_only(b"\x61") and not is_push_only(b"\x51\xac")
    assert not is_push_only(b"\x02\x01") and not is_push_only(b"\x4d\x01")
    # The last element of a push-only scriptSig (GetOp's vData: b"" after OP_n).
    redeem = multisig_script(1, KEYS[:2])
    assert last_push(b"\x00" + push_data(redeem)) == redeem
    assert last_push(push_data(redeem) + b"\x51") == b"" and last_push(b"") == b""
    assert last_push(push_data(redeem) + b"\x61") is None and last_push(b"\x05\x01") is None
    h20 = rng.randbytes(20)
    assert is_p2sh(p2sh_script(h20)) and not is_p2sh(p2pkh_script(h20))
    assert witness_program(p2wpkh_script(h20)) == (0, h20)
    assert witness_program(witness_v_script(16, bytes(40))) == (16, bytes(40))
    assert witness_program(b"\x51\x01\x01") is None and witness_program(b"\x61\x02\x01\x01") is None
    assert witness_program(b"\x00\x14" + h20 + b"\x00") is None
    assert is_unspendable(b"\x6a") and is_unspendable(b"\x51" * 10_001)
    assert not is_unspendable(b"") and not is_unspendable(b"\x51" * 10_000)
    assert [push_int(n).hex() for n in (0, -1, 1, 16, 17, 128, -128, 500_000)] == [
        "00", "4f", "51", "60", "0111", "028000", "028080", "0320a107"
    ]
    with pytest.raises(ValueError):
        witness_v_script(17, bytes(20))
    # CheckMinimalPush, and where GetScriptOp stops on a truncated push (FindAndDelete uses it).
    assert is_minimal_push(b"", 0x00) and is_minimal_push(b"\x05", 0x55)
    assert not is_minimal_push(b"\x05", 0x01) and not is_minimal_push(b"\x81", 0x01)
    assert is_minimal_push(bytes(76), 0x4C) and not is_minimal_push(bytes(75), 0x4C)
    assert op_end(b"\x02\xaa\xbb\xac", 0, 4) == (True, 3)
    assert op_end(b"\x4d\x05\x00\x01", 0, 4) == (False, 3)
    assert op_end(b"\x4d\x05", 0, 2) == (False, 1)
