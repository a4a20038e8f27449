"""Partially Signed Bitcoin Transactions: version 0 (BIP174) and version 2 (BIP370), with the
Taproot fields of BIP371, the MuSig2 fields of BIP373, hash preimages and proprietary records.

One model for both versions, as Core keeps it: the transaction is the sum of the global
fields (tx version, fallback locktime) and each input's outpoint, sequence and required
locktimes and each output's amount and script; version 0 serializes it as the global unsigned
transaction, version 2 field by field. Serialization follows Core's order, so a PSBT read and
written again is the same bytes. Records not understood are kept (`unknown`, `proprietary`).

Parse errors raise PSBTError with Core's message. Signing and finalizing (a signing provider
and what each script type needs) follow the format, below.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from consensus.hashes import hash160
from consensus.script.sigcheck import is_valid_signature_encoding
from consensus.script.taproot import TAPROOT_CONTROL_MAX_NODE_COUNT, TAPROOT_LEAF_MASK, tapleaf_hash
from consensus.serialize import DeserializationError, Reader, compact_size
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from wallet.keys import (
    dummy_ecdsa_signature,
    is_fully_valid_pubkey,
    sign_digest,
    taproot_merkle_root,
)

MAGIC = b"psbt\xff"
SEQUENCE_FINAL = 0xFFFFFFFF
LOCKTIME_THRESHOLD = 500_000_000
MAX_MONEY = 21_000_000 * 100_000_000

# global
PSBT_GLOBAL_UNSIGNED_TX = 0x00
PSBT_GLOBAL_XPUB = 0x01
PSBT_GLOBAL_TX_VERSION = 0x02
PSBT_GLOBAL_FALLBACK_LOCKTIME = 0x03
PSBT_GLOBAL_INPUT_COUNT = 0x04
PSBT_GLOBAL_OUTPUT_COUNT = 0x05
PSBT_GLOBAL_TX_MODIFIABLE = 0x06
PSBT_GLOBAL_VERSION = 0xFB
PSBT_GLOBAL_PROPRIETARY = 0xFC
# input
PSBT_IN_NON_WITNESS_UTXO = 0x00
PSBT_IN_WITNESS_UTXO = 0x01
PSBT_IN_PARTIAL_SIG = 0x02
PSBT_IN_SIGHASH_TYPE = 0x03
PSBT_IN_REDEEM_SCRIPT = 0x04
PSBT_IN_WITNESS_SCRIPT = 0x05
PSBT_IN_BIP32_DERIVATION = 0x06
PSBT_IN_FINAL_SCRIPTSIG = 0x07
PSBT_IN_FINAL_SCRIPTWITNESS = 0x08
PSBT_IN_RIPEMD160 = 0x0A
PSBT_IN_SHA256 = 0x0B
PSBT_IN_HASH160 = 0x0C
PSBT_IN_HASH256 = 0x0D
PSBT_IN_PREVIOUS_TXID = 0x0E
PSBT_IN_OUTPUT_INDEX = 0x0F
PSBT_IN_SEQUENCE = 0x10
PSBT_IN_REQUIRED_TIME_LOCKTIME = 0x11
PSBT_IN_REQUIRED_HEIGHT_LOCKTIME = 0x12
PSBT_IN_TAP_KEY_SIG = 0x13
PSBT_IN_TAP_SCRIPT_SIG = 0x14
PSBT_IN_TAP_LEAF_SCRIPT = 0x15
PSBT_IN_TAP_BIP32_DERIVATION = 0x16
PSBT_IN_TAP_INTERNAL_KEY = 0x17
PSBT_IN_TAP_MERKLE_ROOT = 0x18
PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS = 0x1A
PSBT_IN_MUSIG2_PUB_NONCE = 0x1B
PSBT_IN_MUSIG2_PARTIAL_SIG = 0x1C
PSBT_IN_PROPRIETARY = 0xFC
# output
PSBT_OUT_REDEEM_SCRIPT = 0x00
PSBT_OUT_WITNESS_SCRIPT = 0x01
PSBT_OUT_BIP32_DERIVATION = 0x02
PSBT_OUT_AMOUNT = 0x03
PSBT_OUT_SCRIPT = 0x04
PSBT_OUT_TAP_INTERNAL_KEY = 0x05
PSBT_OUT_TAP_TREE = 0x06
PSBT_OUT_TAP_BIP32_DERIVATION = 0x07
PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS = 0x08
PSBT_OUT_PROPRIETARY = 0xFC

PSBT_HIGHEST_VERSION = 2


class PSBTError(ValueError):
    """A PSBT that does not parse, or records that cannot be combined."""


Origin = tuple[bytes, tuple[int, ...]]  # (master fingerprint, path)
Proprietary = tuple[bytes, int, bytes]  # (identifier, subtype, value), by the whole key


def _ser_origin(origin: Origin) -> bytes:
    fp, path = origin
    return fp + b"".join(i.to_bytes(4, "little") for i in path)


def _origin_of(value: bytes) -> Origin:
    if len(value) % 4 or not value:
        raise PSBTError("Invalid length for HD key path")
    return value[:4], tuple(int.from_bytes(value[i:i + 4], "little")
                            for i in range(4, len(value), 4))


def _ser_witness(stack: list[bytes]) -> bytes:
    return compact_size(len(stack)) + b"".join(compact_size(len(x)) + x for x in stack)


def _kv(key_type: int, key_data: bytes, value: bytes) -> bytes:
    key = compact_size(key_type) + key_data
    return compact_size(len(key)) + key + compact_size(len(value)) + value


def _raw_kv(key: bytes, value: bytes) -> bytes:
    return compact_size(len(key)) + key + compact_size(len(value)) + value


def _u32(n: int) -> bytes:
    return (n & 0xFFFFFFFF).to_bytes(4, "little")


def _tap_origin_value(leaves: list[bytes], origin: Origin) -> bytes:
    return compact_size(len(leaves)) + b"".join(sorted(leaves)) + _ser_origin(origin)


# -- records ---------------------------------------------------------------------------------


@dataclass
class PSBTInput:
    prev_txid: bytes = b"\x00" * 32
    prev_out: int = 0
    sequence: int | None = None
    time_locktime: int | None = None
    height_locktime: int | None = None
    non_witness_utxo: Transaction | None = None
    witness_utxo: TxOut | None = None
    partial_sigs: dict[bytes, bytes] = field(default_factory=dict)  # pubkey -> signature
    sighash_type: int | None = None
    redeem_script: bytes | None = None
    witness_script: bytes | None = None
    bip32_derivs: dict[bytes, Origin] = field(default_factory=dict)
    final_script_sig: bytes | None = None
    final_script_witness: list[bytes] | None = None
    ripemd160_preimages: dict[bytes, bytes] = field(default_factory=dict)
    sha256_preimages: dict[bytes, bytes] = field(default_factory=dict)
    hash160_preimages: dict[bytes, bytes] = field(default_factory=dict)
    hash256_preimages: dict[bytes, bytes] = field(default_factory=dict)
    tap_key_sig: bytes | None = None
    tap_script_sigs: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)
    tap_scripts: dict[tuple[bytes, int], set[bytes]] = field(default_factory=dict)
    tap_bip32_derivs: dict[bytes, tuple[list[bytes], Origin]] = field(default_factory=dict)
    tap_internal_key: bytes | None = None
    tap_merkle_root: bytes | None = None
    musig2_participants: dict[bytes, list[bytes]] = field(default_factory=dict)
    musig2_pubnonces: dict[tuple[bytes, bytes], dict[bytes, bytes]] = field(default_factory=dict)
    musig2_partial_sigs: dict[tuple[bytes, bytes], dict[bytes, bytes]] = field(
        default_factory=dict)
    proprietary: dict[bytes, Proprietary] = field(default_factory=dict)
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def finalized(self) -> bool:
        return bool(self.final_script_sig) or bool(self.final_script_witness)

    def has_signatures(self) -> bool:
        return (self.finalized or bool(self.partial_sigs) or bool(self.tap_key_sig)
                or bool(self.tap_script_sigs) or bool(self.musig2_partial_sigs))

    def utxo(self, prevout_n: int | None = None) -> TxOut | None:
        """The output this input spends: from non_witness_utxo (checked against the
        outpoint), else witness_utxo."""
        n = self.prev_out if prevout_n is None else prevout_n
        if self.non_witness_utxo is not None:
            if n >= len(self.non_witness_utxo.vout) or self.non_witness_utxo.txid != \
                    self.prev_txid:
                return None
            return self.non_witness_utxo.vout[n]
        return self.witness_utxo

    def clear_signing_data(self) -> None:
        """What the finalizer drops once the final scripts are there (Core keeps the
        UTXOs, the finals and the records it does not use to sign)."""
        self.partial_sigs.clear()
        self.bip32_derivs.clear()
        self.redeem_script = self.witness_script = None

    def serialize(self, version: int) -> bytes:
        out = []
        if self.non_witness_utxo is not None:
            out.append(_kv(PSBT_IN_NON_WITNESS_UTXO, b"",
                           self.non_witness_utxo.serialize(witness=False)))
        if self.witness_utxo is not None:
            out.append(_kv(PSBT_IN_WITNESS_UTXO, b"", self.witness_utxo.serialize()))
        if not self.finalized:
            for pk, sig in sorted(self.partial_sigs.items(), key=lambda kv: hash160(kv[0])):
                out.append(_kv(PSBT_IN_PARTIAL_SIG, pk, sig))
            if self.sighash_type is not None:
                out.append(_kv(PSBT_IN_SIGHASH_TYPE, b"", _u32(self.sighash_type)))
            if self.redeem_script:
                out.append(_kv(PSBT_IN_REDEEM_SCRIPT, b"", self.redeem_script))
            if self.witness_script:
                out.append(_kv(PSBT_IN_WITNESS_SCRIPT, b"", self.witness_script))
            for pk, origin in sorted(self.bip32_derivs.items()):
                out.append(_kv(PSBT_IN_BIP32_DERIVATION, pk, _ser_origin(origin)))
            for t, d in ((PSBT_IN_RIPEMD160, self.ripemd160_preimages),
                         (PSBT_IN_SHA256, self.sha256_preimages),
                         (PSBT_IN_HASH160, self.hash160_preimages),
                         (PSBT_IN_HASH256, self.hash256_preimages)):
                for h, pre in sorted(d.items()):
                    out.append(_kv(t, h, pre))
            if self.tap_key_sig:
                out.append(_kv(PSBT_IN_TAP_KEY_SIG, b"", self.tap_key_sig))
            for (x, leaf), sig in sorted(self.tap_script_sigs.items()):
                out.append(_kv(PSBT_IN_TAP_SCRIPT_SIG, x + leaf, sig))
            for (script, ver), cbs in sorted(self.tap_scripts.items()):
                for cb in sorted(cbs, key=lambda c: (len(c), c)):
                    out.append(_kv(PSBT_IN_TAP_LEAF_SCRIPT, cb, script + bytes((ver,))))
            for x, (leaves, origin) in sorted(self.tap_bip32_derivs.items()):
                out.append(_kv(PSBT_IN_TAP_BIP32_DERIVATION, x, _tap_origin_value(leaves,
                                                                                   origin)))
            if self.tap_internal_key:
                out.append(_kv(PSBT_IN_TAP_INTERNAL_KEY, b"", self.tap_internal_key))
            if self.tap_merkle_root:
                out.append(_kv(PSBT_IN_TAP_MERKLE_ROOT, b"", self.tap_merkle_root))
            for agg, parts in sorted(self.musig2_participants.items()):
                out.append(_kv(PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS, agg, b"".join(parts)))
            for t, d in ((PSBT_IN_MUSIG2_PUB_NONCE, self.musig2_pubnonces),
                         (PSBT_IN_MUSIG2_PARTIAL_SIG, self.musig2_partial_sigs)):
                for (agg, leaf), per in sorted(d.items()):
                    for part, value in sorted(per.items()):
                        out.append(_kv(t, part + agg + leaf, value))
        if self.final_script_sig:
            out.append(_kv(PSBT_IN_FINAL_SCRIPTSIG, b"", self.final_script_sig))
        if self.final_script_witness:
            out.append(_kv(PSBT_IN_FINAL_SCRIPTWITNESS, b"",
                           _ser_witness(self.final_script_witness)))
        if version >= 2:
            out.append(_kv(PSBT_IN_PREVIOUS_TXID, b"", self.prev_txid))
            out.append(_kv(PSBT_IN_OUTPUT_INDEX, b"", _u32(self.prev_out)))
            for t, v in ((PSBT_IN_SEQUENCE, self.sequence),
                         (PSBT_IN_REQUIRED_TIME_LOCKTIME, self.time_locktime),
                         (PSBT_IN_REQUIRED_HEIGHT_LOCKTIME, self.height_locktime)):
                if v is not None:
                    out.append(_kv(t, b"", _u32(v)))
        for k, (_, _, v) in sorted(self.proprietary.items()):
            out.append(_raw_kv(k, v))
        for k, v in sorted(self.unknown.items()):
            out.append(_raw_kv(k, v))
        return b"".join(out) + b"\x00"

    def merge(self, other: PSBTInput) -> None:
        """Core's PSBTInput::Merge: take what this one lacks."""
        if self.non_witness_utxo is None:
            self.non_witness_utxo = other.non_witness_utxo
        if self.witness_utxo is None:
            self.witness_utxo = other.witness_utxo
        for d, o in ((self.partial_sigs, other.partial_sigs),
                     (self.ripemd160_preimages, other.ripemd160_preimages),
                     (self.sha256_preimages, other.sha256_preimages),
                     (self.hash160_preimages, other.hash160_preimages),
                     (self.hash256_preimages, other.hash256_preimages),
                     (self.bip32_derivs, other.bip32_derivs),
                     (self.proprietary, other.proprietary),
                     (self.unknown, other.unknown),
                     (self.tap_script_sigs, other.tap_script_sigs),
                     (self.tap_scripts, other.tap_scripts),
                     (self.tap_bip32_derivs, other.tap_bip32_derivs),
                     (self.musig2_participants, other.musig2_participants)):
            for k, v in o.items():
                d.setdefault(k, v)
        for mine, theirs in ((self.musig2_pubnonces, other.musig2_pubnonces),
                             (self.musig2_partial_sigs, other.musig2_partial_sigs)):
            for k, per in theirs.items():
                target = mine.setdefault(k, {})
                for p, v in per.items():
                    target.setdefault(p, v)
        for name in ("redeem_script", "witness_script", "final_script_sig",
                     "final_script_witness", "tap_key_sig", "tap_internal_key",
                     "tap_merkle_root", "sequence", "time_locktime", "height_locktime"):
            if getattr(self, name) in (None, b"", []) and getattr(other, name) not in (
                    None, b"", []):
                setattr(self, name, getattr(other, name))
        if self.sighash_type is None:
            self.sighash_type = other.sighash_type


