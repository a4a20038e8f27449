"""Shared pieces of the benchmarks: raw libsecp256k1 (coincurve) verification speed, the
machine-independent yardstick the script, connect and mempool benchmarks print their rates
beside, and best-of-N timing.

Imported by the scripts in this directory as `from _common import ...` (a script's own
directory is the first entry of sys.path).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly

_KEY = PrivateKey(hashlib.sha256(b"raw").digest())
_MSG = hashlib.sha256(b"m").digest()


def raw_ecdsa_rate(seconds: float = 1.0, parse_key: bool = False) -> float:
    """ECDSA verifications per second of one signature (single core): the key parsed once,
    or (parse_key) parsed from its 33 bytes for every check, as a node verifying a
    transaction must."""
    sig = _KEY.sign(_MSG, hasher=None)
    pub_bytes = _KEY.public_key.format()
    pub = PublicKey(pub_bytes)
    msg = _MSG
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if parse_key:
            for _ in range(200):
                PublicKey(pub_bytes).verify(sig, msg, hasher=None)
        else:
            for _ in range(200):
                pub.verify(sig, msg, hasher=None)
        n += 200
    return n / (time.perf_counter() - t0)


def raw_schnorr_rate(seconds: float = 1.0) -> float:
    """BIP340 Schnorr verifications per second of one signature, key parsed once."""
    xk = PublicKeyXOnly(_KEY.public_key.format()[1:])
    sig = _KEY.sign_schnorr(_MSG)
    msg = _MSG
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            xk.verify(sig, msg)
        n += 200
    return n / (time.perf_counter() - t0)


def raw_rates(seconds: float = 1.0) -> tuple[float, float]:
    """(ECDSA, Schnorr) verifications per second, each measured for `seconds`."""
    return raw_ecdsa_rate(seconds), raw_schnorr_rate(seconds)


def verify_ecdsa_samples(samples: Iterable[tuple[bytes, bytes, bytes]]) -> None:
    """Verify (pubkey, DER signature, digest) triples with nothing else: each key is parsed,
    as the node parses it for every check."""
    for pub, der, h in samples:
        assert PublicKey(pub).verify(der, h, hasher=None)


def verify_schnorr_samples(samples: Iterable[tuple[bytes, bytes, bytes]]) -> None:
    """Verify (x-only key, 64-byte signature, digest) triples with nothing else."""
    for x, sig, h in samples:
        assert PublicKeyXOnly(x).verify(sig, h)


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    """The shortest of `rounds` timed calls of fn, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
