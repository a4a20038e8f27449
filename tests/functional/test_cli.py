"""minibtc-cli against real minibtcd processes: calls, JSON arguments, -named, -stdin, cookie and
password auth, config files, errors and exit statuses, -getinfo, -rpcwallet, and output exactly
as bitcoin-cli prints it. A small recording HTTP server (test_request_shape_*) checks the bytes
the CLI sends and the HTTP statuses a node never produces (503, 413, non-JSON errors)."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from consensus.params import REGTEST
from tests.chainbuilder import ChainBuilder
from tests.functional.framework import ROOT, NodeProcess, cli_env, free_port
from tests.unit.test_reorg import write_blk_file

N_BLOCKS = 3
HINT = ("\n\nMake sure the minibtcd server is running and that you are connecting to the correct "
        "RPC port.\nUse \"minibtc-cli -help\" for more info.\n")


def run_cli(*args: str, stdin: str | None = None, timeout: float = 60):
    import subprocess

    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, env=cli_env(),
                          input=stdin, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node with cookie auth and a 3-block chain (150 BTC in its UTXO set)."""
    tmp = tmp_path_factory.mktemp("cli")
    blocks = ChainBuilder().chain(REGTEST.genesis, N_BLOCKS)
    blk = tmp / "chain.dat"
    write_blk_file(blk, blocks)
    n = NodeProcess(tmp / "node", f"-loadblock={blk}")
    n.start()
    n.create_wallet()
    try:
        deadline = time.time() + 60
        while n.call("getblockcount") < N_BLOCKS:
            assert time.time() < deadline, "block import did not finish"
            time.sleep(0.1)
        yield n
    finally:
        n.stop()


def cli(n: NodeProcess, *args: str, **kw):
    return run_cli(f"-datadir={n.datadir}", "-regtest", f"-rpcport={n.rpcport}", *args, **kw)


def ok(r) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stderr == ""
    return r.stdout


# -- Calls and output --------------------------------------------------------------------------


def test_plain_calls(node):
    assert ok(cli(node, "getblockcount")) == f"{N_BLOCKS}\n"
    # A string result is printed raw, without quotes.
    assert ok(cli(node, "getbestblockhash")) == node.call("getbestblockhash") + "\n"
    # help passes through as an RPC.
    assert "== Blockchain ==" in ok(cli(node, "help"))
    assert ok(cli(node, "help", "getblock")).startswith('getblock "blockhash" ( verbosity )\n')


def test_json_params(node):
    genesis = REGTEST.genesis.hash_hex()
    assert ok(cli(node, "getblockhash", "0")) == genesis + "\n"
    tip = node.call("getbestblockhash")
    assert ok(cli(node, "getblockhash", str(N_BLOCKS))) == tip + "\n"
    # verbosity 0: the raw block as a string; 2: an object with decoded transactions.
    assert ok(cli(node, "getblock", genesis, "0")) == node.call("getblock", genesis, 0) + "\n"
    out = ok(cli(node, "getblock", genesis, "2"))
    assert json.loads(out, parse_float=Decimal) == node.call("getblock", genesis, 2)
    assert out.startswith('{\n  "hash": "' + genesis + '",\n  "confirmations": ')
    assert '\n          "value": 50.00000000,\n          "n": 0,\n' in out
    assert '\n  "difficulty": 4.656542373906925e-10,\n' in out
    assert out.endswith("\n  ]\n}\n")
    # A JSON parameter that does not parse.
    r = cli(node, "getblockhash", "zero")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: Error parsing JSON: zero\n")
    # A string parameter is sent as a string, even if it looks like JSON.
    r = cli(node, "getblock", "1")
    assert r.returncode != 0 and "error code:" in r.stderr


def test_amounts_keep_8_decimals(node):
    out = ok(cli(node, "gettxoutsetinfo"))
    assert f'\n  "total_amount": {50 * N_BLOCKS}.00000000,\n' in out
    assert f'\n  "height": {N_BLOCKS},\n' in out
    out = ok(cli(node, "gettxout", node.call("getblock", node.call("getbestblockhash"))["tx"][0],
                 "0"))
    assert '\n  "value": 50.00000000,\n' in out