@dataclass
class PSBTOutput:
    amount: int = 0
    script: bytes = b""
    redeem_script: bytes | None = None
    witness_script: bytes | None = None
    bip32_derivs: dict[bytes, Origin] = field(default_factory=dict)
    tap_internal_key: bytes | None = None
    tap_tree: list[tuple[int, int, bytes]] = field(default_factory=list)
    tap_bip32_derivs: dict[bytes, tuple[list[bytes], Origin]] = field(default_factory=dict)
    musig2_participants: dict[bytes, list[bytes]] = field(default_factory=dict)
    proprietary: dict[bytes, Proprietary] = field(default_factory=dict)
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    def serialize(self, version: int) -> bytes:
        out = []
        if self.redeem_script:
            out.append(_kv(PSBT_OUT_REDEEM_SCRIPT, b"", self.redeem_script))
        if self.witness_script:
            out.append(_kv(PSBT_OUT_WITNESS_SCRIPT, b"", self.witness_script))
        for pk, origin in sorted(self.bip32_derivs.items()):
            out.append(_kv(PSBT_OUT_BIP32_DERIVATION, pk, _ser_origin(origin)))
        if version >= 2:
            out.append(_kv(PSBT_OUT_AMOUNT, b"", self.amount.to_bytes(8, "little",
                                                                      signed=True)))
            out.append(_kv(PSBT_OUT_SCRIPT, b"", self.script))
        for k, (_, _, v) in sorted(self.proprietary.items()):
            out.append(_raw_kv(k, v))
        if self.tap_internal_key:
            out.append(_kv(PSBT_OUT_TAP_INTERNAL_KEY, b"", self.tap_internal_key))
        if self.tap_tree:
            value = b"".join(bytes((d, v)) + compact_size(len(s)) + s
                             for d, v, s in self.tap_tree)
            out.append(_kv(PSBT_OUT_TAP_TREE, b"", value))
        for x, (leaves, origin) in sorted(self.tap_bip32_derivs.items()):
            out.append(_kv(PSBT_OUT_TAP_BIP32_DERIVATION, x, _tap_origin_value(leaves,
                                                                                origin)))
        for agg, parts in sorted(self.musig2_participants.items()):
            out.append(_kv(PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS, agg, b"".join(parts)))
        for k, v in sorted(self.unknown.items()):
            out.append(_raw_kv(k, v))
        return b"".join(out) + b"\x00"

    def merge(self, other: PSBTOutput) -> None:
        for d, o in ((self.bip32_derivs, other.bip32_derivs),
                     (self.proprietary, other.proprietary),
                     (self.unknown, other.unknown),
                     (self.tap_bip32_derivs, other.tap_bip32_derivs),
                     (self.musig2_participants, other.musig2_participants)):
            for k, v in o.items():
                d.setdefault(k, v)
        for name in ("redeem_script", "witness_script", "tap_internal_key"):
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))
        if not self.tap_tree and other.tap_tree:
            self.tap_tree = list(other.tap_tree)


