"""The node's log (debug.log), set up from Core's logging options.

-debuglogfile (relative to the chain datadir; -nodebuglogfile: none), -printtoconsole,
-logtimemicros, -logthreadnames, -logsourcelocations, -debug/-debugexclude (categories at
debug level) and -loglevel (the level of debug categories: debug or trace; per category as
cat:level). Lines look like Core's: time, optional [thread] [file:line] [function], [category].
Python's logging has no trace level below debug: trace is logged as debug.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from node.config import LOG_CATEGORIES, LOG_LEVELS, NodeConfig
from node.confparse import ConfigError


def debug_categories(include: list[str], exclude: list[str]) -> set[str]:
    """The categories -debug/-debugexclude turn on: a 0 or none clears what came before it."""
    for i in range(len(include) - 1, -1, -1):
        if include[i] in ("0", "none"):
            include = include[i + 1:]
            break
    on = set(LOG_CATEGORIES) if {"1", "all"} & set(include) else set(include)
    return on - set(exclude)


def check_loglevels(values: list[str]) -> None:
    for v in values:
        if ":" not in v:
            if v not in LOG_LEVELS:
                raise ConfigError(f"Error: Unsupported global logging level -loglevel={v}. "
                                  f"Valid values: {', '.join(LOG_LEVELS)}.")
            continue
        cat, _, level = v.partition(":")
        if cat not in LOG_CATEGORIES or level not in LOG_LEVELS:
            raise ConfigError(f"Error: Unsupported category-specific logging level "
                              f"-loglevel={v}. Expected -loglevel=<category>:<loglevel>. "
                              f"Valid categories: {', '.join(LOG_CATEGORIES)}. "
                              f"Valid loglevels: {', '.join(LOG_LEVELS)}.")


class _Formatter(logging.Formatter):
    def __init__(self, micros: bool, threads: bool, sources: bool) -> None:
        parts = ["%(asctime)s"]
        if threads:
            parts.append("[%(threadName)s]")
        if sources:
            parts.append("[%(filename)s:%(lineno)d] [%(funcName)s]")
        parts.append("[%(name)s] %(message)s")
        super().__init__(" ".join(parts))
        self.micros = micros

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        if self.micros:
            t += f".{int((record.created % 1) * 1_000_000):06d}"
        return t + "Z"


RATELIMIT_WINDOW = 3600.0  # seconds
RATELIMIT_BYTES = 1024 * 1024  # what one source location may log per window


class RateLimit(logging.Filter):
    """Core's log rate limit (-logratelimit, on by default): each source location may write
    RATELIMIT_BYTES of info-or-louder lines per hour; past that its lines are dropped, said
    once, until the hour is over. Debug lines (asked for with -debug) are never dropped. A
    peer or client that makes the node log an error per message cannot fill the disk."""

    def __init__(self) -> None:
        super().__init__()
        self.window_start = time.monotonic()
        self.used: dict[tuple[str, int], int] = {}
        self.dropped: dict[tuple[str, int], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or getattr(record, "ratelimit_note", False):
            return True
        now = time.monotonic()
        if now - self.window_start >= RATELIMIT_WINDOW:
            self._new_window(now)
        where = (record.pathname, record.lineno)
        size = len(str(record.msg)) + 64  # (close enough: the format's arguments vary)
        used = self.used.get(where, 0) + size
        self.used[where] = used
        if used <= RATELIMIT_BYTES:
            return True
        if where not in self.dropped:
            self.dropped[where] = 0
            _note(f"Excessive logging detected from {record.filename}:{record.lineno} "
                  f"({record.funcName}): >{RATELIMIT_BYTES // 1024} KiB logged during the "
                  f"last time window of {int(RATELIMIT_WINDOW)}s. Suppressing logging to disk "
                  f"from this source location until time window resets. Console logging "
                  f"unaffected. Last log entry.")
        self.dropped[where] += size
        return False

    def _new_window(self, now: float) -> None:
        for (path, line), dropped in self.dropped.items():
            _note(f"Restarting logging from {Path(path).name}:{line}: {dropped} bytes were "
                  f"dropped during the last {int(RATELIMIT_WINDOW)}s.")
        self.window_start = now
        self.used.clear()
        self.dropped.clear()


def _note(text: str) -> None:
    logging.getLogger("minibtcd").warning(text, extra={"ratelimit_note": True})


def setup_logging(config: NodeConfig, datadir: Path) -> Path | None:
    """Open the log; raises ConfigError (Core's text) when its file cannot be opened."""
    check_loglevels(config.arg_list("loglevel"))
    fmt = _Formatter(config.arg_bool("logtimemicros"), config.arg_bool("logthreadnames"),
                     config.arg_bool("logsourcelocations"))
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    logfile = None
    name = config.arg_str("debuglogfile", "debug.log")
    if config.arg_set("debuglogfile") and not config.arg_bool("debuglogfile", True) \
            and name in ("0", ""):
        name = None  # -nodebuglogfile
    if name:
        logfile = Path(name).expanduser()
        if not logfile.is_absolute():
            logfile = datadir / logfile
        try:
            fh = logging.FileHandler(logfile)
        except OSError:
            raise ConfigError(f"Error: Could not open debug log file {logfile}") from None
        fh.setFormatter(fmt)
        if config.arg_bool("logratelimit", True):
            fh.addFilter(RateLimit())  # (the file only, as Core: the console keeps all)
        root.addHandler(fh)
    console = config.printtoconsole if config.printtoconsole is not None else not config.daemon
    if console:
        sh = logging.StreamHandler(sys.stdout)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    set_debug(debug_categories(config.debug, config.debugexclude))
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_one_line)
    return logfile


def _one_line(record: logging.LogRecord) -> bool:
    """aiohttp logs a malformed HTTP request (anyone who can connect can send one) with its
    whole traceback: one short line is enough."""
    if record.exc_info and record.exc_info[1] is not None:
        err = record.exc_info[1]
        text = str(err).splitlines()[0] if str(err) else ""
        record.msg, record.args = "bad HTTP request: %s: %s", (type(err).__name__, text[:200])
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def set_debug(on: set[str]) -> None:
    for cat in LOG_CATEGORIES:
        logging.getLogger(cat).setLevel(logging.DEBUG if cat in on else logging.INFO)


def log_args(config: NodeConfig) -> None:
    """Every option given and where it came from, as Core logs them at start-up."""
    log = logging.getLogger("minibtcd")
    for line in config.arg_log:
        log.info("%s", line)
