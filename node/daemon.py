"""minibtcd: builds the node's parts, connects their events, starts and stops them.

One asyncio loop serves RPC and P2P. Everything that changes the chain runs on a single
validation thread (or an RPC thread, under the chain lock), so it is serialized without
blocking the loop; script checks go to worker processes. The P2P layer subscribes to the
chain's and the mempool's events; they never call into it.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import shutil
import signal
import string
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from node import clock, deferredcerts, esplora
from node.config import KNOWN, ConfigError, NodeConfig, load_config
from node.logs import log_args, setup_logging
from node.loopfirst import LoopFirst, LoopFirstSelector
from node.scheduler import Scheduler
from node.settings import Settings

log = logging.getLogger("minibtcd")

VERSION = "0.1.0"
# The Bitcoin Core RPC interface minibtcd implements, as getnetworkinfo's "version" states it in
# Core's CLIENT_VERSION encoding (310000 for 31.0.0): what clients such as ElectrumX check.
# minibtc's own version stays in the user agent ("subversion": /minibtc:0.1.0/).
CORE_INTERFACE_VERSION = "31.0.0"
REINDEX_MARKER = ".reindexing"  # in the chain datadir while -reindex rebuilds the databases
USAGE = """minibtcd: a Bitcoin-compatible full node for regtest and local test networks.

Usage: minibtcd [options]

Options (Core-style: -name=value, -name for true, -noname for false):
  -chain=<regtest|main>   chain to run (default: main, as Core); -regtest is -chain=regtest
  -datadir=<dir>          data directory (default: ~/.minibtc; chain data in a subfolder per
                          chain, none for main)
  -conf=<file>            config file, relative to the datadir (default: bitcoin.conf)
  -rpcport=<port>         JSON-RPC port (default: 18443 on regtest, 8332 on main)
  -rpcbind=<addr>[:port]  address to listen on for JSON-RPC (default: 127.0.0.1 and ::1)
  -rpcallowip=<ip|net>    allow JSON-RPC from this address or subnet (default: loopback)
  -rpcuser=<user> -rpcpassword=<pw>   password auth (otherwise a .cookie file is written)
  -rpcauth=<user>:<salt>$<hash>       HMAC-SHA256 credentials (share/rpcauth.py format)
  -rpcthreads=<n>         threads serving RPC calls (default: 8)
  -dbcache=<MiB>          UTXO cache size (default: 450)
  -par=<n>                script verification threads, as Core's: the validation thread
                          and n-1 worker processes (0 = auto: one per core, <0 = leave
                          that many cores free; 1 = all in-process; default: 0)
  -loadblock=<file>       import blocks from a blk?????.dat-style file (repeatable)
  -reindex                rebuild the block index and UTXO set from the block files
  -reindex-chainstate     rebuild the UTXO set from the block files
  -txindex                keep an index of all transactions (getrawtransaction)
  -esplora[=<port>]       serve the Esplora HTTP API (minibtc's own; default port 3002 on
                          regtest; -esplorabind, -esploracors; see README.md)
  -persistmempool         save the mempool on shutdown and load it on start (default: 1)
  -persistmempoolv1       write mempool.dat in the version 1 format (no XOR obfuscation),
                          as Core before 28.0 (default: 0)
  -maxmempool=<MB>        keep the mempool under this size (default: 300)
  -mempoolexpiry=<hours>  drop unconfirmed transactions older than this (default: 336)
  -mempoolfullrbf         replace any unconfirmed transaction by fee (default: 1)
  -minrelaytxfee=<BTC/kvB>  lowest fee rate relayed (default: 0.00001)
  -fallbackfee=<BTC/kvB>  the wallet's fee rate while fee estimation has no data; 0 disables
                          it (default: 0.0002)
  -listen                 accept P2P connections (default: 1, 0 with -connect)
  -port=<port>            P2P port (default: 18444 on regtest, 8333 on main)
  -bind=<addr>[:port]     address to listen on for P2P (default: all interfaces)
  -connect=<host[:port]>  connect only to these peers (repeatable; -noconnect: none)
  -addnode=<host[:port]>  also keep a connection to these peers (repeatable)
  -maxconnections=<n>     peer connections at most (default: 125)
  -peertimeout=<s>        drop peers that do not finish the handshake in time (default: 60)
  -pingtimeout=<s>        drop peers that do not answer a ping in time (default: 1200)
  -timeout=<ms>           wait this long for an outbound connection (default: 5000)
  -wallet=<name>          load this wallet at start (repeatable; also those created or
                          loaded with load_on_startup, kept in settings.json)
  -disablewallet          do not mount the wallets
  -debug=<category>       debug logging for a category (net, validation, mempool, rpc,
                          wallet, ...), or 1 / all
  -printtoconsole         log to the console as well as to debug.log
  -daemon                 run in the background

