"""Wallet RPCs about coins and transactions held outside the usual sync: listaddressgroupings
(Core's wallet/rpc/coins.cpp), simulaterawtransaction (wallet.cpp), importprunedfunds and
removeprunedfunds (backup.cpp), with Core's parameters, results and errors."""

from __future__ import annotations

from consensus.block import BlockHeader
from consensus.merkleblock import MerkleBlock
from consensus.serialize import DeserializationError
from wallet.address import script_to_address, script_to_destination
from wallet.amounts import to_btc
from wallet.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.nodeclient import NodeRPCError
from wallet.rpc import (
    ARR,
    OBJ,
    STR,
    Call,
    Param,
    check_options,
    decode_hex_tx,
    json_type,
    method,
    parse_txid,
)
from wallet.wallet import Wallet

# -- listaddressgroupings --------------------------------------------------------------------


def _destination_order(script: bytes) -> tuple:
    """Core's std::set<CTxDestination> order: by variant alternative (PKHash, ScriptHash,
    WitnessV0ScriptHash, WitnessV0KeyHash, WitnessV1Taproot, PayToAnchor, WitnessUnknown),
    then by the bytes."""
    d = script_to_destination(script)
    assert d is not None
    if d.kind == "pubkeyhash":
        return (2, d.payload)
    if d.kind == "scripthash":
        return (3, d.payload)
    if d.witness_version == 0:
        return (4 if len(d.payload) == 32 else 5, d.payload)
    if d.witness_version == 1 and len(d.payload) == 32:
        return (6, d.payload)
    if d.witness_version == 1 and d.payload == b"\x4e\x73":
        return (7, d.payload)
    return (8, bytes([d.witness_version or 0]) + d.payload)


def address_groupings(w: Wallet) -> list[set[bytes]]:
    """Core's GetAddressGroupings: the scripts of the inputs a wallet transaction spends
    are grouped together, with its change outputs when it spends ours; every script of
    ours paid to is a group of its own; groups sharing a script are merged."""
    groups: list[set[bytes]] = []
    for wtx in w.txs.values():
        tx = wtx.tx
        if tx.vin and not tx.is_coinbase():
            grouping: set[bytes] = set()
            for txin in tx.vin:
                parent = w.txs.get(txin.prevout.hash)
                if parent is None or txin.prevout.n not in w.credits[parent.txid]:
                    continue
                spk = parent.tx.vout[txin.prevout.n].script_pubkey
                if script_to_destination(spk) is not None:
                    grouping.add(spk)
            if grouping:
                for out in tx.vout:
                    spk = out.script_pubkey
                    # Core's ScriptIsChange: ours, with an address not in the address book
                    if (w.is_mine(spk) and script_to_destination(spk) is not None
                            and script_to_address(spk, w.params) not in w.labels):
                        grouping.add(spk)
                groups.append(grouping)
        for n in w.credits[wtx.txid]:
            spk = tx.vout[n].script_pubkey
            if script_to_destination(spk) is not None:
                groups.append({spk})
    # merge the groups that share a script (Core's setmap)
    merged: list[set[bytes]] = []
    owner: dict[bytes, int] = {}
    for g in groups:
        hits = sorted({owner[s] for s in g if s in owner})
        if not hits:
            merged.append(set(g))
            idx = len(merged) - 1
        else:
            idx = hits[0]
            for other in hits[1:]:
                merged[idx] |= merged[other]
                merged[other] = set()
            merged[idx] |= g
        for s in merged[idx]:
            owner[s] = idx
    return [g for g in merged if g]


def address_balances(w: Wallet) -> dict[bytes, int]:
    """Core's GetAddressBalances: unspent outputs of trusted transactions (mature, and with
    a confirmation unless the wallet paid for them) by script."""
    out: dict[bytes, int] = {}
    for wtx in w.txs.values():
        if not w.is_trusted(wtx) or w.maturity_left(wtx) > 0:
            continue
        if w.depth(wtx) < (0 if w.debit(wtx) > 0 else 1):
            continue
        for n in w.credits[wtx.txid]:
            spk = wtx.tx.vout[n].script_pubkey
            if script_to_destination(spk) is None:
                continue
            out[spk] = out.get(spk, 0) + (0 if w.is_spent((wtx.txid, n)) else
                                          wtx.tx.vout[n].value)
    return out


@method("listaddressgroupings")
def listaddressgroupings(call: Call):
    """Lists groups of addresses which have had their common ownership made public by
    common use as inputs or as the resulting change in past transactions."""
    w = call.w
    balances = address_balances(w)
    out = []
    for group in address_groupings(w):
        entries = []
        for spk in sorted(group, key=_destination_order):
            addr = script_to_address(spk, w.params)
            entry: list = [addr, to_btc(balances.get(spk, 0))]
            if addr in w.labels:
                entry.append(w.labels[addr])
            entries.append(entry)
        out.append(entries)
    return out


# -- simulaterawtransaction ------------------------------------------------------------------