@dataclass
class PSBT:
    inputs: list[PSBTInput]
    outputs: list[PSBTOutput]
    psbt_version: int = 2
    tx_version: int = 2
    fallback_locktime: int | None = None
    tx_modifiable: int | None = None
    xpubs: dict[bytes, Origin] = field(default_factory=dict)  # 78-byte xpub -> origin
    proprietary: dict[bytes, Proprietary] = field(default_factory=dict)
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def from_tx(cls, tx: Transaction, version: int = 2) -> PSBT:
        """Core's PartiallySignedTransaction(tx, version): a blank PSBT of an unsigned tx."""
        if any(i.script_sig or i.witness for i in tx.vin):
            raise PSBTError("Inputs must not have scriptSigs and scriptWitnesses")
        inputs = [PSBTInput(i.prevout.hash, i.prevout.n, i.sequence) for i in tx.vin]
        outputs = [PSBTOutput(o.value, o.script_pubkey) for o in tx.vout]
        return cls(inputs, outputs, version, tx.version, tx.locktime)

    # -- the transaction -------------------------------------------------------------------

    def compute_locktime(self) -> int | None:
        """Core's ComputeTimeLock: the inputs' required locktimes (all of one kind), else the
        fallback; None when the inputs ask for both kinds."""
        if self.psbt_version >= 2:
            time_lock: int | None = 0
            height_lock: int | None = 0
            for i in self.inputs:
                if i.time_locktime is not None and i.height_locktime is None:
                    height_lock = None
                    if time_lock is None:
                        return None
                elif i.time_locktime is None and i.height_locktime is not None:
                    time_lock = None
                    if height_lock is None:
                        return None
                if i.time_locktime is not None and time_lock is not None:
                    time_lock = max(time_lock, i.time_locktime)
                if i.height_locktime is not None and height_lock is not None:
                    height_lock = max(height_lock, i.height_locktime)
            if height_lock:
                return height_lock
            if time_lock:
                return time_lock
        return self.fallback_locktime or 0

    def unsigned_tx(self) -> Transaction | None:
        locktime = self.compute_locktime()
        if locktime is None:
            return None
        vin = [TxIn(OutPoint(i.prev_txid, i.prev_out), b"",
                    SEQUENCE_FINAL if i.sequence is None else i.sequence) for i in self.inputs]
        vout = [TxOut(o.amount, o.script) for o in self.outputs]
        return Transaction(self.tx_version, vin, vout, locktime)

    @property
    def tx(self) -> Transaction:
        tx = self.unsigned_tx()
        if tx is None:
            raise PSBTError("PSBT is not valid: its inputs require conflicting locktimes")
        return tx

    def unique_id(self) -> bytes | None:
        """Core's GetUniqueID: the unsigned txid (sequences zeroed in version 2)."""
        tx = self.unsigned_tx()
        if tx is None:
            return None
        if self.psbt_version >= 2:
            for txin in tx.vin:
                txin.sequence = 0
        return tx.txid

    # -- encoding --------------------------------------------------------------------------

    def serialize(self) -> bytes:
        out = [MAGIC]
        if self.psbt_version < 2:
            out.append(_kv(PSBT_GLOBAL_UNSIGNED_TX, b"", self.tx.serialize(witness=False)))
        for xpub, origin in sorted(self.xpubs.items(), key=lambda kv: (kv[1], kv[0])):
            out.append(_kv(PSBT_GLOBAL_XPUB, xpub, _ser_origin(origin)))
        if self.psbt_version >= 2:
            out.append(_kv(PSBT_GLOBAL_TX_VERSION, b"", _u32(self.tx_version)))
            if self.fallback_locktime is not None:
                out.append(_kv(PSBT_GLOBAL_FALLBACK_LOCKTIME, b"",
                               _u32(self.fallback_locktime)))
            out.append(_kv(PSBT_GLOBAL_INPUT_COUNT, b"", compact_size(len(self.inputs))))
            out.append(_kv(PSBT_GLOBAL_OUTPUT_COUNT, b"", compact_size(len(self.outputs))))
            if self.tx_modifiable is not None:
                out.append(_kv(PSBT_GLOBAL_TX_MODIFIABLE, b"", bytes((self.tx_modifiable,))))
        if self.psbt_version > 0:
            out.append(_kv(PSBT_GLOBAL_VERSION, b"", _u32(self.psbt_version)))
        for k, (_, _, v) in sorted(self.proprietary.items()):
            out.append(_raw_kv(k, v))
        for k, v in sorted(self.unknown.items()):
            out.append(_raw_kv(k, v))
        out.append(b"\x00")
        out.extend(i.serialize(self.psbt_version) for i in self.inputs)
        out.extend(o.serialize(self.psbt_version) for o in self.outputs)
        return b"".join(out)

    def to_base64(self) -> str:
        return base64.b64encode(self.serialize()).decode()

    @classmethod
    def from_base64(cls, text: str) -> PSBT:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise PSBTError("TX decode failed invalid base64") from None
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: bytes) -> PSBT:
        try:
            return _parse(raw)
        except DeserializationError as err:
            raise PSBTError(f"TX decode failed {err}") from None
        except PSBTError as err:
            raise PSBTError(f"TX decode failed {err}") from None

    # -- roles -----------------------------------------------------------------------------

    def combine(self, other: PSBT) -> None:
        """Core's Merge; raises when the two are not of the same transaction."""
        mine, theirs = self.unique_id(), other.unique_id()
        if mine is None or theirs is None or mine != theirs \
                or self.psbt_version != other.psbt_version:
            raise PSBTError("PSBTs not compatible (different transactions)")
        for a, b in zip(self.inputs, other.inputs, strict=True):
            a.merge(b)
        for a, b in zip(self.outputs, other.outputs, strict=True):
            a.merge(b)
        for k, v in other.xpubs.items():
            self.xpubs.setdefault(k, v)  # one origin per xpub: the first one's
        if self.fallback_locktime is None:
            self.fallback_locktime = other.fallback_locktime
        if self.tx_modifiable is not None or other.tx_modifiable is not None:
            a, b = self.tx_modifiable or 0, other.tx_modifiable or 0
            self.tx_modifiable = (a & b & ~4) | ((a | b) & 4)
        for k, v in other.proprietary.items():
            self.proprietary.setdefault(k, v)
        for k, v in other.unknown.items():
            self.unknown.setdefault(k, v)

    def add_input(self, inp: PSBTInput) -> bool:
        """Core's AddInput for version 0 (joinpsbts): no duplicate outpoints; signatures of
        the added input are dropped."""
        if any(i.prev_txid == inp.prev_txid and i.prev_out == inp.prev_out
               for i in self.inputs):
            return False
        inp.partial_sigs = {}
        inp.final_script_sig = None
        inp.final_script_witness = None
        self.inputs.append(inp)
        return True

    def spent_outputs(self) -> list[TxOut] | None:
        outs = []
        for inp in self.inputs:
            u = inp.utxo()
            if u is None:
                return None
            outs.append(u)
        return outs

    def fee(self) -> int | None:
        outs = self.spent_outputs()
        if outs is None:
            return None
        return sum(o.value for o in outs) - sum(o.amount for o in self.outputs)

    def is_complete(self) -> bool:
        return all(i.finalized for i in self.inputs)

    def finalize(self) -> bool:
        """Finalize every input whose signatures are there; True when all are final."""
        return finalize_psbt(self)

    def extract(self, check: bool = True) -> Transaction:
        """The signed transaction (check: every input has its final scripts)."""
        if check and not self.is_complete():
            raise PSBTError("PSBT is not complete")
        tx = self.tx
        for txin, inp in zip(tx.vin, self.inputs, strict=True):
            txin.script_sig = inp.final_script_sig or b""
            txin.witness = list(inp.final_script_witness or [])
        tx.rehash()
        return tx


# -- parsing ---------------------------------------------------------------------------------


def _read_map(r: Reader, what: str) -> list[tuple[bytes, bytes]]:
    """One map's pairs (the value still to be parsed), duplicates refused as Core does."""
    pairs = []
    seen = set()
    while True:
        if not r.remaining():
            raise PSBTError(f"Separator is missing at the end of {what}")
        key = r.var_bytes()
        if not key:
            return pairs
        if key in seen:
            label = {"the global map": "global", "an input map": "input",
                     "an output map": "output"}[what]
            raise PSBTError(f'Duplicate Key, {label} key "{key.hex()}" already provided')
        seen.add(key)
        pairs.append((key, r.var_bytes()))


def _split_key(key: bytes) -> tuple[int, bytes]:
    r = Reader(key)
    t = r.compact_size(range_check=False)
    return t, bytes(key[len(key) - r.remaining():])


def _expect_key(name: str, key: bytes, size: int) -> None:
    if len(key) != size:
        raise PSBTError(f"Size of key was not {size} for the type {name}")


def _value_reader(value: bytes) -> Reader:
    return Reader(value)


def _end(r: Reader) -> None:
    if r.remaining():
        raise PSBTError("Size of value was not the stated size")


def _u32_value(value: bytes) -> int:
    r = Reader(value)
    n = r.u32()
    _end(r)
    return n


def _proprietary(kd: bytes, value: bytes) -> Proprietary:
    r = Reader(kd)
    ident = r.var_bytes()
    subtype = r.compact_size(range_check=False)
    return ident, subtype, value


def _parse(raw: bytes) -> PSBT:
    if raw[:5] != MAGIC:
        raise PSBTError("Invalid PSBT magic bytes")
    r = Reader(raw[5:])
    tx: Transaction | None = None
    psbt = PSBT([], [], psbt_version=0)
    explicit_version: int | None = None
    found = set()
    input_count = output_count = 0
    for key, value in _read_map(r, "the global map"):
        t, kd = _split_key(key)
        if t == PSBT_GLOBAL_UNSIGNED_TX:
            _expect_key("Global Unsigned TX", key, 1)
            tx = Transaction.from_bytes(value, allow_witness=False)
            if any(i.script_sig or i.witness for i in tx.vin):
                raise PSBTError("Unsigned tx does not have empty scriptSigs and scriptWitnesses.")
            psbt.tx_version = tx.version
            psbt.fallback_locktime = tx.locktime
            input_count, output_count = len(tx.vin), len(tx.vout)
        elif t == PSBT_GLOBAL_TX_VERSION:
            _expect_key("Global Transaction Version", key, 1)
            psbt.tx_version = _u32_value(value)
            found.add(t)
        elif t == PSBT_GLOBAL_FALLBACK_LOCKTIME:
            _expect_key("Global Fallback Locktime", key, 1)
            psbt.fallback_locktime = _u32_value(value)
            found.add(t)
        elif t in (PSBT_GLOBAL_INPUT_COUNT, PSBT_GLOBAL_OUTPUT_COUNT):
            _expect_key("Global Input Count" if t == PSBT_GLOBAL_INPUT_COUNT else
                        "Global Output Count", key, 1)
            vr = Reader(value)
            n = vr.compact_size()
            _end(vr)
            if t == PSBT_GLOBAL_INPUT_COUNT:
                input_count = n
            else:
                output_count = n
            found.add(t)
        elif t == PSBT_GLOBAL_TX_MODIFIABLE:
            _expect_key("Global TX Modifiable Flags", key, 1)
            if len(value) != 1:
                raise PSBTError("Size of value was not the stated size")
            psbt.tx_modifiable = value[0]
        elif t == PSBT_GLOBAL_XPUB:
            _expect_key("Global XPUB", key, 79)
            if not is_fully_valid_pubkey(kd[45:78]):
                raise PSBTError("Invalid pubkey")
            vr = Reader(value)
            origin = _origin_of(vr.read(len(value)))
            psbt.xpubs.setdefault(kd, origin)
        elif t == PSBT_GLOBAL_VERSION:
            _expect_key("Global PSBT Version", key, 1)
            explicit_version = _u32_value(value)
            if explicit_version > PSBT_HIGHEST_VERSION:
                raise PSBTError("Unsupported version number")
        elif t == PSBT_GLOBAL_PROPRIETARY:
            psbt.proprietary[key] = _proprietary(kd, value)
        else:
            psbt.unknown[key] = value
    version = explicit_version or 0
    psbt.psbt_version = version
    if version == 0:
        if tx is None:
            raise PSBTError("No unsigned transaction was provided")
        for t, name in ((PSBT_GLOBAL_TX_VERSION, "PSBT_GLOBAL_TX_VERSION"),
                        (PSBT_GLOBAL_FALLBACK_LOCKTIME, "PSBT_GLOBAL_FALLBACK_LOCKTIME"),
                        (PSBT_GLOBAL_INPUT_COUNT, "PSBT_GLOBAL_INPUT_COUNT"),
                        (PSBT_GLOBAL_OUTPUT_COUNT, "PSBT_GLOBAL_OUTPUT_COUNT")):
            if t in found:
                raise PSBTError(f"{name} is not allowed in PSBTv0")
        if psbt.tx_modifiable is not None:
            raise PSBTError("PSBT_GLOBAL_TX_MODIFIABLE is not allowed in PSBTv0")
    if version == 1:
        raise PSBTError("There is no PSBT version 1")
    if version == 2:
        for t, name in ((PSBT_GLOBAL_TX_VERSION, "PSBT_GLOBAL_TX_VERSION"),
                        (PSBT_GLOBAL_INPUT_COUNT, "PSBT_GLOBAL_INPUT_COUNT"),
                        (PSBT_GLOBAL_OUTPUT_COUNT, "PSBT_GLOBAL_OUTPUT_COUNT")):
            if t not in found:
                raise PSBTError(f"{name} is required in PSBTv2")
        if tx is not None:
            raise PSBTError("PSBT_GLOBAL_UNSIGNED_TX is not allowed in PSBTv2")
    for i in range(input_count):
        if not r.remaining():
            break
        inp = PSBTInput()
        if tx is not None:
            txin = tx.vin[i]
            inp.prev_txid, inp.prev_out, inp.sequence = (txin.prevout.hash, txin.prevout.n,
                                                         txin.sequence)
        _parse_input(inp, _read_map(r, "an input map"), version)
        if inp.non_witness_utxo is not None:
            if inp.non_witness_utxo.txid != inp.prev_txid:
                raise PSBTError("Non-witness UTXO does not match outpoint hash")
            if inp.prev_out >= len(inp.non_witness_utxo.vout):
                raise PSBTError("Input specifies output index that does not exist")
        psbt.inputs.append(inp)
    if len(psbt.inputs) != input_count:
        raise PSBTError("Inputs provided does not match the number of inputs in transaction.")
    for i in range(output_count):
        if not r.remaining():
            break
        out = PSBTOutput()
        if tx is not None:
            out.amount, out.script = tx.vout[i].value, tx.vout[i].script_pubkey
        _parse_output(out, _read_map(r, "an output map"), version)
        psbt.outputs.append(out)
    if len(psbt.outputs) != output_count:
        raise PSBTError("Outputs provided does not match the number of outputs in "
                        "transaction.")
    return psbt


