"""Building and signing: fee at the asked rate, change of the recipients' kind, anti-fee-
sniping lock time, BIP125 signalling, fees from the recipients, several recipients; every
input kind signed and checked by the consensus script interpreter."""

import random

import pytest

from consensus.params import REGTEST
from consensus.script import flags as F
from consensus.script.script import witness_program
from consensus.script.verify import verify_transaction
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from wallet import spend
from wallet.address import address_to_script
from wallet.errors import WalletError
from wallet.spend import Recipient, create_transaction, sign_transaction
from wallet.wallet import Wallet

NOW = 1_700_000_000
OTHER = address_to_script("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", REGTEST)
OTHER_TR = bytes.fromhex(
    "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")


# A fixed seed (BIP39's first vector): each test signs the same bytes every run. With a fresh
# seed, signature lengths vary from run to run (a 1-in-256 shorter S), so a fee bound that
# holds for one run's keys could fail on another's.
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])


def _wallet(tmp_path, values, kind="bech32", passphrase=None):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, passphrase=passphrase, mnemonic=MNEMONIC)
    if passphrase:
        w.unlock(passphrase, 60)
    with w.db.atomic():
        for i, v in enumerate(values):
            k = kind if isinstance(kind, str) else kind[i % len(kind)]
            src = bytes([i + 1]) * 32 if i < 255 else i.to_bytes(32, "big")
            prev = Transaction(2, [TxIn(OutPoint(src, 0))],
                               [TxOut(v, address_to_script(w.new_address(k), REGTEST))])
            w.add_tx(prev, height=10, block_hash=b"\x07" * 32, block_time=NOW, block_pos=i + 1)
        w.set_tip(200, b"\x08" * 32, NOW)
    return w


def _check(w, tx):
    spent = [w.prevout(i.prevout.hash, i.prevout.n) for i in tx.vin]
    verify_transaction(tx, spent, F.STANDARD_SCRIPT_VERIFY_FLAGS, cache=None)
    return sum(o.value for o in spent) - tx.total_out()


@pytest.mark.parametrize("kind", ["bech32", "bech32m", "legacy", "p2sh-segwit"])
def test_each_input_kind_signs_and_verifies(tmp_path, kind):
    w = _wallet(tmp_path, [300_000, 200_000], kind)
    built = create_transaction(w, [Recipient(OTHER, 400_000)], 2000, rng=random.Random(1),
                               now=NOW)
    tx = sign_transaction(w, built.tx)
    fee = _check(w, tx)
    assert fee == built.fee
    # the estimate is an upper bound: the fee rate paid is at least the one asked for, and
    # within 2 vbytes of it (Core's assert_fee_amount; ECDSA signatures of 71 bytes or less)
    _assert_fee_amount(fee, tx.vsize, 2000)


def test_change_locktime_rbf(tmp_path):
    w = _wallet(tmp_path, [1_000_000])
    built = create_transaction(w, [Recipient(OTHER, 100_000)], 5000, rng=random.Random(2),
                               now=NOW)
    tx = built.tx
    assert len(tx.vout) == 2 and built.change_pos >= 0
    change = tx.vout[built.change_pos]
    assert w.is_change(change.script_pubkey)
    assert witness_program(change.script_pubkey)[0] == 0  # bech32 change for a bech32 payee
    assert tx.total_out() + built.fee == 1_000_000
    assert all(i.sequence == spend.SEQUENCE_RBF for i in tx.vin)
    assert tx.locktime in range(101, 201)  # tip height, sometimes up to 100 below
    no_rbf = create_transaction(w, [Recipient(OTHER, 100_000)], 5000, replaceable=False,
                                rng=random.Random(2), now=NOW).tx
    assert all(i.sequence == 0xFFFFFFFE for i in no_rbf.vin)
    locktimes = {create_transaction(w, [Recipient(OTHER, 1000)], 5000, rng=random.Random(s),
                                    now=NOW).tx.locktime for s in range(60)}
    assert 200 in locktimes and min(locktimes) < 200  # anti-fee-sniping's random back-off


def test_stale_tip_gives_no_locktime(tmp_path):
    w = _wallet(tmp_path, [1_000_000])
    tx = create_transaction(w, [Recipient(OTHER, 100_000)], 5000,
                            now=NOW + 9 * 3600).tx
    assert tx.locktime == 0


def test_taproot_recipient_gets_taproot_change(tmp_path):
    w = _wallet(tmp_path, [1_000_000])
    built = create_transaction(w, [Recipient(OTHER_TR, 100_000)], 5000, now=NOW)
    assert witness_program(built.tx.vout[built.change_pos].script_pubkey)[0] == 1


def test_several_recipients_exact(tmp_path):
    w = _wallet(tmp_path, [500_000, 500_000, 500_000])
    recips = [Recipient(OTHER, 600_000), Recipient(OTHER_TR, 300_000)]
    built = create_transaction(w, recips, 3000, now=NOW)
    tx = sign_transaction(w, built.tx)
    outs = [o for i, o in enumerate(tx.vout) if i != built.change_pos]
    assert sorted(o.value for o in outs) == [300_000, 600_000]
    assert _check(w, tx) == built.fee


