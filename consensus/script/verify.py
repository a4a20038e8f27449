"""The public entry point for script verification (minibtc's libbitcoinconsensus).

    verify_input(tx, index, spent_outputs, flags, txdata=None)
    verify_transaction(tx, spent_outputs, flags)

Both raise ScriptError (with Core's error name in `.code`, and the txid and input index set)
when a spend is invalid, and return None otherwise. `spent_outputs` is the list of outputs the
transaction's inputs spend, in input order (value and scriptPubKey); taproot signatures commit
to all of them, so always pass the whole list. `flags` are bits from consensus.script.flags:
MANDATORY_SCRIPT_VERIFY_FLAGS (or the deployment-dependent set) for blocks,
STANDARD_SCRIPT_VERIFY_FLAGS for the mempool.

The chain state and the mempool call exactly these. Two caches make repeated work cheap:
  * signatures: a bounded, salted cache of verified (sighash, key, signature) triples
    (sigcheck.SIGNATURE_CACHE), consulted by every check in this process;
  * whole transactions: ScriptExecutionCache remembers (wtxid, flags) that passed, as Core's
    script execution cache: only a check under exactly the same flags hits (the mempool
    checks under the standard flags, then again under the next block's, which the signature
    cache makes cheap, so that the block finds its transactions there).
Common templates (P2PKH, P2WPKH, P2TR key path) take fast paths that do exactly what the
interpreter would do, without its general machinery.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence

from consensus.hashes import hash160
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.interpreter import (
    TransactionSignatureChecker,
    check_pubkey_encoding,
    check_signature_encoding,
    verify_ecdsa_cached,
    verify_script,
    verify_witness_program,
)
from consensus.script.num import cast_to_bool
from consensus.script.script import MAX_SCRIPT_ELEMENT_SIZE, is_p2pkh
from consensus.script.sigcheck import SIGNATURE_CACHE, SignatureCache, pubkey_valid_size
from consensus.script.sighash import (
    SIGVERSION_BASE,
    SIGVERSION_WITNESS_V0,
    PrecomputedTxData,
    legacy_sighash_serialized_code,
    segwit_v0_sighash,
)
from consensus.script.standard import p2pkh_script
from consensus.tx import Transaction, TxOut

__all__ = [
    "ScriptError",
    "ScriptExecutionCache",
    "SCRIPT_EXECUTION_CACHE",
    "PrecomputedTxData",
    "verify_input",
    "verify_transaction",
]

_sha256 = hashlib.sha256


def _fast_p2wpkh(
    tx: Transaction,
    index: int,
    program: bytes,
    witness: Sequence[bytes],
    flags: int,
    amount: int,
    txdata: PrecomputedTxData,
    cache: SignatureCache | None,
    store: bool,
) -> None:
    """A P2WPKH spend with an empty scriptSig: the implied DUP HASH160 <program> EQUALVERIFY
    CHECKSIG run on the two witness items, checks in the interpreter's order."""
    if len(witness) != 2:
        raise ScriptError("WITNESS_PROGRAM_MISMATCH")
    sig, pub = witness
    if len(sig) > MAX_SCRIPT_ELEMENT_SIZE or len(pub) > MAX_SCRIPT_ELEMENT_SIZE:
        raise ScriptError("PUSH_SIZE")
    if hash160(pub) != program:
        raise ScriptError("EQUALVERIFY")
    check_signature_encoding(sig, flags)
    check_pubkey_encoding(pub, flags, SIGVERSION_WITNESS_V0)
    ok = False
    if sig and pubkey_valid_size(pub):
        code = p2pkh_script(program)
        sighash = segwit_v0_sighash(tx, index, code, amount, sig[-1], txdata)
        ok = verify_ecdsa_cached(pub, sig[:-1], sighash, cache, store)
    if not ok:
        if flags & F.NULLFAIL and sig:
            raise ScriptError("SIG_NULLFAIL")
        raise ScriptError("EVAL_FALSE")


