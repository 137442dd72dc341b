"""Each backend's optional abilities, probed once into its `abilities` record."""

from __future__ import annotations

from pathlib import Path

from filejob.storage.base import abilities_of
from filejob.storage.local import LocalStorage
from filejob.storage.memory import MemoryStorage
from filejob.storage.s3 import S3Storage


def test_memory_storage_has_the_protocol_only() -> None:
    storage = MemoryStorage()
    assert storage.abilities.names() == []
    assert storage.abilities == abilities_of(storage)


def test_local_storage_gives_paths_and_adopts(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync=False)
    abilities = storage.abilities
    assert abilities.local_files is storage
    assert abilities.adopts_local_files is storage
    assert abilities.stages_local_copies is None
    assert abilities.presigns_downloads is None
    assert abilities.streams_local_files is None
    assert abilities.names() == ["paths for child processes", "adopts spooled uploads"]


def test_s3_storage_stages_copies_presigns_and_streams(tmp_path: Path) -> None:
    storage = S3Storage.from_url(  # makes no request until used
        "s3://bucket/prefix",
        tmp_path,
        endpoint="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="key",
        secret_access_key="secret",
    )
    assert storage.abilities.names() == [
        "local copies for child processes",
        "presigned downloads",
        "streams local files",
    ]
    assert storage.abilities.stages_local_copies is storage


async def test_memory_storage_free_bytes_shrink_as_blobs_are_stored() -> None:
    storage = MemoryStorage(capacity=100)
    writer = await storage.create("inputs/abc123")
    writer.file.write(b"x" * 40)
    assert storage.free_bytes() == 100
    await writer.commit()
    assert storage.free_bytes() == 60
