"""ZMQ notifications, as Core's (-zmqpubhashblock, -zmqpubhashtx, -zmqpubrawblock, -zmqpubrawtx,
-zmqpubsequence, each with -zmqpub<type>hwm), through pyzmq.

Each notifier publishes on a PUB socket bound to its address (notifiers on the same address
share one socket) multipart messages of three frames: the topic, the body, and a 4-byte
little-endian sequence number counted per notifier from 0. Bodies:

    hashblock  the block hash (32 bytes, display order)       for each new tip (not in IBD)
    rawblock   the serialized block                            for each new tip (not in IBD)
    hashtx     the txid (display order)                        for each transaction added to
    rawtx      the serialized transaction (with witness)       the mempool, and for every
                                                               transaction of a block connected
                                                               or disconnected
    sequence   hash (display order) | label [| mempool sequence, u64 LE]
               C block connected, D block disconnected (every block, IBD too),
               A added to the mempool, R removed from it for a reason other than a block

Events are taken as Core's validation interface gives them: block connected (its
transactions, then its C), block disconnected (its transactions, then its D), the tip moved
(hashblock/rawblock), mempool additions and removals. The chain and the mempool only append
to a queue from their event callbacks; a thread of its own serializes and sends, in the order
Core would publish them, so publishing costs block connection nothing but the append.

Core's order, where it differs from the order of the chain's events:
  - A plain connection is a step of its own for each block (Core's ActivateBestChainStep
    stops once the tip has more work than when it began): each block's C, then that block as
    the new tip, even when several connect in one go (a parent that arrived last, a
    reconsiderblock).
  - In a reorg, the blocks of the new branch are told only after the step: first the blocks
    that leave (each as it goes), the mempool's removals for conflicts with the new blocks and
    the disconnected transactions it takes back (A, after the step), then the new branch's
    blocks (C) up to the first with more work than the old tip, which is the new tip; each
    block after it connects, then is a tip, as in a plain connection. The chain connects the
    whole branch before the mempool takes the transactions back, so those C's wait here
    until the chain says the step is complete.
"""

from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger("zmq")

TYPES = ("pubhashblock", "pubhashtx", "pubrawblock", "pubrawtx", "pubsequence")  # Core's order
DEFAULT_HWM = 1000
_STOP = object()


class Notifier:
    """One -zmqpub<type>=<address>: its topic, socket and message counter."""

    __slots__ = ("type", "address", "hwm", "socket", "seq")

    def __init__(self, type_: str, address: str, hwm: int) -> None:
        self.type = type_
        self.address = address
        self.hwm = hwm
        self.socket = None
        self.seq = 0

    @property
    def topic(self) -> bytes:
        return self.type[3:].encode()  # "pubhashblock" -> b"hashblock"

    def send(self, body: bytes) -> None:
        import zmq

        try:
            self.socket.send_multipart([self.topic, body, self.seq.to_bytes(4, "little")],
                                       flags=zmq.DONTWAIT)
        except zmq.ZMQError as err:  # (dropped; the number goes to the next one sent)
            log.debug("zmq: send %s failed: %s", self.type, err)
            return
        self.seq = (self.seq + 1) & 0xFFFFFFFF  # (as Core's: counted after a send only)

    def json(self) -> dict:
        return {"type": self.type, "address": self.address, "hwm": self.hwm}


def notifiers_from_config(cfg) -> list[Notifier]:
    out = []
    for t in TYPES:
        hwm = cfg.arg_int(f"zmq{t}hwm", DEFAULT_HWM)
        for address in cfg.arg_list(f"zmq{t}"):
            if address:
                out.append(Notifier(t, address, hwm))
    return out


