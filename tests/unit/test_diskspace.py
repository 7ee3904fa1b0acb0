"""Disk-full detection and messages (``sshmr/diskspace.py``, ``remote/protocol.py``), and a
journal that hits SQLITE_FULL (made real with ``PRAGMA max_page_count``, no root needed)."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from sshmr.engine.diskspace import local_disk_full, runs_dir_full
from sshmr.errors import RunError, RunsDirFull
from sshmr.record.journal import Journal
from sshmr.remote import protocol


@pytest.mark.parametrize("n, shown", [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KB"),
                                      (12 * 1024, "12 KB"), (5 << 20, "5.0 MB"),
                                      (300 << 30, "300 GB")])
def test_human_bytes(n, shown):
    assert protocol.human_bytes(n) == shown


def test_no_space_names_the_path_the_free_space_and_the_fix(tmp_path):
    text = protocol.no_space(str(tmp_path), 12 * 1024)
    assert text == (f"no space left on device in {tmp_path} (12 KB free); free space there or"
                    " set another workdir")
    assert f"in {tmp_path} (" in protocol.no_space(str(tmp_path))  # measured here


def test_what_counts_as_disk_full(tmp_path):
    assert protocol.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert protocol.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not protocol.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert local_disk_full(sqlite3.OperationalError("database or disk is full"), str(tmp_path))
    assert not local_disk_full(sqlite3.OperationalError("no such table: x"), str(tmp_path))
    assert not local_disk_full(ValueError("x"), str(tmp_path))


def test_runs_dir_full_is_one_line_naming_the_dir_and_resume(tmp_path):
    run_dir = tmp_path / "runs" / "20260101-000000-abcdef"
    run_dir.mkdir(parents=True)
    exc = runs_dir_full(str(run_dir))
    assert isinstance(exc, RunsDirFull) and isinstance(exc, RunError) and exc.exit_code == 2
    text = str(exc)
    assert text.startswith(f"no space left on device in the runs dir {tmp_path / 'runs'} (")
    assert text.endswith("then 'sshmr resume 20260101-000000-abcdef'") and "\n" not in text


def test_a_full_journal_is_abandoned_intact(tmp_path):
    journal = Journal(str(tmp_path), create=True)
    journal.add_jobs([(1, '"first"')])
    journal.flush()
    journal.db.execute("PRAGMA max_page_count = 8")  # the database file may not grow further
    with pytest.raises(sqlite3.OperationalError) as caught:
        for i in range(2, 10_000):
            journal.add_jobs([(i, '"' + "x" * 1000 + '"')])
            journal.flush()
    assert local_disk_full(caught.value, str(tmp_path))
    journal.abandon()
    journal.flush()  # nothing more is written, and nothing raises
    journal.close()
    db = sqlite3.connect(tmp_path / Journal.FILE)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT payload FROM jobs WHERE id = 1").fetchone()[0] == '"first"'
    finally:
        db.close()
