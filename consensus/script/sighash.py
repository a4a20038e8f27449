"""Signature hashes: legacy, BIP143 (segwit v0) and BIP341/342 (taproot), with per-transaction
precomputation.

All three are usable by a wallet to sign (legacy_sighash, segwit_v0_sighash, taproot_sighash)
and by the interpreter to verify. PrecomputedTxData holds everything that is the same for every
input of a transaction (BIP143 hashPrevouts/hashSequence/hashOutputs, BIP341 sha_prevouts/
sha_amounts/sha_scriptpubkeys/sha_sequences/sha_outputs, the legacy serialization pieces),
each computed on first use and then reused by the other inputs.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from consensus.hashes import sha256d as _sha256d
from consensus.hashes import tagged_hasher
from consensus.script.script import op_end
from consensus.serialize import compact_size, var_bytes
from consensus.tx import Transaction, TxOut

SIGHASH_DEFAULT = 0x00  # taproot only: no hash-type byte, same as ALL
SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_ANYONECANPAY = 0x80

SIGVERSION_BASE = 0
SIGVERSION_WITNESS_V0 = 1
SIGVERSION_TAPROOT = 2
SIGVERSION_TAPSCRIPT = 3

# Legacy SIGHASH_SINGLE with no matching output signs this constant (a historic bug).
SIGHASH_ONE = b"\x01" + b"\x00" * 31

_sha256 = hashlib.sha256
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_pack_u32 = _U32.pack
_pack_i64 = _I64.pack
_OP_CODESEPARATOR = 0xAB
_TAPSIGHASH = tagged_hasher("TapSighash")


class PrecomputedTxData:
    """Per-transaction sighash material, computed lazily and shared by all inputs.

    spent_outputs (one TxOut per input, in order) is needed only for taproot signatures.
    The transaction must not change while this object is in use.
    """

    __slots__ = (
        "tx",
        "spent_outputs",
        "_prevouts",
        "_sequences",
        "_outputs_ser",
        "_sha_prevouts",
        "_sha_sequences",
        "_sha_outputs",
        "_sha_amounts",
        "_sha_scripts",
        "_hash_prevouts",
        "_hash_sequence",
        "_hash_outputs",
        "_legacy_head",
        "_legacy_tail",
    )

    def __init__(self, tx: Transaction, spent_outputs: Sequence[TxOut] | None = None) -> None:
        self.tx = tx
        if spent_outputs is not None and len(spent_outputs) != len(tx.vin):
            raise ValueError("spent_outputs must have one entry per input")
        self.spent_outputs = spent_outputs
        self._prevouts: list[bytes] | None = None
        self._sequences: list[bytes] | None = None
        self._outputs_ser: list[bytes] | None = None
        self._sha_prevouts: bytes | None = None
        self._sha_sequences: bytes | None = None
        self._sha_outputs: bytes | None = None
        self._sha_amounts: bytes | None = None
        self._sha_scripts: bytes | None = None
        self._hash_prevouts: bytes | None = None
        self._hash_sequence: bytes | None = None
        self._hash_outputs: bytes | None = None
        self._legacy_head: bytes | None = None
        self._legacy_tail: bytes | None = None

    # -- serialized pieces -------------------------------------------------------------------

    def prevouts(self) -> list[bytes]:
        p = self._prevouts
        if p is None:
            p = self._prevouts = [i.prevout.hash + _pack_u32(i.prevout.n) for i in self.tx.vin]
        return p

    def sequences(self) -> list[bytes]:
        s = self._sequences
        if s is None:
            s = self._sequences = [_pack_u32(i.sequence) for i in self.tx.vin]
        return s

    def outputs_ser(self) -> list[bytes]:
        o = self._outputs_ser
        if o is None:
            o = self._outputs_ser = [out.serialize() for out in self.tx.vout]
        return o

    # -- single SHA-256 (BIP341) and double SHA-256 (BIP143) ----------------------------------

    def sha_prevouts(self) -> bytes:
        h = self._sha_prevouts
        if h is None:
            h = self._sha_prevouts = _sha256(b"".join(self.prevouts())).digest()
        return h

    def sha_sequences(self) -> bytes:
        h = self._sha_sequences
        if h is None:
            h = self._sha_sequences = _sha256(b"".join(self.sequences())).digest()
        return h

    def sha_outputs(self) -> bytes:
        h = self._sha_outputs
        if h is None:
            h = self._sha_outputs = _sha256(b"".join(self.outputs_ser())).digest()
        return h

    def _need_spent(self) -> Sequence[TxOut]:
        if self.spent_outputs is None:
            raise ValueError("taproot signature hashes need the spent outputs")
        return self.spent_outputs

    def sha_amounts(self) -> bytes:
        h = self._sha_amounts
        if h is None:
            spent = self._need_spent()
            h = self._sha_amounts = _sha256(b"".join(_pack_i64(o.value) for o in spent)).digest()
        return h

    def sha_scriptpubkeys(self) -> bytes:
        h = self._sha_scripts
        if h is None:
            spent = self._need_spent()
            data = b"".join(var_bytes(o.script_pubkey) for o in spent)
            h = self._sha_scripts = _sha256(data).digest()
        return h

    def hash_prevouts(self) -> bytes:
        h = self._hash_prevouts
        if h is None:
            h = self._hash_prevouts = _sha256(self.sha_prevouts()).digest()
        return h

    def hash_sequence(self) -> bytes:
        h = self._hash_sequence
        if h is None:
            h = self._hash_sequence = _sha256(self.sha_sequences()).digest()
        return h

    def hash_outputs(self) -> bytes:
        h = self._hash_outputs
        if h is None:
            h = self._hash_outputs = _sha256(self.sha_outputs()).digest()
        return h

    # -- legacy SIGHASH_ALL pieces -------------------------------------------------------------

    def legacy_all_parts(self) -> tuple[bytes, bytes]:
        """(version || input count, output count || outputs || locktime) for SIGHASH_ALL."""
        head = self._legacy_head
        if head is None:
            tx = self.tx
            head = self._legacy_head = _pack_u32(tx.version) + compact_size(len(tx.vin))
            outs = self.outputs_ser()
            self._legacy_tail = (
                compact_size(len(outs)) + b"".join(outs) + _pack_u32(tx.locktime)
            )
        return head, self._legacy_tail  # type: ignore[return-value]


# -- legacy ----------------------------------------------------------------------------------


def serialize_script_code(script_code: bytes) -> bytes:
    """The scriptCode as legacy sighashes serialize it: OP_CODESEPARATORs removed, length first.

    Mirrors Core exactly, including its treatment of a truncated final push (the bytes up to
    where parsing stopped are written, the length counts the whole script).
    """
    end = len(script_code)
    pieces = []
    n_seps = 0
    pc = 0
    begin = 0
    while True:
        ok, nxt = op_end(script_code, pc, end)
        if not ok:
            break
        if script_code[pc] == _OP_CODESEPARATOR:
            n_seps += 1
            pieces.append(script_code[begin:pc])
            begin = nxt
        pc = nxt
    if begin != end:
        pieces.append(script_code[begin:nxt])
    return compact_size(end - n_seps) + b"".join(pieces)


def legacy_sighash(
    tx: Transaction,
    index: int,
    script_code: bytes,
    hash_type: int,
    txdata: PrecomputedTxData | None = None,
) -> bytes:
    """The original signature hash (Core's SignatureHash for SigVersion::BASE).

    script_code must already have had FindAndDelete applied where the interpreter does so.
    hash_type is the full 32-bit value serialized at the end (the signature's last byte when
    verifying). Returns the 32-byte digest that is signed.
    """
    if not 0 <= index < len(tx.vin):
        raise IndexError("input index out of range")
    if hash_type & 0x1F == SIGHASH_SINGLE and index >= len(tx.vout):
        return SIGHASH_ONE
    return legacy_sighash_serialized_code(
        tx, index, serialize_script_code(script_code), hash_type, txdata
    )


def legacy_sighash_serialized_code(
    tx: Transaction,
    index: int,
    code: bytes,
    hash_type: int,
    txdata: PrecomputedTxData | None = None,
) -> bytes:
    """legacy_sighash with the scriptCode already in its serialized form (length-prefixed,
    OP_CODESEPARATORs removed): lets the interpreter reuse it across signatures."""
    vin = tx.vin
    base = hash_type & 0x1F
    single = base == SIGHASH_SINGLE
    none = base == SIGHASH_NONE
    acp = hash_type & SIGHASH_ANYONECANPAY
    if single and index >= len(tx.vout):
        return SIGHASH_ONE
    if txdata is None:
        txdata = PrecomputedTxData(tx)
    ht = _pack_u32(hash_type & 0xFFFFFFFF)
    prevouts = txdata.prevouts()
    sequences = txdata.sequences()
    if not (single or none or acp):
        head, tail = txdata.legacy_all_parts()
        parts = [head]
        for j in range(len(vin)):
            parts.append(prevouts[j])
            if j == index:
                parts.append(code)
                parts.append(sequences[j])
            else:
                parts.append(b"\x00")
                parts.append(sequences[j])
        parts.append(tail)
        parts.append(ht)
        return _sha256d(b"".join(parts))

    parts = [_pack_u32(tx.version)]
    if acp:
        parts.append(b"\x01")
        parts.append(prevouts[index])
        parts.append(code)
        parts.append(sequences[index])
    else:
        parts.append(compact_size(len(vin)))
        zero_seq = single or none
        for j in range(len(vin)):
            parts.append(prevouts[j])
            if j == index:
                parts.append(code)
                parts.append(sequences[j])
            else:
                parts.append(b"\x00")
                parts.append(b"\x00\x00\x00\x00" if zero_seq else sequences[j])
    if none:
        parts.append(b"\x00")
    elif single:
        parts.append(compact_size(index + 1))
        # Outputs before ours are blanked: value -1, empty script.
        parts.append(b"\xff\xff\xff\xff\xff\xff\xff\xff\x00" * index)
        parts.append(txdata.outputs_ser()[index])
    else:
        parts.append(compact_size(len(tx.vout)))
        parts.extend(txdata.outputs_ser())
    parts.append(_pack_u32(tx.locktime))
    parts.append(ht)
    return _sha256d(b"".join(parts))


# -- BIP143 ----------------------------------------------------------------------------------


def segwit_v0_sighash(
    tx: Transaction,
    index: int,
    script_code: bytes,
    amount: int,
    hash_type: int,
    txdata: PrecomputedTxData | None = None,
) -> bytes:
    """BIP143 signature hash for witness v0 (P2WPKH: pass the implied P2PKH script as code)."""
    if not 0 <= index < len(tx.vin):
        raise IndexError("input index out of range")
    if txdata is None:
        txdata = PrecomputedTxData(tx)
    base = hash_type & 0x1F
    acp = hash_type & SIGHASH_ANYONECANPAY
    zero = b"\x00" * 32
    hash_prevouts = zero if acp else txdata.hash_prevouts()
    if acp or base == SIGHASH_SINGLE or base == SIGHASH_NONE:
        hash_sequence = zero
    else:
        hash_sequence = txdata.hash_sequence()
    if base != SIGHASH_SINGLE and base != SIGHASH_NONE:
        hash_outputs = txdata.hash_outputs()
    elif base == SIGHASH_SINGLE and index < len(tx.vout):
        hash_outputs = _sha256d(txdata.outputs_ser()[index])
    else:
        hash_outputs = zero
    txin = tx.vin[index]
    return _sha256d(
        b"".join(
            (
                _pack_u32(tx.version),
                hash_prevouts,
                hash_sequence,
                txdata.prevouts()[index],
                compact_size(len(script_code)),
                script_code,
                _pack_i64(amount),
                _pack_u32(txin.sequence),
                hash_outputs,
                _pack_u32(tx.locktime),
                _pack_u32(hash_type & 0xFFFFFFFF),
            )
        )
    )


# -- BIP341 / BIP342 -------------------------------------------------------------------------


def taproot_sighash_or_none(
    txdata: PrecomputedTxData,
    index: int,
    hash_type: int,
    sigversion: int = SIGVERSION_TAPROOT,
    annex_hash: bytes | None = None,
    tapleaf_hash: bytes | None = None,
    codesep_pos: int = 0xFFFFFFFF,
) -> bytes | None:
    """BIP341 SigMsg hashed with the TapSighash tag; None where Core's SignatureHashSchnorr
    fails (undefined hash type, or SIGHASH_SINGLE without a matching output)."""
    if not (hash_type <= 0x03 or 0x81 <= hash_type <= 0x83):
        return None
    tx = txdata.tx
    output_type = SIGHASH_ALL if hash_type == SIGHASH_DEFAULT else hash_type & 0x03
    acp = hash_type & SIGHASH_ANYONECANPAY
    if output_type == SIGHASH_SINGLE and index >= len(tx.vout):
        return None
    ext_flag = 1 if sigversion == SIGVERSION_TAPSCRIPT else 0
    parts = [
        b"\x00",  # epoch
        bytes((hash_type,)),
        _pack_u32(tx.version),
        _pack_u32(tx.locktime),
    ]
    if not acp:
        parts.append(txdata.sha_prevouts())
        parts.append(txdata.sha_amounts())
        parts.append(txdata.sha_scriptpubkeys())
        parts.append(txdata.sha_sequences())
    if output_type == SIGHASH_ALL:
        parts.append(txdata.sha_outputs())
    parts.append(bytes(((ext_flag << 1) | (1 if annex_hash is not None else 0),)))
    if acp:
        spent = txdata._need_spent()[index]
        parts.append(txdata.prevouts()[index])
        parts.append(spent.serialize())
        parts.append(txdata.sequences()[index])
    else:
        parts.append(_pack_u32(index))
    if annex_hash is not None:
        parts.append(annex_hash)
    if output_type == SIGHASH_SINGLE:
        parts.append(_sha256(txdata.outputs_ser()[index]).digest())
    if sigversion == SIGVERSION_TAPSCRIPT:
        if tapleaf_hash is None:
            raise ValueError("tapscript signature hashes need the tapleaf hash")
        parts.append(tapleaf_hash)
        parts.append(b"\x00")  # key_version 0
        parts.append(_pack_u32(codesep_pos))
    h = _TAPSIGHASH.copy()
    h.update(b"".join(parts))
    return h.digest()


def annex_hash(annex: bytes) -> bytes:
    """sha256 of the annex serialized with its length prefix (BIP341)."""
    return _sha256(compact_size(len(annex)) + annex).digest()


def taproot_sighash(
    tx: Transaction,
    index: int,
    spent_outputs: Sequence[TxOut] | PrecomputedTxData,
    hash_type: int = SIGHASH_DEFAULT,
    *,
    annex: bytes | None = None,
    leaf_hash: bytes | None = None,
    codesep_pos: int = 0xFFFFFFFF,
) -> bytes:
    """BIP341 signature hash for a key-path spend, or BIP342 for a script-path spend when
    leaf_hash is given. Raises ValueError for an undefined hash type or SIGHASH_SINGLE without
    a matching output (such signatures can never be valid)."""
    if isinstance(spent_outputs, PrecomputedTxData):
        txdata = spent_outputs
    else:
        txdata = PrecomputedTxData(tx, spent_outputs)
    if not 0 <= index < len(tx.vin):
        raise IndexError("input index out of range")
    sigversion = SIGVERSION_TAPROOT if leaf_hash is None else SIGVERSION_TAPSCRIPT
    h = taproot_sighash_or_none(
        txdata,
        index,
        hash_type,
        sigversion,
        annex_hash(annex) if annex is not None else None,
        leaf_hash,
        codesep_pos,
    )
    if h is None:
        raise ValueError(f"hash type {hash_type:#x} cannot be signed for input {index}")
    return h
