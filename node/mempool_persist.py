"""mempool.dat: the mempool written to disk and read back, in Bitcoin Core's format
(node/mempool_persist.cpp), so that a file from either node loads in the other.

Layout (little-endian; Core's serialization):

    u64        version: 1 (MEMPOOL_DUMP_VERSION_NO_XOR_KEY) or 2 (MEMPOOL_DUMP_VERSION)
    [v2 only]  CompactSize 8, then the 8-byte obfuscation key (not obfuscated itself)
    -- from here on, v2 XORs every byte at file offset p with key[p % 8] --
    u64        number of transactions
    each:      transaction (with witness), i64 entry time (seconds), i64 fee delta (sat)
    CompactSize + (32-byte txid, i64 delta) each: the fee deltas of txids not in the mempool
    CompactSize + 32-byte txid each: the unbroadcast set

Core writes version 2 with a random key unless -persistmempoolv1; it reads both. So do we.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from consensus.serialize import DeserializationError, Reader, compact_size
from consensus.tx import Transaction

log = logging.getLogger("mempool")

MEMPOOL_DUMP_VERSION_NO_XOR_KEY = 1
MEMPOOL_DUMP_VERSION = 2
KEY_SIZE = 8


@dataclass
class ImportOptions:
    """Core's ImportMempoolOptions. The defaults are those of the load at start-up; the
    importmempool RPC's defaults are (True, False, False)."""

    use_current_time: bool = False
    apply_fee_delta_priority: bool = True
    apply_unbroadcast_set: bool = True


@dataclass
class LoadStats:
    accepted: int = 0
    failed: int = 0
    expired: int = 0
    already_there: int = 0
    unbroadcast: int = 0


def xor_obfuscate(data: bytes, key: bytes, offset: int) -> bytes:
    """data XORed with key, the key aligned on file offsets (data starts at `offset`)."""
    if not key or not any(key) or not data:
        return data
    k = len(key)
    start = offset % k
    rotated = key[start:] + key[:start]
    stream = (rotated * (len(data) // k + 1))[: len(data)]
    x = int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
    return x.to_bytes(len(data), "little")


def serialize(mempool, v1: bool = False, key: bytes | None = None) -> tuple[bytes, int]:
    """The file's bytes and the number of transactions in it. Takes the chain lock (the
    mempool's) only to copy what it writes."""
    with mempool.chain.lock:
        entries = [(e.tx, e.time, e.delta) for e in mempool._topological()]
        in_pool = {tx.txid for tx, _, _ in entries}
        deltas = {t: d for t, d in mempool.deltas.items() if t not in in_pool}
        unbroadcast = sorted(t for t in mempool.unbroadcast if t in mempool.entries)
    body = [struct.pack("<Q", len(entries))]
    for tx, t, delta in entries:
        body.append(tx.serialize())
        body.append(struct.pack("<qq", int(t), delta))
    # std::map and std::set of uint256: in the order of their bytes
    body.append(compact_size(len(deltas)))
    for t in sorted(deltas):
        body.append(t + struct.pack("<q", deltas[t]))
    body.append(compact_size(len(unbroadcast)))
    body.extend(unbroadcast)
    data = b"".join(body)
    if v1:
        return struct.pack("<Q", MEMPOOL_DUMP_VERSION_NO_XOR_KEY) + data, len(entries)
    key = os.urandom(KEY_SIZE) if key is None else key
    head = struct.pack("<Q", MEMPOOL_DUMP_VERSION) + compact_size(len(key)) + key
    return head + xor_obfuscate(data, key, len(head)), len(entries)


def dump(mempool, path: Path, v1: bool = False) -> int:
    """Write the mempool to `path` (through path.new, renamed over it once synced, as
    Core). Returns the number of transactions written; raises OSError."""
    data, n = serialize(mempool, v1)
    tmp = Path(str(path) + ".new")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    log.info("Dumped mempool: %d transactions, %d bytes dumped to file", n, len(data))
    return n


def read(data: bytes) -> tuple[list[tuple[Transaction, int, int]], dict[bytes, int], set[bytes]]:
    """Parse a mempool.dat: (transactions with entry time and fee delta, other deltas,
    unbroadcast txids). Raises DeserializationError."""
    r = Reader(data)
    version = r.u64()
    if version == MEMPOOL_DUMP_VERSION:
        key = r.var_bytes()
        r = Reader(xor_obfuscate(data[r.pos:], key, r.pos))
    elif version != MEMPOOL_DUMP_VERSION_NO_XOR_KEY:
        raise DeserializationError(f"unsupported mempool.dat version {version}")
    count = r.u64()
    txs = []
    for _ in range(count):
        tx = Transaction.deserialize(r)
        t, delta = r.i64(), r.i64()
        txs.append((tx, t, delta))
    deltas = {}
    for _ in range(r.compact_size()):
        h = r.read(32)
        deltas[h] = r.i64()
    unbroadcast = {r.read(32) for _ in range(r.compact_size())}
    return txs, deltas, unbroadcast


def load(mempool, path: Path, opts: ImportOptions | None = None) -> LoadStats | None:
    """Core's LoadMempool: offer each saved transaction to the mempool again (those not
    expired), with the metadata the options say. None when the file cannot be opened or
    read (what was accepted before a damaged part stays, as in Core)."""
    opts = opts or ImportOptions()
    try:
        data = Path(path).read_bytes()
    except OSError:
        log.info("Failed to open mempool file. Continuing anyway.")
        return None
    from node.mempool import MempoolReject

    stats = LoadStats()
    try:
        txs, deltas, unbroadcast = read(data)
    except DeserializationError as err:
        log.info("Failed to deserialize mempool data on file: %s. Continuing anyway.", err)
        return None
    log.info("Loading %d mempool transactions from file...", len(txs))
    now = int(mempool.now())
    for tx, t, delta in txs:
        if opts.use_current_time:
            t = now
        if delta and opts.apply_fee_delta_priority:
            mempool.prioritise(tx.txid, delta)
        if t <= now - mempool.expiry:
            stats.expired += 1
            continue
        try:
            with mempool.chain.lock:
                mempool.accept(tx)
                e = mempool.entries.get(tx.txid)
                if e is not None:
                    e.time = t
            stats.accepted += 1
        except MempoolReject as err:
            if tx.txid in mempool.entries:
                stats.already_there += 1
            else:
                log.debug("mempool.dat: %s not accepted: %s", tx.txid_hex(), err)
                stats.failed += 1
    if opts.apply_fee_delta_priority:
        for txid, delta in deltas.items():
            mempool.prioritise(txid, delta)
    if opts.apply_unbroadcast_set:
        stats.unbroadcast = len(unbroadcast)
        with mempool.chain.lock:
            for txid in unbroadcast:
                if txid in mempool.entries:
                    mempool.unbroadcast.add(txid)
    log.info("Imported mempool transactions from file: %d succeeded, %d failed, %d expired, "
             "%d already there, %d waiting for initial broadcast", stats.accepted,
             stats.failed, stats.expired, stats.already_there, stats.unbroadcast)
    return stats
