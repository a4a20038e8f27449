"""Bitcoin Core's unauthenticated REST interface (-rest), served on the RPC port under /rest/.

Every endpoint of Core's doc/REST-interface.md, with the formats, status codes and error
texts of Core's src/rest.cpp:

    /rest/tx/<txid>.<bin|hex|json>                    mempool, then -txindex
    /rest/block/<hash>.<bin|hex|json>                 JSON as getblock <hash> 3
    /rest/block/notxdetails/<hash>.<bin|hex|json>     JSON as getblock <hash> 1
    /rest/headers/<hash>.<ext>?count=<n=5>            (also /rest/headers/<n>/<hash>.<ext>)
    /rest/blockhashbyheight/<height>.<ext>
    /rest/chaininfo.json                              getblockchaininfo
    /rest/deploymentinfo[/<hash>].json                getdeploymentinfo
    /rest/mempool/info.json                           getmempoolinfo
    /rest/mempool/contents.json?verbose=&mempool_sequence=   getrawmempool
    /rest/getutxos[/checkmempool]/<txid>-<n>/....<ext>  BIP64 (also POST body in bin/hex)
    /rest/blockfilter/<type>/<hash>.<ext>             with -blockfilterindex
    /rest/blockfilterheaders/<type>/<hash>.<ext>?count=<n=5>
    /rest/spenttxouts/<hash>.<ext>                    the outputs each transaction spent

Errors are text/plain with "\\r\\n" after the message, as Core's RESTERR; a path no endpoint
takes is a bare 404. Requests come from addresses -rpcallowip allows (403 otherwise), need no
credentials, and get 503 while the node is still starting. Handlers run on the RPC server's
threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import string
from urllib.parse import parse_qsl

from aiohttp import web

from consensus.block import Block
from consensus.serialize import DeserializationError, Reader, compact_size, var_bytes
from node.rpc import jsonutil
from node.rpc.errors import RPCError
from node.rpc.jsonutil import btc

log = logging.getLogger("rpc")

MAX_GETUTXOS_OUTPOINTS = 15
MAX_REST_HEADERS_RESULTS = 2000
FORMATS = ("bin", "hex", "json")
SAFE_CHARS_URI = set(string.ascii_letters + string.digits + "!*'();:@&=+$,/?#[]-_.~")
HEX = set(string.hexdigits)


class RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> RestError:
    return RestError(400, message)


def _not_found(message: str) -> RestError:
    return RestError(404, message)


def _no_format(available: str | None = None) -> RestError:
    return _not_found(f"output format not found (available: "
                      f"{available or '.bin, .hex, .json'})")


class Reply:
    """An answer: bytes with a content type."""

    __slots__ = ("body", "content_type")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type


def _answer(fmt: str, raw: bytes | None, obj=None, hex_text: str | None = None) -> Reply:
    """The three formats of one answer: raw bytes, their hex (or hex_text) and JSON."""
    if fmt == "bin":
        return Reply(raw, "application/octet-stream")
    if fmt == "hex":
        return Reply(((hex_text if hex_text is not None else raw.hex()) + "\n").encode(),
                     "text/plain")
    if fmt == "json":
        return _json(obj)
    raise _no_format()


def _json(obj) -> Reply:
    return Reply(jsonutil.dumps_bytes(obj), "application/json")


def parse_format(part: str) -> tuple[str, str]:
    """Core's ParseDataFormat: (the part without query and known suffix, format or "")."""
    param = part[:part.rfind("?")] if "?" in part else part
    dot = param.rfind(".")
    if dot < 0:
        return param, ""
    suffix = param[dot + 1:]
    if suffix in FORMATS:
        return param[:dot], suffix
    return param, ""


def query_param(uri: str, key: str) -> str | None:
    """Core's GetQueryParameter: the first value of `key` in the URI's query string."""
    if "?" not in uri:
        return None
    query = uri.split("?", 1)[1]
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise _bad("URI parsing failed, it likely contained RFC 3986 invalid characters") \
            from None
    for k, v in pairs:
        if k == key:
            return v
    return None


def parse_hash(text: str) -> bytes | None:
    """uint256::FromHex: 64 hex digits, in display order."""
    if len(text) != 64 or not set(text) <= HEX:
        return None
    return bytes.fromhex(text)[::-1]


MAX_DIGITS = 20  # more than any 64-bit integer has


def to_integral(text: str, lo: int, hi: int) -> int | None:
    """Core's ToIntegral: an optional '-' (for signed types) and digits only, in range."""
    body = text[1:] if text.startswith("-") and lo < 0 else text
    if not body or len(body) > MAX_DIGITS or not body.isascii() or not body.isdigit():
        return None  # (too long to be in range: never handed to int(), 4,300 digits at most)
    value = int(text)
    return value if lo <= value <= hi else None


