"""The outputs of one attempt: `ctx.output` and each `ctx.emit()`, each a storage writer of its
own (a temp file until committed), kept all together or discarded all together.

The first writer exists before the processor starts; each emitted one is made when the
processor asks, from whichever thread it asks in (or, for a child process, from the thread
that supervises it), on the event loop that made the first.

Once the attempt is over (`commit` or `discard`) the outputs are sealed: a processor thread
that was abandoned and emits later gets `Cancelled`, and leaves no temp file behind.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

import anyio.from_thread
import anyio.lowlevel

from filejob.jobs.output import Made, Written
from filejob.jobs.result_rows import StoredOutput
from filejob.jobs.storage_keys import result_key
from filejob.processors.base import MAX_OUTPUTS, Cancelled, ProcessingError
from filejob.storage.base import BlobWriter
from filejob.untrusted.filenames import sanitize_filename

W = TypeVar("W", bound=BlobWriter)
DeleteBlob = Callable[[str], Awaitable[bool]]


class AttemptOutputs(Generic[W]):
    """The writers of `job_id`'s `attempt`, made by `make` under the attempt's result keys
    (`storage_keys.result_key`: index 0 for `ctx.output`, then 1, 2... as emitted); `delete`
    removes a stored blob (the storage's)."""

    def __init__(
        self,
        make: Callable[[str], Coroutine[Any, Any, W]],
        delete: DeleteBlob,
        job_id: str,
        attempt: int,
    ) -> None:
        self._make = make
        self._delete = delete
        self._job_id = job_id
        self._attempt = attempt
        # None: an index taken, its writer still being made.
        self._writers: list[W | None] = []
        self._lock = threading.Lock()
        self._sealed = False
        self._loop = anyio.lowlevel.current_token()  # any thread may call `emit`

    async def first(self) -> W:
        """`ctx.output`'s writer (made before the processor starts)."""
        writer = await self._make(result_key(self._job_id, self._attempt))
        self._writers.append(writer)
        return writer

    def emit(self) -> tuple[int, W]:
        """Another output's index and writer; from a worker thread (blocking). Outputs are
        listed by index (`Made.emitted` in that order). Raises `Cancelled` once the attempt
        is over, `ProcessingError` past `MAX_OUTPUTS`."""
        with self._lock:
            if self._sealed:
                raise Cancelled
            index = len(self._writers)
            if index >= MAX_OUTPUTS:
                raise ProcessingError(
                    f"The processor wrote more than {MAX_OUTPUTS} outputs.", code="too_many_outputs"
                )
            self._writers.append(None)  # the index is taken; the writer is made unlocked
        key = result_key(self._job_id, self._attempt, index)
        writer = anyio.from_thread.run(self._make, key, token=self._loop)
        with self._lock:
            if not self._sealed:
                self._writers[index] = writer
                return index, writer
        anyio.from_thread.run(writer.discard, token=self._loop)  # sealed meanwhile
        raise Cancelled

    def _seal(self) -> list[W]:
        with self._lock:
            self._sealed = True
            return [writer for writer in self._writers if writer is not None]

    async def discard(self) -> None:
        """Drop every output (the attempt failed or stopped)."""
        for writer in self._seal():
            await writer.discard()

    async def commit(self, made: Made) -> list[StoredOutput]:
        """Store every output `made` describes (each under its key, atomically), in the
        order they are listed; on an error, none is left stored."""
        writers = self._seal()
        first, *emitted = writers
        if len(emitted) != len(made.emitted):
            await self._drop(writers)
            raise RuntimeError("the emitted outputs do not match the writers made for them")
        kept: list[tuple[W, Written]] = [(first, made.output)] if made.output is not None else []
        kept += zip(emitted, made.emitted, strict=True)
        if made.output is None:
            await first.discard()
        if not kept:
            raise RuntimeError("run() returned no Output and emitted no output")
        stored: list[StoredOutput] = []
        try:
            for writer, written in kept:
                info = await writer.commit()
                stored.append(_stored(info.key, written))
        except BaseException:
            # The failed writer and the rest are dropped (a second discard is harmless), and
            # the outputs already stored removed: nothing will name them.
            await self._drop([writer for writer, _ in kept[len(stored) :]])
            for output in stored:
                await self._delete(output.key)
            raise
        return stored

    async def _drop(self, writers: list[W]) -> None:
        for writer in writers:
            await writer.discard()


def _stored(key: str, written: Written) -> StoredOutput:
    return StoredOutput(
        key=key,
        filename=sanitize_filename(written.filename, "result"),
        content_type=written.content_type,
        size=written.size,
        sha256=written.sha256,
    )
