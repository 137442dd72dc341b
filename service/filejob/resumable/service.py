"""Resumable uploads' use cases: create, look up, write (writing.py), concatenate (concat.py),
terminate, sweep (sweep.py). Each is a unit of work with its own transactions; the job layer
(`JobService`) checks a new upload's job fields, and makes the finished upload's job in the
transaction that completes the upload."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable
from datetime import timedelta

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.config import Settings
from filejob.errors import EmptyFile, PayloadTooLarge
from filejob.jobs.admission import JobRequest, within_quota
from filejob.jobs.idempotency import Claim, complete_upload
from filejob.jobs.model import utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.service import JobService, new_job_id
from filejob.resumable.completion import retry_soon
from filejob.resumable.concat import concatenate
from filejob.resumable.digests import Checksum, RunningHashes
from filejob.resumable.errors import UploadLocked
from filejob.resumable.leases import holder_is_dead
from filejob.resumable.model import ResumableUpload, UploadState, answerable
from filejob.resumable.repository import UploadRepository
from filejob.resumable.store import UploadStore, store_for
from filejob.resumable.sweep import sweep_uploads
from filejob.resumable.writing import LocalWriter, write


class ResumableUploads:
    def __init__(
        self,
        jobs: JobService,
        files: UploadStore,
        *,
        ttl: float,
        max_bytes: int,
        orphan_grace: float,
    ) -> None:
        self.jobs = jobs
        self.db = jobs.db
        self.files = files  # where the uploads' bytes live (store.py)
        self.ttl = timedelta(seconds=ttl)
        self.max_bytes = min(max_bytes, files.max_bytes or max_bytes)
        self.orphan_grace = orphan_grace
        self.hashes = RunningHashes()
        # This process's requests writing uploads now, by lease token (writing.LocalWriter).
        self.writing: dict[str, LocalWriter] = {}

    @classmethod
    def for_settings(cls, settings: Settings, jobs: JobService) -> ResumableUploads:
        """Uploads whose bytes live where `jobs`' storage keeps them best (store.py)."""
        return cls(
            jobs,
            store_for(settings, jobs.storage),
            ttl=settings.upload_ttl,
            max_bytes=settings.max_upload_bytes,
            orphan_grace=settings.orphan_grace,
        )

    # -- create -----------------------------------------------------------------------------

    async def create(
        self,
        caller: Principal,
        length: int | None,
        request: JobRequest,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: str | None = None,
        partial: bool = False,
        claim: Claim | None = None,
    ) -> ResumableUpload:
        """A new upload of `length` bytes (None: deferred), if its job would be accepted: the
        same checks, and the same answers, as `POST /v1/jobs` before a byte is sent (known
        processor, valid params, allowed callback, size, the caller's quota: stored bytes plus
        the uploads in progress plus `length`). A `partial` upload (concatenation) has no job
        of its own: the final upload made of it does. `claim`: the request's Idempotency-Key,
        completed with the upload's row."""
        if not partial:
            self.check_job(request, caller)
        if length is not None:
            self.check_length(length)
        now = utcnow()
        upload = ResumableUpload.created(
            new_job_id(),
            caller.owner_id,
            dataclasses.asdict(request),
            filename,
            content_type,
            metadata,
            now=now,
            expires_at=now + self.ttl,
            state=UploadState.RECEIVING,
            received=0,
            length=length,
            concat="partial" if partial else None,
        )
        # The bytes' room first: a row never names bytes that are not there. A row that
        # never commits leaves room the sweep removes.
        await anyio.to_thread.run_sync(self.files.create, upload.id)
        try:
            async with self.db.write() as session:
                await self.within_quota(session, caller, length or 0)
                await UploadRepository(session).add(upload)
                if claim is not None:
                    await complete_upload(session, claim, upload.id)
                session.expunge(upload)
        except BaseException:
            await anyio.to_thread.run_sync(self.files.remove, upload.id)
            raise
        return upload

    def check_job(self, request: JobRequest, caller: Principal) -> None:
        """Refuse a job `POST /v1/jobs` would refuse for its fields (before any byte)."""
        admission = self.jobs.admission
        admission.processor_and_params(request.processor, request.params_json)
        admission.callback(request.callback_url, caller)

    def check_length(self, length: int) -> None:
        if length == 0:
            raise EmptyFile("The upload has no content (Upload-Length: 0).")
        if length > self.max_bytes:
            raise PayloadTooLarge(
                f"The upload exceeds the limit of {self.max_bytes} bytes.", limit=self.max_bytes
            )

    @staticmethod
    async def within_quota(
        session: AsyncSession, caller: Principal, incoming: int, *, counted: int = 0
    ) -> None:
        """Refuse what the caller's limits do not allow, counting its uploads in progress
        (`counted` of their bytes are `incoming`'s already); the owner is locked until the
        transaction ends, so concurrent creations see each other."""
        if caller.max_active_jobs is None and caller.max_storage_bytes is None:
            return
        jobs = JobRepository(session)
        await jobs.lock_owner(caller.owner_id)
        active, stored = await jobs.usage(caller.owner_id)
        reserved = await UploadRepository(session).reserved(caller.owner_id)
        within_quota(caller, active, stored + reserved - counted, incoming)

    @staticmethod
    async def room(session: AsyncSession, caller: Principal, *, counted: int) -> int | None:
        """How many bytes an upload that has `counted` bytes (all it reserved) may grow to
        within the caller's storage quota; None: no quota. The owner is locked, as above."""
        if caller.max_storage_bytes is None:
            return None
        jobs = JobRepository(session)
        await jobs.lock_owner(caller.owner_id)
        _, stored = await jobs.usage(caller.owner_id)
        reserved = await UploadRepository(session).reserved(caller.owner_id)
        return max(0, caller.max_storage_bytes - (stored + reserved - counted))

    # -- look up ----------------------------------------------------------------------------

    async def get(self, upload_id: str, owner_id: str | None) -> ResumableUpload:
        """`owner_id`'s upload; anyone else's answers exactly like a missing one."""
        async with self.db.read() as session:
            upload = await UploadRepository(session).get_owned(upload_id, owner_id)
        return answerable(upload, upload_id, utcnow())

    # -- write ------------------------------------------------------------------------------

    async def write(
        self,
        upload_id: str,
        caller: Principal,
        offset: int,
        body: AsyncIterable[bytes],
        *,
        content_length: int | None = None,
        length: int | None = None,
        checksum: Checksum | None = None,
    ) -> ResumableUpload:
        """Write `body` at `offset` (which must be the upload's), setting a deferred length to
        `length`; the upload as it now is (see writing.py)."""
        return await write(
            self,
            upload_id,
            caller,
            offset,
            body,
            content_length=content_length,
            length=length,
            checksum=checksum,
        )

    # -- concatenate ------------------------------------------------------------------------

    async def concatenate(
        self,
        caller: Principal,
        part_ids: list[str],
        request: JobRequest,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: str | None = None,
        claim: Claim | None = None,
    ) -> ResumableUpload:
        """A final upload made of finished partial uploads, with its job (see concat.py);
        `claim` as for `create`."""
        return await concatenate(
            self,
            caller,
            part_ids,
            request,
            filename=filename,
            content_type=content_type,
            metadata=metadata,
            claim=claim,
        )

    # -- terminate --------------------------------------------------------------------------

    async def terminate(self, upload_id: str, owner_id: str | None) -> None:
        """Remove the upload and its bytes (termination); a complete upload's job stays."""
        now = utcnow()
        async with self.db.write() as session:
            repo = UploadRepository(session)
            upload = answerable(await repo.get_owned(upload_id, owner_id), upload_id, now)
            holder = upload.lease_token
            dead = holder if holder and holder_is_dead(holder) else None
            if not await repo.delete(upload_id, owner_id, now, dead_holder=dead):
                raise UploadLocked(
                    "A request is writing this upload; retry once it ends.", headers=retry_soon()
                )
        self.hashes.forget(upload_id)
        await anyio.to_thread.run_sync(self.files.remove, upload_id)

    # -- sweep ------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """The sweeper's step (jobs/sweeper.py): see `sweep.sweep_uploads`."""
        return await sweep_uploads(self.db, self.files, self.hashes, self.ttl, self.orphan_grace)
