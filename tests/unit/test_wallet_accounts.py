"""HD accounts: the published BIP44/49/84/86 vectors through the wallet's own account
descriptors, and the look-ahead window of a real wallet file."""

import pytest

from consensus.hashes import hash160
from consensus.params import MAIN, REGTEST
from consensus.script.standard import p2wpkh_script
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.conftest import load_json
from wallet.accounts import ADDRESS_TYPES, hd_account_descriptors
from wallet.address import address_to_script, encode_wif
from wallet.base58 import b58check_decode
from wallet.bip32 import ExtKey
from wallet.bip39 import mnemonic_to_seed
from wallet.descriptors import parse_descriptor, to_addresses
from wallet.wallet import Wallet

V = load_json("wallet_accounts.json")
MASTER = ExtKey.from_seed(mnemonic_to_seed(V["mnemonic"]))


def _desc(params, kind, internal):
    for k, i, pub, prv in hd_account_descriptors(MASTER, params):
        if k == kind and i == internal:
            return parse_descriptor(pub, params), parse_descriptor(prv, params)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["legacy", "bech32", "bech32m"])
def test_main_addresses(kind):
    want = V["main"][kind]
    pub, _ = _desc(MAIN, kind, False)
    for i, addr in enumerate(want["receive"]):
        assert to_addresses(pub, MAIN, i) == [addr]
    for i, addr in enumerate(want.get("change", [])):
        assert to_addresses(_desc(MAIN, kind, True)[0], MAIN, i) == [addr]


def test_bip49_testnet_address_with_regtest_prefixes():
    # regtest shares testnet's Base58 prefixes and BIP44 coin type 1
    pub, _ = _desc(REGTEST, "p2sh-segwit", False)
    assert to_addresses(pub, REGTEST, 0) == V["testnet"]["p2sh-segwit"]["receive"]


def test_bip84_keys_and_account_xpub():
    v = V["main"]["bech32"]
    pub, prv = _desc(MAIN, "bech32", False)
    key = pub.keys[0]
    assert key.derive(0).pubkey.hex() == v["receive_0_pubkey"]
    assert encode_wif(prv.keys[0].derive_secret(0), MAIN) == v["receive_0_wif"]
    # zpub is the same key under SLIP-132 version bytes: compare what follows the version
    zpub = b58check_decode(v["account_xpub"])
    assert key.ext.to_bytes(b"")[:] == zpub[4:]
    assert key.derive(0).path == (84 | 1 << 31, 1 << 31, 1 << 31, 0, 0)
    assert key.derive(0).fingerprint == MASTER.fingerprint


def test_bip86_keys():
    v = V["main"]["bech32m"]
    pub, _ = _desc(MAIN, "bech32m", False)
    assert pub.keys[0].ext.serialize(MAIN) == v["account_xpub"]
    assert pub.keys[0].derive(0).pubkey[1:].hex() == v["receive_0_internal_key"]
    assert pub.expand(0)[0] == bytes.fromhex("5120" + v["receive_0_output_key"])


def test_descriptor_strings_use_origin_and_regtest_prefixes():
    for kind, internal, pub, prv in hd_account_descriptors(MASTER, REGTEST):
        purpose = ADDRESS_TYPES[kind][0]
        assert f"[{MASTER.fingerprint.hex()}/{purpose}h/1h/0h]tpub" in pub
        assert f"/{int(internal)}/*)" in pub and "#" in pub
        assert "tprv" in prv and "tprv" not in pub


# -- the look-ahead window --------------------------------------------------------------------


def _pay(script, value=10_000, salt=0):
    return Transaction(2, [TxIn(OutPoint(bytes([salt]) * 32, 0))], [TxOut(value, script)])


def test_lookahead_finds_unshown_addresses_and_moves(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, mnemonic=V["mnemonic"], lookahead=20)
    acc = w.active_account("bech32", False)
    assert acc.range_end == 20
    # a coin to index 15 (never handed out) is found, and the window moves past it
    script15 = acc.expansion(15).scripts[0]
    assert w.is_relevant(_pay(script15))
    w.add_tx(_pay(script15), height=1, block_hash=b"\x01" * 32, block_time=0, block_pos=1)
    assert acc.next_index == 16 and acc.range_end == 36
    assert w.new_address() == to_addresses(acc.desc, REGTEST, 16)[0]
    # beyond the window: not seen (what a gap limit means)
    far = acc.expansion(200).scripts[0]
    assert not w.is_relevant(_pay(far, salt=2))
    # the window survives reopening the file (handing out index 16 does not move it: the
    # next new address tops it up first, as Core's GetNewDestination)
    w.close()
    w = Wallet.open(tmp_path / "w", "w", REGTEST, lookahead=20)
    acc = w.active_account("bech32", False)
    assert (acc.next_index, acc.range_end) == (17, 36)
    w.new_address()
    assert (acc.next_index, acc.range_end) == (18, 37)
    assert w.credit(w.txs[_pay(script15).txid]) == 10_000


def test_restored_wallet_gives_the_same_addresses(tmp_path):
    a = Wallet.create(tmp_path / "a", "a", REGTEST, mnemonic=V["mnemonic"])
    shouted = "  ".join(V["mnemonic"].upper().split())
    b = Wallet.create(tmp_path / "b", "b", REGTEST, mnemonic=shouted)
    for kind in ADDRESS_TYPES:
        assert a.new_address(kind) == b.new_address(kind)
    c = Wallet.create(tmp_path / "c", "c", REGTEST, mnemonic=V["mnemonic"],
                      mnemonic_passphrase="TREZOR")
    assert c.new_address() != a.new_address()


def test_bad_mnemonic_is_refused_and_leaves_nothing(tmp_path):
    from wallet.errors import WalletError

    words = V["mnemonic"].split()
    words[3] = "bitcoinz"
    with pytest.raises(WalletError, match="word 4"):
        Wallet.create(tmp_path / "x", "x", REGTEST, mnemonic=" ".join(words))
    assert not (tmp_path / "x").exists()


def test_change_and_receive_chains_are_apart(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, mnemonic=V["mnemonic"])
    recv = address_to_script(w.new_address(), REGTEST)
    change = w.new_script("bech32", True)
    assert not w.is_change(recv) and w.is_change(change)
    pub, _ = _desc(REGTEST, "bech32", True)
    assert change == pub.expand(0)[0]
    assert change == p2wpkh_script(hash160(pub.keys[0].derive(0).pubkey))
