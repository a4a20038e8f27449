"""PSBT (BIP174/371): Core's vectors parse (and re-serialize as Core does), invalid ones fail
with what is wrong; combine, finalize and extract on a PSBT the wallet signs."""

import pytest

from consensus.params import REGTEST
from consensus.script import flags as F
from consensus.script.verify import verify_transaction
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.conftest import load_json
from wallet.address import address_to_script
from wallet.psbt import PSBT, PSBTError
from wallet.signer import sign, update
from wallet.wallet import Wallet

V = load_json("psbt_vectors.json")


@pytest.mark.parametrize("text", V["valid"])
def test_valid_vectors_parse_and_reserialize(text):
    p = PSBT.from_base64(text)
    again = PSBT.from_base64(p.to_base64())
    assert again.serialize() == p.serialize()
    assert again.tx.txid == p.tx.txid
    # Core writes non_witness_utxo without its witness; only those vectors change
    has_witness_prev = any(i.non_witness_utxo is not None and i.non_witness_utxo.has_witness()
                           for i in p.inputs)
    assert (p.to_base64() == text) != has_witness_prev


def test_vector_fields():
    p = PSBT.from_base64(V["valid"][3])  # P2SH-P2WSH multisig input, one partial signature
    inp = p.inputs[0]
    assert inp.witness_utxo.value == 199909013
    assert len(inp.partial_sigs) == 1
    assert inp.redeem_script.hex().startswith("0020")
    assert {o[0].hex() for o in inp.bip32_derivs.values()} == {"b4a6ba67"}
    assert p.fee() == 1013
    tap = PSBT.from_base64(V["valid"][7]).inputs[0]
    assert len(tap.tap_key_sig) == 64 and len(tap.tap_internal_key) == 32
    ((leaves, (fp, path)),) = tap.tap_bip32_derivs.values()
    assert leaves == [] and fp.hex() == "772b2da7" and path[0] == 86 | 1 << 31
    assert PSBT.from_base64(V["valid"][5]).xpubs  # a global xpub


@pytest.mark.parametrize("text,what", V["invalid"])
def test_invalid_vectors(text, what):
    with pytest.raises(PSBTError, match="TX decode failed"):
        PSBT.from_base64(text)


def test_bad_base64_and_duplicates():
    with pytest.raises(PSBTError, match="base64"):
        PSBT.from_base64("not base64!")
    raw = PSBT.from_base64(V["valid"][4]).serialize()
    # the global map given twice the same key
    dup = raw[:5] + raw[5:5 + 1 + 1 + 1 + raw[7]] * 2 + raw[5 + 3 + raw[7]:]
    with pytest.raises(PSBTError, match="Duplicate Key"):
        PSBT.parse(dup)


def _funded(tmp_path, name, kinds):
    w = Wallet.create(tmp_path / name, name, REGTEST)
    coins = []
    for i, kind in enumerate(kinds):
        prev = Transaction(2, [TxIn(OutPoint(bytes([i + 1]) * 32, 0))],
                           [TxOut(100_000, address_to_script(w.new_address(kind), REGTEST))])
        w.add_tx(prev, height=1, block_hash=b"\x02" * 32, block_time=0, block_pos=i + 1)
        coins.append((prev, 0))
    return w, coins


def test_two_signers_combine_finalize_extract(tmp_path):
    a, ca = _funded(tmp_path, "a", ["bech32", "bech32m"])
    b, cb = _funded(tmp_path, "b", ["legacy", "p2sh-segwit"])
    spends = ca + cb
    tx = Transaction(2, [TxIn(OutPoint(p.txid, n), b"", 0xFFFFFFFD) for p, n in spends],
                     [TxOut(390_000, address_to_script(a.new_address(), REGTEST))])
    base = PSBT.from_tx(tx)
    pa, pb = PSBT.from_base64(base.to_base64()), PSBT.from_base64(base.to_base64())
    update(a, pa)
    update(b, pb)
    # a lacks b's UTXOs, so its taproot input cannot be signed yet: BIP341 commits to all
    assert sign(a, pa) == 1
    assert sign(b, pb) == 2
    assert not pa.finalize() and not pb.finalize()
    pa.combine(pb)
    assert sign(a, pa) == 1  # now every UTXO is known: the taproot input too
    assert pa.finalize() and pa.is_complete()
    final = pa.extract()
    assert pa.fee() == 10_000
    spent = [p.vout[n] for p, n in spends]
    verify_transaction(final, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, cache=None)
    # the finalizer kept only what BIP174 says to keep
    assert all(not i.partial_sigs and not i.bip32_derivs for i in pa.inputs)
    # round trip of the finished PSBT
    assert PSBT.from_base64(pa.to_base64()).extract().serialize() == final.serialize()


def test_combine_refuses_another_transaction(tmp_path):
    p1 = PSBT.from_base64(V["valid"][0])
    p2 = PSBT.from_base64(V["valid"][3])
    with pytest.raises(PSBTError, match="not compatible"):
        p1.combine(p2)


def test_extract_incomplete_refused():
    with pytest.raises(PSBTError, match="not complete"):
        PSBT.from_base64(V["valid"][0]).extract()