def _pubkey_key(key: bytes, what: str) -> bytes:
    if len(key) not in (34, 66):
        raise PSBTError(f"Size of key was not the expected size for the type {what}")
    pk = key[1:]
    if not is_fully_valid_pubkey(pk):
        raise PSBTError("Invalid pubkey")
    return pk


def _tap_origin(value: bytes, what: str) -> tuple[list[bytes], Origin]:
    r = Reader(value)
    try:
        n = r.compact_size()
    except DeserializationError:
        n = len(value) + 1
    if n * 32 > r.remaining():
        raise PSBTError(f"{what} Taproot BIP32 keypath has an invalid length")
    leaves = sorted({r.read(32) for _ in range(n)})
    return leaves, _origin_of(r.read(r.remaining()))


def _musig_participants(kd: bytes, value: bytes, context: str) -> tuple[bytes, list[bytes]]:
    agg = kd[:33]
    if not is_fully_valid_pubkey(agg):
        raise PSBTError(f"{context} musig2 aggregate pubkey is invalid")
    parts = []
    for pos in range(0, len(value) - len(value) % 33, 33):
        pk = value[pos:pos + 33]
        if not is_fully_valid_pubkey(pk):
            raise PSBTError(f"{context} musig2 participant pubkey is invalid")
        parts.append(pk)
    if len(value) % 33:
        raise PSBTError(f"{context} musig2 participants pubkeys value size is not a multiple "
                        "of 33")
    return agg, parts


def _musig_ids(kd: bytes) -> tuple[bytes, bytes, bytes]:
    part, agg, leaf = kd[:33], kd[33:66], kd[66:]
    if not is_fully_valid_pubkey(agg):
        raise PSBTError("musig2 aggregate pubkey is invalid")
    if not is_fully_valid_pubkey(part):
        raise PSBTError("musig2 participant pubkey is invalid")
    return part, agg, leaf


def _not_in_v0(version: int, what: str) -> None:
    if version < 2:
        raise PSBTError(f"{what} is not allowed in PSBTv0")


def _parse_input(inp: PSBTInput, pairs: list[tuple[bytes, bytes]], version: int) -> None:
    found = set()
    for key, value in pairs:
        t, kd = _split_key(key)
        if t == PSBT_IN_NON_WITNESS_UTXO:
            _expect_key("Input Non-witness UTXO", key, 1)
            inp.non_witness_utxo = Transaction.from_bytes(value)
        elif t == PSBT_IN_WITNESS_UTXO:
            _expect_key("Input Witness UTXO", key, 1)
            vr = Reader(value)
            inp.witness_utxo = TxOut.deserialize(vr)
            _end(vr)
        elif t == PSBT_IN_PARTIAL_SIG:
            pk = _pubkey_key(key, "partial signature pubkey")
            if not value or not is_valid_signature_encoding(value) or not _strict_hashtype(
                    value):
                raise PSBTError("Signature is not a valid encoding")
            inp.partial_sigs[pk] = value
        elif t == PSBT_IN_SIGHASH_TYPE:
            _expect_key("Input Sighash Type", key, 1)
            inp.sighash_type = int.from_bytes(_u32_value(value).to_bytes(4, "little"),
                                              "little", signed=True)
        elif t == PSBT_IN_REDEEM_SCRIPT:
            _expect_key("Input redeemScript", key, 1)
            inp.redeem_script = value or None
        elif t == PSBT_IN_WITNESS_SCRIPT:
            _expect_key("Input witnessScript", key, 1)
            inp.witness_script = value or None
        elif t == PSBT_IN_BIP32_DERIVATION:
            pk = _pubkey_key(key, "BIP32 keypath")
            inp.bip32_derivs[pk] = _origin_of(value)
        elif t == PSBT_IN_FINAL_SCRIPTSIG:
            _expect_key("Input Final scriptSig", key, 1)
            inp.final_script_sig = value or None
        elif t == PSBT_IN_FINAL_SCRIPTWITNESS:
            _expect_key("Input Final scriptWitness", key, 1)
            vr = Reader(value)
            stack = [vr.var_bytes() for _ in range(vr.compact_size())]
            _end(vr)
            inp.final_script_witness = stack or None
        elif t in (PSBT_IN_RIPEMD160, PSBT_IN_SHA256, PSBT_IN_HASH160, PSBT_IN_HASH256):
            name, size, target = {
                PSBT_IN_RIPEMD160: ("Input RIPEMD160 Preimage", 21, inp.ripemd160_preimages),
                PSBT_IN_SHA256: ("Input SHA256 Preimage", 33, inp.sha256_preimages),
                PSBT_IN_HASH160: ("Input Hash160 Preimage", 21, inp.hash160_preimages),
                PSBT_IN_HASH256: ("Input Hash256 Preimage", 33, inp.hash256_preimages),
            }[t]
            _expect_key(name, key, size)
            target[kd] = value
        elif t == PSBT_IN_PREVIOUS_TXID:
            _expect_key("Input Previous TXID", key, 1)
            _not_in_v0(version, "Previous txid")
            if len(value) != 32:
                raise PSBTError("Size of value was not the stated size")
            inp.prev_txid = value
            found.add(t)
        elif t == PSBT_IN_OUTPUT_INDEX:
            _expect_key("Input Previous Output's Index", key, 1)
            _not_in_v0(version, "Previous output's index")
            inp.prev_out = _u32_value(value)
            found.add(t)
        elif t == PSBT_IN_SEQUENCE:
            _expect_key("Input Sequence", key, 1)
            _not_in_v0(version, "Sequence")
            inp.sequence = _u32_value(value)
        elif t == PSBT_IN_REQUIRED_TIME_LOCKTIME:
            _expect_key("Input Required Time Based Locktime", key, 1)
            _not_in_v0(version, "Required time based locktime")
            inp.time_locktime = _u32_value(value)
            if inp.time_locktime < LOCKTIME_THRESHOLD:
                raise PSBTError("Required time based locktime is invalid (less than "
                                "500000000)")
        elif t == PSBT_IN_REQUIRED_HEIGHT_LOCKTIME:
            _expect_key("Input Required Height Based Locktime", key, 1)
            _not_in_v0(version, "Required height based locktime")
            inp.height_locktime = _u32_value(value)
            if inp.height_locktime >= LOCKTIME_THRESHOLD:
                raise PSBTError("Required height based locktime is invalid (greater than or "
                                "equal to 500000000)")
            if inp.height_locktime == 0:
                raise PSBTError("Required height based locktime is invalid (0)")
        elif t == PSBT_IN_TAP_KEY_SIG:
            _expect_key("Input Taproot Key Path Signature", key, 1)
            if len(value) < 64:
                raise PSBTError("Input Taproot key path signature is shorter than 64 bytes")
            if len(value) > 65:
                raise PSBTError("Input Taproot key path signature is longer than 65 bytes")
            inp.tap_key_sig = value
        elif t == PSBT_IN_TAP_SCRIPT_SIG:
            _expect_key("Input Taproot Script Path Signature", key, 65)
            if len(value) < 64:
                raise PSBTError("Input Taproot script path signature is shorter than 64 bytes")
            if len(value) > 65:
                raise PSBTError("Input Taproot script path signature is longer than 65 bytes")
            inp.tap_script_sigs[(kd[:32], kd[32:])] = value
        elif t == PSBT_IN_TAP_LEAF_SCRIPT:
            if len(key) < 34:
                raise PSBTError("Input Taproot leaf script key is not at least 34 bytes")
            if (len(key) - 2) % 32:
                raise PSBTError("Input Taproot leaf script key's control block size is not "
                                "valid")
            if not value:
                raise PSBTError("Input Taproot leaf script must be at least 1 byte")
            inp.tap_scripts.setdefault((value[:-1], value[-1]), set()).add(kd)
        elif t == PSBT_IN_TAP_BIP32_DERIVATION:
            _expect_key("Input Taproot BIP32 Keypath", key, 33)
            inp.tap_bip32_derivs[kd] = _tap_origin(value, "Input")
        elif t == PSBT_IN_TAP_INTERNAL_KEY:
            _expect_key("Input Taproot Internal Key", key, 1)
            if len(value) != 32:
                raise PSBTError("Size of value was not the stated size")
            inp.tap_internal_key = value
        elif t == PSBT_IN_TAP_MERKLE_ROOT:
            _expect_key("Input Taproot Merkle Root", key, 1)
            if len(value) != 32:
                raise PSBTError("Size of value was not the stated size")
            inp.tap_merkle_root = value
        elif t == PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS:
            _expect_key("Input MuSig2 Participants Pubkeys", key, 34)
            agg, parts = _musig_participants(kd, value, "Input")
            inp.musig2_participants.setdefault(agg, parts)
        elif t == PSBT_IN_MUSIG2_PUB_NONCE:
            if len(key) not in (67, 99):
                raise PSBTError("Input musig2 pubnonce key is not expected size of 67 or 99 "
                                "bytes")
            part, agg, leaf = _musig_ids(kd)
            if len(value) != 66:
                raise PSBTError("Input musig2 pubnonce value is not 66 bytes")
            inp.musig2_pubnonces.setdefault((agg, leaf), {}).setdefault(part, value)
        elif t == PSBT_IN_MUSIG2_PARTIAL_SIG:
            if len(key) not in (67, 99):
                raise PSBTError("Input musig2 partial sig key is not expected size of 67 or 99 "
                                "bytes")
            part, agg, leaf = _musig_ids(kd)
            if len(value) != 32:
                raise PSBTError("Size of value was not the stated size")
            inp.musig2_partial_sigs.setdefault((agg, leaf), {}).setdefault(part, value)
        elif t == PSBT_IN_PROPRIETARY:
            inp.proprietary[key] = _proprietary(kd, value)
        else:
            inp.unknown[key] = value
    if version >= 2:
        if PSBT_IN_PREVIOUS_TXID not in found:
            raise PSBTError("Previous TXID is required in PSBTv2")
        if PSBT_IN_OUTPUT_INDEX not in found:
            raise PSBTError("Previous output's index is required in PSBTv2")


