"""BIP157 over P2P (-peerblockfilters with -blockfilterindex), as Core's p2p_blockfilters.py
checks it, with a raw test peer: NODE_COMPACT_FILTERS offered, cfilter/cfheaders/cfcheckpt
answers equal to getblockfilter's filters and headers (for the active chain and a stale
block), and the requests Core refuses by disconnecting (no such service, unknown filter type
or block, a start above the stop block, too long a range)."""

from __future__ import annotations

import pytest

from consensus.hashes import sha256d
from node.p2p import cfilters as cf
from tests.functional.bdkutil import KyotoEvents, bip84_wallet, kyoto, next_address, stop
from tests.functional.framework import NodeProcess
from tests.functional.netutil import ADDR, ADDR2, wait_until
from tests.functional.p2p_peer import RawPeer

TIP = 2002  # past 2,000 (the cfheaders limit) and a checkpoint at 1,000 and 2,000


def h2b(hex_hash: str) -> bytes:
    return bytes.fromhex(hex_hash)[::-1]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    d = tmp_path_factory.mktemp("cf")
    serving = NodeProcess(d / "a", "-blockfilterindex", "-peerblockfilters")
    plain = NodeProcess(d / "b", "-blockfilterindex")
    serving.start()
    plain.start()
    try:
        serving.call("generatetoaddress", 1001, ADDR)
        stale = serving.call("getblockhash", 1001)
        serving.call("invalidateblock", stale)  # 1001 becomes a stale (valid) block
        serving.call("generatetoaddress", TIP - 1000, ADDR2)  # (not the same block again)
        serving.call("reconsiderblock", stale)  # valid again, but on the shorter branch
        assert serving.call("getblockcount") == TIP
        assert serving.call("getblockhash", 1001) != stale
        wait_until(lambda: serving.call("getindexinfo")["basic block filter index"]
                   == {"synced": True, "best_block_height": TIP})
        plain.call("generatetoaddress", 5, ADDR)
        yield serving, plain, stale
    finally:
        serving.stop()
        plain.stop()


def connect(node) -> tuple[RawPeer, object]:
    peer = RawPeer(node.p2pport)
    version = peer.handshake()
    return peer, version


def sync_ping(peer: RawPeer) -> list:
    """Everything the node sent until it answered a ping (it handles messages in order)."""
    from node.p2p import messages as m

    start = len(peer.received)
    peer.send(m.Ping(0x5151))
    peer.wait_for("pong", pred=lambda p: p.nonce == 0x5151)
    return peer.received[start:]


def filter_of(node, block_hash: str) -> tuple[bytes, bytes]:
    got = node.call("getblockfilter", block_hash)
    return bytes.fromhex(got["filter"]), h2b(got["header"])


def test_service_bit(nodes):
    serving, plain, _ = nodes
    peer, version = connect(serving)
    assert version.services & cf.NODE_COMPACT_FILTERS
    peer.close()
    peer, version = connect(plain)
    assert not version.services & cf.NODE_COMPACT_FILTERS
    peer.close()
    assert int(serving.call("getnetworkinfo")["localservices"], 16) & cf.NODE_COMPACT_FILTERS
    assert "COMPACT_FILTERS" in serving.call("getnetworkinfo")["localservicesnames"]
    assert not int(plain.call("getnetworkinfo")["localservices"], 16) & cf.NODE_COMPACT_FILTERS


def test_filters_headers_and_checkpoints(nodes):
    serving, _, stale = nodes
    peer, _ = connect(serving)
    tip = serving.call("getbestblockhash")
    h1000 = serving.call("getblockhash", 1000)

    # cfcheckpt: the headers at 1,000 and 2,000 of the active chain; of a stale block's chain
    peer.send(cf.GetCFCheckpt(0, h2b(tip)))
    got = peer.wait_for("cfcheckpt")
    assert (got.filter_type, got.stop_hash) == (0, h2b(tip))
    assert got.headers == [filter_of(serving, serving.call("getblockhash", h))[1]
                           for h in (1000, 2000)]
    peer.send(cf.GetCFCheckpt(0, h2b(stale)))
    assert peer.wait_for("cfcheckpt").headers == [filter_of(serving, h1000)[1]]
    peer.send(cf.GetCFCheckpt(0, h2b(serving.call("getblockhash", 999))))
    assert peer.wait_for("cfcheckpt").headers == []

    # cfheaders: 2,000 at most, chaining from the previous header to getblockfilter's
    peer.send(cf.GetCFHeaders(0, 3, h2b(tip)))
    got = peer.wait_for("cfheaders")
    assert got.stop_hash == h2b(tip) and len(got.filter_hashes) == TIP - 2
    assert got.prev_header == filter_of(serving, serving.call("getblockhash", 2))[1]
    assert got.headers()[-1] == filter_of(serving, tip)[1]
    assert got.headers()[997] == filter_of(serving, h1000)[1]
    for height in (3, 500, 1001, TIP):
        f, header = filter_of(serving, serving.call("getblockhash", height))
        assert got.filter_hashes[height - 3] == sha256d(f)
        assert got.headers()[height - 3] == header
    # ... and of the stale block, on its own branch
    peer.send(cf.GetCFHeaders(0, 1000, h2b(stale)))
    got = peer.wait_for("cfheaders")
    f, header = filter_of(serving, stale)
    assert got.filter_hashes == [sha256d(filter_of(serving, h1000)[0]), sha256d(f)]
    assert got.headers()[-1] == header
    assert got.prev_header == filter_of(serving, serving.call("getblockhash", 999))[1]

    # cfilter: one per block, 1,000 at most, in order
    peer.send(cf.GetCFilters(0, 0, h2b(serving.call("getblockhash", 999))))
    answers = [msg for cmd, msg in sync_ping(peer) if cmd == "cfilter"]
    assert len(answers) == 1000
    for height in (0, 1, 500, 999):
        block_hash = serving.call("getblockhash", height)
        assert answers[height].block_hash == h2b(block_hash)
        assert answers[height].filter == filter_of(serving, block_hash)[0]
    peer.send(cf.GetCFilters(0, 1001, h2b(stale)))
    answers = [msg for cmd, msg in sync_ping(peer) if cmd == "cfilter"]
    assert [(a.block_hash, a.filter) for a in answers] == [(h2b(stale),
                                                            filter_of(serving, stale)[0])]
    assert not peer.is_closed(0.5)
    peer.close()


