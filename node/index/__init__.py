"""The optional indexes, as Core's: -txindex, -blockfilterindex=basic, -coinstatsindex and
-txospenderindex. Each keeps its own LevelDB under <chain datadir>/indexes/ (Core's paths) and
is built by a thread of its own from the chain (node/index/base.py); their key layouts are
written down in their modules.

    indexes/txindex/                  TxIndex            (node/index/txindex.py)
    indexes/blockfilter/basic/db/     BlockFilterIndex   (node/index/blockfilterindex.py)
    indexes/coinstatsindex/db/        CoinStatsIndex     (node/index/coinstatsindex.py)
    indexes/txospenderindex/db/       TxoSpenderIndex    (node/index/txospenderindex.py)
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

    @property
    def all(self) -> list[BaseIndex]:
        return [i for i in (self.txindex, self.coinstats, self.blockfilter, self.txospender)
                if i is not None]

    @classmethod
    def open(cls, datadir: Path, chain, *, txindex: bool = False,
             blockfilterindex: bool = False, coinstatsindex: bool = False,
             txospenderindex: bool = False, wipe: bool = False) -> Indexes:
        """Open the databases (Core's start-up errors as IndexInitError); -reindex wipes them.
        start() once the chain is loaded."""
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
        except Exception:
            out.close()
            raise
        return out

    @classmethod
    def from_config(cls, cfg, datadir: Path, chain, wipe: bool = False) -> Indexes:
        """The indexes the options ask for (Core's names and values: -blockfilterindex=1 or
        =basic; =0 or none of them off)."""
        if cfg.arg_int("prune", 0):  # Core's parameter checks
            for name in ("txindex", "txospenderindex"):
                if cfg.arg_bool(name, False) or (name == "txindex" and cfg.txindex):
                    raise IndexInitError(f"Prune mode is incompatible with -{name}.")
        values = cfg.arg_list("blockfilterindex")  # after the last -noblockfilterindex
        last = values[-1] if values else "0"
        blockfilter = last not in ("0",)
        if last not in ("", "1", "0"):
            for v in values:
                if v != "basic":
                    raise IndexInitError(f"Unknown -blockfilterindex value {v}.")
        return cls.open(datadir, chain, txindex=bool(cfg.txindex),
                        blockfilterindex=blockfilter,
                        coinstatsindex=cfg.arg_bool("coinstatsindex", False),
                        txospenderindex=cfg.arg_bool("txospenderindex", False), wipe=wipe)

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
