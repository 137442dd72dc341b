"""What every `Storage` promises, checked the same way against each backend that needs no
server: `MemoryStorage`, and `LocalStorage` on real files in a temp folder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from filejob.storage.base import BlobNotFound, Storage
from filejob.storage.ingest import digest_of, store_file
from filejob.storage.local import LocalStorage
from filejob.storage.memory import MemoryStorage

KEY = "inputs/abc123"


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return LocalStorage(tmp_path / "store", fsync=False)


async def put(storage: Storage, key: str, data: bytes) -> None:
    writer = await storage.create(key)
    writer.file.write(data)
    await writer.commit()


async def content(storage: Storage, key: str) -> bytes:
    reader = await storage.open(key)
    try:
        return reader.file.read()
    finally:
        reader.close()


async def test_a_committed_blob_reads_back_whole_and_by_range(storage: Storage) -> None:
    writer = await storage.create(KEY)
    writer.file.write(b"0123456789")
    info = await writer.commit()
    assert (info.key, info.size) == (KEY, 10)
    stat = await storage.stat(KEY)
    assert stat is not None and (stat.key, stat.size) == (KEY, 10)
    reader = await storage.open(KEY)
    try:
        assert reader.size == 10
        assert reader.file.read() == b"0123456789"
        reader.file.seek(7)
        assert reader.file.read() == b"789"
        assert reader.read_at(2, 3) == b"234"
        assert reader.read_at(8, 5) == b"89"  # clipped at the end
        assert reader.read_at(10, 5) == b""
    finally:
        reader.close()


async def test_an_empty_blob_is_a_blob(storage: Storage) -> None:
    await put(storage, KEY, b"")
    stat = await storage.stat(KEY)
    assert stat is not None and stat.size == 0
    assert await content(storage, KEY) == b""


async def test_a_blob_is_invisible_until_committed(storage: Storage) -> None:
    writer = await storage.create(KEY)
    writer.file.write(b"half")
    assert await storage.stat(KEY) is None
    assert await storage.list() == []
    with pytest.raises(BlobNotFound):
        await storage.open(KEY)
    await writer.commit()
    assert await content(storage, KEY) == b"half"


async def test_a_discarded_writer_leaves_nothing(storage: Storage) -> None:
    writer = await storage.create(KEY)
    writer.file.write(b"abandoned")
    await writer.discard()
    assert await storage.stat(KEY) is None
    assert await storage.list() == []
    assert await storage.sweep_temp(0) == 0  # no temp file left behind either


async def test_a_commit_replaces_the_older_blob(storage: Storage) -> None:
    await put(storage, KEY, b"old content")
    await put(storage, KEY, b"new")
    assert await content(storage, KEY) == b"new"
    assert [(i.key, i.size) for i in await storage.list()] == [(KEY, 3)]


async def test_a_missing_key(storage: Storage) -> None:
    with pytest.raises(BlobNotFound):
        await storage.open("inputs/missing")
    assert await storage.stat("inputs/missing") is None
    assert await storage.delete("inputs/missing") is False


async def test_delete_removes_the_blob_but_not_an_open_reader(storage: Storage) -> None:
    await put(storage, KEY, b"still here")
    reader = await storage.open(KEY)
    try:
        assert await storage.delete(KEY) is True
        assert await storage.stat(KEY) is None
        assert await storage.delete(KEY) is False
        assert reader.read_at(0, reader.size) == b"still here"
        assert reader.file.read() == b"still here"
    finally:
        reader.close()


async def test_list_names_every_blob_with_its_size(storage: Storage) -> None:
    await put(storage, "inputs/abc123", b"in")
    await put(storage, "results/abc123.1", b"result")
    listed = sorted((info.key, info.size) for info in await storage.list())
    assert listed == [("inputs/abc123", 2), ("results/abc123.1", 6)]


@pytest.mark.parametrize("size", [3, 5000], ids=["in-memory", "rolled-over"])
async def test_a_spooled_upload_is_stored_whole(storage: Storage, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    spool = storage.new_spool(1024)
    try:
        spool.write(data)
        assert spool.rolled == (size > 1024)
        file = cast(BinaryIO, spool)  # as Starlette's UploadFile hands it on
        assert await digest_of(file) == (size, hashlib.sha256(data).hexdigest())
        adopted = await store_file(storage, file, KEY)
    finally:
        spool.close()
    # Only a backend that adopts files, and only a spool that is a file, avoids the copy.
    assert adopted == (storage.abilities.adopts_local_files is not None and spool.rolled)
    assert await content(storage, KEY) == data


async def test_free_bytes_is_a_count(storage: Storage) -> None:
    free = storage.free_bytes()
    assert isinstance(free, int) and free > 0
