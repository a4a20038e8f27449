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
  * whole transactions: ScriptExecutionCache remembers (wtxid, spent outputs) that passed
    under a set of flags. A hit under a superset of the requested flags also counts: flags only
    ever add restrictions, so a spend valid under more rules is valid under fewer.
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
        e.txid = tx.txid
        e.input_index = index
        raise


class ScriptExecutionCache:
    """Bounded memory of transactions whose scripts all passed, keyed by a salted hash of the
    wtxid and the spent outputs, with the flag sets they passed under. Thread-safe."""

    __slots__ = ("max_entries", "_salt", "_map", "_lock")

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._salt = os.urandom(16)
        self._map: dict[bytes, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def key(self, tx: Transaction, spent_outputs: Sequence[TxOut]) -> bytes:
        h = _sha256(self._salt)
        h.update(tx.wtxid)
        for o in spent_outputs:
            h.update(o.value.to_bytes(8, "little", signed=True))
            h.update(len(o.script_pubkey).to_bytes(4, "little"))
            h.update(o.script_pubkey)
        return h.digest()

    def contains(self, key: bytes, flags: int) -> bool:
        seen = self._map.get(key)
        if seen is None:
            return False
        for f in seen:
            if f & flags == flags:
                return True
        return False

    def add(self, key: bytes, flags: int) -> None:
        with self._lock:
            m = self._map
            seen = m.get(key, ())
            if flags in seen:
                return
            if key not in m and len(m) >= self.max_entries:
                for k in list(m)[: max(1, self.max_entries // 8)]:
                    del m[k]
            m[key] = seen + (flags,)

    def clear(self) -> None:
        self._map.clear()

    def __len__(self) -> int:
        return len(self._map)


# The process-wide default, used by verify_transaction and ScriptCheckPool.
SCRIPT_EXECUTION_CACHE = ScriptExecutionCache()

def verify_transaction(
    tx: Transaction,
    spent_outputs: Sequence[TxOut],
    flags: int,
    *,
    cache: ScriptExecutionCache | None = SCRIPT_EXECUTION_CACHE,
    sigcache: SignatureCache | None = SIGNATURE_CACHE,
    store: bool = True,
) -> None:
    """Verify every input of `tx` under `flags`. Raises ScriptError for the first failing input
    (with .txid and .input_index). With `cache`, a transaction already verified under the same
    or stricter flags is accepted at once, and a success is remembered. A coinbase spends
    nothing and has no scripts to check."""
    if tx.is_coinbase():
        return
    if len(spent_outputs) != len(tx.vin):
        raise ValueError("spent_outputs must have one entry per input")
    key = None
    if cache is not None:
        key = cache.key(tx, spent_outputs)
        if cache.contains(key, flags):
            return
    txdata = PrecomputedTxData(tx, spent_outputs)
    for i in range(len(tx.vin)):
        verify_input(tx, i, spent_outputs, flags, txdata, sigcache=sigcache, store=store)
    if cache is not None and key is not None:
        cache.add(key, flags)
