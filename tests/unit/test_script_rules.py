"""Rules and building blocks the JSON vectors cover thinly: script numbers, lax DER, encoding
checks, FindAndDelete, flags, errors, the two caches, and the template fast paths (checked
against the general interpreter on randomly damaged spends)."""

from __future__ import annotations

import pickle
import random

import pytest

from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.errors import MESSAGES, ScriptError, script_error_string, vector_name
from consensus.script.interpreter import (
    BaseSignatureChecker,
    eval_script,
    find_and_delete,
    verify_script,
)
from consensus.script.keys import (
    pubkey,
    sign_ecdsa,
    sign_p2pkh_input,
    sign_p2tr_key_input,
    sign_p2wpkh_input,
    taproot_tweak_pubkey,
    xonly_pubkey,
)
from consensus.script.num import cast_to_bool, decode_num, encode_num
from consensus.script.script import push_data
from consensus.script.sigcheck import (
    SECP256K1_ORDER,
    SignatureCache,
    ecdsa_verify,
    is_low_s,
    is_valid_signature_encoding,
    parse_der_lax,
)
from consensus.script.sighash import PrecomputedTxData
from consensus.script.standard import p2pkh_script, p2tr_script, p2wpkh_script, parse_asm
from consensus.script.verify import (
    ScriptExecutionCache,
    _verify_input,
    verify_input,
    verify_transaction,
)
from consensus.tx import OutPoint, Transaction, TxIn, TxOut

NO_TX = BaseSignatureChecker()


# -- script numbers --------------------------------------------------------------------------


def test_script_numbers_round_trip_and_minimality() -> None:
    rng = random.Random(1)
    values = [0, 1, -1, 127, 128, -128, 255, 256, 0x7FFFFFFF, -0x7FFFFFFF]
    values += [rng.randrange(-(2**31) + 1, 2**31) for _ in range(200)]
    for v in values:
        enc = encode_num(v)
        assert decode_num(enc, True) == v
        assert len(enc) <= 4
    assert encode_num(0) == b"" and encode_num(-1) == b"\x81" and encode_num(128) == b"\x80\x00"
    # Non-minimal encodings decode without MINIMALDATA, fail with it.
    for raw, value in ((b"\x00", 0), (b"\x80", 0), (b"\x01\x00", 1), (b"\x01\x80", -1)):
        assert decode_num(raw, False) == value
        with pytest.raises(ScriptError) as e:
            decode_num(raw, True)
        assert e.value.code == "SCRIPTNUM"
    assert decode_num(b"\xff\x00", True) == 255  # the 0x00 is needed for the sign
    with pytest.raises(ScriptError):
        decode_num(b"\x01\x02\x03\x04\x05", False)
    assert decode_num(b"\x01\x02\x03\x04\x05", False, 5) == 0x0504030201


def test_cast_to_bool() -> None:
    assert not cast_to_bool(b"")
    assert not cast_to_bool(b"\x00\x00")
    assert not cast_to_bool(b"\x00\x80")  # negative zero
    assert cast_to_bool(b"\x80\x00")
    assert cast_to_bool(b"\x00\x01")
    assert cast_to_bool(b"\x81")


# -- signatures ------------------------------------------------------------------------------


def _der(r: bytes, s: bytes) -> bytes:
    body = b"\x02" + bytes((len(r),)) + r + b"\x02" + bytes((len(s),)) + s
    return b"\x30" + bytes((len(body),)) + body


