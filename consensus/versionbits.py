"""BIP9 version bits: the state of a deployment signalled in block versions (Core's
versionbits.cpp), the statistics of the current signalling period and the block version a
miner sets.

Blocks are anything with `height`, `version`, `prev`, `ancestor(height)` and
`median_time_past()` (node.store.blockindex.BlockIndexEntry). A deployment's state applies to
a whole period of blocks and is computed from the last block of the previous period; states
are cached by that block's hash (they depend only on its ancestry).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFINED = "defined"
STARTED = "started"
LOCKED_IN = "locked_in"
ACTIVE = "active"
FAILED = "failed"

VERSIONBITS_TOP_BITS = 0x20000000
VERSIONBITS_TOP_MASK = 0xE0000000

ALWAYS_ACTIVE = -1  # start_time of a deployment active from genesis
NEVER_ACTIVE = -2  # start_time of a deployment disabled on this chain
NO_TIMEOUT = 2**63 - 1


@dataclass(frozen=True)
class Deployment:
    name: str
    bit: int
    start_time: int
    timeout: int
    min_activation_height: int = 0
    period: int = 2016
    threshold: int = 1916

    @property
    def mask(self) -> int:
        return 1 << self.bit

    def signals(self, block) -> bool:
        v = block.version & 0xFFFFFFFF
        return (v & VERSIONBITS_TOP_MASK) == VERSIONBITS_TOP_BITS and bool(v & self.mask)


@dataclass
class Statistics:
    period: int
    threshold: int
    elapsed: int = 0
    count: int = 0
    possible: bool = False


def _ancestor(block, height: int):
    """Core's GetAncestor: None for a negative height."""
    return block.ancestor(height) if height >= 0 else None


class VersionBitsCache:
    """Per-deployment caches of states by period-boundary block hash."""

    def __init__(self) -> None:
        self._states: dict[str, dict[bytes | None, str]] = {}

    def clear(self) -> None:
        self._states.clear()

    def state(self, prev, dep: Deployment) -> str:
        """The state of blocks whose parent is `prev` (None: the genesis block)."""
        if dep.start_time == ALWAYS_ACTIVE:
            return ACTIVE
        if dep.start_time == NEVER_ACTIVE:
            return FAILED
        cache = self._states.setdefault(dep.name, {})
        period = dep.period
        if prev is not None:  # the last block of the previous period (None: no such block)
            prev = _ancestor(prev, prev.height - (prev.height + 1) % period)
        to_compute = []
        while (prev.hash if prev is not None else None) not in cache:
            if prev is None:
                cache[None] = DEFINED
                break
            if prev.median_time_past() < dep.start_time:
                cache[prev.hash] = DEFINED
                break
            to_compute.append(prev)
            prev = _ancestor(prev, prev.height - period)
        state = cache[prev.hash if prev is not None else None]
        while to_compute:
            prev = to_compute.pop()
            nxt = state
            if state == DEFINED:
                if prev.median_time_past() >= dep.start_time:
                    nxt = STARTED
            elif state == STARTED:
                count = 0
                walk = prev
                for _ in range(period):
                    if dep.signals(walk):
                        count += 1
                    walk = walk.prev
                if count >= dep.threshold:
                    nxt = LOCKED_IN
                elif prev.median_time_past() >= dep.timeout:
                    nxt = FAILED
            elif state == LOCKED_IN:
                if prev.height + 1 >= dep.min_activation_height:
                    nxt = ACTIVE
            cache[prev.hash] = state = nxt
        return state

    def state_since_height(self, prev, dep: Deployment) -> int:
        """The height of the first block that had the state blocks after `prev` have."""
        if dep.start_time in (ALWAYS_ACTIVE, NEVER_ACTIVE):
            return 0
        initial = self.state(prev, dep)
        if initial == DEFINED:
            return 0
        period = dep.period
        prev = _ancestor(prev, prev.height - (prev.height + 1) % period)
        parent = _ancestor(prev, prev.height - period)
        while parent is not None and self.state(parent, dep) == initial:
            prev = parent
            parent = _ancestor(prev, prev.height - period)
        return prev.height + 1

    def statistics(self, block, dep: Deployment) -> tuple[Statistics, list[bool]]:
        """Signalling in the period of `block` up to it: the counts and, per block, whether
        it signalled."""
        stats = Statistics(dep.period, dep.threshold)
        if block is None:
            return stats, []
        in_period = 1 + block.height % dep.period
        signalled = [False] * in_period
        walk = block
        for i in range(in_period - 1, -1, -1):
            if dep.signals(walk):
                signalled[i] = True
            walk = walk.prev
        stats.elapsed = in_period
        stats.count = sum(signalled)
        stats.possible = dep.period - dep.threshold >= stats.elapsed - stats.count
        return stats, signalled

    def block_version(self, prev, deployments) -> int:
        """Core's ComputeBlockVersion: the top bits and the bit of every deployment that is
        started or locked in."""
        version = VERSIONBITS_TOP_BITS
        for dep in deployments:
            if self.state(prev, dep) in (STARTED, LOCKED_IN):
                version |= dep.mask
        return version
