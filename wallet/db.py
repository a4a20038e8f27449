"""One sqlite3 file per wallet. Every change the wallet makes is one transaction (`with
db.atomic():`), so a crash leaves the file as it was before or after the change, never
between. Keys and seeds are stored only as sealed blobs (wallet.crypto) once the wallet is
encrypted; `secure_delete` overwrites the pages that held them in clear, and encryptwallet
vacuums the file so no freed page keeps an old copy.

Tables:
  meta(k, v)                      name/value: version, chain, birthday, tip, encryption, seed
  descriptors(id, ...)            the wallet's descriptors: public string, sealed private one,
                                  address type, internal (change) or not, next index, range
                                  start and end (as importdescriptors gave them)
  txs(txid, raw, height, ...)     every transaction that pays or spends the wallet
  labels(address, label)
  blocks(height, hash)            the chain as the wallet last followed it (reorg detection)
  locked_coins(txid, vout)        outputs locked with lockunspent persistent=true
  abandoned_txs(txid)             transactions abandoned (abandontransaction)
  derived_cache(account_id, idx)  each derived position's scripts and keys (JSON): a wallet
                                  opens without deriving its window again, and one with
                                  hardened steps knows what it derived while unlocked
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wallet.errors import RPC_WALLET_ERROR, WalletError

SCHEMA_VERSION = 1
DB_FILE = "wallet.sqlite"
LOCK_FILE = ".lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB);
CREATE TABLE IF NOT EXISTS descriptors (
    id INTEGER PRIMARY KEY,
    descriptor TEXT NOT NULL UNIQUE,
    secret BLOB,
    address_type TEXT,
    internal INTEGER NOT NULL,
    active INTEGER NOT NULL,
    next_index INTEGER NOT NULL,
    range_end INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    txid BLOB PRIMARY KEY,
    raw BLOB NOT NULL,
    height INTEGER,
    block_hash BLOB,
    block_time INTEGER,
    block_pos INTEGER,
    received INTEGER NOT NULL,
    in_mempool INTEGER NOT NULL DEFAULT 0,
    replaced_by BLOB,
    replaces BLOB,
    comment TEXT
);
CREATE TABLE IF NOT EXISTS labels (address TEXT PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS locked_coins (txid BLOB NOT NULL, vout INTEGER NOT NULL,
                                         PRIMARY KEY (txid, vout));
CREATE TABLE IF NOT EXISTS abandoned_txs (txid BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS derived_cache (account_id INTEGER NOT NULL, idx INTEGER NOT NULL,
                                          data TEXT NOT NULL, PRIMARY KEY (account_id, idx));
"""


class WalletDB:
    """The sqlite file of one wallet, held with an exclusive lock (one process at a time)."""

    def __init__(self, directory: Path, create: bool) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_FILE
        if create:
            if self.path.exists():
                raise WalletError(-4, f"Failed to create database path '{self.directory}'. "
                                  "Database already exists.")
            self.directory.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise WalletError(-18, f"Wallet file not found: {self.path}")
        self._lock = open(self.directory / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise WalletError(RPC_WALLET_ERROR, f"Wallet {self.directory} is in use by "
                              "another process (minibtcd or minibtc-wallet)") from None
        try:
            # check_same_thread=False: a wallet is used under its own lock from whichever
            # thread serves the call.
            self.conn = sqlite3.connect(self.path, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA secure_delete=ON")
            self.conn.execute("PRAGMA journal_mode=DELETE")  # one file: easy to copy
            self.conn.execute("PRAGMA synchronous=FULL")
            if create:
                with self.atomic():
                    self._create_tables()
                    self.set_meta("version", SCHEMA_VERSION)
            else:
                version = self.get_meta("version")
                if version is None:
                    raise WalletError(RPC_WALLET_ERROR,
                                      f"{self.path} is not a minibtc wallet (no version)")
                if int(version) > SCHEMA_VERSION:
                    raise WalletError(RPC_WALLET_ERROR, f"{self.path} needs a newer minibtc "
                                      f"(file version {version})")
                with self.atomic():
                    self._create_tables()  # tables added since the file was made
        except sqlite3.DatabaseError as err:
            self.close()
            raise WalletError(RPC_WALLET_ERROR, f"Wallet file {self.path} is corrupt or not "
                              f"a wallet: {err}") from None

    def _create_tables(self) -> None:
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(descriptors)")}
        if "range_start" not in cols:  # (added after the first files were made)
            self.conn.execute("ALTER TABLE descriptors ADD COLUMN range_start INTEGER NOT NULL "
                              "DEFAULT 0")

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.conn = None  # type: ignore[assignment]
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside is written together or not at all."""
        if self.conn.in_transaction:  # nested: part of the outer transaction
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE k=?", (key,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)", (key, value))

    # -- whole-file operations -------------------------------------------------------------

    def vacuum(self) -> None:
        """Rebuild the file so no free page keeps data that was overwritten or deleted."""
        self.conn.execute("VACUUM")

    def backup_to(self, dest: Path) -> None:
        """A consistent copy of the wallet (sqlite's online backup), written then renamed."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / DB_FILE
        tmp = dest.with_name(dest.name + ".tmp")
        target = sqlite3.connect(tmp)
        try:
            self.conn.backup(target)
        finally:
            target.close()
        os.replace(tmp, dest)
