"""What a new job must pass before it is accepted: a known processor with valid params, an
allowed callback URL, room in the caller's quota, and an acceptable file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.db.engine import Database
from filejob.errors import (
    EmptyFile,
    InvalidParams,
    PayloadTooLarge,
    QuotaExceeded,
    TooManyActiveJobs,
    UnknownProcessor,
    UnsupportedMediaType,
    WebhooksNotConfigured,
)
from filejob.jobs.imports import ImportPolicy, SourceUrlRefused
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.repository import JobRepository
from filejob.processors.base import Processor
from filejob.processors.registry import ProcessorRegistry
from filejob.processors.sniff import SNIFF_BYTES, sniff
from filejob.storage.ingest import digest_of
from filejob.untrusted.boundary import interpreting
from filejob.untrusted.filenames import MAX_FILENAME_BYTES, sanitize_filename


@dataclass(frozen=True)
class JobRequest:
    """What a client asks for besides the file (the upload form's fields)."""

    processor: str
    params_json: str | None = None
    delete_after_download: bool = False
    max_attempts: int | None = None  # capped by the server's max_attempts
    timeout_seconds: float | None = None  # per attempt; default: the processor's
    callback_url: str | None = None
    # The client's sha256 of the file (hex, RFC 9530's `Repr-Digest` or a `sha256` field):
    # the upload is refused, and nothing kept, unless the bytes that arrived have it.
    input_sha256: str | None = None
    # An import: the input is fetched from this URL by the job's first attempt (jobs/imports.py).
    source_url: str | None = None
    # Whether an earlier job's result may stand in for this one's (jobs/reuse.py).
    reuse: bool = False


class CallbackUrlCheck(Protocol):
    """Raises `InvalidCallbackUrl` or `CallbackForbidden` for a callback URL no webhook may
    go to; what it returns is ignored. The webhook layer's guard, given by compose.py."""

    def __call__(self, url: str, /) -> object: ...


class ReservedBytes(Protocol):
    """Bytes an owner's uploads in progress have reserved (resumable uploads, a layer above
    this one: `resumable.repository.reserved_bytes`, given by compose.py), read in `session`:
    a new job's quota counts them as stored, as a new upload's counts stored jobs."""

    async def __call__(self, session: AsyncSession, owner_id: str | None, /) -> int: ...


async def no_reservations(session: AsyncSession, owner_id: str | None, /) -> int:
    """Where no uploads are taken: nothing is reserved."""
    return 0


async def usage_of(
    repo: JobRepository, reserved: ReservedBytes, owner_id: str | None
) -> tuple[int, int]:
    """The owner's active jobs, and the bytes its stored files take plus those its uploads
    in progress reserved: what a new job is checked against."""
    active, stored = await repo.usage(owner_id)
    return active, stored + await reserved(repo.session, owner_id)


@dataclass(frozen=True)
class CallbackRules:
    check_url: CallbackUrlCheck
    anonymous_can_sign: bool = False  # a webhook secret exists for anonymous jobs


def within_quota(caller: Principal, active: int, stored: int, incoming: int) -> None:
    if caller.max_active_jobs is not None and active >= caller.max_active_jobs:
        raise TooManyActiveJobs(
            f"{active} jobs are queued or running; the limit is {caller.max_active_jobs}. "
            "Wait for some to finish.",
            headers={"Retry-After": "5"},
            limit=caller.max_active_jobs,
        )
    if caller.max_storage_bytes is not None and stored + incoming > caller.max_storage_bytes:
        raise QuotaExceeded(
            f"Storing {incoming} more bytes would exceed the quota of "
            f"{caller.max_storage_bytes} bytes ({stored} in use). Delete finished jobs "
            "or download their results with delete_after_download.",
            limit=caller.max_storage_bytes,
            used=stored,
        )


class Admission:
    def __init__(
        self,
        db: Database,
        registry: ProcessorRegistry,
        *,
        max_upload_bytes: int,
        max_filename_bytes: int = MAX_FILENAME_BYTES,
        callbacks: CallbackRules,
        reserved: ReservedBytes = no_reservations,
        imports: ImportPolicy | None = None,
    ) -> None:
        """`imports`: None where this server takes no `source_url`."""
        self.db = db
        self.imports = imports
        self.reserved = reserved
        self.registry = registry
        self.max_upload_bytes = max_upload_bytes
        self.max_filename_bytes = max_filename_bytes
        self.callbacks = callbacks

    def processor_and_params(
        self, processor_name: str, params_json: str | None
    ) -> tuple[Processor, dict[str, Any]]:
        processor = self.registry.get(processor_name)
        if processor is None:
            raise UnknownProcessor(
                f"No processor named {processor_name!r}.",
                available=[p.name for p in self.registry],
            )
        with interpreting("params", lambda detail: InvalidParams(detail, errors=[])):
            params = self._params(processor, params_json)
        return processor, params.model_dump(mode="json")

    @staticmethod
    def _params(processor: Processor, params_json: str | None) -> BaseModel:
        try:
            raw = json.loads(params_json) if params_json else {}
        except json.JSONDecodeError as exc:
            raise InvalidParams(f"params is not valid JSON: {exc.msg}.", errors=[]) from exc
        except RecursionError:
            raise InvalidParams("params is nested too deeply.", errors=[]) from None
        if not isinstance(raw, dict):
            raise InvalidParams("params must be a JSON object.", errors=[])
        try:
            return processor.Params.model_validate(raw)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False)
            ]
            raise InvalidParams(
                "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in errors
                ),
                errors=errors,
            ) from exc

    def callback(self, url: str | None, caller: Principal) -> str | None:
        if not url:
            return None
        # Judged by its normalised host, but kept as given: the client sees what it sent, and
        # every delivery normalises and judges it afresh anyway (rows outlive the rules).
        self.callbacks.check_url(url)
        if caller.is_anonymous and not self.callbacks.anonymous_can_sign:
            raise WebhooksNotConfigured(
                "Webhooks of anonymous jobs are signed with FILEJOB_WEBHOOK_SECRET, which is "
                "not set on this server (or use an API key: each has its own secret)."
            )
        return url

    def source(self, url: str) -> str:
        """A `source_url` this server may fetch from, kept as given (every fetch judges it
        afresh, as deliveries do callbacks); raises `InvalidSourceUrl`, `SourceUrlRefused`."""
        if self.imports is None:
            raise SourceUrlRefused("This server does not import files from URLs.")
        self.imports.check(url)
        return url

    async def quota(self, caller: Principal, incoming_bytes: int = 0) -> None:
        """Refuse a new job the caller's limits do not allow; called before the body is read
        (with the declared length) and again, with the real size, in the accepting transaction."""
        if caller.max_active_jobs is None and caller.max_storage_bytes is None:
            return
        async with self.db.read() as session:
            usage = await usage_of(JobRepository(session), self.reserved, caller.owner_id)
        within_quota(caller, *usage, incoming_bytes)

    async def input(self, upload: IncomingFile, processor: Processor) -> tuple[int, str, str, str]:
        """Size, sha256, display name and sniffed type of an acceptable upload."""
        size, sha256 = await digest_of(upload.file)
        if size == 0:
            raise EmptyFile("The uploaded file has no content.")
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The upload exceeds the limit of {self.max_upload_bytes} bytes.",
                limit=self.max_upload_bytes,
            )
        await upload.seek(0)
        head = await upload.read(SNIFF_BYTES)
        await upload.seek(0)
        filename = sanitize_filename(upload.filename, max_bytes=self.max_filename_bytes)
        content_type = sniff(head, upload.content_type, filename)
        if not processor.accepts(content_type):
            raise UnsupportedMediaType(
                f"{processor.name} does not accept {content_type} input.",
                content_type=content_type,
                accepted=list(processor.content_types),
            )
        return size, sha256, filename, content_type
