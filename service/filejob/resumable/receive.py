"""One request's body into an upload's store (a `store.ChunkSink`): written at its offset and
hashed as it arrives, in a worker thread a batch at a time (one batch in flight while the next
arrives, as the multipart spool does), never whole in memory.

A body that stops early (the client went away, or stalled past the body timeout) is not an
error here: what arrived is written and counted, and the caller decides whether to keep it
(tus: "the Server SHOULD always attempt to store as much of the received data as possible").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread

from filejob.resumable.errors import UploadInterrupted, UploadLengthExceeded

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.store import ChunkSink

BATCH_BYTES = 1024 * 1024
# Seconds without a chunk after which a request counts as stalled: a newer request for the
# same upload may then interrupt it (the client most likely gave up on it); before that, the
# newer one is refused (423) as it would be on another server.
STALLED_SECONDS = 5.0


@dataclass(frozen=True)
class Received:
    written: int  # bytes written from the request's offset
    cut: Exception | None  # why the body stopped early; None: all of it arrived


class BodyReceiver:
    """Writes a body at `offset`, at most `limit` bytes, updating `hashes` in order; calls
    `keep_lease()` before handing a batch over when `lease_due()` (the request must still
    hold the upload when its bytes are written; one renewal, one write transaction, every
    leases.RENEW_SECONDS rather than every batch)."""

    def __init__(
        self,
        writer: ChunkSink,
        offset: int,
        limit: int,
        hashes: list[_Hash],
        lease_due: Callable[[], bool],
        keep_lease: Callable[[], Awaitable[None]],
    ) -> None:
        self._writer = writer
        self._position = offset
        self._limit = limit
        self._hashes = hashes
        self._lease_due = lease_due
        self._keep_lease = keep_lease
        self._batch: list[bytes] = []
        self._batched = 0
        self._written = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._awaiting = False  # the client's next chunk
        self._last_chunk = time.monotonic()
        self.interrupted = False

    @property
    def waiting(self) -> bool:
        """Stalled: waiting for the client's next chunk, none having come for
        `STALLED_SECONDS` (see writing.LocalWriter: only such a request is interrupted)."""
        return self._awaiting and time.monotonic() - self._last_chunk >= STALLED_SECONDS

    async def receive(self, body: AsyncIterable[bytes]) -> Received:
        chunks = aiter(body)
        cut: Exception | None = None
        try:
            while True:
                self._awaiting = True
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    if not self.interrupted:
                        raise
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    raise UploadInterrupted(
                        "A newer request for this upload took over while this one waited for "
                        "its bytes; nothing more of it was kept."
                    ) from None
                except Exception as exc:  # the client's side: gone, or too slow
                    cut = exc
                    break
                finally:
                    self._awaiting = False
                self._last_chunk = time.monotonic()
                if not chunk:
                    continue
                if self._written + self._batched + len(chunk) > self._limit:
                    raise UploadLengthExceeded(
                        f"The body goes past the upload's length (room for {self._limit} "
                        "more bytes at this offset); nothing of this request was kept."
                    )
                self._batch.append(chunk)
                self._batched += len(chunk)
                if self._batched >= BATCH_BYTES or self._lease_due():
                    await self._send_batch()
            if self._batch:
                await self._send_batch()
            await self._settle()
        except BaseException:
            await self._settle(quietly=True)  # no thread writes once the caller moves on
            raise
        return Received(self._written, cut)

    async def _send_batch(self) -> None:
        await self._settle()  # in order, one batch in flight: memory stays bounded
        if self._lease_due():
            await self._keep_lease()
        batch, length, position = self._batch, self._batched, self._position
        self._batch, self._batched = [], 0
        self._position += length
        self._in_flight = asyncio.ensure_future(
            anyio.to_thread.run_sync(self._absorb, batch, position)
        )
        self._written += length

    def _absorb(self, batch: list[bytes], position: int) -> None:
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        self._writer.write(data, position)
        for running in self._hashes:  # hashlib drops the GIL on large inputs
            running.update(data)

    async def _settle(self, *, quietly: bool = False) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        if not quietly:
            await in_flight
            return
        # The error that brought us here is the one to raise; the write's own is dropped.
        with contextlib.suppress(BaseException):
            await asyncio.shield(in_flight)