def test_subtract_fee_send_max(tmp_path):
    w = _wallet(tmp_path, [400_000, 350_000])
    built = create_transaction(w, [Recipient(OTHER, 750_000, subtract_fee=True)], 4000, now=NOW)
    tx = sign_transaction(w, built.tx)
    assert len(tx.vout) == 1  # everything went: no change
    assert tx.vout[0].value == 750_000 - built.fee
    assert _check(w, tx) == built.fee
    _assert_fee_amount(built.fee, tx.vsize, 4000)


def test_subtract_fee_split_between_recipients(tmp_path):
    w = _wallet(tmp_path, [1_000_000])
    recips = [Recipient(OTHER, 300_000, True), Recipient(OTHER_TR, 200_000, True)]
    built = create_transaction(w, recips, 3000, now=NOW)
    outs = [o.value for i, o in enumerate(built.tx.vout) if i != built.change_pos]
    assert sum(outs) == 500_000 - built.fee
    assert abs((300_000 - max(outs)) - (200_000 - min(outs))) <= 1


def test_errors(tmp_path):
    w = _wallet(tmp_path, [100_000])
    with pytest.raises(WalletError) as e:
        create_transaction(w, [Recipient(OTHER, 5_000_000)], 2000, now=NOW)
    assert e.value.code == -6
    assert "need 0.05000" in e.value.message and "0.00100000 BTC available" in e.value.message
    with pytest.raises(WalletError, match="amount too small"):
        create_transaction(w, [Recipient(OTHER, 100)], 2000, now=NOW)  # dust
    with pytest.raises(WalletError, match="lower than the minimum fee rate setting"):
        create_transaction(w, [Recipient(OTHER, 10_000)], 500, now=NOW)
    with pytest.raises(WalletError, match="too small to pay the fee"):
        create_transaction(w, [Recipient(OTHER, 300, subtract_fee=True)], 2000, now=NOW)


def test_fee_above_maxtxfee_refused(tmp_path):
    w = _wallet(tmp_path, [50 * 100_000_000])
    with pytest.raises(WalletError, match="Fee exceeds maximum"):
        create_transaction(w, [Recipient(OTHER, 10_000)], 100_000_000, now=NOW)


def test_locked_wallet_cannot_sign(tmp_path):
    w = _wallet(tmp_path, [100_000], passphrase="pw")
    built = create_transaction(w, [Recipient(OTHER, 50_000)], 2000, now=NOW)
    w.lock()
    with pytest.raises(WalletError) as e:
        sign_transaction(w, built.tx)
    assert e.value.code == -13
    w.unlock("pw", 10)
    _check(w, sign_transaction(w, built.tx))


def test_unconfirmed_foreign_coins_are_not_spent(tmp_path):
    w = _wallet(tmp_path, [100_000])
    incoming = Transaction(2, [TxIn(OutPoint(b"\x55" * 32, 0))],
                           [TxOut(900_000, address_to_script(w.new_address(), REGTEST))])
    w.add_tx(incoming, in_mempool=True)
    assert w.balances()["untrusted_pending"] == 900_000
    with pytest.raises(WalletError) as e:
        create_transaction(w, [Recipient(OTHER, 500_000)], 2000, now=NOW)
    assert e.value.code == -6


@pytest.mark.parametrize("template", ["pkh({})", "sh(wpkh({}))", "wpkh({})", "tr({})"])
def test_imported_single_keys_sign(tmp_path, template):
    import hashlib

    from wallet.address import encode_wif
    from wallet.descriptors import add_checksum

    w = _wallet(tmp_path, [])
    wif = encode_wif(hashlib.sha256(template.encode()).digest(), REGTEST)
    acc = w.import_descriptor(add_checksum(template.format(wif)), NOW, False, False, None,
                              "imported")
    script = acc.expansion(0).scripts[0]
    assert w.is_mine(script) and wif not in acc.descriptor  # stored public, sealed private
    prev = Transaction(2, [TxIn(OutPoint(b"\x99" * 32, 0))], [TxOut(250_000, script)])
    w.add_tx(prev, height=20, block_hash=b"\x09" * 32, block_time=NOW, block_pos=1)
    built = create_transaction(w, [Recipient(OTHER, 200_000)], 2000, now=NOW)
    assert [c.txid for c in built.coins] == [prev.txid]
    assert _check(w, sign_transaction(w, built.tx)) == built.fee
    with pytest.raises(WalletError) as e:  # only ranged single-key descriptors can be active
        w.import_descriptor(add_checksum(template.format(wif)), NOW, True, False, None, None)
    assert e.value.code == -8


def test_import_into_encrypted_wallet_needs_unlock(tmp_path):
    import hashlib

    from wallet.address import encode_wif
    from wallet.descriptors import add_checksum

    w = _wallet(tmp_path, [], passphrase="pw")
    w.lock()
    desc = add_checksum(f"pkh({encode_wif(hashlib.sha256(b'x').digest(), REGTEST)})")
    with pytest.raises(WalletError) as e:
        w.import_descriptor(desc, NOW, False, False, None, None)
    assert e.value.code == -13
    w.unlock("pw", 10)
    acc = w.import_descriptor(desc, NOW, False, False, None, None)
    assert acc.secret is not None and b"pkh(c" not in acc.secret  # sealed


