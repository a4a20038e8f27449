"""minibtc-cli's static tables and pure helpers.

The conversion table in node/rpc/cli_params.py must equal what the RPC registry declares: adding
an RPC (or changing an argument's type) without regenerating the table fails here. Regenerate
with `python -m node.rpc.cli_params --write`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from node import cli
from node.rpc import cli_params

ROOT = Path(__file__).resolve().parents[2]


# -- The conversion table versus the registry -------------------------------------------------


def test_table_matches_registry():
    import node.rpc.methods  # noqa: F401  (registers every method)
    from node.rpc.registry import json_arg_names, json_arg_positions
    from wallet.rpc import json_arg_table

    wallet = json_arg_table()
    on_node = json_arg_positions()  # (the wallet's server keeps copies of a few node methods)
    node_positions = {m: p for m, p in cli_params.table_positions().items()
                      if m not in wallet or m in on_node}
    node_names = {m: n for m, n in cli_params.table_names().items()
                  if m not in wallet or m in on_node}
    assert node_positions == json_arg_positions(), (
        "node/rpc/cli_params.py is stale: run python -m node.rpc.cli_params --write")
    assert node_names == json_arg_names(), (
        "node/rpc/cli_params.py is stale: run python -m node.rpc.cli_params --write")
    for method, entries in wallet.items():
        assert cli_params.CONVERT_PARAMS[method] == entries, method


def test_wallet_arguments_are_converted():
    assert cli_params.convert_position("sendtoaddress", 1)  # amount
    assert not cli_params.convert_position("sendtoaddress", 0)  # address
    assert cli_params.convert_name("sendtoaddress", "fee_rate")
    assert cli_params.convert_name("walletpassphrase", "timeout")
    assert not cli_params.convert_name("walletpassphrase", "passphrase")


def test_generated_block_is_what_write_produces():
    text = (ROOT / "node/rpc/cli_params.py").read_text()
    assert cli_params.render(cli_params.from_registry()) in text


def test_check_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "node.rpc.cli_params", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_write_regenerates_a_stale_table(tmp_path):
    stale = tmp_path / "cli_params.py"
    text = (ROOT / "node/rpc/cli_params.py").read_text()
    line = '    "getblockhash": ((0, "height"),),\n'
    assert line in text
    stale.write_text(text.replace(line, ""))
    assert cli_params.rewrite(str(stale)) is True
    assert stale.read_text() == text
    assert cli_params.rewrite(str(stale)) is False


def test_render_round_trips_and_wraps_long_entries():
    table = {"m": ((0, "a"),), "long": tuple((i, f"argument_number_{i}") for i in range(6))}
    block = cli_params.render(table)
    assert all(len(line) <= 100 for line in block.splitlines())
    ns: dict = {}
    exec(block, ns)  # noqa: S102  (our own generated literal)
    assert ns["CONVERT_PARAMS"] == table


def test_lookups():
    assert cli_params.convert_position("getblock", 1)
    assert not cli_params.convert_position("getblock", 0)
    assert cli_params.convert_name("getblock", "verbosity")
    assert not cli_params.convert_name("getblock", "blockhash")
    assert not cli_params.convert_position("nosuchmethod", 0)


def test_cli_does_not_import_the_registry():
    code = ("import sys, node.cli, node.rpc.cli_params; node.cli.convert_values('getblock', "
            "['x', '1']); bad = [m for m in sys.modules if m.startswith(('node.rpc.registry', "
            "'consensus', 'pydantic', 'aiohttp', 'http.client', 'decimal'))]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


# -- Constants kept in step with the rest of the project ---------------------------------------


def test_constants_match_node():
    from consensus.params import get_params
    from node import config

    for chain, port in cli.RPC_PORTS.items():
        assert get_params(chain).rpc_port == port
    assert cli.DEFAULT_CHAIN == config.NodeConfig.model_fields["chain"].default
    assert cli.CONF_FILENAME == config.CONF_FILENAME
    assert Path(cli.DEFAULT_DATADIR) == config.DEFAULT_DATADIR
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cli.VERSION == meta["project"]["version"]
    assert meta["project"]["scripts"]["minibtc-cli"] == "node.cli:main"


# -- Argument conversion -----------------------------------------------------------------------


def test_convert_values():
    assert cli.convert_values("getblock", ["abc", "2"]) == ["abc", 2]
    assert cli.convert_values("getblockhash", ["0"]) == [0]
    # Strings stay strings, even when they look like JSON.
    assert cli.convert_values("getblock", ["1", "2"]) == ["1", 2]
    assert cli.convert_values("unknown", ["1", "true", "[]"]) == ["1", "true", "[]"]
    # Amounts keep their exact text.
    (_, outputs) = cli.convert_values("createrawtransaction", ["[]", '{"a": 0.1}'])
    assert cli.json_dumps(outputs) == '{"a":0.1}'
    # Scalars, null, nested values.
    assert cli.convert_values("gettxout", ["t", "1", "false"]) == ["t", 1, False]
    assert cli.convert_values("logging", ["null", '["net"]']) == [None, ["net"]]
    for bad in ("x", "", "[1", "NaN", "Infinity", "-Infinity", "{'a': 1}", "1 2"):
        with pytest.raises(cli.CLIError) as e:
            cli.convert_values("getblockhash", [bad])
        assert str(e.value) == f"Error parsing JSON: {bad}"


def test_convert_named_values():
    assert cli.convert_named_values("getblock", ["blockhash=abc", "verbosity=2"]) == {
        "blockhash": "abc", "verbosity": 2}
    # Values may contain '='; a later value replaces an earlier one; empty values are strings.
    assert cli.convert_named_values("getblock", ["blockhash=a=b", "verbosity=1",
                                                 "verbosity=0"]) == {
        "blockhash": "a=b", "verbosity": 0}
    assert cli.convert_named_values("getblock", ["blockhash="]) == {"blockhash": ""}
    # Positional arguments go to "args", converted by position.
    assert cli.convert_named_values("getblock", ["abc", "2"]) == {"args": ["abc", 2]}
    with pytest.raises(cli.CLIError, match="Error parsing JSON: x"):
        cli.convert_named_values("getblock", ["verbosity=x"])


# -- JSON writing ------------------------------------------------------------------------------


def test_json_round_trip_keeps_numbers_verbatim():
    text = ('{"a":50.00000000,"b":1e-10,"c":-0.5E+3,"d":12345678901234567890,"e":[true,false,'
            'null],"f":"\\u00e9\\"\\\\\\n\\u0001\\u007f"}')
    v = cli.json_loads(text)
    assert cli.json_dumps(v) == text.replace("\\u00e9", "é")
    assert cli.json_dumps(v, indent=2) == (
        '{\n  "a": 50.00000000,\n  "b": 1e-10,\n  "c": -0.5E+3,\n'
        '  "d": 12345678901234567890,\n  "e": [\n    true,\n    false,\n    null\n  ],\n'
        '  "f": "é\\"\\\\\\n\\u0001\\u007f"\n}')


def test_json_empty_containers_as_univalue():
    assert cli.json_dumps([], indent=2) == "[\n]"
    assert cli.json_dumps({}, indent=2) == "{\n}"
    assert cli.json_dumps({"a": [], "b": {"c": {}}}, indent=2) == (
        '{\n  "a": [\n  ],\n  "b": {\n    "c": {\n    }\n  }\n}')
    assert cli.json_dumps({"a": [], "b": {}}) == '{"a":[],"b":{}}'


def test_val_str():
    assert cli.val_str(None) == ""
    assert cli.val_str("x") == "x"
    assert cli.val_str(cli.RawNumber("0.00001000")) == "0.00001000"
    assert cli.val_str(5) == "5"
    assert cli.val_str(True) == "true"


# -- Options -----------------------------------------------------------------------------------


def test_parse_parameters():
    opts, rest = cli.parse_parameters(["-regtest", "--named", "-rpcport=1", "-nostdin",
                                       "getblock", "-1", "-named"])
    assert opts == {"regtest": [""], "named": [""], "rpcport": ["1"], "stdin": ["0"]}
    assert rest == ["getblock", "-1", "-named"]
    assert cli.parse_parameters(["-nostdin=0"])[0] == {"stdin": ["1"]}
    with pytest.raises(cli.StartupError, match="Invalid parameter -nope"):
        cli.parse_parameters(["-nope"])
    with pytest.raises(cli.StartupError, match="Invalid parameter --bogus"):
        cli.parse_parameters(["--bogus=1"])


def test_interpret_bool():
    for v, want in (("", True), ("1", True), ("0", False), ("2", True), ("-1", True),
                    ("x", False), ("1x", True), ("00", False)):
        assert cli.interpret_bool(v) is want, v


def test_split_host_port():
    assert cli.split_host_port("127.0.0.1") == ("127.0.0.1", None)
    assert cli.split_host_port("127.0.0.1:8332") == ("127.0.0.1", 8332)
    assert cli.split_host_port("localhost:1") == ("localhost", 1)
    assert cli.split_host_port("[::1]:18443") == ("::1", 18443)
    assert cli.split_host_port("[::1]") == ("::1", None)
    assert cli.split_host_port("::1") == ("::1", None)
    for bad in ("host:0", "host:70000", "host:x"):
        with pytest.raises(cli.StartupError):
            cli.split_host_port(bad)


def test_uri_encode():
    assert cli.uri_encode("w1") == "w1"
    assert cli.uri_encode("a b/c?d") == "a%20b%2Fc%3Fd"
    assert cli.uri_encode("-._~") == "-._~"
    assert cli.uri_encode("ü") == "%C3%BC"


def test_settings_sections(tmp_path):
    (tmp_path / "bitcoin.conf").write_text(
        "rpcuser=top\nrpcport=1\nrpcconnect=10.0.0.1\n[regtest]\nrpcport=2\n[main]\n"
        "rpcuser=mainuser\n")
    s, chain, datadir, chain_dir = cli.load_settings({"datadir": [str(tmp_path)],
                                                      "chain": ["regtest"]})
    assert (chain, chain_dir) == ("regtest", str(tmp_path / "regtest"))
    assert (s.get("rpcuser"), s.get("rpcport"), s.get("rpcconnect")) == ("top", "2", "10.0.0.1")
    s, chain, _, chain_dir = cli.load_settings({"datadir": [str(tmp_path)]})  # main, as Core
    assert (chain, chain_dir) == ("main", str(tmp_path))
    assert (s.get("rpcuser"), s.get("rpcport")) == ("mainuser", "1")
    s, *_ = cli.load_settings({"datadir": [str(tmp_path)], "rpcport": ["3"]})
    assert s.get("rpcport") == "3"


def test_progress_bar():
    assert cli._progress_bar(0.5) == "\u2592" * 10 + "\u2591" * 10
    assert cli._progress_bar(0.0) == "\u2591" * 20
    assert cli._progress_bar(1.5) == ""
