"""JSON forms of scripts, transactions and blocks, field for field as Bitcoin Core writes
them (core_write.cpp ScriptToUniv / TxToUniv, rpc/blockchain.cpp blockheaderToJSON)."""

from __future__ import annotations

from functools import lru_cache

from consensus.block import Block
from consensus.contextual import Coin
from consensus.params import ChainParams
from consensus.pow import compact_to_target
from consensus.script.standard import (
    MULTISIG,
    NONSTANDARD,
    NULL_DATA,
    PUBKEY,
    script_to_asm,
    solver,
)
from consensus.tx import Transaction
from node.rpc.jsonutil import btc, double
from node.store.blockindex import BlockIndexEntry
from wallet.address import script_to_address
from wallet.descriptors import infer_descriptor as _infer_descriptor


@lru_cache(maxsize=65536)
def infer_descriptor(script: bytes, params: ChainParams) -> str:
    """Core's InferDescriptor with no key information (cached: scripts repeat)."""
    return _infer_descriptor(script, params)


@lru_cache(maxsize=65536)
def _address(script: bytes, params: ChainParams) -> str | None:
    return script_to_address(script, params)


def script_pubkey_json(script: bytes, params: ChainParams, include_hex: bool = True,
                       include_address: bool = True) -> dict:
    kind, _ = solver(script)
    out: dict = {"asm": script_to_asm(script)}
    if include_address:
        out["desc"] = infer_descriptor(script, params)
    if include_hex:
        out["hex"] = script.hex()
    if include_address and kind not in (PUBKEY, MULTISIG, NONSTANDARD, NULL_DATA):
        addr = _address(script, params)
        if addr is not None:
            out["address"] = addr
    out["type"] = kind
    return out


def tx_json(
    tx: Transaction,
    params: ChainParams,
    include_hex: bool = True,
    undo: list[Coin] | None = None,
    with_prevout: bool = False,
    raw: bytes | None = None,
) -> dict:
    """TxToUniv. `undo` (the coins the inputs spent) adds the fee, and with `with_prevout`
    each input's prevout (getblock verbosity 3). `raw`, the transaction's bytes if the caller
    has them, saves serializing it again for "hex"."""
    vin = []
    total_in = 0
    coinbase = tx.is_coinbase()
    for i, txin in enumerate(tx.vin):
        item: dict = {}
        if coinbase:
            item["coinbase"] = txin.script_sig.hex()
        else:
            item["txid"] = txin.prevout.hash[::-1].hex()
            item["vout"] = txin.prevout.n
            item["scriptSig"] = {"asm": script_to_asm(txin.script_sig, True),
                                 "hex": txin.script_sig.hex()}
        if txin.witness:
            item["txinwitness"] = [w.hex() for w in txin.witness]
        if undo is not None:
            coin = undo[i]
            total_in += coin.value
            if with_prevout:
                item["prevout"] = {
                    "generated": coin.coinbase,
                    "height": coin.height,
                    "value": btc(coin.value),
                    "scriptPubKey": script_pubkey_json(coin.script_pubkey, params),
                }
        item["sequence"] = txin.sequence
        vin.append(item)
    vout = [
        {"value": btc(o.value), "n": n, "scriptPubKey": script_pubkey_json(o.script_pubkey, params)}
        for n, o in enumerate(tx.vout)
    ]
    out: dict = {
        "txid": tx.txid_hex(),
        "hash": tx.wtxid_hex(),
        "version": tx.version,
        "size": tx.size,
        "vsize": tx.vsize,
        "weight": tx.weight,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }
    if undo is not None:
        out["fee"] = btc(total_in - tx.total_out())
    if include_hex:
        out["hex"] = (raw if raw is not None else tx.serialize()).hex()
    return out


def difficulty(bits: int) -> float:
    """Core's GetDifficulty: the minimum mainnet target over this target, as a double."""
    shift = (bits >> 24) & 0xFF
    diff = 0x0000FFFF / (bits & 0x00FFFFFF) if bits & 0x00FFFFFF else 0.0
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


def header_json(e: BlockIndexEntry, chain) -> dict:
    """blockheaderToJSON."""
    in_chain = chain.in_active_chain(e)
    out = {
        "hash": e.hash_hex(),
        "confirmations": chain.height - e.height + 1 if in_chain else -1,
        "height": e.height,
        "version": e.version,
        "versionHex": f"{e.version & 0xFFFFFFFF:08x}",
        "merkleroot": e.merkle_root[::-1].hex(),
        "time": e.time,
        "mediantime": e.median_time_past(),
        "nonce": e.nonce,
        "bits": f"{e.bits:08x}",
        "target": f"{compact_to_target(e.bits)[0]:064x}",
        "difficulty": double(difficulty(e.bits)),
        "chainwork": f"{e.chain_work:064x}",
        "nTx": e.n_tx,
    }
    if e.prev is not None:
        out["previousblockhash"] = e.prev.hash_hex()
    if in_chain and e.height < chain.height:
        out["nextblockhash"] = chain.active[e.height + 1].hash_hex()
    return out


def block_json(block: Block, e: BlockIndexEntry, chain, verbosity: int,
               undo: list[list[Coin]] | None = None, raw: bytes | None = None) -> dict:
    """blockToJSON for verbosity 1 (txids), 2 (transactions with fees) and 3 (with prevouts).
    `raw` is the block's bytes when it was parsed from them (transaction hex is sliced)."""
    out = header_json(e, chain)
    out["strippedsize"] = block.base_size
    out["size"] = block.size
    out["weight"] = block.weight
    if block.txs:  # Core's coinbase_tx: what a block's coinbase commits to, at any verbosity
        cb = block.txs[0]
        cb_in = cb.vin[0]
        summary = {"version": cb.version, "locktime": cb.locktime,
                   "sequence": cb_in.sequence, "coinbase": cb_in.script_sig.hex()}
        if cb_in.witness:
            summary["witness"] = cb_in.witness[0].hex()
        out["coinbase_tx"] = summary
    if verbosity == 1:
        out["tx"] = [tx.txid_hex() for tx in block.txs]
    else:
        offs = block.tx_offsets() if raw is not None else None
        out["tx"] = [
            tx_json(tx, chain.params, True,
                    undo[i - 1] if undo is not None and i > 0 else None, verbosity >= 3,
                    raw[offs[i]:offs[i + 1]] if offs else None)
            for i, tx in enumerate(block.txs)
        ]
    return out
