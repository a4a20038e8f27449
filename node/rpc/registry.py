"""The RPC method registry: each method declares its arguments once, and from that come
argument checking (Core's type errors), named parameters, `help` text and the CLI's table of
which arguments are JSON (node/rpc/cli_params.py, checked against this by a test)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from node.rpc.errors import (
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_TYPE_ERROR,
    RPCError,
)

# Argument types, as RPCArg::Type in Core. The value is what JSON types are accepted.
STR = "string"
HEX = "string (hex)"
NUM = "numeric"
AMOUNT = "numeric or string"  # BTC amount
BOOL = "boolean"
OBJ = "json object"
ARR = "json array"
ANY = "any"
RANGE = "numeric or array"
NUM_OR_BOOL = "numeric or boolean"  # verbosity: Core takes true/false for 1/0
OBJ_USER_KEYS = "json object (user keys)"

_JSON_TYPE_NAMES = {
    str: "string", bool: "bool", int: "number", float: "number", Decimal: "number",
    dict: "object", list: "array", type(None): "null",
}


def json_type(v: Any) -> str:
    """UniValue's name for the JSON type of a parsed value."""
    return _JSON_TYPE_NAMES.get(type(v), "number" if isinstance(v, (int, float)) else "object")


def _matches(t: str, v: Any) -> bool:
    if t == ANY:
        return True
    jt = json_type(v)
    if t in (STR, HEX):
        return jt == "string"
    if t == NUM:
        return jt == "number"
    if t == AMOUNT:
        return jt in ("number", "string")
    if t == BOOL:
        return jt == "bool"
    if t in (OBJ, OBJ_USER_KEYS):
        return jt == "object"
    if t == ARR:
        return jt == "array"
    if t == RANGE:
        return jt in ("number", "array")
    if t == NUM_OR_BOOL:
        return jt in ("number", "bool")
    return True


_EXPECTED = {STR: "string", HEX: "string", NUM: "number", BOOL: "bool", OBJ: "object",
             OBJ_USER_KEYS: "object", ARR: "array"}


@dataclass
class Arg:
    name: str
    type: str
    required: bool = True
    default: Any = None
    help: str = ""
    # Shown in the usage line in place of a default, e.g. "height" for a RANGE.
    default_hint: str = ""
    # Other names the argument answers to (Core's "verbosity|verbose").
    aliases: tuple[str, ...] = ()
    # Core's OBJ_NAMED_PARAMS: the keys of this options object, which may also be given
    # as named parameters of their own (bitcoin-cli -named importmempool f use_current_time=1).
    named: tuple[str, ...] = ()


