"""Script checks for connecting blocks, on consensus.script's worker-process pool (small
blocks stay in-process; transactions the mempool already verified are skipped through the
script execution cache), failures turned into Core's block reject reason."""

from __future__ import annotations

import os

from consensus.errors import ValidationError
from consensus.script.errors import ScriptError
from consensus.script.pool import ScriptCheckPool
from consensus.tx import Transaction, TxOut

Job = tuple[Transaction, list[TxOut], int]


class ScriptChecker:
    """workers: processes in the pool (0 = verify in the calling thread; None = one per core
    when there is more than one core, as Core's -par)."""

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            cores = os.cpu_count() or 1
            workers = cores if cores > 1 else 0
        self.pool = ScriptCheckPool(workers=workers)

    @property
    def parallel(self) -> bool:
        return self.pool.workers > 0

    def check_block(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        try:
            self.pool.verify_many(jobs)
        except ScriptError as err:
            where = f" in transaction {err.txid[::-1].hex()} input {err.input_index}" if (
                err.txid is not None) else ""
            raise ValidationError(
                f"block-script-verify-flag-failed ({err.message})", 100, f"{err.code}{where}"
            ) from None

    def close(self) -> None:
        self.pool.close()
