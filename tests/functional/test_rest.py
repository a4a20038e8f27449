"""Core's REST interface (-rest) on a running minibtcd: every endpoint of Core's
doc/REST-interface.md answers as the matching RPC does, in .json, .bin and .hex; without
credentials; with Core's status codes and error texts for bad requests."""

from __future__ import annotations

import http.client
import json
from decimal import Decimal

import pytest

from consensus.block import Block, BlockHeader
from consensus.serialize import Reader
from consensus.tx import Transaction
from tests.functional.framework import NodeProcess
from tests.functional.netutil import ADDR, coinbase_spend, spend_outputs

pytestmark = pytest.mark.filterwarnings("ignore")


def get(node, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", node.rpcport, timeout=60)
    try:
        conn.request(method, path, body=body or None)
        r = conn.getresponse()
        return r.status, r.read(), r.getheader("Content-Type") or ""
    finally:
        conn.close()


def rest_json(node, path: str):
    status, body, ctype = get(node, path)
    assert status == 200, (path, status, body)
    assert ctype == "application/json"
    return json.loads(body, parse_float=Decimal)


def rest_bin(node, path: str) -> bytes:
    """The .bin answer (checked against the .hex one); a query string goes after the suffix."""
    base, _, query = path.partition("?")
    query = "?" + query if query else ""
    status, body, ctype = get(node, base + ".bin" + query)
    assert status == 200, (path, status, body)
    assert ctype == "application/octet-stream"
    status, text, ctype = get(node, base + ".hex" + query)
    assert status == 200 and ctype == "text/plain"
    assert text == body.hex().encode() + b"\n"
    return body


def error(node, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, str]:
    status, text, ctype = get(node, path, method, body)
    if text:
        assert ctype == "text/plain" and text.endswith(b"\r\n")
    return status, text.decode().rstrip("\r\n")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("rest") / "n", "-rest", "-txindex",
                    "-blockfilterindex")
    n.start()
    n.call("generatetoaddress", 110, ADDR)
    tx = coinbase_spend(n, 1, outputs=3)
    n.call("sendrawtransaction", tx.serialize().hex())
    [mined] = n.call("generatetoaddress", 1, ADDR)
    child = spend_outputs([(tx_out(tx, 0), tx.vout[0].value)])
    n.call("sendrawtransaction", child.serialize().hex())
    n.call("syncwithvalidationinterfacequeue")
    yield n, tx, mined, child
    n.stop()


def tx_out(tx: Transaction, i: int):
    from consensus.tx import OutPoint

    return OutPoint(tx.txid, i)


def test_tx(node):
    n, tx, mined, child = node
    for t, in_block in ((tx, True), (child, False)):
        got = rest_json(n, f"/rest/tx/{t.txid_hex()}.json")
        rpc = n.call("getrawtransaction", t.txid_hex(), 1)
        for k in ("confirmations", "time", "blocktime", "in_active_chain"):
            rpc.pop(k, None)
        assert got == rpc
        assert ("blockhash" in got) == in_block
        assert rest_bin(n, f"/rest/tx/{t.txid_hex()}") == bytes.fromhex(rpc["hex"])
    assert error(n, "/rest/tx/" + "ab" * 32 + ".json") == (404, "ab" * 32 + " not found")
    assert error(n, "/rest/tx/xyz.json") == (400, "Invalid hash: xyz")
    assert error(n, f"/rest/tx/{tx.txid_hex()}.xml") == (
        400, f"Invalid hash: {tx.txid_hex()}.xml")
    assert error(n, f"/rest/tx/{tx.txid_hex()}") == (
        404, "output format not found (available: .bin, .hex, .json)")