def _strict_hashtype(sig: bytes) -> bool:
    ht = sig[-1] & ~0x80
    return 1 <= ht <= 3


def check_tap_tree(tree: list[tuple[int, int, bytes]]) -> None:
    for depth, ver, _ in tree:
        if depth > TAPROOT_CONTROL_MAX_NODE_COUNT:
            raise PSBTError("Output Taproot tree has as leaf greater than Taproot maximum "
                            "depth")
        if ver & ~TAPROOT_LEAF_MASK:
            raise PSBTError("Output Taproot tree has a leaf with an invalid leaf version")
    try:
        taproot_merkle_root([(d, tapleaf_hash(s, v)) for d, v, s in tree])
    except ValueError:
        raise PSBTError("Output Taproot tree is malformed") from None


def _parse_output(out: PSBTOutput, pairs: list[tuple[bytes, bytes]], version: int) -> None:
    found = set()
    for key, value in pairs:
        t, kd = _split_key(key)
        if t == PSBT_OUT_REDEEM_SCRIPT:
            _expect_key("Output redeemScript", key, 1)
            out.redeem_script = value or None
        elif t == PSBT_OUT_WITNESS_SCRIPT:
            _expect_key("Output witnessScript", key, 1)
            out.witness_script = value or None
        elif t == PSBT_OUT_BIP32_DERIVATION:
            pk = _pubkey_key(key, "BIP32 keypath")
            out.bip32_derivs[pk] = _origin_of(value)
        elif t == PSBT_OUT_AMOUNT:
            _expect_key("Output Amount", key, 1)
            _not_in_v0(version, "Output amount")
            vr = Reader(value)
            out.amount = vr.i64()
            _end(vr)
            found.add(t)
        elif t == PSBT_OUT_SCRIPT:
            _expect_key("Output Script", key, 1)
            _not_in_v0(version, "Output script")
            out.script = value
            found.add(t)
        elif t == PSBT_OUT_TAP_INTERNAL_KEY:
            _expect_key("Output Taproot Internal Key", key, 1)
            if len(value) != 32:
                raise PSBTError("Size of value was not the stated size")
            out.tap_internal_key = value
        elif t == PSBT_OUT_TAP_TREE:
            _expect_key("Output Taproot Tree Key", key, 1)
            if not value:
                raise PSBTError("Output Taproot tree must not be empty")
            vr = Reader(value)
            tree = []
            while vr.remaining():
                depth, ver = vr.u8(), vr.u8()
                tree.append((depth, ver, vr.var_bytes()))
            check_tap_tree(tree)
            out.tap_tree = tree
        elif t == PSBT_OUT_TAP_BIP32_DERIVATION:
            _expect_key("Output Taproot BIP32 Keypath", key, 33)
            out.tap_bip32_derivs[kd] = _tap_origin(value, "Output")
        elif t == PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS:
            _expect_key("Output MuSig2 Participants Pubkeys", key, 34)
            agg, parts = _musig_participants(kd, value, "Output")
            out.musig2_participants.setdefault(agg, parts)
        elif t == PSBT_OUT_PROPRIETARY:
            out.proprietary[key] = _proprietary(kd, value)
        else:
            out.unknown[key] = value
    if version >= 2:
        if PSBT_OUT_AMOUNT not in found:
            raise PSBTError("Output amount is required in PSBTv2")
        if PSBT_OUT_SCRIPT not in found:
            raise PSBTError("Output script is required in PSBTv2")


# == signing and finalizing =================================================================
#
# Core's ProduceSignature/SignPSBTInput, written for this model: a SigData collects what is
# known of one input (signatures, scripts, keys and their origins, Taproot spend data) from
# the PSBT and a Provider, each script type takes what it needs, and the result is complete
# when the scripts it built verify. The same walk fills in scripts and key origins when no
# key can sign (the updater), and reports what is missing (analyzepsbt).

SIGHASH_DEFAULT = 0x00
SIGHASH_ALL = 0x01
SIGHASH_SINGLE = 0x03
SIGHASH_ANYONECANPAY = 0x80

SIGHASH_NAMES = {
    "DEFAULT": 0x00, "ALL": 0x01, "NONE": 0x02, "SINGLE": 0x03, "ALL|ANYONECANPAY": 0x81,
    "NONE|ANYONECANPAY": 0x82, "SINGLE|ANYONECANPAY": 0x83,
}


def sighash_name(ht: int) -> str:
    """Core's SighashToStr (an unknown value is shown as an empty string)."""
    for name, v in SIGHASH_NAMES.items():
        if v == ht & 0xFF:
            return name
    return ""


class SighashMismatch(PSBTError):
    """The sighash asked for is not the one the PSBT records for an input."""

    def __init__(self) -> None:
        super().__init__("Specified sighash value does not match value stored in PSBT")


class Provider:
    """Core's FlatSigningProvider, filled from descriptors: public keys and their origins,
    private keys, redeem/witness scripts and Taproot trees. hide_secret / hide_origin make it
    Core's HidingSigningProvider."""

    def __init__(self, hide_secret: bool = False, hide_origin: bool = False) -> None:
        from wallet.descriptors import SigningProvider

        self.flat = SigningProvider()
        self.secrets: dict[bytes, bytes] = {}  # hash160(pubkey) -> secret
        self.xonly_secrets: dict[bytes, bytes] = {}
        self.hide_secret = hide_secret
        self.hide_origin = hide_origin

    def add_descriptor(self, desc, pos: int = 0, private=None) -> None:  # noqa: ANN001
        """Expand desc at pos; private (the same descriptor with its private keys, or desc
        itself) gives the secrets."""
        self.flat.add_descriptor(desc, pos)
        src = private if private is not None else desc
        p = pos if src.is_range() else 0
        for k in _all_keys(src):
            secret = k.derive_secret(p)
            if secret is not None:
                self.add_secret(secret)

    def add_secret(self, secret: bytes) -> None:
        from wallet.keys import pubkey_from_secret

        for compressed in (True, False):
            pub = pubkey_from_secret(secret, compressed)
            self.secrets[hash160(pub)] = secret
            self.flat.pubkeys.setdefault(hash160(pub), pub)
        self.xonly_secrets[pubkey_from_secret(secret, True)[1:]] = secret

    def merge(self, other: Provider) -> None:
        self.flat.pubkeys.update(other.flat.pubkeys)
        self.flat.origins.update(other.flat.origins)
        self.flat.scripts.update(other.flat.scripts)
        self.flat.tr_trees.update(other.flat.tr_trees)
        self.secrets.update(other.secrets)
        self.xonly_secrets.update(other.xonly_secrets)

    def pubkey(self, keyid: bytes) -> bytes | None:
        return self.flat.pubkeys.get(keyid)

    def origin(self, keyid: bytes) -> Origin | None:
        return None if self.hide_origin else self.flat.origins.get(keyid)

    def origin_xonly(self, x: bytes) -> Origin | None:
        return None if self.hide_origin else self.flat.origin_of_xonly(x)

    def secret(self, keyid: bytes) -> bytes | None:
        return None if self.hide_secret else self.secrets.get(keyid)

    def secret_xonly(self, x: bytes) -> bytes | None:
        return None if self.hide_secret else self.xonly_secrets.get(x)

    def script(self, h160: bytes) -> bytes | None:
        return self.flat.scripts.get(h160)

    def tr_tree(self, output_key: bytes) -> tuple[bytes, list[tuple[int, bytes]]] | None:
        return self.flat.tr_trees.get(output_key)


def _all_keys(desc) -> list:  # noqa: ANN001
    keys = list(desc.keys)
    for s in desc.subs:
        keys.extend(_all_keys(s))
    return keys


EMPTY_PROVIDER = Provider()


