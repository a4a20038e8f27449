"""The memory pool: unconfirmed transactions accepted by consensus and Core's relay policy,
with replace-by-fee, ancestor/descendant limits, an orphan pool, size-based eviction and
expiry, following the chain through connects, disconnects and reorgs.

All methods run under the chain's lock (Core's cs_main): the mempool reads the UTXO set and
the tip, and block connection reads and changes the mempool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from consensus.block import Block
from consensus.checks import check_transaction
from consensus.contextual import (
    LOCKTIME_VERIFY_SEQUENCE,
    Coin,
    calculate_sequence_locks,
    check_tx_inputs,
    evaluate_sequence_locks,
    is_final_tx,
    transaction_sigop_cost,
)
from consensus.errors import ValidationError
from consensus.script import flags as sf
from consensus.script.errors import ScriptError
from consensus.script.pool import ScriptCheckPool, VerifyStream
from consensus.script.sighash import PrecomputedTxData
from consensus.script.verify import SCRIPT_EXECUTION_CACHE, verify_transaction
from consensus.tx import Transaction, TxOut
from node import policy
from node.chain import script_flags_at
from node.confparse import ConfigError
from node.policy import PolicyError
from node.store.layout import outpoint_key

log = logging.getLogger("mempool")

MEMPOOL_HEIGHT = 0x7FFFFFFF  # height of coins that exist only in the mempool
MAX_REPLACEMENT_CANDIDATES = 100  # clusters a replacement may conflict with
MAX_ORPHANS = 100
ORPHAN_EXPIRE = 20 * 60
ROLLING_FEE_HALFLIFE = 12 * 60 * 60
EXPIRE_INTERVAL = 10.0  # seconds between scans for expired transactions
ENTRY_OVERHEAD = 400  # bytes of bookkeeping per entry, on top of the transaction itself


class MempoolReject(Exception):
    """Refused: `reason` is Core's reject reason, `debug` the detail after it."""

    def __init__(self, reason: str, debug: str = "", missing_inputs: bool = False,
                 already_known: bool = False, consensus: bool = False) -> None:
        super().__init__(f"{reason}, {debug}" if debug else reason)
        self.reason = reason
        self.debug = debug
        self.missing_inputs = missing_inputs
        self.already_known = already_known
        # Breaks a consensus rule (Core's TX_CONSENSUS): the peer that relayed it misbehaved.
        self.consensus = consensus


class MempoolEntry:
    __slots__ = ("tx", "txid", "wtxid", "fee", "delta", "vsize", "weight", "sigop_cost",
                 "time", "height", "parents", "children", "usage", "sequence")

    def __init__(self, tx: Transaction, fee: int, vsize: int, sigop_cost: int, now: int,
                 height: int) -> None:
        self.tx = tx
        self.txid = tx.txid
        self.wtxid = tx.wtxid
        self.fee = fee
        self.delta = 0
        self.vsize = vsize
        self.weight = tx.weight
        self.sigop_cost = sigop_cost
        self.time = now
        self.height = height
        self.parents: set[bytes] = set()
        self.children: set[bytes] = set()
        self.usage = tx.size * 3 + ENTRY_OVERHEAD
        # The mempool sequence of its addition (the number its ZMQ "A" carries; Core keeps
        # an entry sequence too, to tell what entered after a peer's last look).
        self.sequence = 0

    @property
    def modified_fee(self) -> int:
        return self.fee + self.delta


def format_money(sats: int) -> str:
    """Core's FormatMoney: BTC with at least two decimals, no trailing zeros beyond."""
    sign = "-" if sats < 0 else ""
    q, r = divmod(abs(sats), 100_000_000)
    frac = f"{r:08d}".rstrip("0")
    return f"{sign}{q}.{frac.ljust(2, '0')}"


def _parse_fee_rate(name: str, value: str) -> int:
    """A BTC/kvB option value -> sat/kvB; a bad one stops start-up with Core's text."""
    try:
        d = Decimal(value.strip())
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d < 0 or d * 100_000_000 != int(d * 100_000_000) \
            or d > 21_000_000:
        raise ConfigError(f"Error: Invalid amount for -{name}=<amount>: '{value}'")
    return int(d * 100_000_000)


class Orphan:
    """A transaction waiting for its parents, with the peers that announced it (Core's
    orphanage keeps them to ask again, and getorphantxs shows them)."""
    __slots__ = ("tx", "time", "announcers")

    def __init__(self, tx: Transaction, when: float, announcers: list[int]) -> None:
        self.tx = tx
        self.time = when
        self.announcers = announcers


def chunk_diagram(nodes: dict[bytes, tuple[int, int, set[bytes]]]) -> list[tuple[int, int]]:
    """Chunks (fee, size) of a set of transactions, best first: each cluster linearized by
    repeatedly taking the remaining ancestor set with the highest fee rate, then adjacent
    groups merged while a later one pays a higher rate (Core's chunking). nodes: id ->
    (fee, size, parents within the set)."""
    # One cluster (connected component) at a time: linearizing is quadratic in its size,
    # and clusters are at most -limitclustercount transactions.
    children: dict[bytes, list[bytes]] = {t: [] for t in nodes}
    for t, (_, _, ps) in nodes.items():
        for p in ps:
            children[p].append(t)
    out: list[tuple[int, int]] = []
    seen: set[bytes] = set()
    for start in nodes:
        if start in seen:
            continue
        component = {start}
        todo = [start]
        while todo:
            x = todo.pop()
            for y in (*nodes[x][2], *children[x]):
                if y not in component:
                    component.add(y)
                    todo.append(y)
        seen |= component
        out.extend(_cluster_chunks(nodes, component))
    return out


def _cluster_chunks(nodes: dict[bytes, tuple[int, int, set[bytes]]],
                    members: set[bytes]) -> list[tuple[int, int]]:
    remaining = set(members)
    anc_cache: dict[bytes, set[bytes]] = {}

    def ancestors(t: bytes) -> set[bytes]:
        got = anc_cache.get(t)
        if got is None:
            got = {t}
            for p in nodes[t][2]:
                got |= ancestors(p)
            anc_cache[t] = got
        return got

    chunks: list[list[int]] = []
    while remaining:
        best = None
        best_fee = best_size = 0
        for t in remaining:
            group = ancestors(t) & remaining
            fee = sum(nodes[x][0] for x in group)
            size = sum(nodes[x][1] for x in group)
            if best is None or fee * best_size > best_fee * size or (
                    fee * best_size == best_fee * size and size < best_size):
                best, best_fee, best_size = group, fee, size
        assert best is not None
        remaining -= best
        chunks.append([best_fee, best_size])
        while len(chunks) > 1 and chunks[-1][0] * chunks[-2][1] > chunks[-2][0] * chunks[-1][1]:
            fee, size = chunks.pop()
            chunks[-1][0] += fee
            chunks[-1][1] += size
    return [(f, z) for f, z in chunks]


def _diagram_fee_at(points: list[tuple[int, int]], x: Fraction) -> Fraction:
    """Cumulative fee of a diagram (points (size, fee) from (0, 0)) at size x."""
    prev_s, prev_f = 0, 0
    for s, f in points:
        if x <= s:
            if s == prev_s:
                return Fraction(f)
            return prev_f + Fraction(f - prev_f) * (x - prev_s) / (s - prev_s)
        prev_s, prev_f = s, f
    return Fraction(prev_f)