Every other option of Bitcoin Core's bitcoind is accepted too (see README.md for which have
an effect), e.g. -prune, -blocksdir, -pid, -whitelist, -rpcwhitelist, -debuglogfile,
-logtimemicros, -uacomment, -testactivationheight, -mocktime, -startupnotify.
"""


class DatadirLock:
    """An exclusive lock on the chain datadir so that a second node cannot use it."""

    def __init__(self, datadir: Path) -> None:
        self.path = datadir / ".lock"
        self.fh = open(self.path, "a")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise ConfigError(
                f"Error: Cannot obtain a lock on data directory {datadir}. minibtcd is "
                f"probably already running."
            ) from None

    def release(self) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class Node:
    """The running node: what RPC methods receive as their first argument."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.params = config.params()
        self.datadir = config.chain_datadir
        self.start_time = time.monotonic()  # uptime: a steady clock, never the mock one (Core)
        self.scheduler = None
        self.pruner = None  # node.prune.Pruner with -prune
        self.tip_changed = threading.Condition()  # notified after each chain activation
        # The validation thread steps aside while the event loop has work (node/loopfirst.py)
        self.loop_first = LoopFirst()
        self.validation = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validation",
                                             initializer=self.loop_first.adopt_current_thread)
        self.chain = None
        self._scripts = None  # node.scriptcheck.ScriptChecker, until the chain takes it
        self.mempool = None
        self.fee_estimator = None
        # (the wallets' option: checked here so that a bad amount stops start-up)
        self.fallback_fee = _fee_rate_option(config.fallbackfee, "fallbackfee", 20_000)
        self.txindex = None
        self.addrindex = None  # the Esplora API's (node/esplora)
        self.esplora = None
        self.rpc = None
        self.p2p = None
        self.wallets = None  # wallet.service.WalletManager, mounted at /wallet/<name>
        self.settings = Settings(config.settings_file)
        self.logfile: Path | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = None
        self.shutting_down = False

    # -- lifecycle --------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Safe from any thread (the `stop` RPC, signal handlers)."""
        self.shutting_down = True
        with self.tip_changed:
            self.tip_changed.notify_all()  # long polls return
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """The node's event loop, whose selector tells the validation thread when the loop
        has work (LoopFirst)."""
        return asyncio.SelectorEventLoop(LoopFirstSelector(self.loop_first))

    async def run(self, ready: callable = None) -> None:
        self.loop = asyncio.get_running_loop()
        deferredcerts.import_aiohttp()  # its CA certificates load once RPC is ready
        from node.rpc import methods  # noqa: F401  (registers every RPC method)
        from node.rpc.server import Credentials, RPCServer, Whitelist, write_cookie

        self._stop = asyncio.Event()
        self.scheduler = Scheduler()
        scheduler_task = asyncio.ensure_future(self.scheduler.run())
        log.info("scheduler thread start")
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.request_shutdown)
        if _signalled:  # a signal that came before the loop's handlers
            self.request_shutdown()
        cfg = self.config
        if not cfg.arg_set("assumevalid") or cfg.arg_str("assumevalid") in ("0", ""):
            log.info("Validating signatures for all blocks.")
        creds = Credentials(cfg.rpcuser, cfg.rpcpassword, cfg.rpcauth)
        cookie = self.datadir / ".cookie"
        if not cfg.rpcpassword:
            creds.add_cookie(write_cookie(cookie))
        binds = rpc_bind_addresses(cfg)
        allow = ["127.0.0.0/8", "::1/128"] + cfg.rpcallowip
        whitelist = cfg.arg_list("rpcwhitelist")
        self.rpc = RPCServer(self, creds, binds, allow, threads=cfg.rpcthreads,
                             whitelist=Whitelist(whitelist, cfg.arg_bool(
                                 "rpcwhitelistdefault", bool(whitelist))),
                             work_queue=max(1, cfg.arg_int("rpcworkqueue", 64)))
        try:
            log.info("Starting HTTP server")
            await self.rpc.start()
            log.info("minibtcd %s starting on %s, datadir %s", VERSION, cfg.chain, self.datadir)
            for w in cfg.warnings:
                log.warning("%s", w)
            if ready:
                ready(None)
            # A shutdown asked for during start-up (SIGTERM, stop) ends it between phases.
            await self._in_validation(self._init_chain)
            if self.shutting_down:
                return
            from node.fees import FLUSH_INTERVAL

            self.scheduler.schedule(self._write_fee_estimates, FLUSH_INTERVAL, FLUSH_INTERVAL)
            log.info("init message: Starting network threads...")
            await self._start_p2p()
            if self.shutting_down:
                return
            self.esplora = await esplora.start(self, self.addrindex)
            if not cfg.disablewallet:
                log.info("Verifying wallet(s)...")
                await self.loop.run_in_executor(None, self._init_wallets)
            self.settings.write()
            self.rpc.warmup = None
            log.info("ready: height %d, tip %s", self.chain.height, self.chain.tip.hash_hex())
            self._start_workers()
            self.loop.run_in_executor(None, deferredcerts.load)
            run_notify(cfg.arg_str("startupnotify"))
            if cfg.loadblock:
                # As Core's initload thread: the mempool counts as loaded (getmempoolinfo,
                # which Core's test framework waits for) once the import is done.
                self.mempool.loaded = False
                self.loop.run_in_executor(self.validation, self._import_files)
            await self._stop.wait()
        finally:
            log.info("Shutdown: in progress...")
            run_notify(cfg.arg_str("shutdownnotify"))
            scheduler_task.cancel()
            self.shutting_down = True
            if self.p2p is not None:
                await self.p2p.stop()
            if self.wallets is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.wallets.close)
            if self.esplora is not None:
                await self.esplora.stop()
            if self.rpc is not None:
                await self.rpc.stop()
            await self._in_validation(self._close_chain)
            self.validation.shutdown(wait=True)
            if not cfg.rpcpassword:
                cookie.unlink(missing_ok=True)
            log.info("Shutdown: done")

    def _write_fee_estimates(self) -> None:
        """Hourly, as Core: fee_estimates.dat written (off the loop)."""
        from node.fees import FEE_ESTIMATES_FILE

        est = self.fee_estimator
        if est is not None:
            self.loop.run_in_executor(None, est.write, self.datadir / FEE_ESTIMATES_FILE)

    def _new_script_checker(self) -> None:
        """Create the script checker (-par workers, -maxsigcachesize); its workers start
        once RPC is ready (_start_workers)."""
        from node.scriptcheck import DEFAULT_MAX_SIG_CACHE_MIB, ScriptChecker, configure_caches

        cfg = self.config
        configure_caches(cfg.arg_int("maxsigcachesize", DEFAULT_MAX_SIG_CACHE_MIB))
        self._scripts = ScriptChecker.from_par(cfg.par)
        self._scripts.pool.step = self.loop_first.step

    def _start_workers(self) -> None:
        """Start the script-check workers of blocks and of the mempool in the background,
        once RPC is ready (up before the first big block, as a rule). Started before, their
        processes took CPU from the start-up itself: the 1,000-block bench chain to RPC
        ready took 0.385 s, now 0.351 s (scripts/bench/startup.py, 15 rounds alternating).
        A block or batch that comes while they start waits for them, or checks itself (as
        for any busy pool)."""
        if self._scripts.parallel:
            self._scripts.pool.start_in_background("script check workers")
        if self.mempool.checker is not None:
            self.mempool.checker.start_in_background("mempool script checkers")

    def _init_wallets(self) -> None:
        """Mount the wallets of <datadir>/wallets and load those asked for (-wallet, and
        settings.json's load_on_startup list), as Core: none is created by itself. The
        wallets reach this node through its JSON-RPC, handed to the RPC server in this
        process (node/rpc/local.py)."""
        from node.rpc.local import LocalNodeClient
        from wallet.service import WalletManager

        cfg = self.config
        host, port = next((b for b in self.rpc.bound if ":" not in b[0]), self.rpc.bound[0])
        url = f"http://{host}:{port}/" if ":" not in host else f"http://[{host}]:{port}/"
        client = LocalNodeClient(self.rpc, url)
        (self.datadir / "wallets").mkdir(exist_ok=True)  # as Core, even while empty
        manager = WalletManager(self.datadir / "wallets", self.params, client, self.settings)
        manager.options = cfg  # wallet options (-keypool, -addresstype, ...): cfg.arg_*()
        manager.clock = clock.now  # wallet times follow setmocktime
        names: list[str] = []
        if not cfg.wallet_negated:
            for name in cfg.wallet + self.settings.startup_wallets():
                if name not in names:
                    names.append(name)
        problems = manager.start(names)
        if problems:
            manager.close()
            raise ConfigError("Error: " + problems[0].split(": ", 1)[1])
        manager.start_background()
        self.wallets = manager

    async def _start_p2p(self) -> None:
        from node.p2p.manager import PeerManager

        log.info("Loading banlist...")
        log.info("Loading P2P addresses...")
        self.p2p = PeerManager(self.chain, self.mempool, self.params, self.config,
                               self.validation, self.datadir, user_agent(self.config))
        self.p2p.scheduler = self.scheduler  # periodic P2P jobs (rebroadcast), mockscheduler
        from node.p2p.cfilters import install as install_cfilters  # BIP157 (-peerblockfilters)

        install_cfilters(self.p2p, self.indexes.blockfilter,
                         self.config.arg_bool("peerblockfilters", False))
        await self.p2p.start()
        for name in ("net", "addcon", "msghand"):  # Core's threads for what started here
            log.info("%s thread start", name)

    async def _in_validation(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.validation, fn, *args)

    def _init_chain(self) -> None:
        import plyvel

        from consensus.serialize import DeserializationError
        from node.blockimport import reindex, reindex_chainstate
        from node.chain import ChainState
        from node.index import Indexes
        from node.prune import FASTPRUNE_BLOCKFILE_SIZE, Pruner, prune_target
        from node.store import DatabaseOpenError
        from node.store.blockfiles import MAX_BLOCKFILE_SIZE, BlockFileError
        from node.store.blockindex import index_damage

        cfg = self.config
        prune = prune_target(cfg)
        esplora.configure(cfg)  # -esplora turns on the indexes it needs
        Indexes.options(cfg)  # Core's checks of the index options, before anything changes
        # -reindex rebuilds the databases from the block files: start them from nothing, so
        # that even a damaged database (one that cannot be opened) is recovered. A marker
        # file, written first and removed once the rebuild is done, makes a restart after a
        # crash in between carry on with the reindex instead of starting from an empty index.
        marker = self.datadir / REINDEX_MARKER
        reindexing = cfg.reindex or marker.exists()
        doomed = []
        if reindexing:
            marker.write_text("reindex in progress\n")
            doomed = ["blocks/index", "chainstate"]  # indexes: wiped as they open
        elif cfg.reindex_chainstate:
            doomed = ["chainstate"]
            damage = index_damage(self.datadir / "blocks" / "index")
            if damage:  # the UTXO set cannot be rebuilt on it: rebuild both, as -reindex
                log.warning("block index damaged (%s): rebuilding it as -reindex", damage)
                reindexing = True
                marker.write_text("reindex in progress\n")
                doomed = ["blocks/index", "chainstate"]
        for sub in doomed:
            if (self.datadir / sub).exists():
                shutil.rmtree(self.datadir / sub)
        self._new_script_checker()
        scripts = self._scripts
        try:
            self.chain = ChainState(self.datadir, self.params, dbcache_mb=cfg.dbcache,
                                    scripts=scripts, now=clock.now, blocks_dir=cfg.blocks_dir,
                                    blocks_xor=cfg.arg_bool("blocksxor", True),
                                    max_file_size=FASTPRUNE_BLOCKFILE_SIZE
                                    if cfg.arg_bool("fastprune") else MAX_BLOCKFILE_SIZE)
        except DatabaseOpenError as err:
            log.error("%s", err)
            raise _load_error(f"Error {err.verb} {err.what} database", err) from None
        self.chain.max_tip_age = cfg.arg_int("maxtipage", self.chain.max_tip_age)
        self.chain.stop_at_height = cfg.arg_int("stopatheight", 0)  # Core's -stopatheight
        self.chain.on_stop_height = self.request_shutdown
        if cfg.arg_set("minimumchainwork"):
            self.chain.minimum_chain_work = int(cfg.arg_str("minimumchainwork"), 16)
        # The optional indexes (node/index): opened now, so that a damaged one stops start-up;
        # wiped by -reindex (not by a reindex carried on after a restart); started once the
        # chain is loaded.
        self.indexes = Indexes.from_config(cfg, self.datadir, self.chain, wipe=cfg.reindex,
                                           addrindex=esplora.esplora_port(cfg) is not None)
        self.txindex = self.indexes.txindex
        self.addrindex = self.indexes.addr
        log.info("initload thread start")  # (Core's thread name for this phase)
        if reindexing or self.chain.index_db.is_reindexing():
            self.rpc.warmup = "Reindexing blocks..."
            reindex(self.chain)
            marker.unlink(missing_ok=True)
        elif cfg.reindex_chainstate:
            self.rpc.warmup = "Reindexing chainstate..."
            reindex_chainstate(self.chain)
        else:
            try:
                self.chain.load()
            except (plyvel.Error, DeserializationError, BlockFileError) as err:
                log.error("%s", err)
                missing = missing_block_files(self.chain)
                raise _load_error("Error loading block database", missing or err) from None
        missing = missing_block_files(self.chain)
        if missing:
            raise _load_error("Error loading block database", missing)
        if prune:
            self.pruner = Pruner(self.chain, prune)
        tip = self.chain.tip
        log.info("Loaded best chain: hashBestChain=%s height=%d date=%s", tip.hash_hex(),
                 tip.height, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tip.time)))
        log.info("init message: Verifying blocks...")
        # Core's start-up VerifyDB: the last -checkblocks blocks at -checklevel.
        nblocks = cfg.arg_int("checkblocks", DEFAULT_CHECKBLOCKS)
        level = min(max(cfg.arg_int("checklevel", DEFAULT_CHECKLEVEL), 0), 4)
        problem = self.chain.verify_problem(level, nblocks if nblocks > 0 else 0)
        if problem:
            raise _load_error("Corrupted block database detected", problem)
        self.indexes.start()
        if self.pruner is not None:  # blocks the indexes have still to read stay
            self.pruner.locks.append(self.indexes.prune_lock)
        self._init_mempool()

        blocknotify = cfg.arg_str("blocknotify")

        def notify() -> None:
            with self.tip_changed:
                self.tip_changed.notify_all()
            if blocknotify and not self.chain.in_ibd():  # Core: not while catching up
                run_notify(blocknotify, self.chain.tip.hash_hex())

        self.chain.on_activated.append(notify)
        from node.zmqpub import ZMQPublisher  # -zmqpub* notifications

        self.zmq = ZMQPublisher.from_config(cfg, self.chain, self.mempool)

    def _init_mempool(self) -> None:
        from consensus.script.pool import ScriptCheckPool
        from node.fees import FEE_ESTIMATES_FILE, FeeEstimator
        from node.mempool import Mempool
        from node.policy import DEFAULT_MIN_RELAY_FEE

        cfg = self.config
        chain = self.chain
        checker = None
        if chain.scripts.parallel:
            # Batches of submitted transactions have their scripts checked by workers of
            # their own (so that block checks never wait behind them), one fewer than the
            # block checks' (at least one):
            # the thread accepting the batch keeps a core busy, and takes over checks the
            # workers have not reached (measured: two such workers on two cores were slower).
            checker = ScriptCheckPool(max(1, chain.scripts.pool.workers - 1))
        self.mempool = Mempool(
            chain, max_size_mb=cfg.maxmempool, expiry_hours=cfg.mempoolexpiry,
            min_relay_fee=_fee_rate_option(cfg.minrelaytxfee, "minrelaytxfee",
                                           DEFAULT_MIN_RELAY_FEE),
            full_rbf=cfg.mempoolfullrbf, checker=checker, now=clock.now,
        )
        self.mempool.config = cfg  # policy options (-datacarriersize, -dustrelayfee, ...)
        self.mempool.persist_v1 = cfg.arg_bool("persistmempoolv1", False)
        # Core's block policy estimator, its state from fee_estimates.dat (node/fees.py)
        accept_stale = cfg.arg_bool("acceptstalefeeestimates", False)
        if accept_stale and cfg.chain != "regtest":
            raise ConfigError(f"Error: acceptstalefeeestimates is not supported on {cfg.chain} "
                              "chain.")
        est = self.fee_estimator = FeeEstimator()
        est.read(self.datadir / FEE_ESTIMATES_FILE, accept_stale=accept_stale)
        mempool = self.mempool
        est.attach(chain, mempool)
        if cfg.persistmempool:
            mempool.load(self.datadir / "mempool.dat")
        else:
            mempool.loaded = True

    def _import_files(self) -> None:
        from node.blockimport import load_external_block_file

        for f in self.config.loadblock:
            if self.shutting_down:
                return
            try:
                stats = load_external_block_file(self.chain, f)
                log.info("Imported %s: %s", f, stats)
            except Exception as err:  # keep running: a bad file must not kill the node
                log.error("Importing %s failed: %s", f, err)
        self.mempool.loaded = True

    def _close_chain(self) -> None:
        if getattr(self, "zmq", None) is not None:
            self.zmq.close()
        if self.mempool is not None:
            self.mempool.close()
        if self.mempool is not None and self.config.persistmempool:
            try:
                n = self.mempool.save(self.datadir / "mempool.dat")
                log.info("Dumped mempool: %d transactions", n)
            except OSError as err:
                log.error("Failed to dump mempool: %s", err)
        if self.fee_estimator is not None:
            # transactions still waiting recorded as such, then fee_estimates.dat
            from node.fees import FEE_ESTIMATES_FILE

            self.fee_estimator.flush(self.datadir / FEE_ESTIMATES_FILE)
        if getattr(self, "indexes", None) is not None:
            self.indexes.close()  # first: their threads read the chain
        if self.chain is not None:
            self.chain.close()  # (closes its script checker)
        elif self._scripts is not None:
            self._scripts.close()


