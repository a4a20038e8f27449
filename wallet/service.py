"""WalletManager: the loaded wallets of one wallets directory, and the one entry point every
front end uses: `call(wallet_name_or_None, method, params)`. `minibtc-wallet serve`, the CLI
and minibtcd (mounting it at /wallet/<name>) all go through it, so they behave alike.

Each wallet is used under its own lock (calls to one wallet run one at a time; different
wallets in parallel). Before a method that reads the chain, the wallet is brought up to the
node's tip and mempool, so a call right after a block is mined already sees it; a background
thread (start_background) keeps loaded wallets following the node between calls too.

Errors are WalletError with Core's numeric code; a front end passes code and message on.

The wallet itself (wallet.wallet, wallet.rpc, wallet.spend, wallet.sync) is imported when the
first wallet is created or loaded, or the first wallet method is called: minibtcd builds a
manager at every start, and with no wallet to load that import was 20-27 ms of its 0.4 s
start-up to RPC ready (scripts/bench/startup.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.params import ChainParams
from wallet.accounts import DEFAULT_LOOKAHEAD
from wallet.amounts import parse_btc
from wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_WALLET_ALREADY_EXISTS,
    RPC_WALLET_ALREADY_LOADED,
    RPC_WALLET_ERROR,
    RPC_WALLET_NOT_FOUND,
    RPC_WALLET_NOT_SPECIFIED,
    WalletError,
)
from wallet.nodeclient import NodeClient, NodeRPCError, NodeUnreachable

if TYPE_CHECKING:
    from wallet.wallet import Wallet

log = logging.getLogger("wallet")

SETTINGS_FILE = "settings.json"
_RESCANS = frozenset({"importdescriptors", "rescanblockchain"})
# methods that answer while a rescan holds the wallet (walletlock and walletpassphrasechange
# to refuse, as Core's)
_WHILE_SCANNING = frozenset({"walletlock", "walletpassphrase", "walletpassphrasechange",
                             "getwalletinfo"})
DEFAULT_WALLET = "default"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


def _hex_hash(h: str) -> bytes:
    return bytes.fromhex(h)[::-1]


class WalletManager:
    def __init__(self, wallets_dir: Path, params: ChainParams, node: NodeClient,
                 settings=None) -> None:
        """`settings` keeps the names of the wallets loaded at start-up (startup_wallets,
        set_startup_wallet): minibtcd passes its settings.json; on its own the manager keeps
        them in the wallets directory's settings.json."""
        self.wallets_dir = Path(wallets_dir)
        self.settings = settings if settings is not None else _DirSettings(self.wallets_dir)
        # The node's options when mounted in minibtcd (arg_int/arg_str/arg_bool/arg_list, as
        # node.config.NodeConfig); None on its own: Core's defaults apply.
        self.options = None
        # The clock wallet times are read from: minibtcd sets its mockable one (setmocktime).
        self.clock: Callable[[], float] = time.time
        self.params = params
        self.node = node
        self.wallets: dict[str, Wallet] = {}
        self.locks: dict[str, threading.RLock] = {}
        self._lock = threading.RLock()  # guards the two dicts above and the settings file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the one entry point ---------------------------------------------------------------

    @staticmethod
    def handles(method: str) -> bool:
        from wallet.rpc import METHODS

        return method in METHODS

    def call(self, wallet_name: str | None, method: str, params: Any = None) -> Any:
        from wallet.rpc import METHODS, Call
        from wallet.sync import sync

        m = METHODS.get(method)
        if m is None:
            raise WalletError(RPC_METHOD_NOT_FOUND, "Method not found")
        args = m.bind(params)
        if not m.needs_wallet:
            wallet = self.wallets.get(wallet_name) if wallet_name else None
            if wallet_name and wallet is None:
                raise self._not_loaded(wallet_name)
            return m.func(Call(self, wallet, self.node), *args)
        wallet = self.resolve(wallet_name)
        if method == "abortrescan" or (method in _WHILE_SCANNING and wallet.scanning):
            # (a rescan holds the wallet: these answer beside it, as Core's do)
            return m.func(Call(self, wallet, self.node), *args)
        reserved = False
        if method in _RESCANS:  # Core's WalletRescanReserver: one rescan at a time
            with self._lock:
                if wallet.scanning:
                    raise WalletError(RPC_WALLET_ERROR, "Wallet is currently rescanning. Abort "
                                      "existing rescan or wait.")
                wallet.scanning = reserved = True
        try:
            with self.locks[wallet.name]:
                if wallet.name not in self.wallets:  # unloaded while we waited
                    raise self._not_loaded(wallet.name)
                if m.syncs:
                    sync(wallet, self.node)
                return m.func(Call(self, wallet, self.node), *args)
        finally:
            if reserved:
                wallet.scanning = False

    def resolve(self, name: str | None) -> Wallet:
        """Core's GetWalletForJSONRPCRequest."""
        with self._lock:
            if name is not None:
                w = self.wallets.get(name)
                if w is None:
                    raise self._not_loaded(name)
                return w
            if len(self.wallets) == 1:
                return next(iter(self.wallets.values()))
            if not self.wallets:
                raise WalletError(RPC_WALLET_NOT_FOUND, "No wallet is loaded. Load a wallet "
                                  "using loadwallet or create a new one with createwallet.")
            raise WalletError(RPC_WALLET_NOT_SPECIFIED, "Wallet file not specified (must request "
                              "wallet RPC through /wallet/<filename> uri-path).")

    @staticmethod
    def _not_loaded(name: str) -> WalletError:
        return WalletError(RPC_WALLET_NOT_FOUND, f"Requested wallet does not exist or is not "
                           f"loaded: '{name}'")

    # -- wallets ---------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise WalletError(RPC_INVALID_PARAMETER, f"Invalid wallet name '{name}': use "
                              "letters, digits, '_', '-' and '.', up to 64 characters")
        return self.wallets_dir / name

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self.wallets)

    def on_disk(self) -> list[str]:
        if not self.wallets_dir.is_dir():
            return []
        return sorted(p.name for p in self.wallets_dir.iterdir()
                      if (p / "wallet.sqlite").is_file())

    def option_int(self, name: str, default: int) -> int:
        return default if self.options is None else self.options.arg_int(name, default)

    def option_btc(self, name: str, default: int) -> int:
        """A BTC amount option (-maxtxfee, -mintxfee, ...) in satoshis (sat/kvB for rates)."""
        text = None if self.options is None else self.options.arg_str(name)
        if text is None:
            return default
        try:
            return parse_btc(text)
        except WalletError:
            return default

    def _keypool(self) -> int:
        return max(1, self.option_int("keypool", DEFAULT_LOOKAHEAD))

    def _configure(self, w: Wallet) -> None:
        """The node's wallet options, with Core's defaults when running on our own."""
        from wallet import spend

        w.clock = self.clock
        w.lookahead = self._keypool()
        w.max_tx_fee = self.option_btc("maxtxfee", spend.MAX_TX_FEE)
        w.min_tx_fee = self.option_btc("mintxfee", spend.MIN_TX_FEE)
        w.min_relay_fee = self.option_btc("minrelaytxfee", spend.MIN_RELAY_FEE)
        w.pay_tx_fee = self.option_btc("paytxfee", 0)
        w.fallback_fee = self.option_btc("fallbackfee", spend.DEFAULT_FALLBACK_FEE)
        w.max_ancestors = self.option_int("limitancestorcount", 25)
        w.max_descendants = self.option_int("limitdescendantcount", 25)
        if self.options is not None:
            w.reject_long_chains = self.options.arg_bool("walletrejectlongchains", True)
            w.address_type = self.options.arg_str("addresstype") or "bech32"
            w.change_type = self.options.arg_str("changetype") or None

    def _add(self, w: Wallet, load_on_startup: bool | None) -> Wallet:
        self._configure(w)
        self.wallets[w.name] = w
        self.locks[w.name] = w.guard = threading.RLock()
        if load_on_startup is not None:
            self._set_startup(w.name, load_on_startup)
        log.info("wallet %s loaded (tip %d)", w.name, w.tip_height)
        return w

    def create(self, name: str, *, disable_private_keys: bool = False, blank: bool = False,
               passphrase: str | None = None, mnemonic: str | None = None,
               mnemonic_passphrase: str = "", birthday_height: int | None = None,
               load_on_startup: bool | None = None,
               tip: tuple[int, bytes, int] | None = None) -> Wallet:
        """A new wallet, followed from the node's tip (or `tip`, (height, hash, time), when the
        caller knows it: then no node call is needed), or from birthday_height when restoring
        from a mnemonic."""
        from wallet.wallet import Wallet

        directory = self._dir(name)
        with self._lock:
            if name in self.wallets:
                raise WalletError(RPC_WALLET_ALREADY_LOADED, f"Wallet \"{name}\" is already "
                                  "loaded.")
            if (directory / "wallet.sqlite").exists():
                raise WalletError(RPC_WALLET_ALREADY_EXISTS, f"Failed to create database path "
                                  f"'{directory}'. Database already exists.")
            if tip is not None and mnemonic is None:
                birthday: tuple[int, bytes, int] | None = tip
            else:
                birthday = self._birthday(mnemonic is not None, birthday_height)
            self.wallets_dir.mkdir(parents=True, exist_ok=True)
            w = Wallet.create(directory, name, self.params, mnemonic=mnemonic,
                              mnemonic_passphrase=mnemonic_passphrase, passphrase=passphrase,
                              disable_private_keys=disable_private_keys, blank=blank,
                              birthday=birthday,
                              lookahead=self._keypool())
            return self._add(w, load_on_startup)

    def _birthday(self, restoring: bool, height: int | None) -> tuple[int, bytes, int] | None:
        """The block a new wallet starts after: the node's tip for a fresh one (nothing can
        pay it earlier), the block before `height` for a restore (the genesis by default)."""
        if restoring and not height:
            return None
        if height is None:
            info = self.node.call("getblockchaininfo")
            h = int(info["blocks"])
            bhash = info["bestblockhash"]
        else:
            h = int(height) - 1
            if h < 0:
                return None
            bhash = self.node.call("getblockhash", h)
        header = self.node.call("getblockheader", bhash)
        return h, _hex_hash(bhash), int(header["time"])

    def load(self, name: str, load_on_startup: bool | None = None) -> Wallet:
        from wallet.wallet import Wallet

        directory = self._dir(name)
        with self._lock:
            if name in self.wallets:
                raise WalletError(RPC_WALLET_ALREADY_LOADED, f"Wallet \"{name}\" is already "
                                  "loaded.")
            if not (directory / "wallet.sqlite").exists():
                raise WalletError(RPC_WALLET_NOT_FOUND, f"Wallet file verification failed. "
                                  f"Failed to load database path '{directory}'. Path does not "
                                  "exist.")
            return self._add(Wallet.open(directory, name, self.params, self._keypool()),
                             load_on_startup)

    def unload(self, name: str, load_on_startup: bool | None = None) -> None:
        with self._lock:
            w = self.wallets.get(name)
            if w is None:
                raise self._not_loaded(name)
            lock = self.locks[name]
        with lock:
            with self._lock:
                self.wallets.pop(name, None)
                self.locks.pop(name, None)
                if load_on_startup is not None:
                    self._set_startup(name, load_on_startup)
            w.close()

    def restore_backup(self, name: str, backup: Path, load_on_startup: bool | None) -> Wallet:
        from wallet.wallet import Wallet

        directory = self._dir(name)
        try:
            found = backup.is_file()
        except OSError:  # e.g. a name too long for the file system: no such file either
            found = False
        if not found:
            raise WalletError(RPC_INVALID_PARAMETER, f"Backup file does not exist: {backup}")
        with self._lock:
            if directory.exists() and any(directory.iterdir()):
                raise WalletError(RPC_WALLET_ALREADY_EXISTS, f"Failed to create database path "
                                  f"'{directory}'. Database already exists.")
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(backup, directory / "wallet.sqlite")
            try:
                return self._add(Wallet.open(directory, name, self.params, self._keypool()),
                             load_on_startup)
            except WalletError:
                shutil.rmtree(directory, ignore_errors=True)
                raise

    def rescan(self, w: Wallet, start: int, stop: int | None) -> dict:
        """Rescan blocks start..stop (the tip by default): the wallet forgets what it saw from
        start on and follows the chain again."""
        from wallet.sync import sync

        tip = int(self.node.call("getblockcount"))
        if start > tip or (stop is not None and stop > tip):
            raise WalletError(RPC_INVALID_PARAMETER, "Invalid stop_height" if start <= tip
                              else "Invalid start_height")
        if start <= w.tip_height + 1:
            if start == 0:
                w.rewind(-1, b"", 0)
            else:
                bhash = self.node.call("getblockhash", start - 1)
                header = self.node.call("getblockheader", bhash)
                w.rewind(start - 1, _hex_hash(bhash), int(header["time"]))
        first = self.node.call("getblockhash", start)
        log.info("[%s] Rescan started from block %s... (slow variant inspecting all blocks)",
                 w.name, first)
        began = time.monotonic()
        w.rescanning, w.abort_rescan = True, False
        w.scan_started, w.scan_progress = w.clock(), 0.0
        w.scan_range = (start, tip if stop is None else stop)
        try:
            sync(w, self.node, stop_height=stop)
        finally:
            w.rescanning = False
        if w.abort_rescan:
            w.abort_rescan = False
            log.info("[%s] Rescan aborted at block %d.", w.name, w.tip_height)
            raise WalletError(RPC_MISC_ERROR, "Rescan aborted by user.")
        log.info("[%s] Rescan completed in %dms", w.name, (time.monotonic() - began) * 1000)
        return {"start_height": start, "stop_height": w.tip_height}

    def tip_mtp(self, w: Wallet) -> int:
        """The median time past of the wallet's last block (Core's "now" for imports)."""
        if not w.tip_hash:
            return 0
        header = self.node.call("getblockheader", w.tip_hash[::-1].hex())
        return int(header.get("mediantime", header["time"]))

    def rescan_from_time(self, w: Wallet, timestamp: int) -> None:
        """Core's RescanFromTime: rescan from the first block with a time at or after
        timestamp (nothing when there is none)."""
        tip = int(self.node.call("getblockcount"))
        lo, hi = 0, tip + 1
        while lo < hi:  # first height whose block time is >= timestamp
            mid = (lo + hi) // 2
            header = self.node.call("getblockheader", self.node.call("getblockhash", mid))
            if int(header["time"]) >= timestamp:
                hi = mid
            else:
                lo = mid + 1
        if lo <= tip and lo <= w.tip_height:
            self.rescan(w, lo, None)

    # -- start-up settings -----------------------------------------------------------------

    def _set_startup(self, name: str, on: bool) -> None:
        with self._lock:
            self.settings.set_startup_wallet(name, on)

    def start(self, names: list[str] | None = None) -> list[str]:
        """Load `names` (default: the wallets marked load_on_startup). Returns messages for
        wallets that failed to load (the others still load)."""
        problems = []
        for name in self.settings.startup_wallets() if names is None else names:
            if name in self.wallets:
                continue
            try:
                self.load(name)
            except WalletError as err:
                problems.append(f"wallet {name} not loaded: {err.message}")
                log.error("wallet %s not loaded: %s", name, err.message)
        return problems

    # -- background following --------------------------------------------------------------

    def sync_all(self) -> None:
        names = self.names()
        if not names:
            return
        from wallet.sync import sync

        for name in names:
            lock = self.locks.get(name)
            w = self.wallets.get(name)
            if lock is None or w is None:
                continue
            with lock:
                if name in self.wallets:
                    sync(w, self.node)

    def start_background(self, interval: float = 1.0) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sync_all()
                except NodeUnreachable as err:
                    log.debug("wallet sync: %s", err.message)
                except NodeRPCError as err:  # e.g. -28 while the node warms up
                    log.debug("wallet sync: node answered %d %s", err.code, err.message)
                except WalletError as err:
                    log.warning("wallet sync: %s", err.message)
                except Exception:  # keep following: one bad round must not stop it
                    log.exception("wallet sync failed")

        self._thread = threading.Thread(target=run, name="wallet-sync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for name in self.names():
            try:
                self.unload(name)
            except WalletError:
                pass
        self.node.close()



class _DirSettings:
    """The start-up wallet list of a wallets directory used without a node."""

    def __init__(self, wallets_dir: Path) -> None:
        self.path = wallets_dir / SETTINGS_FILE

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise WalletError(RPC_WALLET_ERROR, f"{self.path} is not valid JSON: {err}"
                              ) from None

    def startup_wallets(self) -> list[str]:
        return list(self._read().get("wallet", []))

    def set_startup_wallet(self, name: str, on: bool) -> None:
        s = self._read()
        names = [n for n in s.get("wallet", []) if n != name]
        if on:
            names.append(name)
        s["wallet"] = names
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(SETTINGS_FILE + ".tmp")
        tmp.write_text(json.dumps(s, indent=2) + "\n")
        os.replace(tmp, self.path)
