"""Signing any standard script from a set of keys and scripts (Core's script/sign.cpp), and
signed messages (Core's common/signmessage.cpp). Pure functions over a KeyStore: no wallet
state, so the node's signrawtransactionwithkey and signmessagewithprivkey use them too.

What can be signed: P2PK, P2PKH, bare multisig, P2SH around any of those or around a segwit
v0 program, P2WPKH, P2WSH (witness script P2PK, P2PKH or multisig), and pay-to-anchor (no
signature needed). A P2TR output needs its spend data (internal key, tree), which a bare key
does not give, so it is left unsigned, as Core does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

from coincurve import PrivateKey, PublicKey

from consensus.hashes import hash160, ripemd160, sha256d
from consensus.script import flags as F
from consensus.script.errors import ScriptError
from consensus.script.script import ScriptParseError, iter_ops, push_data
from consensus.script.sighash import (
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_DEFAULT,
    SIGHASH_SINGLE,
    SIGVERSION_BASE,
    SIGVERSION_WITNESS_V0,
    PrecomputedTxData,
    legacy_sighash,
    segwit_v0_sighash,
)
from consensus.script.standard import (
    ANCHOR,
    MULTISIG,
    PUBKEY,
    PUBKEYHASH,
    SCRIPTHASH,
    WITNESS_UNKNOWN,
    WITNESS_V0_KEYHASH,
    WITNESS_V0_SCRIPTHASH,
    WITNESS_V1_TAPROOT,
    p2pkh_script,
    solver,
)
from consensus.script.verify import verify_input
from consensus.serialize import compact_size
from consensus.tx import Transaction, TxOut
from wallet.keys import pubkey_from_secret, sign_digest

# Core's sighash names (SighashFromStr), exactly as written: "all" is not one of them.
SIGHASH_BY_NAME = {
    "DEFAULT": SIGHASH_DEFAULT,
    "ALL": SIGHASH_ALL,
    "NONE": 0x02,
    "SINGLE": SIGHASH_SINGLE,
    "ALL|ANYONECANPAY": 0x81,
    "NONE|ANYONECANPAY": 0x82,
    "SINGLE|ANYONECANPAY": 0x83,
}


class SighashError(ValueError):
    """A sighash name Core does not know; the message is Core's."""


def sighash_from_name(name: str | None) -> int:
    """Core's ParseSighashString: None is DEFAULT."""
    if name is None:
        return SIGHASH_DEFAULT
    value = SIGHASH_BY_NAME.get(name)
    if value is None:
        raise SighashError(f"'{name}' is not a valid sighash parameter.")
    return value


@dataclass
class KeyStore:
    """Core's FlatSigningProvider, the parts signing reads: private keys and public keys by
    hash160 of the public key, scripts by hash160 of the script (a P2WSH program's script
    is found by ripemd160 of the program, which is the same thing)."""

    secrets: dict[bytes, bytes] = field(default_factory=dict)
    pubkeys: dict[bytes, bytes] = field(default_factory=dict)
    scripts: dict[bytes, bytes] = field(default_factory=dict)

    def add_key(self, secret: bytes, compressed: bool = True) -> bytes:
        pub = pubkey_from_secret(secret, compressed)
        kid = hash160(pub)
        self.secrets[kid] = secret
        self.pubkeys[kid] = pub
        return pub

    def add_script(self, script: bytes) -> None:
        self.scripts[hash160(script)] = script


def push_all(stack: Sequence[bytes]) -> bytes:
    """Core's PushAll: OP_0 for an empty item, OP_1..OP_16 for a one-byte 1..16, else a push."""
    out = bytearray()
    for item in stack:
        if len(item) == 1 and 1 <= item[0] <= 16:
            out.append(0x50 + item[0])
        else:
            out += push_data(item)
    return bytes(out)


