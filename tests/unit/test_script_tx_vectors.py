"""Bitcoin Core's tx_valid.json and tx_invalid.json, run as Core's transaction_tests run them.

tx_valid: the flags listed are EXCLUDED; the transaction must pass check_transaction and verify
with every other flag, with any further flags removed, and must FAIL when any one of the
excluded flags is put back (the list is maximal).

tx_invalid: BADTX rows must fail check_transaction. Other rows must fail with the listed flags
and with any flags added, and must PASS when any one listed flag is removed (minimal).
"""

from __future__ import annotations

import random

import pytest

from consensus.checks import check_transaction
from consensus.errors import ValidationError
from consensus.hashes import hex_to_hash
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.sigcheck import SignatureCache
from consensus.script.sighash import PrecomputedTxData
from consensus.script.standard import parse_asm
from consensus.script.verify import _verify_input, verify_transaction
from consensus.tx import Transaction, TxOut
from tests.conftest import load_json

ALL = F.ALL_FLAGS
FLAG_BITS = list(F.FLAG_NAMES.values())


def _rows(name: str) -> list[tuple[int, list]]:
    return [(i, r) for i, r in enumerate(load_json(name)) if isinstance(r[0], list)]


VALID = _rows("tx_valid.json")
INVALID = _rows("tx_invalid.json")
RAN = {"valid": 0, "invalid": 0, "badtx": 0}


def parse_case(row: list) -> tuple[Transaction, list[TxOut]]:
    prevouts: dict[tuple[bytes, int], TxOut] = {}
    for entry in row[0]:
        amount = entry[3] if len(entry) > 3 else 0
        prevouts[(hex_to_hash(entry[0]), entry[1] & 0xFFFFFFFF)] = TxOut(
            amount, parse_asm(entry[2])
        )
    tx = Transaction.from_hex(row[1])
    spent = [prevouts[(i.prevout.hash, i.prevout.n)] for i in tx.vin]
    return tx, spent


def tx_scripts_ok(
    tx: Transaction, spent: list[TxOut], flags: int, cache: SignatureCache | None
) -> bool:
    txdata = PrecomputedTxData(tx, spent)
    for i in range(len(tx.vin)):
        try:
            _verify_input(tx, i, spent, flags, txdata, cache, True)
        except ScriptError:
            return False
    return True


def exclude_individual_flags(flags: int) -> set[int]:
    """Core's ExcludeIndividualFlags: each valid combination with one of `flags` removed."""
    out = set()
    for bit in FLAG_BITS:
        f = F.trim_flags(flags & ~bit)
        if f != flags:
            out.add(f)
    return out


@pytest.mark.parametrize("idx,row", VALID, ids=[f"valid{i}" for i, _ in VALID])
def test_tx_valid(idx: int, row: list) -> None:
    tx, spent = parse_case(row)
    check_transaction(tx)
    excluded = F.parse_flags(row[2])
    flags = ALL & ~excluded
    assert F.fill_flags(flags) == flags, "bad test flags"

    # The real path: no signature cache, and through the public entry point.
    verify_transaction(tx, spent, flags, cache=None, sigcache=None)
    assert tx_scripts_ok(tx, spent, flags, None)
    assert tx_scripts_ok(tx, spent, flags, None) == _generic_ok(tx, spent, flags)

    cache = SignatureCache()
    rng = random.Random(idx)
    for bit in FLAG_BITS:
        assert tx_scripts_ok(tx, spent, F.trim_flags(ALL & ~(excluded | bit)), cache)
        random_off = rng.getrandbits(len(FLAG_BITS))
        assert tx_scripts_ok(tx, spent, F.trim_flags(ALL & ~(excluded | random_off)), cache)
    for fewer_excluded in exclude_individual_flags(excluded):
        assert not tx_scripts_ok(tx, spent, ALL & ~fewer_excluded, cache), (
            f"too many flags unset: {F.format_flags(excluded & ~fewer_excluded)} is needed"
        )
    RAN["valid"] += 1


def _generic_ok(tx: Transaction, spent: list[TxOut], flags: int) -> bool:
    txdata = PrecomputedTxData(tx, spent)
    for i in range(len(tx.vin)):
        try:
            _verify_input(tx, i, spent, flags, txdata, None, False, fast=False)
        except ScriptError:
            return False
    return True


@pytest.mark.parametrize("idx,row", INVALID, ids=[f"invalid{i}" for i, _ in INVALID])
def test_tx_invalid(idx: int, row: list) -> None:
    tx, spent = parse_case(row)
    try:
        check_transaction(tx)
    except ValidationError:
        assert row[2] == "BADTX"
        RAN["badtx"] += 1
        return
    assert row[2] != "BADTX", "BADTX row passed check_transaction"
    flags = F.parse_flags(row[2])
    assert F.fill_flags(flags) == flags, "bad test flags"

    with pytest.raises(ScriptError):
        verify_transaction(tx, spent, flags, cache=None, sigcache=None)
    assert not _generic_ok(tx, spent, flags)

    cache = SignatureCache()
    rng = random.Random(idx)
    for bit in FLAG_BITS:
        assert not tx_scripts_ok(tx, spent, F.fill_flags(flags | bit), cache)
        more = rng.getrandbits(len(FLAG_BITS))
        assert not tx_scripts_ok(tx, spent, F.fill_flags(flags | more), cache)
    for fewer in exclude_individual_flags(flags):
        assert tx_scripts_ok(tx, spent, fewer, cache), (
            f"too many flags set: valid without {F.format_flags(flags & ~fewer)} expected"
        )
    RAN["invalid"] += 1


def test_tx_vector_counts(capsys: pytest.CaptureFixture) -> None:
    badtx = sum(1 for _, r in INVALID if r[2] == "BADTX")
    _report(capsys, f"tx_valid.json: {RAN['valid']} of {len(VALID)} cases ran and passed")
    _report(capsys, f"tx_invalid.json: {RAN['invalid'] + RAN['badtx']} of {len(INVALID)} "
                     f"cases ran and passed ({RAN['badtx']} of {badtx} BADTX)")
    assert len(VALID) > 100 and len(INVALID) > 80


def _report(capsys: pytest.CaptureFixture, line: str) -> None:
    """Say how many vector cases ran, on the terminal even when output is captured."""
    with capsys.disabled():
        print(f"\n{line}", end="")