class ZMQPublisher:
    def __init__(self, notifiers: list[Notifier], chain, mempool) -> None:
        import zmq

        self.notifiers = notifiers
        self.chain = chain
        self.mempool = mempool
        self.context = zmq.Context()
        self.sockets: dict[str, object] = {}
        for n in notifiers:
            sock = self.sockets.get(n.address)
            if sock is None:
                sock = self.context.socket(zmq.PUB)
                sock.setsockopt(zmq.SNDHWM, n.hwm)
                sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
                sock.setsockopt(zmq.LINGER, 0)
                try:
                    sock.bind(n.address)
                except zmq.ZMQError as err:
                    sock.close()
                    self.close_sockets()
                    raise OSError(f"zmq: Failed to bind address {n.address}: {err}") from None
                self.sockets[n.address] = sock
            n.socket = sock
            log.info("zmq: Outbound message high water mark for %s at %s is %d", n.type,
                     n.address, n.hwm)
        self.by_type: dict[str, list[Notifier]] = {t: [] for t in TYPES}
        for n in notifiers:
            self.by_type[n.type].append(n)
        self.wants_tx = bool(self.by_type["pubhashtx"] or self.by_type["pubrawtx"])
        self.wants_block = bool(self.by_type["pubhashblock"] or self.by_type["pubrawblock"])
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        # A reorg in progress (blocks disconnected since the chain last completed a step):
        # the work of the tip before it, and the new branch's blocks connected so far.
        self._old_tip_work: int | None = None
        self._pending: list = []
        self._thread = threading.Thread(target=self._run, name="zmqpub", daemon=True)
        self._thread.start()
        chain.on_connected.append(self._on_connected)
        chain.on_disconnected.append(self._on_disconnected)
        chain.on_activated.append(self._on_activated)
        if mempool is not None:
            mempool.on_added.append(self._on_added)
            mempool.on_removed.append(self._on_removed)

    @classmethod
    def from_config(cls, cfg, chain, mempool) -> ZMQPublisher | None:
        notifiers = notifiers_from_config(cfg)
        if not notifiers:
            return None
        try:
            return cls(notifiers, chain, mempool)
        except ImportError:
            log.error("zmq: pyzmq is not installed: no ZMQ notifications")
        except OSError as err:  # Core's node starts without the notification interface
            log.error("%s", err)
            log.error("zmq: Failed to initialize notification interface")
        return None

    def active(self) -> list[dict]:
        """getzmqnotifications' answer."""
        return [n.json() for n in self.notifiers]

    # -- event callbacks (on the validation and RPC threads: queue only) ---------------------

    def _on_connected(self, block, entry) -> None:
        if self._old_tip_work is not None:
            self._pending.append((block, entry))  # told once the step is complete
            return
        self.queue.put(("connected", block, entry))
        self._tip(block, entry)

    def _on_disconnected(self, block, entry) -> None:
        if self._old_tip_work is None:
            self._old_tip_work = entry.chain_work  # (the first block to leave is the tip)
        self.queue.put(("disconnected", block, entry))

    def _on_activated(self) -> None:
        """The chain completed a step (the mempool has followed it): the new branch of a
        reorg, if any, is told now."""
        old_work, self._old_tip_work = self._old_tip_work, None
        pending, self._pending = self._pending, []
        told = False
        for block, entry in pending:
            self.queue.put(("connected", block, entry))
            if entry.chain_work > old_work:
                self._tip(block, entry)
                told = True
        if pending and not told:  # (a branch that stopped short of the old tip's work)
            self._tip(*pending[-1])

    def _tip(self, block, entry) -> None:
        if self.wants_block and not self.chain.in_ibd():
            self.queue.put(("tip", block, entry))

    def _on_added(self, tx) -> None:
        # (the mempool's sequence after the addition: Core's number for it, as Core's
        # counter starts at 1 where the mempool's starts at 0)
        self.queue.put(("added", tx, self.mempool.transactions_updated))

    def _on_removed(self, tx, reason: str) -> None:
        if reason != "block":  # (a block's transactions are told by its C)
            self.queue.put(("removed", tx, self.mempool.transactions_updated))

    # -- the publishing thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            try:
                self._publish(*item)
            except Exception:  # a bug must not end the notifications
                log.exception("zmq: publishing %s failed", item[0])

    def _txs(self, txs) -> None:
        for tx in txs:
            self._tx(tx)

    def _tx(self, tx) -> None:
        by = self.by_type
        for n in by["pubhashtx"]:
            n.send(tx.txid[::-1])
        if by["pubrawtx"]:
            raw = tx.serialize()
            for n in by["pubrawtx"]:
                n.send(raw)

    def _seq(self, h: bytes, label: bytes, mempool_seq: int | None = None) -> None:
        body = h[::-1] + label
        if mempool_seq is not None:
            body += mempool_seq.to_bytes(8, "little")
        for n in self.by_type["pubsequence"]:
            n.send(body)

    def _publish(self, kind: str, obj, extra) -> None:
        by = self.by_type
        if kind == "connected" or kind == "disconnected":
            if self.wants_tx:
                self._txs(obj.txs)
            self._seq(extra.hash, b"C" if kind == "connected" else b"D")
        elif kind == "tip":
            for n in by["pubhashblock"]:
                n.send(extra.hash[::-1])
            if by["pubrawblock"]:
                raw = obj.serialize()
                for n in by["pubrawblock"]:
                    n.send(raw)
        elif kind == "added":
            self._tx(obj)
            self._seq(obj.txid, b"A", extra)
        elif kind == "removed":
            self._seq(obj.txid, b"R", extra)

    def close_sockets(self) -> None:
        for s in self.sockets.values():
            s.close(linger=0)
        self.sockets.clear()

    def close(self) -> None:
        for lst, fn in ((self.chain.on_connected, self._on_connected),
                        (self.chain.on_disconnected, self._on_disconnected),
                        (self.chain.on_activated, self._on_activated)):
            if fn in lst:
                lst.remove(fn)
        if self.mempool is not None:
            for lst, fn in ((self.mempool.on_added, self._on_added),
                            (self.mempool.on_removed, self._on_removed)):
                if fn in lst:
                    lst.remove(fn)
        self.queue.put(_STOP)
        self._thread.join(timeout=10)
        self.close_sockets()
        self.context.term()
