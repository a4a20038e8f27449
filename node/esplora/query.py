"""What the Esplora endpoints answer, as plain synchronous code over the chain, the mempool
and the address index (the HTTP server runs it in worker threads, off the event loop).

Errors are EsploraError(status, text) with electrs's status codes and texts."""

from __future__ import annotations

import threading
from collections import OrderedDict

from consensus.block import merkle_branch
from consensus.merkleblock import MerkleBlock
from consensus.params import MAIN, REGTEST
from consensus.serialize import DeserializationError, Reader
from consensus.tx import Transaction, TxOut
from node.esplora.encode import block_json, status_json, tx_json
from node.esplora.mempoolview import MempoolView, stats_json
from node.index.addrindex import AddrIndex, AddrView
from node.policy import MAX_PACKAGE_COUNT
from node.store.blockfiles import BlockFileError
from wallet.address import AddressError, address_to_script, decode_address

CHAIN_TXS_PER_PAGE = 25
MAX_MEMPOOL_TXS = 50
BLOCK_LIMIT = 10
CONF_TARGETS = list(range(1, 26)) + [144, 504, 1008]


class EsploraError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def not_found(text: str) -> EsploraError:
    return EsploraError(404, text)


def bad_request(text: str) -> EsploraError:
    return EsploraError(400, text)


def parse_hash(s: str) -> bytes:
    """A txid or block hash in display hex (rust-bitcoin's from_str error text)."""
    if len(s) != 64:
        raise bad_request("Invalid hex string")
    try:
        return bytes.fromhex(s)[::-1]
    except ValueError:
        raise bad_request("Invalid hex string") from None


def uint_or_none(s: str, bits: int = 64) -> int | None:
    """Rust's str::parse for an unsigned type: digits only and in range, else None. Over 20
    digits is out of any 64-bit range and never reaches int() (which refuses 4,300)."""
    if not s or len(s) > 20 or not s.isascii() or not s.isdigit():
        return None
    v = int(s)
    return v if v < 1 << bits else None


def parse_uint(s: str, bits: int = 64) -> int:
    v = uint_or_none(s, bits)
    if v is None:
        raise bad_request("Invalid number")
    return v


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.d: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            v = self.d.get(key)
            if v is not None:
                self.d.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        with self.lock:
            self.d[key] = value
            if len(self.d) > self.size:
                self.d.popitem(last=False)


