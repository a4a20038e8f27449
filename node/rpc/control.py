"""Control RPCs: help, stop, uptime, getrpcinfo, logging."""

from __future__ import annotations

import logging
import time

from node.config import LOG_CATEGORIES
from node.rpc.errors import RPC_INVALID_PARAMETER, RPCError
from node.rpc.registry import (
    AMOUNT,
    ANY,
    ARR,
    BOOL,
    NUM,
    OBJ,
    REGISTRY,
    STR,
    Arg,
    Method,
    rpc,
)


@rpc("help", "Control", [Arg("command", STR, False, None, "The command to get help on")],
     description="List all commands, or get help for a specified command.", inline=True)
def help_(node, command):
    methods = {**_wallet_methods(node), **REGISTRY}
    if command is None:
        lines: list[str] = []
        current = None
        for m in sorted(methods.values(), key=lambda m: (m.category, m.name)):
            if m.category != current:
                if current is not None:
                    lines.append("")
                lines.append(f"== {m.category} ==")
                current = m.category
            lines.append(m.usage())
        return "\n".join(lines)
    m = methods.get(command)
    if m is None:
        return f"help: unknown command: {command}"
    return m.help_text().rstrip("\n")


# The wallet's parameter types (wallet.rpc) by the names the node's help gives them.
_WALLET_TYPES = {"string": STR, "number": NUM, "bool": BOOL, "amount": AMOUNT, "object": OBJ,
                 "array": ARR, "any": ANY}


def _wallet_methods(node) -> dict[str, Method]:
    """The mounted wallets' methods, described for help as the node's own are (their calls
    go to the wallet manager, not through REGISTRY)."""
    if getattr(node, "wallets", None) is None:
        return {}
    from wallet.rpc import METHODS, REQUIRED

    return {m.name: Method(
        m.name, "Wallet", m.func,
        [Arg(p.name, _WALLET_TYPES[p.type], p.default is REQUIRED, p.default)
         for p in m.params],
        (m.func.__doc__ or "").strip().split("\n\n")[0]
        or "As Bitcoin Core's: the same parameters, result fields and errors.")
        for m in METHODS.values()}


@rpc("stop", "Control", description="Request a graceful shutdown of minibtcd.", inline=True)
def stop(node):
    # Answer first: the shutdown begins once this reply is on its way.
    node.loop.call_soon_threadsafe(node.loop.call_later, 0.05, node.request_shutdown)
    return "minibtcd stopping"


@rpc("uptime", "Control", description="Returns the total uptime of the server.",
     result="ttt    (numeric) The number of seconds that the server has been running",
     inline=True)
def uptime(node):
    return int(time.time() - node.start_time)


@rpc("getrpcinfo", "Control", description="Returns details of the RPC server.", inline=True)
def getrpcinfo(node):
    now = time.monotonic()
    return {
        "active_commands": [
            {"method": name, "duration": int((now - start) * 1_000_000)}
            for name, start in list(node.rpc.active.values())
        ],
        "logpath": str(node.logfile) if node.logfile else "",
    }


def _categories(value, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RPCError(RPC_INVALID_PARAMETER, f"{name} must be an array")
    out = []
    for c in value:
        if c in ("all", "1"):
            out.extend(LOG_CATEGORIES)
        elif c in ("none", "0"):
            continue
        elif c in LOG_CATEGORIES:
            out.append(c)
        else:
            raise RPCError(RPC_INVALID_PARAMETER, f"unknown logging category {c}")
    return out


@rpc("logging", "Control",
     [Arg("include", ARR, False, None, "The categories to add to debug logging"),
      Arg("exclude", ARR, False, None, "The categories to remove from debug logging")],
     description="Gets and sets the logging configuration.\nWhen called without an argument, "
                 "returns the list of categories with status that are currently being debug "
                 "logged or not.\nWhen called with arguments, adds or removes categories from "
                 "debug logging and return the lists above.\nThe valid logging categories are: "
                 + ", ".join(LOG_CATEGORIES), inline=True)
def logging_(node, include, exclude):
    for c in _categories(include, "include"):
        logging.getLogger(c).setLevel(logging.DEBUG)
    for c in _categories(exclude, "exclude"):
        logging.getLogger(c).setLevel(logging.INFO)
    return {c: logging.getLogger(c).isEnabledFor(logging.DEBUG) for c in LOG_CATEGORIES}
