"""getchainstates, dumptxoutset and loadtxoutset on a real node. The snapshot is read here by
a parser written from Core's layout (utxo magic, version 2, network magic, base hash, coin
count, then txid / count / vout + Coin with Core's VARINT, amount and script compression),
independently of node/utxo_snapshot.py, and the hash_serialized_3 recomputed from what it
read must equal gettxoutsetinfo's: the file holds exactly the UTXO set, outputs of every
special script form included. A rollback dump matches the set that invalidateblock shows.
loadtxoutset checks the metadata as Core, then refuses (no assumeutxo)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from coincurve import PrivateKey, PublicKey

from consensus.params import REGTEST
from consensus.serialize import Reader
from consensus.tx import Transaction, TxIn, TxOut
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess, coinbase_out, rpc_error
from wallet.address import script_to_address

W = Wallet()
ADDR = script_to_address(W.p2wpkh, REGTEST)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("txoutset") / "n")
    n.start()
    n.call("generatetoaddress", 105, ADDR)
    prev, coin = coinbase_out(n, 1, W.p2wpkh)
    comp = PrivateKey().public_key.format(compressed=True)
    unc = PrivateKey().public_key.format(compressed=False)
    scripts = [
        b"\x76\xa9\x14" + b"\x11" * 20 + b"\x88\xac",  # P2PKH
        b"\xa9\x14" + b"\x22" * 20 + b"\x87",  # P2SH
        b"\x21" + comp + b"\xac",  # P2PK
        b"\x41" + unc + b"\xac",  # P2PK, uncompressed key
        b"\x51\x21" + comp + b"\x51\xae",  # bare 1-of-1 multisig
        b"\x00\x20" + b"\x33" * 32,  # P2WSH
        W.p2tr,
    ]
    outs = [TxOut(100_000, s) for s in scripts]
    outs.append(TxOut(0, b"\x6a\x04abcd"))  # OP_RETURN: never in the UTXO set
    outs.append(TxOut(coin.value - 100_000 * len(scripts) - 20_000, W.p2wpkh))
    tx = Transaction(2, [TxIn(prev, b"", 0xFFFFFFFD)], outs)
    W.sign(tx, [coin])
    n.call("sendrawtransaction", tx.serialize().hex())
    n.call("generatetoaddress", 2, ADDR)
    n.scripts = scripts
    yield n
    n.stop()


# -- an independent reader of Core's snapshot format ------------------------------------------

def _varint(r: Reader) -> int:
    n = 0
    while True:
        b = r.u8()
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n
        n += 1


def _amount(x: int) -> int:
    if x == 0:
        return 0
    x -= 1
    e, x = x % 10, x // 10
    if e < 9:
        n = (x // 9) * 10 + x % 9 + 1
    else:
        n = x + 1
    return n * 10**e


def _script(r: Reader) -> bytes:
    size = _varint(r)
    if size == 0:
        return b"\x76\xa9\x14" + r.read(20) + b"\x88\xac"
    if size == 1:
        return b"\xa9\x14" + r.read(20) + b"\x87"
    if size in (2, 3):
        return b"\x21" + bytes([size]) + r.read(32) + b"\xac"
    if size in (4, 5):
        key = PublicKey(bytes([size - 2]) + r.read(32)).format(compressed=False)
        return b"\x41" + key + b"\xac"
    return r.read(size - 6)


def parse_snapshot(data: bytes):
    assert data[:5] == b"utxo\xff"
    assert struct.unpack_from("<H", data, 5)[0] == 2
    assert data[7:11] == bytes.fromhex("fabfb5da")  # regtest's message start
    base = data[11:43][::-1].hex()
    count = struct.unpack_from("<Q", data, 43)[0]
    r = Reader(data[51:])
    coins = []
    while len(coins) < count:
        txid = r.read(32)
        for _ in range(r.compact_size()):
            n = r.compact_size()
            code = _varint(r)
            value = _amount(_varint(r))
            coins.append((txid, n, code >> 1, code & 1, value, _script(r)))
    assert r.at_end()
    return base, count, coins


def hash_serialized_3(coins) -> str:
    """Core's TxOutSer over the coins in outpoint order, double SHA-256."""
    h = hashlib.sha256()
    for txid, n, height, coinbase, value, script in sorted(coins, key=lambda c: (c[0], c[1])):
        h.update(txid + struct.pack("<II", n, height * 2 + coinbase) + struct.pack("<q", value)
                 + bytes([len(script)]) + script)  # (every script here is < 253 bytes)
    return hashlib.sha256(h.digest()).digest()[::-1].hex()



