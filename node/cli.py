"""minibtc-cli: bitcoin-cli's twin.

    minibtc-cli [options] <command> [params]
    minibtc-cli [options] -named <command> [name=value]...
    minibtc-cli [options] -getinfo

Same options, argument conversion, output and errors as bitcoin-cli. Start-up time matters (it
runs once per call in shell scripts), so this module imports only small stdlib modules at the
top and speaks HTTP/1.1 over a plain socket: http.client alone (with the email package it
pulls in) would add ~25 ms. Numbers in replies are kept as the server wrote them (amounts stay
50.00000000), with a tiny JSON writer instead of node.rpc.jsonutil (which imports consensus).
"""

from __future__ import annotations

import os
import sys

VERSION = "0.1.0"  # the distribution's version (pyproject.toml); a unit test keeps them equal
PACKAGE_NAME = "minibtc"
DEFAULT_RPCCONNECT = "127.0.0.1"
DEFAULT_HTTP_CLIENT_TIMEOUT = 900
DEFAULT_DATADIR = "~/.minibtc"
CONF_FILENAME = "bitcoin.conf"
COOKIE_FILENAME = ".cookie"
RPC_PORTS = {"regtest": 18443, "main": 8332}  # consensus.params' rpc_port (tested)
DEFAULT_CHAIN = "main"  # as minibtcd (and Core)

RPC_IN_WARMUP = -28
RPC_WALLET_NOT_SPECIFIED = -19
RPC_METHOD_NOT_FOUND = -32601

# name -> help. Every option takes `-name`, `-name=value`, `--name...` and `-noname`.
OPTIONS: dict[str, str] = {
    "?": "Print this help message and exit",
    "h": "Print this help message and exit",
    "help": "Print this help message and exit",
    "version": "Print version and exit",
    "conf=<file>": "Specify configuration file. Relative paths will be prefixed by datadir "
                   f"location. (default: {CONF_FILENAME})",
    "datadir=<dir>": f"Specify data directory (default: {DEFAULT_DATADIR})",
    "getinfo": "Get general information from the remote server, as a human-readable summary. "
               "It is built from several non-atomic requests (getblockchaininfo, and where the "
               "server has them getnetworkinfo, getwalletinfo and getbalances).",
    "color=<when>": "Color setting for -getinfo output (default: auto). Valid values: always, "
                    "auto (add color codes when standard output is a terminal), never.",
    "named": "Pass named instead of positional arguments (default: false)",
    "rpcclienttimeout=<n>": "Timeout in seconds during HTTP requests, or 0 for no timeout. "
                            f"(default: {DEFAULT_HTTP_CLIENT_TIMEOUT})",
    "rpcconnect=<ip>": f"Send commands to node running on <ip> (default: {DEFAULT_RPCCONNECT})",
    "rpccookiefile=<loc>": "Location of the auth cookie. Relative paths will be prefixed by a "
                           "net-specific datadir location. (default: data dir)",
    "rpcpassword=<pw>": "Password for JSON-RPC connections",
    "rpcport=<port>": "Connect to JSON-RPC on <port> (default: "
                      f"{RPC_PORTS['main']}, regtest: {RPC_PORTS['regtest']})",
    "rpcuser=<user>": "Username for JSON-RPC connections",
    "rpcwait": "Wait for RPC server to start",
    "rpcwaittimeout=<n>": "Timeout in seconds to wait for the RPC server to start, or 0 for no "
                          "timeout. (default: 0)",
    "rpcwallet=<walletname>": "Send RPC for non-default wallet on RPC server (needs to exactly "
                              "match corresponding -wallet option passed to minibtcd). This "
                              "changes the RPC endpoint used, e.g. "
                              "http://127.0.0.1:18443/wallet/<walletname>",
    "stdin": "Read extra arguments from standard input, one per line until EOF/Ctrl-D "
             "(recommended for sensitive information such as passphrases). When combined with "
             "-stdinrpcpass, the first line from standard input is used for the RPC password.",
    "stdinrpcpass": "Read RPC password from standard input as a single line. When combined "
                    "with -stdin, the first line from standard input is used for the RPC "
                    "password. When combined with -stdinwalletpassphrase, -stdinrpcpass "
                    "consumes the first line, and -stdinwalletpassphrase consumes the second.",
    "stdinwalletpassphrase": "Read wallet passphrase from standard input as a single line. "
                             "When combined with -stdin, the first line from standard input "
                             "is used for the wallet passphrase.",
    "chain=<chain>": f"Use the chain <chain> (default: {DEFAULT_CHAIN}). Allowed values: "
                     "main, regtest",
    "regtest": "Use the regression test chain (the default; same as -chain=regtest)",
}
_OPTION_NAMES = {k.split("=", 1)[0] for k in OPTIONS}
# Honoured at the top level of the config file only on main, as Core's NETWORK_ONLY args.
_NETWORK_ONLY = {"rpcport"}