def test_named(node):
    genesis = REGTEST.genesis.hash_hex()
    assert ok(cli(node, "-named", "getblockhash", "height=0")) == genesis + "\n"
    assert ok(cli(node, "-named", "getblock", f"blockhash={genesis}", "verbosity=0")) == (
        node.call("getblock", genesis, 0) + "\n")
    # A later value replaces an earlier one, as in bitcoin-cli.
    assert ok(cli(node, "-named", "getblockhash", "height=5", "height=0")) == genesis + "\n"
    r = cli(node, "-named", "getblockhash", "height=x")
    assert (r.returncode, r.stderr) == (1, "error: Error parsing JSON: x\n")
    r = cli(node, "-named", "getblockhash", "heigth=0")
    assert r.returncode == 8 and r.stderr == (
        "error code: -8\nerror message:\nUnknown named parameter heigth\n")


def test_stdin(node):
    genesis = REGTEST.genesis.hash_hex()
    raw = node.call("getblock", genesis, 0)
    assert ok(cli(node, "-stdin", "getblock", stdin=f"{genesis}\n0\n")) == raw + "\n"
    # The last line needs no newline; arguments on the command line come first.
    assert ok(cli(node, "-stdin", "getblock", genesis, stdin="0")) == raw + "\n"
    assert ok(cli(node, "-stdin", stdin="getblockcount\n")) == f"{N_BLOCKS}\n"
    assert ok(cli(node, "-stdin", "-named", "getblock", stdin=f"blockhash={genesis}\n"
                  "verbosity=0\n")) == raw + "\n"


def test_rpc_errors(node):
    r = cli(node, "getblock", "00" * 32)
    assert (r.returncode, r.stdout, r.stderr) == (
        5, "", "error code: -5\nerror message:\nBlock not found\n")
    r = cli(node, "getblockhash", "1000")
    assert (r.returncode, r.stderr) == (8, "error code: -8\nerror message:\n"
                                           "Block height out of range\n")
    # Exit status abs(code), which the OS truncates to 8 bits as it does for bitcoin-cli.
    r = cli(node, "nosuchmethod")
    assert (r.returncode, r.stderr) == (32601 % 256, "error code: -32601\nerror message:\n"
                                                     "Method not found\n")
    # A type error: the message says which parameter.
    r = cli(node, "getblockhash", '"0"')
    assert r.returncode == 3 and r.stderr.startswith("error code: -3\nerror message:\n")
    assert "Position 1 (height)" in r.stderr


# -- Connection and auth -----------------------------------------------------------------------


def test_cookie_auth(node, tmp_path):
    # Found in <datadir>/regtest/.cookie (-regtest; main's would be <datadir>/.cookie), or
    # named.
    assert ok(cli(node, "getblockcount")) == f"{N_BLOCKS}\n"
    r = run_cli(f"-datadir={node.datadir}", f"-rpcport={node.rpcport}", "getblockcount")
    assert r.returncode == 1 and "Could not locate RPC credentials" in r.stderr
    cookie = node.chain_dir / ".cookie"
    assert ok(run_cli(f"-datadir={tmp_path}", f"-rpcport={node.rpcport}",
                      f"-rpccookiefile={cookie}", "getblockcount")) == f"{N_BLOCKS}\n"
    # The cookie's user and password work as -rpcuser/-rpcpassword too.
    user, _, pw = cookie.read_text().partition(":")
    assert ok(run_cli(f"-rpcport={node.rpcport}", f"-rpcuser={user}", f"-rpcpassword={pw}",
                      f"-datadir={tmp_path}", "getblockcount")) == f"{N_BLOCKS}\n"
    # No cookie and no password: Core's message.
    r = run_cli(f"-datadir={tmp_path}", f"-rpcport={node.rpcport}", "getblockcount")
    assert r.returncode == 1
    assert r.stderr.startswith("error: Could not locate RPC credentials. No authentication "
                               "cookie could be found, and RPC password is not set.")
    assert str(tmp_path / "bitcoin.conf") in r.stderr
    # A wrong cookie is a wrong password.
    bad = tmp_path / "bad.cookie"
    bad.write_text(f"{user}:{'0' * 64}")
    r = run_cli(f"-datadir={tmp_path}", f"-rpcport={node.rpcport}", f"-rpccookiefile={bad}",
                "getblockcount")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "error: Authorization failed: Incorrect rpcuser or rpcpassword\n")


