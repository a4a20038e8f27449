"""Control RPCs: help, stop, uptime, getrpcinfo, getmemoryinfo, logging."""

from __future__ import annotations

import asyncio
import logging
import time

from node import clock
from node.config import LOG_CATEGORIES
from node.rpc.errors import (
    RPC_INVALID_PARAMETER,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.params import as_int
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
            if m.category == "Hidden":  # as Core: hidden methods answer, unlisted
                continue
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
    return m.help_text()  # as Core's, ending in a newline


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


@rpc("stop", "Control", [Arg("wait", NUM, False, None, "how long to wait in ms")],
     description="Request a graceful Bitcoin server shutdown.", inline=True)
def stop(node, wait):
    # Core's hidden `wait` (tests): answer after that many milliseconds. The shutdown begins
    # once the reply is on its way.
    delay = max(0, int(wait or 0)) / 1000
    node.loop.call_soon_threadsafe(node.loop.call_later, 0.05 + delay, node.request_shutdown)
    return "minibtcd stopping"


@rpc("uptime", "Control", description="Returns the total uptime of the server.",
     result="ttt    (numeric) The number of seconds that the server has been running",
     inline=True)
def uptime(node):
    return int(time.monotonic() - node.start_time)  # setmocktime does not move it (Core)


def _regtest_only(node, method: str) -> None:
    if node.params.name != "regtest":
        raise RPCError(RPC_METHOD_NOT_FOUND, f"{method} is for regression testing "
                       "(-regtest mode) only")


@rpc("setmocktime", "Hidden",
     [Arg("timestamp", NUM, help="UNIX epoch time. Pass 0 to go back to using the system "
                                 "time.")],
     description="Set the local time to given timestamp (-regtest only)", inline=True)
def setmocktime(node, timestamp):
    _regtest_only(node, "setmocktime")
    t = as_int(timestamp, "timestamp")
    if not 0 <= t <= MAX_MOCKTIME:  # block times are 32-bit: they work until 2106
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"Mocktime must be in the range [0, {MAX_MOCKTIME}], not {t}.")
    clock.set_mock(t)
    return None


@rpc("mockscheduler", "Hidden",
     [Arg("delta_time", NUM, help="Number of seconds to forward the scheduler into the "
                                  "future.")],
     description="Bump the scheduler into the future (-regtest only)", inline=True)
def mockscheduler(node, delta_time):
    _regtest_only(node, "mockscheduler")
    delta = as_int(delta_time, "delta_time")
    if delta <= 0 or delta > 3600:
        raise RPCError(RPC_INVALID_PARAMETER, "delta_time must be between 1 and 3600")
    node.scheduler.mock_forward(delta)
    return None


@rpc("syncwithvalidationinterfacequeue", "Hidden",
     description="Waits for the validation interface queue to catch up on everything that "
                 "was there when this RPC was called.")
def syncwithvalidationinterfacequeue(node):
    # Chain and mempool events are published on the validation thread (or an RPC thread under
    # the chain lock) and handed to the P2P layer on the event loop: wait for what is queued
    # on the first, then for what it queued on the second; then the wallets catch up.
    node.validation.submit(lambda: None).result()
    with node.chain.lock:
        pass
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), node.loop).result()
    if getattr(node, "indexes", None) is not None:  # the indexes' threads, as Core's
        node.indexes.block_until_synced()
    if node.wallets is not None:
        node.wallets.sync_all()
    return None


_ECHO_DESCRIPTION = (
    "Simply echo back the input arguments. This command is for testing.\n\n"
    "It will return an internal bug report when arg9='trigger_internal_bug' is passed.\n\n"
    "The difference between echo and echojson is that echojson has argument conversion "
    "enabled in the client-side table in bitcoin-cli.")