UA_COMMENT_CHARS = set(string.ascii_letters + string.digits + " .,;-_?@")
MAX_SUBVERSION_LENGTH = 256


def user_agent(config: NodeConfig) -> str:
    """BIP14's user agent, with -uacomment as Core checks it."""
    comments = config.arg_list("uacomment")
    for c in comments:
        if not set(c) <= UA_COMMENT_CHARS:
            raise ConfigError(f"Error: User Agent comment ({c}) contains unsafe characters.")
    ua = f"/minibtc:{VERSION}" + (f"({'; '.join(comments)})" if comments else "") + "/"
    if len(ua) > MAX_SUBVERSION_LENGTH:
        raise ConfigError(f"Error: Total length of network version string ({len(ua)}) exceeds "
                          f"maximum length ({MAX_SUBVERSION_LENGTH}). Reduce the number or "
                          f"size of uacomments.")
    return ua


DEFAULT_CHECKBLOCKS = 6
DEFAULT_CHECKLEVEL = 3


def _load_error(what: str, detail: object = None) -> ConfigError:
    """Core's start-up error for a database that cannot be used, naming what is damaged,
    with its remedy."""
    what += f": {detail}" if detail else ""
    return ConfigError(f"Error: {what}.\nPlease restart with -reindex or -reindex-chainstate "
                       f"to recover.")