def test_password_auth_and_conf(tmp_path):
    n = NodeProcess(tmp_path / "node", "-rpcuser=alice", "-rpcpassword=s3cret")
    n.user, n.password = "alice", "s3cret"
    with n:
        assert not (n.chain_dir / ".cookie").exists()
        base = (f"-datadir={n.datadir}", f"-rpcport={n.rpcport}")
        assert ok(run_cli(*base, "-rpcuser=alice", "-rpcpassword=s3cret",
                          "getblockcount")) == "0\n"
        r = run_cli(*base, "-rpcuser=alice", "-rpcpassword=wrong", "getblockcount")
        assert (r.returncode, r.stdout, r.stderr) == (
            1, "", "error: Authorization failed: Incorrect rpcuser or rpcpassword\n")
        r = run_cli(*base, "-rpcuser=bob", "-rpcpassword=s3cret", "getblockcount")
        assert r.returncode == 1 and "Incorrect rpcuser or rpcpassword" in r.stderr
        # No password and no cookie (the node writes none when it has a password).
        r = run_cli(*base, "getblockcount")
        assert r.returncode == 1 and "Could not locate RPC credentials" in r.stderr

        # The same from a config file: the [regtest] section applies, a top-level rpcport
        # does not (network-only, as in Core); the command line wins over the file.
        confdir = tmp_path / "clidir"
        confdir.mkdir()
        (confdir / "bitcoin.conf").write_text(
            "regtest=1\nrpcuser=alice\nrpcport=1\n# comment\n[main]\nrpcpassword=mainpw\n"
            f"[regtest]\nrpcpassword=s3cret\nrpcport={n.rpcport}\n")
        assert ok(run_cli(f"-datadir={confdir}", "getblockcount")) == "0\n"
        r = run_cli(f"-datadir={confdir}", "-rpcpassword=nope", "getblockcount")
        assert r.returncode == 1 and "Incorrect rpcuser or rpcpassword" in r.stderr
        # -conf, relative to the datadir or absolute.
        (confdir / "other.conf").write_text(
            f"regtest=1\nrpcuser=alice\n[regtest]\nrpcpassword=s3cret\nrpcport={n.rpcport}\n")
        assert ok(run_cli(f"-datadir={confdir}", "-conf=other.conf", "getblockcount")) == "0\n"
        assert ok(run_cli(f"-conf={confdir / 'other.conf'}", f"-datadir={tmp_path}",
                          "getblockcount")) == "0\n"
        # -rpcconnect with a port.
        assert ok(run_cli(f"-datadir={confdir}", f"-rpcconnect=127.0.0.1:{n.rpcport}",
                          "getblockcount")) == "0\n"
        # stop through the CLI.
        assert ok(run_cli(*base, "-rpcuser=alice", "-rpcpassword=s3cret", "stop")) == (
            "minibtcd stopping\n")
        n.proc.wait(60)
        assert n.proc.returncode == 0


def test_node_not_running(tmp_path):
    port = free_port()
    r = run_cli(f"-datadir={tmp_path}", f"-rpcport={port}", "-rpcpassword=x", "getblockcount")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"error: Could not connect to the server 127.0.0.1:{port}" + HINT
    # -rpcwait gives up after -rpcwaittimeout.
    t = time.time()
    r = run_cli(f"-datadir={tmp_path}", f"-rpcport={port}", "-rpcpassword=x", "-rpcwait",
                "-rpcwaittimeout=1", "getblockcount")
    assert r.returncode == 1 and time.time() - t < 20
    assert r.stderr == ("error: timeout on transient error: Could not connect to the server "
                        f"127.0.0.1:{port}" + HINT)


