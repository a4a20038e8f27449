"""Raw transaction RPCs: getrawtransaction, decoderawtransaction, decodescript,
createrawtransaction."""

from __future__ import annotations

from decimal import Decimal

from consensus.block import Block
from consensus.hashes import hash160, sha256
from consensus.script.opcodes import OP_CHECKSIGADD, is_op_success
from consensus.script.script import has_valid_ops, is_unspendable, iter_ops
from consensus.script.standard import (
    MULTISIG,
    NONSTANDARD,
    PUBKEY,
    PUBKEYHASH,
    WITNESS_V0_KEYHASH,
    WITNESS_V0_SCRIPTHASH,
    nulldata_script,
    p2sh_script,
    p2wpkh_script,
    p2wsh_script,
    solver,
)
from consensus.serialize import DeserializationError
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.policy import MAX_BIP125_RBF_SEQUENCE, signals_rbf
from node.rpc.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPCError,
)
from node.rpc.params import amount, as_int, parse_hash, parse_hex
from node.rpc.registry import AMOUNT, ANY, ARR, BOOL, NUM, STR, Arg, json_type, rpc
from node.rpc.txjson import script_pubkey_json, tx_json
from node.store.blockfiles import BlockFileError
from wallet.address import address_to_script, script_to_address
from wallet.amounts import json_integer
from wallet.descriptors import SigningProvider, infer_descriptor


def parse_verbosity(value, default: int, allow_bool: bool = True) -> int:
    """Core's ParseVerbosity: a bool (where allowed) means 1 or 0, else a JSON integer."""
    if value is None:
        return default
    if isinstance(value, bool):
        if not allow_bool:
            raise RPCError(RPC_TYPE_ERROR, "Verbosity was boolean but only integer allowed")
        return int(value)
    if not isinstance(value, (int, float, Decimal)):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       "expected type number")
    try:
        return json_integer(value)
    except ValueError:
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       "expected type number") from None


def decode_tx(hexstr: str, try_no_witness: bool = True, try_witness: bool = True) -> Transaction:
    """Core's DecodeHexTx: accept the serialization that parses completely, preferring the
    extended (witness) form when both do."""
    if not isinstance(hexstr, str):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(hexstr)} is not of "
                       "expected type string")
    try:
        data = bytes.fromhex(hexstr)
    except ValueError:
        raise RPCError(RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
    candidates = []
    if try_witness:
        candidates.append(True)
    if try_no_witness:
        candidates.append(False)
    for allow_witness in candidates:
        try:
            return Transaction.from_bytes(data, allow_witness)
        except DeserializationError:
            continue
    raise RPCError(RPC_DESERIALIZATION_ERROR, "TX decode failed")


@rpc("getrawtransaction", "Rawtransactions",
     [Arg("txid", STR, help="The transaction id"),
      Arg("verbosity", ANY, False, 0,
          "0 for hex-encoded data, 1 for a JSON object, and 2 for JSON object with fee and "
          "prevout", aliases=("verbose",)),
      Arg("blockhash", STR, False, None, "The block in which to look for the transaction")],
     description="By default, this call only returns a transaction if it is in the mempool. "
                 "If -txindex is enabled and no blockhash argument is passed, it will return "
                 "the transaction if it is in a block in the blockchain.\n\nHint: Use "
                 "gettransaction for wallet transactions.\n\nIf verbosity is 0 or omitted, "
                 "returns the serialized transaction as a hex-encoded string.\nIf verbosity is "
                 "1, returns a JSON Object with information about the transaction.\nIf "
                 "verbosity is 2, returns a JSON Object with information about the transaction, "
                 "including fee and prevout information.")
def getrawtransaction(node, txid, verbosity, blockhash):
    h = parse_hash(txid, "parameter 1")
    v = parse_verbosity(verbosity, 0)
    chain = node.chain
    if h == chain.params.genesis.txs[0].txid:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       "The genesis block coinbase is not considered an ordinary transaction "
                       "and cannot be retrieved")
    entry = None
    if blockhash is not None:
        entry = chain.get(parse_hash(blockhash, "parameter 3"))
        if entry is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
    tx, found_in, undo = find_tx(node, h, entry)
    if tx is None:
        if entry is not None:
            if not entry.have_data:
                raise RPCError(RPC_MISC_ERROR, "Block not available")
            msg = "No such transaction found in the provided block."
        elif node.txindex is None:
            msg = ("No such mempool transaction. Use -txindex or provide a block hash to enable "
                   "blockchain transaction queries.")
        else:
            msg = "No such mempool or blockchain transaction."
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       msg + " Use gettransaction for wallet transactions.")
    if v <= 0:
        return tx.serialize().hex()
    out: dict = {}
    if entry is not None:
        out["in_active_chain"] = chain.in_active_chain(entry)
    out.update(tx_json(tx, node.params, True, undo if v >= 2 else None, v >= 2))
    if found_in is not None:
        out["blockhash"] = found_in.hash_hex()
        if chain.in_active_chain(found_in):
            out["confirmations"] = chain.height - found_in.height + 1
            out["time"] = found_in.time
            out["blocktime"] = found_in.time
        else:
            out["confirmations"] = 0
    return out