def test_blocks_and_headers(node):
    n, _, mined, _ = node
    got = rest_json(n, f"/rest/block/{mined}.json")
    assert got == n.call("getblock", mined, 3)
    assert rest_json(n, f"/rest/block/notxdetails/{mined}.json") == n.call("getblock", mined, 1)
    raw = rest_bin(n, f"/rest/block/{mined}")
    assert raw.hex() == n.call("getblock", mined, 0)
    assert rest_bin(n, f"/rest/block/notxdetails/{mined}") == raw
    assert Block.from_bytes(raw).hash[::-1].hex() == mined

    h100 = n.call("getblockhash", 100)
    headers = rest_json(n, f"/rest/headers/{h100}.json?count=3")
    assert headers == [n.call("getblockheader", n.call("getblockhash", h)) for h in (100, 101,
                                                                                     102)]
    assert len(rest_json(n, f"/rest/headers/{h100}.json")) == 5  # count defaults to 5
    assert rest_json(n, f"/rest/headers/2/{h100}.json") == headers[:2]  # deprecated form
    raw = rest_bin(n, f"/rest/headers/{h100}?count=20")  # up to the tip: 12 headers
    assert len(raw) == 80 * 12
    assert BlockHeader.from_bytes(raw[80 * 11:]).hash_hex() == mined
    assert rest_json(n, f"/rest/headers/{'00' * 32}.json") == []
    assert error(n, f"/rest/headers/{h100}.json?count=0") == (
        400, "Header count is invalid or out of acceptable range (1-2000): 0")
    assert error(n, f"/rest/headers/{h100}.json?count=2001")[0] == 400
    assert error(n, "/rest/headers/a/b/c.json") == (
        400, "Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>")
    assert error(n, "/rest/block/" + "00" * 32 + ".json") == (404, "00" * 32 + " not found")
    assert error(n, "/rest/block/nothex.bin") == (400, "Invalid hash: nothex")

    # blockhashbyheight
    assert rest_json(n, "/rest/blockhashbyheight/111.json") == {"blockhash": mined}
    status, text, _ = get(n, "/rest/blockhashbyheight/111.hex")
    assert (status, text) == (200, mined.encode() + b"\n")
    status, body, _ = get(n, "/rest/blockhashbyheight/111.bin")
    assert body[::-1].hex() == mined
    assert error(n, "/rest/blockhashbyheight/abc.json") == (400, "Invalid height: abc")
    assert error(n, "/rest/blockhashbyheight/-1.json") == (400, "Invalid height: -1")
    assert error(n, "/rest/blockhashbyheight/1000000.json") == (404, "Block height out of range")
    assert error(n, "/rest/blockhashbyheight/.json")[0] == 400


def test_chain_and_mempool(node):
    n, _, _, child = node
    info = rest_json(n, "/rest/chaininfo.json")
    rpc = n.call("getblockchaininfo")
    for k in ("verificationprogress", "size_on_disk"):
        info.pop(k), rpc.pop(k)
    assert info == rpc
    assert error(n, "/rest/chaininfo.bin") == (404, "output format not found (available: json)")
    assert rest_json(n, "/rest/deploymentinfo.json") == n.call("getdeploymentinfo")
    h = n.call("getblockhash", 50)
    assert rest_json(n, f"/rest/deploymentinfo/{h}.json") == n.call("getdeploymentinfo", h)
    assert error(n, f"/rest/deploymentinfo/{'11' * 32}.json") == (400, "Block not found")
    assert error(n, "/rest/deploymentinfo/zz.json") == (400, "Invalid hash: zz")

    assert rest_json(n, "/rest/mempool/info.json") == n.call("getmempoolinfo")
    contents = rest_json(n, "/rest/mempool/contents.json")
    assert contents == n.call("getrawmempool", True) and child.txid_hex() in contents
    assert rest_json(n, "/rest/mempool/contents.json?verbose=false") == n.call("getrawmempool")
    assert rest_json(n, "/rest/mempool/contents.json?verbose=false&mempool_sequence=true") == \
        n.call("getrawmempool", False, True)
    assert error(n, "/rest/mempool/contents.json?verbose=true&mempool_sequence=true") == (
        400, 'Verbose results cannot contain mempool sequence values. (hint: set '
             '"verbose=false")')
    assert error(n, "/rest/mempool/contents.json?verbose=yes") == (
        400, 'The "verbose" query parameter must be either "true" or "false".')
    assert error(n, "/rest/mempool/other.json") == (
        400, "Invalid URI format. Expected /rest/mempool/<info|contents>.json")
    assert error(n, "/rest/mempool/info.hex") == (
        404, "output format not found (available: json)")