class EsploraQuery:
    def __init__(self, node, index: AddrIndex) -> None:
        self.node = node
        self.chain = node.chain
        self.params = node.params
        self.index = index
        self.mempool = MempoolView(node.chain, node.mempool)
        self._txs = _LRU(8192)  # txid -> Transaction (a txid's transaction never changes)
        self._blocks = _LRU(64)  # block hash -> (size, weight, [txids])

    def close(self) -> None:
        self.mempool.close()

    # -- reading transactions -----------------------------------------------------------------

    def _read_tx(self, view: AddrView, pos) -> Transaction:
        height, _i, offset, size = pos
        e = view.block_at(height)
        if e is None:
            raise EsploraError(503, "index ahead of the chain")
        try:
            raw = self.chain.read_block_part(e, offset, size)
        except (BlockFileError, OSError) as err:
            raise EsploraError(503, f"cannot read block file: {err}") from None
        try:
            return Transaction.deserialize(Reader(raw))
        except DeserializationError as err:
            raise EsploraError(503, f"cannot read transaction: {err}") from None

    def confirmed_tx(self, view: AddrView, txid: bytes):
        """(transaction, (height, position, offset, size)) of a confirmed txid, or None."""
        pos = view.tx_position(txid)
        if pos is None:
            return None
        tx = self._txs.get(txid)
        if tx is None:
            tx = self._read_tx(view, pos)
            self._txs.put(txid, tx)
        return tx, pos

    def _prevouts(self, view: AddrView, tx: Transaction) -> list[TxOut | None]:
        if tx.is_coinbase():
            return [None] * len(tx.vin)
        out = []
        for txin in tx.vin:
            p = txin.prevout
            found = self.confirmed_tx(view, p.hash)
            if found is not None and p.n < len(found[0].vout):
                out.append(found[0].vout[p.n])
                continue
            m = self.mempool.get(p.hash)
            out.append(m.tx.vout[p.n] if m is not None and p.n < len(m.tx.vout) else None)
        return out

    def _tx_json(self, view: AddrView, tx: Transaction, pos) -> dict:
        block = view.block_at(pos[0]) if pos is not None else None
        return tx_json(tx, self._prevouts(view, tx), self.params, status_json(block))

    def _mtx_json(self, m) -> dict:
        return tx_json(m.tx, m.prevouts, self.params, status_json(None))

    def view(self) -> AddrView:
        """A read view of the address index; 503 while it is first built (over a chain that
        was there before -esplora), so that no client takes a partial history for the whole."""
        index = self.index
        if not index.synced:
            best = index.best
            raise EsploraError(503, f"Index is syncing (at height "
                                    f"{best.height if best is not None else -1} of "
                                    f"{self.chain.height}), try again shortly")
        self.mempool.refresh()
        return index.view()

    def find_tx(self, view: AddrView, txid: bytes):
        """(transaction, confirmed position or None); raises 404 if unknown."""
        found = self.confirmed_tx(view, txid)
        if found is not None:
            return found
        m = self.mempool.get(txid)
        if m is not None:
            return m.tx, None
        raise not_found("Transaction not found")

    # -- transactions ---------------------------------------------------------------------------

    def tx(self, txid: bytes) -> dict:
        with self.view() as view:
            found = self.confirmed_tx(view, txid)
            if found is not None:
                return self._tx_json(view, *found)
            m = self.mempool.get(txid)
            if m is None:
                raise not_found("Transaction not found")
            return self._mtx_json(m)

    def tx_raw(self, txid: bytes) -> bytes:
        with self.view() as view:
            tx, _ = self.find_tx(view, txid)
            return tx.serialize()

    def tx_status(self, txid: bytes) -> dict:
        with self.view() as view:
            pos = view.tx_position(txid)
            return status_json(view.block_at(pos[0]) if pos is not None else None)

    def _block_info(self, e):
        """(size, weight, txids) of a stored block (cached by hash)."""
        info = self._blocks.get(e.hash)
        if info is None:
            if not e.have_data:
                raise not_found("Block not found")
            try:
                block = self.chain.read_block(e)
            except (BlockFileError, OSError):
                raise not_found("Block not found") from None
            info = (block.size, block.weight, [t.txid for t in block.txs])
            self._blocks.put(e.hash, info)
        return info

    def _confirmed_in(self, txid: bytes):
        """The block holding a confirmed transaction, its position there and the block's
        txids (what both merkle proofs are built from)."""
        with self.view() as view:
            pos = view.tx_position(txid)
            e = view.block_at(pos[0]) if pos is not None else None
            if e is None:
                raise not_found("Transaction not found or is unconfirmed")
            return e, pos[1], self._block_info(e)[2]

    def merkle_proof(self, txid: bytes) -> dict:
        e, index, txids = self._confirmed_in(txid)
        branch = [h[::-1].hex() for h in merkle_branch(txids, index)]
        return {"block_height": e.height, "merkle": branch, "pos": index}

    def merkleblock_proof(self, txid: bytes) -> str:
        e, _, txids = self._confirmed_in(txid)
        return MerkleBlock.for_txids(e.header(), txids, {txid}).serialize().hex()

    def _spend_json(self, view: AddrView, txid: bytes, n: int) -> dict:
        s = view.spender(txid, n)
        if s is not None:
            spender, vin, height = s
            return {"spent": True, "txid": spender[::-1].hex(), "vin": vin,
                    "status": status_json(view.block_at(height))}
        with self.chain.lock:
            spender = self.node.mempool.spender(txid, n)
            m = self.node.mempool.entries.get(spender) if spender is not None else None
        vin = None if m is None else next((i for i, t in enumerate(m.tx.vin)
                                           if t.prevout.hash == txid and t.prevout.n == n), None)
        if vin is not None:
            return {"spent": True, "txid": spender[::-1].hex(), "vin": vin,
                    "status": {"confirmed": False}}
        return {"spent": False}

    def outspend(self, txid: bytes, n: int) -> dict:
        with self.view() as view:
            return self._spend_json(view, txid, n)

    def outspends(self, txid: bytes) -> list:
        with self.view() as view:
            tx, _ = self.find_tx(view, txid)
            return [self._spend_json(view, txid, n) for n in range(len(tx.vout))]

    def broadcast(self, body: bytes) -> str:
        from node.rpc.errors import RPCError
        from node.rpc.mempool import sendrawtransaction

        try:
            text = body.decode()
        except UnicodeDecodeError as err:
            raise bad_request(str(err)) from None
        try:
            return sendrawtransaction(self.node, text.strip(), None, None)
        except RPCError as err:
            raise bad_request(f"sendrawtransaction RPC error {err.code}: {err.message}") from None

    def submit_package(self, body: bytes, params: dict) -> dict:
        """POST /txs/package: Core's submitpackage, with electrs's checks first."""
        import json
        from decimal import Decimal, InvalidOperation

        from node.rpc.errors import RPCError
        from node.rpc.rawtransactions import submitpackage

        try:
            hexes = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise bad_request(f"invalid JSON: {err}") from None
        if not isinstance(hexes, list) or not all(isinstance(h, str) for h in hexes):
            raise bad_request("expected a JSON array of transaction hex strings")
        if len(hexes) > MAX_PACKAGE_COUNT:
            raise bad_request(f"Exceeded maximum of {MAX_PACKAGE_COUNT} transactions")
        limits = {}
        for name in ("maxfeerate", "maxburnamount"):
            if name in params:
                try:
                    limits[name] = Decimal(params[name])
                    if not limits[name].is_finite():
                        raise InvalidOperation
                except InvalidOperation:
                    raise bad_request(f"Invalid {name}") from None
        for i, h in enumerate(hexes):
            if not 120 <= len(h) < 800_000:
                raise bad_request(f"Invalid transaction size for item {i}")
            try:
                bytes.fromhex(h)
            except ValueError:
                raise bad_request(f"Invalid transaction hex for item {i}") from None
        try:
            return submitpackage(self.node, hexes, limits.get("maxfeerate"),
                                 limits.get("maxburnamount"))
        except RPCError as err:
            raise bad_request(f"submitpackage RPC error {err.code}: {err.message}") from None

    # -- addresses ------------------------------------------------------------------------------

    def script_hash(self, kind: str, text: str) -> bytes:
        if kind == "scripthash":
            if len(text) != 64:
                raise bad_request("Invalid scripthash")
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise bad_request("Invalid scripthash") from None
        import hashlib

        try:
            script = address_to_script(text, self.params)
        except AddressError as err:
            if _other_network(text, self.params):
                raise bad_request("Address on invalid network") from None
            raise bad_request(err.args[0] if err.args else "Invalid address") from None
        return hashlib.sha256(script).digest()

    def address(self, kind: str, text: str) -> dict:
        sh = self.script_hash(kind, text)
        with self.view() as view:
            chain = stats_json(*view.stats(sh))
        return {kind: text, "chain_stats": chain, "mempool_stats": self.mempool.stats(sh)}

    def _chain_history(self, view: AddrView, sh: bytes, before=None) -> list[dict]:
        rows = view.history(sh, CHAIN_TXS_PER_PAGE, before)
        out = []
        for _height, _i, txid in rows:
            found = self.confirmed_tx(view, txid)
            if found is None:  # (cannot happen within one snapshot)
                continue
            out.append(self._tx_json(view, *found))
        return out

    def address_txs(self, kind: str, text: str) -> list[dict]:
        sh = self.script_hash(kind, text)
        with self.view() as view:
            chain = self._chain_history(view, sh)
            confirmed = {t["txid"] for t in chain}
            mem = [self._mtx_json(m) for m in self.mempool.history(sh, MAX_MEMPOOL_TXS)]
            return [t for t in mem if t["txid"] not in confirmed] + chain

    def address_txs_chain(self, kind: str, text: str, last_seen: str | None) -> list[dict]:
        sh = self.script_hash(kind, text)
        last = None
        if last_seen is not None:
            try:
                last = parse_hash(last_seen)
            except EsploraError:
                last = None  # (electrs: an unparsable txid is no txid)
        with self.view() as view:
            before = None
            if last is not None:
                pos = view.tx_position(last)
                if pos is None or not view.has_history_row(sh, pos[0], pos[1]):
                    return []
                before = (pos[0], pos[1])
            return self._chain_history(view, sh, before)

    def address_txs_mempool(self, kind: str, text: str) -> list[dict]:
        sh = self.script_hash(kind, text)
        self.mempool.refresh()
        return [self._mtx_json(m) for m in self.mempool.history(sh, MAX_MEMPOOL_TXS)]

    def address_utxo(self, kind: str, text: str) -> list[dict]:
        sh = self.script_hash(kind, text)
        with self.view() as view:
            confirmed = view.utxos(sh)
            mem = self.mempool.utxos(sh)  # (the view's lock before the chain's, never inside)
            out = []
            with self.chain.lock:
                spent = self.node.mempool.is_spent
                confirmed = [u for u in confirmed if not spent(u[0], u[1])]
                mem = [u for u in mem if not spent(u[0], u[1])]
            for txid, n, height, value in sorted(confirmed, key=lambda u: (u[2], u[0], u[1])):
                out.append({"txid": txid[::-1].hex(), "vout": n,
                            "status": status_json(view.block_at(height)), "value": value})
            for txid, n, value in mem:
                out.append({"txid": txid[::-1].hex(), "vout": n, "status": {"confirmed": False},
                            "value": value})
            return out

    # -- blocks ---------------------------------------------------------------------------------

    def tip(self):
        chain = self.chain
        return getattr(chain, "published", None) or chain.tip

    def block_entry(self, text: str):
        e = self.chain.get(parse_hash(text))
        if e is None or not e.have_data:
            raise not_found("Block not found")
        return e

    def block(self, text: str) -> dict:
        e = self.block_entry(text)
        size, weight, _ = self._block_info(e)
        return block_json(e, size, weight)

    def block_status(self, text: str) -> dict:
        e = self.chain.get(parse_hash(text))
        with self.chain.lock:
            if e is None or not self.chain.in_active_chain(e):
                return {"in_best_chain": False, "height": None, "next_best": None}
            nxt = self.chain.active[e.height + 1] if e.height < self.chain.height else None
        return {"in_best_chain": True, "height": e.height,
                "next_best": nxt.hash[::-1].hex() if nxt is not None else None}

    def block_txids(self, text: str) -> list[str]:
        return [t[::-1].hex() for t in self._block_info(self.block_entry(text))[2]]

    def block_txid(self, text: str, index: str) -> str:
        e = self.block_entry(text)
        i = parse_uint(index)
        txids = self._block_info(e)[2]
        if i >= len(txids):
            raise not_found("tx index out of range")
        return txids[i][::-1].hex()

    def block_txs(self, text: str, start: str | None) -> list[dict]:
        e = self.block_entry(text)
        # (electrs: a start that is not a u32 is page 0)
        first = (uint_or_none(start, 32) if start is not None else None) or 0
        if first % CHAIN_TXS_PER_PAGE:
            raise bad_request(f"start index must be a multiple of {CHAIN_TXS_PER_PAGE}")
        try:
            block = self.chain.read_block(e)
        except (BlockFileError, OSError):
            raise not_found("Block not found") from None
        if first >= len(block.txs):
            raise bad_request("start index out of range")
        txs = block.txs[first:first + CHAIN_TXS_PER_PAGE]
        undo = None
        if e.prev is not None and e.undo_pos:
            try:
                undo = self.chain.read_undo(e)
            except (BlockFileError, OSError, DeserializationError):
                undo = None
        with self.chain.lock:
            in_best = self.chain.in_active_chain(e)
        status = status_json(e if in_best else None)
        out = []
        with self.view() as view:
            for k, tx in enumerate(txs):
                i = first + k
                if i == 0:
                    prevouts = [None] * len(tx.vin)
                elif undo is not None:
                    prevouts = [TxOut(c.value, c.script_pubkey) for c in undo[i - 1]]
                else:
                    prevouts = self._prevouts(view, tx)
                out.append(tx_json(tx, prevouts, self.params, status))
        return out

    def block_header(self, text: str) -> str:
        e = self.chain.get(parse_hash(text))
        if e is None:
            raise not_found("Block not found")
        return e.header().serialize().hex()

    def block_raw(self, text: str) -> bytes:
        e = self.block_entry(text)
        try:
            return self.chain.read_raw_block(e)
        except (BlockFileError, OSError):
            raise not_found("Block not found") from None

    def block_height(self, text: str) -> str:
        h = parse_uint(text)
        with self.chain.lock:
            if h > self.chain.height:
                raise not_found("Block not found")
            return self.chain.active[h].hash[::-1].hex()

    def blocks(self, start: str | None) -> list[dict]:
        with self.chain.lock:
            tip = self.chain.tip
            e = tip
            h = uint_or_none(start) if start is not None else None
            if h is not None:  # (electrs: a start that is not a usize is the tip)
                if h > tip.height:
                    raise not_found("Block not found")
                e = self.chain.active[h]
        out = []
        while e is not None and len(out) < BLOCK_LIMIT:
            size, weight, _ = self._block_info(e)
            out.append(block_json(e, size, weight))
            e = e.prev
        return out

    # -- mempool and fees -----------------------------------------------------------------------

    def mempool_backlog(self) -> dict:
        self.mempool.refresh()
        return self.mempool.backlog()

    def mempool_txids(self) -> list[str]:
        self.mempool.refresh()
        return [t[::-1].hex() for t in self.mempool.txids()]

    def mempool_recent(self) -> list[dict]:
        self.mempool.refresh()
        return [{"txid": m.tx.txid_hex(), "fee": m.fee, "vsize": m.vsize,
                 "value": m.tx.total_out()} for m in self.mempool.recent(10)]

    def fee_estimates(self) -> dict:
        """electrs's: estimatesmartfee (economical) for each target, those it answers without
        errors, in sat/vB. As the RPC, under the chain lock (the estimator's data changes
        as blocks connect and the mempool moves) and never below the mempool's minimum fee
        rate or the minimum relay fee."""
        est = getattr(self.node, "fee_estimator", None)
        mempool = getattr(self.node, "mempool", None)
        if est is None or mempool is None:
            return {}
        with self.node.chain.lock:
            rates = [(target, est.estimate(target)) for target in CONF_TARGETS]
            floor = max(mempool.min_fee_rate(), mempool.min_relay_fee)
        return {str(target): max(rate, floor) / 1000 for target, rate in rates
                if rate is not None}


def _other_network(text: str, params) -> bool:
    """Whether an address is a valid one of another Bitcoin network (main, test/signet,
    regtest): electrs's "Address on invalid network"."""
    from wallet.bech32 import Bech32Error, bech32_decode

    for other in (MAIN, REGTEST):
        if other is params:
            continue
        try:
            decode_address(text, other)
            return True
        except AddressError:
            pass
    try:
        _enc, hrp, values = bech32_decode(text)
    except Bech32Error:
        return False
    return bool(values) and hrp in ("bc", "tb", "bcrt") and hrp != params.bech32_hrp
