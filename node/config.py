"""Node settings: Core-style flags (-name=value, -name, -noname), a config file with
[chain] sections, defaults, each typed option checked against its type and bounds. A bad
value stops start-up with a message naming the option.

Precedence, as in Core: command line > the chain's [section] of the config file > the file's
top level > defaults. Network-specific options (ports, binds, wallets) at the top level of
the file apply only to main; elsewhere they must be in the chain's section.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Literal

from node.confparse import ConfigError, parse_conf_file

DEFAULT_DATADIR = Path("~/.minibtc")
CONF_FILENAME = "bitcoin.conf"  # Core's name, so a Core setup's files work unchanged
# Core's logging categories (-debug=<category>); the ones minibtc never logs are accepted
# so that the same command lines work.
LOG_CATEGORIES = ("net", "tor", "mempool", "http", "bench", "zmq", "walletdb", "rpc",
                  "estimatefee", "addrman", "selectcoins", "reindex", "cmpctblock", "rand",
                  "prune", "proxy", "mempoolrej", "libevent", "coindb", "qt", "leveldb",
                  "validation", "i2p", "ipc", "lock", "blockstorage", "txreconciliation",
                  "scan", "txpackages", "kernel", "privatebroadcast", "wallet")
LOG_LEVELS = ("info", "debug", "trace")

# Options that may be given more than once.
MULTI = {"loadblock", "rpcauth", "rpcbind", "rpcallowip", "debug", "debugexclude", "connect",
         "addnode", "wallet", "bind", "whitebind", "whitelist", "uacomment", "loglevel",
         "testactivationheight", "rpcwhitelist", "deprecatedrpc", "seednode", "onlynet",
         "externalip", "includeconf", "blockfilterindex", "vbparams", "signetseednode",
         "esplorabind"}
# Only honoured at the top level of the config file on main (Core's network-only args).
NETWORK_ONLY = {"port", "rpcport", "rpcbind", "bind", "connect", "addnode", "wallet",
                "whitebind", "onion", "seednode"}
# Core options about things minibtc does not have (DNS seeds, NAT traversal, Tor/I2P/CJDNS,
# the GUI, log shrinking, SQLite's sync mode, IPC, Core's own thread counts and consistency
# self-checks): accepted and ignored. On the local networks minibtc runs, Core behaves the
# same with them as minibtc does without them.
NO_EFFECT = {"discover", "dnsseed", "forcednsseed", "fixedseeds", "seednode", "listenonion",
             "onion", "torcontrol", "torpassword", "i2psam", "i2pacceptincoming",
             "cjdnsreachable", "onlynet", "externalip", "natpmp", "upnp", "shrinkdebugfile",
             "unsafesqlitesync", "rpcdoccheck", "prevoutfetchthreads", "ipcbind",
             "dbbatchsize", "checkaddrman", "checkmempool",
             "checkblockindex", "capturemessages", "asmap", "sandbox", "rpccookieperms",
             "logtimestamps", "printpriority", "maxreceivebuffer", "allowignoredconf"}
# Core options minibtc reads through NodeConfig.arg_* where it implements them (beyond the
# typed fields below). Every name here is accepted; README lists which have an effect.
CORE_ARGS = NO_EFFECT | {
    "maxsigcachesize",  # half each to the signature and script execution caches
    "maxsendbuffer", "blockreconstructionextratxn",  # (node/p2p: fPauseSend, BIP152)
    "uacomment", "logtimemicros", "logthreadnames", "logsourcelocations", "logips",
    "loglevel", "logratelimit", "debuglogfile", "v2transport", "whitelist", "whitebind",
    "testactivationheight", "acceptnonstdtxn", "addresstype", "changetype", "prune",
    "fastprune", "permitbaremultisig", "datacarrier", "datacarriersize", "mintxfee",
    "minimumchainwork", "maxtipage", "blocksonly", "peerbloomfilters", "rpcwhitelist",
    "rpcwhitelistdefault", "rpcworkqueue", "rpcservertimeout", "blocksdir", "pid",
    "startupnotify", "blocknotify", "alertnotify", "shutdownnotify", "dustrelayfee",
    "discardfee", "paytxfee", "maxtxfee", "proxy", "proxyrandomize", "limitancestorcount",
    "limitancestorsize", "limitdescendantcount", "limitdescendantsize", "limitclustercount",
    "limitclustersize", "keypool", "settings", "mocktime", "stopatheight",
    "stopafterblockimport", "checkblocks", "checklevel", "blockfilterindex",
    "coinstatsindex", "txospenderindex", "rest", "incrementalrelayfee",
    "inboundrelaypercent", "walletrejectlongchains", "deprecatedrpc", "bytespersigop",
    "blockmaxweight", "blockmintxfee", "blockreservedweight", "blockversion", "maxorphantx",
    "maxuploadtarget", "networkactive", "bantime", "maxtimeadjustment", "assumevalid",
    "walletbroadcast", "walletnotify", "walletrbf", "spendzeroconfchange",
    "avoidpartialspends", "maxapsfee", "consolidatefeerate", "txconfirmtarget",
    "walletdir", "walletcrosschain", "signer", "vbparams", "persistmempoolv1",
    "dbcrashratio", "checkpoints", "rpccookiefile", "whitelistrelay", "acceptstalefeeestimates",
    "whitelistforcerelay", "includeconf", "testnet", "testnet4", "signet",
    "signetchallenge", "signetseednode", "rpcclienttimeout", "blocksxor", "peerblockfilters",
    "zmqpubhashblock", "zmqpubhashtx", "zmqpubrawblock", "zmqpubrawtx", "zmqpubsequence",
    "zmqpubhashblockhwm", "zmqpubhashtxhwm", "zmqpubrawblockhwm", "zmqpubrawtxhwm",
    "zmqpubsequencehwm",  # node/zmqpub.py
    "esplora", "esplorabind", "esploracors",  # minibtc's own: the Esplora API (node/esplora)
}


def chain_dir(datadir: Path, chain: str) -> Path:
    """Core's layout: main uses the datadir itself, other chains a subfolder."""
    return datadir if chain == "main" else datadir / chain


