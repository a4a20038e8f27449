"""Pieces of the wallet that follow Bitcoin Core's rules, tested without a node: trust of
unconfirmed chains, IsSpent, the passphrase KDF and null characters, the keypool window
with hardened derivation, importable (normalized) descriptor strings, subtract-fee-from-
outputs parsing, DecodeHexTx's choice, and the lowest-larger coin."""

import random

import pytest

from consensus.params import REGTEST
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from wallet import coinselect as cs
from wallet import crypto
from wallet.accounts import normalized_public
from wallet.address import address_to_script
from wallet.bip32 import ExtKey
from wallet.descriptors import add_checksum, parse_descriptor
from wallet.errors import WalletError
from wallet.rpc import decode_hex_tx
from wallet.rpc_send import subtract_positions
from wallet.wallet import Wallet

NOW = 1_700_000_000
OTHER = address_to_script("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", REGTEST)


def _funded(tmp_path, lookahead=5):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, lookahead=lookahead)
    script = address_to_script(w.new_address(), REGTEST)
    coin = Transaction(2, [TxIn(OutPoint(b"\x01" * 32, 0))], [TxOut(100_000, script)])
    w.add_tx(coin, height=1, block_hash=b"\x02" * 32, block_time=NOW, block_pos=1)
    w.set_tip(1, b"\x02" * 32, NOW)
    return w, coin


def test_spending_two_outputs_of_one_unconfirmed_parent_is_trusted(tmp_path):
    w, coin = _funded(tmp_path)
    a = address_to_script(w.new_address(), REGTEST)
    b = address_to_script(w.new_address(), REGTEST)
    parent = Transaction(2, [TxIn(OutPoint(coin.txid, 0))], [TxOut(40_000, a), TxOut(50_000, b)])
    w.add_tx(parent, in_mempool=True)
    child = Transaction(2, [TxIn(OutPoint(parent.txid, 0)), TxIn(OutPoint(parent.txid, 1))],
                        [TxOut(80_000, address_to_script(w.new_address(), REGTEST))])
    w.add_tx(child, in_mempool=True)
    # the parent is reached twice; it was once taken for a cycle and the child distrusted
    assert w.is_trusted(w.txs[child.txid])
    assert [c.value for c in w.coins()] == [80_000]


def test_is_spent_as_core(tmp_path):
    w, coin = _funded(tmp_path)
    spend = Transaction(2, [TxIn(OutPoint(coin.txid, 0))], [TxOut(90_000, OTHER)])
    w.add_tx(spend)  # refused by the mempool: still spends (Core's IsSpent)
    assert w.is_spent((coin.txid, 0)) and w.depth(w.txs[spend.txid]) == 0
    assert w.balances()["nonmempool"] == -100_000
    w.abandon(spend.txid)  # abandoned: no more
    assert not w.is_spent((coin.txid, 0)) and w.balances()["nonmempool"] == 0


def test_conflicted_depth_is_negative(tmp_path):
    w, coin = _funded(tmp_path)
    a = Transaction(2, [TxIn(OutPoint(coin.txid, 0))], [TxOut(90_000, OTHER)])
    b = Transaction(2, [TxIn(OutPoint(coin.txid, 0))], [TxOut(80_000, OTHER)])
    w.add_tx(a, in_mempool=True)
    w.add_tx(b, height=1, block_hash=b"\x02" * 32, block_time=NOW, block_pos=2)
    assert w.depth(w.txs[a.txid]) == -1 and w.depth(w.txs[b.txid]) == 1


def test_trailing_null_characters_change_the_key():
    params = crypto.KDFParams(b"s" * 16, n=16)
    assert crypto.derive_key("ab\0", params) != crypto.derive_key("ab", params)
    assert crypto.KDFParams.from_bytes(params.to_bytes()) == params
    old = crypto.KDFParams(b"s" * 16, n=16, version=0)  # files made before keep their keys
    assert crypto.KDFParams.from_bytes(old.to_bytes()).version == 0
    assert crypto.derive_key("ab\0", old) == crypto.derive_key("ab", old)


def test_wallet_passphrase_with_nulls(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, lookahead=2)
    w.encrypt("a")
    w.change_passphrase("a", "P\0Q")
    for wrong, note in (("P", False), ("P\0Q\0", True)):
        with pytest.raises(WalletError) as e:
            w.unlock(wrong, 10)
        assert e.value.code == -14 and ("null character" in e.value.message) == note
    w.unlock("P\0Q", 10)


def test_hardened_keypool_derives_while_unlocked_only(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, lookahead=1, passphrase="pw")
    w.unlock("pw", 60)
    xprv = ExtKey.from_seed(b"\x05" * 32).serialize(REGTEST)
    w.import_descriptor(add_checksum(f"wpkh({xprv}/0h/*h)"), NOW, True, False, (0, 1), None)
    w.lock()
    first = w.new_address()
    with pytest.raises(WalletError) as e:
        w.new_address()
    assert e.value.code == -12
    w.unlock("pw", 60)
    w.top_up_all(3)
    assert w.keypool_size(internal=False) == 4 * 3  # the imported one and three HD types
    w.lock()
    w.close()
    w = Wallet.open(tmp_path / "w", "w", REGTEST, lookahead=1)  # the cache survives
    assert len({first, w.new_address(), w.new_address(), w.new_address()}) == 4
    with pytest.raises(WalletError):
        w.new_address()


def test_normalized_public_form():
    xprv = ExtKey.from_seed(b"\x07" * 32)
    desc = parse_descriptor(add_checksum(f"wpkh({xprv.serialize(REGTEST)}/84h/1h/0h/0/*)"),
                            REGTEST)
    acct = xprv.derive_path("m/84h/1h/0h").neuter().serialize(REGTEST)
    fp = xprv.fingerprint.hex()
    assert normalized_public(desc) == add_checksum(f"wpkh([{fp}/84h/1h/0h]{acct}/0/*)")
    hardened_wildcard = parse_descriptor(add_checksum(
        f"wpkh({xprv.serialize(REGTEST)}/0h/*h)"), REGTEST)
    assert normalized_public(hardened_wildcard) == hardened_wildcard.to_string()


def test_subtract_fee_positions():
    dests = ["a", "b"]
    assert subtract_positions([0, "b"], dests) == {0, 1}
    for bad, msg in (([5], "position too large: 5"), ([-5], "negative position: -5"),
                     ([False], "invalid value type: bool"), (["c"], "destination c not found"),
                     (["a", 0], "duplicated position: 0")):
        with pytest.raises(WalletError, match=msg):
            subtract_positions(bad, dests)


def test_decode_hex_tx_prefers_legacy_without_witnesses():
    tx = Transaction(2, [], [TxOut(100, OTHER)], 0)
    raw = tx.serialize().hex()  # no inputs: its 00 reads as the segwit marker too
    assert decode_hex_tx(raw).vout[0].value == 100
    with pytest.raises(WalletError) as e:
        decode_hex_tx("zz")
    assert e.value.code == -22


def test_lowest_larger_picks_the_cheapest_single_coin():
    p = cs.Params(20_000, 10_000, 31 * 4, 68 * 4, 300)
    legacy = cs.Candidate("legacy", 50 * 10**8, 148 * 4)
    segwit = cs.Candidate("segwit", 50 * 10**8, 68 * 4)
    for seed in range(5):  # whatever the random draw takes, the cheaper coin wins
        sel = cs.select_coins([legacy, segwit], 10**8, p, random.Random(seed))
        assert [c.key for c in sel.coins] == ["segwit"]
