"""The wallet as PSBT updater and signer: it adds what it knows of each input and output
(previous transactions, BIP32 origins of its keys, redeem scripts, Taproot internal keys) and
signs the inputs it has keys for: P2WPKH, P2SH-P2WPKH and P2PKH with ECDSA, P2TR key path with
Schnorr (BIP340/341). Signature hashes are consensus code, computed with one
PrecomputedTxData per transaction so that a 200-input transaction costs 200 hashes, not
200 times 200.
"""

from __future__ import annotations

from consensus.hashes import hash160
from consensus.script.script import is_p2pkh, is_p2sh, witness_program
from consensus.script.sighash import (
    SIGHASH_ALL,
    SIGHASH_DEFAULT,
    PrecomputedTxData,
    legacy_sighash,
    segwit_v0_sighash,
    taproot_sighash,
)
from consensus.script.standard import p2pkh_script, p2sh_script, p2wpkh_script
from consensus.tx import TxOut
from wallet.accounts import Account
from wallet.errors import RPC_INVALID_PARAMETER, WalletError, unlock_needed
from wallet.keys import sign_digest, sign_taproot_key_path
from wallet.psbt import PSBT, PSBTInput
from wallet.wallet import Wallet

SIGHASH_NAMES = {
    "DEFAULT": 0x00, "ALL": 0x01, "NONE": 0x02, "SINGLE": 0x03, "ALL|ANYONECANPAY": 0x81,
    "NONE|ANYONECANPAY": 0x82, "SINGLE|ANYONECANPAY": 0x83,
}


def parse_sighash(name: str | None) -> int | None:
    if name is None:
        return None
    value = SIGHASH_NAMES.get(name.upper())
    if value is None:
        raise WalletError(RPC_INVALID_PARAMETER, f"'{name}' is not a valid sighash parameter.")
    return value


def update(wallet: Wallet, psbt: PSBT, bip32derivs: bool = True) -> None:
    """Fill in what the wallet knows: UTXOs of its own coins, key origins, scripts."""
    for txin, inp in zip(psbt.tx.vin, psbt.inputs, strict=True):
        if inp.finalized:
            continue
        prev = wallet.txs.get(txin.prevout.hash)
        if prev is not None and txin.prevout.n < len(prev.tx.vout):
            utxo = prev.tx.vout[txin.prevout.n]
            wp = witness_program(utxo.script_pubkey)
            if inp.witness_utxo is None and (wp is not None or is_p2sh(utxo.script_pubkey)):
                inp.witness_utxo = utxo
            if inp.non_witness_utxo is None and not (wp is not None and wp[0] == 1):
                inp.non_witness_utxo = prev.tx  # segwit v0 too, as Core (fee-attack defence)
        owned = _owned(wallet, txin.prevout.n, inp)
        if owned is None:
            continue
        utxo, acc, index = owned
        exp = acc.expansion(index)
        key = exp.keys[0]
        spk = utxo.script_pubkey
        if is_p2sh(spk) and inp.redeem_script is None:
            inp.redeem_script = p2wpkh_script(hash160(key.pubkey))
        if bip32derivs:
            _add_origin(inp, spk, key.pubkey, (key.fingerprint, key.path))
    for out, pout in zip(psbt.tx.vout, psbt.outputs, strict=True):
        owner = wallet.owner(out.script_pubkey)
        if owner is None:
            continue
        acc, index = owner
        key = acc.expansion(index).keys[0]
        if is_p2sh(out.script_pubkey) and pout.redeem_script is None:
            pout.redeem_script = p2wpkh_script(hash160(key.pubkey))
        if bip32derivs:
            _add_origin(pout, out.script_pubkey, key.pubkey, (key.fingerprint, key.path))


def _owned(wallet: Wallet, n: int, inp: PSBTInput) -> tuple[TxOut, Account, int] | None:
    """The output an input spends, when it is the wallet's, and which descriptor owns it."""
    utxo = inp.utxo(n)
    if utxo is None:
        return None
    owner = wallet.owner(utxo.script_pubkey)
    return None if owner is None else (utxo, owner[0], owner[1])


def _add_origin(rec, spk: bytes, pubkey: bytes, origin) -> None:  # noqa: ANN001
    wp = witness_program(spk)
    if wp is not None and wp[0] == 1:
        rec.tap_internal_key = pubkey[1:]
        rec.tap_bip32_derivs.setdefault(pubkey[1:], ([], origin))
    else:
        rec.bip32_derivs.setdefault(pubkey, origin)


def sign(wallet: Wallet, psbt: PSBT, sighash: int | None = None) -> int:
    """Sign every input the wallet can; returns how many it signed. Raises unlock-needed when
    an input is the wallet's but its keys are locked."""
    tx = psbt.tx
    spent = psbt.spent_outputs()
    txdata = PrecomputedTxData(tx, spent) if spent is not None else PrecomputedTxData(tx)
    signed = 0
    for i, (txin, inp) in enumerate(zip(tx.vin, psbt.inputs, strict=True)):
        if inp.finalized:
            continue
        owned = _owned(wallet, txin.prevout.n, inp)
        if owned is None:
            continue
        utxo, acc, index = owned
        exp = acc.expansion(index)
        if len(exp.keys) != 1:
            continue  # multisig and scripts: the whole signer (rpc_psbt.fill_psbt) does those
        pubkey = exp.keys[0].pubkey
        locked = wallet.locked  # (wipes the keys first if the unlock time has run out)
        if acc.private is None:
            if locked:
                raise unlock_needed()
            continue  # watch-only descriptor
        secret = acc.secret_for(pubkey, index)
        if secret is None:
            continue
        spk = utxo.script_pubkey
        ht = inp.sighash_type if inp.sighash_type is not None else sighash
        wp = witness_program(spk)
        if wp is not None and wp[0] == 1 and len(wp[1]) == 32:
            if spent is None or exp.subscripts or len(acc.desc.subs) > 0:
                continue  # (a script tree: its tweak is the whole signer's business)
            if spent is None:
                continue  # BIP341 signs every spent output: all must be known
            ht = SIGHASH_DEFAULT if ht is None else ht
            h = taproot_sighash(tx, i, txdata, ht)
            sig = sign_taproot_key_path(secret, h)
            inp.tap_key_sig = sig + (bytes((ht,)) if ht else b"")
            signed += 1
            continue
        ht = SIGHASH_ALL if ht in (None, SIGHASH_DEFAULT) else ht
        code = p2pkh_script(hash160(pubkey))
        if wp is not None and wp[0] == 0 and wp[1] == hash160(pubkey):
            h = segwit_v0_sighash(tx, i, code, utxo.value, ht, txdata)
        elif is_p2sh(spk) and spk == p2sh_script(hash160(p2wpkh_script(hash160(pubkey)))):
            inp.redeem_script = p2wpkh_script(hash160(pubkey))
            h = segwit_v0_sighash(tx, i, code, utxo.value, ht, txdata)
        elif is_p2pkh(spk) and spk == code:
            if inp.non_witness_utxo is None and inp.witness_utxo is None:
                continue
            h = legacy_sighash(tx, i, spk, ht, txdata)
        else:
            continue
        inp.partial_sigs[pubkey] = sign_digest(secret, h) + bytes((ht,))
        signed += 1
    return signed
