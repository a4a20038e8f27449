"""Context-free checks of transactions and blocks (Core's CheckTransaction and CheckBlock).

Each failure raises ValidationError with Bitcoin Core's reject reason.
"""

from __future__ import annotations

from consensus.amounts import MAX_MONEY
from consensus.block import (
    Block,
    witness_commitment,
    witness_commitment_index,
    witness_merkle_root,
)
from consensus.errors import ValidationError
from consensus.params import ChainParams
from consensus.pow import check_proof_of_work
from consensus.script.script import find_sigop_byte, sigop_count
from consensus.tx import WITNESS_SCALE_FACTOR, Transaction

MAX_BLOCK_WEIGHT = 4_000_000
MAX_BLOCK_SERIALIZED_SIZE = 4_000_000
MAX_BLOCK_SIGOPS_COST = 80_000


def check_transaction(tx: Transaction) -> None:
    """Rules that hold for any transaction regardless of the chain."""
    if not tx.vin:
        raise ValidationError("bad-txns-vin-empty")
    if not tx.vout:
        raise ValidationError("bad-txns-vout-empty")
    # Size limit ignoring witness: a transaction must fit in a block on its own.
    if tx.base_size * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise ValidationError("bad-txns-oversize")

    total = 0
    for out in tx.vout:
        if out.value < 0:
            raise ValidationError("bad-txns-vout-negative")
        if out.value > MAX_MONEY:
            raise ValidationError("bad-txns-vout-toolarge")
        total += out.value
        if total > MAX_MONEY:
            raise ValidationError("bad-txns-txouttotal-toolarge")

    # Spending the same output twice within one transaction (CVE-2018-17144).
    seen = set()
    for txin in tx.vin:
        key = (txin.prevout.hash, txin.prevout.n)
        if key in seen:
            raise ValidationError("bad-txns-inputs-duplicate")
        seen.add(key)

    if tx.is_coinbase():
        if not 2 <= len(tx.vin[0].script_sig) <= 100:
            raise ValidationError("bad-cb-length")
    else:
        for txin in tx.vin:
            if txin.prevout.is_null():
                raise ValidationError("bad-txns-prevout-null")


def legacy_sigop_count(tx: Transaction) -> int:
    """Core's GetLegacySigOpCount: inaccurate counts over every scriptSig and scriptPubKey."""
    n = 0
    for txin in tx.vin:
        if find_sigop_byte(txin.script_sig):  # (most scripts have none: no call)
            n += sigop_count(txin.script_sig, False)
    for out in tx.vout:
        if find_sigop_byte(out.script_pubkey):
            n += sigop_count(out.script_pubkey, False)
    return n


def check_block_header(block: Block, params: ChainParams) -> None:
    if not check_proof_of_work(block.hash, block.header.bits, params):
        raise ValidationError("high-hash", 50, "proof of work failed")


def check_merkle_root(block: Block) -> None:
    root, mutated = block.compute_merkle_root()
    if root != block.header.merkle_root:
        raise ValidationError("bad-txnmrklroot", 100, "hashMerkleRoot mismatch", mutated=True)
    # A duplicated pair of leaves gives the same root as the list without it, so the
    # block could be valid under another transaction list: reject but do not blame the hash.
    if mutated:
        raise ValidationError("bad-txns-duplicate", 100, "duplicate transaction", mutated=True)


def check_block(
    block: Block, params: ChainParams, check_pow: bool = True, check_merkle: bool = True
) -> None:
    """Core's CheckBlock: everything about a block that needs no chain context."""
    if check_pow:
        check_block_header(block, params)
    if check_merkle:
        check_merkle_root(block)

    # Size limits. The no-witness size is checked here; full weight needs context.
    txs = block.txs
    if (
        not txs
        or len(txs) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT
        or block.base_size * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT
    ):
        raise ValidationError("bad-blk-length", 100, "size limits failed")

    if not txs[0].is_coinbase():
        raise ValidationError("bad-cb-missing", 100, "first tx is not coinbase")
    for tx in txs[1:]:
        if tx.is_coinbase():
            raise ValidationError("bad-cb-multiple", 100, "more than one coinbase")

    for tx in txs:
        try:
            check_transaction(tx)
        except ValidationError as e:
            raise ValidationError(
                e.reason, e.dos_score, f"Transaction check failed (tx hash {tx.txid_hex()})"
            ) from None

    sigops = 0
    for tx in txs:
        sigops += legacy_sigop_count(tx)
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST:
        raise ValidationError("bad-blk-sigops", 100, "out-of-bounds SigOpCount")


def check_witness_malleation(block: Block, expect_witness_commitment: bool) -> None:
    """Core's CheckWitnessMalleation (BIP141).

    With segwit active, a commitment in the coinbase must come with a 32-byte witness nonce
    and match the witness merkle root. Without a commitment (or before segwit), no transaction
    may carry witness data. Failures are `mutated`: the witness is not covered by the header.
    """
    if expect_witness_commitment:
        pos = witness_commitment_index(block)
        if pos >= 0:
            cb_witness = block.txs[0].vin[0].witness
            if len(cb_witness) != 1 or len(cb_witness[0]) != 32:
                raise ValidationError(
                    "bad-witness-nonce-size", 100, "invalid witness reserved value size",
                    mutated=True,
                )
            root = witness_merkle_root(block.txs)
            expected = witness_commitment(root, cb_witness[0])
            if block.txs[0].vout[pos].script_pubkey[6:38] != expected:
                raise ValidationError(
                    "bad-witness-merkle-match", 100, "witness merkle commitment mismatch",
                    mutated=True,
                )
            return
    for tx in block.txs:
        if tx.has_witness():
            raise ValidationError(
                "unexpected-witness", 100, "unexpected witness data found", mutated=True
            )
