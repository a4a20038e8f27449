"""On-disk storage: block files, the block index and the UTXO set (see layout.py)."""


class DatabaseOpenError(Exception):
    """A database could not be opened or read at start-up: `what` is "block" (the block
    index) or "coins" (the UTXO set), as Core names them in its start-up errors."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(detail)
        self.what = what


def db_error_text(err: Exception) -> str:
    """A LevelDB error's message as text (plyvel carries it as bytes)."""
    arg = err.args[0] if err.args else ""
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(err)


def table_damage(db, path) -> str | None:
    """What is wrong with a LevelDB database's table files, found without reading them:
    every table the database's metadata lists (plyvel's "leveldb.sstables" property, one
    " <number>:<size>[<smallest> .. <largest>]" line per file and level, keys escaped) must
    be on disk with that size. A table cut short (or lost) beside the ones read at open is
    otherwise found only by a later full read. None when all are whole."""
    import re
    from pathlib import Path

    listing = db.get_property(b"leveldb.sstables")
    if listing is None:
        return None
    path = Path(path)
    for number, size in re.findall(rb"^ (\d+):(\d+)\[", listing, re.M):
        expected = int(size)
        for name in (f"{int(number):06d}.ldb", f"{int(number):06d}.sst"):  # (.sst: older)
            f = path / name
            try:
                actual = f.stat().st_size
            except FileNotFoundError:
                continue
            if actual != expected:
                return (f"Corruption: {f} is {actual} bytes, the database's records say "
                        f"{expected}" + (" (truncated)" if actual < expected else ""))
            break
        else:
            return f"Corruption: {path / f'{int(number):06d}.ldb'} is missing"
    return None