# -- -getinfo and -rpcwallet -------------------------------------------------------------------


def test_getinfo(node):
    out = ok(cli(node, "-getinfo"))
    # (a wallet is loaded: its part shows too). The figures that depend on the clock and on
    # Core's current defaults are the node's own.
    net = node.call("getnetworkinfo")
    keypool = node.call("getwalletinfo")["keypoolsize"]
    progress = node.call("getblockchaininfo")["verificationprogress"]
    lines = out.splitlines()
    assert lines[3].startswith("Verification progress: ") and \
        f"{float(progress) * 100:.4f}%" in lines[3]
    del lines[3]
    assert "\n".join(lines) + "\n" == (
        f"Chain: regtest\nBlocks: {N_BLOCKS}\nHeaders: {N_BLOCKS}\n"
        "Difficulty: 4.656542373906925e-10\n\n"
        f"Network: in 0, out 0, total 0\nVersion: {net['version']}\nTime offset (s): 0\n"
        f"Proxy: N/A\nMin tx relay fee rate (BTC/kvB): {net['relayfee']:.8f}\n\n"
        f"Wallet: default\nKeypool size: {keypool}\n"
        "Transaction fee rate (-paytxfee) (BTC/kvB): 0.00000000\n\n"
        "Balance: 0.00000000\n\nWarnings: (none)\n")
    assert "\x1b[" in ok(cli(node, "-getinfo", "-color=always"))
    r = cli(node, "-getinfo", "extra")
    assert (r.returncode, r.stderr) == (1, "error: -getinfo takes no arguments\n")
    r = cli(node, "-getinfo", "-color=sometimes")
    assert r.returncode == 1 and "Invalid value for -color option" in r.stderr


def test_rpcwallet_routing(node):
    # A node method still answers on /wallet/<name>; a wallet method needs the wallet.
    assert ok(cli(node, "-rpcwallet=w1", "getblockcount")) == f"{N_BLOCKS}\n"
    r = cli(node, "-rpcwallet=w1", "getwalletinfo")
    assert (r.returncode, r.stderr) == (18, "error code: -18\nerror message:\nRequested wallet "
                                            "does not exist or is not loaded: 'w1'\n")
    assert '"walletname": "default"' in ok(cli(node, "-rpcwallet=default", "getwalletinfo"))
    assert ok(cli(node, "-rpcwallet=my wallet/ü", "getblockcount")) == f"{N_BLOCKS}\n"


# -- Request shape and HTTP errors, against a recording server ----------------------------------


