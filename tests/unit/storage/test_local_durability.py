"""With fsync on, a stored blob survives a power cut: its bytes, its name, and the names of the
folders made for it (a shard folder whose own name never reached the disk takes every blob
in it along)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filejob.storage import local
from filejob.storage.local import LocalStorage


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """What `local` fsyncs from now on, by path (folders and files alike)."""
    paths: list[Path] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", recording_fsync)
    return paths


async def put(storage: LocalStorage, key: str, data: bytes) -> None:
    writer = await storage.create(key)
    writer.file.write(data)
    await writer.commit()


async def test_new_folders_are_synced_in_their_parents_once(
    tmp_path: Path, synced: list[Path]
) -> None:
    storage = LocalStorage(tmp_path, fsync=True)
    await put(storage, "inputs/abcdef", b"first")
    blob = storage.path_for("inputs/abcdef")
    shard, prefix = blob.parent, blob.parent.parent  # blobs/inputs/ab, blobs/inputs
    assert blob.read_bytes() == b"first"
    # The file (unnamed then: its link target is not known yet), then the blob's name, then
    # every folder's name, outermost first: a folder counts as durable (and the next upload
    # into it skips the syncs) only once every folder above it is.
    assert synced[1:] == [shard, tmp_path, storage.blob_dir, prefix]

    synced.clear()
    await put(storage, "inputs/ab0123", b"same shard")
    assert synced[1:] == [shard]  # the folders' names are known to be on disk by now


async def test_a_folder_made_by_another_writer_is_synced_by_the_next_one_too(
    tmp_path: Path, synced: list[Path]
) -> None:
    storage = LocalStorage(tmp_path, fsync=True)
    made_elsewhere = storage.path_for("inputs/cd0000").parent
    made_elsewhere.mkdir(parents=True)  # by another process, say, not yet synced
    await put(storage, "inputs/cd1234", b"x")
    assert synced[1:] == [made_elsewhere, tmp_path, storage.blob_dir, made_elsewhere.parent]


async def test_an_existing_blob_is_replaced_atomically(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync=True)
    await put(storage, "results/ef01.1", b"old")
    await put(storage, "results/ef01.1", b"new")
    assert storage.path_for("results/ef01.1").read_bytes() == b"new"
    assert list(storage.temp.directory.iterdir()) == []  # no staged copy left