def _find_coin(call: Call, txid: bytes, n: int) -> bool:
    """Whether the node's chain and mempool know the output (Core's findCoins over the
    mempool view: an output of the UTXO set, or of a mempool transaction)."""
    h = txid[::-1].hex()
    for include_mempool in (True, False):  # (spent in the mempool: still a coin there)
        if call.node.call("gettxout", h, n, include_mempool) is not None:
            return True
    return False


@method("simulaterawtransaction", Param("rawtxs", ARR, None), Param("options", OBJ, None))
def simulaterawtransaction(call: Call, rawtxs, options):
    """Calculate the balance change resulting in the signing and broadcasting of the given
    transaction(s)."""
    w = call.w
    if options is not None:
        check_options(options, {"include_watchonly": "bool"})
    if rawtxs is None:  # Core's get_array() on the missing argument
        raise WalletError(RPC_MISC_ERROR, "JSON value of type null is not of expected type "
                          "array")
    changes = 0
    new_utxos: dict[tuple[bytes, int], int] = {}
    spent: set[tuple[bytes, int]] = set()
    for text in rawtxs:
        if not isinstance(text, str):
            raise WalletError(RPC_MISC_ERROR, f"JSON value of type {json_type(text)} is not "
                              "of expected type string")
        try:
            tx = decode_hex_tx(text)
        except WalletError:
            raise WalletError(RPC_DESERIALIZATION_ERROR,
                              "Transaction hex string decoding failure.") from None
        for txin in tx.vin:
            op = (txin.prevout.hash, txin.prevout.n)
            if op in spent:
                raise WalletError(RPC_INVALID_PARAMETER, "Transaction(s) are spending the same "
                                  "output more than once")
            if op in new_utxos:
                changes -= new_utxos.pop(op)
            else:
                if not _find_coin(call, *op):
                    raise WalletError(RPC_INVALID_PARAMETER, "One or more transaction inputs "
                                      "are missing or have been spent already")
                parent = w.txs.get(op[0])
                if parent is not None and op[1] in w.credits[parent.txid]:
                    changes -= parent.tx.vout[op[1]].value  # Core's GetDebit
            spent.add(op)
        for n, out in enumerate(tx.vout):
            value = out.value if w.is_mine(out.script_pubkey) else 0
            new_utxos[(tx.txid, n)] = value
            changes += value
    return {"balance_change": to_btc(changes)}


# -- importprunedfunds / removeprunedfunds ---------------------------------------------------


@method("importprunedfunds", Param("rawtransaction", STR), Param("txoutproof", STR))
def importprunedfunds(call: Call, rawtransaction, txoutproof):
    """Imports funds without rescan. Corresponding address or script must previously be
    included in wallet. Aimed towards pruned wallets. The end-user is responsible to import
    additional transactions that subsequently spend the imported outputs or rescan after
    the point in the blockchain the transaction is included."""
    w = call.w
    try:
        tx = decode_hex_tx(rawtransaction)
    except WalletError:
        raise WalletError(RPC_DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has "
                          "at least one input.") from None
    if len(txoutproof) % 2 or any(c not in "0123456789abcdefABCDEF" for c in txoutproof):
        raise WalletError(RPC_INVALID_PARAMETER,
                          f"proof must be hexadecimal string (not '{txoutproof}')")
    try:
        mb = MerkleBlock.from_bytes(bytes.fromhex(txoutproof))
    except (DeserializationError, ValueError):
        raise WalletError(RPC_MISC_ERROR, "DataStream::read(): end of data: iostream "
                          "error") from None
    found = mb.tree.extract_matches()
    if found is None or found[0] != mb.header.merkle_root:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Something wrong with merkleblock")
    _root, matches, positions = found
    block = _header_in_chain(call, w, mb.header)
    if tx.txid not in matches:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction given doesn't exist in proof")
    pos = positions[matches.index(tx.txid)]
    if not any(w.is_mine(out.script_pubkey) for out in tx.vout):
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "No addresses in wallet correspond to "
                          "included transaction")
    w.add_tx(tx, height=block["height"], block_hash=mb.header.hash,
             block_time=mb.header.time, block_pos=pos)
    return None


def _header_in_chain(call: Call, w: Wallet, header: BlockHeader) -> dict:
    """Core's findAncestorByHash(last processed block, the proof's block): the block is in
    the active chain at or below the wallet's last processed block."""
    try:
        info = call.node.call("getblockheader", header.hash[::-1].hex(), True)
    except NodeRPCError:
        info = None
    if (info is None or info.get("confirmations", -1) < 1
            or info["height"] > w.tip_height):
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found in chain")
    return info


@method("removeprunedfunds", Param("txid", STR))
def removeprunedfunds(call: Call, txid):
    """Deletes the specified transaction from the wallet. Meant for use with pruned
    wallets and as a companion to importprunedfunds. This will affect wallet balances."""
    w = call.w
    if not isinstance(txid, str):
        raise WalletError(RPC_TYPE_ERROR, "txid must be a string")
    h = parse_txid(txid)
    if h not in w.txs:
        raise WalletError(RPC_WALLET_ERROR,
                          f"Transaction {h[::-1].hex()} does not belong to this wallet")
    w.remove_tx(h)
    return None