def _sanitize(text: str) -> str:
    return "".join(c for c in text if c in SAFE_CHARS_URI)


def _count(raw: str) -> int:
    n = to_integral(raw, 0, 2**64 - 1)
    if n is None or not 1 <= n <= MAX_REST_HEADERS_RESULTS:
        raise _bad(f"Header count is invalid or out of acceptable range "
                   f"(1-{MAX_REST_HEADERS_RESULTS}): {raw}")
    return n


def _tip(chain):
    return getattr(chain, "published", None) or chain.tip


def _active_from(chain, e, count: int) -> list:
    """Up to `count` blocks of the active chain from e upward (none if e is not in it)."""
    tip = _tip(chain)
    if e is None or e.height > tip.height or tip.ancestor(e.height) is not e:
        return []
    top = min(tip.height, e.height + count - 1)
    out = []
    x = tip.ancestor(top)
    while x is not None and x.height >= e.height:
        out.append(x)
        x = x.prev
    out.reverse()
    return out


# -- the endpoints ----------------------------------------------------------------------------


def rest_tx(node, part: str, uri: str, body: bytes) -> Reply:
    from node.rpc.rawtransactions import find_tx  # (the lookup getrawtransaction makes)
    from node.rpc.txjson import tx_json

    hash_str, fmt = parse_format(part)
    h = parse_hash(hash_str)
    if h is None:
        raise _bad(f"Invalid hash: {hash_str}")
    txindex = getattr(node, "txindex", None)
    if txindex is not None:
        txindex.block_until_synced()
    tx, entry, _ = find_tx(node, h, None)
    if tx is None:
        raise _not_found(f"{hash_str} not found")
    if fmt not in FORMATS:
        raise _no_format()
    raw = tx.serialize()
    if fmt != "json":
        return _answer(fmt, raw)
    obj = tx_json(tx, node.params, include_hex=False)
    if entry is not None:
        obj["blockhash"] = entry.hash_hex()
    obj["hex"] = raw.hex()
    return _json(obj)


def _block_entry(node, hash_str: str):
    h = parse_hash(hash_str)
    if h is None:
        raise _bad(f"Invalid hash: {hash_str}")
    e = node.chain.get(h)
    if e is None:
        raise _not_found(f"{hash_str} not found")
    return e


def rest_block(node, part: str, uri: str, body: bytes, verbosity: int = 3) -> Reply:
    from node.prune import is_pruned
    from node.rpc.blockchain import read_undo
    from node.rpc.txjson import block_json

    hash_str, fmt = parse_format(part)
    e = _block_entry(node, hash_str)
    chain = node.chain
    if not e.have_data:
        why = "pruned data" if is_pruned(e) else "not fully downloaded"
        raise _not_found(f"{hash_str} not available ({why})")
    try:
        raw = chain.read_raw_block(e)
    except Exception:  # (unreadable block file)
        raise _not_found(f"{hash_str} not found") from None
    if fmt != "json":
        return _answer(fmt, raw)
    block = Block.from_bytes(raw)
    try:
        undo = read_undo(node, e) if verbosity >= 3 else None
    except RPCError as err:
        raise RestError(500, err.message) from None
    with chain.lock:
        return _json(block_json(block, e, chain, verbosity, undo, raw))


def rest_block_notxdetails(node, part: str, uri: str, body: bytes) -> Reply:
    return rest_block(node, part, uri, body, verbosity=1)


def rest_headers(node, part: str, uri: str, body: bytes) -> Reply:
    from node.rpc.txjson import header_json

    param, fmt = parse_format(part)
    path = param.split("/")
    if len(path) == 2:  # deprecated: /rest/headers/<count>/<hash>
        raw_count, hash_str = path
    elif len(path) == 1:
        hash_str = path[0]
        q = query_param(uri, "count")
        raw_count = "5" if q is None else q
    else:
        raise _bad("Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>")
    count = _count(raw_count)
    h = parse_hash(hash_str)
    if h is None:
        raise _bad(f"Invalid hash: {hash_str}")
    chain = node.chain
    entries = _active_from(chain, chain.get(h), count)
    if fmt in ("bin", "hex"):
        return _answer(fmt, b"".join(e.header().serialize() for e in entries))
    if fmt == "json":
        with chain.lock:
            return _json([header_json(e, chain) for e in entries])
    raise _no_format()


