"""Real blocks through the import entry point, as a user would feed Bitcoin Core's blk files:

    python -m node.importer -chain=regtest|main -datadir=DIR -loadblock=FILE -status

Regtest blocks mined by Bitcoin Core and the first blocks of the real main chain, in files
framed as Core frames them (message start, little-endian length, block; zero padding at the
end as Core pre-allocates; some children stored before their parents). Data sources:
tests/data/REAL_BLOCKS.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from consensus.block import Block
from consensus.params import MAIN, REGTEST
from tests.unit.test_real_blocks import (
    CORE_REGTEST_COINS,
    CORE_REGTEST_HEIGHT,
    CORE_REGTEST_TIP,
    CORE_REGTEST_TOTAL,
    MAINNET_HASHES,
    MAINNET_HEIGHT,
    MAINNET_TIP,
    core_regtest_blocks,
    feed,
    mainnet_blocks,
    open_chain,
    write_core_blk_file,
)

ROOT = Path(__file__).resolve().parents[2]


def run_importer(datadir: Path, *args: str) -> tuple[dict[str, str], str]:
    p = subprocess.run(
        [sys.executable, "-m", "node.importer", f"-datadir={datadir}", "-par=1", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, f"importer failed ({p.returncode}):\n{p.stderr}"
    lines = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
    return lines, p.stderr


def test_core_regtest_blocks_through_the_importer(tmp_path):
    blocks = core_regtest_blocks()
    reference = open_chain(tmp_path / "reference", REGTEST)
    try:
        feed(reference, blocks)
        digest, count, total = reference.utxo_stats()
    finally:
        reference.close()
    assert (count, total) == (CORE_REGTEST_COINS, CORE_REGTEST_TOTAL)

    order = [REGTEST.genesis, *blocks]
    order[10], order[12] = order[12], order[10]
    order[150], order[151], order[152] = order[152], order[150], order[151]
    order[202], order[204] = order[204], order[202]  # wallet blocks, child first
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, order, REGTEST.message_start, padding=1 << 20)

    out, err = run_importer(tmp_path / "node", "-chain=regtest", f"-loadblock={blk}", "-status")
    assert out["tip"] == f"{CORE_REGTEST_HEIGHT} {CORE_REGTEST_TIP}"
    assert out["utxo"] == f"{digest[::-1].hex()} {count} {total}"
    assert "rejected" not in err
    assert (tmp_path / "node" / "regtest").is_dir()  # Core's layout: a subfolder for regtest

    # Restarting without a file keeps the state; importing again changes nothing.
    out2, _ = run_importer(tmp_path / "node", "-chain=regtest", "-status")
    assert out2 == out
    out3, _ = run_importer(tmp_path / "node", "-regtest", f"-loadblock={blk}", "-status")
    assert out3 == out


def test_mainnet_blocks_through_the_importer(tmp_path):
    blocks = mainnet_blocks()
    order = [MAIN.genesis, *blocks]
    order[7], order[8] = order[8], order[7]
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, order, MAIN.message_start, padding=8192)

    out, err = run_importer(tmp_path / "main", "-chain=main", f"-loadblock={blk}", "-status")
    assert out["tip"] == f"{MAINNET_HEIGHT} {MAINNET_TIP}"
    _, count, total = out["utxo"].split()
    assert (int(count), int(total)) == (15, 15 * 50 * 100_000_000)
    assert "rejected" not in err
    assert not (tmp_path / "main" / "main").exists()  # main uses the datadir itself


def test_mainnet_tampered_block_in_file_is_rejected_and_tip_stays(tmp_path):
    blocks = mainnet_blocks()
    raw = bytearray(blocks[14].serialize())
    raw[-20] ^= 0x01  # inside block 15's coinbase public key
    tampered = Block.from_bytes(bytes(raw))
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, [MAIN.genesis, *blocks[:14], tampered], MAIN.message_start,
                        padding=1024)
    out, err = run_importer(tmp_path / "main", "-chain=main", f"-loadblock={blk}", "-status")
    assert out["tip"] == f"14 {MAINNET_HASHES[14]}"
    assert "bad-txnmrklroot" in err

    # The genuine block 15 from a second file completes the chain.
    good = tmp_path / "blk00001.dat"
    write_core_blk_file(good, [blocks[14]], MAIN.message_start)
    out, _ = run_importer(tmp_path / "main", "-chain=main", f"-loadblock={good}", "-status")
    assert out["tip"] == f"{MAINNET_HEIGHT} {MAINNET_TIP}"


def test_mainnet_file_under_regtest_imports_nothing(tmp_path):
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, [MAIN.genesis, *mainnet_blocks()], MAIN.message_start)
    out, _ = run_importer(tmp_path / "node", "-chain=regtest", f"-loadblock={blk}", "-status")
    assert out["tip"] == f"0 {REGTEST.genesis_hash[::-1].hex()}"
