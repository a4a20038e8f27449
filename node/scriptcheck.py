"""Script checks for connecting blocks: small blocks in-process, large ones on the
worker-process pool of consensus.script, with results cached so that transactions already
checked by the mempool are not checked again."""

from __future__ import annotations

import logging
import os

from consensus.errors import ValidationError
from consensus.script.verify import ScriptCheckPool, ScriptError, script_error_message
from consensus.tx import Transaction, TxOut

log = logging.getLogger("validation")

Job = tuple[Transaction, list[TxOut], int]


class ScriptChecker:
    """Checks the scripts of a block's transactions, raising Core's block reject reason.

    workers: size of the process pool (0 = in-process only; default: one per core when
    there is more than one core).
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = os.cpu_count() or 1
            workers = workers if workers > 1 else 0
        self.pool = ScriptCheckPool(workers=workers)
        # (wtxid, flags) of transactions whose scripts passed (filled by the mempool too).
        self.verified: set[tuple[bytes, int]] = set()

    def check_block(self, jobs: list[Job]) -> None:
        todo = [j for j in jobs if (j[0].wtxid, j[2]) not in self.verified]
        if not todo:
            return
        try:
            self.pool.verify_many(todo)
        except ScriptError as err:
            raise ValidationError(
                f"block-script-verify-flag-failed ({script_error_message(err)})", 100, str(err)
            ) from None
        # Block transactions are not cached: they are spent from the UTXO set now and will
        # not be checked again (Core likewise skips caching while connecting).

    def remember(self, tx: Transaction, flags: int) -> None:
        """Record a transaction whose scripts passed under `flags` (bounded)."""
        if len(self.verified) > 200_000:
            self.verified.clear()
        self.verified.add((tx.wtxid, flags))

    def close(self) -> None:
        self.pool.close()
