"""Node settings: Core-style flags (-name=value, -name, -noname), a config file with
[chain] sections, defaults, validated by pydantic. A bad value stops start-up with a message
naming the option.

Precedence, as in Core: command line > the chain's [section] of the config file > the file's
top level > defaults. Network-specific options (ports, binds, wallets) at the top level of
the file apply only to main; elsewhere they must be in the chain's section.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from node.confparse import ConfigError, parse_conf_file

DEFAULT_DATADIR = Path("~/.minibtc")
CONF_FILENAME = "minibtc.conf"
LOG_CATEGORIES = ("net", "validation", "mempool", "rpc", "wallet", "bench", "reindex",
                  "estimatefee", "http", "blockstorage")

# Options that may be given more than once.
MULTI = {"loadblock", "rpcauth", "rpcbind", "rpcallowip", "debug", "debugexclude", "connect",
         "addnode", "wallet", "bind"}
# Only honoured at the top level of the config file on main (Core's network-only args).
NETWORK_ONLY = {"port", "rpcport", "rpcbind", "bind", "connect", "addnode", "wallet"}


def chain_dir(datadir: Path, chain: str) -> Path:
    """Core's layout: main uses the datadir itself, other chains a subfolder."""
    return datadir if chain == "main" else datadir / chain


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    chain: Literal["regtest", "main"] = "regtest"
    datadir: Path = DEFAULT_DATADIR
    conf: str = CONF_FILENAME
    rpcport: int | None = Field(default=None, ge=1, le=65535)
    rpcbind: list[str] = []
    rpcallowip: list[str] = []
    rpcuser: str | None = None
    rpcpassword: str | None = None
    rpcauth: list[str] = []
    rpcthreads: int = Field(default=8, ge=1, le=256)
    server: bool = True
    dbcache: int = Field(default=450, ge=4, le=1_000_000)
    par: int | None = Field(default=None, ge=0, le=64)
    loadblock: list[Path] = []
    reindex: bool = False
    reindex_chainstate: bool = Field(default=False, alias="reindex-chainstate")
    txindex: bool = False
    debug: list[str] = []
    debugexclude: list[str] = []
    printtoconsole: bool | None = None
    daemon: bool = False
    # Mempool (used from the mempool issue on)
    persistmempool: bool = True
    maxmempool: int = Field(default=300, ge=5, le=1_000_000)
    mempoolexpiry: int = Field(default=336, ge=1)
    mempoolfullrbf: bool = True
    minrelaytxfee: str | None = None
    fallbackfee: str | None = None
    # P2P
    port: int | None = Field(default=None, ge=0, le=65535)
    listen: bool | None = None  # default: on, unless -connect is given (as Core)
    bind: list[str] = []
    connect: list[str] = []
    addnode: list[str] = []
    maxconnections: int = Field(default=125, ge=0, le=10_000)
    peertimeout: int = Field(default=60, ge=1)  # seconds for the version handshake
    pingtimeout: int = Field(default=20 * 60, ge=1)  # minibtc's: Core's fixed 20 minutes
    timeout: int = Field(default=5000, ge=1)  # ms to wait for an outbound connection
    wallet: list[str] = []
    disablewallet: bool = False

    @field_validator("rpcallowip")
    @classmethod
    def _check_allowip(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"Invalid -rpcallowip subnet specification: {item}") from None
        return v

    @field_validator("debug", "debugexclude")
    @classmethod
    def _check_debug(cls, v: list[str]) -> list[str]:
        for item in v:
            if item not in ("0", "1", "all", "none", "") and item not in LOG_CATEGORIES:
                raise ValueError(f"Unsupported logging category -debug={item}.")
        return v

    # -- derived ----------------------------------------------------------------------------

    @property
    def chain_datadir(self) -> Path:
        return chain_dir(self.datadir.expanduser(), self.chain)

    def params(self):
        from consensus.params import get_params

        return get_params(self.chain)

    @property
    def effective_rpcport(self) -> int:
        return self.rpcport if self.rpcport is not None else self.params().rpc_port

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.params().default_port


def parse_flag_list(argv: list[str]) -> dict[str, list[str]]:
    """`-name=value`, `--name=value`, `-name` (true) and `-noname` (false) -> name: values.

    Raises ConfigError for anything that is not a flag."""
    out: dict[str, list[str]] = {}
    for arg in argv:
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"Error: Command line contains unexpected token '{arg}', see "
                              f"minibtcd -h for a list of options.")
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            value = "1"
        if name.startswith("no") and name[2:] in _FIELD_NAMES:
            name, value = name[2:], "0" if value in ("1", "") else "1"
        out.setdefault(name, []).append(value)
    return out


_FIELD_NAMES = {(f.alias or name) for name, f in NodeConfig.model_fields.items()}


def _to_model_input(flags: dict[str, list[str]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, values in flags.items():
        if name not in _FIELD_NAMES:
            raise ConfigError(f"Error: Invalid parameter -{name}")
        if name in MULTI:
            data[name] = [v for v in values if v != ""]
        else:
            data[name] = values[-1]
    return data


def load_config(argv: list[str]) -> NodeConfig:
    """Build the node's settings from the command line and the config file."""
    cli = parse_flag_list(argv)
    if "regtest" in cli:
        if cli.pop("regtest")[-1] not in ("0",):
            if "chain" in cli and cli["chain"][-1] != "regtest":
                raise ConfigError("Error: Invalid combination of -regtest and -chain. "
                                  "Can use at most one.")
            cli["chain"] = ["regtest"]
    datadir = Path(cli.get("datadir", [str(DEFAULT_DATADIR)])[-1]).expanduser()
    if "datadir" in cli and not datadir.is_dir():
        raise ConfigError(f'Error: Specified data directory "{datadir}" does not exist.')
    conf_name = cli.get("conf", [CONF_FILENAME])[-1]
    conf_path = Path(conf_name).expanduser()
    if not conf_path.is_absolute():
        conf_path = datadir / conf_path
    file_flags: dict[str, list[str]] = {}
    if conf_path.is_file():
        sections = parse_conf_file(conf_path.read_text(), str(conf_path))
        top = sections.get("", {})
        if "regtest" in top and top["regtest"][-1] != "0" and "chain" not in cli:
            cli["chain"] = ["regtest"]
        top.pop("regtest", None)
        chain = cli.get("chain", top.get("chain", ["regtest"]))[-1]
        # In the file the first value of an option wins (Core), on the command line the
        # last; the chain's section wins over the top level.
        for name, values in top.items():
            if name in NETWORK_ONLY and chain != "main":
                continue  # Core ignores these outside [main] for other chains
            file_flags[name] = values if name in MULTI else values[:1]
        for name, values in sections.get(chain, {}).items():
            file_flags[name] = values if name in MULTI else values[:1]
    elif "conf" in cli:
        raise ConfigError(f"Error: Specified config file \"{conf_path}\" could not be opened.")
    merged = {**file_flags, **cli}
    try:
        return NodeConfig.model_validate(_to_model_input(merged))
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raw = merged.get(name, merged.get(name.replace("_", "-"), ["?"]))
        shown = raw[-1] if isinstance(raw, list) and raw else raw
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"Error: Invalid value for -{name.replace('_', '-')}={shown}: {msg}"
                          ) from None