class _Signer:
    """One input being signed: Core's MutableTransactionSignatureCreator and SignStep."""

    def __init__(self, store: KeyStore, tx: Transaction, index: int, amount: int,
                 hash_type: int, txdata: PrecomputedTxData,
                 existing: dict[bytes, bytes] | None = None) -> None:
        self.store = store
        self.tx = tx
        self.index = index
        self.amount = amount
        self.hash_type = SIGHASH_ALL if hash_type == SIGHASH_DEFAULT else hash_type
        self.txdata = txdata
        self.existing = existing or {}

    def create_sig(self, pubkey: bytes, script_code: bytes, sigversion: int) -> bytes | None:
        found = self.existing.get(pubkey)
        if found is not None:
            return found
        secret = self.store.secrets.get(hash160(pubkey))
        if secret is None or pubkey_from_secret(secret, len(pubkey) == 33) != pubkey:
            return None
        if sigversion == SIGVERSION_WITNESS_V0:
            if len(pubkey) != 33:
                return None  # segwit v0 takes compressed keys only
            digest = segwit_v0_sighash(self.tx, self.index, script_code, self.amount,
                                       self.hash_type, self.txdata)
        else:
            digest = legacy_sighash(self.tx, self.index, script_code, self.hash_type,
                                    self.txdata)
        return sign_digest(secret, digest) + bytes((self.hash_type,))

    def step(self, script: bytes, sigversion: int) -> tuple[bool, list[bytes], str]:
        """SignStep: (solved, stack, script type)."""
        kind, sols = solver(script)
        if kind == PUBKEY:
            sig = self.create_sig(sols[0], script, sigversion)
            return (sig is not None, [sig] if sig is not None else [], kind)
        if kind == PUBKEYHASH:
            pub = self.store.pubkeys.get(sols[0])
            if pub is None:
                return False, [], kind
            sig = self.create_sig(pub, script, sigversion)
            if sig is None:
                return False, [], kind
            return True, [sig, pub], kind
        if kind == SCRIPTHASH:
            redeem = self.store.scripts.get(sols[0])
            return (redeem is not None, [redeem] if redeem is not None else [], kind)
        if kind == MULTISIG:
            required = sols[0][0]
            stack = [b""]  # the extra item CHECKMULTISIG pops
            for pub in sols[1:-1]:
                sig = self.create_sig(pub, script, sigversion)
                if sig is not None and len(stack) < required + 1:
                    stack.append(sig)
            solved = len(stack) == required + 1
            stack += [b""] * (required + 1 - len(stack))
            return solved, stack, kind
        if kind == WITNESS_V0_KEYHASH:
            return True, [sols[0]], kind
        if kind == WITNESS_V0_SCRIPTHASH:
            ws = self.store.scripts.get(ripemd160(sols[0]))
            return (ws is not None, [ws] if ws is not None else [], kind)
        if kind == ANCHOR:
            return True, [], kind
        return False, [], kind  # taproot without spend data, unknown witness, nonstandard


def produce_signature(signer: _Signer, spk: bytes) -> tuple[bytes, list[bytes], bool]:
    """Core's ProduceSignature, without the final verification: (scriptSig, witness, solved)."""
    solved, result, kind = signer.step(spk, SIGVERSION_BASE)
    witness: list[bytes] = []
    p2sh = False
    subscript = b""
    if solved and kind == SCRIPTHASH:
        subscript = result[0]
        solved, result, kind = signer.step(subscript, SIGVERSION_BASE)
        solved = solved and kind != SCRIPTHASH
        p2sh = True
    if solved and kind == WITNESS_V0_KEYHASH:
        ok, wres, _ = signer.step(p2pkh_script(result[0]), SIGVERSION_WITNESS_V0)
        solved = ok
        witness, result = wres, []
    elif solved and kind == WITNESS_V0_SCRIPTHASH:
        ws = result[0]
        ok, wres, sub = signer.step(ws, SIGVERSION_WITNESS_V0)
        solved = ok and sub not in (SCRIPTHASH, WITNESS_V0_SCRIPTHASH, WITNESS_V0_KEYHASH,
                                    WITNESS_V1_TAPROOT)
        witness, result = wres + [ws], []
    elif solved and kind == WITNESS_UNKNOWN:
        witness, result = result, []
    if p2sh:
        result.append(subscript)
    return push_all(result), witness, solved


def sign_transaction(tx: Transaction, store: KeyStore, spent: Sequence[TxOut | None],
                     hash_type: int = SIGHASH_DEFAULT
                     ) -> list[tuple[int, str]]:
    """Sign every input of tx (in place) that the store can; Core's SignTransaction. Returns
    [(input index, error)] for each input that does not verify afterwards, with Core's
    texts. spent[i] is the output input i spends (None: not known). An input that already
    verifies is left as it is."""
    errors: list[tuple[int, str]] = []
    known = all(o is not None for o in spent)
    outs = [o if o is not None else TxOut(0, b"") for o in spent]
    txdata = PrecomputedTxData(tx, outs) if known else PrecomputedTxData(tx)
    single = hash_type & ~SIGHASH_ANYONECANPAY == SIGHASH_SINGLE
    for i, txin in enumerate(tx.vin):
        out = spent[i]
        if out is None:
            errors.append((i, "Input not found or already spent"))
            continue
        if not _verifies(tx, i, outs, txdata):
            if not single or i < len(tx.vout):
                signer = _Signer(store, tx, i, out.value, hash_type, txdata,
                                 _signatures_in(tx, i, out, store, txdata))
                script_sig, witness, _ = produce_signature(signer, out.script_pubkey)
                txin.script_sig = script_sig
                txin.witness = witness
                tx.rehash()
        err = _verify_error(tx, i, outs, txdata)
        if err is not None:
            errors.append((i, err))
    return errors


