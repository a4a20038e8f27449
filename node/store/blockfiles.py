"""Append-only block and undo files (blk?????.dat, rev?????.dat), framed as Core frames them.

As Core (28+), every byte of them is XORed with an 8-byte key kept in xor.dat beside them
(byte i of a file with key[i % 8]), so that data in blocks cannot trip a virus scanner: a
random key for a new blocks directory (-blocksxor, default on), zeros (no change) for a
directory that already held blk files without one, or with -blocksxor=0.

Writes go straight to the OS (flushed after each record), so a killed process loses nothing
it wrote; `sync()` adds an fsync for machine crashes and is called before every chainstate
flush. See layout.py for the framing.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from consensus.checks import MAX_BLOCK_SERIALIZED_SIZE
from consensus.hashes import sha256d

MAX_BLOCKFILE_SIZE = 0x8000000  # 128 MiB, as Core
MAX_OPEN_READERS = 32
_FRAME = struct.Struct("<4sI")
_FILE_RE = re.compile(r"^blk(\d{5})\.dat$")
MAX_BLOCK_BYTES = MAX_BLOCK_SERIALIZED_SIZE + 1000  # largest block we accept in a frame


class BlockFileError(Exception):
    """A block or undo record could not be read back: names the file and offset."""


XOR_KEY_FILE = "xor.dat"
XOR_KEY_SIZE = 8


def load_xor_key(blocks_dir: Path, enabled: bool = True) -> bytes:
    """Read, or make, the blocks directory's obfuscation key (Core's rules and texts)."""
    path = blocks_dir / XOR_KEY_FILE
    if path.exists():
        key = path.read_bytes()
        if len(key) != XOR_KEY_SIZE:
            raise BlockFileError(f"corrupt {path}: the XOR key must be {XOR_KEY_SIZE} bytes")
        if not enabled and key != bytes(XOR_KEY_SIZE):
            raise BlockFileError(
                f"The blocksdir XOR-key can not be disabled when a random key was already "
                f"stored! Stored key: '{key.hex()}', stored path: '{path}'.")
        return key
    fresh = not any(_FILE_RE.match(p.name) for p in blocks_dir.iterdir())
    key = os.urandom(XOR_KEY_SIZE) if enabled and fresh else bytes(XOR_KEY_SIZE)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(key)
    os.replace(tmp, path)
    return key


def xor_bytes(data: bytes, key: bytes, offset: int) -> bytes:
    """data XOR the key stream from file offset `offset` (one big-int XOR: C speed)."""
    if not data or not any(key):
        return data
    n = len(data)
    k = offset % XOR_KEY_SIZE
    stream = (key[k:] + key[:k]) * (n // XOR_KEY_SIZE + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
            ).to_bytes(n, "little")


class BlockFiles:
    def __init__(self, blocks_dir: Path, magic: bytes, xor: bool = True,
                 max_file_size: int = MAX_BLOCKFILE_SIZE) -> None:
        self.dir = Path(blocks_dir)
        self.max_file_size = max_file_size  # (64 KiB with -fastprune)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = load_xor_key(self.dir, xor)
        self.magic = magic
        self._lock = threading.Lock()
        files = self.list_files()
        # blk files there at start-up or written since (a missing one is recreated below,
        # empty: this tells it apart)
        self.found = set(files)
        self.current = files[-1] if files else 0
        self._blk = open(self._path("blk", self.current), "ab")
        self._rev = open(self._path("rev", self.current), "ab")
        # A few open read handles (least recently used closed first): a long chain has
        # thousands of files, more than a process may keep open.
        self._readers: OrderedDict[tuple[str, int], object] = OrderedDict()

    def _path(self, kind: str, n: int) -> Path:
        return self.dir / f"{kind}{n:05d}.dat"

    def block_path(self, n: int) -> Path:
        return self._path("blk", n)

    def undo_path(self, n: int) -> Path:
        return self._path("rev", n)

    def list_files(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _FILE_RE.match(p.name)))

    # -- writing -----------------------------------------------------------------------------

    def _roll_if_full(self, size: int) -> None:
        # Core's FindNextBlockPos: a new file once this block (and its frame) would reach the
        # limit, so files split where Core's do (pruning works by whole files).
        if self._blk.tell() + size + 8 >= self.max_file_size and self._blk.tell() > 0:
            for f in (self._blk, self._rev):  # durable before we stop tracking them
                f.flush()
                os.fsync(f.fileno())
                f.close()
            self.current += 1
            self._blk = open(self._path("blk", self.current), "ab")
            self._rev = open(self._path("rev", self.current), "ab")

    def write_block(self, raw: bytes) -> tuple[int, int]:
        """Append a block; returns (file number, position of the block bytes)."""
        with self._lock:
            self._roll_if_full(len(raw))
            f = self._blk
            self.found.add(self.current)
            start = f.tell()
            f.write(xor_bytes(_FRAME.pack(self.magic, len(raw)) + raw, self.key, start))
            f.flush()
            return self.current, start + 8

    def write_undo(self, file_no: int, record: bytes, prev_hash: bytes) -> int:
        """Append undo data to rev<file_no>.dat (the block's own file number); returns its
        position."""
        with self._lock:
            if file_no == self.current:
                f = self._rev
            else:  # a block stored in an older file (e.g. connected after a reorg)
                f = open(self._path("rev", file_no), "ab")
            try:
                start = f.tell()
                f.write(xor_bytes(_FRAME.pack(self.magic, len(record)) + record
                                  + sha256d(prev_hash + record), self.key, start))
                pos = start + 8
                f.flush()
                if f is not self._rev:
                    os.fsync(f.fileno())  # sync() only covers the current files
            finally:
                if f is not self._rev:
                    f.close()
            return pos

    def sizes(self) -> dict[int, int]:
        """Bytes on disk per file number (blk and rev together)."""
        out = {}
        for n in self.list_files():
            out[n] = sum(p.stat().st_size for p in (self._path("blk", n), self._path("rev", n))
                         if p.exists())
        return out

    def remove(self, n: int) -> None:
        """Delete blk<n>.dat and rev<n>.dat (pruning); never the file being written."""
        with self._lock:
            if n == self.current:
                raise ValueError("the current block file cannot be pruned")
            for kind in ("blk", "rev"):
                fh = self._readers.pop((kind, n), None)
                if fh is not None:
                    fh.close()  # type: ignore[attr-defined]
                self._path(kind, n).unlink(missing_ok=True)
            self.found.discard(n)

    def sync(self) -> None:
        with self._lock:
            for f in (self._blk, self._rev):
                f.flush()
                os.fsync(f.fileno())

    def close(self) -> None:
        with self._lock:
            for f in (self._blk, self._rev):
                if not f.closed:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
            for r in self._readers.values():
                r.close()  # type: ignore[attr-defined]
            self._readers.clear()

    # -- reading -----------------------------------------------------------------------------

    def _reader(self, kind: str, file_no: int, path: Path):  # noqa: ANN202
        """An open handle on the file (kept for the next reads); call with the lock held."""
        fh = self._readers.get((kind, file_no))
        if fh is None:
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                raise BlockFileError(f"missing file {path}") from None
            self._readers[(kind, file_no)] = fh
            if len(self._readers) > MAX_OPEN_READERS:
                self._readers.popitem(last=False)[1].close()  # type: ignore[attr-defined]
        else:
            self._readers.move_to_end((kind, file_no))
        return fh

    def read_part(self, file_no: int, start: int, size: int) -> bytes:
        """`size` bytes of blk<file_no>.dat from `start` (a transaction inside a stored
        block, at the offset an index recorded)."""
        path = self._path("blk", file_no)
        with self._lock:
            fh = self._reader("blk", file_no, path)
            fh.seek(start)
            data = xor_bytes(fh.read(size), self.key, start)
        if len(data) != size:
            raise BlockFileError(f"truncated {path}: {size} bytes at offset {start} asked for, "
                                 f"file has {len(data)}")
        return data

    def _read_framed(self, kind: str, file_no: int, pos: int, trailer: int) -> bytes:
        path = self._path(kind, file_no)
        with self._lock:
            fh = self._reader(kind, file_no, path)
            if pos < 8:
                raise BlockFileError(f"corrupt {path}: bad position {pos}")
            fh.seek(pos - 8)  # type: ignore[attr-defined]
            head = xor_bytes(fh.read(8), self.key, pos - 8)  # type: ignore[attr-defined]
            if len(head) < 8:
                raise BlockFileError(f"truncated {path}: no record at offset {pos - 8}")
            magic, size = _FRAME.unpack(head)
            if magic != self.magic:
                raise BlockFileError(f"corrupt {path}: bad message start at offset {pos - 8}")
            data = xor_bytes(fh.read(size + trailer), self.key, pos)  # type: ignore[attr-defined]
        if len(data) != size + trailer:
            raise BlockFileError(
                f"truncated {path}: record at offset {pos - 8} needs {size + trailer} bytes, "
                f"file has {len(data)}"
            )
        return data

    def read_block(self, file_no: int, pos: int) -> bytes:
        return self._read_framed("blk", file_no, pos, 0)

    def read_undo(self, file_no: int, pos: int, prev_hash: bytes) -> bytes:
        data = self._read_framed("rev", file_no, pos, 32)
        record, checksum = data[:-32], data[-32:]
        if sha256d(prev_hash + record) != checksum:
            raise BlockFileError(
                f"corrupt {self._path('rev', file_no)}: undo checksum mismatch at offset {pos}"
            )
        return record


def scan_block_file(path: Path, magic: bytes, key: bytes = bytes(XOR_KEY_SIZE)
                    ) -> Iterator[tuple[int, bytes]]:
    """Yield (position, raw block bytes) for each framed record in a blk file.

    Skips anything between records (Core pre-allocates files with zeros, and a crash can
    leave a partial record at the end): after a bad frame it searches for the next message
    start. The bytes are not parsed here.
    """
    data = xor_bytes(path.read_bytes(), key, 0)
    end = len(data)
    pos = 0
    while True:
        i = data.find(magic, pos)
        if i < 0 or i + 8 > end:
            return
        size = struct.unpack_from("<I", data, i + 4)[0]
        start = i + 8
        if size < 80 or size > MAX_BLOCK_BYTES or start + size > end:
            pos = i + 1  # not a plausible record: look for the next message start
            continue
        yield start, data[start : start + size]
        pos = start + size
