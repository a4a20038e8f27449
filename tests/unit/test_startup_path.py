"""What the node's start-up path imports and does before RPC is ready (issue 20): the
settings are read without pydantic, with the same answers and errors as before."""

from __future__ import annotations

import subprocess
import sys
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
