"""Utility RPCs: validateaddress, getdescriptorinfo, deriveaddresses, and scantxoutset."""

from __future__ import annotations

import threading

from node.rpc.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc
from node.rpc.params import as_int
from node.rpc.registry import ARR, RANGE, STR, Arg, rpc
from wallet.address import is_valid_address, validate_address
from wallet.descriptors import (
    DescriptorError,
    DescriptorRangeError,
    ScanObject,
    derive_addresses,
    descriptor_info,
)


@rpc("validateaddress", "Util", [Arg("address", STR, help="The bitcoin address to validate")],
     description="Return information about the given bitcoin address.", inline=True)
def validateaddress(node, address):
    return validate_address(address, node.params).to_rpc()


@rpc("getdescriptorinfo", "Util", [Arg("descriptor", STR, help="The descriptor.")],
     description="Analyses a descriptor.", inline=True)
def getdescriptorinfo(node, descriptor):
    try:
        return descriptor_info(descriptor, node.params)
    except DescriptorError as err:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, str(err)) from None


@rpc("deriveaddresses", "Util",
     [Arg("descriptor", STR, help="The descriptor."),
      Arg("range", RANGE, False, None,
          "If a ranged descriptor is used, this specifies the end or the range (in [begin,end] "
          "notation) to derive.")],
     description="Derives one or more addresses corresponding to an output descriptor.")
def deriveaddresses(node, descriptor, range_):
    if range_ is not None and not isinstance(range_, list):
        range_ = as_int(range_, "range")
    try:
        return derive_addresses(descriptor, node.params, range_, require_checksum=True)
    except DescriptorError as err:
        raise _descriptor_error(err) from None


# -- scantxoutset --------------------------------------------------------------------------

_scan_lock = threading.Lock()
_scan_state: dict = {"running": False, "abort": False, "progress": 0}


def _descriptor_error(err: DescriptorError) -> RPCError:
    """Range and usage errors are -8 in Core, everything else about a descriptor -5."""
    code = RPC_INVALID_PARAMETER if isinstance(err, DescriptorRangeError) else (
        RPC_INVALID_ADDRESS_OR_KEY)
    return RPCError(code, str(err))


def _scan_objects(node, scanobjects) -> dict[bytes, ScanObject]:
    """{scriptPubKey: the first scan object that makes it} (Core reports the first one's
    inferred descriptor)."""
    params = node.params
    found: dict[bytes, ScanObject] = {}
    for obj in scanobjects:
        rng = None
        if isinstance(obj, str):
            desc = obj
        elif isinstance(obj, dict):
            desc = obj.get("desc")
            if not isinstance(desc, str):
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Descriptor needs to be provided in scan object")
            rng = obj.get("range")
        else:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "Scan object needs to be either a string or an object")
        # A bare address is taken as addr(<address>) (Core needs the addr() form).
        if "(" not in desc and is_valid_address(desc, params):
            desc = f"addr({desc})"
        try:
            scan = ScanObject(desc, params, rng)
        except DescriptorError as err:
            raise _descriptor_error(err) from None
        for script in scan.scripts:
            found.setdefault(script, scan)
    return found


@rpc("scantxoutset", "Blockchain",
     [Arg("action", STR, help='"start" for starting a scan, "abort" to abort it, "status" for '
                              "its progress"),
      Arg("scanobjects", ARR, False, None,
          'Array of scan objects: descriptors ("addr(<address>)", "wpkh(<xpub>/0/*)", ...), '
          'bare addresses, or {"desc": descriptor, "range": n or [begin,end]} (default range '
          "1000). Required for \"start\".")],
     description="Scans the unspent transaction output set for entries that match certain "
                 "output descriptors.")
def scantxoutset(node, action, scanobjects):
    if action == "status":
        return {"progress": _scan_state["progress"]} if _scan_state["running"] else None
    if action == "abort":
        if not _scan_state["running"]:
            return False
        _scan_state["abort"] = True
        return True
    if action != "start":
        raise RPCError(RPC_INVALID_PARAMETER, "Invalid action '" + str(action) + "'")
    if scanobjects is None:
        raise RPCError(RPC_MISC_ERROR, "scanobjects argument is required for the start action")
    if not _scan_lock.acquire(blocking=False):
        raise RPCError(RPC_INVALID_PARAMETER, "Scan already in progress, use action \"abort\" or "
                       "\"status\"")
    try:
        _scan_state.update(running=True, abort=False, progress=0)
        wanted = _scan_objects(node, scanobjects)
        chain = node.chain
        unspents = []
        total = 0
        count = 0
        with chain.lock:  # only to take a consistent snapshot: the scan runs without it
            chain.flush()
            tip = chain.tip
            snapshot = chain.coins.snapshot()
        try:
            for txid, n, coin in chain.coins.iter_coins(snapshot):
                count += 1
                if count % 4096 == 0:
                    if _scan_state["abort"] or node.shutting_down:
                        return {"success": False}
                    # Coins come in txid order, so the txid's leading bytes tell the progress.
                    _scan_state["progress"] = (txid[0] * 256 + txid[1]) * 100 // 65536
                if coin.script_pubkey in wanted:
                    total += coin.value
                    unspents.append({
                        "txid": txid[::-1].hex(),
                        "vout": n,
                        "scriptPubKey": coin.script_pubkey.hex(),
                        "desc": wanted[coin.script_pubkey].infer(coin.script_pubkey),
                        "amount": btc(coin.value),
                        "coinbase": coin.coinbase,
                        "height": coin.height,
                        "blockhash": tip.ancestor(coin.height).hash_hex(),
                        "confirmations": tip.height - coin.height + 1,
                    })
        finally:
            snapshot.close()
        return {
            "success": True,
            "txouts": count,
            "height": tip.height,
            "bestblock": tip.hash_hex(),
            "unspents": unspents,
            "total_amount": btc(total),
        }
    finally:
        _scan_state.update(running=False, abort=False, progress=100)
        _scan_lock.release()
