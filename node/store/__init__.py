"""On-disk storage: block files, the block index and the UTXO set (see layout.py)."""


class DatabaseOpenError(Exception):
    """A database could not be opened or read at start-up: `what` is "block" (the block
    index) or "coins" (the UTXO set), as Core names them in its start-up errors; `verb`
    "opening", or "loading" where Core finds the damage as it reads the records (its
    "Error loading block database")."""

    def __init__(self, what: str, detail: str, verb: str = "opening") -> None:
        super().__init__(detail)
        self.what = what
        self.verb = verb


def db_error_text(err: Exception) -> str:
    """A LevelDB error's message as text (plyvel carries it as bytes)."""
    arg = err.args[0] if err.args else ""
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(err)


def table_damage(db, path) -> str | None:
    """What is wrong with a LevelDB database's table files, found without reading them:
    every table the database's metadata lists (plyvel's "leveldb.sstables" property, one
    " <number>:<size>[<smallest> .. <largest>]" line per file and level, keys escaped) must
    be on disk with that size. A table cut short (or lost) beside the ones read at open is
    otherwise found only by a later full read. None when all are whole.

    The compaction LevelDB may start when it opens can replace tables (and delete the old
    ones) between the listing and the look at the files: a table found wrong counts only if
    a fresh listing still names it and it is still wrong."""
    from pathlib import Path

    path = Path(path)
    for _ in range(20):
        found = _table_problem(db, path)
        if found is None:
            return None
        number, problem = found
        size = _tables(db).get(number)
        if size is not None and _file_problem(path, number, size):
            return problem
    return problem


def _listing(db) -> list[tuple[int, int, bytes | None]]:
    """The database's current tables, from its "leveldb.sstables" property: (number, size,
    smallest key or None where the line has none), the key with the unprintable bytes
    LevelDB writes as \\xNN restored."""
    import re

    listing = db.get_property(b"leveldb.sstables") or b""
    unescape = re.compile(rb"\\x([0-9a-f]{2})")
    line = re.compile(rb"^ (\d+):(\d+)\[(?:'(.*?)' @ \d+ : \d+ \.\. )?", re.M)
    return [(int(n), int(size),
             unescape.sub(lambda m: bytes([int(m.group(1), 16)]), key) if key else None)
            for n, size, key in line.findall(listing)]


def table_first_keys(db) -> list[bytes]:
    """The smallest key of each of the database's tables."""
    return [key for _, _, key in _listing(db) if key is not None]


def _tables(db) -> dict[int, int]:
    """The database's current tables: number -> size."""
    return {n: size for n, size, _ in _listing(db)}


def _table_problem(db, path) -> tuple[int, str] | None:
    for number, expected in _tables(db).items():
        problem = _file_problem(path, number, expected)
        if problem is not None:
            return number, problem
    return None


def _file_problem(path, number: int, expected: int) -> str | None:
    for name in (f"{number:06d}.ldb", f"{number:06d}.sst"):  # (.sst: older LevelDB)
        f = path / name
        try:
            actual = f.stat().st_size
        except FileNotFoundError:
            continue
        if actual != expected:
            return (f"Corruption: {f} is {actual} bytes, the database's records say "
                    f"{expected}" + (" (truncated)" if actual < expected else ""))
        return None
    return f"Corruption: {path / f'{number:06d}.ldb'} is missing"


# Above every key the node writes (one-letter prefixes): a range that holds no key.
_NO_KEYS = b"\xff" * 8


def close_db(db) -> None:
    """Close a LevelDB database with what was written since it was opened put in a table.
    Below its write buffer (4 MiB) LevelDB keeps those writes only in its log and sorts
    them into a table at the next open, before that open returns: 14 ms of the next
    start-up for the block index of a 1,000-block chain built in one session
    (scripts/bench/startup.py). CompactRange writes the memtable to a table first; over a
    range that holds no key it merges nothing more. If that fails (a full disk) the log
    still has every write, replayed at the next open as before. Closing twice is harmless,
    as plyvel's close."""
    import plyvel

    if db.closed:
        return
    try:
        db.compact_range(start=_NO_KEYS, stop=_NO_KEYS)
    except plyvel.Error:
        pass
    db.close()