def _p2pkh_pushes(script_sig: bytes) -> tuple[bytes, bytes] | None:
    """The two pushes of a plain `<sig> <pubkey>` scriptSig made of direct pushes of 2..75 bytes
    (always minimal encodings), else None.

    A 20-byte first push is left to the interpreter: only such a "signature" could equal the
    scriptPubKey's hash push and be removed from the scriptCode by FindAndDelete.
    """
    n = len(script_sig)
    if n < 2:
        return None
    a = script_sig[0]
    if not 2 <= a <= 75 or a == 20:
        return None
    pos = 1 + a
    if pos >= n:
        return None
    b = script_sig[pos]
    if not 2 <= b <= 75 or pos + 1 + b != n:
        return None
    return script_sig[1:pos], script_sig[pos + 1 :]


def _fast_p2pkh(
    tx: Transaction,
    index: int,
    script_pubkey: bytes,
    sig: bytes,
    pub: bytes,
    flags: int,
    witness: Sequence[bytes],
    txdata: PrecomputedTxData,
    cache: SignatureCache | None,
    store: bool,
) -> None:
    """scriptSig `<sig> <pub>` against DUP HASH160 <h> EQUALVERIFY CHECKSIG, checks in the
    interpreter's order. The signature push (2..75 bytes, not 20) cannot occur in this
    scriptPubKey on an op boundary, so FindAndDelete has nothing to remove."""
    if hash160(pub) != script_pubkey[3:23]:
        raise ScriptError("EQUALVERIFY")
    check_signature_encoding(sig, flags)
    check_pubkey_encoding(pub, flags, SIGVERSION_BASE)
    ok = False
    if pubkey_valid_size(pub):
        code = b"\x19" + script_pubkey
        sighash = legacy_sighash_serialized_code(tx, index, code, sig[-1], txdata)
        ok = verify_ecdsa_cached(pub, sig[:-1], sighash, cache, store)
    if not ok:
        if flags & F.NULLFAIL:
            raise ScriptError("SIG_NULLFAIL")
        raise ScriptError("EVAL_FALSE")
    # The stack is now [true]: the scriptSig pushed exactly two items, so CLEANSTACK holds.
    if flags & F.WITNESS and witness:
        raise ScriptError("WITNESS_UNEXPECTED")


def _verify_input(
    tx: Transaction,
    index: int,
    spent_outputs: Sequence[TxOut],
    flags: int,
    txdata: PrecomputedTxData,
    cache: SignatureCache | None,
    store: bool,
    fast: bool = True,
) -> None:
    txin = tx.vin[index]
    out = spent_outputs[index]
    spk = out.script_pubkey
    script_sig = txin.script_sig
    witness = txin.witness
    if fast:
        n = len(spk)
        if n == 22 and spk[0] == 0 and spk[1] == 20 and flags & F.WITNESS and not script_sig:
            program = spk[2:]
            if not cast_to_bool(program):
                raise ScriptError("EVAL_FALSE")
            _fast_p2wpkh(tx, index, program, witness, flags, out.value, txdata, cache, store)
            return
        if n == 34 and spk[0] == 0x51 and spk[1] == 32 and flags & F.WITNESS and not script_sig:
            program = spk[2:]
            if not cast_to_bool(program):
                raise ScriptError("EVAL_FALSE")
            checker = TransactionSignatureChecker(tx, index, out.value, txdata, cache, store)
            verify_witness_program(witness, 1, program, flags, checker, False)
            return
        if is_p2pkh(spk):
            pushes = _p2pkh_pushes(script_sig)
            if pushes is not None:
                _fast_p2pkh(tx, index, spk, pushes[0], pushes[1], flags, witness, txdata,
                            cache, store)
                return
    checker = TransactionSignatureChecker(tx, index, out.value, txdata, cache, store)
    verify_script(script_sig, spk, witness, flags, checker)


