"""minibtcd started as Bitcoin Core's test framework starts bitcoind: settings.json, wallets
loaded only when asked, -pid, -startupnotify/-blocknotify, -rpcwhitelist, -rpcbind errors,
mock time, syncwithvalidationinterfacequeue, stop's wait, echo, non-ASCII users and
JSON-RPC 2.0 notification batches."""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
import time

import pytest

from consensus.params import REGTEST
from tests.chainbuilder import Wallet
from tests.functional.framework import ROOT, NodeProcess, RPCFailure
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)


def start_fails(node: NodeProcess, *args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "node.daemon", *node.args(), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    return p.stderr.strip()


def test_settings_json_and_wallets_loaded_on_startup(tmp_path):
    node = NodeProcess(tmp_path / "n")
    with node:
        settings = node.chain_dir / "settings.json"
        assert "_warning_" in json.loads(settings.read_text())
        assert node.call("listwallets") == []  # none made by the node itself
        node.call("createwallet", wallet_name="w1", load_on_startup=True)
        node.call("createwallet", wallet_name="w2")
        assert json.loads(settings.read_text())["wallet"] == ["w1"]
    with node:
        assert node.call("listwallets") == ["w1"]
        node.call("unloadwallet", "w1", False)  # load_on_startup false: off the list
    with node:
        assert node.call("listwallets") == []
    with node.start("-wallet=w2"):
        assert node.call("listwallets") == ["w2"]
    node.stop()
    err = start_fails(node, "-wallet=nope")
    assert "Wallet file verification failed" in err and "nope" in err
    (node.chain_dir / "settings.json").write_text('{"wallet": [10]}')
    assert start_fails(node).startswith("Error: Invalid value detected for '-wallet'")
    (node.chain_dir / "settings.json").write_text('{"a": 1, "a": 2}')
    assert "Found duplicate key a in settings file" in start_fails(node)


def test_pid_file_and_notify_commands(tmp_path):
    node = NodeProcess(tmp_path / "n", "-pid=my.pid",
                       f"-startupnotify=echo started >> {tmp_path}/notes",
                       f"-blocknotify=echo block %s >> {tmp_path}/notes")
    with node:
        pid = (node.chain_dir / "my.pid").read_text().strip()
        assert pid == str(node.proc.pid)
        h = node.call("generatetoaddress", 1, ADDR)[0]
        deadline = time.time() + 20
        while f"block {h}" not in ((tmp_path / "notes").read_text()
                                   if (tmp_path / "notes").exists() else ""):
            assert time.time() < deadline, "blocknotify did not run"
            time.sleep(0.1)
        assert (tmp_path / "notes").read_text().count("started") == 1
    assert not (node.chain_dir / "my.pid").exists()


def test_rpcbind_port_errors(tmp_path):
    node = NodeProcess(tmp_path / "n")
    for bad in ("127.0.0.1:notaport", "127.0.0.1:0", "127.0.0.1:65536"):
        assert start_fails(node, "-rpcallowip=127.0.0.1", f"-rpcbind={bad}") == (
            f"Error: Invalid port specified in -rpcbind: '{bad}'")


def test_bad_fee_amounts_stop_start_up_with_cores_error(tmp_path):
    node = NodeProcess(tmp_path / "n")
    for name, bad in (("fallbackfee", "abc"), ("fallbackfee", "-1"), ("minrelaytxfee", "x")):
        assert start_fails(node, f"-{name}={bad}") == (
            f"Error: Invalid amount for -{name}=<amount>: '{bad}'")  # (not a traceback)


def _rpcauth(user: str, password: str) -> str:
    salt = "00" * 16
    return f"{user}:{salt}${hmac.new(salt.encode(), password.encode(), 'sha256').hexdigest()}"


def test_rpcwhitelist_and_non_ascii_users(tmp_path):
    node = NodeProcess(tmp_path / "n", f"-rpcauth={_rpcauth('alice', 'pw')}",
                       f"-rpcauth={_rpcauth('bob', 'pw')}",
                       f"-rpcauth={_rpcauth('zoë', 'pässword')}",
                       "-rpcwhitelist=alice:getblockcount,getbestblockhash",
                       "-rpcwhitelist=alice:getblockcount",  # several: only what all allow
                       "-rpcwhitelist=zoë:getblockcount",
                       "-rpcwhitelist=__cookie__:getblockcount,stop,getblockchaininfo")
    with node:
        def status(user, pw, method):
            return node.request({"method": method, "id": 1}, auth=(user, pw))[0]

        assert status("alice", "pw", "getblockcount") == 200
        assert status("alice", "pw", "getbestblockhash") == 403
        assert status("bob", "pw", "getblockcount") == 403  # -rpcwhitelistdefault on
        assert status("zoë", "pässword", "getblockcount") == 200
        assert status("zoë", "wrong", "getblockcount") == 401
        # a batch with one forbidden call is refused whole
        assert node.request([{"method": "getblockcount", "id": 1},
                             {"method": "getnetworkinfo", "id": 2}],
                            auth=("alice", "pw"))[0] == 403


def test_mock_time_and_hidden_test_methods(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        t = 2_000_000_000
        node.call("setmocktime", t)
        h = node.call("generatetoaddress", 1, ADDR)[0]
        assert node.call("getblockheader", h)["time"] == t
        assert node.call("uptime") < 600  # a steady clock, as Core's: mock time moves not it
        with pytest.raises(RPCFailure,
                           match=r"Mocktime must be in the range \[0, 4294967295\], not -1\."):
            node.call("setmocktime", -1)
        node.call("setmocktime", 0)
        assert node.call("uptime") < 600
        assert node.call("syncwithvalidationinterfacequeue") is None
        node.call("mockscheduler", 10)
        assert node.call("echo", "a", "b") == ["a", "b"]
        assert node.call("echojson", [1], {"x": 2}) == [[1], {"x": 2}]
        status, reply = node.request([{"jsonrpc": "2.0", "method": "getblockcount"},
                                      {"jsonrpc": "2.0", "method": "uptime"}])
        assert (status, reply) == (204, None)  # only notifications: no body
        t0 = time.time()
        assert node.call("stop", 1000) == "minibtcd stopping"
        assert node.proc.wait(60) == 0 and time.time() - t0 >= 1.0
        node.proc = None


def test_damaged_databases_refuse_to_start_with_cores_errors(tmp_path):
    import shutil

    node = NodeProcess(tmp_path / "n")
    with node:
        node.call("generatetoaddress", 200, ADDR)
    with node:  # (reopened: LevelDB turns its logs into tables)
        pass
    d = node.chain_dir
    shutil.copytree(d, tmp_path / "good")

    def restore() -> None:
        shutil.rmtree(d)
        shutil.copytree(tmp_path / "good", d)

    def damage(pattern: str, how: str) -> list:
        files = sorted(d.glob(pattern))
        assert files, pattern
        for f in files:
            if how == "delete":
                f.unlink()
            else:
                with open(f, "r+b") as fh:
                    fh.seek(150)
                    fh.write(b"1" * 200)
        return files

    for pattern, how, args, expected in [
        ("chainstate/*.ldb", "delete", [], "Error opening coins database"),
        ("chainstate/*.ldb", "perturb", [], "Error opening coins database"),
        ("blocks/index/*.ldb", "delete", [], "Error opening block database"),
        ("blocks/index/*.ldb", "perturb", [], "Error loading block database"),
        ("blocks/blk*.dat", "delete", [], "Error loading block database: missing blk00000.dat"),
        ("blocks/blk*.dat", "perturb", ["-checkblocks=200", "-checklevel=4"],
         "Corrupted block database detected"),
    ]:
        damage(pattern, how)
        err = start_fails(node, *args)
        assert err.startswith(f"Error: {expected}"), (pattern, how, err)
        assert err.endswith("Please restart with -reindex or -reindex-chainstate to recover.")
        restore()
    with node:  # and the good copy starts
        assert node.call("getblockcount") == 200


def test_lone_surrogate_ids_are_echoed_as_json_escapes(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        status, reply = node.request(None, raw=b'[{"id": "\\ud800", "method": "getblockcount"},'
                                              b' {"id": 2, "method": "getblockcount"}]')
        assert status == 200
        assert [r["id"] for r in reply] == ["\ud800", 2]
        assert [r["result"] for r in reply] == [0, 0]


def test_full_work_queue_is_refused_with_503(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with NodeProcess(tmp_path / "n", "-rpcthreads=1", "-rpcworkqueue=1") as node:
        def slow(_):
            return node.request({"method": "waitfornewblock", "params": [1500], "id": 1})[0]

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(slow, range(6)))
        assert statuses.count(200) >= 2 and 503 in statuses  # 1 running + 1 queued at most
        assert node.call("getblockcount") == 0


def test_bans_and_peer_times_follow_mock_time(tmp_path):
    with NodeProcess(tmp_path / "n") as node:
        t = int(time.time())
        node.call("setmocktime", t)
        node.call("setban", "10.1.2.3", "add", 100)
        assert [b["address"] for b in node.call("listbanned")] == ["10.1.2.3/32"]
        node.call("setmocktime", t + 200)  # past the ban's end on the node's clock
        assert node.call("listbanned") == []
