"""Blocks made by other implementations, validated by ours (sources: tests/data/REAL_BLOCKS.md).

- 205 regtest blocks mined by Bitcoin Core, with wallet transactions (P2WPKH spends, fee
  paying, change), connected on a fresh regtest chain state and re-imported from a blk file
  in Core's framing;
- the first 15 blocks of the real main chain, connected on a fresh `-chain=main` state;
- famous mainnet blocks that cannot be connected without their history: parsed, hashed,
  checked without context and re-serialized byte for byte.

Every chain runs on a real LevelDB in tmp_path. These blocks are valid: a rejection here is
a bug in our code, not in the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consensus.block import Block, add_witness_commitment
from consensus.checks import check_block
from consensus.errors import ValidationError
from consensus.hashes import hex_to_hash
from consensus.params import MAIN, REGTEST
from node.blockimport import load_external_block_file, reindex, reindex_chainstate
from node.chain import ChainState
from node.scriptcheck import ScriptChecker
from node.store.blockindex import FAILED_VALID
from tests.blocktools import solve

DATA = Path(__file__).resolve().parents[1] / "data"

# Facts of the data, not outputs of our code: the last block's hash, and the UTXO set it
# leaves (every coinbase pays 50 BTC, 25 BTC from height 150 on regtest; fees go back to the
# miner; each of the 24 wallet transactions spends one output and makes two).
CORE_REGTEST_TIP = "28e7b4d778666d7cd554687b32663f90a8f36ca5da443d9a712ef6b7e91b1755"
CORE_REGTEST_HEIGHT = 205
CORE_REGTEST_COINS = 205 + 24  # OP_RETURN witness commitments are never coins
CORE_REGTEST_TOTAL = (149 * 50 + 56 * 25) * 100_000_000
MAINNET_TIP = "00000000b3322c8c3ef7d2cf6da009a776e6a99ee65ec5a32f3f345712238473"  # block 15
MAINNET_HEIGHT = 15
# Independently published hashes of the first mainnet blocks (block explorers, Core's
# checkpoint-era headers); each block must hash to exactly this.
MAINNET_HASHES = {
    1: "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
    2: "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd",
    3: "0000000082b5015589a3fdf2d4baff403e6f0be035a5d9742c1cae6295464449",
    4: "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
    5: "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc",
    6: "000000003031a0e73735690c5a1ff2a4be82553b2a12b776fbd3a215dc8f778d",
    7: "0000000071966c2b1d065fd446b1e485b2c9d9594acd2007ccbd5441cfc89444",
    8: "00000000408c48f847aa786c2268fc3e6ec2af68e8468a34a28c61b7f1de0dc6",
    9: "000000008d9dc510f23c2657fc4f67bea30078cc05a90eb89e84cc475c080805",
    10: "000000002c05cc2e78923c34df87fd108b22221ac6076c18f3ade378a4d915e9",
    11: "0000000097be56d606cdd9c54b04d4747e957d3608abe69198c661f2add73073",
    12: "0000000027c2488e2510d1acf4369787784fa20ee084c258b58d9fbd43802b5e",
    13: "000000005c51de2031a895adc145ee2242e919a01c6d61fb222a54a54b4d3089",
    14: "0000000080f17a0c5a67f663a9bc9969eb37e81666d9321125f0e293656f8a37",
    15: MAINNET_TIP,
}


def read_hex_lines(name: str) -> list[str]:
    return (DATA / name).read_text().split()


def core_regtest_blocks() -> list[Block]:
    return [Block.from_hex(h) for h in read_hex_lines("core_regtest_blocks.txt")]


def mainnet_blocks() -> list[Block]:
    return [Block.from_hex(h) for h in read_hex_lines("mainnet_blocks_0001_0015.txt")]


def famous_blocks() -> list[dict]:
    return json.loads((DATA / "mainnet_famous_blocks.json").read_text())["blocks"]


def open_chain(path: Path, params) -> ChainState:
    c = ChainState(path, params, dbcache_mb=8, scripts=ScriptChecker(0))
    c.load()
    return c


def write_core_blk_file(path: Path, blocks: list[Block], magic: bytes, padding: int = 0) -> None:
    """Bitcoin Core's framing: message start, little-endian length, block; Core pre-allocates
    its files, so a real blk?????.dat ends in zeros."""
    with open(path, "wb") as f:
        for b in blocks:
            raw = b.serialize()
            f.write(magic + len(raw).to_bytes(4, "little") + raw)
        f.write(b"\x00" * padding)


def feed(chain: ChainState, blocks: list[Block]) -> None:
    for b in blocks:
        chain.process_block(b)


def reject(chain: ChainState, block: Block) -> ValidationError:
    tip = chain.tip
    with pytest.raises(ValidationError) as e:
        chain.process_block(block)
    assert chain.tip is tip, "a rejected block moved the tip"
    return e.value


def copy_block(block: Block) -> Block:
    return Block.from_bytes(block.serialize())


# ---------------------------------------------------------------------------------------
# The data itself
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, params, count", [
    ("core_regtest_blocks.txt", REGTEST, CORE_REGTEST_HEIGHT),
    ("mainnet_blocks_0001_0015.txt", MAIN, MAINNET_HEIGHT),
])
def test_data_is_a_contiguous_chain_from_genesis(name, params, count):
    lines = read_hex_lines(name)
    assert len(lines) == count
    prev = params.genesis_hash
    for height, hx in enumerate(lines, 1):
        block = Block.from_hex(hx)
        assert block.serialize().hex() == hx, f"height {height} does not round-trip"
        assert block.header.prev_hash == prev, f"height {height} does not link"
        check_block(block, params)  # proof of work, merkle root, context-free rules
        prev = block.hash


def test_mainnet_blocks_hash_to_their_published_hashes():
    for height, block in enumerate(mainnet_blocks(), 1):
        assert block.hash_hex() == MAINNET_HASHES[height]


def test_core_regtest_blocks_carry_wallet_transactions():
    blocks = core_regtest_blocks()
    spends = [tx for b in blocks for tx in b.txs[1:]]
    assert len(spends) == 24
    assert all(tx.has_witness() for tx in spends)  # P2WPKH wallet spends
    assert blocks[-1].hash_hex() == CORE_REGTEST_TIP


# ---------------------------------------------------------------------------------------
# Bitcoin Core's regtest chain
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def core_blocks() -> list[Block]:
    return core_regtest_blocks()


def test_core_regtest_chain_connects(tmp_path, core_blocks):
    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        feed(chain, core_blocks)
        assert chain.height == CORE_REGTEST_HEIGHT
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        _, count, total = chain.utxo_stats()
        assert (count, total) == (CORE_REGTEST_COINS, CORE_REGTEST_TOTAL)
        # Every output is a coin unless a later transaction of the data spends it (or it
        # is an OP_RETURN commitment); every spent output is gone.
        spent = {(i.prevout.hash, i.prevout.n) for b in core_blocks for tx in b.txs[1:]
                 for i in tx.vin}
        for b in core_blocks:
            for tx in b.txs:
                for n, out in enumerate(tx.vout):
                    coin = chain.get_coin(tx.txid, n)
                    if (tx.txid, n) in spent or out.script_pubkey[:1] == b"\x6a":
                        assert coin is None
                    else:
                        assert coin is not None and coin.value == out.value
    finally:
        chain.close()


def test_core_regtest_chain_survives_restart(tmp_path, core_blocks):
    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        feed(chain, core_blocks)
        before = chain.utxo_stats()
    finally:
        chain.close()
    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        assert chain.utxo_stats() == before
    finally:
        chain.close()


def test_core_regtest_import_from_core_framed_file(tmp_path, core_blocks):
    direct = open_chain(tmp_path / "direct", REGTEST)
    try:
        feed(direct, core_blocks)
        expected = direct.utxo_stats()
    finally:
        direct.close()

    # As Core writes blk00000.dat: genesis first, then the chain, then pre-allocated zeros;
    # a few children come before their parents.
    order = [REGTEST.genesis, *core_blocks]
    order[50], order[51], order[52] = order[52], order[51], order[50]
    order[200], order[202] = order[202], order[200]  # around the block with 20 wallet txs
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, order, REGTEST.message_start, padding=1 << 16)

    chain = open_chain(tmp_path / "imported", REGTEST)
    try:
        stats = load_external_block_file(chain, blk)
        assert (stats.new, stats.known, stats.invalid, stats.orphans) == (205, 1, 0, 0)
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        assert chain.utxo_stats() == expected
        again = load_external_block_file(chain, blk)  # importing twice is harmless
        assert (again.new, again.known) == (0, 206)
        assert chain.utxo_stats() == expected
    finally:
        chain.close()


def test_core_regtest_disconnect_and_rebuild(tmp_path, core_blocks):
    """Undo data for real wallet spends: disconnecting Core's last blocks restores exactly
    the UTXO set of a node that never saw them; reconnecting and rebuilding give it back."""
    partial = open_chain(tmp_path / "partial", REGTEST)
    try:
        feed(partial, core_blocks[:200])
        at_200 = partial.utxo_stats()
    finally:
        partial.close()

    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        feed(chain, core_blocks)
        at_tip = chain.utxo_stats()
        chain.invalidate_block(core_blocks[200].hash)  # height 201: disconnects 201..205
        assert chain.height == 200
        assert chain.utxo_stats() == at_200
        chain.reconsider_block(core_blocks[200].hash)
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        assert chain.utxo_stats() == at_tip
        reindex_chainstate(chain)
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        assert chain.utxo_stats() == at_tip
        reindex(chain)
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
        assert chain.utxo_stats() == at_tip
    finally:
        chain.close()


def test_core_wallet_tx_with_a_bad_signature_is_rejected(tmp_path, core_blocks):
    """Corrupt one signature of a real wallet spend and re-commit the block (regtest work is
    cheap to redo): the scripts, not the commitments, must catch it."""
    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        feed(chain, core_blocks[:201])
        good = core_blocks[201]
        assert len(good.txs) == 21
        bad = copy_block(good)
        sig = bytearray(bad.txs[5].vin[0].witness[0])
        sig[10] ^= 0x01  # inside r: still a well-formed DER signature, just a wrong one
        bad.txs[5].vin[0].witness[0] = bytes(sig)
        bad.txs[5].rehash()
        add_witness_commitment(bad)
        bad.header.merkle_root = bad.compute_merkle_root()[0]
        solve(bad)
        err = reject(chain, bad)
        assert "script-verify-flag-failed" in err.reason, err.reason
        assert chain.get(bad.hash).status & FAILED_VALID
        # The real block still connects, and so does the rest of Core's chain.
        feed(chain, core_blocks[201:])
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
    finally:
        chain.close()


def test_core_block_with_stripped_witness_is_mutated_not_invalid(tmp_path, core_blocks):
    chain = open_chain(tmp_path / "node", REGTEST)
    try:
        feed(chain, core_blocks[:201])
        good = core_blocks[201]
        stripped = copy_block(good)
        stripped.txs[3].vin[0].witness = []
        stripped.txs[3].rehash()
        stripped.rehash()
        assert stripped.hash == good.hash  # same header: the witness is not in it
        err = reject(chain, stripped)
        # Core's CheckWitnessMalleation: the coinbase commits to witnesses that are missing.
        # The damage may be in transit, so the block hash must not be marked invalid.
        assert err.reason == "bad-witness-merkle-match" and err.mutated
        entry = chain.get(good.hash)
        assert entry is None or not entry.status & FAILED_VALID
        feed(chain, core_blocks[201:])
        assert chain.tip.hash_hex() == CORE_REGTEST_TIP
    finally:
        chain.close()


# ---------------------------------------------------------------------------------------
# The real main chain
# ---------------------------------------------------------------------------------------


def test_mainnet_chain_connects_from_genesis(tmp_path):
    blocks = mainnet_blocks()
    chain = open_chain(tmp_path / "main", MAIN)
    try:
        assert chain.tip.hash == MAIN.genesis_hash
        feed(chain, blocks)
        assert chain.height == MAINNET_HEIGHT
        assert chain.tip.hash_hex() == MAINNET_TIP
        _, count, total = chain.utxo_stats()
        # The genesis output is not spendable (Core never adds it to the coins view).
        assert (count, total) == (15, 15 * 50 * 100_000_000)
        assert chain.get_coin(MAIN.genesis.txs[0].txid, 0) is None
        assert chain.get_coin(blocks[8].txs[0].txid, 0) is not None  # block 9: paid Hal
    finally:
        chain.close()


def test_mainnet_import_from_core_framed_file(tmp_path):
    blocks = mainnet_blocks()
    blk = tmp_path / "blk00000.dat"
    order = [MAIN.genesis, *blocks]
    order[3], order[4] = order[4], order[3]
    write_core_blk_file(blk, order, MAIN.message_start, padding=4096)
    chain = open_chain(tmp_path / "main", MAIN)
    try:
        stats = load_external_block_file(chain, blk)
        assert (stats.new, stats.known, stats.invalid, stats.orphans) == (15, 1, 0, 0)
        assert chain.tip.hash_hex() == MAINNET_TIP
    finally:
        chain.close()


def test_mainnet_regtest_framing_is_not_read_as_main(tmp_path):
    """A file framed with regtest's message start holds nothing for a main chain."""
    blk = tmp_path / "blk00000.dat"
    write_core_blk_file(blk, mainnet_blocks(), REGTEST.message_start)
    chain = open_chain(tmp_path / "main", MAIN)
    try:
        stats = load_external_block_file(chain, blk)
        assert stats.new == 0
        assert chain.tip.hash == MAIN.genesis_hash
    finally:
        chain.close()


