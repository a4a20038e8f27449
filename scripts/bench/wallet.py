#!/usr/bin/env python3
"""Wallet speed: build and sign a transaction of 200 inputs, and sync a wallet over 10,000
blocks from a real minibtcd, each printed beside a reference measured in the same run.

Run: .venv/bin/python scripts/bench/wallet.py [--inputs 200] [--blocks 10000] [--rounds 3]

Machine-independent figures:
  build+sign / raw sign   inputs signed per second by the wallet (coin selection, PSBT
                          update, signature hashes, signing, finalizing) over raw coincurve
                          signatures per second of the same kind (ECDSA ground to a low R,
                          as Core's wallet and ours sign): the wallet's cost on top of
                          libsecp256k1
  sync / raw fetch        blocks per second the wallet follows (fetch, parse, match, store)
                          over blocks per second the same batched JSON-RPC fetch alone gets
                          (getblockhash + getblock 0): what the wallet adds to the transfer
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import best_of  # noqa: E402
from coincurve import PrivateKey  # noqa: E402

from consensus.params import REGTEST  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from wallet.address import address_to_script  # noqa: E402
from wallet.spend import Recipient, create_transaction, sign_transaction  # noqa: E402
from wallet.wallet import Wallet  # noqa: E402

ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


def _ground_sign(key: PrivateKey, msg: bytes) -> bytes:
    """An ECDSA signature as Core's wallet makes it, with coincurve's own API: RFC6979, then
    a counter as extra entropy until R is low (half the messages need a second try or more)."""
    from coincurve._libsecp256k1 import ffi, lib

    sig, counter = key.sign(msg, hasher=None), 0
    while sig[4] & 0x80 or sig[3] == 33:  # (DER: R's first byte, or a 33-byte R)
        counter += 1
        ndata = ffi.new("unsigned char[32]", counter.to_bytes(32, "little"))
        sig = key.sign(msg, hasher=None,
                       custom_nonce=(lib.secp256k1_nonce_function_rfc6979, ndata))
    return sig


def raw_sign_rates(seconds: float = 1.0) -> tuple[float, float]:
    """(ECDSA ground to a low R as Core's wallet signs, BIP340 Schnorr) signatures per second
    with coincurve, one core, over varied messages."""
    key = PrivateKey(hashlib.sha256(b"bench").digest())
    msgs = [hashlib.sha256(b"m%d" % i).digest() for i in range(100)]
    aux = b"\x00" * 32
    rates = []
    for sign in (lambda m: _ground_sign(key, m), lambda m: key.sign_schnorr(m, aux)):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for m in msgs:
                sign(m)
            n += len(msgs)
        rates.append(n / (time.perf_counter() - t0))
    return rates[0], rates[1]


def funded_wallet(directory: Path, n: int, kind: str) -> Wallet:
    w = Wallet.create(directory, "bench", REGTEST)
    with w.db.atomic():
        for i in range(n):
            script = address_to_script(w.new_address(kind), REGTEST)
            prev = Transaction(2, [TxIn(OutPoint(i.to_bytes(32, "big"), 0))],
                               [TxOut(100_000 + i, script)])
            w.add_tx(prev, height=1, block_hash=b"\x01" * 32, block_time=int(time.time()),
                     block_pos=i + 1)
        w.set_tip(200, b"\x02" * 32, int(time.time()))
    return w


def bench_build_sign(n: int, rounds: int) -> None:
    ecdsa, schnorr = raw_sign_rates()
    for kind, raw, label in (("bech32", ecdsa, "P2WPKH"), ("bech32m", schnorr, "P2TR")):
        with tempfile.TemporaryDirectory() as tmp:
            w = funded_wallet(Path(tmp) / "w", n, kind)
            total = sum(c.value for c in w.coins())
            dest = address_to_script(ELSEWHERE, REGTEST)
            tx = None

            def run(w: Wallet = w, dest: bytes = dest, total: int = total) -> None:
                nonlocal tx
                built = create_transaction(w, [Recipient(dest, total, subtract_fee=True)],
                                           2000, rng=random.Random(1))
                assert len(built.tx.vin) == n
                tx = sign_transaction(w, built.tx)

            t = best_of(rounds, run)
            w.close()
        rate = n / t
        print(f"build+sign {n} {label} inputs: {t * 1000:8.1f} ms  {rate:8.0f} inputs/s   "
              f"raw {label} sign: {raw:8.0f}/s   ratio {rate / raw:.2f}   "
              f"({tx.vsize} vB)")


def bench_sync(blocks: int, rounds: int) -> None:
    from tests.functional.framework import NodeProcess
    from wallet.nodeclient import NodeClient
    from wallet.sync import BATCH_BLOCKS, sync

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        node = NodeProcess(tmp / "node").start()
        try:
            client = NodeClient(node.url, cookie_file=node.chain_dir / ".cookie")
            seed_wallet = Wallet.create(tmp / "seed", "seed", REGTEST)
            mine_to = seed_wallet.new_address()
            words = seed_wallet.mnemonic()[0]
            seed_wallet.close()
            t0 = time.perf_counter()
            done = 0
            while done < blocks:  # one block in 20 pays the wallet
                step = min(19, blocks - done)
                node.call("generatetoaddress", step, ELSEWHERE)
                if done + step < blocks:
                    node.call("generatetoaddress", 1, mine_to)
                    step += 1
                done += step
            print(f"(mined {blocks} blocks in {time.perf_counter() - t0:.1f} s)")

            def fetch_only() -> None:
                for start in range(0, blocks + 1, BATCH_BLOCKS):
                    hs = range(start, min(blocks, start + BATCH_BLOCKS - 1) + 1)
                    hashes = client.batch([("getblockhash", [h]) for h in hs])
                    client.batch([("getblock", [x, 0]) for x in hashes])

            raw = best_of(rounds, fetch_only)
            found = 0
            times = []
            for r in range(rounds):
                w = Wallet.create(tmp / f"w{r}", "w", REGTEST, mnemonic=words)
                t = time.perf_counter()
                res = sync(w, client)
                times.append(time.perf_counter() - t)
                found = len(w.txs)
                assert res.connected == blocks + 1 and w.tip_height == blocks
                w.close()
            t = min(times)
            print(f"sync {blocks} blocks ({found} paying the wallet): {t:6.2f} s  "
                  f"{blocks / t:8.0f} blocks/s   raw batched fetch: {blocks / raw:8.0f} "
                  f"blocks/s   ratio {raw / t:.2f}")
        finally:
            node.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=200)
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bench_build_sign(args.inputs, args.rounds)
    bench_sync(args.blocks, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