class _Field:
    """One typed option of NodeConfig: its default, bounds and the name it is given by."""

    __slots__ = ("name", "alias", "annotation", "default", "ge", "le")

    def __init__(self, name: str, annotation: Any, default: Any, ge: int | None = None,
                 le: int | None = None, alias: str | None = None) -> None:
        self.name, self.alias, self.annotation = name, alias, annotation
        self.default, self.ge, self.le = default, ge, le


class _Invalid(ValueError):
    """A value that does not fit its option (the message says how, as Core's text would)."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


# The options with a field of their own (every other Core option is kept raw in `args`).
# Checked here by hand rather than by a pydantic model: importing pydantic and building the
# model's validators cost more than the rest of loading the node's settings together.
_SPECS = [
    _Field("chain", Literal["regtest", "main"], "main"),  # Core starts on main by default
    _Field("datadir", Path, DEFAULT_DATADIR),
    _Field("conf", str, CONF_FILENAME),
    _Field("rpcport", int | None, None, 1, 65535),
    _Field("rpcbind", list[str], []),
    _Field("rpcallowip", list[str], []),
    _Field("rpcuser", str | None, None),
    _Field("rpcpassword", str | None, None),
    _Field("rpcauth", list[str], []),
    _Field("rpcthreads", int, 16, 1, 256),
    _Field("server", bool, True),
    _Field("dbcache", int, 450, 4, 1_000_000),
    _Field("par", int | None, None, -64, 64),
    _Field("loadblock", list[Path], []),
    _Field("reindex", bool, False),
    _Field("reindex_chainstate", bool, False, alias="reindex-chainstate"),
    _Field("txindex", bool, False),
    _Field("debug", list[str], []),
    _Field("debugexclude", list[str], []),
    _Field("printtoconsole", bool | None, None),
    _Field("daemon", bool, False),
    _Field("daemonwait", bool, False),
    _Field("persistmempool", bool, True),
    _Field("maxmempool", int, 300, 5, 1_000_000),
    _Field("mempoolexpiry", int, 336, 1),
    _Field("mempoolfullrbf", bool, True),
    _Field("minrelaytxfee", str | None, None),
    _Field("fallbackfee", str | None, None),
    _Field("port", int | None, None, 0, 65535),
    _Field("listen", bool | None, None),  # default: on, unless -connect is given (as Core)
    _Field("bind", list[str], []),
    _Field("connect", list[str], []),
    _Field("addnode", list[str], []),
    _Field("maxconnections", int, 125, 0, 10_000),
    _Field("peertimeout", int, 60, 1),  # seconds for the version handshake
    _Field("pingtimeout", int, 20 * 60, 1),  # minibtc's: Core's fixed 20 minutes
    _Field("timeout", int, 5000, 1),  # ms to wait for an outbound connection
    _Field("wallet", list[str], []),
    _Field("disablewallet", bool, False),
    # Every other Core option given (CORE_ARGS), raw: read them with arg_bool/arg_int/...
    _Field("args", dict[str, list[str]], {}),
    # "Command-line arg: ...", "Config file arg: ..." lines (Core's)
    _Field("arg_log", list[str], []),
    _Field("wallet_negated", bool, False),  # -nowallet: no wallet, not even settings.json's
    # Said once at start-up (unknown config-file keys, ignored includeconf, ...).
    _Field("warnings", list[str], []),
]


def _parse_int(name: str, text: str) -> int:
    """An integer option's text, read as pydantic read it: ASCII digits (underscores between
    them allowed), a sign, spaces around, and an all-zero fraction ("5.0", not "5.")."""
    m = _INT_TEXT.fullmatch(text.strip())
    if m is None:
        raise _Invalid(name, "Input should be a valid integer, unable to parse string as an "
                             "integer")
    return int(m.group(1))


_INT_TEXT = re.compile(r"([+-]?[0-9]+(?:_[0-9]+)*)(?:\.0+)?", re.ASCII)


def _check_value(f: _Field, value: Any) -> Any:
    """`value` as field `f` keeps it, or _Invalid (pydantic's wording, which this replaced)."""
    kind = f.annotation
    optional = kind in (int | None, bool | None, str | None)
    if value is None:
        if optional:
            return None
        raise _Invalid(f.name, "Input should not be None")
    if kind in (int, int | None):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _Invalid(f.name, "Input should be a valid integer")
        if isinstance(value, str):
            value = _parse_int(f.name, value)
        if f.ge is not None and value < f.ge:
            raise _Invalid(f.name, f"Input should be greater than or equal to {f.ge}")
        if f.le is not None and value > f.le:
            raise _Invalid(f.name, f"Input should be less than or equal to {f.le}")
        return value
    if kind in (bool, bool | None):
        if isinstance(value, str):
            return interpret_bool(value)
        return bool(value)
    if kind in (str, str | None):
        return str(value)
    if kind is Path:
        return Path(value)
    if kind == Literal["regtest", "main"]:
        if value not in ("regtest", "main"):
            raise _Invalid(f.name, "Input should be 'regtest' or 'main'")
        return value
    if kind == list[Path]:
        return [Path(v) for v in value]
    if kind == list[str]:
        return [str(v) for v in value]
    return value


class NodeConfig:
    """The node's settings: the typed options below as attributes, every other Core option
    raw in `args` (read with arg_set/arg_str/arg_bool/arg_int/arg_list)."""

    model_fields = {f.name: f for f in _SPECS}  # (the names pydantic gave this table)
    _by_name = {**{f.name: f for f in _SPECS}, **{f.alias: f for f in _SPECS if f.alias}}

    def __init__(self, **data: Any) -> None:
        for name in data:
            if name not in self._by_name:
                raise _Invalid(name, "Extra inputs are not permitted")
        for f in _SPECS:
            if f.name in data:
                value = data[f.name]
            elif f.alias is not None and f.alias in data:
                value = data[f.alias]
            else:
                d = f.default
                setattr(self, f.name, d.copy() if isinstance(d, (list, dict)) else d)
                continue
            setattr(self, f.name, _check_value(f, value))
        self._check_allowip(self.rpcallowip)
        self._check_debug(self.debug, "debug")
        self._check_debug(self.debugexclude, "debugexclude")

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> NodeConfig:
        return cls(**data)

    @staticmethod
    def _check_allowip(v: list[str]) -> None:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise _Invalid("rpcallowip", f"Invalid -rpcallowip subnet specification: "
                                             f"{item}") from None

    @staticmethod
    def _check_debug(v: list[str], field: str) -> None:
        cleared = [i for i, item in enumerate(v) if item in ("0", "none")]
        for item in v[cleared[-1] + 1:] if cleared else v:  # a clear drops what came before
            if item not in ("0", "1", "all", "none", "") and item not in LOG_CATEGORIES:
                raise _Invalid(field, f"Unsupported logging category -{field}={item}.")

    # -- Core options without a field (as Core's ArgsManager reads them) ---------------------

    def arg_set(self, name: str) -> bool:
        return name in self.args

    def arg_str(self, name: str, default: str | None = None) -> str | None:
        values = self.args.get(name)
        return values[-1] if values else default

    def arg_bool(self, name: str, default: bool = False) -> bool:
        value = self.arg_str(name)
        return default if value is None else interpret_bool(value)

    def arg_int(self, name: str, default: int = 0) -> int:
        value = self.arg_str(name)
        return default if value is None else interpret_int(value)

    def arg_list(self, name: str) -> list[str]:
        """Every value given, less those before (and including) a negation (-noname)."""
        values = self.args.get(name, [])
        if NEGATED in values:
            values = values[len(values) - values[::-1].index(NEGATED):]
        return [v for v in values if v != NEGATED]

    # -- derived ----------------------------------------------------------------------------

    @property
    def settings_file(self) -> Path | None:
        """settings.json (-settings), None with -nosettings."""
        name = self.arg_str("settings", "settings.json")
        if self.arg_set("settings") and name in ("0", ""):
            return None
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.chain_datadir / path

    @property
    def blocks_dir(self) -> Path | None:
        """-blocksdir's folder for this chain's blk/rev files (None: the datadir's)."""
        base = self.arg_str("blocksdir")
        if not base:
            return None
        path = Path(base).expanduser()
        return chain_dir(path, self.chain) / "blocks"

    @property
    def chain_datadir(self) -> Path:
        return chain_dir(self.datadir.expanduser(), self.chain)

    def params(self):
        """The chain's parameters, with regtest's -testactivationheight/-vbparams applied."""
        from consensus.params import get_params, with_test_options

        params = get_params(self.chain)
        heights, vbparams = self.arg_list("testactivationheight"), self.arg_list("vbparams")
        if self.chain == "regtest" and (heights or vbparams):
            try:
                params = with_test_options(params, heights, vbparams)
            except ValueError as err:
                raise ConfigError(f"Error: {err}") from None
        return params

    @property
    def effective_rpcport(self) -> int:
        return self.rpcport if self.rpcport is not None else self.params().rpc_port

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.params().default_port


NEGATED = "\x00negated"  # how -noname is kept among a multi-valued option's values


def interpret_bool(value: str) -> bool:
    """Core's InterpretBool: empty is true, otherwise the leading integer is not zero."""
    return value == "" or interpret_int(value) != 0


def interpret_int(value: str) -> int:
    """Core's LocaleIndependentAtoi: the leading integer, 0 when there is none."""
    m = re.match(r"\s*([+-]?\d+)", value)
    return int(m.group(1)) if m else 0


_FIELD_NAMES = {(f.alias or name) for name, f in NodeConfig.model_fields.items()} - {
    "args", "warnings", "wallet_negated", "arg_log"}
SENSITIVE = {"rpcuser", "rpcpassword", "rpcauth", "torpassword"}
_BOOL_FIELDS = {(f.alias or name) for name, f in NodeConfig.model_fields.items()
                if f.annotation in (bool, bool | None)}
KNOWN = _FIELD_NAMES | CORE_ARGS | {"regtest", "version", "help"}


def _display(value: str, negated: bool) -> str:
    """A value as Core's error messages show it (its JSON form)."""
    if negated:
        return "true" if value == "1" else "false"
    return json.dumps(value)


def _log_line(prefix: str, name: str, value: str, negated: bool) -> str:
    shown = "****" if name in SENSITIVE else _display(value, negated)
    return f"{prefix}{name}={shown}"


def parse_flag_list(argv: list[str], log: list[str] | None = None) -> dict[str, list[str]]:
    """`-name=value`, `--name=value`, `-name` (true) and `-noname` (false) -> name: values.

    Raises ConfigError for anything that is not a known flag, with Core's messages."""
    out: dict[str, list[str]] = {}
    for arg in argv:
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"Error: Command line contains unexpected token '{arg}', see "
                              f"minibtcd -h for a list of options.")
        name, eq, value = arg.lstrip("-").partition("=")
        negated = False
        if name not in KNOWN and name.startswith("no") and name[2:] in KNOWN:
            name, negated = name[2:], True
            value = "1" if (eq and not interpret_bool(value)) else "0"
        elif not eq:
            value = "1" if name in _BOOL_FIELDS else ""
        if name not in KNOWN:
            raise ConfigError(f"Error: Error parsing command line arguments: "
                              f"Invalid parameter -{name}")
        if name == "includeconf" and not (negated and value == "0"):
            raise ConfigError("Error: Error parsing command line arguments: -includeconf "
                              "cannot be used from commandline; -includeconf="
                              + _display(value, negated))
        if log is not None:
            log.append(_log_line("Command-line arg: ", name, value, negated))
        if negated and value == "0" and name in MULTI:
            value = NEGATED
        elif name == "debug" and value == "":
            value = "1"  # -debug alone: every category
        out.setdefault(name, []).append(value)
    return out


