"""savemempool and importmempool on a real node, and mempool.dat in Core's format: the file is
read back here by an independent parser (version 2: the 8-byte key after the version, every
later byte XORed with key[offset % 8]; version 1 with -persistmempoolv1), a restart loads it
with its entry times, importmempool's options do what Core's do; getmemoryinfo's modes."""

from __future__ import annotations

import shutil
import struct
import time
from decimal import Decimal

from consensus.amounts import COIN
from consensus.hashes import hex_to_hash
from consensus.params import REGTEST
from consensus.serialize import Reader
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, rpc_error
from wallet.address import script_to_address

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)


def _coinbase(node, height):
    cb = node.call("getblock", node.call("getblockhash", height), 2)["tx"][0]
    return OutPoint(hex_to_hash(cb["txid"]), 0), TxOut(
        int(Decimal(cb["vout"][0]["value"]) * COIN), W.p2wpkh)


def _spend(prevs, values):
    tx = Transaction(2, [TxIn(p, b"", 0xFFFFFFFD) for p, _ in prevs],
                     [TxOut(v, W.p2wpkh) for v in values])
    return W.sign(tx, [o for _, o in prevs])


def parse_mempool_dat(data: bytes) -> dict:
    """Written from Core's node/mempool_persist.cpp layout, independently of the node's code."""
    version = struct.unpack_from("<Q", data)[0]
    pos = 8
    if version == 2:
        assert data[8] == 8  # CompactSize of the key
        key = data[9:17]
        pos = 17
        plain = bytes(b ^ key[(pos + i) % 8] for i, b in enumerate(data[pos:]))
    else:
        assert version == 1
        plain = data[8:]
    r = Reader(plain)
    txs = []
    for _ in range(r.u64()):
        tx = Transaction.deserialize(r)
        txs.append((tx.txid_hex(), r.i64(), r.i64()))
    deltas = {r.read(32)[::-1].hex(): r.i64() for _ in range(r.compact_size())}
    unbroadcast = {r.read(32)[::-1].hex() for _ in range(r.compact_size())}
    assert r.at_end()
    return {"version": version, "txs": txs, "deltas": deltas, "unbroadcast": unbroadcast}



def test_savemempool_importmempool(tmp_path):
    n = NodeProcess(tmp_path / "n", "-persistmempool=0")
    with n:
        # Core refuses during initial block download (a fresh regtest node is in it)
        assert rpc_error(n.call, "importmempool", str(tmp_path / "x")) == (
            -10, "Can only import the mempool after the block download and sync is done.")
        n.call("generatetoaddress", 103, ADDR)
        a = _spend([_coinbase(n, 1)], [49 * COIN, COIN - 20_000])
        child = _spend([(OutPoint(a.txid, 0), a.vout[0])], [49 * COIN - 20_000])
        b = _spend([_coinbase(n, 2)], [50 * COIN - 5_000])
        for tx in (a, child, b):
            n.call("sendrawtransaction", tx.serialize().hex())
        n.call("prioritisetransaction", b.txid_hex(), 0, 4321)
        unknown = "11" * 32
        n.call("prioritisetransaction", unknown, 0, -99)
        before = n.call("getrawmempool", True)

        saved = n.call("savemempool")
        path = n.chain_dir / "mempool.dat"
        assert saved == {"filename": str(path)}
        dat = parse_mempool_dat(path.read_bytes())
        assert dat["version"] == 2
        assert [t for t, _, _ in dat["txs"]].index(a.txid_hex()) < \
            [t for t, _, _ in dat["txs"]].index(child.txid_hex())  # parents first
        assert {t: (time, delta) for t, time, delta in dat["txs"]} == {
            t: (e["time"], 4321 if t == b.txid_hex() else 0) for t, e in before.items()}
        assert dat["deltas"] == {unknown: -99}
        # sendrawtransaction's transactions wait for a peer to ask for them
        assert dat["unbroadcast"] == set(before)
        copy = tmp_path / "saved.dat"
        shutil.copy(path, copy)

    # A restart without -persistmempool starts empty; importmempool brings the same
    # transactions back, by default at the current time, without the file's fee deltas
    # and unbroadcast set.
    n.start()
    while int(time.time()) <= max(e["time"] for e in before.values()):
        time.sleep(0.05)  # (the current time must differ from the file's to be told apart)
    t0 = int(time.time())
    assert n.call("getrawmempool") == []
    assert rpc_error(n.call, "importmempool", str(tmp_path / "missing.dat")) == (
        -1, "Unable to import mempool file, see debug log for details.")
    garbage = b"\x02" + b"\x00" * 7 + b"\x08" + b"\x01" * 8 + b"\x05" * 12  # no transaction
    (tmp_path / "garbage.dat").write_bytes(garbage)
    assert rpc_error(n.call, "importmempool", str(tmp_path / "garbage.dat"))[0] == -1
    assert n.call("importmempool", str(copy)) == {}
    after = n.call("getrawmempool", True)
    assert set(after) == set(before)
    assert all(e["time"] >= t0 for e in after.values())
    assert after[b.txid_hex()]["fees"]["modified"] == after[b.txid_hex()]["fees"]["base"]
    assert n.call("getmempoolinfo")["unbroadcastcount"] == 0
    # Importing again with the deltas (named options, Core's OBJ_NAMED_PARAMS): the
    # transactions are already there, the deltas are added.
    assert n.call("importmempool", filepath=str(copy), apply_fee_delta_priority=True,
                  apply_unbroadcast_set=True) == {}
    e = n.call("getmempoolentry", b.txid_hex())
    assert e["fees"]["modified"] - e["fees"]["base"] == Decimal("0.00004321")
    assert n.call("getmempoolinfo")["unbroadcastcount"] == 3
    assert rpc_error(n.call, "importmempool", filepath=str(copy), options={},
                use_current_time=False)[0] == -8
    assert rpc_error(n.call, "importmempool", str(copy), {"use_current_time": 1})[0] == -3
    n.stop()

    # At start-up (-persistmempool) the file is loaded with its own entry times and deltas;
    # with -persistmempoolv1 savemempool writes the version 1 format.
    shutil.copy(copy, n.chain_dir / "mempool.dat")
    n.start("-persistmempool=1", "-persistmempoolv1=1")
    try:
        e = n.call("getrawmempool", True)
        assert {t: x["time"] for t, x in e.items()} == {t: x["time"] for t, x in before.items()}
        assert e[b.txid_hex()]["fees"]["modified"] - e[b.txid_hex()]["fees"]["base"] == \
            Decimal("0.00004321")
        n.call("savemempool")
        v1 = parse_mempool_dat((n.chain_dir / "mempool.dat").read_bytes())
        assert v1["version"] == 1 and {t for t, _, _ in v1["txs"]} == set(before)
        assert v1["deltas"] == {unknown: -99}
    finally:
        n.stop()


def test_getmemoryinfo(tmp_path):
    with NodeProcess(tmp_path / "n") as n:
        stats = n.call("getmemoryinfo")
        assert set(stats) == {"locked"}
        assert set(stats["locked"]) == {"used", "free", "total", "locked", "chunks_used",
                                        "chunks_free"}
        assert n.call("getmemoryinfo", "stats") == stats
        info = n.call("getmemoryinfo", "mallocinfo")  # glibc here
        assert info.startswith('<malloc version="1">') and "</malloc>" in info
        assert rpc_error(n.call, "getmemoryinfo", "foo") == (-8, "unknown mode foo")
        text = n.call("help")
        assert "getmemoryinfo ( \"mode\" )" in text and "savemempool\n" in text
        assert 'importmempool "filepath" ( options )' in text