def test_getutxos(node):
    n, tx, _, child = node
    spent = f"{tx.txid_hex()}-0"  # spent by child, in the mempool
    unspent = f"{tx.txid_hex()}-1"
    fresh = f"{child.txid_hex()}-0"  # only in the mempool
    got = rest_json(n, f"/rest/getutxos/{spent}/{unspent}/{fresh}.json")
    tip = n.call("getbestblockhash")
    assert (got["chainHeight"], got["chaintipHash"], got["bitmap"]) == (111, tip, "110")
    out = n.call("gettxout", tx.txid_hex(), 1, False)
    assert got["utxos"][1] == {"height": 111, "value": out["value"],
                               "scriptPubKey": out["scriptPubKey"]}
    mem = rest_json(n, f"/rest/getutxos/checkmempool/{spent}/{unspent}/{fresh}.json")
    assert mem["bitmap"] == "011"
    assert mem["utxos"][1]["height"] == 0x7FFFFFFF
    assert mem["utxos"][1]["value"] == n.call("gettxout", child.txid_hex(), 0)["value"]
    # BIP64 binary: the request in the body, the answer height | tip | bitmap | coins
    body = b"\x01\x02" + tx.txid + (1).to_bytes(4, "little") + child.txid + bytes(4)
    status, raw, _ = get(n, "/rest/getutxos.bin", "POST", body)
    assert status == 200
    r = Reader(raw)
    assert r.i32() == 111 and r.read(32)[::-1].hex() == tip
    assert r.var_bytes() == b"\x03"
    assert r.compact_size() == 2
    assert (r.u32(), r.u32(), r.i64()) == (0, 111, tx.vout[1].value)
    status, hexed, _ = get(n, "/rest/getutxos.hex", "POST", body.hex().encode())
    assert hexed == raw.hex().encode() + b"\n"

    assert error(n, "/rest/getutxos.json") == (400, "Error: empty request")
    assert error(n, "/rest/getutxos/checkmempool.json", "POST") == (400, "Error: empty request")
    assert error(n, "/rest/getutxos.bin", "POST", b'{"checkmempool') == (400, "Parse error")
    assert error(n, f"/rest/getutxos/{tx.txid_hex()}.json") == (400, "Parse error")
    assert error(n, f"/rest/getutxos/{unspent}.bin", "POST", body) == (
        400, "Combination of URI scheme inputs and raw post data is not allowed")
    many = "/".join(f"{tx.txid_hex()}-{i}" for i in range(16))
    assert error(n, f"/rest/getutxos/{many}.json") == (
        400, "Error: max outpoints exceeded (max: 15, tried: 16)")
    assert rest_json(n, "/rest/getutxos/" + "/".join(f"{tx.txid_hex()}-{i}"
                                                     for i in range(15)) + ".json")