@dataclass
class SigData:
    complete: bool = False
    witness: bool = False
    script_sig: bytes = b""
    script_witness: list[bytes] = field(default_factory=list)
    signatures: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # keyid ->
    redeem_script: bytes | None = None
    witness_script: bytes | None = None
    misc_pubkeys: dict[bytes, tuple[bytes, Origin]] = field(default_factory=dict)
    tap_key_sig: bytes | None = None
    tap_script_sigs: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)
    tap_internal_key: bytes | None = None
    tap_merkle_root: bytes | None = None
    tap_scripts: dict[tuple[bytes, int], set[bytes]] = field(default_factory=dict)
    tap_misc_pubkeys: dict[bytes, tuple[list[bytes], Origin]] = field(default_factory=dict)
    tap_tree: list[tuple[int, int, bytes]] = field(default_factory=list)
    missing_pubkeys: list[bytes] = field(default_factory=list)
    missing_sigs: list[bytes] = field(default_factory=list)
    missing_redeem_script: bytes = b""
    missing_witness_script: bytes = b""


class _Creator:
    """What makes signatures: the transaction, the input, its amount and sighash type, and
    the shared sighash data; mode "real" signs with the provider's keys, "dummy" makes
    placeholder signatures of the largest size a grinding signer makes (71-byte ECDSA, as
    Core's DUMMY_SIGNATURE_CREATOR; for size estimates), "none" makes none (an output's
    would-be spend, only to learn its scripts and keys)."""

    def __init__(self, tx: Transaction | None, index: int, amount: int, sighash: int,
                 txdata, mode: str = "real") -> None:  # noqa: ANN001
        self.tx, self.index, self.amount, self.sighash = tx, index, amount, sighash
        self.txdata, self.mode = txdata, mode

    def ecdsa(self, provider: Provider, keyid: bytes, script_code: bytes, sigversion: int
              ) -> bytes | None:
        if self.mode == "dummy":
            return dummy_ecdsa_signature()
        if self.mode != "real":
            return None
        secret = provider.secret(keyid)
        if secret is None:
            return None
        from consensus.script.sighash import legacy_sighash, segwit_v0_sighash

        ht = SIGHASH_ALL if self.sighash == SIGHASH_DEFAULT else self.sighash
        try:
            if sigversion == 1:
                h = segwit_v0_sighash(self.tx, self.index, script_code, self.amount, ht,
                                      self.txdata)
            else:
                h = legacy_sighash(self.tx, self.index, script_code, ht, self.txdata)
        except ValueError:
            return None
        return sign_digest(secret, h) + bytes((ht & 0xFF,))

    def schnorr(self, provider: Provider, xonly: bytes, leaf_hash: bytes | None,
                merkle_root: bytes | None, key_path: bool) -> bytes | None:
        if self.mode == "dummy":
            return b"\x00" * (64 if self.sighash == SIGHASH_DEFAULT else 65)
        if self.mode != "real" or self.txdata is None or not self.txdata_full:
            return None
        secret = provider.secret_xonly(xonly)
        if secret is None:
            return None
        from consensus.script.sighash import taproot_sighash
        from wallet.keys import sign_taproot_key_path

        try:
            h = taproot_sighash(self.tx, self.index, self.txdata, self.sighash,
                                leaf_hash=leaf_hash)
        except ValueError:
            return None
        if key_path:
            sig = sign_taproot_key_path(secret, h, merkle_root)
        else:
            sig = _sign_schnorr_untweaked(secret, h)
        return sig + (bytes((self.sighash,)) if self.sighash else b"")

    txdata_full = True


def _sign_schnorr_untweaked(secret: bytes, digest: bytes) -> bytes:
    import os

    from coincurve._libsecp256k1 import ffi, lib
    from coincurve.context import GLOBAL_CONTEXT

    ctx = GLOBAL_CONTEXT.ctx
    keypair = ffi.new("secp256k1_keypair *")
    if not lib.secp256k1_keypair_create(ctx, keypair, secret):
        raise PSBTError("invalid secret")
    sig = ffi.new("unsigned char[64]")
    if not lib.secp256k1_schnorrsig_sign32(ctx, sig, digest, keypair, os.urandom(32)):
        raise PSBTError("Schnorr signing failed")
    return bytes(ffi.buffer(sig, 64))


def _get_pubkey(provider: Provider, sd: SigData, keyid: bytes) -> bytes | None:
    if keyid in sd.signatures:
        return sd.signatures[keyid][0]
    if keyid in sd.misc_pubkeys:
        return sd.misc_pubkeys[keyid][0]
    for x in sd.tap_misc_pubkeys:
        if hash160(b"\x02" + x) == keyid:
            return b"\x02" + x
    return provider.pubkey(keyid)


def _create_sig(creator: _Creator, sd: SigData, provider: Provider, pubkey: bytes,
                script_code: bytes, sigversion: int) -> bytes | None:
    keyid = hash160(pubkey)
    if keyid in sd.signatures:
        return sd.signatures[keyid][1]
    origin = provider.origin(keyid)
    if origin is not None:
        sd.misc_pubkeys.setdefault(keyid, (pubkey, origin))
    sig = creator.ecdsa(provider, keyid, script_code, sigversion)
    if sig is not None:
        sd.signatures[keyid] = (pubkey, sig)
        return sig
    sd.missing_sigs.append(keyid)
    return None


def _get_script(provider: Provider, sd: SigData, h160: bytes) -> bytes | None:
    s = provider.script(h160)
    if s is not None:
        return s
    for cand in (sd.redeem_script, sd.witness_script):
        if cand and hash160(cand) == h160:
            return cand
    return None


def _sign_step(provider: Provider, creator: _Creator, script: bytes, sd: SigData,
               sigversion: int) -> tuple[bool, list[bytes], str]:
    """Core's SignStep: (solved, stack, script type)."""
    from consensus.hashes import ripemd160
    from consensus.script import standard as st

    kind, sol = st.solver(script)
    ret: list[bytes] = []
    if kind in (st.NONSTANDARD, st.NULL_DATA, st.WITNESS_UNKNOWN):
        return False, ret, kind
    if kind == st.ANCHOR:
        return True, ret, kind
    if kind == st.PUBKEY:
        sig = _create_sig(creator, sd, provider, sol[0], script, sigversion)
        return (sig is not None), ([sig] if sig else []), kind
    if kind == st.PUBKEYHASH:
        pub = _get_pubkey(provider, sd, sol[0])
        if pub is None:
            sd.missing_pubkeys.append(sol[0])
            return False, ret, kind
        sig = _create_sig(creator, sd, provider, pub, script, sigversion)
        if sig is None:
            return False, ret, kind
        return True, [sig, pub], kind
    if kind == st.SCRIPTHASH:
        s = _get_script(provider, sd, sol[0])
        if s is not None:
            return True, [s], kind
        sd.missing_redeem_script = sol[0]
        return False, ret, kind
    if kind == st.MULTISIG:
        required = sol[0][0]
        ret = [b""]
        for pub in sol[1:-1]:
            if len(ret) < required + 1:
                sig = _create_sig(creator, sd, provider, pub, script, sigversion)
                if sig is not None:
                    ret.append(sig)
        ok = len(ret) == required + 1
        ret.extend(b"" for _ in range(len(ret), required + 1))
        return ok, ret, kind
    if kind == st.WITNESS_V0_KEYHASH:
        return True, [sol[0]], kind
    if kind == st.WITNESS_V0_SCRIPTHASH:
        s = _get_script(provider, sd, ripemd160(sol[0]))
        if s is not None:
            return True, [s], kind
        sd.missing_witness_script = sol[0]
        return False, ret, kind
    if kind == st.WITNESS_V1_TAPROOT:
        stack = _sign_taproot(provider, creator, sol[0], sd)
        return (stack is not None), (stack or []), kind
    return False, ret, kind


def tap_tree_control_blocks(internal: bytes, tree: list[tuple[int, bytes]],
                            leaf_version: int = 0xC0) -> dict[bytes, list[bytes]]:
    """Each leaf script of a tree (given depth-first as (depth, script)) with its control
    blocks (a script may sit in more than one leaf)."""
    from consensus.script.keys import taproot_tweak_pubkey
    from consensus.script.taproot import tapbranch_hash

    stack: list[tuple[int, bytes, list[int]]] = []
    paths: list[list[bytes]] = [[] for _ in tree]
    for n, (depth, script) in enumerate(tree):
        stack.append((depth, tapleaf_hash(script, leaf_version), [n]))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            d, right, rleaves = stack.pop()
            _, left, lleaves = stack.pop()
            for i in lleaves:
                paths[i].append(right)
            for i in rleaves:
                paths[i].append(left)
            stack.append((d - 1, tapbranch_hash(left, right), lleaves + rleaves))
    root = stack[0][1] if stack else None
    _, parity = taproot_tweak_pubkey(internal, root)
    out: dict[bytes, list[bytes]] = {}
    for (_, script), path in zip(tree, paths, strict=True):
        out.setdefault(script, []).append(bytes((leaf_version | parity,)) + internal
                                          + b"".join(path))
    return out


def _tap_leaf_keys(script: bytes) -> tuple[str, list[bytes], int] | None:
    """pk(X) and multi_a(k, X...) leaves: (kind, keys, threshold)."""
    from consensus.script.script import iter_ops

    try:
        ops = list(iter_ops(script))
    except Exception:  # noqa: BLE001
        return None
    if len(ops) == 2 and ops[0][1] is not None and len(ops[0][1]) == 32 and ops[1][0] == 0xAC:
        return "pk", [ops[0][1]], 1
    if len(ops) >= 4 and ops[-1][0] == 0x9C and len(ops) % 2 == 0:
        keys = []
        for i in range(0, len(ops) - 2, 2):
            op, data, _ = ops[i]
            if data is None or len(data) != 32:
                return None
            if ops[i + 1][0] != (0xAC if i == 0 else 0xBA):
                return None
            keys.append(data)
        op, data, _ = ops[-2]
        if 0x51 <= op <= 0x60:
            k = op - 0x50
        elif data is not None and 0 < len(data) <= 2:
            k = int.from_bytes(data, "little")
        else:
            return None
        return "multi_a", keys, k
    return None