def missing_block_files(chain) -> str:
    """Core's "Checking all blk files are present": the files the index points into that
    were not there at start-up ("" when none)."""
    wanted = chain.index_db.block_files  # (kept in the index: no entry is read for it)
    missing = [chain.files.block_path(n).name for n in sorted(wanted - chain.files.found)]
    return f"missing {', '.join(missing)} in {chain.files.dir}" if missing else ""


def pid_file(config: NodeConfig) -> Path | None:
    """-pid (default bitcoind.pid, as Core), relative to the chain datadir; -nopid: none."""
    name = config.arg_str("pid", "bitcoind.pid")
    if config.arg_set("pid") and name in ("0", ""):
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else config.chain_datadir / path


def run_notify(command: str | None, arg: str | None = None) -> None:
    """-startupnotify/-blocknotify/-shutdownnotify: the command in a shell, not waited for
    (%s replaced by `arg`)."""
    if not command:
        return
    import subprocess

    if arg is not None:
        command = command.replace("%s", arg)
    try:
        subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        log.error("notify command failed: %s", err)


def _fee_rate_option(value: str | None, name: str, default: int) -> int:
    """A BTC/kvB option (-fallbackfee, -minrelaytxfee) in sat/kvB."""
    if value is None:
        return default
    from node.rpc.jsonutil import parse_amount

    try:
        return parse_amount(value, name)
    except (TypeError, ValueError):
        raise ConfigError(f"Error: Invalid amount for -{name}=<amount>: '{value}'") from None