def _verifies(tx: Transaction, i: int, outs: list[TxOut], txdata: PrecomputedTxData) -> bool:
    if not tx.vin[i].script_sig and not tx.vin[i].witness:
        return False
    return _verify_error(tx, i, outs, txdata) is None


def _verify_error(tx: Transaction, i: int, outs: list[TxOut], txdata: PrecomputedTxData
                  ) -> str | None:
    try:
        verify_input(tx, i, outs, F.STANDARD_SCRIPT_VERIFY_FLAGS, txdata, sigcache=None,
                     store=False)
    except ScriptError as err:
        if err.code == "INVALID_STACK_OPERATION":
            return "Unable to sign input, invalid stack size (possibly missing key)"
        if err.code == "SIG_NULLFAIL":
            return ("CHECK(MULTI)SIG failing with non-zero signature (possibly need more "
                    "signatures)")
        return err.message
    return None


def _signatures_in(tx: Transaction, i: int, out: TxOut, store: KeyStore,
                   txdata: PrecomputedTxData) -> dict[bytes, bytes]:
    """Signatures already in a partly signed input, matched to the keys of the script they
    are for (Core's DataFromTransaction), so that signing again adds to them: every push of
    the scriptSig and witness that verifies as an ECDSA signature by one of the keys."""
    txin = tx.vin[i]
    pushes = list(txin.witness)
    pushes += _pushes(txin.script_sig)
    if not pushes:
        return {}
    # The multisig script whose keys signed: the scriptPubKey, or the redeem or witness
    # script the input carries.
    keys: list[bytes] = []
    code = None
    for script in [out.script_pubkey, *pushes]:
        kind, sols = solver(script)
        if kind == MULTISIG:
            keys, code = sols[1:-1], script
            break
    if not keys or code is None:
        return {}
    kind, _ = solver(out.script_pubkey)
    if kind == SCRIPTHASH:
        redeem = _pushes(txin.script_sig)[-1:]
        kind = solver(redeem[0])[0] if redeem else kind
    sigversion = SIGVERSION_WITNESS_V0 if kind == WITNESS_V0_SCRIPTHASH else SIGVERSION_BASE
    found: dict[bytes, bytes] = {}
    for sig in pushes:
        if len(sig) < 9 or sig[0] != 0x30:
            continue
        ht = sig[-1]
        if sigversion == SIGVERSION_WITNESS_V0:
            digest = segwit_v0_sighash(tx, i, code, out.value, ht, txdata)
        else:
            digest = legacy_sighash(tx, i, code, ht, txdata)
        for pub in keys:
            if pub in found:
                continue
            try:
                if PublicKey(pub).verify(sig[:-1], digest, hasher=None):
                    found[pub] = sig
                    break
            except (ValueError, TypeError):
                continue
    return found


def _pushes(script: bytes) -> list[bytes]:
    out: list[bytes] = []
    try:
        for _op, data, _ in iter_ops(script):
            if data is not None:
                out.append(data)
    except ScriptParseError:
        return []
    return out


# --- signed messages (Core's MessageSign / MessageVerify) ----------------------------------

MESSAGE_MAGIC = b"Bitcoin Signed Message:\n"


def message_hash(message: str) -> bytes:
    """sha256d of the magic and the message, each with its CompactSize length."""
    m = message.encode()
    return sha256d(compact_size(len(MESSAGE_MAGIC)) + MESSAGE_MAGIC + compact_size(len(m)) + m)


def sign_message(secret: bytes, message: str, compressed: bool = True) -> str:
    """A base64 compact signature: header 27 + recovery id (+4 for a compressed key), r, s."""
    sig = PrivateKey(secret).sign_recoverable(message_hash(message), hasher=None)
    header = 27 + sig[64] + (4 if compressed else 0)
    return base64.b64encode(bytes((header,)) + sig[:64]).decode()


class MalformedSignature(ValueError):
    pass


def recover_message_pubkey(signature: str, message: str) -> bytes | None:
    """The public key (compressed or not, as the header says) that made the signature, None
    if none can be recovered; MalformedSignature if it is not base64."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignature("Malformed base64 encoding") from None
    if len(raw) != 65 or not 27 <= raw[0] <= 34:
        return None
    header = raw[0] - 27
    compressed = header >= 4
    recid = header & 3
    try:
        pub = PublicKey.from_signature_and_message(raw[1:] + bytes((recid,)),
                                                   message_hash(message), hasher=None)
    except (ValueError, TypeError):
        return None
    return pub.format(compressed)
