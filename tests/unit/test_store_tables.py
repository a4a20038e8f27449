"""A LevelDB database of several tables with one of the older ones cut short or lost is
refused when it is opened (the UTXO set, and -reindex-chainstate's check of the index), naming
the file, although reading its first record still works (issue 18). The block index, whose
records start-up reads on demand, checks its tables at load (their sizes, and the first block
of each read): a damaged one fails the load, as Core's "Error loading block database"."""

from __future__ import annotations

import random
import re
import shutil

import plyvel
import pytest

from node.store import DatabaseOpenError, table_damage
from node.store.blockindex import BlockIndexDB, index_damage
from node.store.coins import CoinsCache


def spread_over_tables(path) -> list[tuple[int, list[int]]]:
    """Rewrite every record of a stopped LevelDB database (same keys and values) with the
    smallest write buffer (64 KiB) and table size (1 MiB) LevelDB allows, so that its data,
    a few MB, ends up in several tables below level 0, as a larger database's does. Returns
    the tables per level, as (level, table numbers in key order)."""
    db = plyvel.DB(str(path), write_buffer_size=64 << 10, max_file_size=1 << 20)
    for key, value in list(db.iterator()):
        db.put(key, value)
    db.close()  # (waits for the compactions)
    db = plyvel.DB(str(path))
    listing = db.get_property(b"leveldb.sstables").decode("latin-1")
    db.close()
    levels = []
    for part in re.split(r"^--- level (\d+) ---$", listing, flags=re.M)[1:]:
        if part.isdigit():
            levels.append((int(part), []))
        else:
            levels[-1][1].extend(int(n) for n in re.findall(r"^ (\d+):\d+\[", part, re.M))
    return levels


def older_table(levels: list[tuple[int, list[int]]]) -> int:
    """A table that reading the first record does not open: below level 0 and not the first
    of its level."""
    older = [n for level, tables in levels if level >= 1 for n in tables[1:]]
    assert older, levels
    return older[0]


@pytest.fixture(scope="module")
def several_tables(tmp_path_factory):
    """A database of ~4 MB in several tables, and one of its older tables."""
    path = tmp_path_factory.mktemp("ldb") / "db"
    rng = random.Random(1)
    db = plyvel.DB(str(path), create_if_missing=True)
    with db.write_batch() as batch:
        batch.put(b"B", b"\x11" * 32)
        for _ in range(4000):
            batch.put(b"C" + rng.randbytes(36), rng.randbytes(1000))
    db.close()
    return path, older_table(spread_over_tables(path))


def _copy(src, tmp_path):
    dst = tmp_path / "db"
    shutil.copytree(src, dst)
    return dst


def test_whole_database_opens(several_tables, tmp_path):
    path = _copy(several_tables[0], tmp_path)
    CoinsCache(path, 1 << 20).close()
    BlockIndexDB(path).close()
    assert index_damage(path) is None


@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_older_table_damage_is_refused_at_open(several_tables, tmp_path, how):
    path = _copy(several_tables[0], tmp_path)
    victim = path / f"{several_tables[1]:06d}.ldb"
    if how == "missing":  # (LevelDB itself refuses to open without it)
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:victim.stat().st_size // 2])
        db = plyvel.DB(str(path), paranoid_checks=True)
        try:  # what the open read before: the first record still comes
            assert next(db.iterator(verify_checksums=True))[0] == b"B"
            assert victim.name in table_damage(db, path)
        finally:
            db.close()
    # The block index: LevelDB's own refusal ("opening"), or its check of the tables
    # ("loading", as Core's load finds it).
    openers = [(lambda: CoinsCache(path, 1 << 20), "coins", "opening"),
               (lambda: BlockIndexDB(path), "block", "opening" if how == "missing" else "loading")]
    for open_db, what, verb in openers:
        with pytest.raises(DatabaseOpenError) as err:
            open_db()
        assert (err.value.what, err.value.verb) == (what, verb)
        assert victim.name in str(err.value) and how in str(err.value), err.value
    assert victim.name in index_damage(path)


def test_a_table_compacted_away_while_checking_is_not_damage(tmp_path):
    """LevelDB may compact right after it opens: a table named by the first listing can be
    gone by the time its file is looked at, replaced by one the next listing names. Only a
    table still listed and still wrong is damage (CI once refused a whole database so)."""

    class Compacting:
        def __init__(self, listings):
            self.listings = listings

        def get_property(self, name):
            assert name == b"leveldb.sstables"
            return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    (tmp_path / "000061.ldb").write_bytes(b"x" * 10)
    old = b"--- level 0 ---\n 60:10['a' .. 'b']\n"  # (000060.ldb: deleted by the compaction)
    new = b"--- level 1 ---\n 61:10['a' .. 'b']\n"
    assert table_damage(Compacting([old, new]), tmp_path) is None
    assert "000060.ldb is missing" in table_damage(Compacting([old]), tmp_path)
    (tmp_path / "000061.ldb").write_bytes(b"x" * 4)
    assert "000061.ldb is 4 bytes" in table_damage(Compacting([old, new]), tmp_path)


def test_block_index_reads_every_table_at_open(several_tables, tmp_path):
    """Core's feature_init.py perturbs bytes 150-349 of each table: here only an older
    table's, which reading the first record never opens."""
    path = _copy(several_tables[0], tmp_path)
    victim = path / f"{several_tables[1]:06d}.ldb"
    with open(victim, "r+b") as f:
        f.seek(150)
        f.write(b"1" * 200)
    db = plyvel.DB(str(path))  # (the tables' sizes are right, the first record reads)
    try:
        assert next(db.iterator(verify_checksums=True))[0] == b"B"
        assert table_damage(db, path) is None
    finally:
        db.close()
    with pytest.raises(DatabaseOpenError, match="checksum") as err:
        BlockIndexDB(path)
    assert (err.value.what, err.value.verb) == ("block", "loading")
    shutil.copy(several_tables[0] / victim.name, victim)
    BlockIndexDB(path).close()