def rpc_bind_addresses(cfg: NodeConfig) -> list[tuple[str, int]]:
    """-rpcbind's addresses, as Core: honoured only with -rpcallowip (otherwise the server
    stays on localhost, with a warning); a bad port stops start-up with Core's text."""
    from node.p2p.netaddr import AddressError, split_host_port

    port = cfg.effective_rpcport
    binds = []
    for b in cfg.rpcbind:
        try:
            binds.append(split_host_port(b, port))
        except AddressError:
            raise ConfigError(f"Error: Invalid port specified in -rpcbind: '{b}'") from None
    if binds and not cfg.rpcallowip:
        log.warning("option -rpcbind was ignored because -rpcallowip was not specified, "
                    "refusing to allow everyone to connect")
        binds = []
    if not binds:
        return [("127.0.0.1", port)] + ([("::1", port)] if _has_ipv6() else [])
    return binds


def _has_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _daemonize() -> int | None:
    """Fork into the background. Returns the read end of a pipe in the parent (which waits
    for the child's start-up result), None in the child."""
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        return r
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.environ["MINIBTCD_READY_FD"] = str(w)
    return None


def tune_gc() -> None:
    """Fewer cyclic-GC passes. The node holds hundreds of thousands of long-lived objects
    (index entries, coins, mempool entries) and makes almost no reference cycles, so the
    default thresholds make the collector re-scan that heap over and over for nothing: it
    cost a quarter of mempool acceptance time."""
    gc.set_threshold(50_000, 50, 100)