def rest_blockhash_by_height(node, part: str, uri: str, body: bytes) -> Reply:
    height_str, fmt = parse_format(part)
    height = to_integral(height_str, -(2**31), 2**31 - 1)
    if height is None or height < 0:
        raise _bad(f"Invalid height: {_sanitize(height_str)}")
    tip = _tip(node.chain)
    if height > tip.height:
        raise _not_found("Block height out of range")
    e = tip.ancestor(height)
    if fmt == "json":
        return _json({"blockhash": e.hash_hex()})
    return _answer(fmt, e.hash, hex_text=e.hash_hex())


def _rpc(node, name: str, *args):
    from node.rpc.registry import REGISTRY

    return REGISTRY[name].func(node, *args)


def rest_chaininfo(node, part: str, uri: str, body: bytes) -> Reply:
    _, fmt = parse_format(part)
    if fmt != "json":
        raise _no_format("json")
    return _json(_rpc(node, "getblockchaininfo"))


def rest_deploymentinfo(node, part: str, uri: str, body: bytes) -> Reply:
    hash_str, fmt = parse_format(part)
    if fmt != "json":
        raise _no_format("json")
    arg = None
    if hash_str:
        h = parse_hash(hash_str)
        if h is None:
            raise _bad(f"Invalid hash: {hash_str}")
        if node.chain.get(h) is None:
            raise _bad("Block not found")
        arg = hash_str
    return _json(_rpc(node, "getdeploymentinfo", arg))


def rest_mempool(node, part: str, uri: str, body: bytes) -> Reply:
    param, fmt = parse_format(part)
    if param not in ("contents", "info"):
        raise _bad("Invalid URI format. Expected /rest/mempool/<info|contents>.json")
    if getattr(node, "mempool", None) is None:
        raise _not_found("Mempool disabled or instance not found")
    if fmt != "json":
        raise _no_format("json")
    if param == "info":
        return _json(_rpc(node, "getmempoolinfo"))
    verbose = query_param(uri, "verbose")
    verbose = "true" if verbose is None else verbose
    if verbose not in ("true", "false"):
        raise _bad('The "verbose" query parameter must be either "true" or "false".')
    sequence = query_param(uri, "mempool_sequence")
    sequence = "false" if sequence is None else sequence
    if sequence not in ("true", "false"):
        raise _bad('The "mempool_sequence" query parameter must be either "true" or "false".')
    if verbose == "true" and sequence == "true":
        raise _bad('Verbose results cannot contain mempool sequence values. (hint: set '
                   '"verbose=false")')
    return _json(_rpc(node, "getrawmempool", verbose == "true", sequence == "true"))


def _read_outpoints(data: bytes) -> tuple[bool, list[tuple[bytes, int]]]:
    """BIP64's request body: a checkmempool byte, then a vector of outpoints."""
    try:
        r = Reader(data)
        check = r.u8() != 0
        n = r.compact_size()
        if n * 36 > r.remaining():
            raise DeserializationError("truncated")
        return check, [(r.read(32), r.u32()) for _ in range(n)]
    except (DeserializationError, ValueError, IndexError):
        raise _bad("Parse error") from None


