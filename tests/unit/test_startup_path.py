"""What the node's start-up path imports and does before RPC is ready (issue 20): the
settings are read without pydantic, with the same answers and errors as before."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    code += "\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_reading_settings_imports_no_pydantic():
    mods = _modules_after("from node.config import load_config\nload_config(['-regtest'])")
    assert "node.config" in mods
    assert not {m for m in mods if m.split(".")[0] in ("pydantic", "pydantic_core")}


@pytest.mark.parametrize("value,expected", [
    ("12", 12), (" 12 ", 12), ("+12", 12), ("1_2", 12), ("12.0", 12), ("12.00", 12),
])
def test_integer_options_read_as_before(value, expected):
    assert load_config(["-regtest", f"-rpcthreads={value}"]).rpcthreads == expected


@pytest.mark.parametrize("arg,message", [
    ("-rpcthreads=abc", "Error: Invalid value for -rpcthreads=abc: Input should be a valid "
                        "integer, unable to parse string as an integer"),
    ("-rpcthreads=12.5", "unable to parse string as an integer"),
    ("-rpcthreads=1e1", "unable to parse string as an integer"),
    ("-rpcthreads=12.", "unable to parse string as an integer"),
    ("-rpcthreads=_1", "unable to parse string as an integer"),
    ("-rpcthreads=\u0663", "unable to parse string as an integer"),  # a non-ASCII digit
    ("-rpcthreads=0", "Error: Invalid value for -rpcthreads=0: Input should be greater than "
                      "or equal to 1"),
    ("-dbcache=2000000", "Input should be less than or equal to 1000000"),
    ("-par=-65", "Error: Invalid value for -par=-65: Input should be greater than or equal "
                 "to -64"),
    ("-rpcallowip=nonsense", "Error: Invalid value for -rpcallowip=nonsense: Invalid "
                             "-rpcallowip subnet specification: nonsense"),
])
def test_bad_values_stop_with_the_option_named(arg, message):
    with pytest.raises(ConfigError) as e:
        load_config(["-regtest", arg])
    assert message in str(e.value)


def test_typed_fields_and_defaults():
    c = load_config(["-regtest", "-reindex-chainstate", "-rpcport=5", "-listen=0",
                     "-loadblock=/x", "-loadblock=/y", "-noprinttoconsole", "-debug=net"])
    assert (c.chain, c.reindex_chainstate, c.rpcport, c.listen) == ("regtest", True, 5, False)
    assert c.loadblock == [Path("/x"), Path("/y")] and c.printtoconsole is False
    assert c.debug == ["net"] and c.dbcache == 450 and c.port is None and c.wallet == []
    d = load_config(["-regtest"])
    d.wallet.append("x")  # defaults are not shared between configs
    assert load_config(["-regtest"]).wallet == []
    assert NodeConfig.model_fields["chain"].default == "main"
    assert NodeConfig.model_fields["reindex_chainstate"].alias == "reindex-chainstate"


# -- the block index's bulk load ---------------------------------------------------------------

def _blocks(prev: bytes, start: int, n: int, t: int) -> list:
    from tests.blocktools import make_block

    out = []
    for h in range(start, start + n):
        b = make_block(prev, h, time=t + h)
        out.append(b)
        prev = b.hash
    return out


def _open_chain(datadir: Path):
    from consensus.params import REGTEST
    from node.chain import ChainState
    from node.scriptcheck import ScriptChecker

    c = ChainState(datadir, REGTEST, dbcache_mb=8, scripts=ScriptChecker(0))
    c.load()
    return c


def test_index_read_on_demand_equals_entry_by_entry(tmp_path, monkeypatch):
    """A chain with a fork, a longer competing fork, an invalidated block and a header-only
    entry reloads to the same entries (fields, work, transaction counts, skip pointers, best
    header) as building each from its header, whether read one by one or all at once; the
    load hashes no header and reads the entries off the active chain, not the chain's
    early blocks."""
    from consensus import block as block_module
    from consensus.params import REGTEST
    from node.store.blockindex import BlockIndexEntry

    def open_chain():
        return _open_chain(tmp_path / "n")

    c = open_chain()
    main = _blocks(REGTEST.genesis_hash, 1, 70, 1_600_000_000)
    fork = _blocks(main[39].hash, 41, 12, 1_600_100_000)  # off height 40, shorter
    for b in main + fork:
        c.process_block(b)
    c.accept_header(_blocks(main[-1].hash, 71, 1, 1_600_200_000)[0].header)  # header only
    c.invalidate_block(main[60].hash)  # the tip moves back to height 60
    assert c.height == 60
    c.close()

    hashed = []
    real = block_module.sha256d
    monkeypatch.setattr(block_module, "sha256d", lambda b: hashed.append(1) or real(b))
    c = open_chain()
    monkeypatch.undo()
    try:
        # Entries come from their records and keys: only the last blocks read back at
        # start-up (-checkblocks' 6) are hashed, not the 84 headers.
        assert len(hashed) <= 6
        ref: dict[bytes, BlockIndexEntry] = {}
        for header, _height, status, n_tx, file, data_pos, undo_pos in sorted(
                c.index_db.load(), key=lambda r: r[1]):
            prev = ref.get(header.prev_hash)
            e = ref[header.hash] = BlockIndexEntry(header, prev)
            e.status, e.n_tx, e.file, e.data_pos, e.undo_pos = (status, n_tx, file, data_pos,
                                                                undo_pos)
        assert len(ref) == 1 + 71 + 12
        loaded = {e.hash: e.height for e in c.index.loaded()}
        off_chain = [b.hash for b in fork + main[60:]]
        assert all(h in loaded for h in off_chain)
        # Of the early blocks start-up read only what skip pointers reach (a few).
        assert len([h for h in loaded.values() if 0 < h < 30]) <= 5
        fields = ("height", "version", "merkle_root", "time", "bits", "nonce", "status",
                  "n_tx", "file", "data_pos", "undo_pos")
        for h in ref:
            e, r = c.get(h), ref[h]
            assert [getattr(e, f) for f in fields] == [getattr(r, f) for f in fields]
            assert (e.prev and e.prev.hash) == (r.prev and r.prev.hash)
            assert (e.skip and e.skip.hash) == (r.skip and r.skip.hash), e.height
            assert e.chain_work == (e.height + 1) * 2  # regtest: work 2 a block
            assert e.header().serialize() == r.header().serialize()
            assert e.seq_id == 1
            assert e.chain_tx == (e.height + 1 if e.have_data else 0)
            for k in range(0, e.height + 1, 7):
                assert e.ancestor(k).hash == r.ancestor(k).hash
        assert c.height == 60 and c.tip.hash == main[59].hash
        assert c.best_header is c.index[main[59].hash]  # the most work of those not failed
        every = c.index.load_all()  # (the same objects as those read one by one)
        assert len(every) == len(ref) and all(c.get(e.hash) is e for e in every)
    finally:
        c.close()


def test_index_load_with_the_tip_off_the_best_header_chain(tmp_path, caplog):
    """The best header on a fork of headers only (the tip stays where the data is), and a
    record whose parent is not stored: the active chain is the tip's own, every entry's
    ancestors are right, and the orphan record is left out with a warning."""
    import logging

    from consensus.params import REGTEST
    from node.store.blockindex import BlockIndexEntry

    c = _open_chain(tmp_path / "n")
    main = _blocks(REGTEST.genesis_hash, 1, 30, 1_600_000_000)
    for b in main:
        c.process_block(b)
    fork = _blocks(main[19].hash, 21, 15, 1_600_100_000)  # headers only, more work
    for b in fork:
        c.accept_header(b.header)
    stray = _blocks(b"\x07" * 32, 6, 1, 1_600_200_000)[0]  # its parent was never stored
    orphan = BlockIndexEntry(stray.header, None)
    orphan.height = 6
    c.index_db.put(orphan)
    c.close()

    with caplog.at_level(logging.WARNING, logger="validation"):
        c = _open_chain(tmp_path / "n")
        assert stray.hash not in c.index
        assert any(stray.header.hash[::-1].hex() in r.getMessage() for r in caplog.records)
    try:
        assert c.best_header.hash == fork[-1].hash and c.best_header.height == 35
        assert c.height == 30 and [e.hash for e in c.active[1:]] == [b.hash for b in main]
        for e in c.index.load_all():
            walk, by_height = e, {}
            while walk is not None:
                by_height[walk.height] = walk
                walk = walk.prev
            assert all(e.ancestor(k) is by_height[k] for k in range(e.height + 1))
    finally:
        c.close()


def test_index_records_come_parents_first(tmp_path):
    """load_raw orders the records by height however LevelDB orders their keys: placed by
    height for a chain without forks, sorted where a height has two entries or a record's
    height is out of reach of the records there are (no list of that length is made)."""
    from consensus.params import REGTEST
    from node.store.blockindex import KEY_HASH, BlockIndexDB, BlockIndexEntry

    def entries(blocks, first_height):
        out = []
        for i, b in enumerate(blocks):
            e = BlockIndexEntry(b.header, None)
            e.height = first_height + i
            out.append(e)
        return out

    main = entries(_blocks(REGTEST.genesis_hash, 1, 40, 1_600_000_000), 1)
    db = BlockIndexDB(tmp_path / "index")
    try:
        db.put_many(main)
        heights = {e.hash: e.height for e in main}

        def loaded_heights():
            return [heights[key[KEY_HASH]] for key, _ in db.load_raw()]

        assert loaded_heights() == list(range(1, 41))
        fork = entries(_blocks(main[9].hash, 11, 5, 1_600_100_000), 11)
        db.put_many(fork)
        heights.update({e.hash: e.height for e in fork})
        got = loaded_heights()
        assert got == sorted(got) and len(got) == 45
        far = entries(_blocks(b"\x05" * 32, 1, 1, 1_600_200_000), 0xFFFFFFFF)
        db.put_many(far)
        heights[far[0].hash] = far[0].height
        got = loaded_heights()
        assert got == sorted(got) and got[-1] == 0xFFFFFFFF and len(got) == 46
    finally:
        db.close()


# -- what a clean shutdown leaves for the next start-up ----------------------------------------

def test_closed_databases_leave_no_log_to_replay(tmp_path):
    """Closing the chain state puts what the session wrote into LevelDB tables
    (node.store.close_db): the next start-up opens the block index and the UTXO set without
    sorting a log into a table first (14 ms for the block index of a 1,000-block chain built
    in one session). Everything reads back. An index keeps Core's way: its last writes stay
    in its log (Core's feature_init.py damages that log and expects the start to fail)."""
    from consensus.params import REGTEST
    from node.index import Indexes

    c = _open_chain(tmp_path / "n")
    blocks = _blocks(REGTEST.genesis_hash, 1, 30, 1_600_000_000)
    for b in blocks:
        c.process_block(b)
    ixs = Indexes.open(tmp_path / "n", c, txindex=True)
    ixs.start()
    # (block_until_synced answers False at once until the first sync is done)
    deadline = time.monotonic() + 30
    while not (ixs.txindex.synced and ixs.txindex.best is c.tip) and time.monotonic() < deadline:
        time.sleep(0.01)
    ixs.close()
    c.close()
    c.coins.close()  # (a second close is harmless, as plyvel's)

    def log_bytes(sub: str) -> int:
        return sum(f.stat().st_size for f in (tmp_path / "n" / sub).glob("*.log"))

    for sub in ("blocks/index", "chainstate"):
        assert list((tmp_path / "n" / sub).glob("*.ldb")), sub
        assert log_bytes(sub) == 0, sub
    assert log_bytes("indexes/txindex") > 0
    c = _open_chain(tmp_path / "n")
    ixs = Indexes.open(tmp_path / "n", c, txindex=True)
    try:
        assert c.height == 30 and c.tip.hash == blocks[-1].hash
        assert c.coins.best_block() == blocks[-1].hash
        assert ixs.txindex.lookup(blocks[-1].txs[0].txid) is not None
    finally:
        ixs.close()
        c.close()


def test_wallet_manager_imports_the_wallet_when_first_used(tmp_path):
    """minibtcd builds a WalletManager at every start; with no wallet to load it imports
    none of the wallet itself (20-27 ms of the start-up), nor does its background thread:
    that waits for the first wallet method or wallet load."""
    heavy = {"wallet.wallet", "wallet.rpc", "wallet.spend", "wallet.sync"}
    code = (f"from pathlib import Path\nfrom consensus.params import REGTEST\n"
            f"from wallet.service import WalletManager\n"
            f"m = WalletManager(Path({str(tmp_path)!r}), REGTEST, None)\n"
            f"assert m.start([]) == []\n"
            f"m.sync_all()\n")  # (the background thread's round, every second)
    assert not heavy & _modules_after(code)
    used = _modules_after(code + "assert m.handles('getbalance')\n"
                          "assert not m.handles('getblockcount')\n")
    assert heavy <= used



def _json_of(code: str, **env: str) -> object:
    """What `code` prints as JSON, run in a fresh process (SSL_CERT_FILE as given)."""
    import json
    import os

    environ = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"} | env
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=environ).stdout
    return json.loads(out.splitlines()[-1])