_signalled = False  # SIGTERM/SIGINT before the event loop took over the signals
_running: Node | None = None


def _on_signal(signum, frame) -> None:
    global _signalled
    _signalled = True
    if _running is not None and _running.loop is not None:
        _running.request_shutdown()


def main(argv: list[str] | None = None) -> int:
    global _running
    argv = sys.argv[1:] if argv is None else argv
    # From the first moment a termination signal is a clean shutdown (exit 0), as Core's.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    tune_gc()
    # The event loop waits for the GIL after each system call (a socket write, a select)
    # while the validation thread runs Python: at most this long (default 5 ms) instead of
    # several times 5 ms per RPC call during a sync (issue 20).
    sys.setswitchinterval(0.001)
    if any(a in ("-h", "-help", "--help", "-?") for a in argv):
        print(USAGE)
        return 0
    if any(a in ("-version", "--version") for a in argv):
        print(f"minibtcd version v{VERSION}")
        return 0
    try:
        config = load_config(argv)
        if config.arg_set("mocktime"):
            clock.set_mock(config.arg_int("mocktime"))
        for w in config.warnings:
            if w.startswith("warning:"):  # Core says these on stderr, the others in the log
                print(w, file=sys.stderr)
        user_agent(config)
        rpc_bind_addresses(config)
        datadir = config.chain_datadir
        datadir.mkdir(parents=True, exist_ok=True)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    if config.daemon:
        r = _daemonize()
        if r is not None:  # parent: report the child's start-up result
            msg = os.read(r, 4096).decode()
            if msg.startswith("ok"):
                print("minibtcd starting")
                return 0
            print(msg or "Error: minibtcd failed to start", file=sys.stderr)
            return 1
    ready_fd = os.environ.pop("MINIBTCD_READY_FD", None)

    def report(error: str | None) -> None:
        nonlocal ready_fd
        if ready_fd is not None:
            os.write(int(ready_fd), (error or "ok").encode())
            os.close(int(ready_fd))
            ready_fd = None

    try:
        lock = DatadirLock(datadir)
    except ConfigError as err:
        report(str(err))
        print(err, file=sys.stderr)
        return 1
    pidfile = pid_file(config)
    if pidfile is not None:
        try:
            pidfile.write_text(f"{os.getpid()}\n")
        except OSError as err:
            print(f"Error: Unable to create the PID file '{pidfile}': {err.strerror}",
                  file=sys.stderr)
            lock.release()
            return 1
    try:
        node = _running = Node(config)  # (a bad option it checks: Core's error, exit 1)
        node.logfile = setup_logging(config, datadir)
        log_args(config)
        node.settings.read(KNOWN)
        node.settings.write()
        with asyncio.Runner(loop_factory=node.new_event_loop) as runner:
            runner.run(node.run(ready=report))
    except ConfigError as err:
        report(str(err))
        print(err, file=sys.stderr)
        return 1
    except OSError as err:  # e.g. the RPC port is taken
        msg = f"Error: {err}"
        report(msg)
        print(msg, file=sys.stderr)
        logging.getLogger("minibtcd").error(msg)
        return 1
    except Exception as err:
        import plyvel

        from consensus.serialize import DeserializationError
        from node.chain import ChainError
        from node.store.blockfiles import BlockFileError

        if isinstance(err, (BlockFileError, ChainError, plyvel.Error, DeserializationError)):
            what = "database error" if isinstance(err, plyvel.Error) else (
                "corrupt data" if isinstance(err, DeserializationError) else "")
            detail = f"{what}: {err}" if what else str(err)
            msg = f"Error: {detail}. Restart with -reindex to rebuild from the block files."
            report(msg)
            print(msg, file=sys.stderr)
            logging.getLogger("minibtcd").error(msg)
            return 1
        raise
    finally:
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
