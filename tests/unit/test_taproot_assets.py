"""Bitcoin Core's taproot functional-test dump (script_assets_test): every case.

As in Core's AssetTest: a success spend must verify under every consensus flag combination
that is a subset of the case's flags (all of them for "final" cases); a failure spend must fail
under every combination that includes the case's flags. The first check of each spend goes
through the real signature path with no cache; the flag sweep then shares a signature cache.
"""

from __future__ import annotations

import json

import pytest

from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.sigcheck import SignatureCache
from consensus.script.sighash import PrecomputedTxData
from consensus.script.verify import _verify_input, verify_input
from consensus.serialize import Reader
from consensus.tx import Transaction, TxOut
from tests.conftest import DATA

CASES = [json.loads(line) for line in (DATA / "taproot_assets.jsonl").read_text().splitlines()]


def _all_consensus_flags() -> list[int]:
    bits = [F.P2SH, F.DERSIG, F.NULLDUMMY, F.CHECKLOCKTIMEVERIFY, F.CHECKSEQUENCEVERIFY,
            F.WITNESS, F.TAPROOT]
    out = []
    for i in range(128):
        f = 0
        for j, b in enumerate(bits):
            if i >> j & 1:
                f |= b
        if f & F.WITNESS and not f & F.P2SH:
            continue
        if f & F.TAPROOT and not f & F.WITNESS:
            continue
        out.append(f)
    return out


ALL_CONSENSUS_FLAGS = _all_consensus_flags()
RAN = {"cases": 0, "success": 0, "failure": 0}


def _spend(case: dict, which: str) -> tuple[Transaction, list[TxOut], int]:
    tx = Transaction.from_hex(case["tx"])
    spent = [TxOut.deserialize(Reader(bytes.fromhex(p))) for p in case["prevouts"]]
    idx = case["index"]
    tx.vin[idx].script_sig = bytes.fromhex(case[which]["scriptSig"])
    tx.vin[idx].witness = [bytes.fromhex(w) for w in case[which]["witness"]]
    tx.rehash()
    return tx, spent, idx


def _ok(tx: Transaction, spent: list[TxOut], idx: int, flags: int, cache, fast=True) -> bool:
    try:
        _verify_input(tx, idx, spent, flags, PrecomputedTxData(tx, spent), cache, True, fast)
    except ScriptError:
        return False
    return True


@pytest.mark.parametrize("n", range(len(CASES)), ids=[f"case{i}" for i in range(len(CASES))])
def test_taproot_asset(n: int) -> None:
    case = CASES[n]
    test_flags = F.parse_flags(case["flags"])
    final = case.get("final", False)
    cache = SignatureCache()
    if "success" in case:
        tx, spent, idx = _spend(case, "success")
        verify_input(tx, idx, spent, test_flags, sigcache=None)
        assert _ok(tx, spent, idx, test_flags, None, fast=False)
        for flags in ALL_CONSENSUS_FLAGS:
            if final or flags & test_flags == flags:
                assert _ok(tx, spent, idx, flags, cache), F.format_flags(flags)
        RAN["success"] += 1
    if "failure" in case:
        tx, spent, idx = _spend(case, "failure")
        with pytest.raises(ScriptError):
            verify_input(tx, idx, spent, test_flags, sigcache=None)
        assert not _ok(tx, spent, idx, test_flags, None, fast=False)
        for flags in ALL_CONSENSUS_FLAGS:
            if flags & test_flags == test_flags:
                assert not _ok(tx, spent, idx, flags, cache), F.format_flags(flags)
        RAN["failure"] += 1
    RAN["cases"] += 1


def test_taproot_assets_count(capsys: pytest.CaptureFixture) -> None:
    ok = sum(1 for c in CASES if "success" in c)
    bad = sum(1 for c in CASES if "failure" in c)
    _report(capsys, f"taproot_assets.jsonl: {RAN['cases']} of {len(CASES)} cases ran and "
                     f"passed ({RAN['success']} of {ok} success spends verified, "
                     f"{RAN['failure']} of {bad} failure spends rejected)")
    assert len(CASES) > 1000


def _report(capsys: pytest.CaptureFixture, line: str) -> None:
    """Say how many vector cases ran, on the terminal even when output is captured."""
    with capsys.disabled():
        print(f"\n{line}", end="")
