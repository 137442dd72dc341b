"""One request's bytes into an upload's S3 multipart upload (multipart.py has the layout): the
part being filled lives in a temp file (never whole in memory), starting with the tail of the
request's offset; each part is uploaded as it fills; `seal` makes the rest durable, as the
last part or as the tail object of the new offset."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from filejob.errors import ServiceUnavailable
from filejob.resumable.errors import UploadExpired
from filejob.resumable.files import ChunkWriter
from filejob.storage.s3_parts import MIN_PART, MultipartGone

if TYPE_CHECKING:
    from filejob.resumable.multipart import MultipartStore

log = logging.getLogger(__name__)

# Every part of every upload but its last holds this many bytes, so that part numbers follow
# from offsets. S3's least part size: the least bytes a request keeps in a part buffer and
# rewrites as a tail. Uploads in progress depend on it: it cannot change under them.
PART_BYTES = MIN_PART


def tail_key(upload_id: str, offset: int) -> str:
    """The object holding an upload's bytes past its last whole part, at `offset`."""
    return f"{tails_of(upload_id)}{offset}"


def tails_of(upload_id: str) -> str:
    from filejob.storage.s3 import UPLOADS_AREA

    return f"{UPLOADS_AREA}{upload_id}/"


class PartSink:
    """`store.ChunkSink` for `multipart`, the multipart upload of `key` (the upload's)."""

    def __init__(
        self,
        store: MultipartStore,
        upload_id: str,
        key: str,
        multipart: str,
        offset: int,
        buffer: tuple[BinaryIO, Path | None],
    ) -> None:
        self._store = store
        self._upload_id, self._key, self._multipart = upload_id, key, multipart
        self._offset = self._end = self._sealed = offset
        self._start = offset - offset % PART_BYTES  # where the part being filled begins
        self._file, self._path = buffer
        self._buffer = ChunkWriter(self._file.fileno(), fsync=False)
        self.etags: dict[int, str] = {}  # the parts this sink uploaded, by number

    def load_tail(self) -> None:
        """Start the part buffer with the bytes the tail object of the offset holds."""
        if self._offset == self._start:
            return
        tail = tail_key(self._upload_id, self._offset)
        got = self._store.parts.get_into(tail, self._file.fileno())
        if got != self._offset - self._start:
            raise UploadExpired(
                f"Bytes of this upload before offset {self._offset} are gone; start a new one."
            )

    def write(self, data: bytes | memoryview, position: int) -> None:
        if position != self._end:
            raise ValueError(f"bytes at {position}, after {self._end}: a sink only appends")
        view = memoryview(data)
        while view:
            filled = self._end - self._start
            piece = view[: PART_BYTES - filled]
            self._buffer.write(piece, filled)
            self._end += len(piece)
            view = view[len(piece) :]
            if self._end - self._start == PART_BYTES:
                self._upload_part(PART_BYTES)
                self._start = self._end

    def seal(self, end: int, *, last: bool) -> None:
        if end != self._end:
            raise ValueError(f"sealing at {end}, but bytes reach {self._end}")
        size = end - self._start
        if last and size:
            self._upload_part(size)  # the last part may be of any size
        elif size:
            with self._body(size) as body:
                self._store.parts.put(tail_key(self._upload_id, end), body, size)
        self._sealed = end

    def acknowledged(self) -> None:
        if self._offset == self._start or self._offset == self._sealed:
            return  # the old offset had no tail, or it is the new one's
        try:
            self._store.parts.delete([tail_key(self._upload_id, self._offset)])
        except Exception:  # the upload's end, or the sweep, removes it
            log.warning("upload %s: could not remove an old tail", self._upload_id, exc_info=True)

    def close(self) -> None:
        self._store.buffers.close(self._file, self._path)

    def _upload_part(self, size: int) -> None:
        number = self._start // PART_BYTES + 1
        with self._body(size) as body:
            try:
                self.etags[number] = self._store.parts.upload_part(
                    self._key, self._multipart, number, body, size
                )
            except MultipartGone:
                # Another server completed or reopened it meanwhile (a job refused at its
                # end, say): what this request sent cannot join the parts already there.
                self._store.forget(self._upload_id)
                raise ServiceUnavailable(
                    "The upload's storage changed while this request wrote it; nothing of "
                    "it was kept. Retry from HEAD's offset.",
                    headers={"Retry-After": "1"},
                ) from None

    @contextlib.contextmanager
    def _body(self, size: int) -> Iterator[BinaryIO]:
        """The buffer's first `size` bytes as a file at 0 (what an upload reads to its end)."""
        fd = self._file.fileno()
        os.ftruncate(fd, size)  # a shorter last part or tail after a whole part
        with os.fdopen(os.dup(fd), "rb") as body:
            body.seek(0)  # a duplicate shares the offset the last upload left at its end
            yield body
