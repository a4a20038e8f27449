"""Storage and encryption at rest: AES-GCM under a scrypt key, no secret in the file once the
wallet is encrypted, atomic updates, one process per wallet, clear errors for bad files."""

import sqlite3

import pytest

from consensus.params import MAIN, REGTEST
from wallet import crypto
from wallet.address import encode_wif
from wallet.bip32 import ExtKey
from wallet.bip39 import mnemonic_to_seed
from wallet.db import WalletDB
from wallet.errors import WalletError
from wallet.wallet import Wallet

FAST = crypto.KDFParams(b"s" * 16, n=1 << 10)  # cheap scrypt for the crypto unit tests


def test_seal_unseal_and_tamper():
    key = crypto.derive_key("pass", FAST)
    blob = crypto.seal(key, b"secret", b"seed")
    assert b"secret" not in blob
    assert crypto.unseal(key, blob, b"seed") == b"secret"
    with pytest.raises(crypto.DecryptionError):
        crypto.unseal(crypto.derive_key("other", FAST), blob, b"seed")
    with pytest.raises(crypto.DecryptionError):
        crypto.unseal(key, blob, b"descriptor:1")  # swapped for another record
    bad = bytearray(blob)
    bad[-1] ^= 1
    with pytest.raises(crypto.DecryptionError):
        crypto.unseal(key, bytes(bad), b"seed")
    with pytest.raises(crypto.DecryptionError, match="truncated"):
        crypto.unseal(key, blob[:10], b"seed")
    p = crypto.KDFParams.fresh()
    assert crypto.KDFParams.from_bytes(p.to_bytes()) == p
    assert p.n >= 1 << 15  # memory-hard at its stored cost


def _secrets_of(w: Wallet) -> list[bytes]:
    """Every form a secret of this wallet could take in the file."""
    words, _ = w.mnemonic()
    master = ExtKey.from_seed(mnemonic_to_seed(words))
    out = [words.encode(), words.split()[0].encode() + b" " + words.split()[1].encode(),
           mnemonic_to_seed(words), master.key, master.serialize(REGTEST).encode()]
    for acc in w.accounts.values():
        out.append(acc.private.to_string(private=True).encode())
        d = acc.private
        while not d.keys:
            d = d.subs[0]
        k = d.keys[0]
        out.append(k.ext.key)  # the account's private key
        for i in (0, 1):
            s = k.derive_secret(i)
            out += [s, encode_wif(s, REGTEST).encode(), encode_wif(s, MAIN).encode()]
    return out


def test_encrypted_file_holds_no_key_material(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST)
    w.new_address()
    secrets = _secrets_of(w)
    raw = (tmp_path / "w" / "wallet.sqlite").read_bytes()
    assert secrets[0] in raw  # unencrypted: the seed is there, as in Core's plain wallets
    w.encrypt("correct horse")
    assert w.locked
    w.close()
    raw = (tmp_path / "w" / "wallet.sqlite").read_bytes()
    for s in secrets:
        assert s not in raw, s
    assert not (tmp_path / "w" / "wallet.sqlite-journal").exists()
    # and it still opens, locked, with its public side intact
    w = Wallet.open(tmp_path / "w", "w", REGTEST)
    assert w.locked and len(w.scripts) > 0
    with pytest.raises(WalletError) as e:
        w.mnemonic()
    assert e.value.code == -13
    with pytest.raises(WalletError) as e:
        w.unlock("wrong", 10)
    assert e.value.code == -14
    w.unlock("correct horse", 10)
    assert _secrets_of(w) == secrets


def test_unlock_timeout_and_lock(tmp_path, monkeypatch):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, passphrase="pw")
    w.unlock("pw", 5)
    assert not w.locked
    import time as _time

    t0 = _time.monotonic()
    monkeypatch.setattr("wallet.wallet.time.monotonic", lambda: t0 + 6)
    assert w.locked  # the timeout passed
    assert all(a.private is None for a in w.accounts.values())
    monkeypatch.undo()
    w.unlock("pw", 60)
    w.lock()
    assert w.locked
    with pytest.raises(WalletError) as e:
        w.encrypt("again")
    assert e.value.code == -15
    with pytest.raises(WalletError) as e:
        w.unlock("pw", -1)
    assert e.value.code == -8