def verify_input(
    tx: Transaction,
    index: int,
    spent_outputs: Sequence[TxOut],
    flags: int,
    txdata: PrecomputedTxData | None = None,
    *,
    sigcache: SignatureCache | None = SIGNATURE_CACHE,
    store: bool = True,
) -> None:
    """Verify input `index` of `tx` spending spent_outputs[index] under `flags`.

    Pass the same `txdata` (PrecomputedTxData(tx, spent_outputs)) for every input of a
    transaction to share its signature-hash precomputation. Raises ScriptError.
    """
    if txdata is None:
        txdata = PrecomputedTxData(tx, spent_outputs)
    try:
        _verify_input(tx, index, spent_outputs, flags, txdata, sigcache, store)
    except ScriptError as e:
        e.tx = tx  # (its txid is serialized only if someone reads it: a wallet trying
        e.input_index = index  # signatures on a big transaction sees many failures)
        raise


# Memory one cache entry takes (a 32-byte bytes object plus its dict slot), measured with
# tracemalloc on CPython 3.11 (117 bytes at 200,000 entries): what -maxsigcachesize's bytes
# are divided by.
CACHE_ENTRY_BYTES = 120


class ScriptExecutionCache:
    """Core's script execution cache: a bounded set of transactions whose every input passed
    under one set of flags, each entry a salted SHA-256 of (wtxid, flags).

    The flags are part of the key, so a check under any other flag set (the mempool's
    standard flags, an older block's flags) never hits an entry made under these; the wtxid
    commits to the witness, so a transaction with the same txid but another witness never
    hits either. The spent outputs are not part of the key (as in Core): they are fixed by
    the outpoints, which the wtxid commits to -- so only pass the cache to checks whose spent
    outputs come from the UTXO set (the chain and the mempool do). When full, the oldest
    entries go first. Thread-safe; `hits` and `misses` count lookups."""

    __slots__ = ("max_entries", "_salt", "_set", "_lock", "hits", "misses")

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max(1, max_entries)
        self._salt = os.urandom(32)
        self._set: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, tx: Transaction, flags: int) -> bytes:
        return _sha256(self._salt + tx.wtxid + flags.to_bytes(8, "little")).digest()

    def contains(self, key: bytes) -> bool:
        if key in self._set:
            self.hits += 1
            return True
        self.misses += 1
        return False

    def add(self, key: bytes) -> None:
        s = self._set
        if key in s:
            return
        if len(s) >= self.max_entries:
            with self._lock:
                # The oldest eighth in one go, so the cost is amortised.
                for k in list(s)[: max(1, self.max_entries // 8)]:
                    s.pop(k, None)
        s[key] = None

    def resize(self, max_entries: int) -> None:
        """A new bound; the oldest entries beyond it go now."""
        with self._lock:
            self.max_entries = max(1, max_entries)
            s = self._set
            for k in list(s)[: max(0, len(s) - self.max_entries)]:
                s.pop(k, None)

    def clear(self) -> None:
        self._set.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._set)


# The process-wide cache of the chain state and the mempool (node.scriptcheck sizes it from
# -maxsigcachesize). verify_transaction uses none unless given one.
SCRIPT_EXECUTION_CACHE = ScriptExecutionCache()


def verify_transaction(
    tx: Transaction,
    spent_outputs: Sequence[TxOut],
    flags: int,
    *,
    cache: ScriptExecutionCache | None = None,
    sigcache: SignatureCache | None = SIGNATURE_CACHE,
    store: bool = True,
    txdata: PrecomputedTxData | None = None,
) -> None:
    """Verify every input of `tx` under `flags`. Raises ScriptError for the first failing input
    (with .txid and .input_index). With `cache` (a ScriptExecutionCache), a transaction already
    verified under exactly these flags is accepted at once, and a success is remembered. A
    coinbase spends nothing and has no scripts to check. `txdata`: the transaction's
    PrecomputedTxData, when the caller checks it under several flag sets."""
    if tx.is_coinbase():
        return
    if len(spent_outputs) != len(tx.vin):
        raise ValueError("spent_outputs must have one entry per input")
    key = None
    if cache is not None:
        key = cache.key(tx, flags)
        if cache.contains(key):
            return
    if txdata is None:
        txdata = PrecomputedTxData(tx, spent_outputs)
    for i in range(len(tx.vin)):
        verify_input(tx, i, spent_outputs, flags, txdata, sigcache=sigcache, store=store)
    if cache is not None and key is not None:
        cache.add(key)