class _Echo(Method):
    """echo and echojson answer with the parameters as Core's server hands them to a method:
    positional ones as given (nulls included), named ones placed by position with nulls in
    the holes between them but none after the last one given."""

    def bind(self, params):
        if params is None:
            return [[]]
        if isinstance(params, list):
            if len(params) > len(self.args):
                raise RPCError(RPC_MISC_ERROR, self.help_text())
            return [list(params)]
        params = dict(params)
        names = [a.name for a in self.args]
        out: list = []
        extra = params.pop("args", None)
        if extra is not None:
            if not isinstance(extra, list):
                raise RPCError(RPC_INVALID_PARAMETER, "args must be an array")
            out = list(extra)
        for key in params:
            if key not in names:
                raise RPCError(RPC_INVALID_PARAMETER, f"Unknown named parameter {key}")
        for i, name in enumerate(names):
            if name not in params:
                continue
            if i < len(out):
                raise RPCError(RPC_INVALID_PARAMETER, f"Parameter {name} specified twice both "
                               "as positional and named argument")
            out.extend([None] * (i - len(out)))
            out.append(params[name])
        if len(out) > len(self.args):
            raise RPCError(RPC_MISC_ERROR, self.help_text())
        return [out]


def _echo(node, args: list) -> list:
    if len(args) > 9 and args[9] == "trigger_internal_bug":
        raise RPCError(RPC_MISC_ERROR, "Internal bug detected: echo arg9='trigger_internal_bug'")
    return args


for _name, _type in (("echo", STR), ("echojson", ANY)):
    REGISTRY[_name] = _Echo(_name, "Hidden", _echo,
                            [Arg(f"arg{i}", _type, False) for i in range(10)],
                            _ECHO_DESCRIPTION, inline=True)


def _malloc_info() -> str | None:
    """glibc's malloc_info(3) XML, as Core's RPCMallocInfo; None where the C library has
    no malloc_info (Core built without it)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        malloc_info, open_memstream = libc.malloc_info, libc.open_memstream
        fclose, free = libc.fclose, libc.free
    except (OSError, AttributeError):
        return None
    open_memstream.restype = ctypes.c_void_p
    open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_size_t)]
    malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fclose.argtypes = [ctypes.c_void_p]
    free.argtypes = [ctypes.c_void_p]
    buf, size = ctypes.c_void_p(), ctypes.c_size_t()
    f = open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not f:
        return ""
    malloc_info(0, f)
    fclose(f)
    if not buf.value:
        return ""
    try:
        return ctypes.string_at(buf.value, size.value).decode(errors="replace")
    finally:
        free(buf)


@rpc("getmemoryinfo", "Control",
     [Arg("mode", STR, False, "stats",
          'determines what kind of information is returned.\n  - "stats" returns general '
          'statistics about memory usage in the daemon.\n  - "mallocinfo" returns an XML '
          "string describing low-level heap state (only available with glibc 2.10+).")],
     description="Returns an object containing information about memory usage.",
     result='mode "stats": {"locked": {"used", "free", "total", "locked", "chunks_used", '
            '"chunks_free"}} (numbers of bytes and chunks of locked memory: minibtcd keeps '
            "no locked memory arena, so all are 0)\nmode \"mallocinfo\": \"<malloc "
            'version=\"1\">...\"')
def getmemoryinfo(node, mode):
    mode = "stats" if mode is None else mode
    if mode == "stats":
        # Core's LockedPoolManager (mlock()ed pages for keys): none here.
        return {"locked": {"used": 0, "free": 0, "total": 0, "locked": 0, "chunks_used": 0,
                           "chunks_free": 0}}
    if mode == "mallocinfo":
        info = _malloc_info()
        if info is None:
            raise RPCError(RPC_INVALID_PARAMETER, "mallocinfo mode not available")
        return info
    raise RPCError(RPC_INVALID_PARAMETER, f"unknown mode {mode}")


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

MAX_MOCKTIME = 2**32 - 1  # Core: the last second a block's 32-bit time can hold


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