def _sign_taproot(provider: Provider, creator: _Creator, output_key: bytes, sd: SigData
                  ) -> list[bytes] | None:
    tree = provider.tr_tree(output_key)
    if tree is not None:
        internal, leaves = tree
        sd.tap_internal_key = sd.tap_internal_key or internal
        if leaves:
            from wallet.keys import taproot_merkle_root as root_of

            sd.tap_merkle_root = root_of([(d, tapleaf_hash(s)) for d, s in leaves])
            for script, cbs in tap_tree_control_blocks(internal, leaves).items():
                sd.tap_scripts.setdefault((script, 0xC0), set()).update(cbs)
            sd.tap_tree = [(d, 0xC0, s) for d, s in leaves]
    internal = sd.tap_internal_key
    if internal:
        origin = provider.origin_xonly(internal)
        if origin is not None:
            sd.tap_misc_pubkeys.setdefault(internal, ([], origin))
        if not sd.tap_key_sig:
            sig = creator.schnorr(provider, internal, None, sd.tap_merkle_root, True)
            if sig is not None:
                sd.tap_key_sig = sig
    if not sd.tap_key_sig:
        secret = provider.secret_xonly(output_key) if creator.mode == "real" else None
        if secret is not None:  # rawtr: the output key itself
            sig = creator.schnorr(provider, output_key, None, None, False)
            if sig is not None:
                sd.tap_key_sig = sig
    if sd.tap_key_sig:
        return [sd.tap_key_sig]
    best: list[bytes] | None = None
    for (script, ver), cbs in sorted(sd.tap_scripts.items()):
        if ver != 0xC0:
            continue
        stack = _sign_tap_script(provider, creator, sd, script)
        if stack is None:
            continue
        stack = stack + [script, sorted(cbs, key=lambda c: (len(c), c))[0]]
        if best is None or len(_ser_witness(stack)) < len(_ser_witness(best)):
            best = stack
    return best


def _sign_tap_script(provider: Provider, creator: _Creator, sd: SigData, script: bytes
                     ) -> list[bytes] | None:
    leaf = _tap_leaf_keys(script)
    if leaf is None:
        return None
    kind, keys, k = leaf
    lh = tapleaf_hash(script)
    sigs: dict[bytes, bytes] = {}
    for x in keys:
        origin = provider.origin_xonly(x)
        if origin is not None:
            entry = sd.tap_misc_pubkeys.setdefault(x, ([], origin))
            if lh not in entry[0]:
                entry[0].append(lh)
        sig = sd.tap_script_sigs.get((x, lh))
        if sig is None:
            sig = creator.schnorr(provider, x, lh, None, False)
            if sig is not None:
                sd.tap_script_sigs[(x, lh)] = sig
        if sig is not None:
            sigs[x] = sig
    if kind == "pk":
        return [sigs[keys[0]]] if keys[0] in sigs else None
    chosen = [x for x in keys if x in sigs][:k]
    if len(chosen) < k:
        return None
    return [sigs[x] if x in chosen else b"" for x in reversed(keys)]


def produce_signature(provider: Provider, creator: _Creator, spk: bytes, sd: SigData,
                      verify) -> bool:  # noqa: ANN001
    """Core's ProduceSignature; verify(script_sig, witness) says whether the result is
    valid."""
    from consensus.script import standard as st
    from consensus.script.script import push_data

    if sd.complete:
        return True
    solved, result, kind = _sign_step(provider, creator, spk, sd, 0)
    p2sh = False
    subscript = b""
    if solved and kind == st.SCRIPTHASH:
        subscript = result[0]
        sd.redeem_script = subscript
        solved, result, kind = _sign_step(provider, creator, subscript, sd, 0)
        solved = solved and kind != st.SCRIPTHASH
        p2sh = True
    if solved and kind == st.WITNESS_V0_KEYHASH:
        from consensus.script.standard import p2pkh_script

        solved, result, _ = _sign_step(provider, creator, p2pkh_script(result[0]), sd, 1)
        sd.script_witness = result
        sd.witness = True
        result = []
    elif solved and kind == st.WITNESS_V0_SCRIPTHASH:
        ws = result[0]
        sd.witness_script = ws
        solved, result, sub = _sign_step(provider, creator, ws, sd, 1)
        solved = solved and sub not in (st.SCRIPTHASH, st.WITNESS_V0_SCRIPTHASH,
                                         st.WITNESS_V0_KEYHASH)
        sd.script_witness = result + [ws]
        sd.witness = True
        result = []
    elif kind == st.WITNESS_V1_TAPROOT and not p2sh:
        sd.witness = True
        if solved:
            sd.script_witness = result
        result = []
    elif solved and kind == st.WITNESS_UNKNOWN:
        sd.witness = True
    if p2sh:
        result.append(subscript)
    sd.script_sig = b"".join(push_data(x) if x else b"\x00" for x in result)
    sd.complete = solved and verify(sd.script_sig, sd.script_witness)
    return sd.complete


def _fill_sigdata(inp: PSBTInput) -> SigData:
    sd = SigData()
    if inp.final_script_sig or inp.final_script_witness:
        sd.script_sig = inp.final_script_sig or b""
        sd.script_witness = list(inp.final_script_witness or [])
        sd.complete = True
        return sd
    sd.signatures = {hash160(pk): (pk, sig) for pk, sig in inp.partial_sigs.items()}
    sd.redeem_script = inp.redeem_script
    sd.witness_script = inp.witness_script
    sd.misc_pubkeys = {hash160(pk): (pk, o) for pk, o in inp.bip32_derivs.items()}
    sd.tap_key_sig = inp.tap_key_sig
    sd.tap_script_sigs = dict(inp.tap_script_sigs)
    sd.tap_internal_key = inp.tap_internal_key
    sd.tap_merkle_root = inp.tap_merkle_root
    sd.tap_scripts = {k: set(v) for k, v in inp.tap_scripts.items()}
    sd.tap_misc_pubkeys = {x: (list(lv), o) for x, (lv, o) in inp.tap_bip32_derivs.items()}
    return sd


def _from_sigdata(inp: PSBTInput, sd: SigData) -> None:
    if sd.complete:
        inp.partial_sigs.clear()
        inp.bip32_derivs.clear()
        inp.redeem_script = inp.witness_script = None
        if sd.script_sig:
            inp.final_script_sig = sd.script_sig
        if sd.script_witness:
            inp.final_script_witness = list(sd.script_witness)
        return
    for pk, sig in sd.signatures.values():
        inp.partial_sigs.setdefault(pk, sig)
    if not inp.redeem_script and sd.redeem_script:
        inp.redeem_script = sd.redeem_script
    if not inp.witness_script and sd.witness_script:
        inp.witness_script = sd.witness_script
    for pk, origin in sd.misc_pubkeys.values():
        inp.bip32_derivs.setdefault(pk, origin)
    if sd.tap_key_sig:
        inp.tap_key_sig = sd.tap_key_sig
    for k, v in sd.tap_script_sigs.items():
        inp.tap_script_sigs.setdefault(k, v)
    if sd.tap_internal_key:
        inp.tap_internal_key = sd.tap_internal_key
    if sd.tap_merkle_root:
        inp.tap_merkle_root = sd.tap_merkle_root
    for k, cbs in sd.tap_scripts.items():
        inp.tap_scripts.setdefault(k, set()).update(cbs)
    for x, (leaves, origin) in sd.tap_misc_pubkeys.items():
        if x in inp.tap_bip32_derivs:
            old = inp.tap_bip32_derivs[x]
            inp.tap_bip32_derivs[x] = (sorted(set(old[0]) | set(leaves)), old[1])
        else:
            inp.tap_bip32_derivs[x] = (sorted(leaves), origin)


class TxData:
    """The unsigned transaction with its spent outputs, for signing and verifying."""

    def __init__(self, psbt: PSBT) -> None:
        from consensus.script.sighash import PrecomputedTxData

        self.tx = psbt.tx
        spent = psbt.spent_outputs()
        self.full = spent is not None
        self.spent = spent if spent is not None else [
            inp.utxo() or TxOut(0, b"") for inp in psbt.inputs]
        self.pre = PrecomputedTxData(self.tx, self.spent) if self.full else \
            PrecomputedTxData(self.tx)

    def verify(self, index: int, utxo: TxOut, script_sig: bytes, witness: list[bytes]) -> bool:
        from consensus.script.flags import STANDARD_SCRIPT_VERIFY_FLAGS
        from consensus.script.sighash import PrecomputedTxData
        from consensus.script.verify import verify_input

        # The transaction with this input's scripts: a new input, the others shared (no deep
        # copy: that made signing n inputs O(n^2)). Signature hashes do not cover scriptSigs
        # or witnesses, so the precomputed data of the unsigned transaction serves, unless
        # the spent output differs from the one it was made with.
        tx = Transaction(self.tx.version, self.tx.vin, self.tx.vout, self.tx.locktime)
        old = tx.vin[index]
        tx.vin[index] = TxIn(old.prevout, script_sig, old.sequence, list(witness))
        spent = self.spent
        pre = self.pre
        if spent[index] != utxo:
            spent = list(spent)
            spent[index] = utxo
            pre = PrecomputedTxData(tx, spent) if self.full else PrecomputedTxData(tx)
        try:
            verify_input(tx, index, spent, STANDARD_SCRIPT_VERIFY_FLAGS, pre, sigcache=None,
                         store=False)
        except Exception:  # noqa: BLE001  (a script error, or data a sighash needs missing)
            return False
        return True


def input_signed_and_verified(psbt: PSBT, index: int, txdata: TxData) -> bool:
    inp = psbt.inputs[index]
    utxo = inp.utxo()
    if utxo is None:
        return False
    return txdata.verify(index, utxo, inp.final_script_sig or b"",
                         inp.final_script_witness or [])


