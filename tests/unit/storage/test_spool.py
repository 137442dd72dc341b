"""The upload spool's own promises, beyond what the storage contract covers."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import BinaryIO

import pytest

from filejob.storage.spool import UploadSpool
from filejob.storage.temp_area import TempArea


class _FullDisk(io.BytesIO):
    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


class _NamedFilesOnAFullDisk:
    """Hands out named temp files whose writes fail, and records what is given back."""

    def __init__(self, area: TempArea) -> None:
        self.area = area
        self.given_back: list[Path | None] = []

    def open(self) -> tuple[BinaryIO, Path | None]:
        file, path = self.area.open_named()
        file.close()
        return _FullDisk(), path

    def close(self, file: BinaryIO, path: Path | None) -> None:
        self.given_back.append(path)
        self.area.close(file, path)


def test_a_rollover_that_fails_leaves_no_temp_file(tmp_path: Path) -> None:
    area = TempArea(tmp_path / "tmp")
    files = _NamedFilesOnAFullDisk(area)
    spool = UploadSpool(files, 4, early_writeback=False)
    spool.write(b"abc")
    with pytest.raises(OSError, match="No space"):
        spool.write(b"more than four bytes")
    spool.close()
    assert len(files.given_back) == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    assert area.in_use == set()


def test_a_spool_rolls_over_past_its_memory_and_reads_back(tmp_path: Path) -> None:
    area = TempArea(tmp_path / "tmp")
    spool = area.new_spool(4, early_writeback=False)
    spool.write(b"abc")
    assert not spool.rolled
    spool.write(b"defgh")
    assert spool.rolled
    spool.seek(0)
    assert spool.read() == b"abcdefgh"
    spool.close()
    assert area.in_use == set()