def find_tx(node, txid: bytes, entry):
    """(tx, block entry or None for the mempool, spent coins or None)."""
    chain = node.chain
    mempool = getattr(node, "mempool", None)
    block = None
    if entry is None and mempool is not None:
        tx = mempool.get(txid)
        if tx is not None:
            return tx, None, None
    if entry is None and node.txindex is not None:
        pos = node.txindex.lookup(txid)
        if pos is not None:
            file, data_pos, _ = pos
            try:
                block = Block.from_bytes(chain.files.read_block(file, data_pos))
            except (BlockFileError, DeserializationError):
                return None, None, None
            entry = chain.get(block.hash)
    if entry is None or not entry.have_data:
        return None, None, None
    try:
        block = block or chain.read_block(entry)
    except BlockFileError:
        return None, None, None
    for i, tx in enumerate(block.txs):
        if tx.txid == txid:
            undo = None
            if i > 0 and entry.undo_pos and entry.prev is not None:
                try:
                    undo = chain.read_undo(entry)[i - 1]
                except (BlockFileError, DeserializationError):
                    undo = None
            return tx, entry, undo
    return None, None, None


@rpc("decoderawtransaction", "Rawtransactions",
     [Arg("hexstring", STR, help="The transaction hex string"),
      Arg("iswitness", BOOL, False, None,
          "Whether the transaction hex is a serialized witness transaction. If iswitness is "
          "not present, heuristic tests will be used in decoding.")],
     description="Return a JSON object representing the serialized, hex-encoded transaction.",
     inline=True)
def decoderawtransaction(node, hexstring, iswitness):
    try_witness = iswitness is None or bool(iswitness)
    try_no_witness = iswitness is None or not iswitness
    tx = decode_tx(hexstring, try_no_witness, try_witness)
    return tx_json(tx, node.params, include_hex=False)


def _can_wrap(script: bytes, kind: str) -> bool:
    """decodescript's can_wrap: a type that may sit inside P2SH, with valid opcodes, not
    unspendable, and no tapscript-only opcode."""
    if kind not in (MULTISIG, NONSTANDARD, PUBKEY, PUBKEYHASH, WITNESS_V0_KEYHASH,
                    WITNESS_V0_SCRIPTHASH):
        return False
    if not has_valid_ops(script) or is_unspendable(script):
        return False
    return not any(op == OP_CHECKSIGADD or is_op_success(op) for op, _, _ in iter_ops(script))


def _compressed(key: bytes) -> bool:
    return len(key) == 33


@rpc("decodescript", "Rawtransactions", [Arg("hexstring", STR, help="the hex-encoded script")],
     description="Decode a hex-encoded script.", inline=True)
def decodescript(node, hexstring):
    script = parse_hex(hexstring, "argument") if hexstring else b""
    params = node.params
    out = script_pubkey_json(script, params, include_hex=False)
    kind, sols = solver(script)
    if _can_wrap(script, kind):
        out["p2sh"] = script_to_address(p2sh_script(hash160(script)), params)
        wrap_wsh = kind in (NONSTANDARD, PUBKEYHASH) or (
            kind in (MULTISIG, PUBKEY) and all(len(s) == 1 or _compressed(s) for s in sols)
        )
        if wrap_wsh:
            if kind == PUBKEY:
                seg = p2wpkh_script(hash160(sols[0]))
            elif kind == PUBKEYHASH:
                seg = p2wpkh_script(sols[0])
            else:
                seg = p2wsh_script(sha256(script))
            sr = script_pubkey_json(seg, params)
            # Core infers the segwit descriptor knowing the script it wraps.
            provider = SigningProvider()
            provider.scripts[hash160(script)] = script
            sr["desc"] = infer_descriptor(seg, params, provider)
            sr["p2sh-segwit"] = script_to_address(p2sh_script(hash160(seg)), params)
            out["segwit"] = sr
    return out