def _to_model_input(flags: dict[str, list[str]]) -> dict[str, Any]:
    data: dict[str, Any] = {"args": {}}
    for name, values in flags.items():
        if name in CORE_ARGS and name not in _FIELD_NAMES:
            data["args"][name] = values
        elif name in MULTI:
            if NEGATED in values:
                values = values[len(values) - values[::-1].index(NEGATED):]
            data[name] = [v for v in values if v not in ("", NEGATED)]
        elif name in _BOOL_FIELDS:
            data[name] = interpret_bool(values[-1])
        else:
            data[name] = values[-1]
    return data


def _read_conf(path: Path, chain_of, datadir: Path, warnings: list[str],
               nested: bool = False) -> list[tuple[str, str, str]]:
    """(section, name, value) of a config file and the files it includes, in order."""
    try:
        sections = parse_conf_file(path.read_text(), str(path))
    except OSError as err:
        raise ConfigError(f"Error: Error reading configuration file: {err}") from None
    items = [(sec, name, v) for sec, opts in sections.items()
             for name, values in opts.items() for v in values]
    out = []
    includes = []
    chain = chain_of(items)
    for sec, name, value in items:
        if name == "includeconf":
            if sec in ("", chain):
                if nested:
                    warnings.append("warning: -includeconf cannot be used from included "
                                    f"files; ignoring -includeconf={value}")
                else:
                    includes.append(value)
            continue
        out.append((sec, name, value))
    for inc in includes:
        inc_path = Path(inc).expanduser()
        if not inc_path.is_absolute():
            inc_path = datadir / inc_path
        if not inc_path.is_file():
            raise ConfigError("Error: Error reading configuration file: Failed to include "
                              f"configuration file {inc}")
        out += _read_conf(inc_path, lambda _items: chain, datadir, warnings, nested=True)
    return out


