"""Small builders for blocks and transactions in tests (regtest difficulty)."""

from __future__ import annotations

from consensus.block import Block, BlockHeader, add_witness_commitment
from consensus.params import REGTEST
from consensus.pow import check_proof_of_work
from consensus.tx import OutPoint, Transaction, TxIn, TxOut


def script_num(n: int) -> bytes:
    """Minimal CScriptNum push, as BIP34 puts the height in the coinbase."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    out = bytearray()
    v = abs(n)
    while v:
        out.append(v & 0xFF)
        v >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if n < 0 else 0)
    elif n < 0:
        out[-1] |= 0x80
    return bytes([len(out)]) + bytes(out)


def make_coinbase(height: int, value: int = 50_0000_0000, script_pubkey: bytes = b"\x51",
                  extra: bytes = b"") -> Transaction:
    script_sig = script_num(height) + extra
    if len(script_sig) < 2:
        script_sig += b"\x00"  # coinbase scriptSig must be 2..100 bytes
    return Transaction(2, [TxIn(OutPoint(), script_sig, 0xFFFFFFFF)], [TxOut(value, script_pubkey)])


def solve(block: Block, params=REGTEST) -> Block:
    """Grind the nonce until the header meets its target (fast at regtest difficulty)."""
    header = block.header
    while True:
        header.rehash()
        if check_proof_of_work(header.hash, header.bits, params):
            return block
        header.nonce += 1


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
