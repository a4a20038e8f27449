"""The log's rate limit (Core's -logratelimit): one source location may write 1 MiB of
info-or-louder lines per hour to the file; past that it is dropped, said once; debug lines
are never dropped; a new window says how much was dropped and logs again."""

from __future__ import annotations

import logging

from node import logs


def test_one_noisy_line_is_cut_after_its_budget(monkeypatch):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    limit = logs.RateLimit()
    handler.addFilter(limit)
    log = logging.getLogger("test-ratelimit")
    log.propagate = False
    log.addHandler(handler)
    note = logging.getLogger("minibtcd")
    note.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        line = "x" * 1000
        for _ in range(2000):  # ~2 MB from one place
            log.warning(line)
        kept = [r for r in records if r.msg == line]
        assert 900 < len(kept) < 1100  # about 1 MiB
        notes = [r for r in records if "Excessive logging detected" in str(r.msg)]
        assert len(notes) == 1
        for _ in range(10):
            log.debug(line)  # asked-for debug lines still go through
        assert sum(1 for r in records if r.levelno == logging.DEBUG) == 10
        monkeypatch.setattr(limit, "window_start", limit.window_start - logs.RATELIMIT_WINDOW)
        log.warning(line)  # a new window: said how much was dropped, and logged again
        assert any("bytes were dropped" in str(r.msg) for r in records)
        assert records[-1].msg == line
    finally:
        log.removeHandler(handler)
        note.removeHandler(handler)


def _flood(log: logging.Logger, lines: int, text: str) -> None:
    for _ in range(lines):
        log.warning(text)  # (one source location: this line)


def _flood_elsewhere(log: logging.Logger, lines: int, text: str) -> None:
    for _ in range(lines):
        log.warning(text)  # (another source location, with a budget of its own)


def _debug_log(tmp_path, *flags: str) -> str:
    from node.config import load_config

    config = load_config([f"-datadir={tmp_path}", "-regtest", "-printtoconsole=0", *flags])
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logfile = logs.setup_logging(config, tmp_path)
        log = logging.getLogger("test-ratelimit-file")
        _flood(log, 1500, "a" * 1000)
        _flood_elsewhere(log, 500, "b" * 1000)
        for h in root.handlers:
            h.flush()
        return logfile.read_text()
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:], level = saved
        root.setLevel(level)


def test_the_file_is_limited_per_source_location_and_nologratelimit_turns_it_off(tmp_path):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    limited = _debug_log(tmp_path / "on")
    a, b = limited.count("a" * 1000), limited.count("b" * 1000)
    assert 900 < a < 1100 and b == 500  # the noisy place is cut; the other keeps its budget
    assert limited.count("Excessive logging detected") == 1
    full = _debug_log(tmp_path / "off", "-nologratelimit")
    assert full.count("a" * 1000) == 1500 and full.count("b" * 1000) == 500
    assert "Excessive logging detected" not in full
