"""How one input of `filejob submit` becomes a job, each way carrying one `Idempotency-Key`
(made once per input and run, the same on each of its tries), so that a try whose answer was
lost never makes a second job:

- a file up to `resumable_above` bytes: one multipart `POST /v1/jobs`, tried again, whole,
  after a network failure or a "not now" answer (retry.py); a repeat of a try that made the
  job gets that job back (`Idempotent-Replayed: true`);
- a larger file: a tus upload (tus.py), resumed after a cut and across runs;
- a URL: `POST /v1/jobs` with `source_url` (the server fetches the file), tried again as the
  multipart one is.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filejob.client.api import job_form
from filejob.client.retry import Backoff
from filejob.client.tus import TusUpload
from filejob.client.url_storage import UploadUrls, fingerprint

if TYPE_CHECKING:
    from filejob.client.api import FilejobClient

DEFAULT_RESUMABLE_ABOVE = 64 * 1024 * 1024
WHOLE_RETRIES = 5  # a multipart or source_url submit tried again at most this often
RESUMABLE_RETRIES = 8  # a tus upload: failures in a row with no byte acknowledged between

Position = Callable[[int], None]  # how many bytes of the file are sent so far


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class Item:
    """One input: a file (its `occurrence` among the run's inputs of the same path) or a URL."""

    file: Path | None = None
    url: str | None = None
    occurrence: int = 0
    idempotency_key: str = field(default_factory=new_idempotency_key)
    resumable: bool = False  # sent with tus: an interrupted upload is resumed by a re-run
    sent: int = 0  # bytes of the file sent by this run

    @property
    def label(self) -> str:
        return str(self.file) if self.file is not None else str(self.url)


@dataclass
class Sender:
    """Sends the run's inputs as jobs of `processor` with `params`."""

    client: FilejobClient
    processor: str
    params: dict[str, Any]
    resumable_above: int = DEFAULT_RESUMABLE_ABOVE
    urls: UploadUrls = field(default_factory=UploadUrls)
    retry: Backoff = field(default_factory=lambda: Backoff(retries=WHOLE_RETRIES))
    _pruned: bool = field(default=False, init=False)

    def _backoff(self) -> Backoff:
        """A fresh count of tries for one input, with `retry`'s settings."""
        return dataclasses.replace(self.retry, failures=0)

    def send(self, item: Item, position: Position, abort: threading.Event) -> dict[str, Any]:
        """The job made of `item`; raises `Aborted` once `abort` is set mid-way."""
        if item.url is not None:
            return self._backoff().call(
                lambda: self.client.submit_url(
                    str(item.url),
                    self.processor,
                    self.params,
                    idempotency_key=item.idempotency_key,
                ),
                abort,
            )
        assert item.file is not None
        if item.file.stat().st_size > self.resumable_above:
            return self._resumable(item, item.file, position, abort)
        return self._whole(item, item.file, position, abort)

    def _whole(
        self, item: Item, file: Path, position: Position, abort: threading.Event
    ) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            position(0)  # a try again sends the whole file again
            done = 0

            def moved(n: int) -> None:
                nonlocal done
                done += n
                item.sent += n
                position(done)

            return self.client.submit(
                file,
                self.processor,
                self.params,
                progress=moved,
                abort=abort,
                idempotency_key=item.idempotency_key,
            )

        return self._backoff().call(attempt, abort)

    def _resumable(
        self, item: Item, file: Path, position: Position, abort: threading.Event
    ) -> dict[str, Any]:
        item.resumable = True
        if not self._pruned:
            self._pruned = True
            self.urls.prune()
        fields = job_form(self.processor, self.params)
        key = fingerprint(self.client.server, file, fields, item.occurrence)
        metadata = {**fields, "filename": file.name, "filetype": "application/octet-stream"}
        upload = TusUpload(
            self.client.http,
            file,
            metadata,
            key,
            self.urls,
            item.idempotency_key,
            position=position,
            abort=abort,
            backoff=dataclasses.replace(self.retry, retries=RESUMABLE_RETRIES, failures=0),
        )
        try:
            job_id = upload.run()
        finally:
            item.sent = upload.sent
        return self._backoff().call(lambda: self.client.job(job_id), abort)