def test_mainnet_tampered_blocks_are_rejected_with_the_right_reason(tmp_path):
    blocks = mainnet_blocks()
    chain = open_chain(tmp_path / "main", MAIN)
    try:
        feed(chain, blocks[:14])
        good = blocks[14]
        raw = good.serialize()

        # A byte of the coinbase's public key: the merkle root no longer matches. The data
        # may have been damaged in transit, so the header must stay acceptable.
        i = raw.index(bytes.fromhex("04e0041b4b4d9b6feb")) + 5
        bad_tx = Block.from_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
        assert bad_tx.hash == good.hash
        assert reject(chain, bad_tx).reason == "bad-txnmrklroot"

        # A byte of the nonce: the header no longer meets its target.
        bad_pow = Block.from_bytes(raw[:76] + bytes([raw[76] ^ 0x01]) + raw[77:])
        assert reject(chain, bad_pow).reason == "high-hash"

        # A byte of the version (a version-1 block with another version): proof of work
        # fails too; a real miner's header cannot be edited at all.
        bad_ver = Block.from_bytes(bytes([raw[0] ^ 0x02]) + raw[1:])
        assert reject(chain, bad_ver).reason == "high-hash"

        assert chain.tip.hash_hex() == MAINNET_HASHES[14]
        chain.process_block(good)  # the genuine block is still welcome
        assert chain.tip.hash_hex() == MAINNET_TIP
    finally:
        chain.close()


