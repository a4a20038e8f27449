"""Bitcoin Core's script_tests.json: every row, through our verify_input.

Each row is run as Core's DoTest runs it: a crediting transaction whose output holds the
scriptPubKey, a spending transaction whose input holds the scriptSig (and witness), and
VerifyScript under the row's flags; the error must be the one named. Like Core, each row is
also re-run with random extra flags (for failures) or fewer flags (for successes), which must
not change the verdict. The tapscript rows' placeholders (#SCRIPT#, #CONTROLBLOCK#,
#TAPROOTOUTPUT#) are filled in as Core's harness fills them.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from consensus.script import flags as F
from consensus.script.errors import ScriptError, vector_name
from consensus.script.keys import NUMS_H, control_block, taproot_tweak_pubkey
from consensus.script.sighash import PrecomputedTxData
from consensus.script.standard import parse_asm
from consensus.script.taproot import tapleaf_hash
from consensus.script.verify import _verify_input
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.conftest import DATA


def _load_rows() -> list[tuple[int, list]]:
    rows = json.loads((DATA / "script_tests.json").read_text(), parse_float=Decimal)
    return [(i, r) for i, r in enumerate(rows) if len(r) > 1]


ROWS = _load_rows()
RAN = {"cases": 0}


def crediting_tx(script_pubkey: bytes, amount: int) -> Transaction:
    return Transaction(
        1, [TxIn(OutPoint(), b"\x00\x00", 0xFFFFFFFF)], [TxOut(amount, script_pubkey)], 0
    )


def spending_tx(script_sig: bytes, witness: list[bytes], credit: Transaction) -> Transaction:
    return Transaction(
        1,
        [TxIn(OutPoint(credit.txid, 0), script_sig, 0xFFFFFFFF, witness)],
        [TxOut(credit.vout[0].value, b"")],
        0,
    )


def fill_taproot_placeholders(witness: list[str], spk_asm: str) -> tuple[list[bytes], str]:
    """#SCRIPT# <asm> is a leaf script in asm; #CONTROLBLOCK# spends it from a one-leaf tree;
    #TAPROOTOUTPUT# is that tree's output key (any internal key will do: none is key-spent)."""
    items: list[bytes] = []
    leaf_script = None
    for w in witness:
        if w.startswith("#SCRIPT#"):
            leaf_script = parse_asm(w[len("#SCRIPT#") :])
            items.append(leaf_script)
        elif w == "#CONTROLBLOCK#":
            assert leaf_script is not None
            _, parity = taproot_tweak_pubkey(NUMS_H, tapleaf_hash(leaf_script))
            items.append(control_block(NUMS_H, parity))
        else:
            items.append(bytes.fromhex(w))
    if "#TAPROOTOUTPUT#" in spk_asm:
        assert leaf_script is not None
        out, _ = taproot_tweak_pubkey(NUMS_H, tapleaf_hash(leaf_script))
        spk_asm = spk_asm.replace("#TAPROOTOUTPUT#", "0x" + out.hex())
    return items, spk_asm


def run(credit: Transaction, spend: Transaction, flags: int, fast: bool = True) -> str:
    spent = [credit.vout[0]]
    try:
        _verify_input(spend, 0, spent, flags, PrecomputedTxData(spend, spent), None, False, fast)
    except ScriptError as e:
        return vector_name(e.code)
    return "OK"


def _valid_combo(flags: int) -> bool:
    if flags & F.CLEANSTACK and ~flags & (F.P2SH | F.WITNESS):
        return False
    if flags & F.WITNESS and not flags & F.P2SH:
        return False
    return True


@pytest.mark.parametrize("idx,row", ROWS, ids=[f"row{i}" for i, _ in ROWS])
def test_script_tests_json(idx: int, row: list) -> None:
    witness_hex: list[str] = []
    amount = 0
    if isinstance(row[0], list):
        *witness_hex, amount_btc = row[0]
        amount = int(Decimal(amount_btc) * 100_000_000)
        row = row[1:]
    sig_asm, spk_asm, flag_text, expected = row[0], row[1], row[2], row[3]
    witness, spk_asm = fill_taproot_placeholders(witness_hex, spk_asm)
    flags = F.parse_flags(flag_text)
    if flags & F.CLEANSTACK:
        flags |= F.P2SH | F.WITNESS

    credit = crediting_tx(parse_asm(spk_asm), amount)
    spend = spending_tx(parse_asm(sig_asm), witness, credit)

    got = run(credit, spend, flags)
    assert got == expected, f"row {idx} {row[-1] if len(row) > 4 else ''}: got {got}"
    # Same answer without the template fast paths.
    assert run(credit, spend, flags, fast=False) == expected

    # Removing flags from a passing test or adding flags to a failing one keeps the verdict.
    rng = random.Random(idx)
    ok = expected == "OK"
    for _ in range(16):
        extra = rng.getrandbits(21)
        combo = flags & ~extra if ok else flags | extra
        if not _valid_combo(combo):
            continue
        assert (run(credit, spend, combo) == "OK") == ok, f"flags {F.format_flags(combo)}"
    RAN["cases"] += 1


def test_script_tests_count(capsys: pytest.CaptureFixture) -> None:
    n_witness = sum(1 for _, r in ROWS if isinstance(r[0], list))
    _report(capsys, f"script_tests.json: {RAN['cases']} of {len(ROWS)} cases ran and passed "
                     f"({n_witness} of them with a witness)")
    assert len(ROWS) > 1200


def _report(capsys: pytest.CaptureFixture, line: str) -> None:
    """Say how many vector cases ran, on the terminal even when output is captured."""
    with capsys.disabled():
        print(f"\n{line}", end="")