class CLIError(Exception):
    """Printed as `error: <message>` on stderr, exit status 1."""


class StartupError(Exception):
    """Printed as is on stderr, exit status 1 (Core's AppInitRPC failures)."""


class ConnectionFailed(CLIError):
    """Could not reach the server (retried under -rpcwait)."""


# -- JSON ----------------------------------------------------------------------------------


class RawNumber:
    """A JSON number with a fraction or exponent, kept as the text it was written with, as
    UniValue keeps it: 50.00000000 stays 50.00000000 and 1e-10 stays 1e-10."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __float__(self) -> float:
        return float(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"RawNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _reject_constant(name: str):
    raise ValueError(f"invalid JSON constant {name}")


def json_loads(text: str | bytes):
    import json

    return json.loads(text, parse_float=RawNumber, parse_constant=_reject_constant)


def json_dumps(value, indent: int | None = None) -> str:
    """UniValue's write(): compact, or with `indent` spaces and `"key": value`."""
    from json.encoder import encode_basestring

    out: list[str] = []
    _write(value, indent, 0, out, encode_basestring)
    return "".join(out)


def _str(s: str, enc) -> str:
    r = enc(s)
    return r.replace("\x7f", "\\u007f") if "\x7f" in r else r


def _write(v, indent, level, out, enc) -> None:
    if isinstance(v, str):
        out.append(_str(v, enc))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, RawNumber):
        out.append(v.text)
    elif isinstance(v, float):
        out.append(f"{v:.16g}")
    elif isinstance(v, dict):
        if not v:  # UniValue writes an empty object as "{", newline, closing indent, "}"
            out.append("{}" if indent is None else "{\n" + " " * (indent * level) + "}")
            return
        if indent is None:
            out.append("{")
            first = True
            for k, item in v.items():
                if not first:
                    out.append(",")
                first = False
                out.append(_str(k, enc))
                out.append(":")
                _write(item, indent, level, out, enc)
            out.append("}")
            return
        pad = "\n" + " " * (indent * (level + 1))
        out.append("{")
        first = True
        for k, item in v.items():
            out.append(pad if first else "," + pad)
            first = False
            out.append(_str(k, enc))
            out.append(": ")
            _write(item, indent, level + 1, out, enc)
        out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]" if indent is None else "[\n" + " " * (indent * level) + "]")
            return
        if indent is None:
            out.append("[")
            for i, item in enumerate(v):
                if i:
                    out.append(",")
                _write(item, indent, level, out, enc)
            out.append("]")
            return
        pad = "\n" + " " * (indent * (level + 1))
        out.append("[")
        for i, item in enumerate(v):
            out.append(pad if i == 0 else "," + pad)
            _write(item, indent, level + 1, out, enc)
        out.append("\n" + " " * (indent * level) + "]")
    else:
        raise TypeError(f"cannot write {type(v).__name__} as JSON")