def diagram_improves(old: list[tuple[int, int]], new: list[tuple[int, int]]) -> bool:
    """Core's CompareChunks(new, old) is greater: the new feerate diagram is nowhere below
    the old one and somewhere above it."""
    def points(chunks: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out = []
        s = f = 0
        for fee, size in sorted(chunks, key=lambda c: Fraction(c[0], c[1] or 1), reverse=True):
            s += size
            f += fee
            out.append((s, f))
        return out

    po, pn = points(old), points(new)
    xs = sorted({s for s, _ in po} | {s for s, _ in pn})
    better = False
    for x in xs:
        fo, fn = _diagram_fee_at(po, Fraction(x)), _diagram_fee_at(pn, Fraction(x))
        if fn < fo:
            return False
        if fn > fo:
            better = True
    return better


@dataclass
class AcceptResult:
    txid: bytes
    wtxid: bytes
    vsize: int
    fee: int
    replaced: list[Transaction] = field(default_factory=list)


RECONSIDERABLE = frozenset({"min relay fee not met", "mempool min fee not met"})  # Core's
# TX_RECONSIDERABLE: refused alone for its fee rate, it may pass with a child paying for it


@dataclass
class PackageTxResult:
    """One transaction of a package (Core's MempoolAcceptResult): kind is "valid" (accepted,
    or would be), "mempool" (already there), "other-witness" (its txid is there with another
    witness: other_wtxid) or "invalid" (error)."""
    kind: str
    vsize: int = 0
    fee: int = 0
    rate: int = 0  # effective fee rate, sat/kvB: its own, or its package's
    includes: list[bytes] = field(default_factory=list)  # wtxids the rate was computed over
    other_wtxid: bytes | None = None
    error: MempoolReject | None = None
    replaced: list[Transaction] = field(default_factory=list)


@dataclass
class PackageResult:
    """Core's PackageMempoolAcceptResult: the package-wide error (None: all well; policy=True:
    the package itself is refused, Core's PCKG_POLICY, with no per-transaction results) and
    results by wtxid (a transaction left unevaluated has none)."""
    error: str | None
    policy: bool = False
    results: dict[bytes, PackageTxResult] = field(default_factory=dict)


class Mempool:
    def __init__(
        self,
        chain,
        max_size_mb: int = 300,
        expiry_hours: int = 336,
        min_relay_fee: int = policy.DEFAULT_MIN_RELAY_FEE,
        full_rbf: bool = True,
        now: Callable[[], float] = time.time,
        checker: ScriptCheckPool | None = None,
    ) -> None:
        """checker: worker processes for the script checks of transaction batches (see
        check_in_background); owned and closed by the mempool."""
        self.chain = chain
        self.max_bytes = max_size_mb * 1_000_000
        self.expiry = expiry_hours * 3600
        self.min_relay_fee = min_relay_fee
        self.incremental_relay_fee = policy.DEFAULT_INCREMENTAL_RELAY_FEE
        self.full_rbf = full_rbf
        # Policy options (set from the node's options by the `config` setter).
        self.permit_bare_multisig = True
        self.max_datacarrier_bytes: int | None = policy.MAX_OP_RETURN_RELAY
        self.dust_relay_fee = policy.DUST_RELAY_FEE
        self.require_standard = True
        self.bytes_per_sigop = policy.DEFAULT_BYTES_PER_SIGOP
        self.cluster_count = policy.DEFAULT_CLUSTER_LIMIT
        self.cluster_size = policy.DEFAULT_CLUSTER_SIZE_LIMIT_KVB * 1000  # vbytes
        self.max_orphans = MAX_ORPHANS
        self._config = None
        # Transactions submitted here (RPC, wallets) that no peer has asked for yet: they are
        # announced again now and then until one does (Core's unbroadcast set).
        self.unbroadcast: set[bytes] = set()
        self.now = now
        self.entries: dict[bytes, MempoolEntry] = {}  # (changed only by _add_entry, _detach)
        self._sorted: list[bytes] | None = None  # sorted_txids' answer while entries stay
        self.by_wtxid: dict[bytes, MempoolEntry] = {}
        self.spent: dict[bytes, bytes] = {}  # outpoint key -> txid of the mempool spender
        self.deltas: dict[bytes, int] = {}  # prioritisetransaction, kept for unknown txids too
        self.usage = 0
        self.total_size = 0
        self.total_fee = 0
        self.rolling_min_fee = 0.0  # sat/kvB, raised by evictions, decaying
        self._last_rolling_update = now()
        self._last_expire = 0.0
        self.orphans: OrderedDict[bytes, Orphan] = OrderedDict()  # by wtxid
        self._orphan_txids: dict[bytes, bytes] = {}  # txid -> wtxid
        # The mempool sequence (Core's m_sequence_number, less one): the number of the last
        # addition or removal, +1 for each (removals for a block included). getrawmempool's
        # mempool_sequence is the next one; ZMQ's A/R carry it. prioritisetransaction does not
        # move it (as Core's), only `template_version` (what getblocktemplate long polls watch).
        self.transactions_updated = 0
        self._reprioritised = 0
        self.loaded = False
        self._disconnected: list[Transaction] = []
        self._reorged = False
        self._block_since_bump = False
        self.checker = checker if checker is not None and checker.workers > 0 else None
        # wtxid -> (stream, position) of a check running in the background
        self._streamed: dict[bytes, tuple[VerifyStream, int]] = {}
        self._streamed_lock = threading.Lock()
        # Listeners: called with (tx) when accepted, and (tx, reason) when removed.
        self.on_added: list[Callable[[Transaction], None]] = []
        # > 0 while submitpackage's transactions are being added (listeners may tell them
        # apart: fee estimation does not count them, as Core's m_submitted_in_package)
        self.submitting_package = 0
        self.on_removed: list[Callable[[Transaction, str], None]] = []
        chain.on_connected.append(self._block_connected)
        chain.on_disconnected.append(self._block_disconnected)
        chain.on_activated.append(self._reorg_done)

    # =========================================================================================
    # options
    # =========================================================================================

    @property
    def config(self):
        return self._config

    @config.setter
    def config(self, cfg) -> None:
        """The node's options (node.config.NodeConfig): policy settings are read from it, as
        Core reads them into its mempool options. Bad values raise ConfigError."""
        self._config = cfg
        if cfg is None:
            return
        self.permit_bare_multisig = cfg.arg_bool("permitbaremultisig", True)
        if cfg.arg_bool("datacarrier", True):
            self.max_datacarrier_bytes = cfg.arg_int("datacarriersize",
                                                     policy.MAX_OP_RETURN_RELAY)
        else:
            self.max_datacarrier_bytes = None
        if cfg.arg_set("dustrelayfee"):
            self.dust_relay_fee = _parse_fee_rate("dustrelayfee", cfg.arg_str("dustrelayfee"))
        if cfg.arg_set("incrementalrelayfee"):
            self.incremental_relay_fee = _parse_fee_rate("incrementalrelayfee",
                                                         cfg.arg_str("incrementalrelayfee"))
        if getattr(cfg, "minrelaytxfee", None) is None and \
                self.incremental_relay_fee > self.min_relay_fee:
            # Setting only -incrementalrelayfee moves both (as Core).
            self.min_relay_fee = self.incremental_relay_fee
        self.require_standard = not cfg.arg_bool("acceptnonstdtxn", False)
        self.bytes_per_sigop = cfg.arg_int("bytespersigop", policy.DEFAULT_BYTES_PER_SIGOP)
        self.cluster_count = cfg.arg_int("limitclustercount", policy.DEFAULT_CLUSTER_LIMIT)
        self.cluster_size = cfg.arg_int("limitclustersize",
                                        policy.DEFAULT_CLUSTER_SIZE_LIMIT_KVB) * 1000
        self.max_orphans = cfg.arg_int("maxorphantx", MAX_ORPHANS)

    # =========================================================================================
    # queries
    # =========================================================================================

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, txid: bytes) -> Transaction | None:
        e = self.entries.get(txid)
        return e.tx if e is not None else None

    def get_output(self, txid: bytes, n: int) -> TxOut | None:
        e = self.entries.get(txid)
        if e is None or n >= len(e.tx.vout):
            return None
        return e.tx.vout[n]

    def sorted_txids(self) -> list[bytes]:
        """Every txid in a deterministic order, parents before children (as Core lists its
        mempool: by ancestor count, then by txid), whatever order they arrived in. Kept
        until an entry comes or goes (getrawmempool is asked for it on every wallet call)."""
        if self._sorted is None:
            self._sorted = self._sort_txids()
        return list(self._sorted)

    def _sort_txids(self) -> list[bytes]:
        depth: dict[bytes, int] = {}

        def depth_of(t: bytes) -> int:
            d = depth.get(t)
            if d is None:
                todo = [t]
                while todo:  # iterative: chains can be long
                    x = todo[-1]
                    missing = [p for p in self.entries[x].parents if p not in depth]
                    if missing:
                        todo.extend(missing)
                        continue
                    todo.pop()
                    depth[x] = 1 + max((depth[p] for p in self.entries[x].parents), default=0)
                d = depth[t]
            return d

        return sorted(self.entries, key=lambda t: (depth_of(t), t[::-1]))

    def spender(self, txid: bytes, n: int) -> bytes | None:
        """Txid of the mempool transaction spending this output, if any."""
        return self.spent.get(outpoint_key(txid, n))

    def is_spent(self, txid: bytes, n: int) -> bool:
        return outpoint_key(txid, n) in self.spent

    def ancestors(self, e: MempoolEntry) -> set[bytes]:
        """Txids of all in-mempool ancestors (not including e)."""
        return self._walk(e, "parents")

    def descendants(self, e: MempoolEntry) -> set[bytes]:
        """Txids of all in-mempool descendants (not including e)."""
        return self._walk(e, "children")

    def _walk(self, e: MempoolEntry, links: str) -> set[bytes]:
        out: set[bytes] = set()
        todo = list(getattr(e, links))
        while todo:
            t = todo.pop()
            if t not in out:
                out.add(t)
                todo.extend(getattr(self.entries[t], links))
        return out

    def package_stats(self, txids: Iterable[bytes]) -> tuple[int, int, int, int]:
        """(count, vsize, modified fees, sigop cost) of a set of entries."""
        n = size = fees = sigops = 0
        for t in txids:
            x = self.entries[t]
            n += 1
            size += x.vsize
            fees += x.modified_fee
            sigops += x.sigop_cost
        return n, size, fees, sigops

    def min_fee_rate(self) -> int:
        """Core's GetMinFee: the rolling minimum (after evictions), decaying with a 12 h
        half-life once a block has been connected since the last eviction, or 0 when the
        pool is not under pressure."""
        if self.rolling_min_fee == 0:
            return 0
        if not self._block_since_bump:
            return int(self.rolling_min_fee)
        now = self.now()
        elapsed = now - self._last_rolling_update
        if elapsed > 10:
            halflife = ROLLING_FEE_HALFLIFE
            if self.usage < self.max_bytes / 4:
                halflife /= 4
            elif self.usage < self.max_bytes / 2:
                halflife /= 2
            self.rolling_min_fee /= 2 ** (elapsed / halflife)
            self._last_rolling_update = now
            if self.rolling_min_fee < self.incremental_relay_fee / 2:
                self.rolling_min_fee = 0
                return 0
        return max(int(self.rolling_min_fee), self.incremental_relay_fee)

    # =========================================================================================
    # acceptance
    # =========================================================================================

    def _coin(self, txid: bytes, n: int) -> Coin | None:
        e = self.entries.get(txid)
        if e is not None:
            if n >= len(e.tx.vout):
                return None
            out = e.tx.vout[n]
            return Coin(out.value, out.script_pubkey, MEMPOOL_HEIGHT, False)
        return self.chain.get_coin(txid, n)

    def accept(self, tx: Transaction, bypass_limits: bool = False, test_only: bool = False,
               max_fee_rate: int | None = None) -> AcceptResult:
        """Core's AcceptToMemoryPool. Raises MempoolReject with Core's reason."""
        with self.chain.lock:
            return self._accept(tx, bypass_limits, test_only, max_fee_rate)

    def _accept(self, tx: Transaction, bypass_limits: bool, test_only: bool,
                max_fee_rate: int | None, *, check_fee: bool = True,
                allow_replacement: bool = True, staged: bool = False,
                check_scripts: bool = True, trim: bool = True) -> AcceptResult:
        """check_fee=False: the fee rate is judged by the caller (a package's fee rate);
        allow_replacement=False: a conflict with the mempool is refused (Core's package test
        accept); staged=True: added quietly (no sequence number, no listeners, no trimming,
        no orphans), for the caller to commit (_commit_staged) or take back (_unstage);
        check_scripts=False: the caller checks the scripts; trim=False: the caller trims."""
        chain = self.chain
        tip = chain.tip
        next_height = tip.height + 1
        tip_mtp = tip.median_time_past()
        txid = tx.txid
        standard = self.require_standard

        try:
            check_transaction(tx)
        except ValidationError as err:
            raise MempoolReject(err.reason, err.debug, consensus=True) from None
        if tx.is_coinbase():
            raise MempoolReject("coinbase")
        dust: list[int] = []
        if standard:
            try:
                dust = policy.check_standard(tx, self.permit_bare_multisig, self.dust_relay_fee,
                                             self.max_datacarrier_bytes)
            except PolicyError as err:
                raise MempoolReject(err.reason, err.debug) from None
        if tx.base_size < policy.MIN_STANDARD_TX_NONWITNESS_SIZE:
            raise MempoolReject("tx-size-small")
        if not is_final_tx(tx, next_height, tip_mtp):
            raise MempoolReject("non-final", "non-final transaction")
        if tx.wtxid in self.by_wtxid:
            raise MempoolReject("txn-already-in-mempool")
        if txid in self.entries:
            raise MempoolReject("txn-same-nonwitness-data-in-mempool")

        # Direct conflicts: mempool transactions spending one of our inputs.
        conflicts: set[bytes] = set()
        for txin in tx.vin:
            spender = self.spent.get(outpoint_key(txin.prevout.hash, txin.prevout.n))
            if spender is not None:
                if not allow_replacement:
                    raise MempoolReject("bip125-replacement-disallowed")
                # BIP125 opt-in, as Core checks it: the conflicting transaction itself must
                # signal (inherited signalling only shows in bip125-replaceable).
                if not self.full_rbf and not policy.signals_rbf(self.entries[spender].tx.vin) \
                        and self.entries[spender].tx.version != policy.TRUC_VERSION:
                    raise MempoolReject("txn-mempool-conflict")
                conflicts.add(spender)

        coins: list[Coin] = []
        for txin in tx.vin:
            c = self._coin(txin.prevout.hash, txin.prevout.n)
            if c is None:
                for n in range(len(tx.vout)):
                    if chain.get_coin(txid, n) is not None:
                        raise MempoolReject("txn-already-known", already_known=True)
                raise MempoolReject("bad-txns-inputs-missingorspent", missing_inputs=True)
            coins.append(c)

        if not self._sequence_locks_met(tx, coins, next_height, tip_mtp):
            raise MempoolReject("non-BIP68-final")

        try:
            fee = check_tx_inputs(tx, coins, next_height, chain.params.coinbase_maturity)
        except ValidationError as err:
            # (spending an immature coinbase may become valid later: not a consensus fault)
            raise MempoolReject(err.reason, err.debug, consensus=(
                err.reason != "bad-txns-premature-spend-of-coinbase")) from None
        if standard:
            try:
                policy.check_inputs_standard(tx, coins)
                policy.check_witness_standard(tx, coins)
            except PolicyError as err:
                raise MempoolReject(err.reason, err.debug) from None

        sigops = transaction_sigop_cost(tx, coins, True, True)
        if sigops > policy.MAX_STANDARD_TX_SIGOPS_COST:
            raise MempoolReject("bad-txns-too-many-sigops", str(sigops))
        vsize = policy.virtual_size(tx.weight, sigops, self.bytes_per_sigop)
        modified = fee + self.deltas.get(txid, 0)

        if not bypass_limits and check_fee:
            min_fee = policy.fee_for(self.min_fee_rate(), vsize)
            if modified < min_fee:
                raise MempoolReject("mempool min fee not met", f"{modified} < {min_fee}")
            relay_fee = policy.fee_for(self.min_relay_fee, vsize)
            if modified < relay_fee:
                raise MempoolReject("min relay fee not met", f"{modified} < {relay_fee}")
        if dust and (fee or modified):
            raise MempoolReject("dust", "tx with dust output must be 0-fee")

        parents = {txin.prevout.hash for txin in tx.vin if txin.prevout.hash in self.entries}
        ancestors: set[bytes] = set()
        for p in parents:
            ancestors.add(p)
            ancestors |= self.ancestors(self.entries[p])
        if standard:
            sibling = self._truc_checks(tx, vsize, parents, ancestors, conflicts)
            if sibling is not None:
                if not allow_replacement:
                    self._truc_sibling_refused(tx, sibling)
                conflicts.add(sibling)
        all_conflicts: set[bytes] = set()
        if conflicts:
            all_conflicts = self._replacement_checks(tx, conflicts, ancestors, parents,
                                                     modified, vsize)
        if not bypass_limits:
            self._check_cluster_limits(parents, all_conflicts, tx.weight, vsize)

        if check_scripts:
            self._check_scripts(tx, [TxOut(c.value, c.script_pubkey) for c in coins])

        if max_fee_rate is not None and fee > policy.fee_for(max_fee_rate, vsize):
            limit = policy.fee_for(max_fee_rate, vsize)
            raise MempoolReject("max-fee-exceeded", f"{fee} > {limit}")
        result = AcceptResult(txid, tx.wtxid, vsize, fee)
        if test_only:
            return result

        replaced = [self.entries[t].tx for t in all_conflicts]
        for t in all_conflicts:
            self._remove_entry(self.entries[t], "replaced")
        entry = MempoolEntry(tx, fee, vsize, sigops, int(self.now()), tip.height)
        entry.delta = self.deltas.get(txid, 0)
        self._add_entry(entry, parents, numbered=not staged)
        result.replaced = replaced
        if staged:
            return result
        log.debug("accepted %s (fee %d, vsize %d)", tx.txid_hex(), fee, vsize)
        # Listeners hear of the addition before any trimming it causes, while the sequence
        # is still the addition's (entry.sequence): what trimming removes is numbered after.
        for fn in self.on_added:
            fn(tx)
        if not bypass_limits and trim:
            self._expire()
            self.trim_to_size()
            if txid not in self.entries:
                raise MempoolReject("mempool full")
        self._resolve_orphans(tx)
        return result

    # -- packages -------------------------------------------------------------------------------

    def test_package(self, txs: list[Transaction]) -> PackageResult:
        """Core's AcceptMultipleTransactions as testmempoolaccept runs it on several
        transactions: a well-formed package (sorted, no duplicates or conflicts), each
        transaction checked against the mempool and those before it, paying its own fee rate,
        replacing nothing. The mempool is left as it was."""
        if len(txs) == 1:
            raise ValueError("a package has several transactions")
        err = policy.package_error(txs)
        if err is not None:
            return PackageResult(err, policy=True)
        out = PackageResult(None)
        with self.chain.lock:
            staged: list[MempoolEntry] = []
            try:
                failed = self._stage(txs, staged, check_scripts=False)
                if failed is not None:
                    # (as Core's: those before it keep no result, those after are not looked at)
                    out.error = "transaction failed"
                    out.results = failed
                    return out
                # The scripts last, as Core's: what passed before a failure keeps its result.
                for e in staged:
                    coins = [self._coin(i.prevout.hash, i.prevout.n) for i in e.tx.vin]
                    try:
                        self._check_scripts(e.tx, [TxOut(c.value, c.script_pubkey)
                                                   for c in coins])
                    except MempoolReject as rej:
                        out.error = "transaction failed"
                        out.results[e.wtxid] = PackageTxResult("invalid", error=rej)
                        return out
                    out.results[e.wtxid] = PackageTxResult(
                        "valid", e.vsize, e.fee, e.modified_fee * 1000 // e.vsize, [e.wtxid])
                return out
            finally:
                self._unstage(staged)

    def accept_package(self, txs: list[Transaction],
                       max_fee_rate: int | None = None) -> PackageResult:
        """Core's AcceptPackage (submitpackage): a child with its unconfirmed parents. Each
        transaction is tried on its own first; those refused only for their fee rate (and
        the children of those) are then tried together, judged by the package's fee rate
        (total modified fees over total vsize) against the mempool minimum and the minimum
        relay fee: a child pays for its parents (CPFP). Trimmed to -maxmempool at the end."""
        self.submitting_package += 1
        try:
            return self._accept_package(txs, max_fee_rate)
        finally:
            self.submitting_package -= 1

    def _accept_package(self, txs: list[Transaction],
                        max_fee_rate: int | None) -> PackageResult:
        err = policy.package_error(txs)
        if err is None and not policy.is_child_with_parents(txs):
            err = "package-not-child-with-parents"
        if err is not None:
            return PackageResult(err, policy=True)
        with self.chain.lock:
            child = txs[-1]
            parents = {tx.txid for tx in txs[:-1]}
            for i in child.vin:
                if i.prevout.hash not in parents and \
                        self.chain.get_coin(i.prevout.hash, i.prevout.n) is None:
                    return PackageResult("package-not-child-with-unconfirmed-parents",
                                         policy=True)
            final: dict[bytes, PackageTxResult] = {}
            nonfinal: dict[bytes, PackageTxResult] = {}
            quit_early = False
            to_eval: list[Transaction] = []
            for tx in txs:
                known = self.by_wtxid.get(tx.wtxid)
                if known is not None:
                    final[tx.wtxid] = PackageTxResult("mempool", known.vsize, known.fee)
                    continue
                known = self.entries.get(tx.txid)
                if known is not None:
                    final[tx.wtxid] = PackageTxResult("other-witness", other_wtxid=known.wtxid)
                    continue
                try:
                    final[tx.wtxid] = self._accept_alone(tx, max_fee_rate)
                except MempoolReject as rej:
                    nonfinal[tx.wtxid] = PackageTxResult("invalid", error=rej)
                    if rej.reason in RECONSIDERABLE or rej.missing_inputs:
                        to_eval.append(tx)
                    else:
                        quit_early = True  # (the others are still tried on their own)
            out = PackageResult("transaction failed" if quit_early else None)
            together: dict[bytes, PackageTxResult] = {}
            if not quit_early and to_eval:
                if len(to_eval) == 1:
                    tx = to_eval[0]
                    try:
                        together[tx.wtxid] = self._accept_alone(tx, max_fee_rate)
                    except MempoolReject as rej:
                        together[tx.wtxid] = PackageTxResult("invalid", error=rej)
                        out.error = "transaction failed"
                else:
                    out.error, together = self._accept_together(to_eval, max_fee_rate)
            self._expire()
            self.trim_to_size()
            full = MempoolReject("mempool full")
            for tx in txs:
                w = tx.wtxid
                r = together.get(w) or final.get(w)
                if r is not None:
                    if r.kind != "invalid" and tx.txid not in self.entries:
                        r = PackageTxResult("invalid", error=full)
                        out.error = "transaction failed"
                    out.results[w] = r
                elif w in nonfinal:
                    out.results[w] = nonfinal[w]
            return out

    def _accept_alone(self, tx: Transaction, max_fee_rate: int | None) -> PackageTxResult:
        r = self._accept(tx, False, False, max_fee_rate, trim=False)
        e = self.entries[tx.txid]
        return PackageTxResult("valid", r.vsize, r.fee, e.modified_fee * 1000 // r.vsize,
                               [tx.wtxid], replaced=r.replaced)

    def _accept_together(self, txs: list[Transaction], max_fee_rate: int | None
                         ) -> tuple[str | None, dict[bytes, PackageTxResult]]:
        """Core's AcceptMultipleTransactions with package fee rates: all or none."""
        staged: list[MempoolEntry] = []
        committed = False
        try:
            failed = self._stage(txs, staged, check_fee=False)
            if failed is not None:
                return "transaction failed", failed
            fees = sum(e.modified_fee for e in staged)
            size = sum(e.vsize for e in staged)
            failure = None
            min_fee = policy.fee_for(self.min_fee_rate(), size)
            relay_fee = policy.fee_for(self.min_relay_fee, size)
            if fees < min_fee:
                failure = MempoolReject("mempool min fee not met", f"{fees} < {min_fee}")
            elif fees < relay_fee:
                failure = MempoolReject("min relay fee not met", f"{fees} < {relay_fee}")
            elif max_fee_rate is not None and fees * 1000 // size > max_fee_rate:
                failure = MempoolReject("max-fee-exceeded",
                                        f"{fees * 1000 // size} > {max_fee_rate}")
            if failure is not None:
                return "transaction failed", {txs[-1].wtxid: PackageTxResult("invalid",
                                                                              error=failure)}
            self._commit_staged(staged)
            committed = True
        finally:
            if not committed:
                self._unstage(staged)
        rate = fees * 1000 // size
        wtxids = [e.wtxid for e in staged]
        return None, {e.wtxid: PackageTxResult("valid", e.vsize, e.fee, rate, wtxids)
                      for e in staged}

    def _stage(self, txs: list[Transaction], staged: list[MempoolEntry],
               **checks: bool) -> dict[bytes, PackageTxResult] | None:
        """Add txs in order as staged entries (appended to `staged`, for the caller to commit
        or take back), replacing nothing: Core's package RBF is not done, a conflict is
        refused. `checks`: _accept's check_fee/check_scripts. Stops at the first refusal:
        its result, or None when all are staged."""
        for tx in txs:
            try:
                self._accept(tx, False, False, None, allow_replacement=False, staged=True,
                             **checks)
            except MempoolReject as rej:
                return {tx.wtxid: PackageTxResult("invalid", error=rej)}
            staged.append(self.entries[tx.txid])
        return None

    def _commit_staged(self, staged: list[MempoolEntry]) -> None:
        """Staged entries become ordinary ones: numbered and told, in order."""
        for e in staged:
            self.transactions_updated += 1
            e.sequence = self.transactions_updated
            log.debug("accepted %s in a package (fee %d, vsize %d)", e.tx.txid_hex(), e.fee,
                      e.vsize)
            for fn in self.on_added:
                fn(e.tx)
        for e in staged:
            if e.txid in self.entries:
                self._resolve_orphans(e.tx)

    def _unstage(self, staged: list[MempoolEntry]) -> None:
        for e in reversed(staged):
            if e.txid in self.entries:
                self._detach(e)

    def _truc_sibling_refused(self, tx: Transaction, sibling: bytes) -> None:
        """Sibling eviction is a replacement: where none is allowed, Core's TRUC refusal."""
        parent = next(iter(self.entries[sibling].parents))
        ptx = self.entries[parent].tx
        raise MempoolReject("TRUC-violation", f"tx {ptx.txid_hex()} (wtxid={ptx.wtxid_hex()}) "
                            "would exceed descendant count limit")

    def start_background_checks(self) -> VerifyStream | None:
        """A stream for the script checks of a batch of candidate transactions on the
        checker's workers (None without workers). Feed it with check_in_background and end
        it with end_background_checks."""
        if self.checker is None:
            return None
        # Another batch's stream may hold the workers until that whole batch is done
        # (which can take long: a batch may hold any call): then this batch does without.
        return VerifyStream(self.checker, wait_for_pool=False)

    def check_in_background(self, stream: VerifyStream, txs: list[Transaction]) -> None:
        """Start the checks (standard flags) of these transactions; acceptance of each then
        takes its result from the stream (see _check_scripts). Transactions with inputs not
        known yet are left to acceptance."""
        jobs = []
        with self.chain.lock:
            for tx in txs:
                spent = []
                for txin in tx.vin:
                    c = self._coin(txin.prevout.hash, txin.prevout.n)
                    if c is None:
                        break
                    spent.append(TxOut(c.value, c.script_pubkey))
                else:
                    jobs.append((tx, spent, (sf.STANDARD_SCRIPT_VERIFY_FLAGS,
                                             self._next_block_flags())))
        first = stream.add(jobs)
        with self._streamed_lock:
            for pos, (tx, _, _) in enumerate(jobs, first):
                self._streamed[tx.wtxid] = (stream, pos)

    def end_background_checks(self, stream: VerifyStream) -> None:
        stream.close()
        with self._streamed_lock:
            for tx, _, _ in stream.items:
                if self._streamed.get(tx.wtxid, (None,))[0] is stream:
                    del self._streamed[tx.wtxid]

    def close(self) -> None:
        """Stop the checker's workers (waiting for a batch in progress)."""
        if self.checker is not None:
            self.checker.close()

    def _sequence_locks_met(self, tx: Transaction, coins: list[Coin], next_height: int,
                            tip_mtp: int) -> bool:
        """BIP68 relative locks, evaluated as if for the next block (coins only in the
        mempool count as confirmed in it)."""
        active = self.chain.active
        prev_heights = [next_height if c.height == MEMPOOL_HEIGHT else c.height for c in coins]
        locks = calculate_sequence_locks(tx, LOCKTIME_VERIFY_SEQUENCE, prev_heights,
                                         lambda h: active[h].median_time_past())
        return evaluate_sequence_locks(next_height, tip_mtp, locks)

    def _signals_rbf(self, txid: bytes, ancestors: set[bytes] | None = None) -> bool:
        """BIP125's replaceability, inherited: the transaction or an unconfirmed ancestor
        signals (what getmempoolentry shows as bip125-replaceable). `ancestors`: the
        entry's, if the caller has them already."""
        e = self.entries[txid]
        if ancestors is None:
            ancestors = self.ancestors(e)
        return any(policy.signals_rbf(self.entries[t].tx.vin) for t in [txid, *ancestors])

    # -- clusters ---------------------------------------------------------------------------

    def cluster(self, txid: bytes) -> set[bytes]:
        """Txids of the entry's cluster: everything connected to it by spending."""
        out = {txid}
        todo = [txid]
        while todo:
            e = self.entries[todo.pop()]
            for t in (*e.parents, *e.children):
                if t not in out:
                    out.add(t)
                    todo.append(t)
        return out

    def _cluster_weight(self, e: MempoolEntry) -> int:
        """Weight as counted against -limitclustersize (sigop-adjusted, as vsize is)."""
        return max(e.weight, e.sigop_cost * self.bytes_per_sigop)

    def _check_cluster_limits(self, parents: set[bytes], removed: set[bytes], weight: int,
                              vsize: int) -> None:
        """The cluster the transaction would join (its parents' clusters merged, less what
        it replaces) must stay within -limitclustercount and -limitclustersize."""
        merged: set[bytes] = set()
        for p in parents:
            if p not in merged:
                merged |= self.cluster(p)
        merged -= removed
        count = len(merged) + 1
        size = max(weight, vsize * 4) + sum(self._cluster_weight(self.entries[t])
                                            for t in merged)
        if count > self.cluster_count or size > self.cluster_size * 4:
            raise MempoolReject("too-large-cluster")

    def _trim_clusters(self) -> None:
        """After a reorg put transactions back: clusters over the limits lose their worst
        transactions (last in their linearization) until they fit."""
        seen: set[bytes] = set()
        for txid in list(self.entries):
            if txid in seen or txid not in self.entries:
                continue
            members = self.cluster(txid)
            seen |= members
            size = sum(self._cluster_weight(self.entries[t]) for t in members)
            if len(members) <= self.cluster_count and size <= self.cluster_size * 4:
                continue
            order = self._linearize(members)
            while order and (len(members) > self.cluster_count
                             or size > self.cluster_size * 4):
                last = order.pop()
                if last in self.entries:
                    size -= self._cluster_weight(self.entries[last])
                    members.discard(last)
                    self.remove_recursive(last, "sizelimit")

    def _linearize(self, members: set[bytes]) -> list[bytes]:
        """The members in mining order: best remaining ancestor set first."""
        remaining = set(members)
        order: list[bytes] = []
        while remaining:
            best = None
            best_fee = best_size = 0
            for t in remaining:
                group = ({t} | self.ancestors(self.entries[t])) & remaining
                fee = sum(self.entries[x].modified_fee for x in group)
                size = sum(self.entries[x].vsize for x in group)
                if best is None or fee * best_size > best_fee * size:
                    best, best_fee, best_size = group, fee, size
            assert best is not None
            order.extend(sorted(best, key=lambda x: len(self.ancestors(self.entries[x]))))
            remaining -= best
        return order

    # -- TRUC (version 3) -------------------------------------------------------------------

    def _truc_checks(self, tx: Transaction, vsize: int, parents: set[bytes],
                     ancestors: set[bytes], conflicts: set[bytes]) -> bytes | None:
        """Core's SingleTRUCChecks. Returns the txid of a sibling the transaction may evict
        (its TRUC parent's only other child), to be treated as a conflict."""
        def who(t: Transaction) -> str:
            return f"{t.txid_hex()} (wtxid={t.wtxid_hex()})"

        is_truc = tx.version == policy.TRUC_VERSION
        for p in parents:
            ptx = self.entries[p].tx
            if (ptx.version == policy.TRUC_VERSION) != is_truc:
                if is_truc:
                    raise MempoolReject("TRUC-violation", f"version=3 tx {who(tx)} cannot "
                                        f"spend from non-version=3 tx {who(ptx)}")
                raise MempoolReject("TRUC-violation", f"non-version=3 tx {who(tx)} cannot "
                                    f"spend from version=3 tx {who(ptx)}")
        if not is_truc:
            return None
        if vsize > policy.TRUC_MAX_VSIZE:
            raise MempoolReject("TRUC-violation", f"version=3 tx {who(tx)} is too big: "
                                f"{vsize} > {policy.TRUC_MAX_VSIZE} virtual bytes")
        if len(ancestors) + 1 > 2:
            raise MempoolReject("TRUC-violation", f"tx {who(tx)} would have too many ancestors")
        if not parents:
            return None
        parent = self.entries[next(iter(parents))]
        if vsize > policy.TRUC_CHILD_MAX_VSIZE:
            raise MempoolReject("TRUC-violation", f"version=3 child tx {who(tx)} is too big: "
                                f"{vsize} > {policy.TRUC_CHILD_MAX_VSIZE} virtual bytes")
        children = parent.children - conflicts
        if children:
            sibling = next(iter(children))
            if len(children) == 1 and not self.entries[sibling].children:
                return sibling  # sibling eviction: replaced if the RBF rules allow
            raise MempoolReject("TRUC-violation", f"tx {who(parent.tx)} would exceed "
                                "descendant count limit")
        return None

    # -- replacement --------------------------------------------------------------------------

    def _replacement_checks(self, tx: Transaction, conflicts: set[bytes], ancestors: set[bytes],
                            parents: set[bytes], modified: int, vsize: int) -> set[bytes]:
        """Core's replacement rules with cluster mempool: at most 100 conflicting clusters,
        no spending of what it replaces, more fees than everything it evicts plus the
        incremental relay fee for its own size, and a better feerate diagram. Returns
        everything the replacement evicts (the conflicts and their descendants)."""
        h = tx.txid_hex()
        clusters: list[set[bytes]] = []
        for t in conflicts:
            if not any(t in c for c in clusters):
                clusters.append(self.cluster(t))
                if len(clusters) > MAX_REPLACEMENT_CANDIDATES:
                    break
        if len(clusters) > MAX_REPLACEMENT_CANDIDATES:
            raise MempoolReject("too many potential replacements",
                                f"rejecting replacement {h}; too many conflicting clusters "
                                f"({len(clusters)} > {MAX_REPLACEMENT_CANDIDATES})")
        evicted: set[bytes] = set()
        for t in conflicts:
            evicted.add(t)
            evicted |= self.descendants(self.entries[t])
        overlap = ancestors & conflicts
        if overlap:
            raise MempoolReject(
                "bad-txns-spends-conflicting-tx",
                f"{h} spends conflicting transaction {min(overlap)[::-1].hex()}")
        _, _, old_fees, _ = self.package_stats(evicted)
        if modified < old_fees:
            raise MempoolReject("insufficient fee", f"rejecting replacement {h}, less fees than "
                                f"conflicting txs; {format_money(modified)} < "
                                f"{format_money(old_fees)}")
        needed = policy.fee_for(self.incremental_relay_fee, vsize)
        if modified - old_fees < needed:
            raise MempoolReject("insufficient fee", f"rejecting replacement {h}, not enough "
                                f"additional fees to relay; {format_money(modified - old_fees)}"
                                f" < {format_money(needed)}")
        # The feerate diagram of the clusters involved must improve.
        affected: set[bytes] = set()
        for c in clusters:
            affected |= c
        for p in parents:
            if p not in affected:
                affected |= self.cluster(p)
        old = {t: (self.entries[t].modified_fee, self.entries[t].vsize,
                   self.entries[t].parents & affected) for t in affected}
        new_nodes = {t: (f, z, ps - evicted) for t, (f, z, ps) in old.items() if t not in evicted}
        new_nodes[tx.txid] = (modified, vsize, set(parents))
        if not diagram_improves(chunk_diagram(old), chunk_diagram(new_nodes)):
            raise MempoolReject("replacement-failed",
                                "insufficient feerate: does not improve feerate diagram")
        return evicted

    def _next_block_flags(self) -> int:
        """The script flags the next block will be checked with."""
        return script_flags_at(self.chain.tip.height + 1, None, self.chain.params)

    def _check_scripts(self, tx: Transaction, spent: list[TxOut]) -> None:
        """Policy flags first; a failure that the consensus flags alone would accept is a
        policy rejection, otherwise a consensus one (as Core classifies them). Then, as
        Core's ConsensusScriptChecks, again under the next block's flags (the signatures
        are in the signature cache by then), which puts the transaction in the script
        execution cache under the flags its block will be checked with."""
        cache = SCRIPT_EXECUTION_CACHE
        with self._streamed_lock:
            streamed = self._streamed.pop(tx.wtxid, None)
        if streamed is not None:
            # Passed (under both flag sets): verify_transaction below finds it in the
            # execution cache. Otherwise (failed, or left to us) it checks it here and
            # reports the failure.
            streamed[0].wait(streamed[1])
        txdata = PrecomputedTxData(tx, spent)  # shared by the checks below
        try:
            verify_transaction(tx, spent, sf.STANDARD_SCRIPT_VERIFY_FLAGS, cache=cache,
                               txdata=txdata)
        except ScriptError as err:
            # As Core's: one reason whichever flag failed; the details name the input.
            i = err.input_index
            prevout = tx.vin[i].prevout
            details = (f"input {i} of {tx.txid_hex()} (wtxid {tx.wtxid_hex()}), spending "
                       f"{prevout.hash[::-1].hex()}:{prevout.n}")
            try:
                verify_transaction(tx, spent, sf.MANDATORY_SCRIPT_VERIFY_FLAGS)
            except ScriptError:
                raise MempoolReject(f"mempool-script-verify-flag-failed ({err.message})",
                                    details, consensus=True) from None
            raise MempoolReject(f"mempool-script-verify-flag-failed ({err.message})",
                                details) from None
        try:
            verify_transaction(tx, spent, self._next_block_flags(), cache=cache,
                               txdata=txdata)
        except ScriptError as err:
            # Valid under the standard flags but not the block's: a bug in the flags.
            log.error("BUG! CheckInputScripts failed against latest-block but not STANDARD "
                      "flags %s: %s", tx.txid_hex(), err.message)
            raise MempoolReject(f"mempool-script-verify-flag-failed ({err.message})",
                                f"input {err.input_index} of {tx.txid_hex()}",
                                consensus=True) from None

    # =========================================================================================
    # bookkeeping
    # =========================================================================================

    def _add_entry(self, e: MempoolEntry, parents: set[bytes], numbered: bool = True) -> None:
        self.entries[e.txid] = e
        self._sorted = None
        self.by_wtxid[e.wtxid] = e
        for txin in e.tx.vin:
            self.spent[outpoint_key(txin.prevout.hash, txin.prevout.n)] = e.txid
        e.parents = set(parents)
        for p in parents:
            self.entries[p].children.add(e.txid)
        # A transaction re-added after a reorg may already have children in the pool.
        for n in range(len(e.tx.vout)):
            child = self.spent.get(outpoint_key(e.txid, n))
            if child is not None:
                e.children.add(child)
                self.entries[child].parents.add(e.txid)
        self.usage += e.usage
        self.total_size += e.vsize
        self.total_fee += e.fee
        if numbered:
            self.transactions_updated += 1
            e.sequence = self.transactions_updated

    def _remove_entry(self, e: MempoolEntry, reason: str) -> None:
        """Remove one entry (its descendants must be handled by the caller)."""
        self._detach(e)
        self.transactions_updated += 1
        if e.txid in self.unbroadcast:
            self.unbroadcast.discard(e.txid)
            log.debug("Removed %s from set of unbroadcast txns%s", e.txid[::-1].hex(),
                      " before confirmation that txn was sent out" if reason == "block" else "")
        for fn in self.on_removed:
            fn(e.tx, reason)

    def _detach(self, e: MempoolEntry) -> None:
        """Take an entry out of the pool's maps and totals (nothing told, nothing numbered)."""
        del self.entries[e.txid]
        self._sorted = None
        self.by_wtxid.pop(e.wtxid, None)
        for txin in e.tx.vin:
            key = outpoint_key(txin.prevout.hash, txin.prevout.n)
            if self.spent.get(key) == e.txid:
                del self.spent[key]
        for p in e.parents:
            pe = self.entries.get(p)
            if pe is not None:
                pe.children.discard(e.txid)
        for c in e.children:
            ce = self.entries.get(c)
            if ce is not None:
                ce.parents.discard(e.txid)
        self.usage -= e.usage
        self.total_size -= e.vsize
        self.total_fee -= e.fee

    def remove_recursive(self, txid: bytes, reason: str) -> None:
        e = self.entries.get(txid)
        if e is None:
            return
        doomed = [txid, *self.descendants(e)]
        for t in doomed:
            x = self.entries.get(t)
            if x is not None:
                self._remove_entry(x, reason)

    def prioritise(self, txid: bytes, delta: int) -> None:
        with self.chain.lock:
            self.deltas[txid] = self.deltas.get(txid, 0) + delta
            if self.deltas[txid] == 0:
                del self.deltas[txid]
            e = self.entries.get(txid)
            if e is not None:
                e.delta = self.deltas.get(txid, 0)
                self._reprioritised += 1  # (not a mempool sequence event: Core's neither)

    @property
    def template_version(self) -> int:
        """Moves whenever a block template could change: additions, removals and fee deltas
        (Core's nTransactionsUpdated, for getblocktemplate's longpollid)."""
        return self.transactions_updated + self._reprioritised

    def trim_to_size(self) -> None:
        """Evict the packages with the lowest descendant fee rate until under -maxmempool,
        and raise the rolling minimum fee above what was evicted."""
        while self.usage > self.max_bytes and self.entries:
            worst = None
            worst_rate = 0.0
            worst_fees = worst_size = 0  # of its package: it and its descendants
            for e in self.entries.values():
                _, dsize, dfees, _ = self.package_stats(self.descendants(e))
                own = e.modified_fee / e.vsize
                with_desc = (dfees + e.modified_fee) / (dsize + e.vsize)
                score = max(own, with_desc)
                if worst is None or score < worst_rate:
                    worst, worst_rate = e, score
                    worst_fees, worst_size = dfees + e.modified_fee, dsize + e.vsize
            assert worst is not None
            # The bar rises to the evicted package's rate (with its descendants) plus the
            # incremental relay fee.
            rate = worst_fees * 1000 / worst_size + self.incremental_relay_fee
            if rate > self.rolling_min_fee:
                self.rolling_min_fee = rate
                self._last_rolling_update = self.now()
                self._block_since_bump = False
            self.remove_recursive(worst.txid, "sizelimit")

    def _expire(self) -> int:
        now = self.now()
        if now - self._last_expire < EXPIRE_INTERVAL:
            return 0  # scanning the pool on every acceptance would make it quadratic
        self._last_expire = now
        cutoff = now - self.expiry
        old = [t for t, e in self.entries.items() if e.time < cutoff]
        n = 0
        for t in old:
            if t in self.entries:
                before = len(self.entries)
                self.remove_recursive(t, "expiry")
                n += before - len(self.entries)
        if n:
            log.debug("Expired %d transactions from the memory pool", n)
        return n

    def expire(self) -> int:
        with self.chain.lock:
            return self._expire()

    # =========================================================================================
    # orphans (transactions whose parents have not arrived yet)
    # =========================================================================================

    def add_orphan(self, tx: Transaction, peer: int | None = None) -> bool:
        """Keep a transaction with missing inputs until its parents arrive (bounded: the
        oldest orphans go first; big ones are never kept). `peer`: who sent it."""
        with self.chain.lock:
            known = self.orphans.get(tx.wtxid)
            if known is not None:
                if peer is not None and peer not in known.announcers:
                    known.announcers.append(peer)
                return False
            if tx.weight > policy.MAX_STANDARD_TX_WEIGHT:
                return False
            now = self.now()
            for w, o in list(self.orphans.items()):
                if o.time < now - ORPHAN_EXPIRE:
                    self._drop_orphan(w)
            while self.orphans and len(self.orphans) >= max(self.max_orphans, 1):
                self._drop_orphan(next(iter(self.orphans)))
            self.orphans[tx.wtxid] = Orphan(tx, now, [] if peer is None else [peer])
            self._orphan_txids[tx.txid] = tx.wtxid
            return True

    def add_orphan_announcer(self, wtxid: bytes, peer: int) -> bool:
        """A peer announced an orphan we hold: remember it as a source too."""
        o = self.orphans.get(wtxid)
        if o is None:
            return False
        if peer not in o.announcers:
            o.announcers.append(peer)
        return True

    def has_orphan(self, h: bytes) -> bool:
        """By wtxid or txid."""
        return h in self.orphans or h in self._orphan_txids

    def _drop_orphan(self, wtxid: bytes) -> Orphan | None:
        o = self.orphans.pop(wtxid, None)
        if o is not None and self._orphan_txids.get(o.tx.txid) == wtxid:
            del self._orphan_txids[o.tx.txid]
        return o

    def peer_orphans_gone(self, peer: int) -> None:
        """A peer disconnected: it no longer announces anything; orphans only it sent go."""
        with self.chain.lock:
            for w, o in list(self.orphans.items()):
                if peer in o.announcers:
                    o.announcers.remove(peer)
                    if not o.announcers:
                        self._drop_orphan(w)

    def missing_parents(self, tx: Transaction) -> list[bytes]:
        """Txids of the transactions tx spends that neither the mempool nor the UTXO set
        has (what to ask a peer for when tx is an orphan)."""
        with self.chain.lock:
            out: list[bytes] = []
            for txin in tx.vin:
                h = txin.prevout.hash
                if h not in out and self._coin(h, txin.prevout.n) is None:
                    out.append(h)
            return out

    def _resolve_orphans(self, parent: Transaction) -> None:
        pid = parent.txid
        for w, o in list(self.orphans.items()):
            if w in self.orphans and any(i.prevout.hash == pid for i in o.tx.vin):
                self._drop_orphan(w)
                try:
                    self._accept(o.tx, False, False, None)
                except MempoolReject as err:
                    if err.missing_inputs:
                        o.time = self.now()  # still waiting for another
                        self.orphans[w] = o
                        self._orphan_txids[o.tx.txid] = w
                    else:
                        log.debug("orphan %s rejected: %s", o.tx.txid_hex(), err)

    # =========================================================================================
    # following the chain
    # =========================================================================================

    def _block_connected(self, block: Block, entry) -> None:
        self._block_since_bump = True
        confirmed = {tx.txid for tx in block.txs}
        # Orphans confirmed by the block, or spending what it spent, can never be accepted.
        spent_now = {(i.prevout.hash, i.prevout.n) for tx in block.txs[1:] for i in tx.vin}
        for w, o in list(self.orphans.items()):
            if o.tx.txid in confirmed or any((i.prevout.hash, i.prevout.n) in spent_now
                                             for i in o.tx.vin):
                self._drop_orphan(w)
        for tx in block.txs[1:]:
            e = self.entries.get(tx.txid)
            if e is not None:
                self._remove_entry(e, "block")  # (its children now spend a confirmed output)
            # Anything else spending the same outputs is now invalid, with its descendants.
            for txin in tx.vin:
                spender = self.spent.get(outpoint_key(txin.prevout.hash, txin.prevout.n))
                if spender is not None and spender not in confirmed:
                    self.remove_recursive(spender, "conflict")
            self.deltas.pop(tx.txid, None)
        if self._disconnected:
            self._disconnected = [t for t in self._disconnected if t.txid not in confirmed]

    def _block_disconnected(self, block: Block, entry) -> None:
        # Re-added (oldest first) once the reorg is complete; see _reorg_done.
        self._disconnected = block.txs[1:] + self._disconnected
        self._reorged = True

    def _reorg_done(self) -> None:
        if not self._reorged:
            return  # plain connects cannot make a mempool transaction invalid
        self._reorged = False
        if self._disconnected:
            back, self._disconnected = self._disconnected, []
            for tx in back:
                if tx.txid in self.entries:
                    continue
                try:
                    self._accept(tx, True, False, None)
                except MempoolReject as err:
                    log.debug("not re-adding %s after reorg: %s", tx.txid_hex(), err)
        self._revalidate()
        self._trim_clusters()
        self.trim_to_size()

    def _revalidate(self) -> None:
        """After a reorg: drop what the new chain made invalid (missing inputs, non-final
        lock times, immature coinbase spends, unmet relative locks), with descendants."""
        chain = self.chain
        tip = chain.tip
        next_height = tip.height + 1
        mtp = tip.median_time_past()
        for txid in list(self.entries):
            e = self.entries.get(txid)
            if e is None:
                continue
            tx = e.tx
            ok = is_final_tx(tx, next_height, mtp)
            coins = []
            if ok:
                for txin in tx.vin:
                    c = self._coin(txin.prevout.hash, txin.prevout.n)
                    if c is None:
                        ok = False
                        break
                    if c.coinbase and next_height - c.height < chain.params.coinbase_maturity:
                        ok = False
                        break
                    coins.append(c)
            if ok:
                ok = self._sequence_locks_met(tx, coins, next_height, mtp)
            if not ok:
                self.remove_recursive(txid, "reorg")

    # =========================================================================================
    # persistence (mempool.dat, Core's format: node/mempool_persist.py)
    # =========================================================================================

    # Write the version 1 file (no obfuscation key), as Core's -persistmempoolv1.
    persist_v1 = False

    def save(self, path: Path) -> int:
        """Write every transaction, its entry time and fee delta, the deltas of unknown
        txids and the unbroadcast set to `path`, atomically. Returns how many were written."""
        from node import mempool_persist

        return mempool_persist.dump(self, path, self.persist_v1)

    def load(self, path: Path) -> tuple[int, int]:
        """Re-accept the saved transactions (those still valid), with their times, fee
        deltas and unbroadcast marks (Core's load at start-up). Returns (accepted, failed
        or expired); (0, 0) for a missing or damaged file."""
        from node import mempool_persist

        stats = mempool_persist.load(self, path)
        self.loaded = True
        if stats is None:
            return 0, 0
        return stats.accepted, stats.failed + stats.expired

    def _topological(self) -> list[MempoolEntry]:
        """Entries with every parent before its children."""
        out: list[MempoolEntry] = []
        seen: set[bytes] = set()

        def visit(e: MempoolEntry) -> None:
            if e.txid in seen:
                return
            seen.add(e.txid)
            for p in e.parents:
                visit(self.entries[p])
            out.append(e)

        for e in sorted(self.entries.values(), key=lambda x: x.time):
            visit(e)
        return out