def test_filters_and_spent_outputs(node):
    n, tx, mined, _ = node
    f = n.call("getblockfilter", mined)
    assert rest_json(n, f"/rest/blockfilter/basic/{mined}.json") == {"filter": f["filter"]}
    raw = rest_bin(n, f"/rest/blockfilter/basic/{mined}")
    r = Reader(raw)
    assert (r.u8(), r.read(32)[::-1].hex(), r.var_bytes().hex()) == (0, mined, f["filter"])
    h109 = n.call("getblockhash", 109)
    headers = rest_json(n, f"/rest/blockfilterheaders/basic/{h109}.json?count=10")
    assert headers == [n.call("getblockfilter", n.call("getblockhash", h))["header"]
                       for h in (109, 110, 111)]
    assert rest_json(n, f"/rest/blockfilterheaders/basic/2/{h109}.json") == headers[:2]
    assert rest_bin(n, f"/rest/blockfilterheaders/basic/{h109}") == b"".join(
        bytes.fromhex(x)[::-1] for x in headers)
    assert error(n, f"/rest/blockfilter/extended/{mined}.json") == (
        400, "Unknown filtertype extended")
    assert error(n, f"/rest/blockfilter/basic/{'00' * 32}.json") == (404, "00" * 32 + " not found")
    assert error(n, "/rest/blockfilter/basic.json") == (
        400, "Invalid URI format. Expected /rest/blockfilter/<filtertype>/<blockhash>")

    # spenttxouts: one list per transaction (none for the coinbase), as getblock 3's prevouts
    block = n.call("getblock", mined, 3)
    want = [[{"value": i["prevout"]["value"], "scriptPubKey": i["prevout"]["scriptPubKey"]}
             for i in t["vin"] if "prevout" in i] for t in block["tx"]]
    assert rest_json(n, f"/rest/spenttxouts/{mined}.json") == want
    raw = rest_bin(n, f"/rest/spenttxouts/{mined}")
    r = Reader(raw)
    assert (r.compact_size(), r.compact_size(), r.compact_size()) == (2, 0, 1)
    assert r.i64() == 50 * 10**8 and r.var_bytes().hex() == \
        want[1][0]["scriptPubKey"]["hex"]
    genesis = n.call("getblockhash", 0)
    assert rest_json(n, f"/rest/spenttxouts/{genesis}.json") == [[]]
    assert error(n, f"/rest/spenttxouts/{'00' * 32}.bin") == (404, "00" * 32 + " not found")


def test_no_auth_unknown_paths_and_disabled(node, tmp_path):
    n, _, mined, _ = node
    assert error(n, "/rest/unknown.json") == (404, "")
    status, _, _ = get(n, "/", "POST", b'{"method":"getblockcount"}')
    assert status == 401  # (the RPC still needs credentials)
    bare = NodeProcess(tmp_path / "bare", "-rest")
    off = NodeProcess(tmp_path / "off")
    with bare, off:
        h = bare.call("getblockhash", 0)
        assert error(bare, f"/rest/blockfilter/basic/{h}.json") == (
            400, "Index is not enabled for filtertype basic")
        assert error(bare, f"/rest/tx/{'ab' * 32}.json") == (404, "ab" * 32 + " not found")
        assert rest_json(bare, "/rest/blockhashbyheight/0.json") == {"blockhash": h}
        assert get(off, "/rest/chaininfo.json")[0] == 404  # no -rest: no REST


def test_numbers_too_long_for_int(node):
    """Numbers of more digits than int() reads (4,300) are refused as any out-of-range one,
    never a server error."""
    n, _, mined, _ = node
    long = "9" * 5000
    assert error(n, f"/rest/blockhashbyheight/{long}.json") == (400, f"Invalid height: {long}")
    assert error(n, f"/rest/headers/{long}/{mined}.json")[0] == 400
    assert error(n, f"/rest/headers/{mined}.json?count={long}")[0] == 400
    status, text = error(n, f"/rest/getutxos/{'ab' * 32}-{long}.json")
    assert status == 400 and "Parse error" in text
    assert error(n, "/rest/blockhashbyheight/" + "0" * 30 + "1.json")[0] == 400


def test_rest_shares_the_rpc_work_queue(tmp_path):
    """REST requests take their place in Core's one HTTP work queue (-rpcworkqueue): with
    the RPC thread busy and the queue full, REST gets 503 at once instead of waiting."""
    import threading

    with NodeProcess(tmp_path / "n", "-rest", "-rpcthreads=1", "-rpcworkqueue=1") as n:
        refused = threading.Event()

        def wait():
            status, _ = n.request({"method": "waitfornewblock", "params": [8000], "id": 1})
            if status == 503:
                refused.set()

        # Three waits for one thread and one place in the queue: one is refused, and then
        # the two others fill both for seconds.
        waiters = [threading.Thread(target=wait) for _ in range(3)]
        for t in waiters:
            t.start()
        assert refused.wait(60)
        status, text, _ = get(n, "/rest/chaininfo.json")
        for t in waiters:
            t.join()
        assert (status, text) == (503, b"Work queue depth exceeded")
        assert rest_json(n, "/rest/chaininfo.json")["blocks"] == 0