@rpc("createrawtransaction", "Rawtransactions",
     [Arg("inputs", ARR, help='The inputs: [{"txid":"hex","vout":n,"sequence":n},...]'),
      Arg("outputs", ANY,
          help='The outputs: [{"address":amount,...},{"data":"hex"},...] (an object is also '
               'accepted)'),
      Arg("locktime", NUM, False, 0, "Raw locktime. Non-0 value also locktime-activates inputs"),
      Arg("replaceable", BOOL, False, None,
          "Marks this transaction as BIP125-replaceable. Allows this transaction to be "
          "replaced by a transaction with higher fees. If provided, it is an error if "
          "explicit sequence numbers are incompatible.", default_hint="true"),
      Arg("version", NUM, False, 2, "Transaction version")],
     description="Create a transaction spending the given inputs and creating new outputs.\n"
                 "Outputs can be addresses or data.\nReturns hex-encoded raw transaction.\n"
                 "Note that the transaction's inputs are not signed, and\nit is not stored in "
                 "the wallet or transmitted to the network.",
     inline=True)
def createrawtransaction(node, inputs, outputs, locktime, replaceable, version):
    tx = construct_transaction(node.params, inputs, outputs, locktime, replaceable, version)
    return tx.serialize().hex()


def _is_json_number(v) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def _json_int(v) -> int:
    """UniValue::getInt: a JSON number that must be an integer."""
    try:
        return json_integer(v)
    except ValueError as err:
        raise RPCError(RPC_TYPE_ERROR, str(err)) from None