def test_lax_der_parser() -> None:
    key = bytes(31) + b"\x09"
    pub = pubkey(key)
    msg = bytes(range(32))
    der = sign_ecdsa(key, msg)
    compact = parse_der_lax(der)
    assert compact is not None and len(compact) == 64
    r = der[4 : 4 + der[3]].lstrip(b"\x00")
    s = der[6 + der[3] :].lstrip(b"\x00")
    # BER-style variants Core accepted before BIP66 parse to the same numbers and verify:
    padded = _der(b"\x00\x00" + r, s)  # excess zero padding
    long_len = b"\x30\x81" + bytes((len(padded) - 2,)) + padded[2:]  # long-form length
    long_int = (b"\x30" + bytes((len(padded) - 2 + 2,)) + b"\x02\x82\x00" + bytes((len(r) + 2,))
                + b"\x00\x00" + r + b"\x02" + bytes((len(s),)) + s)
    wrong_seq_len = b"\x30\x00" + der[2:]  # the sequence length is never checked
    trailing = der + b"\x00\x00"
    for v in (padded, long_len, long_int, wrong_seq_len, trailing):
        assert parse_der_lax(v) == compact, v.hex()
        assert ecdsa_verify(pub, v, msg)
        assert not is_valid_signature_encoding(v + b"\x01")
    # Unparseable: the signature is just invalid.
    for bad in (b"", b"\x31" + der[1:], der[:5], b"\x30\x06\x02\x01\x01\x03\x01\x01"):
        assert parse_der_lax(bad) is None
        assert not ecdsa_verify(pub, bad, msg)
    # r or s out of range: parsed, but as a signature that never verifies.
    order = SECP256K1_ORDER.to_bytes(32, "big")
    assert parse_der_lax(_der(b"\x00" + order, s)) == bytes(64)
    assert parse_der_lax(_der(r, b"\x01" + bytes(32))) == bytes(64)


def test_strict_der_and_low_s() -> None:
    key = bytes(31) + b"\x05"
    der = sign_ecdsa(key, bytes(32))
    assert is_valid_signature_encoding(der + b"\x01") and is_low_s(der)
    r = der[4 : 4 + der[3]]
    s = int.from_bytes(der[6 + der[3] :], "big")
    high = (SECP256K1_ORDER - s).to_bytes(33, "big")  # positive: needs a leading zero
    high_der = _der(r, high if high[1] & 0x80 else high[1:])
    assert is_valid_signature_encoding(high_der + b"\x01")
    assert not is_low_s(high_der)
    assert ecdsa_verify(pubkey(key), high_der, bytes(32))  # normalised before verifying
    # Negative R, superfluous padding, wrong type: all fail strict DER.
    assert not is_valid_signature_encoding(_der(b"\x80" + r[1:], der[6 + der[3]:]) + b"\x01")
    assert not is_valid_signature_encoding(_der(b"\x00\x01", b"\x01") + b"\x01")
    assert not is_valid_signature_encoding(b"\x31" + der[1:] + b"\x01")


def _checksig(sig: bytes, pub: bytes, flags: int) -> str:
    try:
        verify_script(push_data(sig) + push_data(pub), b"\xac", [], flags, NO_TX)
    except ScriptError as e:
        return e.code
    return "OK"


def test_encoding_rules_by_flag() -> None:
    key = bytes(31) + b"\x03"
    pub = pubkey(key)
    der = sign_ecdsa(key, bytes(32))
    # With no transaction every signature fails, so only the encoding rules speak.
    assert _checksig(der + b"\x01", pub, 0) == "EVAL_FALSE"
    assert _checksig(der + b"\x05", pub, F.STRICTENC) == "SIG_HASHTYPE"
    assert _checksig(der + b"\x05", pub, F.DERSIG) == "EVAL_FALSE"
    assert _checksig(der + b"\x01", pub, F.NULLFAIL) == "SIG_NULLFAIL"
    assert _checksig(b"", pub, F.NULLFAIL) == "EVAL_FALSE"
    assert _checksig(b"\x30\x01", pub, F.DERSIG) == "SIG_DER"
    hybrid = b"\x06" + pubkey(key, False)[1:]
    assert _checksig(der + b"\x01", hybrid, F.STRICTENC) == "PUBKEYTYPE"
    assert _checksig(der + b"\x01", hybrid, 0) == "EVAL_FALSE"
    assert _checksig(der + b"\x01", b"\x02" + bytes(31), F.STRICTENC) == "PUBKEYTYPE"