def test_mainnet_block_on_regtest_is_rejected(tmp_path):
    """Block 1 of main does not extend regtest's genesis."""
    chain = open_chain(tmp_path / "regtest", REGTEST)
    try:
        err = reject(chain, mainnet_blocks()[0])
        assert err.reason == "prev-blk-not-found"
    finally:
        chain.close()


# ---------------------------------------------------------------------------------------
# Famous mainnet blocks
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", famous_blocks(), ids=lambda e: f"height{e['height']}")
def test_famous_mainnet_block(entry):
    block = Block.from_hex(entry["hex"])
    assert block.hash_hex() == entry["hash"]
    assert block.hash == hex_to_hash(entry["hash"])
    assert block.serialize().hex() == entry["hex"]
    assert block.size == len(entry["hex"]) // 2
    check_block(block, MAIN)
    root, mutated = block.compute_merkle_root()
    assert root == block.header.merkle_root and not mutated


def test_block_170_spends_block_9():
    b170 = Block.from_hex(next(e for e in famous_blocks() if e["height"] == 170)["hex"])
    block9 = mainnet_blocks()[8]
    spend = b170.txs[1]
    assert spend.vin[0].prevout.hash == block9.txs[0].txid
    assert spend.vin[0].prevout.n == 0
    assert [o.value for o in spend.vout] == [10 * 100_000_000, 40 * 100_000_000]


def test_famous_block_with_a_flipped_byte_fails_context_free_checks():
    entry = next(e for e in famous_blocks() if e["height"] == 100000)
    raw = bytes.fromhex(entry["hex"])
    i = len(raw) - 10  # inside the last output's public key hash
    bad = Block.from_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
    with pytest.raises(ValidationError) as e:
        check_block(bad, MAIN)
    assert e.value.reason == "bad-txnmrklroot"
