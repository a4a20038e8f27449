"""Mining RPCs: generatetoaddress, generatetodescriptor, generateblock, getblocktemplate
(BIP22/BIP23 with the segwit rule and long polling), submitblock (BIP22 result strings),
getmininginfo, getnetworkhashps, prioritisetransaction, getprioritisedtransactions."""

from __future__ import annotations

import time

from consensus.block import Block, witness_commitment_index
from consensus.checks import MAX_BLOCK_SERIALIZED_SIZE, MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT
from consensus.errors import ValidationError
from consensus.pow import compact_to_target, next_work_required
from consensus.serialize import DeserializationError
from node import mining, policy
from node.rpc.errors import (
    RPC_CLIENT_NOT_CONNECTED,
    RPC_DESERIALIZATION_ERROR,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc, double
from node.rpc.params import as_int, parse_hash, parse_hex
from node.rpc.rawtransactions import decode_tx
from node.rpc.registry import ARR, BOOL, NUM, OBJ, STR, Arg, rpc
from node.rpc.txjson import difficulty
from node.store.blockindex import VALID_SCRIPTS
from wallet.address import address_to_script
from wallet.descriptors import (
    DescriptorError,
    DescriptorRangeError,
    mining_script,
    parse_descriptor,
)

DEFAULT_MAX_TRIES = 1_000_000
LONGPOLL_MEMPOOL_WAIT = 60.0


def _mine(node, script_pubkey: bytes, nblocks: int, max_tries: int) -> list[str]:
    """Core's generateBlocks: `max_tries` is one budget of nonces for all the blocks."""
    hashes = []
    for _ in range(nblocks):
        if node.shutting_down:
            break
        tmpl = mining.create_template(node.chain, node.mempool, script_pubkey)
        block = tmpl.block
        if not mining.solve(block, node.params, max_tries):
            break  # maxtries exhausted: return what was mined (as Core does)
        max_tries -= block.header.nonce + 1
        try:
            node.chain.process_block(block)
        except ValidationError as err:
            raise RPCError(RPC_INTERNAL_ERROR,
                           f"ProcessNewBlock, block not accepted: {err.reason}") from None
        hashes.append(block.hash_hex())
        if getattr(node, "p2p", None) is not None:  # (Core's LimitValidationInterfaceQueue)
            node.p2p.limit_validation_queue()
    return hashes


def _count(value, name: str) -> int:
    return max(0, as_int(value, name))  # Core simply mines nothing for a negative count


@rpc("generate", "Hidden", description="has been replaced by the -generate cli option. "
     "Refer to -help for more information.", inline=True)
def generate(node):
    raise RPCError(RPC_METHOD_NOT_FOUND, "generate\n\nhas been replaced by the -generate cli "
                   "option. Refer to -help for more information.\n")


@rpc("generatetoaddress", "Generating",
     [Arg("nblocks", NUM, help="How many blocks are generated."),
      Arg("address", STR, help="The address to send the newly generated bitcoin to."),
      Arg("maxtries", NUM, False, DEFAULT_MAX_TRIES, "How many iterations to try.")],
     description="Mine to a specified address and return the block hashes.",
     result='[ "hex", ... ]    (json array of string) hashes of blocks generated',
     examples=["generatetoaddress 11 \"myaddress\""])
def generatetoaddress(node, nblocks, address, maxtries):
    try:
        spk = address_to_script(address, node.params)
    except ValueError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None
    return _mine(node, spk, _count(nblocks, "nblocks"), _count(maxtries, "maxtries"))


@rpc("generatetodescriptor", "Generating",
     [Arg("num_blocks", NUM, help="How many blocks are generated."),
      Arg("descriptor", STR, help="The descriptor to send the newly generated bitcoin to."),
      Arg("maxtries", NUM, False, DEFAULT_MAX_TRIES, "How many iterations to try.")],
     description="Mine to a specified descriptor and return the block hashes.")
def generatetodescriptor(node, num_blocks, descriptor, maxtries):
    try:
        spk = mining_script(descriptor, node.params)
    except DescriptorRangeError as err:
        raise RPCError(RPC_INVALID_PARAMETER, str(err)) from None
    except DescriptorError as err:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, str(err)) from None
    return _mine(node, spk, _count(num_blocks, "num_blocks"), _count(maxtries, "maxtries"))