def val_str(v) -> str:
    """UniValue's getValStr(): a string as is, a number as written, null as ""."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json_dumps(v)


# -- Argument conversion (bitcoin-cli's RPCConvertValues / RPCConvertNamedValues) ----------------


def parse_json_arg(value: str):
    try:
        return json_loads(value)
    except ValueError:
        raise CLIError(f"Error parsing JSON: {value}") from None


def convert_values(method: str, args: list[str]) -> list:
    from node.rpc.cli_params import convert_position

    return [parse_json_arg(a) if convert_position(method, i) else a for i, a in enumerate(args)]


def convert_named_values(method: str, args: list[str]) -> dict:
    """name=value pairs; a later value for a name replaces an earlier one. Arguments without
    `=` are positional and go, converted by position, in an "args" array (as bitcoin-cli).
    An argument with `=` whose name is no known parameter of the method is positional too
    when its position takes JSON that parses, or a listed string (base64 ending in '=')."""
    from node.rpc.cli_params import (
        convert_name,
        convert_position,
        known_name,
        string_position,
    )

    params: dict = {}
    positional: list = []
    for a in args:
        name, eq, value = a.partition("=")
        idx = len(positional)
        if not eq:
            positional.append(parse_json_arg(a) if convert_position(method, idx) else a)
            continue
        if not known_name(method, name):
            if convert_position(method, idx):
                try:
                    positional.append(json_loads(a))
                    continue
                except ValueError:
                    pass
            elif string_position(method, idx):
                positional.append(a)
                continue
        params[name] = parse_json_arg(value) if convert_name(method, name) else value
    if positional and "args" not in params:
        params["args"] = positional
    return params


# -- Options and configuration --------------------------------------------------------------


def interpret_bool(value: str) -> bool:
    """Core's InterpretBool: "" is true, otherwise the leading integer is non-zero."""
    if value == "":
        return True
    digits = ""
    for i, c in enumerate(value.strip()):
        if c.isdigit() or (i == 0 and c in "+-"):
            digits += c
        else:
            break
    try:
        return int(digits) != 0
    except ValueError:
        return False