@dataclass
class Method:
    name: str
    category: str
    func: Callable
    args: list[Arg]
    description: str
    result: str = ""
    examples: list[str] = field(default_factory=list)
    # Run on the event loop (must be fast and lock-free) instead of a worker thread.
    inline: bool = False
    # Run on the event loop when the request is small (server.INLINE_SMALL) and the chain's
    # lock is free at that moment, holding it for the call; otherwise on a worker thread.
    # For methods whose work on a small request is bounded by its size (sendrawtransaction
    # of a small transaction): the thread hand-off costs more than they do. They must not
    # wait for anything the loop does.
    inline_if_free: bool = False
    # Called once with the params of every call to this method in a JSON-RPC batch, before
    # they run one by one (to do shared work in bulk); may return a callable to run when
    # the batch is done.
    prepare: Callable | None = None

    def usage(self) -> str:
        """The one-line signature as Core prints it: getblock "blockhash" ( verbosity )."""
        out = self.name
        was_optional = False
        for a in self.args:
            out += " "
            if not a.required and not was_optional:
                out += "( "
            elif a.required and was_optional:
                out += ") "
            was_optional = not a.required
            out += f'"{a.name}"' if a.type in (STR, HEX) else a.name
        return out + (" )" if was_optional else "")

    def help_text(self) -> str:
        lines = [self.usage(), "", self.description.strip()]
        if self.args:
            lines += ["", "Arguments:"]
            for i, a in enumerate(self.args, 1):
                req = "required" if a.required else (
                    f"optional, default={a.default_hint or _fmt_default(a.default)}"
                )
                lines.append(f"{i}. {a.name}    ({a.type}, {req}) {a.help}".rstrip())
        if self.result:
            lines += ["", "Result:", self.result.strip()]
        if self.examples:
            lines += ["", "Examples:"]
            for ex in self.examples:
                lines.append(f"> minibtc-cli {ex}")
        return "\n".join(lines) + "\n"

    def bind(self, params: Any) -> list[Any]:
        """Positional values for every declared argument (defaults filled in), from a JSON
        array or object, with Core's errors for unknown names and wrong types."""
        if params is None:
            params = []
        if isinstance(params, dict):
            names = {n: i for i, a in enumerate(self.args) for n in (a.name, *a.aliases)}
            values: list[Any] = [_MISSING] * len(self.args)
            params = dict(params)
            for a in self.args:
                if a.named:
                    loose = {k: params.pop(k) for k in list(params)
                             if k in a.named and k not in names}
                    if loose:
                        if params.get(a.name) is not None:
                            raise RPCError(RPC_INVALID_PARAMETER, f"Parameter {a.name} "
                                           f"conflicts with parameter {next(iter(loose))}")
                        params[a.name] = loose
            # bitcoin-cli -named sends arguments given without a name as "args" (Core's
            # transformNamedArguments): they fill the first positions.
            if "args" in params and "args" not in names:
                extra = params.pop("args")
                if not isinstance(extra, list):
                    raise RPCError(RPC_INVALID_PARAMETER, "args must be an array")
                if len(extra) > len(self.args):
                    raise RPCError(RPC_MISC_ERROR, self.help_text())
                values[: len(extra)] = extra
            for key, v in params.items():
                if key not in names:
                    raise RPCError(RPC_INVALID_PARAMETER, f"Unknown named parameter {key}")
                if values[names[key]] is not _MISSING:
                    raise RPCError(RPC_INVALID_PARAMETER, f"Parameter {key} specified twice "
                                   "both as positional and named argument")
                values[names[key]] = v
            # Trailing unset optional args are simply absent.
            while values and values[-1] is _MISSING:
                values.pop()
            positional = values
        else:
            positional = list(params)
        if len(positional) > len(self.args):
            raise RPCError(RPC_MISC_ERROR, self.help_text())
        out = []
        mismatch: dict[str, str] = {}
        for i, a in enumerate(self.args):
            v = positional[i] if i < len(positional) else _MISSING
            if v is _MISSING or (v is None and not a.required):
                if a.required:
                    raise RPCError(RPC_MISC_ERROR, self.help_text())
                out.append(a.default)
                continue
            if not _matches(a.type, v):
                expected = _EXPECTED.get(a.type, a.type)
                mismatch[f"Position {i + 1} ({a.name})"] = (
                    f"JSON value of type {json_type(v)} is not of expected type {expected}"
                )
            out.append(v)
        if mismatch:
            # Core's format: the mismatches as a JSON object written with a 4-space indent.
            raise RPCError(RPC_TYPE_ERROR,
                           "Wrong type passed:\n" + json.dumps(mismatch, indent=4))
        return out


_MISSING = object()


def _fmt_default(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'  # Core shows a string default as its JSON: default="economical"
    return str(v)


REGISTRY: dict[str, Method] = {}


def rpc(
    name: str,
    category: str,
    args: list[Arg] | tuple = (),
    description: str = "",
    result: str = "",
    examples: list[str] | tuple = (),
    inline: bool = False,
) -> Callable[[Callable], Callable]:
    """Register `func(node, *args)` as an RPC method."""

    def wrap(func: Callable) -> Callable:
        if name in REGISTRY:
            raise ValueError(f"RPC method {name} registered twice")
        n_params = len(inspect.signature(func).parameters) - 1
        if n_params != len(args):
            raise TypeError(f"{name}: function takes {n_params} args, declared {len(args)}")
        REGISTRY[name] = Method(name, category, func, list(args), description or func.__doc__ or "",
                                result, list(examples), inline)
        return func

    return wrap


def json_arg_positions() -> dict[str, list[int]]:
    """For each method, the positions of arguments the CLI must parse as JSON (all but plain
    strings), as bitcoin-cli's vRPCConvertParams; a position repeats once per alias, in step
    with json_arg_names()."""
    out: dict[str, list[int]] = {}
    for m in REGISTRY.values():
        pos = [i for i, a in enumerate(m.args) if a.type not in (STR, HEX)
               for _ in (a.name, *a.aliases, *a.named)]
        if pos:
            out[m.name] = pos
    return out


def json_arg_names() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in REGISTRY.values():
        names = [n for a in m.args if a.type not in (STR, HEX)
                 for n in (a.name, *a.aliases, *a.named)]
        if names:
            out[m.name] = names
    return out