class Recorder:
    """An HTTP server that records each request and answers with the next canned reply."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, bytes]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
                status, data = rec.replies.pop(0) if rec.replies else (
                    200, b'{"result":null,"error":null,"id":1}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def cli(self, *args: str, **kw):
        return run_cli(f"-rpcport={self.port}", "-rpcuser=u", "-rpcpassword=p", *args, **kw)


def test_request_shape(tmp_path):
    with Recorder() as rec:
        rec.replies.append((200, b'{"result":"ok","error":null,"id":1}'))
        assert ok(rec.cli(f"-datadir={tmp_path}", "-rpcwallet=my wallet/ü",
                          "createrawtransaction", '[{"txid":"ab","vout":0}]',
                          '{"bcrt1qaddr": 0.10000000, "data": "00"}', "0", "true")) == "ok\n"
        req = rec.requests[-1]
        assert req["path"] == "/wallet/my%20wallet%2F%C3%BC"
        assert req["headers"]["Authorization"] == "Basic dTpw"  # u:p
        assert req["headers"]["Content-Type"] == "application/json"
        # Amounts go out exactly as typed; strings stay strings; JSON args are JSON.
        assert req["body"] == (b'{"method":"createrawtransaction","params":[[{"txid":"ab",'
                               b'"vout":0}],{"bcrt1qaddr":0.10000000,"data":"00"},0,true],'
                               b'"id":1}\n')
        # No -rpcwallet: "/". A method missing from the table: every argument a string.
        ok(rec.cli(f"-datadir={tmp_path}", "somemethod", "1", "[2]", "x"))
        assert rec.requests[-1]["path"] == "/"
        assert json.loads(rec.requests[-1]["body"])["params"] == ["1", "[2]", "x"]
        # -named: values converted by name; arguments without '=' go to "args" by position.
        ok(rec.cli(f"-datadir={tmp_path}", "-named", "getblock", "abc", "verbosity=2",
                   "blockhash=def"))
        assert json.loads(rec.requests[-1]["body"])["params"] == {
            "verbosity": 2, "blockhash": "def", "args": ["abc"]}
        ok(rec.cli(f"-datadir={tmp_path}", "-named", "getblockhash", "0"))
        assert json.loads(rec.requests[-1]["body"])["params"] == {"args": [0]}
        # -stdinrpcpass takes the first line of stdin as the password, -stdin the rest.
        ok(run_cli(f"-datadir={tmp_path}", f"-rpcport={rec.port}", "-rpcuser=u",
                   "-stdinrpcpass", "-stdin", "getblockhash", stdin="p\n0\n"))
        assert rec.requests[-1]["headers"]["Authorization"] == "Basic dTpw"
        assert json.loads(rec.requests[-1]["body"])["params"] == [0]


def test_output_format(tmp_path):
    with Recorder() as rec:
        reply = (b'{"result":{"amount":0.00000001,"big":21000000.00000000,"neg":-1.5e-8,'
                 b'"n":-7,"t":true,"f":false,"z":null,"s":"a\\"b\\u00e9\\n","e":[],"o":{},'
                 b'"l":[1,{"k":[2.50]}]},"error":null,"id":1}')
        rec.replies.append((200, reply))
        out = ok(rec.cli(f"-datadir={tmp_path}", "x"))
        assert out == (
            '{\n  "amount": 0.00000001,\n  "big": 21000000.00000000,\n  "neg": -1.5e-8,\n'
            '  "n": -7,\n  "t": true,\n  "f": false,\n  "z": null,\n  "s": "a\\"bé\\n",\n'
            '  "e": [\n  ],\n  "o": {\n  },\n  "l": [\n    1,\n    {\n      "k": [\n'
            '        2.50\n      ]\n    }\n  ]\n}\n')
        # An empty array at the top level, as UniValue writes it.
        rec.replies.append((200, b'{"result":[],"error":null,"id":1}'))
        assert ok(rec.cli(f"-datadir={tmp_path}", "x")) == "[\n]\n"
        # null prints nothing; a number and a bool print as JSON; "" prints nothing.
        for body, want in ((b'{"result":null,"error":null,"id":1}', ""),
                           (b'{"result":1.10,"error":null,"id":1}', "1.10\n"),
                           (b'{"result":false,"error":null,"id":1}', "false\n"),
                           (b'{"result":"","error":null,"id":1}', "")):
            rec.replies.append((200, body))
            assert ok(rec.cli(f"-datadir={tmp_path}", "x")) == want


def test_http_errors(tmp_path):
    with Recorder() as rec:
        cases = [
            ((503, b"Loading block index..."), "error: Server response: Loading block index...\n"),
            ((413, b"Request body too large"), "error: server returned HTTP error 413\n"),
            ((403, b""), "error: server returned HTTP error 403\n"),
            ((500, b"<html>oops</html>"), "error: server returned HTTP error 500\n"),
            ((200, b""), "error: no response from server\n"),
            ((200, b"not json"), "error: couldn't parse reply from server\n"),
            ((500, b'{"result":null,"error":{"code":-19,"message":"Wallet file not specified"},'
                   b'"id":1}'),
             'error code: -19\nerror message:\nWallet file not specified\nTry adding '
             '"-rpcwallet=<filename>" option to minibtc-cli command line.\n'),
        ]
        for reply, want in cases:
            rec.replies.append(reply)
            r = rec.cli(f"-datadir={tmp_path}", "x")
            assert (r.stdout, r.stderr) == ("", want), reply
            assert r.returncode == (19 if b"-19" in reply[1] else 1)


# -- Options -----------------------------------------------------------------------------------


def test_options(tmp_path):
    r = run_cli("-help")
    assert r.returncode == 0 and r.stdout.startswith("minibtc RPC client version v")
    assert "Usage:  minibtc-cli [options] <command> [params]" in r.stdout
    for opt in ("-named", "-stdin", "-rpcwallet=<walletname>", "-getinfo", "-datadir=<dir>"):
        assert f"\n  {opt}\n" in r.stdout
    assert run_cli("-h").stdout == r.stdout == run_cli("-?").stdout
    r = run_cli("-version")
    assert (r.returncode, r.stdout) == (0, "minibtc RPC client version v0.1.0\n")
    r = run_cli()
    assert r.returncode == 1 and r.stderr == "Error: too few parameters\n"
    r = run_cli("-bogus", "getblockcount")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "Error parsing command line arguments: Invalid parameter -bogus\n")
    r = run_cli(f"-datadir={tmp_path / 'missing'}", "getblockcount")
    assert (r.returncode, r.stderr) == (
        1, f'Error: Specified data directory "{tmp_path / "missing"}" does not exist.\n')
    r = run_cli(f"-datadir={tmp_path}", "-conf=nope.conf", "getblockcount")
    assert r.returncode == 1 and r.stderr.startswith("Error reading configuration file: ")
    r = run_cli(f"-datadir={tmp_path}", "-regtest", "-chain=main", "getblockcount")
    assert r.returncode == 1 and "Invalid combination of -regtest and -chain" in r.stderr
    r = run_cli(f"-datadir={tmp_path}", "-chain=testnet", "getblockcount")
    assert r.returncode == 1 and "Unknown chain testnet" in r.stderr
    r = run_cli(f"-datadir={tmp_path}", "-rpcpassword=x")
    assert (r.returncode, r.stderr) == (1, "error: too few parameters (need at least command)\n")
    # Options after the command are arguments, not options.
    port = free_port()
    r = run_cli(f"-datadir={tmp_path}", f"-rpcport={port}", "-rpcpassword=x", "getblock",
                "-named")
    assert r.returncode == 1 and "Could not connect" in r.stderr
    # main's default port and layout (no subfolder).
    r = run_cli(f"-datadir={tmp_path}", "-chain=main", "-rpcconnect=127.0.0.1:1",
                "-rpcpassword=x", "getblockcount")
    assert r.stderr.startswith("error: Could not connect to the server 127.0.0.1:1\n")


def test_no_traceback_on_bad_config(tmp_path: Path):
    (tmp_path / "bitcoin.conf").write_text("this is not an option line\n")
    r = run_cli(f"-datadir={tmp_path}", "getblockcount")
    assert r.returncode == 1 and r.stderr.startswith("Error reading configuration file: ")
    assert "Traceback" not in r.stderr


def test_getinfo_full(tmp_path):
    """Every part of the summary, from a server that has the network and wallet methods."""
    net = {"version": 10000, "subversion": "/minibtc:0.1.0/", "timeoffset": 0, "connections": 3,
           "connections_in": 1, "connections_out": 2, "networks": [{"name": "ipv4", "proxy": ""}],
           "relayfee": "@0.00001000", "warnings": ""}
    chain = {"chain": "regtest", "blocks": 120, "headers": 240, "verificationprogress": 0.5,
             "difficulty": "@4.656542373906925e-10", "warnings": []}
    winfo = {"walletname": "", "keypoolsize": 1000, "paytxfee": "@0.00000000",
             "unlocked_until": 0}
    bal = {"mine": {"trusted": "@12.50000000", "untrusted_pending": "@0.00000000"}}

    def body(obj) -> bytes:  # "@1.0" -> the raw number 1.0
        return re.sub(r'"@([-0-9.e]+)"', r"\1", json.dumps(obj)).encode()

    batch = [{"result": r, "error": None, "id": i} for i, r in enumerate((net, chain, winfo, bal))]
    with Recorder() as rec:
        rec.replies += [(200, body(batch)),
                        (200, body({"result": ["", "cold"], "error": None, "id": 1})),
                        (200, body({"result": bal, "error": None, "id": 1})),
                        (200, body({"result": {"mine": {"trusted": "@1.00000000"}},
                                    "error": None, "id": 1}))]
        out = ok(rec.cli(f"-datadir={tmp_path}", "-getinfo", "-color=never"))
        sent = [json.loads(r["body"]) for r in rec.requests]
        paths = [r["path"] for r in rec.requests]
    assert [m["method"] for m in sent[0]] == ["getnetworkinfo", "getblockchaininfo",
                                              "getwalletinfo", "getbalances"]
    assert [m["method"] for m in sent[1:]] == ["listwallets", "getbalances", "getbalances"]
    assert paths == ["/", "/", "/wallet/", "/wallet/cold"]
    assert out == (
        "Chain: regtest\nBlocks: 120\nHeaders: 240\n"
        "Verification progress: " + "\u2592" * 10 + "\u2591" * 10 + " 50.0000%\n"
        "Difficulty: 4.656542373906925e-10\n\n"
        "Network: in 1, out 2, total 3\nVersion: 10000\nTime offset (s): 0\nProxy: N/A\n"
        "Min tx relay fee rate (BTC/kvB): 0.00001000\n\n"
        'Wallet: ""\nKeypool size: 1000\nUnlocked until: 0\n'
        "Transaction fee rate (-paytxfee) (BTC/kvB): 0.00000000\n\n"
        "Balance: 12.50000000\n\n"
        "Balances\n12.50000000 \"\"\n 1.00000000 cold\n\n"
        "Warnings: \n")

    # With -rpcwallet: the batch goes to that wallet and no per-wallet balances are fetched.
    # A getblockchaininfo error is fatal and printed as an RPC error.
    err = [{"result": net, "error": None, "id": 0},
           {"result": None, "error": {"code": -28, "message": "Loading block index..."}, "id": 1},
           {"result": None, "error": {"code": -32601, "message": "Method not found"}, "id": 2},
           {"result": None, "error": {"code": -32601, "message": "Method not found"}, "id": 3}]
    with Recorder() as rec:
        rec.replies.append((200, body(err)))
        r = rec.cli(f"-datadir={tmp_path}", "-getinfo", "-rpcwallet=w")
        assert [x["path"] for x in rec.requests] == ["/wallet/w"]
    assert (r.returncode, r.stdout, r.stderr) == (
        28, "", "error code: -28\nerror message:\nLoading block index...\n")


def test_client_timeout(tmp_path):
    """A server that accepts the connection but never answers: -rpcclienttimeout applies."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)  # connections complete in the backlog; nothing ever reads or answers
        port = s.getsockname()[1]
        t = time.time()
        r = run_cli(f"-datadir={tmp_path}", f"-rpcport={port}", "-rpcpassword=x",
                    "-rpcclienttimeout=1", "getblockcount")
        assert time.time() - t < 20
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"error: Could not connect to the server 127.0.0.1:{port} "
                        '(error code 0 - "timeout reached")' + HINT)


def test_rpcwait_until_the_server_is_up(tmp_path):
    import subprocess

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", f"-datadir={tmp_path}",
                             f"-rpcport={port}", "-rpcuser=u", "-rpcpassword=p", "-rpcwait",
                             "-rpcwaittimeout=30", "getblockcount"],
                            cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        with Recorder(port) as rec:
            # First "in warmup" (retried), then the answer.
            rec.replies += [(500, b'{"result":null,"error":{"code":-28,"message":"Loading"},'
                                  b'"id":1}'), (200, b'{"result":7,"error":null,"id":1}')]
            out, err = proc.communicate(timeout=30)
            assert len(rec.requests) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (0, "7\n", "")
