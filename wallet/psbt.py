"""Partially Signed Bitcoin Transactions, version 0 (BIP174), with the Taproot fields of
BIP371: parse, serialize, combine, finalize and extract. Signing is wallet.signer's job.

Every record keeps the key/value pairs it does not know (`unknown`), so a PSBT passes through
unchanged in what other software added. Parse errors raise PSBTError with what is wrong.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from consensus.hashes import hash160
from consensus.script.script import is_p2pkh, is_p2sh, push_data, witness_program
from consensus.serialize import DeserializationError, Reader, compact_size
from consensus.tx import Transaction, TxOut

MAGIC = b"psbt\xff"

# global
PSBT_GLOBAL_UNSIGNED_TX = 0x00
PSBT_GLOBAL_XPUB = 0x01
PSBT_GLOBAL_VERSION = 0xFB
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
PSBT_IN_TAP_KEY_SIG = 0x13
PSBT_IN_TAP_BIP32_DERIVATION = 0x16
PSBT_IN_TAP_INTERNAL_KEY = 0x17
PSBT_IN_TAP_MERKLE_ROOT = 0x18
# output
PSBT_OUT_REDEEM_SCRIPT = 0x00
PSBT_OUT_WITNESS_SCRIPT = 0x01
PSBT_OUT_BIP32_DERIVATION = 0x02
PSBT_OUT_TAP_INTERNAL_KEY = 0x05
PSBT_OUT_TAP_BIP32_DERIVATION = 0x07


class PSBTError(ValueError):
    """A PSBT that does not parse, or records that cannot be combined."""


Origin = tuple[bytes, tuple[int, ...]]  # (master fingerprint, path)


def _ser_origin(origin: Origin) -> bytes:
    fp, path = origin
    return fp + b"".join(i.to_bytes(4, "little") for i in path)


def _parse_origin(value: bytes) -> Origin:
    if len(value) < 4 or len(value) % 4:
        raise PSBTError("Invalid length for HD key path")
    return value[:4], tuple(int.from_bytes(value[i:i + 4], "little")
                            for i in range(4, len(value), 4))


def _ser_witness(stack: list[bytes]) -> bytes:
    return compact_size(len(stack)) + b"".join(compact_size(len(x)) + x for x in stack)


def _parse_witness(value: bytes) -> list[bytes]:
    r = Reader(value)
    items = [r.var_bytes() for _ in range(r.compact_size())]
    if r.remaining():
        raise PSBTError("Size of value was not the stated size")
    return items


def _kv(key_type: int, key_data: bytes, value: bytes) -> bytes:
    key = compact_size(key_type) + key_data
    return compact_size(len(key)) + key + compact_size(len(value)) + value


@dataclass
class PSBTInput:
    non_witness_utxo: Transaction | None = None
    witness_utxo: TxOut | None = None
    partial_sigs: dict[bytes, bytes] = field(default_factory=dict)
    sighash_type: int | None = None
    redeem_script: bytes | None = None
    witness_script: bytes | None = None
    bip32_derivs: dict[bytes, Origin] = field(default_factory=dict)
    final_script_sig: bytes | None = None
    final_script_witness: list[bytes] | None = None
    tap_key_sig: bytes | None = None
    tap_bip32_derivs: dict[bytes, tuple[list[bytes], Origin]] = field(default_factory=dict)
    tap_internal_key: bytes | None = None
    tap_merkle_root: bytes | None = None
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def finalized(self) -> bool:
        return self.final_script_sig is not None or self.final_script_witness is not None

    def serialize(self) -> bytes:
        out = []
        if self.non_witness_utxo is not None:
            out.append(_kv(PSBT_IN_NON_WITNESS_UTXO, b"",
                           self.non_witness_utxo.serialize(witness=False)))
        if self.witness_utxo is not None:
            out.append(_kv(PSBT_IN_WITNESS_UTXO, b"", self.witness_utxo.serialize()))
        if not self.finalized:
            for pk, sig in sorted(self.partial_sigs.items()):
                out.append(_kv(PSBT_IN_PARTIAL_SIG, pk, sig))
            if self.sighash_type is not None:
                out.append(_kv(PSBT_IN_SIGHASH_TYPE, b"",
                               self.sighash_type.to_bytes(4, "little")))
            if self.redeem_script is not None:
                out.append(_kv(PSBT_IN_REDEEM_SCRIPT, b"", self.redeem_script))
            if self.witness_script is not None:
                out.append(_kv(PSBT_IN_WITNESS_SCRIPT, b"", self.witness_script))
            for pk, origin in sorted(self.bip32_derivs.items()):
                out.append(_kv(PSBT_IN_BIP32_DERIVATION, pk, _ser_origin(origin)))
        if self.final_script_sig is not None:
            out.append(_kv(PSBT_IN_FINAL_SCRIPTSIG, b"", self.final_script_sig))
        if self.final_script_witness is not None:
            out.append(_kv(PSBT_IN_FINAL_SCRIPTWITNESS, b"",
                           _ser_witness(self.final_script_witness)))
        if not self.finalized:
            if self.tap_key_sig is not None:
                out.append(_kv(PSBT_IN_TAP_KEY_SIG, b"", self.tap_key_sig))
            for x, (leaves, origin) in sorted(self.tap_bip32_derivs.items()):
                value = compact_size(len(leaves)) + b"".join(leaves) + _ser_origin(origin)
                out.append(_kv(PSBT_IN_TAP_BIP32_DERIVATION, x, value))
            if self.tap_internal_key is not None:
                out.append(_kv(PSBT_IN_TAP_INTERNAL_KEY, b"", self.tap_internal_key))
            if self.tap_merkle_root is not None:
                out.append(_kv(PSBT_IN_TAP_MERKLE_ROOT, b"", self.tap_merkle_root))
        for k, v in sorted(self.unknown.items()):
            out.append(compact_size(len(k)) + k + compact_size(len(v)) + v)
        return b"".join(out) + b"\x00"

    def utxo(self, prevout_n: int) -> TxOut | None:
        """The output this input spends, from witness_utxo or non_witness_utxo."""
        if self.witness_utxo is not None:
            return self.witness_utxo
        if self.non_witness_utxo is not None and prevout_n < len(self.non_witness_utxo.vout):
            return self.non_witness_utxo.vout[prevout_n]
        return None

    def merge(self, other: PSBTInput) -> None:
        """Core's PSBTInput::Merge: take what this one lacks."""
        if self.non_witness_utxo is None:
            self.non_witness_utxo = other.non_witness_utxo
        if self.witness_utxo is None:
            self.witness_utxo = other.witness_utxo
        for d, o in ((self.partial_sigs, other.partial_sigs),
                     (self.bip32_derivs, other.bip32_derivs),
                     (self.tap_bip32_derivs, other.tap_bip32_derivs),
                     (self.unknown, other.unknown)):
            for k, v in o.items():
                d.setdefault(k, v)
        for name in ("sighash_type", "redeem_script", "witness_script", "final_script_sig",
                     "final_script_witness", "tap_key_sig", "tap_internal_key",
                     "tap_merkle_root"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


@dataclass
class PSBTOutput:
    redeem_script: bytes | None = None
    witness_script: bytes | None = None
    bip32_derivs: dict[bytes, Origin] = field(default_factory=dict)
    tap_internal_key: bytes | None = None
    tap_bip32_derivs: dict[bytes, tuple[list[bytes], Origin]] = field(default_factory=dict)
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    def serialize(self) -> bytes:
        out = []
        if self.redeem_script is not None:
            out.append(_kv(PSBT_OUT_REDEEM_SCRIPT, b"", self.redeem_script))
        if self.witness_script is not None:
            out.append(_kv(PSBT_OUT_WITNESS_SCRIPT, b"", self.witness_script))
        for pk, origin in sorted(self.bip32_derivs.items()):
            out.append(_kv(PSBT_OUT_BIP32_DERIVATION, pk, _ser_origin(origin)))
        if self.tap_internal_key is not None:
            out.append(_kv(PSBT_OUT_TAP_INTERNAL_KEY, b"", self.tap_internal_key))
        for x, (leaves, origin) in sorted(self.tap_bip32_derivs.items()):
            value = compact_size(len(leaves)) + b"".join(leaves) + _ser_origin(origin)
            out.append(_kv(PSBT_OUT_TAP_BIP32_DERIVATION, x, value))
        for k, v in sorted(self.unknown.items()):
            out.append(compact_size(len(k)) + k + compact_size(len(v)) + v)
        return b"".join(out) + b"\x00"

    def merge(self, other: PSBTOutput) -> None:
        for d, o in ((self.bip32_derivs, other.bip32_derivs),
                     (self.tap_bip32_derivs, other.tap_bip32_derivs),
                     (self.unknown, other.unknown)):
            for k, v in o.items():
                d.setdefault(k, v)
        for name in ("redeem_script", "witness_script", "tap_internal_key"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


@dataclass
class PSBT:
    tx: Transaction
    inputs: list[PSBTInput]
    outputs: list[PSBTOutput]
    xpubs: dict[bytes, Origin] = field(default_factory=dict)  # 78-byte xpub -> origin
    version: int | None = None
    unknown: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def from_tx(cls, tx: Transaction) -> PSBT:
        if any(i.script_sig or i.witness for i in tx.vin):
            raise PSBTError("Inputs must not have scriptSigs and scriptWitnesses")
        return cls(tx, [PSBTInput() for _ in tx.vin], [PSBTOutput() for _ in tx.vout])

    # -- encoding --------------------------------------------------------------------------

    def serialize(self) -> bytes:
        out = [MAGIC, _kv(PSBT_GLOBAL_UNSIGNED_TX, b"", self.tx.serialize(witness=False))]
        for xpub, origin in sorted(self.xpubs.items()):
            out.append(_kv(PSBT_GLOBAL_XPUB, xpub, _ser_origin(origin)))
        if self.version is not None:
            out.append(_kv(PSBT_GLOBAL_VERSION, b"", self.version.to_bytes(4, "little")))
        for k, v in sorted(self.unknown.items()):
            out.append(compact_size(len(k)) + k + compact_size(len(v)) + v)
        out.append(b"\x00")
        out.extend(i.serialize() for i in self.inputs)
        out.extend(o.serialize() for o in self.outputs)
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
        if other.tx.txid != self.tx.txid:
            raise PSBTError("PSBTs not compatible (different transactions)")
        for a, b in zip(self.inputs, other.inputs, strict=True):
            a.merge(b)
        for a, b in zip(self.outputs, other.outputs, strict=True):
            a.merge(b)
        for k, v in other.xpubs.items():
            self.xpubs.setdefault(k, v)
        for k, v in other.unknown.items():
            self.unknown.setdefault(k, v)

    def spent_outputs(self) -> list[TxOut] | None:
        outs = []
        for txin, inp in zip(self.tx.vin, self.inputs, strict=True):
            u = inp.utxo(txin.prevout.n)
            if u is None:
                return None
            outs.append(u)
        return outs

    def fee(self) -> int | None:
        outs = self.spent_outputs()
        if outs is None:
            return None
        return sum(o.value for o in outs) - self.tx.total_out()

    def finalize(self) -> bool:
        """Finalize each input whose signatures are there (single-key types); True when
        all inputs are final."""
        for txin, inp in zip(self.tx.vin, self.inputs, strict=True):
            if not inp.finalized:
                _finalize_input(inp, txin.prevout.n)
        return all(i.finalized for i in self.inputs)

    def is_complete(self) -> bool:
        return all(i.finalized for i in self.inputs)

    def extract(self) -> Transaction:
        if not self.is_complete():
            raise PSBTError("PSBT is not complete")
        tx = self.tx.copy()
        for txin, inp in zip(tx.vin, self.inputs, strict=True):
            txin.script_sig = inp.final_script_sig or b""
            txin.witness = list(inp.final_script_witness or [])
        tx.rehash()
        return tx


def _finalize_input(inp: PSBTInput, n: int) -> None:
    utxo = inp.utxo(n)
    if utxo is None:
        return
    spk = utxo.script_pubkey
    wp = witness_program(spk)
    if wp is not None and wp[0] == 1 and len(wp[1]) == 32:
        if inp.tap_key_sig is not None:
            inp.final_script_witness = [inp.tap_key_sig]
    elif wp is not None and wp[0] == 0 and len(wp[1]) == 20:
        sig = _sig_for_hash(inp, wp[1])
        if sig is not None:
            inp.final_script_witness = list(sig)
    elif is_p2sh(spk) and inp.redeem_script is not None:
        inner = witness_program(inp.redeem_script)
        if inner is not None and inner[0] == 0 and len(inner[1]) == 20:
            sig = _sig_for_hash(inp, inner[1])
            if sig is not None:
                inp.final_script_sig = push_data(inp.redeem_script)
                inp.final_script_witness = list(sig)
    elif is_p2pkh(spk):
        sig = _sig_for_hash(inp, spk[3:23])
        if sig is not None:
            inp.final_script_sig = push_data(sig[0]) + push_data(sig[1])
    if inp.finalized:  # BIP174: the finalizer clears everything but the UTXOs and finals
        inp.partial_sigs.clear()
        inp.bip32_derivs.clear()
        inp.tap_bip32_derivs.clear()
        inp.sighash_type = inp.redeem_script = inp.witness_script = None
        inp.tap_key_sig = inp.tap_internal_key = inp.tap_merkle_root = None


def _sig_for_hash(inp: PSBTInput, keyhash: bytes) -> tuple[bytes, bytes] | None:
    for pk, sig in inp.partial_sigs.items():
        if hash160(pk) == keyhash:
            return sig, pk
    return None


# -- parsing ---------------------------------------------------------------------------------


def _read_map(r: Reader) -> list[tuple[bytes, bytes]]:
    pairs = []
    seen = set()
    while True:
        if not r.remaining():
            raise PSBTError("Separator is missing at the end of a map")
        klen = r.compact_size()
        if klen == 0:
            return pairs
        key = r.read(klen)
        value = r.var_bytes()
        if key in seen:
            raise PSBTError("Duplicate Key, key already provided")
        seen.add(key)
        pairs.append((key, value))


def _split_key(key: bytes) -> tuple[int, bytes]:
    r = Reader(key)
    t = r.compact_size()
    return t, bytes(key[len(key) - r.remaining():])


def _need_empty(data: bytes, what: str) -> None:
    if data:
        raise PSBTError(f"{what} key is more than one byte type")


def _parse(raw: bytes) -> PSBT:
    if raw[:5] != MAGIC:
        raise PSBTError("Invalid PSBT magic bytes")
    r = Reader(raw[5:])
    tx = None
    xpubs: dict[bytes, Origin] = {}
    version = None
    unknown: dict[bytes, bytes] = {}
    for key, value in _read_map(r):
        t, kd = _split_key(key)
        if t == PSBT_GLOBAL_UNSIGNED_TX:
            _need_empty(kd, "Global unsigned tx")
            tx = Transaction.from_bytes(value, allow_witness=False)
            if any(i.script_sig or i.witness for i in tx.vin):
                raise PSBTError("Unsigned tx does not have empty scriptSigs and scriptWitnesses.")
        elif t == PSBT_GLOBAL_XPUB:
            if len(kd) != 78:
                raise PSBTError("Size of key was not the expected size for the type global xpub")
            xpubs[kd] = _parse_origin(value)
        elif t == PSBT_GLOBAL_VERSION:
            _need_empty(kd, "Global version")
            if len(value) != 4:
                raise PSBTError("Size of value was not the stated size")
            version = int.from_bytes(value, "little")
            if version > 0:
                raise PSBTError("Unsupported version number")
        else:
            unknown[key] = value
    if tx is None:
        raise PSBTError("No unsigned transaction was provided")
    inputs = [_parse_input(_read_map(r)) for _ in tx.vin]
    outputs = [_parse_output(_read_map(r)) for _ in tx.vout]
    if r.remaining():
        raise PSBTError("Data after the end of the PSBT")
    for txin, inp in zip(tx.vin, inputs, strict=True):
        if inp.non_witness_utxo is not None and inp.non_witness_utxo.txid != txin.prevout.hash:
            raise PSBTError("Non-witness UTXO does not match outpoint hash")
    return PSBT(tx, inputs, outputs, xpubs, version, unknown)


def _parse_input(pairs: list[tuple[bytes, bytes]]) -> PSBTInput:
    inp = PSBTInput()
    for key, value in pairs:
        t, kd = _split_key(key)
        if t == PSBT_IN_NON_WITNESS_UTXO:
            _need_empty(kd, "Input Non-witness utxo")
            inp.non_witness_utxo = Transaction.from_bytes(value)
        elif t == PSBT_IN_WITNESS_UTXO:
            _need_empty(kd, "Input Witness utxo")
            vr = Reader(value)
            inp.witness_utxo = TxOut.deserialize(vr)
            if vr.remaining():
                raise PSBTError("Size of value was not the stated size")
        elif t == PSBT_IN_PARTIAL_SIG:
            if len(kd) not in (33, 65):
                raise PSBTError("Size of key was not the expected size for the type partial "
                                "signature pubkey")
            inp.partial_sigs[kd] = value
        elif t == PSBT_IN_SIGHASH_TYPE:
            _need_empty(kd, "Input Sighash type")
            if len(value) != 4:
                raise PSBTError("Size of value was not the stated size")
            inp.sighash_type = int.from_bytes(value, "little")
        elif t == PSBT_IN_REDEEM_SCRIPT:
            _need_empty(kd, "Input redeemScript")
            inp.redeem_script = value
        elif t == PSBT_IN_WITNESS_SCRIPT:
            _need_empty(kd, "Input witnessScript")
            inp.witness_script = value
        elif t == PSBT_IN_BIP32_DERIVATION:
            if len(kd) not in (33, 65):
                raise PSBTError("Size of key was not the expected size for the type BIP32 keypath")
            inp.bip32_derivs[kd] = _parse_origin(value)
        elif t == PSBT_IN_FINAL_SCRIPTSIG:
            _need_empty(kd, "Input final scriptSig")
            inp.final_script_sig = value
        elif t == PSBT_IN_FINAL_SCRIPTWITNESS:
            _need_empty(kd, "Input final scriptWitness")
            inp.final_script_witness = _parse_witness(value)
        elif t == PSBT_IN_TAP_KEY_SIG:
            _need_empty(kd, "Input Taproot key signature")
            if len(value) not in (64, 65):
                raise PSBTError("Input Taproot key path signature is shorter than 64 bytes")
            inp.tap_key_sig = value
        elif t == PSBT_IN_TAP_BIP32_DERIVATION:
            if len(kd) != 32:
                raise PSBTError("Input Taproot BIP32 keypath key is not at 33 bytes")
            inp.tap_bip32_derivs[kd] = _parse_tap_origin(value)
        elif t == PSBT_IN_TAP_INTERNAL_KEY:
            _need_empty(kd, "Input Taproot internal key")
            if len(value) != 32:
                raise PSBTError("Input Taproot internal key is not 32 bytes")
            inp.tap_internal_key = value
        elif t == PSBT_IN_TAP_MERKLE_ROOT:
            _need_empty(kd, "Input Taproot merkle root")
            if len(value) != 32:
                raise PSBTError("Input Taproot merkle root is not 32 bytes")
            inp.tap_merkle_root = value
        else:
            inp.unknown[key] = value
    return inp


def _parse_tap_origin(value: bytes) -> tuple[list[bytes], Origin]:
    r = Reader(value)
    n = r.compact_size()
    leaves = [r.read(32) for _ in range(n)]
    return leaves, _parse_origin(bytes(value[len(value) - r.remaining():]))


def _parse_output(pairs: list[tuple[bytes, bytes]]) -> PSBTOutput:
    out = PSBTOutput()
    for key, value in pairs:
        t, kd = _split_key(key)
        if t == PSBT_OUT_REDEEM_SCRIPT:
            _need_empty(kd, "Output redeemScript")
            out.redeem_script = value
        elif t == PSBT_OUT_WITNESS_SCRIPT:
            _need_empty(kd, "Output witnessScript")
            out.witness_script = value
        elif t == PSBT_OUT_BIP32_DERIVATION:
            if len(kd) not in (33, 65):
                raise PSBTError("Size of key was not the expected size for the type BIP32 keypath")
            out.bip32_derivs[kd] = _parse_origin(value)
        elif t == PSBT_OUT_TAP_INTERNAL_KEY:
            _need_empty(kd, "Output Taproot internal key")
            if len(value) != 32:
                raise PSBTError("Output Taproot internal key is not 32 bytes")
            out.tap_internal_key = value
        elif t == PSBT_OUT_TAP_BIP32_DERIVATION:
            if len(kd) != 32:
                raise PSBTError("Output Taproot BIP32 keypath key is not at 33 bytes")
            out.tap_bip32_derivs[kd] = _parse_tap_origin(value)
        else:
            out.unknown[key] = value
    return out