def parse_parameters(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Leading `-options` (up to the first argument not starting with '-') -> (options, rest).
    Raises StartupError for an unknown option."""
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        raw = argv[i]
        i += 1
        key, eq, value = raw.partition("=")
        name = key[2:] if key.startswith("--") else key[1:]
        if not eq:
            value = ""
        if name not in _OPTION_NAMES and name.startswith("no") and name[2:] in _OPTION_NAMES:
            name = name[2:]
            value = "0" if interpret_bool(value) else "1"
        if name not in _OPTION_NAMES:
            raise StartupError(f"Error parsing command line arguments: Invalid parameter {key}")
        opts.setdefault(name, []).append(value)
    return opts, argv[i:]


class Settings:
    """Command line > the chain's [section] of the config file > the file's top level."""

    def __init__(self, cli: dict[str, list[str]]) -> None:
        self.cli = cli
        self.conf: dict[str, list[str]] = {}

    def get(self, name: str, default: str | None = None) -> str | None:
        if name in self.cli:
            return self.cli[name][-1]
        if name in self.conf:
            return self.conf[name][-1]
        return default

    def is_set(self, name: str) -> bool:
        return name in self.cli or name in self.conf

    def get_bool(self, name: str, default: bool = False) -> bool:
        v = self.get(name)
        return default if v is None else interpret_bool(v)

    def get_int(self, name: str, default: int) -> int:
        v = self.get(name)
        if v is None:
            return default
        try:
            return int(v.strip())
        except ValueError:
            raise StartupError(f"Error: Invalid value for -{name}={v} (expected an integer)"
                               ) from None


def _chain_from(cli: dict[str, list[str]], top: dict[str, list[str]]) -> str:
    regtest = cli["regtest"][-1] if "regtest" in cli else None
    chain = cli["chain"][-1] if "chain" in cli else None
    if regtest is not None and interpret_bool(regtest):
        if chain is not None and chain != "regtest":
            raise StartupError("Error: Invalid combination of -regtest and -chain. Can use at "
                               "most one.")
        return "regtest"
    if chain is not None:
        return chain
    if "regtest" in top and interpret_bool(top["regtest"][-1]):
        return "regtest"
    if "chain" in top:
        return top["chain"][-1]
    return DEFAULT_CHAIN


def load_settings(cli: dict[str, list[str]]) -> tuple[Settings, str, str, str]:
    """-> (settings, chain, base datadir, chain datadir), the config file read."""
    settings = Settings(cli)
    datadir = os.path.expanduser(cli["datadir"][-1] if "datadir" in cli else DEFAULT_DATADIR)
    if "datadir" in cli and not os.path.isdir(datadir):
        raise StartupError(f'Error: Specified data directory "{cli["datadir"][-1]}" does not '
                           "exist.")
    conf_name = os.path.expanduser(cli["conf"][-1] if "conf" in cli else CONF_FILENAME)
    conf_path = conf_name if os.path.isabs(conf_name) else os.path.join(datadir, conf_name)
    sections: dict[str, dict[str, list[str]]] = {"": {}}
    if os.path.isfile(conf_path):
        from node.confparse import ConfigError, parse_conf_file

        try:
            with open(conf_path, encoding="utf-8") as f:
                sections = parse_conf_file(f.read(), conf_path)
        except ConfigError as err:
            msg = str(err)
            if not msg.startswith("Error reading configuration file"):
                msg = f"Error reading configuration file: {msg}"
            raise StartupError(msg) from None
        except (OSError, UnicodeDecodeError) as err:
            raise StartupError(f"Error reading configuration file: {err}") from None
    elif "conf" in cli:
        raise StartupError("Error reading configuration file: specified config file "
                           f'"{conf_path}" could not be opened.')
    top = sections.get("", {})
    chain = _chain_from(cli, top)
    if chain not in RPC_PORTS:
        raise StartupError(f"Error: Unknown chain {chain}. Allowed values: main, regtest.")
    conf: dict[str, list[str]] = {}
    for name, values in top.items():
        if name in _NETWORK_ONLY and chain != "main":
            continue
        conf[name] = values
    for name, values in sections.get(chain, {}).items():
        conf[name] = values
    settings.conf = conf
    chain_dir = datadir if chain == "main" else os.path.join(datadir, chain)
    return settings, chain, datadir, chain_dir


def split_host_port(s: str) -> tuple[str, int | None]:
    """Core's SplitHostPort: "host", "host:port", "[v6]:port", "v6" (several colons)."""
    colon = s.rfind(":")
    bracketed = s.startswith("[") and colon > 0 and s[colon - 1] == "]"
    several = colon >= 0 and s.find(":") != colon
    if colon >= 0 and (colon == 0 or bracketed or not several):
        port_s = s[colon + 1:]
        if port_s.isdigit() and 0 < int(port_s) <= 65535:
            host = s[:colon]
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            return host, int(port_s)
        raise StartupError(f"Error: Invalid port provided in -rpcconnect: {s}")
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    return s, None


# -- HTTP -------------------------------------------------------------------------------------

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def uri_encode(s: str) -> str:
    """evhttp_uriencode(s, space_as_plus=false): everything but unreserved characters as %XX."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in s.encode("utf-8"))


class Connection:
    def __init__(self, host: str, port: int, timeout: float | None, auth: str) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.auth = auth  # "user:password"

    def _failed(self, detail: str = "") -> ConnectionFailed:
        return ConnectionFailed(
            f"Could not connect to the server {self.host}:{self.port}{detail}\n\n"
            f"Make sure the minibtcd server is running and that you are connecting to the "
            f"correct RPC port.\nUse \"minibtc-cli -help\" for more info.")

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One POST with `Connection: close` -> (HTTP status, body)."""
        import socket
        from binascii import b2a_base64

        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError:
            raise self._failed() from None
        token = b2a_base64(self.auth.encode("utf-8"), newline=False).decode("ascii")
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nAuthorization: Basic {token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        chunks: list[bytes] = []
        with sock:
            try:
                sock.sendall(head + body)
            except TimeoutError:
                raise self._failed(' (error code 0 - "timeout reached")') from None
            except OSError:
                pass  # the server may answer (413, 401) before reading all of the body
            try:
                while True:
                    data = sock.recv(262144)
                    if not data:
                        break
                    chunks.append(data)
            except TimeoutError:
                raise self._failed(' (error code 0 - "timeout reached")') from None
            except OSError:
                if not chunks:
                    raise self._failed(' (error code 1 - "EOF reached")') from None
        raw = b"".join(chunks)
        if not raw:
            raise self._failed(' (error code 1 - "EOF reached")')
        return self._parse(raw)

    def _parse(self, raw: bytes) -> tuple[int, bytes]:
        header, sep, rest = raw.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") \
                or not parts[1].isdigit():
            raise self._failed(' (error code 2 - "error while reading header, or invalid '
                               'header")')
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            rest = _dechunk(rest)
        elif b"content-length" in headers:
            try:
                rest = rest[:int(headers[b"content-length"])]
            except ValueError:
                pass
        return status, rest


def _dechunk(data: bytes) -> bytes:
    out = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


class Client:
    """CallRPC: one JSON-RPC request (an object or a batch) with Core's error handling."""

    def __init__(self, settings: Settings, chain: str, datadir: str, chain_dir: str) -> None:
        self.settings = settings
        host, port = split_host_port(settings.get("rpcconnect", DEFAULT_RPCCONNECT))
        if port is None:
            port = RPC_PORTS[chain]
        rpcport = settings.get("rpcport")
        if rpcport is not None:
            if not rpcport.strip().isdigit() or not 0 < int(rpcport) <= 65535:
                raise StartupError(f"Error: Invalid port provided in -rpcport: {rpcport}")
            port = int(rpcport)
        timeout = settings.get_int("rpcclienttimeout", DEFAULT_HTTP_CLIENT_TIMEOUT)
        self.no_cookie = False
        self.conf_path = self._conf_path(datadir)
        password = settings.get("rpcpassword", "")
        if password == "":
            auth = self._cookie(chain_dir)
            if auth is None:
                self.no_cookie = True
                auth = ":"
        else:
            auth = f"{settings.get('rpcuser', '')}:{password}"
        self.conn = Connection(host, port, timeout if timeout > 0 else None, auth)

    def _conf_path(self, datadir: str) -> str:
        name = os.path.expanduser(self.settings.cli.get("conf", [CONF_FILENAME])[-1])
        return name if os.path.isabs(name) else os.path.join(datadir, name)

    def _cookie(self, chain_dir: str) -> str | None:
        path = os.path.expanduser(self.settings.get("rpccookiefile", "") or COOKIE_FILENAME)
        if not os.path.isabs(path):
            path = os.path.join(chain_dir, path)
        try:
            with open(path, encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError):
            return None
        return line.rstrip("\r\n")

    def call(self, request, wallet: str | None = None):
        body = (json_dumps(request) + "\n").encode("utf-8")
        path = "/" if wallet is None else "/wallet/" + uri_encode(wallet)
        status, data = self.conn.post(path, body)
        if status == 401:
            if self.no_cookie:
                raise CLIError("Could not locate RPC credentials. No authentication cookie "
                               "could be found, and RPC password is not set.  See -rpcpassword "
                               "and -stdinrpcpass.  Configuration file: "
                               f"({self.conf_path})")
            raise CLIError("Authorization failed: Incorrect rpcuser or rpcpassword")
        if status == 503:
            raise CLIError("Server response: " + data.decode("utf-8", "replace"))
        if status >= 400 and status not in (400, 404, 500):
            raise CLIError(f"server returned HTTP error {status}")
        if not data:
            raise CLIError("no response from server")
        try:
            reply = json_loads(data)
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                raise CLIError(f"server returned HTTP error {status}") from None
            raise CLIError("couldn't parse reply from server") from None
        return reply


def call_with_wait(client: Client, request, wallet: str | None):
    """ConnectAndCallRPC: -rpcwait retries while the server is unreachable or warming up."""
    settings = client.settings
    wait = settings.get_bool("rpcwait")
    if not wait:
        return client.call(request, wallet)
    import time

    timeout = settings.get_int("rpcwaittimeout", 0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = client.call(request, wallet)
            if isinstance(reply, dict) and isinstance(reply.get("error"), dict) \
                    and reply["error"].get("code") == RPC_IN_WARMUP:
                raise ConnectionFailed("server in warmup")
            return reply
        except ConnectionFailed as err:
            if timeout <= 0 or time.monotonic() < deadline:
                time.sleep(1)
                continue
            raise ConnectionFailed(f"timeout on transient error: {err}") from None


# -- -getinfo --------------------------------------------------------------------------------

ID_NETWORKINFO, ID_BLOCKCHAININFO, ID_WALLETINFO, ID_BALANCES = range(4)


def _by_id(batch, n: int) -> list[dict]:
    """JSONRPCProcessBatchReply: the replies of a batch, indexed by id."""
    if not isinstance(batch, list):
        if isinstance(batch, dict) and batch.get("error"):
            return [batch] * n  # the server refused the batch as a whole
        raise CLIError("Batch must be an array")
    out: list[dict | None] = [None] * n
    for reply in batch:
        if not isinstance(reply, dict):
            raise CLIError("Batch member must be an object")
        rid = reply.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < n:
            raise CLIError("Batch member id is larger than batch size")
        out[rid] = reply
    if any(r is None for r in out):
        raise CLIError("Batch reply is missing a member")
    return out  # type: ignore[return-value]


def _missing(reply: dict) -> bool:
    err = reply.get("error")
    return isinstance(err, dict) and err.get("code") == RPC_METHOD_NOT_FOUND


def getinfo(client: Client, wallet: str | None) -> dict:
    """A simulated `getinfo` reply ({"result", "error", "id"}) whose result is the summary."""
    batch = [{"method": m, "params": [], "id": i} for i, m in enumerate(
        ("getnetworkinfo", "getblockchaininfo", "getwalletinfo", "getbalances"))]
    replies = _by_id(call_with_wait(client, batch, wallet), 4)
    net, chain, winfo, bal = replies
    # getblockchaininfo's errors are fatal; so are getnetworkinfo's, unless the server simply
    # does not have it. Wallet calls may fail (no wallet loaded).
    if net.get("error") is not None and not _missing(net):
        return net
    if chain.get("error") is not None:
        return chain
    n = net.get("result") if net.get("error") is None else None
    c = chain.get("result") or {}
    r: dict = {}
    if isinstance(n, dict):
        r["version"] = n.get("version")
    r["blocks"] = c.get("blocks")
    r["headers"] = c.get("headers")
    r["verificationprogress"] = c.get("verificationprogress")
    if isinstance(n, dict):
        r["timeoffset"] = n.get("timeoffset")
        r["connections"] = {"in": n.get("connections_in"), "out": n.get("connections_out"),
                            "total": n.get("connections")}
        nets = n.get("networks") or [{}]
        r["proxy"] = nets[0].get("proxy") if isinstance(nets[0], dict) else None
    r["difficulty"] = c.get("difficulty")
    r["chain"] = c.get("chain")
    w = winfo.get("result") if winfo.get("error") is None else None
    if isinstance(w, dict):
        r["has_wallet"] = True
        r["keypoolsize"] = w.get("keypoolsize")
        r["walletname"] = w.get("walletname")
        if w.get("unlocked_until") is not None:
            r["unlocked_until"] = w["unlocked_until"]
        r["paytxfee"] = w.get("paytxfee")
    b = bal.get("result") if bal.get("error") is None else None
    if isinstance(b, dict) and isinstance(b.get("mine"), dict):
        r["balance"] = b["mine"].get("trusted")
    if isinstance(n, dict):
        r["relayfee"] = n.get("relayfee")
        r["warnings"] = n.get("warnings")
    else:
        r["warnings"] = c.get("warnings")
    if wallet is None:
        _wallet_balances(client, r)
    return {"result": r, "error": None, "id": 1}


def _wallet_balances(client: Client, result: dict) -> None:
    """With several wallets loaded, each one's trusted balance (skipped if listwallets fails)."""
    reply = call_with_wait(client, {"method": "listwallets", "params": [], "id": 1}, None)
    if not isinstance(reply, dict) or reply.get("error") is not None:
        return
    wallets = reply.get("result")
    if not isinstance(wallets, list) or len(wallets) <= 1:
        return
    balances: dict = {}
    for name in wallets:
        r = call_with_wait(client, {"method": "getbalances", "params": [], "id": 1}, str(name))
        res = r.get("result") if isinstance(r, dict) else None
        mine = res.get("mine") if isinstance(res, dict) else None
        balances[str(name)] = mine.get("trusted") if isinstance(mine, dict) else None
    result["balances"] = balances


def _progress_bar(progress: float) -> str:
    if progress < 0 or progress > 1:
        return ""
    from math import ceil

    # As Core's loops `for (i = 0; i < progress / INCREMENT; ++i)`.
    return "\u2592" * ceil(progress / 0.05) + "\u2591" * ceil((1 - progress) / 0.05)


def format_getinfo(r: dict, color: bool) -> str:
    """ParseGetInfoResult: the human-readable -getinfo summary."""
    reset = green = blue = yellow = magenta = cyan = ""
    if color:
        reset, green, blue = "\x1b[0m", "\x1b[32m", "\x1b[34m"
        yellow, magenta, cyan = "\x1b[33m", "\x1b[35m", "\x1b[36m"
    out = [f"{blue}Chain: {val_str(r.get('chain'))}{reset}\n",
           f"Blocks: {val_str(r.get('blocks'))}\n",
           f"Headers: {val_str(r.get('headers'))}\n"]
    try:
        progress = float(r.get("verificationprogress"))
    except (TypeError, ValueError):
        progress = 0.0
    bar = _progress_bar(progress) + " " if progress < 0.99 else ""
    out.append(f"Verification progress: {bar}{progress * 100:.4f}%\n")
    out.append(f"Difficulty: {val_str(r.get('difficulty'))}\n\n")
    if "connections" in r:
        conn = r["connections"]
        out.append(f"{green}Network: in {val_str(conn['in'])}, out {val_str(conn['out'])}, "
                   f"total {val_str(conn['total'])}{reset}\n")
        out.append(f"Version: {val_str(r.get('version'))}\n")
        out.append(f"Time offset (s): {val_str(r.get('timeoffset'))}\n")
        proxy = val_str(r.get("proxy"))
        out.append(f"Proxy: {proxy or 'N/A'}\n")
        out.append(f"Min tx relay fee rate (BTC/kvB): {val_str(r.get('relayfee'))}\n\n")
    if r.get("has_wallet"):
        name = val_str(r.get("walletname"))
        out.append(f"{magenta}Wallet: {name or chr(34) * 2}{reset}\n")
        out.append(f"Keypool size: {val_str(r.get('keypoolsize'))}\n")
        if r.get("unlocked_until") is not None:
            out.append(f"Unlocked until: {val_str(r['unlocked_until'])}\n")
        out.append(f"Transaction fee rate (-paytxfee) (BTC/kvB): "
                   f"{val_str(r.get('paytxfee'))}\n\n")
    if r.get("balance") is not None:
        out.append(f"{cyan}Balance:{reset} {val_str(r['balance'])}\n\n")
    if r.get("balances") is not None:
        out.append(f"{cyan}Balances{reset}\n")
        balances = r["balances"]
        width = max([10] + [len(val_str(v)) for v in balances.values()])
        for name, v in balances.items():
            out.append(f"{val_str(v):>{width}} {name or chr(34) * 2}\n")
        out.append("\n")
    warnings = r.get("warnings")
    if isinstance(warnings, list):
        if not warnings:
            text = "(none)"
        elif len(warnings) == 1:
            text = val_str(warnings[0])
        else:
            text = "".join(f"\n- {val_str(w)}" for w in warnings)
    else:
        text = val_str(warnings)
    out.append(f"{yellow}Warnings:{reset} {text}")
    return "".join(out)


# -- Main -------------------------------------------------------------------------------------


def usage() -> str:
    import textwrap

    lines = [
        f"{PACKAGE_NAME} RPC client version v{VERSION}",
        "",
        f"Usage:  minibtc-cli [options] <command> [params]  Send command to {PACKAGE_NAME}",
        f"or:     minibtc-cli [options] -named <command> [name=value]...  Send command to "
        f"{PACKAGE_NAME} (with named arguments)",
        "or:     minibtc-cli [options] help                List commands",
        "or:     minibtc-cli [options] help <command>      Get help for a command",
        "",
        "Options:",
        "",
    ]
    for name, text in OPTIONS.items():
        lines.append(f"  -{name}")
        lines.extend(textwrap.wrap(text, 79, initial_indent=" " * 7,
                                   subsequent_indent=" " * 7))
        lines.append("")
    return "\n".join(lines) + "\n"


def _read_stdin_line(prompt: str) -> str | None:
    """One line of stdin, without echo when it is a terminal."""
    stdin = sys.stdin
    if stdin is None:
        return None
    if stdin.isatty():
        import getpass

        try:
            return getpass.getpass(prompt, stream=sys.stderr)
        except EOFError:
            return None
    line = stdin.buffer.readline()
    if not line:
        return None
    return line.decode("utf-8", "surrogateescape").rstrip("\n")


def _read_stdin_lines() -> list[str]:
    if sys.stdin is None:
        return []
    data = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _error_text(error) -> tuple[str, int]:
    """ParseError: Core's `error code: N / error message:` text and the exit status."""
    if isinstance(error, dict):
        code = error.get("code")
        msg = error.get("message")
        text = "" if code is None else f"error code: {val_str(code)}\n"
        if isinstance(msg, str):
            text += "error message:\n" + msg
        if code == RPC_WALLET_NOT_SPECIFIED:
            text += '\nTry adding "-rpcwallet=<filename>" option to minibtc-cli command line.'
        status = abs(code) if isinstance(code, int) and not isinstance(code, bool) else 1
        return text, status
    return "error: " + json_dumps(error), 1


def _output(text: str, to_stderr: bool) -> None:
    if not text:
        return
    stream = sys.stderr if to_stderr else sys.stdout
    data = (text + "\n").encode("utf-8", "replace")
    try:
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
    except BrokenPipeError:
        # The reader went away (minibtc-cli ... | head): no traceback, no second error.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
        except OSError:
            pass


def command_line_rpc(settings: Settings, args: list[str], chain: str, datadir: str,
                     chain_dir: str) -> tuple[str, int]:
    """CommandLineRPC: -> (text to print, exit status); the text goes to stderr if status."""
    if settings.get_bool("stdinrpcpass"):
        pw = _read_stdin_line("RPC password> ")
        if pw is None:
            raise CLIError("-stdinrpcpass specified but failed to read from standard input")
        settings.cli["rpcpassword"] = [pw]
    if settings.get_bool("stdinwalletpassphrase"):
        if not args or not args[0].startswith("walletpassphrase"):
            raise CLIError("-stdinwalletpassphrase is only applicable for "
                           "walletpassphrase(change)")
        wp = _read_stdin_line("Wallet passphrase> ")
        if wp is None:
            raise CLIError("-stdinwalletpassphrase specified but failed to read from standard "
                           "input")
        args.insert(1, wp)
    if settings.get_bool("stdin"):
        args.extend(_read_stdin_lines())

    wallet = settings.get("rpcwallet") if settings.is_set("rpcwallet") else None
    if settings.is_set("getinfo") and settings.get_bool("getinfo", True):
        if args:
            raise CLIError("-getinfo takes no arguments")
        color_opt = settings.get("color", "auto")
        if color_opt not in ("always", "auto", "never"):
            raise CLIError("Invalid value for -color option. Valid values: always, auto, never.")
        client = Client(settings, chain, datadir, chain_dir)
        reply = getinfo(client, wallet)
        if reply.get("error") is not None:
            return _error_text(reply["error"])
        color = color_opt == "always" or (color_opt == "auto" and sys.stdout is not None
                                          and sys.stdout.isatty())
        return format_getinfo(reply["result"], color), 0

    if not args:
        raise CLIError("too few parameters (need at least command)")
    method, params_in = args[0], args[1:]
    if settings.get_bool("named"):
        params = convert_named_values(method, params_in)
    else:
        params = convert_values(method, params_in)
    client = Client(settings, chain, datadir, chain_dir)
    reply = call_with_wait(client, {"method": method, "params": params, "id": 1}, wallet)
    if not isinstance(reply, dict) or not reply:
        raise CLIError("expected reply to have result, error and id properties")
    error = reply.get("error")
    if error is not None:
        return _error_text(error)
    result = reply.get("result")
    if result is None:
        return "", 0
    if isinstance(result, str):
        return result, 0
    return json_dumps(result, indent=2), 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts, args = parse_parameters(argv)
    except StartupError as err:
        _output(str(err), True)
        return 1
    if not argv or any(k in opts for k in ("?", "h", "help", "version")):
        if "version" in opts:
            _output(f"{PACKAGE_NAME} RPC client version v{VERSION}", False)
        else:
            sys.stdout.write(usage())
            sys.stdout.flush()
        if not argv:
            _output("Error: too few parameters", True)
            return 1
        return 0
    try:
        settings, chain, datadir, chain_dir = load_settings(opts)
        text, status = command_line_rpc(settings, args, chain, datadir, chain_dir)
    except StartupError as err:
        _output(str(err), True)
        return 1
    except CLIError as err:
        text, status = f"error: {err}", 1
    except KeyboardInterrupt:
        return 130
    _output(text, status != 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
