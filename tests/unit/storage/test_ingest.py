"""Storing an upload: adopted where a backend can link the spool in place, else copied
through a writer. Runs on the in-memory backend, which adopts nothing."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, cast

from filejob.storage.ingest import store_file
from filejob.storage.memory import MemoryStorage


async def test_a_backend_that_cannot_adopt_gets_a_copy_of_the_whole_file() -> None:
    storage = MemoryStorage()
    data = os.urandom(3 * 1024 * 1024 + 7)  # more than one copy chunk
    upload = io.BytesIO(data)
    upload.seek(1234)  # wherever the reader left it: the whole file is stored
    assert await store_file(storage, upload, "inputs/a") is False
    reader = await storage.open("inputs/a")
    assert reader.size == len(data)
    assert reader.read_at(0, len(data)) == data


async def test_a_spooled_upload_is_stored_from_its_first_byte() -> None:
    storage = MemoryStorage()
    spool = storage.new_spool(4)
    spool.write(b"spooled past memory")
    # In the server the spool is what the upload's `file` holds, typed as a BinaryIO there.
    assert await store_file(storage, cast(BinaryIO, spool), "inputs/b") is False
    reader = await storage.open("inputs/b")
    assert reader.read_at(0, reader.size) == b"spooled past memory"