def _output_script(node, output: str) -> bytes:
    try:
        return address_to_script(output, node.params)
    except ValueError:
        pass
    try:
        parse_descriptor(output, node.params)
    except DescriptorError:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor") from None
    try:  # a descriptor: Core's errors for one that gives no single script
        return mining_script(output, node.params)
    except DescriptorRangeError as err:
        raise RPCError(RPC_INVALID_PARAMETER, str(err)) from None
    except DescriptorError as err:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, str(err)) from None


@rpc("generateblock", "Generating",
     [Arg("output", STR, help="The address or descriptor to send the newly generated bitcoin "
                              "to."),
      Arg("transactions", ARR, help="An array of hex strings which are either txids or raw "
                                    "transactions.\nTxids must reference transactions currently "
                                    "in the mempool.\nAll transactions must be valid and in "
                                    "valid order, otherwise the block will be rejected."),
      Arg("submit", BOOL, False, True, "Whether to submit the block before the RPC call "
                                       "returns or to return it as hex.")],
     description="Mine a set of ordered transactions to a specified address or descriptor "
                 "and return the block hash.")
def generateblock(node, output, transactions, submit):
    spk = _output_script(node, output)
    chain = node.chain
    with chain.lock:
        txs = []
        for item in transactions:
            if not isinstance(item, str):
                raise RPCError(RPC_INVALID_PARAMETER, "transactions must be strings")
            if len(item) == 64:
                try:
                    h = parse_hash(item, "txid")
                except RPCError:
                    h = None
                if h is not None:
                    tx = node.mempool.get(h)
                    if tx is None:
                        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                                       f"Transaction {item} not in mempool.")
                    txs.append(tx)
                    continue
            try:
                txs.append(decode_tx(item))
            except RPCError:
                raise RPCError(RPC_DESERIALIZATION_ERROR,
                               f"Transaction decode failed for {item}. Make sure the tx has at "
                               "least one input.") from None
        # As Core, the coinbase claims the subsidy only: these transactions' fees are not
        # collected (they may not even be known, for raw transactions).
        tmpl = mining.create_template(chain, node.mempool, spk, txs=txs)
        block = tmpl.block
        try:
            chain.test_block_validity(block)
        except ValidationError as err:
            raise RPCError(RPC_VERIFY_ERROR, f"TestBlockValidity failed: {err.reason}") from None
    if not mining.solve(block, node.params, DEFAULT_MAX_TRIES):
        raise RPCError(RPC_MISC_ERROR, "Failed to make block.")
    if not submit:
        return {"hash": block.hash_hex(), "hex": block.serialize().hex()}
    try:
        chain.process_block(block)
    except ValidationError as err:
        raise RPCError(RPC_INTERNAL_ERROR,
                       f"ProcessNewBlock, block not accepted: {err.reason}") from None
    return {"hash": block.hash_hex()}


@rpc("submitblock", "Mining",
     [Arg("hexdata", STR, help="the hex-encoded block data to submit"),
      Arg("dummy", STR, False, None, "dummy value, for compatibility with BIP22. This value is "
                                     "ignored.")],
     description="Attempts to submit new block to network.\nSee "
                 "https://en.bitcoin.it/wiki/BIP_0022 for full specification.",
     result="null or a string: the BIP22 rejection reason, \"duplicate\", "
            "\"duplicate-invalid\" or \"inconclusive\"")
