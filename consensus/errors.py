"""The consensus layer's one error type."""

from __future__ import annotations


class ValidationError(Exception):
    """A rule was broken.

    reason:     Bitcoin Core's reject reason ("bad-txns-vin-empty", "high-hash", ...).
    dos_score:  misbehaviour points for the peer that sent it (100 = disconnect and ban).
    debug:      human detail for logs, not part of the reason.
    mutated:    the data may have been corrupted in transit (bad merkle root, witness
                malleation), so the block hash must NOT be marked invalid.
    """

    def __init__(self, reason: str, dos_score: int = 100, debug: str = "", mutated: bool = False):
        super().__init__(f"{reason} ({debug})" if debug else reason)
        self.reason = reason
        self.dos_score = dos_score
        self.debug = debug
        self.mutated = mutated
