#!/usr/bin/env python3
"""Script verification speed: a synthetic block's inputs (P2WPKH, P2TR key path and P2PKH
spends with real signatures), verified in one process and by the worker pool, each printed
beside raw coincurve ECDSA and Schnorr verifications per second measured in the same run.

Run: .venv/bin/python scripts/bench/scripts.py [--inputs 3000] [--workers 2] [--rounds 3]

Machine-independent figures:
  one process / raw   inputs/s over the raw rate for the same mix of signatures
                      (goal >= 0.7: the interpreter costs at most ~30% on top of libsecp256k1)
  pool / one process  speed-up of the pool over one process (goal >= 1.7 on 2 cores)
  cpu / one process   CPU time of the pool (calling process and workers together) over one
                      process's: the dispatch overhead, robust to a busy machine
Pools: each transport with --workers workers, and "tuples" with the calling process checking
chunks beside the workers (caller_checks: --workers - 1 workers + caller, and --workers +
caller). Signature and script-execution caches are bypassed, so every signature is really
verified.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import best_of, verify_ecdsa_samples, verify_schnorr_samples  # noqa: E402
from coincurve import PrivateKey  # noqa: E402

from consensus.hashes import hash160  # noqa: E402
from consensus.script.flags import STANDARD_SCRIPT_VERIFY_FLAGS  # noqa: E402
from consensus.script.keys import (  # noqa: E402
    sign_ecdsa,
    sign_schnorr,
    taproot_tweak_pubkey,
    taproot_tweak_seckey,
    xonly_pubkey,
)
from consensus.script.pool import TRANSPORTS, ScriptCheckPool, default_start_method  # noqa: E402
from consensus.script.sighash import (  # noqa: E402
    SIGHASH_ALL,
    PrecomputedTxData,
    legacy_sighash,
    segwit_v0_sighash,
    taproot_sighash,
)
from consensus.script.standard import p2pkh_script, p2tr_script, p2wpkh_script  # noqa: E402
from consensus.script.verify import verify_transaction  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402

KINDS = ("p2wpkh", "p2tr", "p2pkh")


def build(n_inputs: int, seed: int = 1):
    """Transactions of 1-3 inputs and 2 outputs; returns (items, ecdsa_samples, schnorr_samples).

    The samples are (pubkey, signature, digest) triples of every signature in the block, for
    the raw-rate measurement."""
    rng = random.Random(seed)
    items = []
    ecdsa, schnorr = [], []
    made = 0
    while made < n_inputs:
        n_in = min(rng.randint(1, 3), n_inputs - made)
        kinds = [KINDS[(made + k) % 3] for k in range(n_in)]
        keys = [rng.randbytes(32) for _ in range(n_in)]
        spent = []
        for kind, key in zip(kinds, keys, strict=True):
            pub = PrivateKey(key).public_key.format()
            if kind == "p2wpkh":
                spk = p2wpkh_script(hash160(pub))
            elif kind == "p2pkh":
                spk = p2pkh_script(hash160(pub))
            else:
                spk = p2tr_script(taproot_tweak_pubkey(xonly_pubkey(key))[0])
            spent.append(TxOut(rng.randrange(10_000, 10**8), spk))
        tx = Transaction(
            2,
            [TxIn(OutPoint(rng.randbytes(32), rng.randrange(4)), b"", 0xFFFFFFFD)
             for _ in range(n_in)],
            [TxOut(rng.randrange(10**7), p2wpkh_script(rng.randbytes(20))) for _ in range(2)],
            0,
        )
        txdata = PrecomputedTxData(tx, spent)
        for i, (kind, key) in enumerate(zip(kinds, keys, strict=True)):
            pub = PrivateKey(key).public_key.format()
            if kind == "p2wpkh":
                code = p2pkh_script(hash160(pub))
                h = segwit_v0_sighash(tx, i, code, spent[i].value, SIGHASH_ALL, txdata)
                der = sign_ecdsa(key, h)
                tx.vin[i].witness = [der + b"\x01", pub]
                ecdsa.append((pub, der, h))
            elif kind == "p2pkh":
                h = legacy_sighash(tx, i, spent[i].script_pubkey, SIGHASH_ALL, txdata)
                der = sign_ecdsa(key, h)
                tx.vin[i].script_sig = bytes((len(der) + 1,)) + der + b"\x01" + b"\x21" + pub
                ecdsa.append((pub, der, h))
            else:
                h = taproot_sighash(tx, i, txdata)
                sig = sign_schnorr(taproot_tweak_seckey(key), h)
                tx.vin[i].witness = [sig]
                schnorr.append((spent[i].script_pubkey[2:], sig, h))
        tx.rehash()
        items.append((tx, spent, STANDARD_SCRIPT_VERIFY_FLAGS))
        made += n_in
    return items, ecdsa, schnorr


def spin(n: int = 400_000) -> int:
    """A pure-Python CPU loop: calibrates how much parallelism the machine really gives."""
    acc = 0
    for i in range(n):
        acc += i * i & 0xFF
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--transport", choices=(*TRANSPORTS, "all"), default="all")
    ap.add_argument("--profile", action="store_true", help="cProfile the one-process run")
    args = ap.parse_args()

    t0 = time.perf_counter()
    items, ecdsa, schnorr = build(args.inputs)
    n = sum(len(tx.vin) for tx, _, _ in items)
    print(f"block: {len(items)} transactions, {n} inputs "
          f"({len(ecdsa)} ECDSA, {len(schnorr)} Schnorr), built in {time.perf_counter()-t0:.1f}s")
    print(f"cpus: {os.cpu_count()}, workers: {args.workers}")

    def raw_ecdsa():
        verify_ecdsa_samples(ecdsa)

    def raw_schnorr():
        verify_schnorr_samples(schnorr)

    def one_process():
        for tx, spent, flags in items:
            verify_transaction(tx, spent, flags, cache=None, sigcache=None)

    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("one_process()", globals(), {"one_process": one_process}, "/tmp/bench.prof")
        pstats.Stats("/tmp/bench.prof").sort_stats("tottime").print_stats(15)

    transports = TRANSPORTS if args.transport == "all" else (args.transport,)
    pools = {f"{args.workers} workers, {t}": ScriptCheckPool(workers=args.workers, transport=t)
             for t in transports}
    if args.workers > 1:
        pools[f"{args.workers - 1} worker(s) + caller"] = ScriptCheckPool(
            workers=args.workers - 1, caller_checks=True)
    pools[f"{args.workers} workers + caller"] = ScriptCheckPool(
        workers=args.workers, caller_checks=True)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_of(pool: ScriptCheckPool) -> float:
        """CPU seconds of this process and the pool's workers so far."""
        total = time.process_time()
        for proc in pool._procs:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    cpu: dict[str, float] = {}
    ctx = multiprocessing.get_context(default_start_method())
    spinners = ctx.Pool(args.workers)
    try:
        spinners.map(spin, [10] * args.workers)
        for pool in pools.values():
            pool.start()
            pool.verify_many(items, cache=None, use_sigcache=False)  # warm up the workers
        # Interleave the measurements round by round and keep each one's best, so that a
        # slow spell on a shared machine does not land on one figure only.
        best: dict[str, float] = {}

        def measure(name: str, fn, pool: ScriptCheckPool | None = None) -> None:
            c0 = cpu_of(pool) if pool is not None else time.process_time()
            best[name] = min(best.get(name, float("inf")), best_of(1, fn))
            c1 = cpu_of(pool) if pool is not None else time.process_time()
            cpu[name] = cpu.get(name, 0.0) + c1 - c0

        for _ in range(args.rounds):
            measure("raw_e", raw_ecdsa)
            measure("raw_s", raw_schnorr)
            measure("one", one_process)
            for t, pool in pools.items():
                measure(t, lambda p=pool: p.verify_many(items, cache=None, use_sigcache=False),
                        pool)
            measure("spin1", spin)
            measure("spinN", lambda: spinners.map(spin, [400_000] * args.workers, chunksize=1))
    finally:
        for pool in pools.values():
            pool.close()
        spinners.close()

    raw_e, raw_s = len(ecdsa) / best["raw_e"], len(schnorr) / best["raw_s"]
    # The raw rate for this mix: time to verify the same signatures with nothing else.
    raw_mix = n / (best["raw_e"] + best["raw_s"])
    one = n / best["one"]
    print(f"raw coincurve ECDSA     {raw_e:10.0f} verifies/s")
    print(f"raw coincurve Schnorr   {raw_s:10.0f} verifies/s")
    print(f"raw, weighted by mix    {raw_mix:10.0f} verifies/s")
    print(f"one process             {one:10.0f} inputs/s   = {one / raw_mix:.2f} x raw "
          f"(goal 0.70)")
    for t in pools:
        rate = n / best[t]
        print(f"pool, {t:24s} {rate:8.0f} inputs/s = {rate / one:.2f} x one process "
              f"(goal 1.70), {rate / raw_mix:.2f} x raw; cpu {cpu[t] / cpu['one']:.2f} x one")
    machine = args.workers * best["spin1"] / best["spinN"]
    print(f"machine: {args.workers} pure-Python CPU loops in parallel run {machine:.2f} x one "
          f"(the ceiling for any pool on this machine right now)")


if __name__ == "__main__":
    main()
