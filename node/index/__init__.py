"""The optional indexes, as Core's: -txindex, -blockfilterindex=basic, -coinstatsindex and
-txospenderindex. Each keeps its own LevelDB under <chain datadir>/indexes/ (Core's paths) and
is built by a thread of its own from the chain (node/index/base.py); their key layouts are
written down in their modules.

    indexes/txindex/                  TxIndex            (node/index/txindex.py)
    indexes/blockfilter/basic/db/     BlockFilterIndex   (node/index/blockfilterindex.py)
    indexes/coinstatsindex/db/        CoinStatsIndex     (node/index/coinstatsindex.py)
    indexes/txospenderindex/db/       TxoSpenderIndex    (node/index/txospenderindex.py)
    indexes/addrindex/db/             AddrIndex          (node/index/addrindex.py; -esplora's)
"""

from __future__ import annotations

from pathlib import Path

from node.index.base import BaseIndex, IndexInitError

__all__ = ["BaseIndex", "IndexInitError", "Indexes"]


class Indexes:
    """The indexes the node runs, opened from its options."""

    def __init__(self) -> None:
        self.txindex = None
        self.blockfilter = None  # the basic filter index (the only filter type)
        self.coinstats = None
        self.txospender = None
        self.addr = None  # the address index the Esplora API reads (node/esplora)

    @property
    def all(self) -> list[BaseIndex]:
        return [i for i in (self.txindex, self.coinstats, self.blockfilter, self.txospender,
                            self.addr) if i is not None]

    @classmethod
    def open(cls, datadir: Path, chain, *, txindex: bool = False,
             blockfilterindex: bool = False, coinstatsindex: bool = False,
             txospenderindex: bool = False, addrindex: bool = False,
             wipe: bool = False) -> Indexes:
        """Open the databases (Core's start-up errors as IndexInitError); -reindex wipes them.
        start() once the chain is loaded."""
        from node.index.addrindex import AddrIndex
        from node.index.blockfilterindex import BlockFilterIndex
        from node.index.coinstatsindex import CoinStatsIndex
        from node.index.txindex import TxIndex
        from node.index.txospenderindex import TxoSpenderIndex

        root = Path(datadir) / "indexes"
        out = cls()
        try:
            if txindex:
                out.txindex = TxIndex(root / "txindex", chain, wipe)
            if blockfilterindex:
                out.blockfilter = BlockFilterIndex(root / "blockfilter" / "basic" / "db",
                                                   chain, wipe)
            if coinstatsindex:
                out.coinstats = CoinStatsIndex(root / "coinstatsindex" / "db", chain, wipe)
            if txospenderindex:
                out.txospender = TxoSpenderIndex(root / "txospenderindex" / "db", chain, wipe)
            if addrindex:
                out.addr = AddrIndex(root / "addrindex" / "db", chain, wipe)
        except Exception:
            out.close()
            raise
        return out

    @staticmethod
    def options(cfg) -> dict:
        """Which indexes the options ask for, checked as Core's AppInitParameterInteraction
        does (before anything is touched): -blockfilterindex=1 or =basic (0 off),
        -peerblockfilters needs it, -prune refuses -txindex and -txospenderindex,
        -reindex-chainstate refuses -coinstatsindex, -blockfilterindex and -txindex."""
        values = cfg.arg_list("blockfilterindex")  # after the last -noblockfilterindex
        last = values[-1] if values else "0"
        blockfilter = last != "0"
        if last not in ("", "1", "0"):
            for v in values:
                if v != "basic":
                    raise IndexInitError(f"Unknown -blockfilterindex value {v}.")
        if cfg.arg_bool("peerblockfilters", False) and not blockfilter:
            raise IndexInitError("Cannot set -peerblockfilters without -blockfilterindex.")
        which = dict(txindex=bool(cfg.txindex) or cfg.arg_bool("txindex", False),
                     blockfilterindex=blockfilter,
                     coinstatsindex=cfg.arg_bool("coinstatsindex", False),
                     txospenderindex=cfg.arg_bool("txospenderindex", False))
        if cfg.arg_int("prune", 0):
            for name in ("txindex", "txospenderindex"):
                if which[name]:
                    raise IndexInitError(f"Prune mode is incompatible with -{name}.")
        if getattr(cfg, "reindex_chainstate", False):  # they would be corrupted (Core #24630)
            for name in ("coinstatsindex", "blockfilterindex", "txindex"):
                if which[name]:
                    raise IndexInitError(
                        f"-reindex-chainstate option is not compatible with -{name}. Please "
                        f"temporarily disable {name} while using -reindex-chainstate, or "
                        f"replace -reindex-chainstate with -reindex to fully rebuild all "
                        f"indexes.")
        return which

    @classmethod
    def from_config(cls, cfg, datadir: Path, chain, wipe: bool = False,
                    addrindex: bool = False) -> Indexes:
        """The indexes the options ask for (see options()), and the address index when asked
        (addrindex: -esplora is on, node.esplora.esplora_port)."""
        return cls.open(datadir, chain, wipe=wipe, addrindex=addrindex, **cls.options(cfg))

    def start(self) -> None:
        for ix in self.all:
            ix.start()

    def close(self) -> None:
        for ix in self.all:
            ix.close()

    def prune_lock(self) -> int | None:
        """Core's prune lock: the lowest best height of the indexes, whose next blocks they
        still have to read (None without indexes)."""
        heights = [ix.lock_height if ix.lock_height is not None else 0 for ix in self.all]
        return min(heights) if heights else None

    def block_until_synced(self) -> None:
        for ix in self.all:
            ix.block_until_synced()

    def info(self, name: str | None = None) -> dict:
        """getindexinfo's answer."""
        return {ix.name: ix.summary() for ix in self.all if name is None or ix.name == name}