@pytest.mark.parametrize("request_", [
    "too many filters", "too many headers", "unknown type", "unknown block",
    "start above stop", "headers start above stop"])
def test_bad_requests_disconnect(nodes, request_):
    serving, _, _ = nodes
    tip = h2b(serving.call("getbestblockhash"))
    h1000 = h2b(serving.call("getblockhash", 1000))
    msg = {
        "too many filters": cf.GetCFilters(0, 0, h1000),  # 1,001 filters
        "too many headers": cf.GetCFHeaders(0, 2, tip),  # 2,001 headers
        "unknown type": cf.GetCFCheckpt(255, h1000),
        "unknown block": cf.GetCFCheckpt(0, (123456789).to_bytes(32, "little")),
        "start above stop": cf.GetCFilters(0, 1001, h1000),
        "headers start above stop": cf.GetCFHeaders(0, 1001, h1000),
    }[request_]
    peer, _ = connect(serving)
    peer.send(msg)
    assert peer.is_closed()
    # still serving others
    other, _ = connect(serving)
    other.send(cf.GetCFCheckpt(0, h1000))
    assert other.wait_for("cfcheckpt").headers == [filter_of(serving, serving.call(
        "getblockhash", 1000))[1]]
    other.close()


@pytest.mark.parametrize("kind", ["getcfilters", "getcfheaders", "getcfcheckpt"])
def test_not_offered_disconnects(nodes, kind):
    _, plain, _ = nodes
    h = h2b(plain.call("getblockhash", 3))
    msg = {"getcfilters": cf.GetCFilters(0, 1, h), "getcfheaders": cf.GetCFHeaders(0, 1, h),
           "getcfcheckpt": cf.GetCFCheckpt(0, h)}[kind]
    peer, _ = connect(plain)
    peer.send(msg)
    assert peer.is_closed()


def test_malformed_request_keeps_connection(nodes):
    serving, _, _ = nodes
    peer, _ = connect(serving)
    peer.send_payload("getcfilters", b"\x00\x01")  # truncated: dropped, as Core's
    h = h2b(serving.call("getblockhash", 1))
    peer.send(cf.GetCFCheckpt(0, h))
    assert peer.wait_for("cfcheckpt").stop_hash == h
    peer.close()


def test_kyoto_wallet_syncs_and_spends(tmp_path):
    """A BDK wallet on Kyoto (bdkpython's BIP157 light client) with the node as its only peer:
    its exact balance from the filters, a spend broadcast through the node, the change after
    the spend is mined."""
    bdk = pytest.importorskip("bdkpython")
    import asyncio

    node = NodeProcess(tmp_path / "n", "-blockfilterindex", "-peerblockfilters", "-debug=net")
    with node:
        node.create_wallet("default")
        miner = node.call("getnewaddress", wallet="default")
        node.call("generatetoaddress", 101, miner)
        wallet = bip84_wallet()
        for amount in (1.25, 0.5):
            node.call("sendtoaddress", next_address(wallet), amount, wallet="default")
        node.call("generatetoaddress", 1, miner)
        node.call("generatetoaddress", 5, ADDR)  # blocks with nothing of the wallet's
        client = kyoto(wallet, node.p2pport, tmp_path / "kyoto").client
        events = KyotoEvents(client)

        async def scenario():
            async with events:
                wallet.apply_update(await asyncio.wait_for(client.update(), 120))
                assert wallet.balance().total.to_sat() == 175_000_000
                dest = node.call("getnewaddress", wallet="default")
                spk = node.call("getaddressinfo", dest, wallet="default")["scriptPubKey"]
                psbt = (bdk.TxBuilder()
                        .add_recipient(bdk.Script(bytes.fromhex(spk)),
                                       bdk.Amount.from_sat(60_000_000))
                        .fee_rate(bdk.FeeRate.from_sat_per_vb(3)).finish(wallet))
                assert wallet.sign(psbt)
                tx = psbt.extract_tx()
                fee = wallet.calculate_fee(tx).to_sat()
                txid = str(tx.compute_txid())
                await asyncio.wait_for(client.broadcast(tx), 60)
                for _ in range(300):
                    if txid in node.call("getrawmempool"):
                        break
                    await asyncio.sleep(0.1)
                assert txid in node.call("getrawmempool")
                node.call("generatetoaddress", 1, ADDR)
                wallet.apply_update(await asyncio.wait_for(client.update(), 120))
                bal = wallet.balance()
                assert bal.confirmed.to_sat() == bal.total.to_sat() == 175_000_000 - 60_000_000 \
                    - fee

        try:
            asyncio.run(scenario())
        except Exception as e:  # what Kyoto and the node saw, to explain a failure
            log = (node.chain_dir / "debug.log").read_text(errors="replace")[-6000:]
            raise AssertionError(f"{e!r}\nKyoto's events:\n" + "\n".join(events.seen)
                                 + f"\nthe node's log:\n{log}") from e
        finally:
            stop(client)