def test_getchainstates(node):
    cs = node.call("getchainstates")
    assert cs["headers"] == node.call("getblockcount")
    assert len(cs["chainstates"]) == 1
    state = cs["chainstates"][0]
    assert state["blocks"] == node.call("getblockcount")
    assert state["bestblockhash"] == node.call("getbestblockhash")
    assert state["validated"] is True and "snapshot_blockhash" not in state
    assert state["difficulty"] == node.call("getdifficulty")
    assert state["coins_tip_cache_bytes"] > 0 and state["coins_db_cache_bytes"] > 0


def test_dumptxoutset_latest(node):
    info = node.call("gettxoutsetinfo")
    res = node.call("dumptxoutset", "utxo.dat", "latest")
    path = node.chain_dir / "utxo.dat"
    assert res == {
        "coins_written": info["txouts"],
        "base_hash": info["bestblock"],
        "base_height": info["height"],
        "path": str(path),
        "txoutset_hash": info["hash_serialized_3"],
        "nchaintx": node.call("getchaintxstats")["txcount"],
    }
    base, count, coins = parse_snapshot(path.read_bytes())
    assert (base, count, len(coins)) == (info["bestblock"], info["txouts"], info["txouts"])
    assert hash_serialized_3(coins) == info["hash_serialized_3"]
    found = {c[5] for c in coins}
    assert all(s in found for s in node.scripts) and not any(s[:1] == b"\x6a" for s in found)
    assert not (node.chain_dir / "utxo.dat.incomplete").exists()
    assert rpc_error(node.call, "dumptxoutset", "utxo.dat", "latest") == (
        -8, f"{path} already exists. If you are sure this is what you want, move it out of "
            "the way first")
    # loadtxoutset: Core's checks of the metadata, then minibtcd's refusal
    code, msg = rpc_error(node.call, "loadtxoutset", "utxo.dat")
    assert code == -32603 and msg.startswith("Unable to load UTXO snapshot: ")
    assert "not supported" in msg and msg.endswith(f"({path})")
    data = path.read_bytes()
    (node.chain_dir / "bad.dat").write_bytes(b"utxo\xfe" + data[5:])
    assert rpc_error(node.call, "loadtxoutset", "bad.dat") == (
        -22, "Unable to parse metadata: Invalid UTXO set snapshot magic bytes. Please check if "
             "this is indeed a snapshot file or if you are using an outdated snapshot format.")
    (node.chain_dir / "main.dat").write_bytes(data[:7] + bytes.fromhex("f9beb4d9") + data[11:])
    assert rpc_error(node.call, "loadtxoutset", "main.dat") == (
        -22, "Unable to parse metadata: The network of the snapshot (main) does not match the "
             "network of this node (regtest).")
    assert rpc_error(node.call, "loadtxoutset", "missing.dat") == (
        -8, f"Couldn't open file {node.chain_dir / 'missing.dat'} for reading.")


def test_dumptxoutset_rollback(node):
    tip = node.call("getbestblockhash")
    target = 104
    # the set at height 104, as invalidateblock shows it
    nxt = node.call("getblockhash", target + 1)
    node.call("invalidateblock", nxt)
    then = node.call("gettxoutsetinfo")
    node.call("reconsiderblock", nxt)
    assert node.call("getbestblockhash") == tip

    res = node.call("dumptxoutset", path="old.dat", rollback=target)  # named option, no type
    assert res["base_height"] == target and res["base_hash"] == then["bestblock"]
    assert res["txoutset_hash"] == then["hash_serialized_3"]
    assert res["coins_written"] == then["txouts"]
    _, _, coins = parse_snapshot((node.chain_dir / "old.dat").read_bytes())
    assert hash_serialized_3(coins) == then["hash_serialized_3"]
    assert node.call("getbestblockhash") == tip  # rolled forward again
    assert node.call("getnetworkinfo")["networkactive"] is True

    assert rpc_error(node.call, "dumptxoutset", "x.dat", "latest", {"rollback": 3}) == (
        -8, 'Invalid snapshot type "latest" specified with rollback option')
    assert rpc_error(node.call, "dumptxoutset", "x.dat") == (
        -8, 'Invalid snapshot type "" specified. Please specify "rollback" or "latest"')
    # "rollback" alone: the highest of Core's regtest snapshot heights (110, 200, 299)
    assert rpc_error(node.call, "dumptxoutset", "x.dat", "rollback") == (
        -8, f"Target block height 299 after current tip {node.call('getblockcount')}")
    assert not (node.chain_dir / "x.dat").exists()
    assert not (node.chain_dir / "x.dat.incomplete").exists()
    help_text = node.call("help")
    for usage in ('dumptxoutset "path" ( "type" options )', 'loadtxoutset "path"',
                  "getchainstates\n"):
        assert usage in help_text