def test_find_and_delete() -> None:
    # Core's FindAndDelete unit cases: matches count only on operation boundaries, and
    # matching resumes right after a removal.
    cases = [
        ("0302ff03", "0302ff03", "", 1),
        ("0302ff030302ff03", "0302ff03", "", 2),
        ("0302ff030302ff03", "02", "0302ff030302ff03", 0),
        ("0302ff030302ff03", "ff", "0302ff030302ff03", 0),
        ("0302ff030302ff03", "03", "02ff0302ff03", 2),
        ("02feed5169", "feed51", "02feed5169", 0),
        ("02feed5169", "02feed51", "69", 1),
        ("516902feed5169", "feed51", "516902feed5169", 0),
        ("516902feed5169", "02feed51", "516969", 1),
        ("00005151", "0051", "0051", 1),
        ("000051005151", "0051", "0051", 2),
        ("0003feed", "03feed", "00", 1),
        ("0003feed", "00", "03feed", 1),
    ]
    for script, pattern, expect, count in cases:
        got, n = find_and_delete(bytes.fromhex(script), bytes.fromhex(pattern))
        assert (got.hex(), n) == (expect, count), (script, pattern)


def test_find_and_delete_in_checksig_and_const_scriptcode() -> None:
    # A signature that also appears in the scriptPubKey: removed from the scriptCode, and
    # an error under CONST_SCRIPTCODE.
    sig = b"\x30" + bytes(9)
    spk = push_data(sig) + b"\x75" + b"\xac"  # <sig> DROP CHECKSIG
    script_sig = push_data(sig) + push_data(pubkey(bytes(31) + b"\x02"))
    with pytest.raises(ScriptError) as e:
        verify_script(script_sig, spk, [], F.CONST_SCRIPTCODE, NO_TX)
    assert e.value.code == "SIG_FINDANDDELETE"
    with pytest.raises(ScriptError) as e:
        verify_script(script_sig, spk, [], 0, NO_TX)
    assert e.value.code == "EVAL_FALSE"
    with pytest.raises(ScriptError) as e:
        verify_script(b"", b"\x61\xab\x51", [], F.CONST_SCRIPTCODE, NO_TX)
    assert e.value.code == "OP_CODESEPARATOR"


def test_limits() -> None:
    def run(script: bytes, stack: list[bytes] | None = None) -> str:
        try:
            eval_script(stack or [], script, 0, NO_TX)
        except ScriptError as e:
            return e.code
        return "OK"

    assert run(b"\x61" * 201) == "OK"
    assert run(b"\x61" * 202) == "OP_COUNT"
    assert run(b"\x51" * 500) == "OK"  # pushes are not counted
    assert run(b"\x51" * 1000) == "OK"
    assert run(b"\x51" * 1001) == "STACK_SIZE"
    assert run(b"\x4d\x09\x02" + bytes(521)) == "PUSH_SIZE"
    assert run(b"\x4d\x08\x02" + bytes(520)) == "OK"
    assert run(b"\x61" * 10_001) == "SCRIPT_SIZE"
    assert run(b"\x00\x63" + b"\x7e" + b"\x68") == "DISABLED_OPCODE"  # even unexecuted
    assert run(b"\x00\x63\x65\x68") == "BAD_OPCODE"  # VERIF, even unexecuted
    assert run(b"\x00\x63\x50\x68") == "OK"  # OP_RESERVED only fails when executed
    assert run(parse_asm("1 2 3 4 5 6 2ROT")) == "OK"


# -- flags and errors ------------------------------------------------------------------------


def test_flags() -> None:
    assert F.parse_flags("") == 0 == F.parse_flags("NONE")
    assert F.parse_flags("P2SH,WITNESS") == F.P2SH | F.WITNESS
    assert F.format_flags(F.parse_flags("WITNESS,P2SH")) == "P2SH,WITNESS"
    with pytest.raises(ValueError):
        F.parse_flags("P2SH,BOGUS")
    assert len(F.FLAG_NAMES) == 21
    assert F.flags_to_names(F.MANDATORY_SCRIPT_VERIFY_FLAGS) == [
        "P2SH", "DERSIG", "NULLDUMMY", "CHECKLOCKTIMEVERIFY", "CHECKSEQUENCEVERIFY", "WITNESS",
        "TAPROOT",
    ]
    standard = set(F.flags_to_names(F.STANDARD_SCRIPT_VERIFY_FLAGS))
    assert standard == set(F.FLAG_NAMES) - {"SIGPUSHONLY"}
    assert F.fill_flags(F.CLEANSTACK) == F.CLEANSTACK | F.WITNESS | F.P2SH
    assert F.trim_flags(F.CLEANSTACK | F.WITNESS) == 0