def sign_psbt_input(provider: Provider, psbt: PSBT, index: int, txdata: TxData | None,
                    sighash: int | None, finalize: bool = True,
                    out: SigData | None = None, mode: str = "real") -> str:
    """Core's SignPSBTInput: "ok" (complete), "incomplete", "missing_inputs"; raises
    SighashMismatch. txdata None: dummy signatures (for a size estimate)."""
    inp = psbt.inputs[index]
    if txdata is not None and input_signed_and_verified(psbt, index, txdata):
        return "ok"
    sd = _fill_sigdata(inp)
    require_witness_sig = False
    if inp.non_witness_utxo is not None:
        if inp.prev_out >= len(inp.non_witness_utxo.vout) or \
                inp.non_witness_utxo.txid != inp.prev_txid:
            return "missing_inputs"
        utxo = inp.non_witness_utxo.vout[inp.prev_out]
    elif inp.witness_utxo is not None:
        utxo = inp.witness_utxo
        require_witness_sig = True
    else:
        return "missing_inputs"
    is_tr = witness_program_v1(utxo.script_pubkey)
    ht = sighash if sighash is not None else (SIGHASH_DEFAULT if is_tr else SIGHASH_ALL)
    if inp.sighash_type is not None and inp.sighash_type != ht:
        raise SighashMismatch()
    if (ht != SIGHASH_DEFAULT) if is_tr else (ht not in (SIGHASH_DEFAULT, SIGHASH_ALL)):
        inp.sighash_type = ht
    if ht == SIGHASH_DEFAULT:
        if inp.tap_key_sig and len(inp.tap_key_sig) != 64:
            raise SighashMismatch()
        if any(len(s) != 64 for s in inp.tap_script_sigs.values()):
            raise SighashMismatch()
    else:
        if inp.tap_key_sig and (len(inp.tap_key_sig) != 65 or inp.tap_key_sig[-1] != ht):
            raise SighashMismatch()
        if any(len(s) != 65 or s[-1] != ht for s in inp.tap_script_sigs.values()):
            raise SighashMismatch()
        if any(s[-1] != ht & 0xFF for s in inp.partial_sigs.values()):
            raise SighashMismatch()
    if txdata is None:
        creator = _Creator(None, index, utxo.value, ht, None, "dummy")

        def verify(ss: bytes, wit: list[bytes]) -> bool:
            return True
    else:
        creator = _Creator(txdata.tx, index, utxo.value, ht, txdata.pre, mode)
        creator.txdata_full = txdata.full

        def verify(ss: bytes, wit: list[bytes]) -> bool:
            return txdata.verify(index, utxo, ss, wit)
    complete = produce_signature(provider, creator, utxo.script_pubkey, sd, verify)
    if require_witness_sig and not sd.witness:
        return "incomplete"
    if not finalize and sd.complete:
        sd.complete = False
    _from_sigdata(inp, sd)
    if sd.witness:
        inp.witness_utxo = utxo
    if out is not None:
        out.missing_pubkeys = sd.missing_pubkeys
        out.missing_sigs = sd.missing_sigs
        out.missing_redeem_script = sd.missing_redeem_script
        out.missing_witness_script = sd.missing_witness_script
    return "ok" if complete else "incomplete"


def witness_program_v1(spk: bytes) -> bool:
    return len(spk) == 34 and spk[0] == 0x51 and spk[1] == 32


def update_psbt_output(provider: Provider, psbt: PSBT, index: int) -> None:
    """Core's UpdatePSBTOutput: the scripts, key origins and Taproot tree of an output the
    provider knows."""
    out = psbt.outputs[index]
    sd = SigData()
    sd.redeem_script = out.redeem_script
    sd.witness_script = out.witness_script
    sd.misc_pubkeys = {hash160(pk): (pk, o) for pk, o in out.bip32_derivs.items()}
    sd.tap_misc_pubkeys = {x: (list(lv), o) for x, (lv, o) in out.tap_bip32_derivs.items()}
    if out.tap_internal_key:
        sd.tap_internal_key = out.tap_internal_key
    creator = _Creator(None, 0, out.amount, SIGHASH_ALL, None, "none")
    produce_signature(provider, creator, out.script, sd, lambda ss, wit: False)
    if not out.redeem_script and sd.redeem_script:
        out.redeem_script = sd.redeem_script
    if not out.witness_script and sd.witness_script:
        out.witness_script = sd.witness_script
    for pk, origin in sd.misc_pubkeys.values():
        out.bip32_derivs.setdefault(pk, origin)
    if sd.tap_internal_key:
        out.tap_internal_key = sd.tap_internal_key
    if sd.tap_tree:
        out.tap_tree = list(sd.tap_tree)
    for x, (leaves, origin) in sd.tap_misc_pubkeys.items():
        out.tap_bip32_derivs.setdefault(x, (sorted(leaves), origin))


def remove_unnecessary_transactions(psbt: PSBT) -> None:
    """Core's RemoveUnnecessaryTransactions: drop the previous transactions when every input
    is segwit v1 and none signs with ANYONECANPAY."""
    from consensus.script.script import witness_program

    for inp in psbt.inputs:
        wp = None if inp.witness_utxo is None else witness_program(inp.witness_utxo.script_pubkey)
        if wp is None or wp[0] == 0:
            return
        if inp.sighash_type is not None and inp.sighash_type & SIGHASH_ANYONECANPAY:
            return
    for inp in psbt.inputs:
        inp.non_witness_utxo = None


def finalize_psbt(psbt: PSBT) -> bool:
    """Core's FinalizePSBT: combine the signatures there are into final scripts."""
    if psbt.unsigned_tx() is None:
        return False
    txdata = TxData(psbt)
    complete = True
    for i, inp in enumerate(psbt.inputs):
        try:
            res = sign_psbt_input(EMPTY_PROVIDER, psbt, i, txdata, inp.sighash_type, True)
        except SighashMismatch:
            res = "mismatch"
        complete = complete and res == "ok"
    return complete


def finalize_and_extract(psbt: PSBT) -> Transaction | None:
    if not finalize_psbt(psbt):
        return None
    return psbt.extract(check=False)  # an input may verify with no final scripts at all


def fill_psbt(psbt: PSBT, provider: Provider, sighash: int | None, finalize: bool,
              skip_signed: bool = True) -> None:
    """Sign (and update) each input not yet signed with one provider, then the outputs."""
    txdata = TxData(psbt)
    for i, inp in enumerate(psbt.inputs):
        if skip_signed and inp.finalized:
            continue
        sign_psbt_input(provider, psbt, i, txdata, sighash, finalize)
    for i in range(len(psbt.outputs)):
        update_psbt_output(provider, psbt, i)


def is_complete_verified(psbt: PSBT) -> bool:
    if psbt.unsigned_tx() is None:
        return False
    txdata = TxData(psbt)
    return all(input_signed_and_verified(psbt, i, txdata) for i in range(len(psbt.inputs)))


# -- analysis (Core's AnalyzePSBT) -----------------------------------------------------------

ROLES = ["creator", "updater", "signer", "finalizer", "extractor"]


def analyze(psbt: PSBT) -> dict:
    """Core's AnalyzePSBT, as analyzepsbt reports it (amounts in satoshis)."""
    from consensus.script.script import is_unspendable

    def invalid(msg: str) -> dict:
        return {"next": "creator", "error": msg}

    if psbt.unsigned_tx() is None:
        return invalid("PSBT is not valid. Input locktimes are conflicting")
    txdata = TxData(psbt)
    inputs = []
    in_amt = 0
    calc_fee = True
    for i, inp in enumerate(psbt.inputs):
        a: dict = {"has_utxo": False, "is_final": False, "next": "extractor"}
        utxo = inp.utxo()
        if utxo is not None:
            if not 0 <= utxo.value <= MAX_MONEY or not in_amt + utxo.value <= MAX_MONEY:
                return invalid(f"PSBT is not valid. Input {i} has invalid value")
            in_amt += utxo.value
            a["has_utxo"] = True
        else:
            if inp.non_witness_utxo is not None and inp.prev_out >= len(
                    inp.non_witness_utxo.vout):
                return invalid(f"PSBT is not valid. Input {i} specifies invalid prevout")
            a["next"] = "updater"
            calc_fee = False
        if utxo is not None and is_unspendable(utxo.script_pubkey):
            return invalid(f"PSBT is not valid. Input {i} spends unspendable output")
        if not input_signed_and_verified(psbt, i, txdata):
            a["is_final"] = False
            copy = PSBT.parse(psbt.serialize())
            out = SigData()
            try:
                res = sign_psbt_input(EMPTY_PROVIDER, copy, i, TxData(copy), SIGHASH_ALL,
                                      True, out)
            except SighashMismatch:
                res = "mismatch"
            if res != "ok":
                missing: dict = {}
                if out.missing_pubkeys:
                    missing["pubkeys"] = [k.hex() for k in out.missing_pubkeys]
                if out.missing_redeem_script:
                    missing["redeemscript"] = out.missing_redeem_script.hex()
                if out.missing_witness_script:
                    missing["witnessscript"] = out.missing_witness_script.hex()
                if out.missing_sigs:
                    missing["signatures"] = [k.hex() for k in out.missing_sigs]
                if missing:
                    a["missing"] = missing
                only_sigs = (not out.missing_pubkeys and not out.missing_redeem_script
                             and not out.missing_witness_script and out.missing_sigs)
                if a["next"] != "updater" or utxo is not None:
                    a["next"] = "signer" if only_sigs else "updater"
            elif a["next"] != "updater":
                a["next"] = "finalizer"
        elif utxo is not None:
            a["is_final"] = True
        inputs.append(a)
    result: dict = {}
    if inputs:
        result["inputs"] = inputs
    result["next"] = min((a["next"] for a in inputs), key=ROLES.index, default="extractor")
    if calc_fee:
        out_amt = 0
        for o in psbt.outputs:
            if not 0 <= o.amount <= MAX_MONEY or not out_amt + o.amount <= MAX_MONEY:
                return invalid("PSBT is not valid. Output amount invalid")
            out_amt += o.amount
        fee = in_amt - out_amt
        copy = PSBT.parse(psbt.serialize())
        ok = True
        for i in range(len(copy.inputs)):
            try:
                r = sign_psbt_input(EMPTY_PROVIDER, copy, i, None, SIGHASH_ALL, True)
            except SighashMismatch:
                r = "mismatch"
            if r != "ok" and not copy.inputs[i].finalized:
                ok = False
                break
        if ok:
            tx = copy.tx
            for txin, inp in zip(tx.vin, copy.inputs, strict=True):
                txin.script_sig = inp.final_script_sig or b""
                txin.witness = list(inp.final_script_witness or [])
            tx.rehash()
            vsize = (tx.weight + 3) // 4
            result["estimated_vsize"] = vsize
            result["estimated_feerate"] = fee * 1000 // vsize if vsize else 0
        result["fee"] = fee
    order = ["inputs", "estimated_vsize", "estimated_feerate", "fee", "next"]
    return {k: result[k] for k in order if k in result}