def submitblock(node, hexdata, dummy):
    try:
        block = Block.from_bytes(parse_hex(hexdata, "hexdata"))
    except (DeserializationError, RPCError):
        raise RPCError(RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
    if not block.txs or not block.txs[0].is_coinbase():
        raise RPCError(RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    chain = node.chain
    e = chain.get(block.hash)
    if e is not None:
        if e.is_valid(VALID_SCRIPTS):
            return "duplicate"
        if e.failed:
            return "duplicate-invalid"
    # UpdateUncommittedBlockStructures: a committed block may omit the default witness nonce.
    if witness_commitment_index(block) >= 0 and not block.txs[0].vin[0].witness:
        block.txs[0].vin[0].witness = [b"\x00" * 32]
        block.txs[0].rehash()
        block.rehash()  # sizes and weight changed with the witness
    try:
        e = chain.process_block(block)
    except ValidationError as err:
        return err.reason  # BIP22's result string
    if chain.in_active_chain(e) or e.is_valid(VALID_SCRIPTS):
        return None
    return "inconclusive"


@rpc("getblocktemplate", "Mining",
     [Arg("template_request", OBJ, False, None,
          'Format of the template: {"mode": "template"|"proposal", "rules": ["segwit", ...], '
          '"longpollid": "..."} (BIP22, BIP23).')],
     description="If the request parameters include a 'mode' key, that is used to explicitly "
                 "select between the default 'template' request or a 'proposal'.\nIt returns "
                 "data needed to construct a block to work on.\nFor full specification, see "
                 "BIPs 22, 23, 9, and 145.")
def getblocktemplate(node, template_request):
    req = template_request or {}
    mode = req.get("mode", "template")
    chain = node.chain
    if mode == "proposal":
        data = req.get("data")
        if not isinstance(data, str):
            raise RPCError(RPC_TYPE_ERROR, "Missing data String key for proposal")
        try:
            block = Block.from_bytes(bytes.fromhex(data))
        except (ValueError, DeserializationError):
            raise RPCError(RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
        e = chain.get(block.hash)
        if e is not None:
            if e.is_valid(VALID_SCRIPTS):
                return "duplicate"
            return "duplicate-invalid" if e.failed else "duplicate-inconclusive"
        if block.header.prev_hash != chain.tip.hash:
            return "inconclusive-not-best-prevblk"
        try:
            chain.test_block_validity(block, check_pow=False)
        except ValidationError as err:
            return err.reason
        return None
    if mode != "template":
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid mode")
    rules = req.get("rules")
    if not isinstance(rules, list) or "segwit" not in rules:
        raise RPCError(RPC_INVALID_PARAMETER, "getblocktemplate must be called with the segwit "
                       'rule set (call with {"rules": ["segwit"]})')
    if node.params.name == "main" and getattr(node, "connected_peers", 0) == 0:
        raise RPCError(RPC_CLIENT_NOT_CONNECTED, "minibtc is not connected!")
    lp = req.get("longpollid")
    if isinstance(lp, str) and len(lp) >= 64:
        _long_poll(node, lp)
    m = node.mempool
    with chain.lock:  # one lock hold: the template and its tip fields describe one tip
        tmpl = mining.create_template(chain, m, b"\x51")  # the coinbase is the miner's
        block = tmpl.block
        tip = chain.tip
        index = {tx.txid: i + 1 for i, tx in enumerate(block.txs[1:])}
        txs = []
        for i, tx in enumerate(block.txs[1:]):
            depends = sorted(index[p] for p in {x.prevout.hash for x in tx.vin} if p in index)
            txs.append({
                "data": tx.serialize().hex(),
                "txid": tx.txid_hex(),
                "hash": tx.wtxid_hex(),
                "depends": depends,
                "fee": tmpl.fees[i + 1],
                "sigops": tmpl.sigops[i + 1],
                "weight": tx.weight,
            })
        pos = witness_commitment_index(block)
        out = {
            "capabilities": ["proposal"],
            "version": block.header.version,
            "rules": ["csv", "!segwit", "taproot"],
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": tip.hash_hex(),
            "transactions": txs,
            "coinbaseaux": {},
            "coinbasevalue": block.txs[0].vout[0].value,
            "longpollid": tip.hash_hex() + str(m.template_version),
            "target": f"{compact_to_target(block.header.bits)[0]:064x}",
            "mintime": tip.median_time_past() + 1,
            "mutable": ["time", "transactions", "prevblock"],
            "noncerange": "00000000ffffffff",
            "sigoplimit": MAX_BLOCK_SIGOPS_COST,
            "sizelimit": MAX_BLOCK_SERIALIZED_SIZE,
            "weightlimit": MAX_BLOCK_WEIGHT,
            "curtime": block.header.time,
            "bits": f"{block.header.bits:08x}",
            "height": tmpl.height,
        }
        if pos >= 0:
            out["default_witness_commitment"] = block.txs[0].vout[pos].script_pubkey.hex()
        return out


def _long_poll(node, lpid: str) -> None:
    """Wait until the tip changes, or (after a minute) the mempool has changed (BIP22)."""
    watched = lpid[:64]
    try:
        last_updated = int(lpid[64:])
    except ValueError:
        last_updated = -1
    start = time.monotonic()
    cond = node.tip_changed
    with cond:
        while not node.shutting_down:
            if node.chain.published.hash_hex() != watched:
                return
            if (time.monotonic() - start > LONGPOLL_MEMPOOL_WAIT
                    and node.mempool.template_version != last_updated):
                return
            cond.wait(timeout=1.0)  # woken by every new tip


@rpc("getmininginfo", "Mining",
     description="Returns a json object containing mining-related information.")
def getmininginfo(node):
    chain = node.chain
    with chain.lock:
        tip = chain.tip
        out: dict = {"blocks": tip.height}
        if mining.last_block_stats:
            out["currentblockweight"] = mining.last_block_stats["weight"]
            out["currentblocktx"] = mining.last_block_stats["txs"]
        next_bits = next_work_required(tip, mining.block_time(chain), node.params)
        out.update({
            "bits": f"{tip.bits:08x}",
            "difficulty": double(difficulty(tip.bits)),
            "target": f"{compact_to_target(tip.bits)[0]:064x}",
            "networkhashps": double(network_hashps(chain, 120, -1)),
            "pooledtx": len(node.mempool),
            "blockmintxfee": btc(policy.DEFAULT_BLOCK_MIN_TX_FEE),
            "chain": node.params.name,
            "next": {
                "height": tip.height + 1,
                "bits": f"{next_bits:08x}",
                "difficulty": double(difficulty(next_bits)),
                "target": f"{compact_to_target(next_bits)[0]:064x}",
            },
            "warnings": [],
        })
        return out


def network_hashps(chain, lookup: int, height: int) -> float:
    """Core's GetNetworkHashPS: work done over the time spanned by the last `lookup` blocks."""
    if lookup < -1 or lookup == 0:
        raise RPCError(RPC_INVALID_PARAMETER,
                       "Invalid nblocks. Must be a positive number or -1.")
    if height > chain.height or height < -1:
        raise RPCError(RPC_INVALID_PARAMETER, "Block does not exist at specified height")
    pb = chain.tip if height < 0 else chain.active[height]
    if pb is None or pb.height == 0:
        return 0.0
    if lookup <= 0:  # since the last difficulty change
        interval = chain.params.difficulty_adjustment_interval
        lookup = pb.height % interval + 1
    lookup = min(lookup, pb.height)
    p0 = pb
    min_time = max_time = pb.time
    for _ in range(lookup):
        p0 = p0.prev
        min_time = min(min_time, p0.time)
        max_time = max(max_time, p0.time)
    if min_time == max_time:
        return 0.0
    return (pb.chain_work - p0.chain_work) / (max_time - min_time)


@rpc("getnetworkhashps", "Mining",
     [Arg("nblocks", NUM, False, 120, "The number of previous blocks to calculate estimate from, "
                                      "or -1 for blocks since last difficulty change."),
      Arg("height", NUM, False, -1, "To estimate at the time of the given height.")],
     description="Returns the estimated network hashes per second based on the last n "
                 "blocks.\nPass in [blocks] to override # of blocks, -1 specifies since last "
                 "difficulty change.\nPass in [height] to estimate the network speed at the "
                 "time when a certain block was found.")
def getnetworkhashps(node, nblocks, height):
    with node.chain.lock:
        return double(network_hashps(node.chain, as_int(nblocks, "nblocks"),
                                     as_int(height, "height")))


@rpc("prioritisetransaction", "Mining",
     [Arg("txid", STR, help="The transaction id."),
      Arg("dummy", NUM, False, None, "API-Compatibility for previous API. Must be zero or null."),
      Arg("fee_delta", NUM, help="The fee value (in satoshis) to add (or subtract, if "
                                 "negative).\nNote, that this value is not a fee rate. It is a "
                                 "value to modify absolute fee of the TX.")],
     description="Accepts the transaction into mined blocks at a higher (or lower) priority")
def prioritisetransaction(node, txid, dummy, fee_delta):
    h = parse_hash(txid, "txid")
    if dummy is not None and as_int(dummy, "dummy") != 0:
        raise RPCError(RPC_INVALID_PARAMETER, "Priority is no longer supported, dummy argument "
                       "to prioritisetransaction must be 0.")
    node.mempool.prioritise(h, as_int(fee_delta, "fee_delta"))
    return True



@rpc("getprioritisedtransactions", "Mining",
     description="Returns a map of all user-created (see prioritisetransaction) fee deltas by "
                 "txid, and whether the tx is present in mempool.",
     result='{"<transactionid>": {"fee_delta": n, "in_mempool": bool, "modified_fee": n}}')
def getprioritisedtransactions(node):
    m = node.mempool
    out = {}
    with node.chain.lock:
        for t, delta in m.deltas.items():
            e = m.entries.get(t)
            item = {"fee_delta": delta, "in_mempool": e is not None}
            if e is not None:
                item["modified_fee"] = e.modified_fee
            out[t[::-1].hex()] = item
    return out
