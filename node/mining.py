"""Block templates and mining: Core's BlockAssembler (transactions chosen by ancestor fee
rate, so a child can pay for its parent, within the weight and sigop limits), the coinbase
with BIP34 height, fees and the witness commitment, and a nonce search for regtest."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from consensus.amounts import block_subsidy
from consensus.block import Block, BlockHeader, add_witness_commitment
from consensus.checks import MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT
from consensus.hashes import sha256d
from consensus.pow import check_proof_of_work, next_work_required
from consensus.script.script import push_int
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node import clock, policy

DEFAULT_BLOCK_MAX_WEIGHT = MAX_BLOCK_WEIGHT - 4000
COINBASE_RESERVED_WEIGHT = 4000
COINBASE_RESERVED_SIGOPS = 400
MAX_CONSECUTIVE_FAILURES = 1000
BLOCK_VERSION = 0x20000000  # BIP9 top bits, no deployment signalled

# Weight and transaction count of the last block assembled (getmininginfo's
# currentblockweight / currentblocktx; Core keeps them as BlockAssembler statics).
last_block_stats: dict[str, int] = {}


@dataclass
class BlockTemplate:
    block: Block
    height: int
    fees: list[int] = field(default_factory=list)  # per transaction, coinbase first (-fees)
    sigops: list[int] = field(default_factory=list)
    total_fees: int = 0


def make_coinbase(height: int, value: int, script_pubkey: bytes,
                  extra_nonce: int = 0) -> Transaction:
    """Core's coinbase: scriptSig `<height>` (BIP34), padded with OP_0 to the 2 bytes a
    coinbase scriptSig needs while the height is a one-byte OP_n (heights up to 16), plus an
    extra nonce when needed; one output paying subsidy and fees. (Byte for byte as Core's:
    block files, and so pruning, split where Core's do.)"""
    script_sig = push_int(height) + (b"\x00" if height <= 16 else b"")
    if extra_nonce:
        script_sig += push_int(extra_nonce)
    # As Core: the coinbase is time-locked to its height (nLockTime height - 1 with a
    # non-final sequence).
    return Transaction(2, [TxIn(OutPoint(), script_sig, 0xFFFFFFFE)],
                       [TxOut(value, script_pubkey)], max(0, height - 1))


def block_time(chain, now: float | None = None) -> int:
    """max(median time past + 1, now): the earliest valid and latest honest timestamp."""
    return max(chain.tip.median_time_past() + 1, int(now if now is not None else clock.now()))


def select_transactions(mempool, max_weight: int = DEFAULT_BLOCK_MAX_WEIGHT,
                        min_fee_rate: int = policy.DEFAULT_BLOCK_MIN_TX_FEE
                        ) -> list[bytes]:
    """Core's addPackageTxs: repeatedly take the mempool transaction whose package (itself
    plus its not-yet-included ancestors) has the highest fee rate, with the whole package,
    parents first, while it fits the weight and sigop budget."""
    entries = mempool.entries
    included: set[bytes] = set()
    order: list[bytes] = []
    weight = COINBASE_RESERVED_WEIGHT
    sigops = COINBASE_RESERVED_SIGOPS
    anc_cache = {t: mempool.ancestors(e) | {t} for t, e in entries.items()}

    def package(t: bytes) -> tuple[set[bytes], int, int, int, int]:
        pkg = anc_cache[t] - included
        fees = size = w = s = 0
        for x in pkg:
            e = entries[x]
            fees += e.modified_fee
            size += e.vsize
            w += e.weight
            s += e.sigop_cost
        return pkg, fees, size, w, s

    heap: list[tuple[float, bytes]] = []
    for t in entries:
        _, fees, size, _, _ = package(t)
        heapq.heappush(heap, (-fees / size, t))
    failures = 0
    while heap:
        neg_score, t = heapq.heappop(heap)
        if t in included:
            continue
        pkg, fees, size, w, s = package(t)
        score = fees / size
        if abs(score + neg_score) > 1e-12:  # stale: its ancestors changed since it was pushed
            heapq.heappush(heap, (-score, t))
            continue
        if fees * 1000 < min_fee_rate * size:
            break  # everything left pays less than the block minimum
        if weight + w > max_weight or sigops + s > MAX_BLOCK_SIGOPS_COST:
            failures += 1
            if failures > MAX_CONSECUTIVE_FAILURES and weight > max_weight - 4000:
                break
            continue
        failures = 0
        # Parents first: ancestors have fewer ancestors of their own.
        for x in sorted(pkg, key=lambda x: len(anc_cache[x])):
            included.add(x)
            order.append(x)
        weight += w
        sigops += s
        # Descendants of what was included now have smaller packages: re-score them.
        for x in pkg:
            for d in mempool.descendants(entries[x]):
                if d not in included:
                    _, f2, s2, _, _ = package(d)
                    heapq.heappush(heap, (-f2 / s2, d))
    return order


def create_template(chain, mempool, script_pubkey: bytes, txids: list[bytes] | None = None,
                    txs: list[Transaction] | None = None, now: float | None = None
                    ) -> BlockTemplate:
    """A block on the current tip paying to script_pubkey: mempool transactions by ancestor
    fee rate, or exactly `txs` if given (generateblock). Not yet solved (nonce 0)."""
    with chain.lock:
        tip = chain.tip
        height = tip.height + 1
        t = block_time(chain, now)
        fees: list[int] = []
        sigops: list[int] = []
        chosen: list[Transaction] = []
        if txs is not None:
            # generateblock: exactly these, and (as Core) their fees are not claimed.
            chosen = list(txs)
            fees = [0] * len(txs)
            sigops = [0] * len(txs)
        else:
            for txid in (txids if txids is not None else select_transactions(mempool)):
                e = mempool.entries[txid]
                chosen.append(e.tx)
                fees.append(e.fee)
                sigops.append(e.sigop_cost)
        total_fees = sum(fees)
        value = block_subsidy(height, chain.params.subsidy_halving_interval) + total_fees
        coinbase = make_coinbase(height, value, script_pubkey)
        bits = next_work_required(tip, t, chain.params)
        version = chain.versionbits.block_version(tip, chain.params.deployments)
        block = Block(BlockHeader(version, tip.hash, b"\x00" * 32, t, bits, 0),
                      [coinbase, *chosen])
        if height >= chain.params.segwit_height:
            add_witness_commitment(block)
        block.header.merkle_root = block.compute_merkle_root()[0]
        block.rehash()
        # As Core's BlockAssembler counts it: the reserved coinbase weight plus the
        # transactions' weight.
        last_block_stats.update(
            weight=COINBASE_RESERVED_WEIGHT + sum(tx.weight for tx in block.txs[1:]),
            txs=len(block.txs) - 1)
        return BlockTemplate(block, height, [-total_fees, *fees],
                             [0, *sigops], total_fees)


def solve(block: Block, params, max_tries: int) -> bool:
    """Search nonces (up to max_tries). Returns False if none met the target."""
    h = block.header
    prefix = h.serialize()[:76]
    for nonce in range(h.nonce, min(h.nonce + max_tries, 1 << 32)):
        digest = sha256d(prefix + nonce.to_bytes(4, "little"))
        if check_proof_of_work(digest, h.bits, params):
            h.nonce = nonce
            h.rehash()
            return True
    return False