def test_errors() -> None:
    e = ScriptError("EVAL_FALSE", b"\x01" * 32, 3)
    assert e.message == MESSAGES["EVAL_FALSE"]
    assert "input 3" in str(e) and e.code in str(e)
    again = pickle.loads(pickle.dumps(e))
    assert (again.code, again.txid, again.input_index) == ("EVAL_FALSE", b"\x01" * 32, 3)
    assert script_error_string("NOPE") == "unknown error"
    assert vector_name("SIG_NULLFAIL") == "NULLFAIL" and vector_name("SIG_DER") == "SIG_DER"


# -- spends, caches and fast paths -------------------------------------------------------------


def _spend(kind: str, rng: random.Random) -> tuple[Transaction, list[TxOut]]:
    key = rng.randbytes(32)
    if kind == "p2pkh":
        spk = p2pkh_script(hash160(pubkey(key)))
    elif kind == "p2pkh_u":
        spk = p2pkh_script(hash160(pubkey(key, False)))
    elif kind == "p2wpkh":
        spk = p2wpkh_script(hash160(pubkey(key)))
    else:
        spk = p2tr_script(taproot_tweak_pubkey(xonly_pubkey(key))[0])
    spent = [TxOut(rng.randrange(1000, 10**8), spk), TxOut(5, b"\x51")]
    tx = Transaction(
        2,
        [TxIn(OutPoint(rng.randbytes(32), 0), b"", 0xFFFFFFFD),
         TxIn(OutPoint(rng.randbytes(32), 1), b"", 0xFFFFFFFD)],
        [TxOut(700, b"\x00\x14" + rng.randbytes(20))],
        0,
    )
    ht = rng.choice([1, 1, 2, 3, 0x81, 0x83])
    if kind.startswith("p2pkh"):
        sign_p2pkh_input(tx, 0, key, ht, compressed=kind == "p2pkh")
    elif kind == "p2wpkh":
        sign_p2wpkh_input(tx, 0, key, spent[0].value, ht)
    else:
        sign_p2tr_key_input(tx, 0, key, spent, rng.choice([0, 1, 0x83]))
    return tx, spent


def test_signed_spends_verify() -> None:
    rng = random.Random(3)
    for kind in ("p2pkh", "p2pkh_u", "p2wpkh", "p2tr"):
        tx, spent = _spend(kind, rng)
        flags = F.STANDARD_SCRIPT_VERIFY_FLAGS if kind != "p2pkh_u" else (
            F.MANDATORY_SCRIPT_VERIFY_FLAGS
        )
        verify_input(tx, 0, spent, flags, sigcache=None)


def _mutate(tx: Transaction, rng: random.Random) -> None:
    txin = tx.vin[0]
    items = [txin.script_sig] if txin.script_sig else list(txin.witness)
    choice = rng.randrange(9)
    if choice == 0 and items:  # flip a bit somewhere
        i = rng.randrange(len(items))
        if items[i]:
            b = bytearray(items[i])
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            items[i] = bytes(b)
    elif choice == 1 and items and items[0]:  # change the hash type byte
        items[0] = items[0][:-1] + bytes((rng.choice([0, 1, 2, 3, 4, 0x41, 0x81, 0x84]),))
    elif choice == 2:  # extra witness item / annex
        items.append(rng.choice([b"", b"\x50", b"\x50\x01", rng.randbytes(33)]))
    elif choice == 3 and items:  # drop an item
        items.pop(rng.randrange(len(items)))
    elif choice == 4 and items:  # truncate
        items[0] = items[0][: rng.randrange(len(items[0]) + 1)]
    elif choice == 5:  # move witness to scriptSig or vice versa
        if txin.witness:
            txin.script_sig = b"".join(push_data(x) for x in txin.witness)
            txin.witness = []
            tx.rehash()
            return
        txin.witness = [rng.randbytes(10)]
    elif choice == 6 and items:  # an empty signature
        items[0] = b""
    elif choice == 7:  # extra push in the scriptSig
        txin.script_sig = txin.script_sig + push_data(rng.randbytes(rng.choice([1, 20, 33])))
        tx.rehash()
        return
    if txin.script_sig:
        txin.script_sig = b"".join(push_data(x) for x in items)
    else:
        txin.witness = items
    tx.rehash()


