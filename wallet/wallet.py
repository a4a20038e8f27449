"""A wallet: its descriptors and keys, the transactions that touch it, and what follows from
them (coins, balances, history). Chain following is in wallet.sync, spending in wallet.spend;
both change the wallet only through the methods here, each one sqlite transaction.

Which transactions count: a confirmed one, or an unconfirmed one the node's mempool held at
the last sync (`in_mempool`). Others (replaced, conflicted, or the coinbase of a block that
was reorganised away) are kept for the history but neither pay nor spend anything.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from consensus.params import ChainParams
from consensus.tx import Transaction
from wallet import crypto
from wallet.accounts import (
    ADDRESS_TYPES,
    DEFAULT_LOOKAHEAD,
    Account,
    address_type_of,
    expansion_from_json,
    expansion_to_json,
    hd_account_descriptors,
    load_private,
    normalized_public,
)
from wallet.address import script_to_address
from wallet.bip32 import ExtKey
from wallet.bip39 import generate_mnemonic, mnemonic_to_seed, normalize_mnemonic
from wallet.db import WalletDB
from wallet.descriptors import Descriptor, DescriptorError, parse_descriptor
from wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ENCRYPTION_FAILED,
    RPC_WALLET_ERROR,
    RPC_WALLET_KEYPOOL_RAN_OUT,
    RPC_WALLET_PASSPHRASE_INCORRECT,
    RPC_WALLET_WRONG_ENC_STATE,
    WalletError,
    unlock_needed,
)

log = logging.getLogger("wallet")

MAX_UNLOCK_SECONDS = 100_000_000  # Core's cap on walletpassphrase's timeout
_CHECK_PLAINTEXT = b"minibtc wallet passphrase check"


@dataclass
class WalletTx:
    txid: bytes
    tx: Transaction
    height: int | None = None
    block_hash: bytes | None = None
    block_time: int | None = None
    block_pos: int | None = None
    received: int = 0
    in_mempool: bool = False
    replaced_by: bytes | None = None
    replaces: bytes | None = None
    comment: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.height is not None

    @property
    def active(self) -> bool:
        return self.height is not None or self.in_mempool


@dataclass(frozen=True)
class Coin:
    """An output of the wallet: where it is, what it holds, and which descriptor owns it."""

    txid: bytes
    n: int
    value: int
    script: bytes
    account_id: int
    index: int
    depth: int
    coinbase: bool
    trusted: bool

    @property
    def outpoint(self) -> tuple[bytes, int]:
        return (self.txid, self.n)


class Wallet:
    def __init__(self, name: str, db: WalletDB, params: ChainParams,
                 lookahead: int | None = None) -> None:
        self.name = name
        self.db = db
        self.params = params
        # Core's -keypool: how many scripts of each descriptor are kept derived past the last
        # one used or handed out
        self.lookahead = max(1, int(DEFAULT_LOOKAHEAD if lookahead is None else lookahead))
        self.clock = time.time  # the node's (mockable) clock when mounted
        # rescans: reserved by a call (scanning), in the scan loop (rescanning), asked to stop
        self.scanning = False
        self.rescanning = False
        self.abort_rescan = False
        self.scan_started = 0.0
        self.scan_progress = 0.0
        self.scan_range = (0, 0)
        # fee settings (sat, sat/kvB): the node's -maxtxfee, -mintxfee, -minrelaytxfee,
        # -paytxfee, -fallbackfee when mounted (WalletManager sets them), Core's defaults otherwise
        self.max_tx_fee = 10_000_000
        self.min_tx_fee = 1000
        self.min_relay_fee = 100
        self.pay_tx_fee = 0
        self.fallback_fee = 20_000  # -fallbackfee: while the node has no estimate (0: none)
        self.reject_long_chains = True  # -walletrejectlongchains
        self.max_ancestors = 25  # -limitancestorcount
        self.max_descendants = 25  # -limitdescendantcount
        self.address_type = "bech32"  # -addresstype
        self.change_type: str | None = None  # -changetype (None: chosen per transaction)
        self.encrypted = bool(db.get_meta("encrypted", 0))
        # Core's WALLET_FLAG_AVOID_REUSE (createwallet avoid_reuse, setwalletflag)
        self.avoid_reuse = bool(db.get_meta("avoid_reuse", 0))
        # set while a spend that avoids reused addresses picks its coins (sendtoaddress and
        # sendmany with avoid_reuse): coins(skip_locked=True) then leaves out used ones
        self.avoiding_used = False
        self.private_keys_enabled = not bool(db.get_meta("disable_private_keys", 0))
        self._key: bytes | None = None  # AES key while unlocked
        self.unlocked_until = 0.0
        self.unlocked_until_time = 0
        self.unlocked_until_time = 0
        self._relock: threading.Timer | None = None  # wipes the keys when the time is up
        self.guard: threading.RLock | None = None  # the lock its users hold (WalletManager)
        self.accounts: dict[int, Account] = {}
        self.scripts: dict[bytes, tuple[int, int]] = {}  # script -> (account id, index)
        self.txs: dict[bytes, WalletTx] = {}
        self.spenders: dict[tuple[bytes, int], set[bytes]] = {}
        self.credits: dict[bytes, list[int]] = {}  # txid -> our output indexes
        self.labels: dict[str, str] = {
            a: _label_from_db(v) for a, v in db.conn.execute("SELECT address, label FROM labels")}
        self.tip_height = int(db.get_meta("tip_height", -1))
        self.tip_hash = db.get_meta("tip_hash", b"") or b""
        self.tip_time = int(db.get_meta("tip_time", 0))
        self.birthday = int(db.get_meta("birthday", 0))
        # mempool transactions seen not to touch the wallet (not fetched again)
        self.mempool_ignored: set[bytes] = set()
        # (node connection, tip hash, mempool sequence) of the last mempool sync, while
        # nothing in the wallet changed since: the same mempool need not be looked at again
        self.mempool_synced: tuple[int, bytes, int] | None = None
        # outputs kept out of automatic coin selection (lockunspent): outpoint -> persistent
        self.locked_coins: dict[tuple[bytes, int], bool] = {
            (bytes(t), int(n)): True
            for t, n in db.conn.execute("SELECT txid, vout FROM locked_coins")}
        # unconfirmed transactions given up on (abandontransaction) until seen again
        self.abandoned: set[bytes] = {
            bytes(t) for (t,) in db.conn.execute("SELECT txid FROM abandoned_txs")}
        self._load_accounts()
        self._load_txs()

    # -- creation and opening --------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, name: str, params: ChainParams, *,
               mnemonic: str | None = None, mnemonic_passphrase: str = "",
               passphrase: str | None = None, disable_private_keys: bool = False,
               blank: bool = False, birthday: tuple[int, bytes, int] | None = None,
               lookahead: int = DEFAULT_LOOKAHEAD) -> Wallet:
        """A new wallet file. With a mnemonic it is a restore (followed from `birthday`,
        by default the genesis block); otherwise a fresh mnemonic is made. birthday is
        (height, hash, time) of the block the wallet starts after."""
        if mnemonic is not None:
            try:
                mnemonic = normalize_mnemonic(mnemonic)
            except ValueError as err:
                raise WalletError(RPC_INVALID_PARAMETER, f"Invalid mnemonic: {err}") from None
        db = WalletDB(directory, create=True)
        try:
            with db.atomic():
                db.set_meta("chain", params.name)
                db.set_meta("created", int(time.time()))
                db.set_meta("disable_private_keys", int(disable_private_keys))
                if birthday is not None:
                    height, bhash, btime = birthday
                    db.set_meta("tip_height", height)
                    db.set_meta("tip_hash", bhash)
                    db.set_meta("tip_time", btime)
                    db.set_meta("birthday", height + 1)
                    db.conn.execute("INSERT INTO blocks(height, hash) VALUES (?, ?)",
                                    (height, bhash))
                if not disable_private_keys and not blank:
                    words = mnemonic or generate_mnemonic(128)
                    seed = json.dumps({"mnemonic": words, "passphrase": mnemonic_passphrase})
                    db.set_meta("seed", seed.encode())
                    master = ExtKey.from_seed(mnemonic_to_seed(words, mnemonic_passphrase))
                    now = int(time.time())
                    for kind, internal, pub, prv in hd_account_descriptors(master, params):
                        db.conn.execute(
                            "INSERT INTO descriptors(descriptor, secret, address_type, internal,"
                            " active, next_index, range_end, created) VALUES (?,?,?,?,1,0,0,?)",
                            (pub, prv.encode(), kind, int(internal), now))
            wallet = cls(name, db, params, lookahead)
            for acc in wallet.accounts.values():
                wallet._top_up(acc, wallet.lookahead)
        except BaseException:
            db.close()
            _remove_new_wallet(directory)
            raise
        if passphrase:
            wallet.encrypt(passphrase)
        return wallet

    @classmethod
    def open(cls, directory: Path, name: str, params: ChainParams,
             lookahead: int | None = None) -> Wallet:
        db = WalletDB(directory, create=False)
        try:
            chain = db.get_meta("chain")
            if chain != params.name:
                raise WalletError(RPC_WALLET_ERROR,
                                  f"Wallet {name!r} is for the {chain} chain, not {params.name}")
            return cls(name, db, params, lookahead)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self.lock()
        self.db.close()

    # -- loading ---------------------------------------------------------------------------

    def _load_accounts(self) -> None:
        rows = self.db.conn.execute(
            "SELECT id, descriptor, secret, address_type, internal, active, next_index,"
            " range_end, created, range_start FROM descriptors ORDER BY id").fetchall()
        ends = {}
        for row in rows:
            acc = Account(row[0], row[1], parse_descriptor(row[1], self.params), row[3],
                          bool(row[4]), bool(row[5]), row[6], 0, row[8], secret=row[2],
                          range_start=row[9])
            self.accounts[acc.id] = acc
            ends[acc.id] = row[7]
        # scripts derived earlier through private keys (hardened steps), usable while locked
        for acc_id, idx, data in self.db.conn.execute(
                "SELECT account_id, idx, data FROM derived_cache"):
            acc = self.accounts.get(acc_id)
            if acc is not None:
                acc.expansions[idx] = expansion_from_json(data)
        if not self.encrypted:
            self._load_private_keys(None)
        for acc in self.accounts.values():
            self._derive_to(acc, ends[acc.id])
        self._save_derived()

    def _load_txs(self) -> None:
        rows = self.db.conn.execute(
            "SELECT txid, raw, height, block_hash, block_time, block_pos, received, in_mempool,"
            " replaced_by, replaces, comment FROM txs ORDER BY height IS NULL, height, block_pos,"
            " received").fetchall()
        for r in rows:
            wtx = WalletTx(r[0], Transaction.from_bytes(r[1]), r[2], r[3], r[4], r[5], r[6],
                           bool(r[7]), r[8], r[9], r[10])
            self._index_tx(wtx)

    def _derive_to(self, acc: Account, end: int) -> bool:
        """Derive and watch acc's scripts up to index end-1 (in memory only). False when a
        script cannot be derived (hardened steps while the keys are locked): the window
        then ends before it."""
        if not acc.ranged:
            end = 1
        for i in range(acc.range_end, end):
            if not acc.can_derive(i):
                return False
            for script in acc.expansion(i).scripts:
                self.scripts.setdefault(script, (acc.id, i))
            acc.range_end = i + 1
        return True

    def _save_derived(self) -> None:
        """Write the scripts derived through private keys to the cache table."""
        for acc in self.accounts.values():
            if acc.unsaved:
                with self.db.atomic() as c:
                    for i in acc.unsaved:
                        c.execute("INSERT OR REPLACE INTO derived_cache(account_id, idx, data)"
                                  " VALUES (?,?,?)", (acc.id, i,
                                                      expansion_to_json(acc.expansions[i])))
                acc.unsaved.clear()

    def _top_up(self, acc: Account, end: int) -> bool:
        """Extend acc's window to end (persisted); False when it could not be derived so far
        (Core's TopUp)."""
        if not acc.ranged or end <= acc.range_end:
            return True
        before = acc.range_end
        ok = self._derive_to(acc, end)
        if acc.range_end != before:
            with self.db.atomic() as c:
                c.execute("UPDATE descriptors SET range_end=? WHERE id=?", (acc.range_end, acc.id))
            self._save_derived()
        return ok

    def top_up_all(self, size: int | None = None) -> None:
        """Core's TopUpKeyPool: every active descriptor gets `size` (the -keypool size by
        default) scripts past its next index."""
        n = self.lookahead if not size else size
        for acc in self.accounts.values():
            if acc.active:
                self._top_up(acc, acc.next_index + n)

    def keypool_size(self, internal: bool | None = None) -> int:
        """Core's GetKeyPoolSize: scripts derived ahead in the active descriptors (external
        and internal, or only one side)."""
        return sum(a.range_end - a.next_index for a in self.accounts.values()
                   if a.active and a.ranged and (internal is None or a.internal == internal))

    def _mark_used(self, acc_id: int, index: int) -> None:
        acc = self.accounts[acc_id]
        if acc.ranged and index >= acc.next_index:
            acc.next_index = index + 1
            with self.db.atomic() as c:
                c.execute("UPDATE descriptors SET next_index=? WHERE id=?",
                          (acc.next_index, acc.id))
        self._top_up(acc, acc.next_index + self.lookahead)

    # -- keys and encryption ---------------------------------------------------------------

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        if not self.encrypted:
            return data
        if self._key is None:
            raise unlock_needed()
        return crypto.seal(self._key, data, aad)

    def _unseal(self, blob: bytes, aad: bytes, key: bytes | None) -> bytes:
        if not self.encrypted:
            return blob
        assert key is not None
        return crypto.unseal(key, blob, aad)

    def _load_private_keys(self, key: bytes | None) -> None:
        for acc in self.accounts.values():
            if acc.secret is not None:
                text = self._unseal(acc.secret, b"descriptor:%d" % acc.id, key).decode()
                load_private(acc, text, self.params)

    @property
    def locked(self) -> bool:
        if not self.encrypted:
            return False
        if self._key is not None and time.monotonic() >= self.unlocked_until \
                and not self.scanning:  # (a rescan keeps the keys until it ends, as Core's)
            self.lock()
        return self._key is None

    def require_unlocked(self) -> None:
        if self.locked:
            raise unlock_needed()

    def unlock(self, passphrase: str, timeout: int) -> None:
        if not self.encrypted:
            raise WalletError(RPC_WALLET_WRONG_ENC_STATE, "Error: running with an unencrypted "
                              "wallet, but walletpassphrase was called.")
        if timeout < 0:
            raise WalletError(RPC_INVALID_PARAMETER, "Timeout cannot be negative.")
        if not passphrase:
            raise WalletError(RPC_INVALID_PARAMETER, "passphrase cannot be empty")
        key = self._check_passphrase(passphrase, "wallet passphrase entered is incorrect")
        self._load_private_keys(key)
        self._key = key
        seconds = min(timeout, MAX_UNLOCK_SECONDS)
        self.unlocked_until = time.monotonic() + seconds
        self.unlocked_until_time = int(self.clock()) + seconds  # as getwalletinfo shows it
        # The keys go when the time is up, whether or not anything asks (a timer; reading
        # `locked` also checks).
        if self._relock is not None:
            self._relock.cancel()
        self._relock = threading.Timer(seconds + 0.05, self._relock_if_due)
        self._relock.daemon = True
        self._relock.start()

    def _check_passphrase(self, passphrase: str, null_msg: str) -> bytes:
        """The key the passphrase gives, or Core's incorrect-passphrase error (with its
        note on null characters, which older Core versions cut passphrases at)."""
        kdf = crypto.KDFParams.from_bytes(self.db.get_meta("kdf"))
        key = crypto.derive_key(passphrase, kdf)
        try:
            crypto.unseal(key, self.db.get_meta("check"), b"check")
        except crypto.DecryptionError:
            if "\0" in passphrase:
                raise WalletError(RPC_WALLET_PASSPHRASE_INCORRECT, f"Error: The {null_msg}. It "
                                  "contains a null character (ie - a zero byte). If the "
                                  "passphrase was set with a version of this software prior to "
                                  "25.0, please try again with only the characters up to — but "
                                  "not including — the first null character. If this is "
                                  "successful, please set a new passphrase to avoid this issue "
                                  "in the future.") from None
            raise WalletError(RPC_WALLET_PASSPHRASE_INCORRECT, "Error: The wallet passphrase "
                              "entered was incorrect.") from None
        return key

    def _relock_if_due(self) -> None:
        if self.scanning:  # try again once the rescan is over
            self._relock = threading.Timer(0.2, self._relock_if_due)
            self._relock.daemon = True
            self._relock.start()
            return
        if self.guard is not None:
            with self.guard:
                _ = self.locked
        else:
            _ = self.locked

    def lock(self) -> None:
        if not self.encrypted:
            return
        if self._relock is not None:
            self._relock.cancel()
            self._relock = None
        self._key = None
        self.unlocked_until = 0.0
        self.unlocked_until_time = 0
        for acc in self.accounts.values():
            acc.private = None

    def encrypt(self, passphrase: str) -> None:
        """Seal every secret under a key from passphrase, rebuild the file so no clear copy
        survives in a free page, and lock."""
        if not self.private_keys_enabled:
            raise WalletError(RPC_WALLET_ENCRYPTION_FAILED, "Error: wallet does not contain "
                              "private keys, nothing to encrypt.")
        if self.encrypted:
            raise WalletError(RPC_WALLET_WRONG_ENC_STATE, "Error: running with an encrypted "
                              "wallet, but encryptwallet was called.")
        if not passphrase:
            raise WalletError(RPC_INVALID_PARAMETER, "passphrase cannot be empty")
        kdf = crypto.KDFParams.fresh()
        key = crypto.derive_key(passphrase, kdf)
        with self.db.atomic() as c:
            for acc in self.accounts.values():
                if acc.secret is not None:
                    acc.secret = crypto.seal(key, acc.secret, b"descriptor:%d" % acc.id)
                    c.execute("UPDATE descriptors SET secret=? WHERE id=?", (acc.secret, acc.id))
            seed = self.db.get_meta("seed")
            if seed is not None:
                self.db.set_meta("seed", crypto.seal(key, seed, b"seed"))
            self.db.set_meta("kdf", kdf.to_bytes())
            self.db.set_meta("check", crypto.seal(key, _CHECK_PLAINTEXT, b"check"))
            self.db.set_meta("encrypted", 1)
        self.db.vacuum()
        self.encrypted = True
        self.lock()

    def change_passphrase(self, old: str, new: str) -> None:
        """Re-seal every secret under a key from the new passphrase (the old one is checked
        first); the wallet is locked afterwards."""
        if not self.encrypted:
            raise WalletError(RPC_WALLET_WRONG_ENC_STATE, "Error: running with an unencrypted "
                              "wallet, but walletpassphrasechange was called.")
        if not old or not new:
            raise WalletError(RPC_INVALID_PARAMETER, "passphrase cannot be empty")
        old_key = self._check_passphrase(old, "old wallet passphrase entered is incorrect")
        kdf = crypto.KDFParams.fresh()
        key = crypto.derive_key(new, kdf)
        with self.db.atomic() as c:
            for acc in self.accounts.values():
                if acc.secret is not None:
                    aad = b"descriptor:%d" % acc.id
                    acc.secret = crypto.seal(key, crypto.unseal(old_key, acc.secret, aad), aad)
                    c.execute("UPDATE descriptors SET secret=? WHERE id=?", (acc.secret, acc.id))
            seed = self.db.get_meta("seed")
            if seed is not None:
                self.db.set_meta("seed", crypto.seal(key, crypto.unseal(old_key, seed, b"seed"),
                                                     b"seed"))
            self.db.set_meta("kdf", kdf.to_bytes())
            self.db.set_meta("check", crypto.seal(key, _CHECK_PLAINTEXT, b"check"))
        self.lock()

    def mnemonic(self) -> tuple[str, str]:
        """(mnemonic, BIP39 passphrase); needs the wallet unlocked."""
        self.require_unlocked()
        blob = self.db.get_meta("seed")
        if blob is None:
            raise WalletError(RPC_WALLET_ERROR, "This wallet has no mnemonic (blank, watch-only "
                              "or imported keys only)")
        data = json.loads(self._unseal(blob, b"seed", self._key))
        return data["mnemonic"], data["passphrase"]

    # -- descriptors -----------------------------------------------------------------------

    def active_account(self, address_type: str, internal: bool) -> Account:
        if address_type not in ADDRESS_TYPES:
            raise WalletError(RPC_INVALID_PARAMETER, f"Unknown address type '{address_type}'")
        for acc in self.accounts.values():
            if acc.active and acc.address_type == address_type and acc.internal == internal:
                return acc
        what = "change" if internal else "receive"
        raise WalletError(RPC_WALLET_ERROR, f"Error: This wallet has no available keys "
                          f"({address_type} {what} descriptor missing)")

    def new_script(self, address_type: str, internal: bool) -> bytes:
        """The next unused script of the active descriptor (Core's GetNewDestination): the
        window is topped up first; with nothing left in it (hardened derivation while locked)
        the keypool has run out."""
        acc = self.active_account(address_type, internal)
        index = acc.next_index
        self._top_up(acc, index + self.lookahead)
        if index >= acc.range_end:
            raise WalletError(RPC_WALLET_KEYPOOL_RAN_OUT, "Error: Keypool ran out, please call "
                              "keypoolrefill first")
        script = acc.expansion(index).scripts[0]
        acc.next_index = index + 1
        with self.db.atomic() as c:
            c.execute("UPDATE descriptors SET next_index=? WHERE id=?", (acc.next_index, acc.id))
        return script

    def peek_script(self, address_type: str, internal: bool) -> bytes | None:
        """The script new_script would give next, without handing it out (None when none
        can be given)."""
        try:
            acc = self.active_account(address_type, internal)
        except WalletError:
            return None
        index = acc.next_index
        self._top_up(acc, index + self.lookahead)
        return acc.expansion(index).scripts[0] if index < acc.range_end else None

    def new_address(self, address_type: str = "bech32", label: str | None = None,
                    internal: bool = False) -> str:
        script = self.new_script(address_type, internal)
        addr = script_to_address(script, self.params)
        assert addr is not None
        if label is not None and not internal:
            self.set_label(addr, label)
        return addr

    def set_label(self, address: str, label: str) -> None:
        with self.db.atomic() as c:
            c.execute("INSERT OR REPLACE INTO labels(address, label) VALUES (?, ?)",
                      (address, _label_to_db(label)))
        self.labels[address] = label

    def import_descriptor(self, desc: Descriptor | str, timestamp: int, active: bool,
                          internal: bool, rng: tuple[int, int] | None, label: str | None,
                          next_index: int | None = None) -> Account:
        """Add a descriptor (with its private keys, if given) to watch and spend from, or
        update the one already there (Core's AddWalletDescriptor): rng is (start, end
        exclusive) for a ranged descriptor; label applies to a non-ranged external one.
        (importdescriptors checks the request first, with Core's errors in Core's order.)"""
        if isinstance(desc, str):
            try:
                desc = parse_descriptor(desc, self.params, require_checksum=True)
            except DescriptorError as err:
                raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, str(err)) from None
        if active and not desc.is_range():
            raise WalletError(RPC_INVALID_PARAMETER, "Active descriptors must be ranged")
        if desc.has_private_keys() and not self.private_keys_enabled:
            raise WalletError(RPC_WALLET_ERROR, "Cannot import private keys to a wallet with "
                              "private keys disabled")
        public = normalized_public(desc)
        if desc.has_private_keys():
            self.require_unlocked()
        kind = address_type_of(desc)
        start, end = rng if rng is not None else (0, 1)
        nxt = start if next_index is None else next_index
        with self.db.atomic() as c:
            row = c.execute("SELECT id FROM descriptors WHERE descriptor=?", (public,)).fetchone()
            if row is not None:
                acc = self.accounts[row[0]]
                if acc.ranged and (start > acc.range_start or end < acc.range_end):
                    raise WalletError(RPC_WALLET_ERROR, "new range must include current range "
                                      f"= [{acc.range_start},{acc.range_end - 1}]")
                if acc.ranged:
                    acc.range_start = start
                    acc.next_index = nxt
                acc.internal = internal
                acc.created = timestamp
                c.execute("UPDATE descriptors SET internal=?, next_index=?, range_start=?,"
                          " created=? WHERE id=?",
                          (int(internal), acc.next_index, acc.range_start, timestamp, acc.id))
            else:
                cur = c.execute(
                    "INSERT INTO descriptors(descriptor, secret, address_type, internal, active,"
                    " next_index, range_end, created, range_start) VALUES (?,NULL,?,?,0,?,0,?,?)",
                    (public, kind, int(internal), nxt if desc.is_range() else 0, timestamp,
                     start if desc.is_range() else 0))
                acc = Account(cur.lastrowid, public, parse_descriptor(public, self.params), kind,
                              internal, False, nxt if desc.is_range() else 0, 0, timestamp,
                              range_start=start if desc.is_range() else 0)
                self.accounts[acc.id] = acc
            if desc.has_private_keys():
                secret = self._seal(desc.to_string(private=True).encode(),
                                    b"descriptor:%d" % acc.id)
                acc.secret = secret
                acc.private = desc
                c.execute("UPDATE descriptors SET secret=? WHERE id=?", (secret, acc.id))
            if kind is not None:
                if active:
                    for other in self.accounts.values():
                        if (other.active and other.address_type == kind
                                and other.internal == internal and other.id != acc.id):
                            other.active = False
                            c.execute("UPDATE descriptors SET active=0 WHERE id=?", (other.id,))
                acc.active = active
                c.execute("UPDATE descriptors SET active=? WHERE id=?", (int(active), acc.id))
            if not desc.is_range() and not internal:
                for s in acc.expansion(0).scripts:
                    addr = script_to_address(s, self.params)
                    if addr:
                        lbl = label if label is not None else self.labels.get(addr, "")
                        c.execute("INSERT OR REPLACE INTO labels(address, label) VALUES (?,?)",
                                  (addr, _label_to_db(lbl)))
                        self.labels[addr] = lbl
            if acc.ranged:
                self._top_up(acc, end)
                self._top_up(acc, acc.next_index + self.lookahead)
            else:
                self._derive_to(acc, 1)
        self.refresh_credits()
        return acc

    def refresh_credits(self) -> None:
        """Core's RefreshAllTXOs: outputs of known transactions that new scripts make ours
        count from now on (no rescan needed for them)."""
        scripts = self.scripts
        for txid, wtx in list(self.txs.items()):
            mine = [n for n, out in enumerate(wtx.tx.vout) if out.script_pubkey in scripts]
            if mine != self.credits.get(txid):
                self.credits[txid] = mine
                self._note_outputs_used(wtx.tx)  # (moves the new scripts' next index)
        self.mempool_ignored.clear()  # mempool transactions may be ours now: look again
        self.mempool_synced = None

    def is_mine(self, script: bytes) -> bool:
        return script in self.scripts

    def owner(self, script: bytes) -> tuple[Account, int] | None:
        hit = self.scripts.get(script)
        if hit is None:
            return None
        return self.accounts[hit[0]], hit[1]

    def is_change(self, script: bytes) -> bool:
        """A script of an internal (change) descriptor, and not labelled (as Core's
        OutputIsChange)."""
        hit = self.owner(script)
        return hit is not None and hit[0].internal

    # -- transactions ----------------------------------------------------------------------

    def _index_tx(self, wtx: WalletTx) -> None:
        self.txs[wtx.txid] = wtx
        mine = [n for n, out in enumerate(wtx.tx.vout) if out.script_pubkey in self.scripts]
        self.credits[wtx.txid] = mine
        if not wtx.tx.is_coinbase():
            for txin in wtx.tx.vin:
                self.spenders.setdefault(txin.prevout.key(), set()).add(wtx.txid)

    def is_relevant(self, tx: Transaction) -> bool:
        scripts = self.scripts
        for out in tx.vout:
            if out.script_pubkey in scripts:
                return True
        if tx.is_coinbase():
            return False
        txs = self.txs
        for txin in tx.vin:
            prev = txs.get(txin.prevout.hash)
            if prev is not None and txin.prevout.n in self.credits[prev.txid]:
                return True
        return False

    def _note_outputs_used(self, tx: Transaction) -> None:
        for out in tx.vout:
            hit = self.scripts.get(out.script_pubkey)
            if hit is not None:
                self._mark_used(*hit)

    def save_tx(self, wtx: WalletTx) -> None:
        """Insert or update one transaction (call inside db.atomic for several)."""
        self.mempool_synced = None
        if wtx.txid not in self.txs:
            self._note_outputs_used(wtx.tx)
            self._index_tx(wtx)
            if self.locked_coins and not wtx.tx.is_coinbase():
                for txin in wtx.tx.vin:  # a locked coin spent (chosen by hand) is unlocked
                    self.unlock_coin(txin.prevout.key())
        else:
            self.txs[wtx.txid] = wtx
            # a lookahead extension may have made more outputs ours since it was indexed
            self.credits[wtx.txid] = [n for n, out in enumerate(wtx.tx.vout)
                                      if out.script_pubkey in self.scripts]
        if wtx.active and wtx.txid in self.abandoned:  # back in a mempool or a block
            self.abandoned.discard(wtx.txid)
            self.db.conn.execute("DELETE FROM abandoned_txs WHERE txid=?", (wtx.txid,))
        self.db.conn.execute(
            "INSERT OR REPLACE INTO txs(txid, raw, height, block_hash, block_time, block_pos,"
            " received, in_mempool, replaced_by, replaces, comment)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (wtx.txid, wtx.tx.serialize(), wtx.height, wtx.block_hash, wtx.block_time,
             wtx.block_pos, wtx.received, int(wtx.in_mempool), wtx.replaced_by, wtx.replaces,
             wtx.comment))

    def add_tx(self, tx: Transaction, *, height: int | None = None,
               block_hash: bytes | None = None, block_time: int | None = None,
               block_pos: int | None = None, in_mempool: bool = False,
               replaces: bytes | None = None, comment: str | None = None) -> WalletTx:
        wtx = self.txs.get(tx.txid)
        if wtx is None:
            wtx = WalletTx(tx.txid, tx, received=int(self.clock()))
        wtx.height, wtx.block_hash, wtx.block_time, wtx.block_pos = (
            height, block_hash, block_time, block_pos)
        wtx.in_mempool = in_mempool if height is None else False
        if replaces is not None:
            wtx.replaces = replaces
        if comment is not None:
            wtx.comment = comment
        with self.db.atomic():
            self.save_tx(wtx)
            if replaces is not None and replaces in self.txs:
                old = self.txs[replaces]
                old.replaced_by = tx.txid
                old.in_mempool = False
                self.save_tx(old)
        return wtx

    def set_tip(self, height: int, block_hash: bytes, block_time: int) -> None:
        self.tip_height, self.tip_hash, self.tip_time = height, block_hash, block_time
        self.db.conn.execute("INSERT OR REPLACE INTO blocks(height, hash) VALUES (?, ?)",
                             (height, block_hash))
        self.db.set_meta("tip_height", height)
        self.db.set_meta("tip_hash", block_hash)
        self.db.set_meta("tip_time", block_time)

    def block_hash_at(self, height: int) -> bytes | None:
        row = self.db.conn.execute("SELECT hash FROM blocks WHERE height=?", (height,)).fetchone()
        return None if row is None else row[0]

    def rewind(self, height: int, block_hash: bytes, block_time: int) -> int:
        """Forget blocks above height (a reorg): their transactions become unconfirmed, and
        count again only if the mempool has them. Returns how many were unconfirmed."""
        n = 0
        with self.db.atomic() as c:
            for wtx in list(self.txs.values()):
                if wtx.height is not None and wtx.height > height:
                    wtx.height = wtx.block_hash = wtx.block_time = wtx.block_pos = None
                    wtx.in_mempool = False
                    self.save_tx(wtx)
                    n += 1
            c.execute("DELETE FROM blocks WHERE height > ?", (height,))
            self.set_tip(height, block_hash, block_time)
        return n

    def depth(self, wtx: WalletTx) -> int:
        """Confirmations, as Core's GetTxDepthInMainChain: for one not in a block, minus the
        confirmations of a conflicting one that is, else 0 (in the mempool or not)."""
        if wtx.height is not None:
            return self.tip_height - wtx.height + 1
        if not wtx.tx.is_coinbase():
            for t in self.conflicts(wtx):
                other = self.txs[t]
                if other.height is not None:
                    return -(self.tip_height - other.height + 1)
        return 0

    def is_trusted(self, wtx: WalletTx, _known: dict[bytes, bool] | None = None) -> bool:
        """Core's CachedTxIsTrusted: confirmed, or in the mempool and paid for wholly from
        this wallet's own trusted coins. (_known: the answers found so far in this call, so
        that a parent reached twice, as two outputs of one transaction spent together, is
        judged once.)"""
        if wtx.height is not None:
            return True
        if not wtx.in_mempool or wtx.tx.is_coinbase():
            return False
        known = {} if _known is None else _known
        if wtx.txid in known:
            return known[wtx.txid]
        known[wtx.txid] = False  # (a cycle cannot be trusted)
        for txin in wtx.tx.vin:
            parent = self.txs.get(txin.prevout.hash)
            if parent is None or txin.prevout.n not in self.credits[parent.txid]:
                return False
            if not self.is_trusted(parent, known):
                return False
        known[wtx.txid] = True
        return True

    def is_spent(self, outpoint: tuple[bytes, int]) -> bool:
        """Core's IsSpent: a wallet transaction spends it that is neither abandoned nor
        conflicted (by one in a block or in the mempool, a replacement included); one out
        of the mempool (refused, or dropped) still does."""
        for txid in self.spenders.get(outpoint, ()):
            wtx = self.txs[txid]
            if wtx.active:
                return True
            if txid in self.abandoned or wtx.replaced_by is not None:
                continue
            if not any(self.txs[t].active for t in self.conflicts(wtx)):
                return True
        return False

    def maturity_left(self, wtx: WalletTx) -> int:
        """Blocks until a coinbase can be spent (Core's GetBlocksToMaturity)."""
        if not wtx.tx.is_coinbase():
            return 0
        return max(0, self.params.coinbase_maturity + 1 - self.depth(wtx))

    def with_descendants(self, txid: bytes) -> frozenset[bytes]:
        """txid and the unconfirmed wallet transactions that spend it, directly or not."""
        out, todo = {txid}, [txid]
        while todo:
            parent = todo.pop()
            for t, w in self.txs.items():
                if t not in out and w.height is None and any(
                        i.prevout.hash == parent for i in w.tx.vin):
                    out.add(t)
                    todo.append(t)
        return frozenset(out)

    def abandon(self, txid: bytes) -> None:
        """Core's AbandonTransaction: the transaction (neither confirmed nor in the mempool)
        and its unconfirmed descendants are marked abandoned."""
        with self.db.atomic():
            for t in self.with_descendants(txid):
                if not self.txs[t].active:
                    self.abandoned.add(t)
                    self.db.conn.execute("INSERT OR REPLACE INTO abandoned_txs(txid) VALUES (?)",
                                         (t,))

    def lock_coin(self, outpoint: tuple[bytes, int], persistent: bool) -> None:
        persistent = persistent or self.locked_coins.get(outpoint, False)
        self.locked_coins[outpoint] = persistent
        if persistent:
            self.db.conn.execute("INSERT OR REPLACE INTO locked_coins(txid, vout) VALUES (?,?)",
                                 outpoint)

    def unlock_coin(self, outpoint: tuple[bytes, int]) -> None:
        if self.locked_coins.pop(outpoint, False):
            self.db.conn.execute("DELETE FROM locked_coins WHERE txid=? AND vout=?", outpoint)

    def set_avoid_reuse(self, value: bool) -> None:
        self.avoid_reuse = value
        self.db.set_meta("avoid_reuse", int(value))

    def used_scripts(self) -> set[bytes]:
        """Scripts of this wallet that a wallet transaction has spent from (Core's "used"
        destinations of avoid_reuse, IsSpentKey), from every transaction the wallet holds:
        as Core's after a rescan."""
        out = set()
        for txid, ns in self.credits.items():
            vout = self.txs[txid].tx.vout
            for n in ns:
                if (txid, n) in self.spenders:
                    out.add(vout[n].script_pubkey)
        return out

    def remove_tx(self, txid: bytes) -> None:
        """Forget a transaction (Core's RemoveTxs, for removeprunedfunds)."""
        wtx = self.txs.pop(txid)
        self.credits.pop(txid, None)
        if not wtx.tx.is_coinbase():
            for txin in wtx.tx.vin:
                spenders = self.spenders.get(txin.prevout.key())
                if spenders is not None:
                    spenders.discard(txid)
                    if not spenders:
                        del self.spenders[txin.prevout.key()]
        self.abandoned.discard(txid)
        with self.db.atomic() as c:
            c.execute("DELETE FROM txs WHERE txid=?", (txid,))
            c.execute("DELETE FROM abandoned_txs WHERE txid=?", (txid,))

    def coins(self, include_unsafe: bool = False, include_immature: bool = False,
              skip_locked: bool = False) -> list[Coin]:
        """Unspent outputs of transactions that count, oldest first (without the locked ones
        when skip_locked: coin selection and listunspent skip them, balances count them;
        nor, then, those of used scripts while avoiding_used)."""
        used = self.used_scripts() if skip_locked and self.avoiding_used else set()
        out = []
        for txid, ns in self.credits.items():
            if not ns:
                continue
            wtx = self.txs[txid]
            if not wtx.active:
                continue
            if not include_immature and self.maturity_left(wtx) > 0:
                continue
            trusted = self.is_trusted(wtx)
            if not trusted and not include_unsafe:
                continue
            depth = self.depth(wtx)
            for n in ns:
                if self.is_spent((txid, n)) or (skip_locked and (txid, n) in self.locked_coins):
                    continue
                txout = wtx.tx.vout[n]
                if used and txout.script_pubkey in used:
                    continue
                acc_id, index = self.scripts[txout.script_pubkey]
                out.append(Coin(txid, n, txout.value, txout.script_pubkey, acc_id, index,
                                depth, wtx.tx.is_coinbase(), trusted))
        return out

    def balances(self) -> dict[str, int]:
        """Core's getbalances "mine": trusted, untrusted_pending, immature (satoshis), and
        the split the CLI shows: confirmed and unconfirmed."""
        b = {"trusted": 0, "untrusted_pending": 0, "immature": 0, "confirmed": 0,
             "unconfirmed": 0, "nonmempool": 0}
        # what unconfirmed transactions out of the mempool (refused, or dropped from it),
        # neither abandoned nor replaced nor conflicted by one in a block or the mempool,
        # would change
        for wtx in self.txs.values():
            if (wtx.active or wtx.txid in self.abandoned or wtx.replaced_by is not None
                    or wtx.tx.is_coinbase()
                    or any(self.txs[t].active for t in self.conflicts(wtx))):
                continue
            b["nonmempool"] += self.credit(wtx) - self.debit(wtx)
        for coin in self.coins(include_unsafe=True, include_immature=True):
            wtx = self.txs[coin.txid]
            if self.maturity_left(wtx) > 0:
                b["immature"] += coin.value
                continue
            b["trusted" if coin.trusted else "untrusted_pending"] += coin.value
            b["confirmed" if coin.depth >= 1 else "unconfirmed"] += coin.value
        return b

    def debit(self, wtx: WalletTx) -> int:
        """What the transaction spends of ours."""
        total = 0
        if wtx.tx.is_coinbase():
            return 0
        for txin in wtx.tx.vin:
            parent = self.txs.get(txin.prevout.hash)
            if parent is not None and txin.prevout.n in self.credits[parent.txid]:
                total += parent.tx.vout[txin.prevout.n].value
        return total

    def credit(self, wtx: WalletTx) -> int:
        return sum(wtx.tx.vout[n].value for n in self.credits[wtx.txid])

    def fee_of(self, wtx: WalletTx) -> int | None:
        """The fee when every input is ours (else unknown)."""
        if wtx.tx.is_coinbase():
            return None
        total_in = 0
        for txin in wtx.tx.vin:
            parent = self.txs.get(txin.prevout.hash)
            if parent is None or txin.prevout.n not in self.credits[parent.txid]:
                return None
            total_in += parent.tx.vout[txin.prevout.n].value
        return total_in - wtx.tx.total_out()

    def conflicts(self, wtx: WalletTx) -> list[bytes]:
        """Other wallet transactions spending an input of this one."""
        out: set[bytes] = set()
        if not wtx.tx.is_coinbase():
            for txin in wtx.tx.vin:
                out |= self.spenders.get(txin.prevout.key(), set())
        out.discard(wtx.txid)
        return sorted(out)

    def prevout(self, txid: bytes, n: int):  # noqa: ANN201  (TxOut | None)
        wtx = self.txs.get(txid)
        if wtx is None or n >= len(wtx.tx.vout):
            return None
        return wtx.tx.vout[n]

    def set_mempool(self, txids: Iterable[bytes]) -> None:
        """Record which unconfirmed transactions the node's mempool holds now."""
        pool = set(txids)
        with self.db.atomic():
            for wtx in self.txs.values():
                if wtx.height is None:
                    now = wtx.txid in pool
                    if now != wtx.in_mempool:
                        wtx.in_mempool = now
                        self.save_tx(wtx)

    # -- backup ----------------------------------------------------------------------------

    def backup(self, dest: Path) -> None:
        self.db.backup_to(dest)


def _remove_new_wallet(directory: Path) -> None:
    """Undo a failed create: the files it made, and the folder when empty."""
    for name in ("wallet.sqlite", "wallet.sqlite-journal", ".lock"):
        try:
            os.unlink(Path(directory) / name)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


def _label_to_db(label: str) -> str | bytes:
    """A label as the wallet file keeps it. Any JSON string is a label, including one with a
    lone surrogate ("\\ud800"), which is no UTF-8 text: that one is kept as its surrogatepass
    bytes (a BLOB in the same column) and read back as the same string."""
    try:
        label.encode()
        return label
    except UnicodeEncodeError:
        return label.encode("utf-8", "surrogatepass")


def _label_from_db(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "surrogatepass")