def json_text(v) -> str:
    """UniValue::getValStr: the text of a scalar (a string's own text)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def construct_transaction(params, inputs, outputs, locktime, replaceable,
                          version=2) -> Transaction:
    """ConstructTransaction (rpc/rawtransaction_util.cpp), with Core's error messages.
    `replaceable` None means "not given": inputs default to signalling, but explicit
    sequence numbers are not checked against it."""
    lt = as_int(locktime, "locktime") if locktime is not None else 0
    if lt < 0 or lt > 0xFFFFFFFF:
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, locktime out of range")
    ver = as_int(version, "version") if version is not None else 2
    if not 1 <= ver <= 3:
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, version out of range(1~3)")
    rbf = replaceable is not False
    vin = []
    for item in inputs:
        if not isinstance(item, dict):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(item)} is not of "
                           "expected type object")
        txid = item.get("txid")
        if not isinstance(txid, str):
            raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(txid)} is not of "
                           "expected type string")
        h = parse_hash(txid, "txid")
        vout = item.get("vout")
        if not _is_json_number(vout):
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, missing vout key")
        n = _json_int(vout)
        if n < 0:
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, vout cannot be negative")
        if rbf:
            seq = MAX_BIP125_RBF_SEQUENCE
        elif lt:
            seq = 0xFFFFFFFE
        else:
            seq = 0xFFFFFFFF
        s = item.get("sequence")
        if _is_json_number(s):  # anything else is ignored, as Core does
            s = _json_int(s)
            if s < 0 or s > 0xFFFFFFFF:
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, sequence number is out of range")
            seq = s
        vin.append(TxIn(OutPoint(h, n), b"", seq))
    pairs: list[tuple[str, object]] = []
    if isinstance(outputs, dict):
        pairs = list(getattr(outputs, "pairs", None) or outputs.items())
    elif isinstance(outputs, list):
        for o in outputs:
            if not isinstance(o, dict):
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, key-value pair not an object as expected")
            if len(o) != 1:
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, key-value pair must contain exactly one key")
            pairs.extend(o.items())
    elif outputs is None:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Invalid parameter, arguments 1 and 2 must be non-null")
    else:
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(outputs)} is not of "
                       "expected type array")
    vout = []
    seen_addr: set[str] = set()
    has_data = False
    for key, value in pairs:
        if key == "data":
            if has_data:
                raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter, duplicate key: data")
            has_data = True
            data = parse_hex(value if isinstance(value, str) else json_text(value), "Data")
            vout.append(TxOut(0, nulldata_script(data)))
            continue
        try:
            spk = address_to_script(key, params)
        except ValueError:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           f"Invalid Bitcoin address: {key}") from None
        if key in seen_addr:
            raise RPCError(RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated address: {key}")
        seen_addr.add(key)
        vout.append(TxOut(amount(value), spk))
    # Core checks only an explicit replaceable=true, and only that some input signals.
    if replaceable is True and vin and not signals_rbf(vin):
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Invalid parameter combination: Sequence number(s) contradict "
                       "replaceable option")
    return Transaction(ver, vin, vout, lt)



# -- submitpackage ---------------------------------------------------------------------------



def _child_with_parents_tree(txs: list[Transaction]) -> bool:
    """Core's IsChildWithParentsTree: the last transaction spends an output of every other one,
    and none of those (the parents) spends another."""
    if len(txs) < 2:
        return False
    child = txs[-1]
    spent_by_child = {i.prevout.hash for i in child.vin}
    parents = {tx.txid for tx in txs[:-1]}
    if not parents <= spent_by_child:
        return False
    return not any(i.prevout.hash in parents for tx in txs[:-1] for i in tx.vin)


@rpc("submitpackage", "Rawtransactions",
     [Arg("package", ARR, help="An array of raw transactions.\nThe package must solely consist "
          "of a child and its parents. None of the parents may depend on each other.\nThe "
          "package must be topologically sorted, with the child being the last element in the "
          "array."),
      Arg("maxfeerate", AMOUNT, False, None,
          "Reject transactions whose fee rate is higher than the specified value, expressed "
          "in BTC/kvB.\nFee rates larger than 1BTC/kvB are rejected.\nSet to 0 to accept any "
          "fee rate.", default_hint="\"0.10\""),
      Arg("maxburnamount", AMOUNT, False, None,
          "Reject transactions with provably unspendable outputs (e.g. 'datacarrier' outputs "
          "that use the OP_RETURN opcode) greater than the specified value, expressed in BTC.",
          default_hint="\"0.00\"")],
     description="Submit a package of raw transactions (serialized, hex-encoded) to local "
                 "node.\nThe package will be validated according to consensus and mempool "
                 "policy rules. If any transaction passes, it will be accepted to mempool.")
def submitpackage(node, package, maxfeerate, maxburnamount):
    from node.rpc.errors import RPC_TRANSACTION_ERROR
    from node.rpc.jsonutil import btc
    from node.rpc.mempool import DEFAULT_MAX_RAW_TX_FEE_RATE, _fee_rate_arg

    if not isinstance(package, list):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(package)} is not of "
                       "expected type array")
    from node.policy import MAX_PACKAGE_COUNT

    if not 2 <= len(package) <= MAX_PACKAGE_COUNT:
        raise RPCError(RPC_INVALID_PARAMETER, "Array must contain between 2 and "
                       f"{MAX_PACKAGE_COUNT} transactions.")
    max_rate = _fee_rate_arg(maxfeerate, DEFAULT_MAX_RAW_TX_FEE_RATE)
    max_burn = amount(maxburnamount, "maxburnamount") if maxburnamount is not None else 0
    txs = []
    for raw in package:
        try:
            tx = decode_tx(raw)
        except RPCError as err:
            if err.code != RPC_DESERIALIZATION_ERROR:
                raise
            raise RPCError(RPC_DESERIALIZATION_ERROR, f"TX decode failed: {raw} Make sure the "
                           "tx has at least one input.") from None
        for out in tx.vout:
            spk = out.script_pubkey
            if (is_unspendable(spk) or not has_valid_ops(spk)) and out.value > max_burn:
                raise RPCError(RPC_TRANSACTION_ERROR, "Unspendable output exceeds maximum "
                               "configured by user (maxburnamount)")
        txs.append(tx)
    if not _child_with_parents_tree(txs):
        raise RPCError(RPC_TRANSACTION_ERROR, "package topology disallowed. not "
                       "child-with-parents or parents depend on each other.")

    mempool = node.mempool
    res = mempool.accept_package(txs, max_rate or None)
    results: dict[bytes, dict] = {}
    replaced: set[str] = set()
    for tx in txs:
        r = res.results.get(tx.wtxid)
        if r is None:
            continue  # (as Core: a transaction left unevaluated has no entry)
        out: dict = {"txid": tx.txid_hex()}
        if r.kind == "other-witness":
            out["other-wtxid"] = r.other_wtxid[::-1].hex()
        elif r.kind == "invalid":
            err = r.error  # (Core's state text: reason, then details)
            if err.reason == "max-fee-exceeded":
                out["error"] = "max feerate exceeded"
            else:
                out["error"] = f"{err.reason}, {err.debug}" if err.debug else err.reason
        else:
            out["vsize"] = r.vsize
            out["fees"] = {"base": btc(r.fee)}
            if r.kind == "valid":
                # (not for one already in the mempool: how it got there is not known)
                out["fees"]["effective-feerate"] = btc(r.rate)
                out["fees"]["effective-includes"] = [w[::-1].hex() for w in r.includes]
                replaced.update(t.txid_hex() for t in r.replaced)
        results[tx.wtxid] = out
    package_msg = res.error
    # Every package transaction now in the mempool is (re)announced; those accepted here
    # also wait in the unbroadcast set until a peer asks for them.
    announce: list[bytes] = []
    with node.chain.lock:
        for tx in txs:
            r = res.results.get(tx.wtxid)
            if tx.txid in mempool:
                announce.append(tx.txid)
                if r is not None and r.kind == "valid":
                    mempool.unbroadcast.add(tx.txid)
    if announce and node.p2p is not None:
        node.p2p.relay.announce_threadsafe(announce)
    return {
        "package_msg": package_msg or "success",
        # (as Core: a transaction left unevaluated has no entry)
        "tx-results": {tx.wtxid_hex(): results[tx.wtxid] for tx in txs if tx.wtxid in results},
        "replaced-transactions": sorted(replaced),
    }