# -- the fee against the signed size, as Core's functional tests check it -------------------------
# Core's assert_fee_amount(fee, size, rate): at least the fee of the transaction's size, at most
# that of 2 vbytes more. The wallet sets the fee from the largest size the signed transaction can
# have (71-byte ECDSA signatures: its own are ground to a low R; the segwit marker and empty
# witnesses only when an input has a witness; the real input and output counts), so the signed
# transaction is never larger and at most a byte or two smaller (a signature of 70 bytes or
# less: an R or S with a leading zero byte, about one in 128).

KINDS = ("legacy", "p2sh-segwit", "bech32", "bech32m")
P2PKH_OTHER = bytes.fromhex("76a914") + b"\x42" * 20 + bytes.fromhex("88ac")
P2SH_OTHER = bytes.fromhex("a914") + b"\x43" * 20 + b"\x87"


def _core_fee(size, rate):
    """Core's get_fee: the fee of size vbytes at rate sat/kvB, rounded up to the satoshi."""
    return (size * rate + 999) // 1000


def _assert_fee_amount(fee, size, rate):
    assert _core_fee(size, rate) <= fee <= _core_fee(size + 2, rate), (fee, size, rate)


def _kind_of(script):
    wp = witness_program(script)
    if wp is not None:
        return "bech32m" if wp[0] == 1 else "bech32"
    return "p2sh-segwit" if script[0] == 0xA9 else "legacy"


@pytest.mark.parametrize("seed", range(8))
def test_fee_within_cores_bounds_for_every_input_kind(tmp_path, seed):
    rng = random.Random(seed)
    per_kind = 5
    w = _wallet(tmp_path, [rng.randrange(30_000, 3_000_000) for _ in range(4 * per_kind)], KINDS)
    by_kind = {k: [] for k in KINDS}
    for c in w.coins():
        by_kind[_kind_of(c.script)].append(c)
    assert all(len(v) == per_kind for v in by_kind.values())
    payees = [OTHER, OTHER_TR, P2PKH_OTHER, P2SH_OTHER]
    for rate in (1000, 2000, 3000, 4531, 7000, 25_000):
        # several inputs of each kind, or of one kind only (all legacy: no witness at all)
        kinds = [rng.choice(KINDS)] if rng.random() < 0.3 else list(KINDS)
        preset = [c for k in kinds for c in rng.sample(by_kind[k], rng.randrange(2, per_kind + 1))]
        total = sum(c.value for c in preset)
        subtract = rng.random() < 0.25
        recips = [Recipient(rng.choice(payees), total // 2, subtract)]
        if rng.random() < 0.5:
            recips.append(Recipient(rng.choice(payees), total // 5))
        built = create_transaction(w, recips, rate, preset=preset, add_inputs=False,
                                   rng=rng, now=NOW)
        assert built.change_pos >= 0  # (without change the leftover goes to the fee)
        tx = sign_transaction(w, built.tx)
        fee = _check(w, tx)
        assert fee == built.fee
        _assert_fee_amount(fee, tx.vsize, rate)


def test_fee_within_cores_bounds_legacy_wallet_many_coins(tmp_path):
    # Core's wallet_send: a wallet of P2PKH coinbase coins and hundreds of other coins. The
    # input count is one byte however many coins there are to choose from; a transaction of
    # P2PKH inputs only has no segwit marker and no empty witnesses to pay for
    w = _wallet(tmp_path, [300_000] * 12 + [20_000] * 260, ["legacy"] * 12 + ["bech32"] * 260)
    legacy = [c for c in w.coins() if _kind_of(c.script) == "legacy"]
    for seed, rate in enumerate((1000, 2000, 3000, 4531, 7000)):
        rng = random.Random(seed)
        for preset in (None, legacy):
            built = create_transaction(w, [Recipient(OTHER, 2_500_000)], rate, rng=rng,
                                       preset=preset, add_inputs=preset is None, now=NOW)
            assert len(built.tx.vin) < 253 and built.change_pos >= 0
            tx = sign_transaction(w, built.tx)
            assert _check(w, tx) == built.fee
            _assert_fee_amount(built.fee, tx.vsize, rate)
            if preset:
                assert len(tx.vin) == 12 and not tx.has_witness()


def test_sendall_fee_within_cores_bounds(tmp_path):
    from wallet.spend import SendAllOutput, create_sendall

    w = _wallet(tmp_path, [400_000, 300_000, 200_000, 100_000], ["legacy"])
    built = create_sendall(w, [SendAllOutput("", OTHER, None)], 3000, now=NOW)
    tx = sign_transaction(w, built.tx)
    assert _check(w, tx) == built.fee
    _assert_fee_amount(built.fee, tx.vsize, 3000)