def test_change_passphrase(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, passphrase="old")
    w.unlock("old", 10)
    words = w.mnemonic()
    with pytest.raises(WalletError) as e:
        w.change_passphrase("nope", "new")
    assert e.value.code == -14
    w.change_passphrase("old", "new")
    with pytest.raises(WalletError):
        w.unlock("old", 10)
    w.unlock("new", 10)
    assert w.mnemonic() == words


def test_unencrypted_wallet_refuses_unlock(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST)
    with pytest.raises(WalletError) as e:
        w.unlock("x", 10)
    assert e.value.code == -15
    assert not w.locked


def test_atomic_rollback(tmp_path):
    db = WalletDB(tmp_path / "d", create=True)
    with db.atomic():
        db.set_meta("a", 1)
    with pytest.raises(RuntimeError):
        with db.atomic():
            db.set_meta("a", 2)
            db.set_meta("b", 3)
            raise RuntimeError("crash in the middle")
    assert db.get_meta("a") == 1 and db.get_meta("b") is None
    db.close()


def test_one_process_per_wallet(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST)
    with pytest.raises(WalletError, match="in use"):
        Wallet.open(tmp_path / "w", "w", REGTEST)
    w.close()
    Wallet.open(tmp_path / "w", "w", REGTEST).close()


def test_bad_files(tmp_path):
    with pytest.raises(WalletError) as e:
        Wallet.open(tmp_path / "missing", "m", REGTEST)
    assert e.value.code == -18
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "wallet.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(WalletError, match="corrupt or not a wallet"):
        Wallet.open(tmp_path / "junk", "junk", REGTEST)
    (tmp_path / "other").mkdir()
    sqlite3.connect(tmp_path / "other" / "wallet.sqlite").execute("CREATE TABLE t(x)").close()
    with pytest.raises(WalletError, match="not a wallet: no such table"):
        Wallet.open(tmp_path / "other", "other", REGTEST)
    w = Wallet.create(tmp_path / "r", "r", REGTEST)
    w.close()
    with pytest.raises(WalletError, match="regtest chain, not main"):
        Wallet.open(tmp_path / "r", "r", MAIN)
    with pytest.raises(WalletError, match="already exists"):
        Wallet.create(tmp_path / "r", "r", REGTEST)


def test_backup_is_a_working_copy(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST, passphrase="pw")
    addr = w.new_address()
    w.backup(tmp_path / "copy.sqlite")
    (tmp_path / "c").mkdir()
    (tmp_path / "copy.sqlite").rename(tmp_path / "c" / "wallet.sqlite")
    c = Wallet.open(tmp_path / "c", "c", REGTEST)
    assert c.encrypted and c.locked
    assert c.active_account("bech32", False).next_index == 1
    c.unlock("pw", 10)
    w.unlock("pw", 10)
    assert c.mnemonic() == w.mnemonic()
    assert c.new_address() == w.new_address() != addr  # the same next address


def test_a_file_from_before_coin_locks_opens_and_keeps_them(tmp_path):
    w = Wallet.create(tmp_path / "w", "w", REGTEST)
    w.close()
    conn = sqlite3.connect(tmp_path / "w" / "wallet.sqlite")
    conn.execute("DROP TABLE locked_coins")  # as a wallet made before lockunspent
    conn.commit()
    conn.close()
    w = Wallet.open(tmp_path / "w", "w", REGTEST)
    assert w.locked_coins == {}
    with w.db.atomic():
        w.lock_coin((b"\x01" * 32, 3), persistent=True)
        w.lock_coin((b"\x02" * 32, 0), persistent=False)
    w.close()
    w = Wallet.open(tmp_path / "w", "w", REGTEST)
    assert w.locked_coins == {(b"\x01" * 32, 3): True}
    w.close()