def rest_getutxos(node, part: str, uri: str, body: bytes) -> Reply:
    from node.mempool import MEMPOOL_HEIGHT
    from node.rpc.txjson import script_pubkey_json

    param, fmt = parse_format(part)
    uri_parts = param[1:].split("/") if len(param) > 1 else []
    if not body and not uri_parts:
        raise _bad("Error: empty request")
    parsed = False
    check_mempool = False
    outpoints: list[tuple[bytes, int]] = []
    if uri_parts:
        check_mempool = uri_parts[0] == "checkmempool"
        for item in uri_parts[1 if check_mempool else 0:]:
            pieces = item.split("-")
            if len(pieces) != 2:
                raise _bad("Parse error")
            txid = parse_hash(pieces[0])
            n = to_integral(pieces[1], 0, 2**32 - 1)
            if txid is None or n is None:
                raise _bad("Parse error")
            outpoints.append((txid, n))
        if not outpoints:
            raise _bad("Error: empty request")
        parsed = True
    if fmt in ("bin", "hex"):
        data = body
        if fmt == "hex":
            try:
                data = bytes.fromhex(body.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                data = b""  # (Core's ParseHex: nothing from what is not hex)
        if data:
            if parsed:
                raise _bad("Combination of URI scheme inputs and raw post data is not allowed")
            check_mempool, outpoints = _read_outpoints(data)
    elif fmt == "json":
        if not parsed:
            raise _bad("Error: empty request")
    else:
        raise _no_format()
    if len(outpoints) > MAX_GETUTXOS_OUTPOINTS:
        raise _bad(f"Error: max outpoints exceeded (max: {MAX_GETUTXOS_OUTPOINTS}, tried: "
                   f"{len(outpoints)})")
    chain = node.chain
    mempool = getattr(node, "mempool", None)
    if check_mempool and mempool is None:
        raise _not_found("Mempool disabled or instance not found")
    hits: list[bool] = []
    coins: list[tuple[int, int, bytes]] = []  # (height, value, script)
    with chain.lock:
        for txid, n in outpoints:
            found = None
            if check_mempool:
                if not mempool.is_spent(txid, n):
                    out = mempool.get_output(txid, n)
                    if out is not None:
                        found = (MEMPOOL_HEIGHT, out.value, bytes(out.script_pubkey))
                    else:
                        coin = chain.get_coin(txid, n)
                        if coin is not None:
                            found = (coin.height, coin.value, bytes(coin.script_pubkey))
            else:
                coin = chain.get_coin(txid, n)
                if coin is not None:
                    found = (coin.height, coin.value, bytes(coin.script_pubkey))
            hits.append(found is not None)
            if found is not None:
                coins.append(found)
        tip = chain.tip
        height, tip_hash = tip.height, tip.hash
    if fmt == "json":
        return _json({
            "chainHeight": height,
            "chaintipHash": tip_hash[::-1].hex(),
            "bitmap": "".join("1" if h else "0" for h in hits),
            "utxos": [{"height": ht, "value": btc(v),
                       "scriptPubKey": script_pubkey_json(s, node.params)}
                      for ht, v, s in coins],
        })
    bitmap = bytearray((len(hits) + 7) // 8)
    for i, hit in enumerate(hits):
        if hit:
            bitmap[i // 8] |= 1 << (i % 8)
    raw = (height.to_bytes(4, "little", signed=True) + tip_hash + var_bytes(bytes(bitmap))
           + compact_size(len(coins))
           + b"".join((0).to_bytes(4, "little") + ht.to_bytes(4, "little")
                      + v.to_bytes(8, "little", signed=True) + var_bytes(s)
                      for ht, v, s in coins))
    return _answer(fmt, raw)


def _filter_index(node, type_name: str):
    from node.index.blockfilterindex import FILTER_TYPES

    if type_name not in FILTER_TYPES:
        raise _bad(f"Unknown filtertype {type_name}")
    ixs = getattr(node, "indexes", None)
    index = ixs.blockfilter if ixs is not None else None
    if index is None:
        raise _bad(f"Index is not enabled for filtertype {type_name}")
    return index


def rest_block_filter(node, part: str, uri: str, body: bytes) -> Reply:
    from node.store.blockindex import VALID_SCRIPTS

    param, fmt = parse_format(part)
    parts = param.split("/")
    if len(parts) != 2:
        raise _bad("Invalid URI format. Expected /rest/blockfilter/<filtertype>/<blockhash>")
    h = parse_hash(parts[1])
    if h is None:
        raise _bad(f"Invalid hash: {parts[1]}")
    index = _filter_index(node, parts[0])
    e = node.chain.get(h)
    if e is None:
        raise _not_found(f"{parts[1]} not found")
    connected = e.is_valid(VALID_SCRIPTS)
    ready = index.block_until_synced()
    found = index.lookup(e.hash)
    if found is None:
        why = ("Block was not connected to active chain." if not connected else
               "Block filters are still in the process of being indexed." if not ready else
               "This error is unexpected and indicates index corruption.")
        raise _not_found(f"Filter not found. {why}")
    encoded = found[0]
    if fmt == "json":
        return _json({"filter": encoded.hex()})
    return _answer(fmt, bytes([0]) + e.hash + var_bytes(encoded))


def rest_filter_header(node, part: str, uri: str, body: bytes) -> Reply:
    param, fmt = parse_format(part)
    parts = param.split("/")
    if len(parts) == 3:  # deprecated: /rest/blockfilterheaders/<type>/<count>/<hash>
        raw_count, hash_str = parts[1], parts[2]
    elif len(parts) == 2:
        hash_str = parts[1]
        q = query_param(uri, "count")
        raw_count = "5" if q is None else q
    else:
        raise _bad("Invalid URI format. Expected /rest/blockfilterheaders/<filtertype>/"
                   "<blockhash>.<ext>?count=<count>")
    count = _count(raw_count)
    h = parse_hash(hash_str)
    if h is None:
        raise _bad(f"Invalid hash: {hash_str}")
    index = _filter_index(node, parts[0])
    chain = node.chain
    entries = _active_from(chain, chain.get(h), count)
    ready = index.block_until_synced()
    headers = []
    for e in entries:
        found = index.lookup(e.hash)
        if found is None:
            why = ("Block filters are still in the process of being indexed." if not ready
                   else "This error is unexpected and indicates index corruption.")
            raise _not_found(f"Filter not found. {why}")
        headers.append(found[1])
    if fmt == "json":
        return _json([x[::-1].hex() for x in headers])
    return _answer(fmt, b"".join(headers))


def rest_spent_txouts(node, part: str, uri: str, body: bytes) -> Reply:
    from node.rpc.txjson import script_pubkey_json
    from node.store.blockindex import HAVE_UNDO

    param, fmt = parse_format(part)
    if "/" in param:
        raise _bad("Invalid URI format. Expected /rest/spenttxouts/<hash>.<ext>")
    e = _block_entry(node, param)
    undo: list = []
    if e.prev is not None:
        if not e.status & HAVE_UNDO:
            raise _not_found(f"{param} undo not available")
        try:
            undo = node.chain.read_undo(e)
        except Exception:  # (missing or unreadable undo file)
            raise _not_found(f"{param} undo not available") from None
    if fmt == "json":
        return _json([[]] + [[{"value": btc(c.value),
                               "scriptPubKey": script_pubkey_json(c.script_pubkey, node.params)}
                              for c in coins] for coins in undo])
    if fmt not in FORMATS:
        raise _no_format()
    parts = [compact_size(len(undo) + 1), compact_size(0)]
    for coins in undo:
        parts.append(compact_size(len(coins)))
        for c in coins:
            parts.append(c.value.to_bytes(8, "little", signed=True) + var_bytes(c.script_pubkey))
    return _answer(fmt, b"".join(parts))


# Core's uri_prefixes, in its order: the first prefix the path starts with takes it.
ENDPOINTS = (
    ("/rest/tx/", rest_tx),
    ("/rest/block/notxdetails/", rest_block_notxdetails),
    ("/rest/block/", rest_block),
    ("/rest/blockfilter/", rest_block_filter),
    ("/rest/blockfilterheaders/", rest_filter_header),
    ("/rest/chaininfo", rest_chaininfo),
    ("/rest/mempool/", rest_mempool),
    ("/rest/headers/", rest_headers),
    ("/rest/getutxos", rest_getutxos),
    ("/rest/deploymentinfo/", rest_deploymentinfo),
    ("/rest/deploymentinfo", rest_deploymentinfo),
    ("/rest/blockhashbyheight/", rest_blockhash_by_height),
    ("/rest/spenttxouts/", rest_spent_txouts),
)


def dispatch(node, uri: str, body: bytes) -> tuple[int, bytes, str]:
    """(status, body, content type) of a request for `uri` (path and query, undecoded)."""
    for prefix, handler in ENDPOINTS:
        if uri.startswith(prefix):
            part = uri[len(prefix):]
            try:
                reply = handler(node, part, uri, body)
            except RestError as err:
                return err.status, (err.message + "\r\n").encode(), "text/plain"
            except RPCError as err:  # (from a method REST answers with)
                return 500, (err.message + "\r\n").encode(), "text/plain"
            return 200, reply.body, reply.content_type
    return 404, b"", "text/plain"


def mount(app: web.Application, server) -> None:
    """Add /rest/ to the RPC server's aiohttp app when the node runs with -rest."""
    node = server.node
    cfg = getattr(node, "config", None)
    if cfg is None or not cfg.arg_bool("rest", False):
        return

    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        if not server.allowed(peer):
            log.warning("Received a request from %s, which is not allowed by -rpcallowip", peer)
            return web.Response(status=403)
        if server.warmup is not None:
            return web.Response(status=503, body=(f"Service temporarily unavailable: "
                                                  f"{server.warmup}\r\n").encode(),
                                content_type="text/plain")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="Request body too large")
        uri = request.raw_path
        log.debug("Received a %s request for %s from %s", request.method, uri, peer)
        loop = asyncio.get_running_loop()
        with server.work_slot() as refused:  # (the work queue JSON-RPC uses: Core's one)
            if refused is not None:
                return refused
            try:
                status, payload, ctype = await loop.run_in_executor(server.executor, dispatch,
                                                                    node, uri, body)
            except Exception as err:  # a bug: an answer, never a dropped connection
                log.exception("REST %s failed", uri)
                status, payload, ctype = (500, f"Internal error: {err}\r\n".encode(),
                                          "text/plain")
        return web.Response(status=status, body=payload, headers={"Content-Type": ctype})

    app.router.add_route("*", "/rest/{tail:.*}", handle)
    app.router.add_route("*", "/rest", handle)
