"""`PipelinedUpload`: an UploadFile whose bytes are hashed while the request is still arriving."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
from starlette.datastructures import UploadFile

from filejob.storage.spool import UploadSpool


def _mark_retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class PipelinedUpload(UploadFile):
    """The UploadFile our parser creates: hashing overlaps with receiving.

    Starlette awaits a thread hop for every chunk it writes, so receiving, hashing and writing
    run one after another. Here each chunk is appended to the spool right away, on the event
    loop, like the bare `request.stream()`-to-disk loop does (a page-cache write, which drops
    the GIL), and a worker thread hashes the bytes in 1 MiB batches meanwhile, in order, one
    batch in flight. Measured in one run against the same server with writes in the thread:
    586 vs 531 MB/s.
    """

    BATCH_BYTES = 1024 * 1024
    INLINE_HASH_BYTES = 64 * 1024

    def __init__(self, spool: UploadSpool, **kwargs: Any) -> None:
        super().__init__(spool, **kwargs)  # type: ignore[arg-type]
        self._spool = spool
        self._batch: list[bytes | memoryview] = []
        self._batched = 0
        self._hashed_to = 0  # bytes of the spool handed to the hashing thread so far
        self._in_flight: asyncio.Future[None] | None = None

    async def write(self, data: bytes | memoryview) -> None:
        if self.size is not None:
            self.size += len(data)
        self._spool.store(data)
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self.BATCH_BYTES:
            await self._send_batch()

    def _take_batch(self) -> tuple[list[bytes | memoryview], int, int]:
        """The bytes not yet handed to hashing: (chunks, offset in the spool, length)."""
        batch, length = self._batch, self._batched
        self._batch, self._batched = [], 0
        offset, self._hashed_to = self._hashed_to, self._hashed_to + length
        return batch, offset, length

    async def _send_batch(self) -> None:
        if self._in_flight is not None:
            await self._in_flight  # keeps the hash in order and memory bounded
        self._in_flight = asyncio.ensure_future(
            anyio.to_thread.run_sync(self._hash_batch, *self._take_batch())
        )
        # If parsing fails, the parser closes the spool and nobody awaits this; its error
        # must not be logged as "never retrieved".
        self._in_flight.add_done_callback(_mark_retrieved)

    def _hash_batch(self, batch: list[bytes | memoryview], offset: int, length: int) -> None:
        # One copy and one update per batch: hashing ~16 separate chunks makes this thread
        # take the GIL back ~16 times per MiB, each time stalling the event loop (measured: the
        # join is 4% faster end to end in A/B runs).
        self._spool.hash(batch[0] if len(batch) == 1 else b"".join(batch))
        self._spool.start_writeback(offset, length)

    async def _drain(self) -> None:
        # A spool on disk starts its writeback with each batch: a system call that can wait
        # on a busy disk, never run on the event loop.
        if self._batched > self.INLINE_HASH_BYTES or (self._batch and self._spool.rolled):
            await self._send_batch()
        elif self._batch:
            # A small file, or a large one's tail: hashing a few KiB here costs less than
            # the round trip to a worker thread (in order: after the batch in flight).
            if self._in_flight is not None:
                in_flight, self._in_flight = self._in_flight, None
                await in_flight
            self._hash_batch(*self._take_batch())
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def seek(self, offset: int) -> None:
        await self._drain()
        await super().seek(offset)

    async def read(self, size: int = -1) -> bytes:
        await self._drain()
        return await super().read(size)

    async def close(self) -> None:
        try:
            await self._drain()
        finally:
            await super().close()