_AIOHTTP_CONTEXTS = (
    "import json, os, ssl\n"
    "def cas():\n"
    "    from aiohttp import connector as c\n"
    "    return [x.cert_store_stats()['x509_ca']\n"
    "            for x in (c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED)]\n"
    "system = ssl.create_default_context().cert_store_stats()['x509_ca']\n")


def test_aiohttp_imported_without_certificates_then_loaded(tmp_path):
    """minibtcd imports aiohttp without its import-time CA load (2 x 25 ms of the start-up)
    and loads them into aiohttp's two default client contexts afterwards: they end with the
    certificates aiohttp gives them, and SSL_CERT_FILE is left as it was (and is used)."""
    code = _AIOHTTP_CONTEXTS + (
        "from node import deferredcerts\ndeferredcerts.import_aiohttp()\n"
        "before = cas()\ndeferredcerts.load()\n"
        "print(json.dumps([system, before, cas(), os.environ.get('SSL_CERT_FILE')]))\n")
    system, before, after, left = _json_of(code)
    if system == 0:
        pytest.skip("this system has no CA certificates to load")
    assert before == [0, 0] and after == [system, system] and left is None
    # A CA file of the user's own (here: one of the system's certificates) stays set, and
    # is what the contexts load.
    import ssl

    bundle = Path(ssl.get_default_verify_paths().cafile or "").read_text()
    end = "-----END CERTIFICATE-----\n"
    mine = tmp_path / "one-ca.pem"
    mine.write_text(bundle[:bundle.index(end) + len(end)])
    system, before, after, left = _json_of(code, SSL_CERT_FILE=str(mine))
    assert system == 1 and before == [0, 0] and after == [1, 1] and left == str(mine)
    # Where aiohttp is already imported, it is left as it is.
    code = _AIOHTTP_CONTEXTS + (
        "import aiohttp\nfrom node import deferredcerts\ndeferredcerts.import_aiohttp()\n"
        "deferredcerts.load()\nprint(json.dumps([system, cas()]))\n")
    system, now = _json_of(code)
    assert now == [system, system]