def load_config(argv: list[str]) -> NodeConfig:
    """Build the node's settings from the command line and the config file."""
    arg_log: list[str] = []
    cli = parse_flag_list(argv, arg_log)
    chains = [c for c in ("regtest", "testnet", "testnet4", "signet")
              if c in cli and interpret_bool(cli[c][-1])]
    for c in ("regtest", "testnet", "testnet4", "signet"):
        cli.pop(c, None)
    if len(chains) + ("chain" in cli) > 1:
        raise ConfigError("Error: Invalid combination of -regtest, -signet, -testnet, "
                          "-testnet4 and -chain. Can use at most one.")
    if chains:
        cli["chain"] = chains
    datadir = Path(cli.get("datadir", [str(DEFAULT_DATADIR)])[-1]).expanduser()
    if "datadir" in cli and not datadir.is_dir():
        raise ConfigError(f'Error: Specified data directory "{datadir}" does not exist.')
    conf_name = cli.get("conf", [CONF_FILENAME])[-1]
    conf_path = Path(conf_name).expanduser()
    if not conf_path.is_absolute():
        conf_path = datadir / conf_path
    warnings: list[str] = []
    file_flags: dict[str, list[str]] = {}
    if conf_path.is_file():
        def chain_of(items) -> str:
            if "chain" in cli:
                return cli["chain"][-1]
            for sec, name, value in items:
                if sec == "" and name in ("regtest", "testnet", "testnet4", "signet") \
                        and interpret_bool(value):
                    return name
                if sec == "" and name == "chain":
                    return value
            return "main"

        entries = _read_conf(conf_path, chain_of, datadir, warnings)
        chain = chain_of(entries)
        cli.setdefault("chain", [chain])
        # In the file the first value of an option wins (Core), on the command line the
        # last; the chain's section wins over the top level.
        top: dict[str, list[str]] = {}
        section: dict[str, list[str]] = {}
        for sec, name, value in entries:
            negated = name.startswith("no") and name not in KNOWN and name[2:] in KNOWN
            if negated:
                name, value = name[2:], ("1" if not interpret_bool(value) else "0")
            if name in KNOWN:
                arg_log.append(_log_line(f"Config file arg: {f'[{sec}] ' if sec else ''}",
                                         name, value, negated))
            if name in ("regtest", "testnet", "testnet4", "signet", "chain"):
                continue
            if name not in KNOWN:
                warnings.append(f"Ignoring unknown configuration value {name}")
                continue
            if sec == "":
                if name in NETWORK_ONLY and chain != "main":
                    continue  # Core ignores these outside [main] for other chains
                top.setdefault(name, []).append(value)
            elif sec == chain or (sec == "test" and chain == "testnet"):
                section.setdefault(name, []).append(value)
        for name in {**top, **section}:
            values = section.get(name, []) + top.get(name, []) if name in MULTI else \
                (section.get(name) or top.get(name))[:1]
            file_flags[name] = values
    elif "conf" in cli:
        raise ConfigError(f"Error: Error reading configuration file: specified config file "
                          f"\"{conf_path}\" could not be opened.")
    blocksdir = cli.get("blocksdir", file_flags.get("blocksdir", [""]))[-1]
    if blocksdir and not Path(blocksdir).expanduser().is_dir():
        raise ConfigError(f'Error: Specified blocks directory "{blocksdir}" does not exist.')
    if cli.get("chain", ["main"])[-1] not in ("main", "regtest"):
        raise ConfigError(f"Error: Invalid -chain={cli['chain'][-1]}: minibtcd runs main and "
                          f"regtest only")
    merged = {**file_flags, **cli}
    for name in ("port", "rpcport"):  # Core's check and text (0 and non-numbers too)
        value = merged.get(name, ["1"])[-1]
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ConfigError(f"Error: Invalid port specified in -{name}: '{value}'")
    for name in MULTI & file_flags.keys() & cli.keys():
        if NEGATED not in cli[name]:  # a negation on the command line drops the file's
            merged[name] = cli[name] + file_flags[name]  # Core: command line first
    try:
        config = NodeConfig.model_validate(_to_model_input(merged))
    except _Invalid as err:
        name = err.field
        raw = merged.get(name, merged.get(name.replace("_", "-"), ["?"]))
        shown = raw[-1] if isinstance(raw, list) and raw else raw
        msg = str(err)
        if msg.startswith("Unsupported logging category"):
            raise ConfigError(f"Error: {msg}") from None
        raise ConfigError(f"Error: Invalid value for -{name.replace('_', '-')}={shown}: {msg}"
                          ) from None
    work = config.arg_str("minimumchainwork")
    if work is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]{1,64}", work):
        raise ConfigError(f"Error: Invalid minimum work specified ({work}), must be up to 64 "
                          f"hex digits")
    config.params()  # (its errors stop start-up here)
    config.warnings = warnings
    config.arg_log = arg_log
    config.wallet_negated = NEGATED in cli.get("wallet", [])
    return config
