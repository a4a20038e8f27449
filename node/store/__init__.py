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