def test_minibtcd_loads_aiohttps_certificates_once_ready(tmp_path):
    """minibtcd itself: once it is up, aiohttp's default client contexts hold the system's
    CA certificates, as they would had aiohttp loaded them at import."""
    from tests.functional.framework import free_port

    code = _AIOHTTP_CONTEXTS + (
        "import signal, sys, threading, time\nfrom node import daemon\nout = []\n"
        "def imported():  # (and not half-way through its import)\n"
        "    m = sys.modules.get('aiohttp.connector')\n"
        "    return getattr(m, '_SSL_CONTEXT_UNVERIFIED', None) is not None\n"
        "def watch():\n"
        "    try:\n"
        "        deadline = time.monotonic() + 30\n"
        "        while time.monotonic() < deadline:\n"
        "            if imported() and cas() == [system, system]:\n"
        "                break\n"
        "            time.sleep(0.01)\n"
        "        out.append(cas())\n"
        "    finally:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        f"rc = daemon.main(['-regtest', '-datadir={tmp_path}', '-rpcport={free_port()}',\n"
        "                   '-listen=0'])\n"
        "print(json.dumps([rc, system, out]))\n")
    rc, system, out = _json_of(code)
    if system == 0:  # (checked after the start: the daemon's own code path ran)
        pytest.skip("this system has no CA certificates to load")
    assert rc == 0 and out == [[system, system]]