def test_fast_paths_agree_with_the_interpreter() -> None:
    rng = random.Random(4)
    all_flags = list(F.FLAG_NAMES.values())
    outcomes: dict[str, int] = {}
    for n in range(400):
        tx, spent = _spend(rng.choice(["p2pkh", "p2pkh_u", "p2wpkh", "p2tr"]), rng)
        if n % 4:
            _mutate(tx, rng)
        flags = F.fill_flags(sum(b for b in all_flags if rng.random() < 0.5))
        results = []
        for fast in (True, False):
            try:
                _verify_input(tx, 0, spent, flags, PrecomputedTxData(tx, spent), None, False,
                              fast)
                results.append("OK")
            except ScriptError as e:
                results.append(e.code)
        assert results[0] == results[1], (n, tx.vin[0], F.format_flags(flags))
        outcomes[results[0]] = outcomes.get(results[0], 0) + 1
    assert outcomes.get("OK", 0) > 50 and len(outcomes) > 8  # the damage was varied


def test_signature_cache() -> None:
    rng = random.Random(6)
    tx, spent = _spend("p2wpkh", rng)
    cache = SignatureCache(max_entries=16)
    verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=cache)
    assert len(cache) == 1 and cache.misses == 1
    verify_input(tx, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=cache)
    assert cache.hits == 1
    # Failures are not cached; store=False (block connection) adds nothing.
    bad = tx.copy()
    bad.vout[0].value += 1
    with pytest.raises(ScriptError):
        verify_input(bad, 0, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=cache)
    assert len(cache) == 1
    other, other_spent = _spend("p2tr", rng)
    verify_input(other, 0, other_spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, sigcache=cache,
                 store=False)
    assert len(cache) == 1
    # Bounded.
    for _ in range(40):
        cache.add(rng.randbytes(32))
    assert len(cache) <= 16


def test_script_execution_cache() -> None:
    rng = random.Random(7)
    tx, spent = _spend("p2wpkh", rng)
    spent[1] = TxOut(5, b"")  # input 1 spends an anyone-can-spend output
    cache = ScriptExecutionCache()
    std, mand = F.STANDARD_SCRIPT_VERIFY_FLAGS, F.MANDATORY_SCRIPT_VERIFY_FLAGS
    with pytest.raises(ScriptError) as e:  # empty scriptPubKey, empty scriptSig: false
        verify_transaction(tx, spent, mand, cache=cache)
    assert (e.value.txid, e.value.input_index, e.value.code) == (tx.txid, 1, "EVAL_FALSE")
    spent[1] = TxOut(5, b"\x51")
    verify_transaction(tx, spent, std, cache=cache)
    # Keyed by exactly the flags it passed under (as Core's): no other set hits.
    assert cache.contains(cache.key(tx, std))
    assert not cache.contains(cache.key(tx, mand))
    assert not cache.contains(cache.key(tx, std | F.SIGPUSHONLY))
    # A hit skips the work: no signature is looked at again.
    sigs = SignatureCache()
    verify_transaction(tx, spent, std, cache=cache, sigcache=sigs)
    assert sigs.hits == sigs.misses == 0
    verify_transaction(tx, spent, mand, cache=cache, sigcache=sigs)
    assert sigs.misses == 1
    # A different witness is a different wtxid: checked afresh (and here, rejected).
    tx.vin[0].witness = [b"garbage", tx.vin[0].witness[1]]
    tx.rehash()
    with pytest.raises(ScriptError):
        verify_transaction(tx, spent, mand, cache=cache)
