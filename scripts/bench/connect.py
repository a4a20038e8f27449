#!/usr/bin/env python3
"""Block connection through the whole pipeline: parse, check, UTXO set, undo, scripts.

Generates a regtest chain (default: 200 funding blocks, then 200 blocks carrying 100,000
signed transactions: P2WPKH and P2TR key-path spends, 1-3 inputs and 1-3 outputs each),
writes it to a blk file (cached in --cache between runs), imports it with
`python -m node.importer -loadblock=FILE` into a fresh datadir, and prints:

    transactions/s and inputs/s of the import   beside
    raw coincurve ECDSA and Schnorr verifies/s (single core, same run), and their mix

plus the importer's peak memory beside -dbcache. Goal (issue 20): inputs/s >= 0.7 of the
raw rate for the same signature mix; peak memory <= dbcache + 200 MB.

The raw rates are measured right before and right after each import, and the import is
compared with their mean: this machine's speed drifts by several percent within minutes.
--rounds N repeats the import (and prints the median); --baseline DIR (a checkout of another
commit) imports with that tree too, in alternating rounds.

Run: .venv/bin/python scripts/bench/connect.py [--blocks 200] [--txs 100000] [--dbcache 450]
     [--rounds 1] [--baseline /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from _common import raw_rates  # noqa: E402
from coincurve import PrivateKey  # noqa: E402

from consensus.amounts import block_subsidy  # noqa: E402
from consensus.block import Block, BlockHeader, add_witness_commitment  # noqa: E402
from consensus.hashes import hash160  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from consensus.script.keys import (  # noqa: E402
    sign_ecdsa,
    sign_schnorr,
    taproot_tweak_pubkey,
    taproot_tweak_seckey,
    xonly_pubkey,
)
from consensus.script.sighash import (  # noqa: E402
    PrecomputedTxData,
    segwit_v0_sighash,
    taproot_sighash,
)
from consensus.script.standard import p2pkh_script, p2tr_script, p2wpkh_script  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from node.mining import make_coinbase, solve  # noqa: E402

FEE = 1000


class Key:
    def __init__(self, secret: bytes, kind: str) -> None:
        self.secret = secret
        self.kind = kind
        pub = PrivateKey(secret).public_key.format(True)
        self.pub = pub
        if kind == "p2wpkh":
            self.spk = p2wpkh_script(hash160(pub))
            self.code = p2pkh_script(hash160(pub))
        else:
            self.tweaked = taproot_tweak_seckey(secret)
            out_key, _ = taproot_tweak_pubkey(xonly_pubkey(secret))
            self.spk = p2tr_script(out_key)


def mine(prev: bytes, height: int, txs: list[Transaction], t: int, spk: bytes,
         fees: int) -> Block:
    cb = make_coinbase(height, block_subsidy(height, 150) + fees, spk)
    block = Block(BlockHeader(0x20000000, prev, b"", t, 0x207FFFFF, 0), [cb, *txs])
    add_witness_commitment(block)
    block.header.merkle_root = block.compute_merkle_root()[0]
    if not solve(block, REGTEST, 1 << 32):
        raise RuntimeError("no nonce meets the target")
    return block


def sign(tx: Transaction, coins: list[tuple[Key, int, bytes]]) -> None:
    spent = [TxOut(v, spk) for _, v, spk in coins]
    txdata = PrecomputedTxData(tx, spent)
    for i, (key, value, _) in enumerate(coins):
        if key.kind == "p2wpkh":
            h = segwit_v0_sighash(tx, i, key.code, value, 1, txdata)
            tx.vin[i].witness = [sign_ecdsa(key.secret, h) + b"\x01", key.pub]
        else:
            h = taproot_sighash(tx, i, txdata, 0)
            tx.vin[i].witness = [sign_schnorr(key.tweaked, h)]
    tx.rehash()


def generate(path: Path, n_blocks: int, n_txs: int, seed: int = 7) -> tuple[int, int, int]:
    """Write the chain; returns (blocks, transactions, inputs) of the spending blocks."""
    rng = random.Random(seed)
    keys = [Key(hashlib.sha256(b"k%d" % i).digest(), "p2wpkh" if i % 2 else "p2tr")
            for i in range(64)]
    t = 1_700_000_000
    prev = REGTEST.genesis.hash
    height = 0
    blocks: list[bytes] = []
    utxos: list[tuple[bytes, int, Key, int]] = []
    funding: list[tuple[bytes, int, Key, int]] = []
    for _ in range(200):  # coinbases 1..100 are mature from height 200 on
        height += 1
        t += 1
        key = keys[height % len(keys)]
        b = mine(prev, height, [], t, key.spk, 0)
        blocks.append(b.serialize())
        prev = b.hash
        funding.append((b.txs[0].txid, 0, key, b.txs[0].vout[0].value))
    funding = funding[:100]
    # The first spending block holds the fan-out transactions, the others share the rest.
    per_block = -(-(n_txs - len(funding)) // max(1, n_blocks - 1))
    # First spending block: fan each mature coinbase out into many outputs.
    fan = max(2, (per_block * 4) // len(funding) + 1)  # slack: a block never runs dry
    total_txs = total_inputs = 0
    for b_i in range(n_blocks):
        height += 1
        t += 1
        txs = []
        fees = 0
        pending = []  # outputs of this block, spendable from the next one
        if b_i == 0:
            for txid, n, key, value in funding:
                each = (value - FEE) // fan
                outs = [keys[rng.randrange(len(keys))] for _ in range(fan)]
                tx = Transaction(2, [TxIn(OutPoint(txid, n), b"", 0xFFFFFFFD)],
                                 [TxOut(each, k.spk) for k in outs])
                sign(tx, [(key, value, key.spk)])
                txs.append(tx)
                fees += value - each * fan
                pending.extend((tx.txid, j, k, each) for j, k in enumerate(outs))
                total_inputs += 1
        while len(txs) < per_block and utxos:
            n_in = min(rng.randint(1, 3), len(utxos))
            coins = [utxos.pop(rng.randrange(len(utxos))) for _ in range(n_in)]
            value = sum(c[3] for c in coins)
            n_out = rng.randint(1, 3)
            each = (value - FEE) // n_out
            if each < 10_000:
                n_out, each = 1, value - FEE
            outs = [keys[rng.randrange(len(keys))] for _ in range(n_out)]
            tx = Transaction(2, [TxIn(OutPoint(c[0], c[1]), b"", 0xFFFFFFFD) for c in coins],
                             [TxOut(each, k.spk) for k in outs])
            sign(tx, [(c[2], c[3], c[2].spk) for c in coins])
            txs.append(tx)
            fees += value - each * n_out
            total_inputs += n_in
            pending.extend((tx.txid, j, k, each) for j, k in enumerate(outs))
        b = mine(prev, height, txs, t, keys[0].spk, fees)
        utxos.extend(pending)
        blocks.append(b.serialize())
        prev = b.hash
        total_txs += len(txs)
        if (b_i + 1) % 20 == 0:
            print(f"  generated {b_i + 1}/{n_blocks} blocks, {total_txs} txs", flush=True)
    with open(path, "wb") as f:
        for raw in blocks:
            f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
    return n_blocks, total_txs, total_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--dbcache", type=int, default=450)
    ap.add_argument("--par", type=int, default=None, help="the nodes' -par, as Core's "
                    "(default: the node's, 0: one checker per core)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--baseline", default=None,
                    help="a checkout of another commit, imported in alternating rounds")
    args = ap.parse_args()

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    blk = cache / f"connect_{args.blocks}_{args.txs}.dat"
    meta = blk.with_suffix(".meta")
    if not blk.exists() or not meta.exists():
        print(f"generating {args.blocks} blocks with {args.txs} signed transactions ...")
        t0 = time.time()
        counts = generate(blk, args.blocks, args.txs)
        meta.write_text(" ".join(map(str, counts)))
        print(f"  done in {time.time() - t0:.0f} s -> {blk}")
    n_blocks, n_txs, n_inputs = map(int, meta.read_text().split())

    print(f"chain: {n_blocks} spending blocks (+200 funding), {n_txs} txs, {n_inputs} inputs")
    trees = [("this tree", ROOT)]
    if args.baseline:
        trees.append(("baseline", Path(args.baseline).resolve()))
    ratios: dict[str, list[float]] = {name: [] for name, _ in trees}
    before = raw_mix()
    for r in range(args.rounds):
        for name, tree in trees if r % 2 == 0 else trees[::-1]:
            elapsed = import_once(tree, blk, args)
            after = raw_mix()
            mix = (before[2] + after[2]) / 2
            ratios[name].append(n_inputs / elapsed / mix)
            print(f"round {r + 1} {name}: raw coincurve (1 core, before/after) ECDSA "
                  f"{before[0]:,.0f}/{after[0]:,.0f}/s, Schnorr {before[1]:,.0f}/"
                  f"{after[1]:,.0f}/s, 50/50 mix {mix:,.0f}/s; import (incl. start-up) "
                  f"{elapsed:.1f} s: {n_txs / elapsed:,.0f} tx/s, {n_inputs / elapsed:,.0f} "
                  f"inputs/s = {ratios[name][-1]:.2f} x raw mix", flush=True)
            before = after
    for name, rs in ratios.items():
        print(f"{name}: {statistics.median(rs):.2f} x raw mix (median of {len(rs)}: "
              f"{', '.join(f'{x:.2f}' for x in rs)}); goal 0.7")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory of the importer: {peak_mb:.0f} MB (dbcache {args.dbcache} MB; "
          f"limit dbcache + 200 = {args.dbcache + 200} MB)")


def raw_mix() -> tuple[float, float, float]:
    """(ECDSA, Schnorr, their 50/50 mix) raw verifies/s: connect.py's inputs alternate
    P2WPKH (ECDSA) and P2TR (Schnorr) keys, about half each."""
    ecdsa, schnorr = raw_rates()
    return ecdsa, schnorr, 1 / (0.5 / ecdsa + 0.5 / schnorr)


def import_once(tree: Path, blk: Path, args: argparse.Namespace) -> float:
    """Seconds for `tree`'s importer to import blk into a fresh datadir."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "node.importer", f"-datadir={d}", f"-loadblock={blk}",
               f"-dbcache={args.dbcache}"]
        if args.par is not None:
            cmd.append(f"-par={args.par}")
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if p.returncode != 0:
            print(p.stderr[-3000:])
            raise SystemExit("import failed")
        if "invalid=0" not in p.stderr:
            print(p.stderr[-3000:])
            raise SystemExit("import rejected blocks")
    return elapsed


if __name__ == "__main__":
    main()
