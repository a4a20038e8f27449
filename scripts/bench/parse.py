#!/usr/bin/env python3
"""Parse and re-serialize a large block; print MB/s beside hashlib's sha256 MB/s.

Run: .venv/bin/python scripts/bench/parse.py [--txs 3000] [--rounds 5]
The ratio (our parse MB/s / sha256 MB/s) is the machine-independent figure.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import best_of  # noqa: E402

from consensus.block import Block, BlockHeader, add_witness_commitment  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402


def build_block(n_txs: int) -> Block:
    rng = random.Random(7)
    cb = Transaction(2, [TxIn(OutPoint(), b"\x03\x01\x02\x03", 0xFFFFFFFF)],
                     [TxOut(50_0000_0000, b"\x00\x14" + os.urandom(20))])
    txs = [cb]
    for i in range(n_txs):
        n_in, n_out = rng.randint(1, 3), rng.randint(1, 3)
        segwit = i % 3 != 0
        vin = []
        for _ in range(n_in):
            if segwit:  # P2WPKH spend: empty scriptSig, signature + pubkey witness
                vin.append(TxIn(OutPoint(os.urandom(32), rng.randrange(4)), b"", 0xFFFFFFFD,
                                [os.urandom(71), os.urandom(33)]))
            else:  # P2PKH spend
                vin.append(TxIn(OutPoint(os.urandom(32), rng.randrange(4)),
                                b"\x47" + os.urandom(71) + b"\x21" + os.urandom(33), 0xFFFFFFFF))
        vout = [TxOut(rng.randrange(10**8), b"\x00\x14" + os.urandom(20)) for _ in range(n_out)]
        txs.append(Transaction(2, vin, vout, 0))
    block = Block(BlockHeader(0x20000000, os.urandom(32), b"", 1_700_000_000, 0x207FFFFF, 0), txs)
    add_witness_commitment(block)
    block.header.merkle_root = block.compute_merkle_root()[0]
    return block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--txs", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    raw = build_block(args.txs).serialize()
    mb = len(raw) / 1e6
    parsed = Block.from_bytes(raw)
    assert parsed.serialize() == raw, "round trip mismatch"

    t_parse = best_of(args.rounds, lambda: Block.from_bytes(raw))
    t_ser = best_of(args.rounds, lambda: parsed.serialize())
    t_both = best_of(args.rounds, lambda: Block.from_bytes(raw).serialize())
    t_sha = best_of(args.rounds, lambda: [hashlib.sha256(raw).digest() for _ in range(10)]) / 10

    sha = mb / t_sha
    print(f"block: {len(parsed.txs)} txs, {mb:.2f} MB, weight {parsed.weight}")
    print(f"hashlib sha256:          {sha:9.1f} MB/s (reference)")
    for name, t in (("parse (with txid/wtxid)", t_parse), ("serialize", t_ser),
                    ("parse + serialize", t_both)):
        print(f"{name:24s} {mb / t:9.1f} MB/s  ratio to sha256 {mb / t / sha:.4f}"
              f"  ({len(parsed.txs) / t:,.0f} tx/s)")


if __name__ == "__main__":
    main()
