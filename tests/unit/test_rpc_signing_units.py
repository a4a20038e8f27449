"""wallet.sign (Core's script/sign.cpp and signed messages) and the raw transaction builder's
handling of a JSON object with a repeated key, without a node."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from consensus.hashes import hash160, sha256
from consensus.params import REGTEST
from consensus.script.standard import (
    PAY_TO_ANCHOR,
    multisig_script,
    p2pk_script,
    p2pkh_script,
    p2sh_script,
    p2wpkh_script,
    p2wsh_script,
)
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.rpc.errors import RPCError
from node.rpc.jsonutil import json_object
from node.rpc.rawtransactions import construct_transaction
from wallet.address import script_to_address
from wallet.keys import pubkey_from_secret
from wallet.sign import (
    KeyStore,
    SighashError,
    recover_message_pubkey,
    sighash_from_name,
    sign_message,
    sign_transaction,
)

SECRETS = [bytes([i]) * 32 for i in (5, 6, 7)]
PUBS = [pubkey_from_secret(s) for s in SECRETS]


def spending(spk: bytes, value: int = 10_000) -> tuple[Transaction, TxOut]:
    tx = Transaction(2, [TxIn(OutPoint(b"\x11" * 32, 0), b"", 0xFFFFFFFD)],
                     [TxOut(value - 1000, p2wpkh_script(b"\x22" * 20))])
    return tx, TxOut(value, spk)


def store_with(*secrets: bytes, scripts: tuple[bytes, ...] = ()) -> KeyStore:
    store = KeyStore()
    for s in secrets:
        store.add_key(s)
    for script in scripts:
        store.add_script(script)
    return store


@pytest.mark.parametrize("make", [
    lambda: (p2pk_script(PUBS[0]), ()),
    lambda: (p2pkh_script(hash160(PUBS[0])), ()),
    lambda: (p2wpkh_script(hash160(PUBS[0])), ()),
    lambda: (p2sh_script(hash160(p2wpkh_script(hash160(PUBS[0])))),
             (p2wpkh_script(hash160(PUBS[0])),)),
    lambda: (p2wsh_script(sha256(p2pkh_script(hash160(PUBS[0])))),
             (p2pkh_script(hash160(PUBS[0])),)),
    lambda: (p2sh_script(hash160(multisig_script(1, PUBS))), (multisig_script(1, PUBS),)),
])
def test_every_standard_kind_signs_and_verifies(make):
    spk, scripts = make()
    tx, out = spending(spk)
    assert sign_transaction(tx, store_with(SECRETS[0], scripts=scripts), [out]) == []


def test_multisig_in_two_passes_keeps_the_first_signature():
    ws = multisig_script(2, PUBS)
    spk = p2sh_script(hash160(p2wsh_script(sha256(ws))))
    tx, out = spending(spk)
    scripts = (ws, p2wsh_script(sha256(ws)))
    [(idx, err)] = sign_transaction(tx, store_with(SECRETS[2], scripts=scripts), [out])
    assert idx == 0
    assert "possibly need more signatures" in err
    assert sign_transaction(tx, store_with(SECRETS[0], scripts=scripts), [out]) == []


def test_missing_key_anchor_and_missing_coin():
    tx, out = spending(p2pkh_script(hash160(PUBS[0])))
    [(idx, err)] = sign_transaction(tx, store_with(SECRETS[1]), [out])
    assert idx == 0
    assert err == "Unable to sign input, invalid stack size (possibly missing key)"
    tx, out = spending(PAY_TO_ANCHOR)
    assert sign_transaction(tx, KeyStore(), [out]) == []
    assert tx.vin[0].script_sig == b"" and tx.vin[0].witness == []
    assert sign_transaction(tx, KeyStore(), [None]) == [(0, "Input not found or already spent")]


def test_sighash_names_are_core_s_exactly():
    assert sighash_from_name(None) == 0 and sighash_from_name("ALL|ANYONECANPAY") == 0x81
    with pytest.raises(SighashError, match="'all' is not a valid sighash parameter."):
        sighash_from_name("all")


def test_signed_message_round_trip():
    sig = sign_message(SECRETS[0], "hello")
    assert recover_message_pubkey(sig, "hello") == PUBS[0]
    assert recover_message_pubkey(sig, "other") != PUBS[0]
    unc = sign_message(SECRETS[0], "hello", compressed=False)
    assert recover_message_pubkey(unc, "hello") == pubkey_from_secret(SECRETS[0], False)


def test_repeated_output_keys_are_seen():
    addr = script_to_address(p2wpkh_script(b"\x01" * 20), REGTEST)
    outputs = json.loads(f'{{"{addr}": 1, "{addr}": 1}}', parse_float=Decimal,
                         object_pairs_hook=json_object)
    with pytest.raises(RPCError, match="duplicated address"):
        construct_transaction(REGTEST, [], outputs, 0, None)
    data = json.loads('{"data": "aa", "data": "bb"}', object_pairs_hook=json_object)
    with pytest.raises(RPCError, match="duplicate key: data"):
        construct_transaction(REGTEST, [], data, 0, None)
    plain = json.loads(f'{{"{addr}": 1}}', object_pairs_hook=json_object)
    assert type(plain) is dict
