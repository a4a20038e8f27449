"""getdescriptoractivity (Core's rpc/blockchain.cpp): the spends from and payments to a set
of descriptors' scripts in given blocks of the active chain (read with their undo data) and,
if asked, in the mempool."""

from __future__ import annotations

from node.rpc.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc
from node.rpc.params import parse_hash
from node.rpc.registry import ARR, BOOL, Arg, rpc
from node.rpc.txjson import script_pubkey_json


def _spend(params, spk: bytes, value: int, tx, vin: int, e) -> dict:
    ev: dict = {"type": "spend", "amount": btc(value)}
    if e is not None:
        ev["blockhash"] = e.hash_hex()
        ev["height"] = e.height
    prev = tx.vin[vin].prevout
    ev.update({"spend_txid": tx.txid_hex(), "spend_vin": vin,
               "prevout_txid": prev.hash[::-1].hex(), "prevout_vout": prev.n,
               "prevout_spk": script_pubkey_json(spk, params)})
    return ev


def _receive(params, out, e, vout: int, tx) -> dict:
    ev: dict = {"type": "receive", "amount": btc(out.value)}
    if e is not None:
        ev["blockhash"] = e.hash_hex()
        ev["height"] = e.height
    ev.update({"txid": tx.txid_hex(), "vout": vout,
               "output_spk": script_pubkey_json(out.script_pubkey, params)})
    return ev


@rpc("getdescriptoractivity", "Blockchain",
     [Arg("blockhashes", ARR, False, None,
          "The list of blockhashes to examine for activity. Order doesn't matter. Must be "
          "along main chain or an error is thrown."),
      Arg("scanobjects", ARR, help='Array of scan objects: descriptors, or {"desc": '
                                   'descriptor, "range": n or [begin,end]} (default range '
                                   "1000)"),
      Arg("include_mempool", BOOL, False, True, "Whether to include unconfirmed activity")],
     description="Get spend and receive activity associated with a set of descriptors for a "
                 "set of blocks. This command pairs well with the `relevant_blocks` output of "
                 "`scanblocks()`.\nThis call may take several minutes. If you encounter "
                 "timeouts, try specifying no RPC timeout (bitcoin-cli -rpcclienttimeout=0)",
     result='{ "activity": [ { "type": "spend", "amount", "blockhash", "height", '
            '"spend_txid", "spend_vin", "prevout_txid", "prevout_vout", "prevout_spk" } or '
            '{ "type": "receive", "amount", "blockhash", "height", "txid", "vout", '
            '"output_spk" } ] }    (blockhash and height omitted when unconfirmed)',
     examples=["getdescriptoractivity '[\"000000000000000000001347062c12fded7c528943c8ce1339"
               "87e2e2f5a840ee\"]' '[\"addr(bc1qzl6nsgqzu89a66l50cvwapnkw5shh23zarqkw9)\"]'"])
def getdescriptoractivity(node, blockhashes, scanobjects, include_mempool):
    from node.rpc.blockchain import _read_block_checked, _undo_checked
    from node.rpc.util import _scan_objects

    chain = node.chain
    if blockhashes is None:  # Core's get_array() on the missing argument
        raise RPCError(RPC_MISC_ERROR, "JSON value of type null is not of expected type array")
    entries = {}
    with chain.lock:
        for h in blockhashes:
            e = chain.get(parse_hash(h, "blockhash"))
            if e is None:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
            if not chain.in_active_chain(e):
                raise RPCError(RPC_INVALID_PARAMETER, "Block is not in main chain")
            entries[e.height] = e
    watch = set(_scan_objects(node, scanobjects))
    params = node.params
    activity = []
    for height in sorted(entries):
        e = entries[height]
        block = _read_block_checked(node, e)
        undo = _undo_checked(node, e)
        for i, tx in enumerate(block.txs):
            if i > 0:
                for vin, coin in enumerate(undo[i - 1]):
                    if coin.script_pubkey in watch:
                        activity.append(_spend(params, coin.script_pubkey, coin.value, tx,
                                               vin, e))
            for vout, out in enumerate(tx.vout):
                if out.script_pubkey in watch:
                    activity.append(_receive(params, out, e, vout, tx))
    if include_mempool is None or include_mempool:
        mempool = node.mempool
        with chain.lock:
            for entry in list(mempool.entries.values()):
                tx = entry.tx
                for vin, txin in enumerate(tx.vin):
                    coin = chain.get_coin(txin.prevout.hash, txin.prevout.n)
                    if coin is not None:
                        spk, value = coin.script_pubkey, coin.value
                    else:  # a child of another mempool transaction
                        out = mempool.get_output(txin.prevout.hash, txin.prevout.n)
                        if out is None:
                            raise RPCError(RPC_MISC_ERROR, "Invalid output index")
                        spk, value = out.script_pubkey, out.value
                    if spk in watch:
                        activity.append(_spend(params, spk, value, tx, vin, None))
                for vout, out in enumerate(tx.vout):
                    if out.script_pubkey in watch:
                        activity.append(_receive(params, out, None, vout, tx))
    return {"activity": activity}

