"""Small builders for blocks and transactions in tests (regtest difficulty)."""

from __future__ import annotations

from consensus.block import Block, BlockHeader, add_witness_commitment
from consensus.params import REGTEST
from consensus.script.script import push_int
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node import mining


def make_coinbase(height: int, value: int = 50_0000_0000, script_pubkey: bytes = b"\x51",
                  extra: bytes = b"") -> Transaction:
    """A coinbase whose scriptSig is `<height> extra` (BIP34, padded with OP_0 to the minimum
    of 2 bytes), paying `value` to `script_pubkey`. node.mining.make_coinbase is the node's
    (always `<height> OP_0`); this one lets tests vary the bytes after the height."""
    script_sig = push_int(height) + extra
    if len(script_sig) < 2:
        script_sig += b"\x00"  # coinbase scriptSig must be 2..100 bytes
    return Transaction(2, [TxIn(OutPoint(), script_sig, 0xFFFFFFFF)], [TxOut(value, script_pubkey)])


def solve(block: Block, params=REGTEST) -> Block:
    """Grind the nonce until the header meets its target (fast at regtest difficulty)."""
    if not mining.solve(block, params, 1 << 32):
        raise RuntimeError("no nonce meets the target")
    return block


def make_block(prev: bytes, height: int, txs: list[Transaction] = (), time: int = 1_700_000_000,
               witness: bool = False, bits: int = 0x207FFFFF, coinbase: Transaction | None = None,
               mine: bool = True) -> Block:
    cb = coinbase if coinbase is not None else make_coinbase(height)
    block = Block(BlockHeader(0x20000000, prev, b"", time, bits, 0), [cb, *txs])
    if witness:
        add_witness_commitment(block)
    block.header.merkle_root = block.compute_merkle_root()[0]
    block.rehash()
    return solve(block) if mine else block


def spend(prev_txid: bytes, n: int, value: int, script_pubkey: bytes = b"\x51",
          script_sig: bytes = b"", witness: list[bytes] | None = None) -> Transaction:
    return Transaction(2, [TxIn(OutPoint(prev_txid, n), script_sig, 0xFFFFFFFF, witness)],
                       [TxOut(value, script_pubkey)])
