"""Every query against `resumable_uploads`. Callers own the transaction (`Database.read/write`).

Who may write an upload's bytes is decided here, by compare-and-set on the row, so that it holds
across API servers on either database: a request *claims* the upload at the offset it sends
(the offset must be the row's, and no live lease another request holds), renews its lease while
its body arrives, and ends by *acknowledging* the new offset, or completing the upload, only if
its lease is still the row's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.base import Executable

from filejob.resumable.model import ResumableUpload, UploadState

Upload = ResumableUpload


def _owned_by(owner_id: str | None) -> ColumnElement[bool]:
    """Rows of one owner; None is the anonymous owner (auth off), not "anyone"."""
    return Upload.owner_id == owner_id if owner_id is not None else Upload.owner_id.is_(None)


def _holds_a_file() -> ColumnElement[bool]:
    """Uploads whose file is still theirs: receiving, or a finished partial upload waiting
    for its final one."""
    partial_done = and_(Upload.concat == "partial", Upload.state == UploadState.COMPLETE)
    return or_(Upload.state == UploadState.RECEIVING, partial_done)


def _leased_by(upload_id: str, token: str) -> list[ColumnElement[bool]]:
    return [Upload.id == upload_id, Upload.lease_token == token]


class UploadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _run(self, statement: Executable) -> CursorResult[Any]:
        connection = await self.session.connection()
        return await connection.execute(statement)

    async def add(self, upload: ResumableUpload) -> None:
        self.session.add(upload)
        await self.session.flush()

    async def get_owned(self, upload_id: str, owner_id: str | None) -> ResumableUpload | None:
        """`owner_id`'s upload, or None (missing, or another owner's: the same to the caller)."""
        query = select(Upload).where(Upload.id == upload_id, _owned_by(owner_id))
        upload = (await self.session.execute(query)).scalar_one_or_none()
        if upload is not None:
            # A snapshot for the caller: what it changes on it is never written back (every
            # write here is a statement of its own, a compare-and-set).
            self.session.expunge(upload)
        return upload

    async def reserved(self, owner_id: str | None) -> int:
        """Bytes the owner's uploads in progress will take: their Upload-Length (what has
        arrived, while the length is deferred), finished partial uploads' included."""
        query = select(func.coalesce(func.sum(func.coalesce(Upload.length, Upload.received)), 0))
        query = query.where(_owned_by(owner_id), _holds_a_file())
        return int((await self._run(query)).scalar_one())

    async def claim(
        self,
        upload_id: str,
        owner_id: str | None,
        offset: int,
        token: str,
        now: datetime,
        until: datetime,
        *,
        dead_holder: str | None = None,
    ) -> bool:
        """Take the lease of an unfinished, unexpired upload at `offset`, if no live lease
        holds it (or the one that holds it is `dead_holder`'s, known to be dead). True if taken."""
        free = or_(Upload.lease_token.is_(None), Upload.lease_until <= now)
        if dead_holder is not None:
            free = or_(free, Upload.lease_token == dead_holder)
        statement = (
            update(Upload)
            .where(
                Upload.id == upload_id,
                _owned_by(owner_id),
                Upload.state == UploadState.RECEIVING,
                Upload.received == offset,
                Upload.expires_at > now,
                free,
            )
            .values(lease_token=token, lease_until=until)
        )
        return (await self._run(statement)).rowcount == 1

    async def declare_length(self, upload_id: str, token: str, length: int) -> bool:
        """Set a deferred Upload-Length (once: a length already set stays as it is)."""
        statement = (
            update(Upload)
            .where(*_leased_by(upload_id, token), Upload.length.is_(None))
            .values(length=length)
        )
        return (await self._run(statement)).rowcount == 1

    async def renew(self, upload_id: str, token: str, until: datetime) -> bool:
        statement = update(Upload).where(*_leased_by(upload_id, token)).values(lease_until=until)
        return (await self._run(statement)).rowcount == 1

    async def renew_all(self, upload_ids: Sequence[str], token: str, until: datetime) -> int:
        """Extend `token`'s leases on `upload_ids`; how many it still held."""
        statement = (
            update(Upload)
            .where(Upload.id.in_(upload_ids), Upload.lease_token == token)
            .values(lease_until=until)
        )
        return (await self._run(statement)).rowcount

    async def release(self, upload_id: str, token: str) -> None:
        statement = (
            update(Upload)
            .where(*_leased_by(upload_id, token))
            .values(lease_token=None, lease_until=None)
        )
        await self._run(statement)

    async def acknowledge(
        self, upload_id: str, token: str, offset: int, received: int, now: datetime
    ) -> bool:
        """Move the offset from `offset` to `received` and release the lease, if the lease is
        still `token`'s. True if it moved."""
        statement = (
            update(Upload)
            .where(*_leased_by(upload_id, token), Upload.received == offset)
            .values(received=received, updated_at=now, lease_token=None, lease_until=None)
        )
        return (await self._run(statement)).rowcount == 1

    async def complete(
        self,
        upload_id: str,
        token: str,
        offset: int,
        job_id: str,
        now: datetime,
        keep_until: datetime,
    ) -> bool:
        """Mark the upload complete with its job (the caller's transaction inserts the job),
        from `offset` to its whole length, if the lease is still `token`'s."""
        statement = (
            update(Upload)
            .where(
                *_leased_by(upload_id, token),
                Upload.received == offset,
                Upload.state == UploadState.RECEIVING,
            )
            .values(
                state=UploadState.COMPLETE,
                received=Upload.length,
                job_id=job_id,
                updated_at=now,
                expires_at=keep_until,
                lease_token=None,
                lease_until=None,
            )
        )
        return (await self._run(statement)).rowcount == 1

    async def delete(
        self, upload_id: str, owner_id: str | None, now: datetime, *, dead_holder: str | None
    ) -> bool:
        """Remove the owner's upload unless a live request holds its lease (a dead one's,
        `dead_holder`, does not count). True if removed."""
        free = or_(Upload.lease_token.is_(None), Upload.lease_until <= now)
        if dead_holder is not None:
            free = or_(free, Upload.lease_token == dead_holder)
        statement = delete(Upload).where(Upload.id == upload_id, _owned_by(owner_id), free)
        return (await self._run(statement)).rowcount == 1

    async def discard(self, upload_id: str, token: str) -> bool:
        """Remove the upload that `token` holds (its bytes were refused); True if removed."""
        statement = delete(Upload).where(*_leased_by(upload_id, token))
        return (await self._run(statement)).rowcount == 1

    async def complete_partial(
        self, upload_id: str, token: str, offset: int, now: datetime
    ) -> bool:
        """A partial upload's last bytes: complete, with no job; its file waits for a final
        upload (or its expiry)."""
        statement = (
            update(Upload)
            .where(*_leased_by(upload_id, token), Upload.received == offset)
            .values(
                state=UploadState.COMPLETE,
                received=Upload.length,
                updated_at=now,
                lease_token=None,
                lease_until=None,
            )
        )
        return (await self._run(statement)).rowcount == 1

    async def lease_parts(
        self,
        part_ids: Sequence[str],
        owner_id: str | None,
        token: str,
        now: datetime,
        until: datetime,
    ) -> bool:
        """Lease every one of the owner's finished, unexpired partial uploads `part_ids` for a
        final upload being made of them; True if all were free and are now leased."""
        statement = (
            update(Upload)
            .where(
                Upload.id.in_(part_ids),
                _owned_by(owner_id),
                Upload.concat == "partial",
                Upload.state == UploadState.COMPLETE,
                Upload.expires_at > now,
                or_(Upload.lease_token.is_(None), Upload.lease_until <= now),
            )
            .values(lease_token=token, lease_until=until)
        )
        return (await self._run(statement)).rowcount == len(part_ids)

    async def release_parts(self, part_ids: Sequence[str], token: str) -> None:
        statement = (
            update(Upload)
            .where(Upload.id.in_(part_ids), Upload.lease_token == token)
            .values(lease_token=None, lease_until=None)
        )
        await self._run(statement)

    async def consume_parts(self, part_ids: Sequence[str], token: str) -> bool:
        """Delete the partial uploads a final one was made of, if `token` still leases all."""
        statement = delete(Upload).where(Upload.id.in_(part_ids), Upload.lease_token == token)
        return (await self._run(statement)).rowcount == len(part_ids)

    # -- the sweep --------------------------------------------------------------------------

    async def expire_due(self, now: datetime, limit: int) -> Sequence[str]:
        """Turn up to `limit` uploads whose time has passed into tombstones (but none a request
        holds a live lease on); their ids, whose files are to go."""
        due = [
            Upload.state != UploadState.EXPIRED,
            Upload.expires_at <= now,
            or_(Upload.lease_token.is_(None), Upload.lease_until <= now),
        ]
        statement = (
            update(Upload)
            .where(*due, Upload.id.in_(select(Upload.id).where(*due).limit(limit)))
            .values(
                state=UploadState.EXPIRED,
                updated_at=now,
                expires_at=now,
                lease_token=None,
                lease_until=None,
            )
            .returning(Upload.id)
        )
        return list((await self._run(statement)).scalars())

    async def purge_tombstones(self, before: datetime) -> int:
        statement = delete(Upload).where(
            Upload.state == UploadState.EXPIRED, Upload.expires_at < before
        )
        return (await self._run(statement)).rowcount or 0

    async def with_files(self, upload_ids: Sequence[str]) -> set[str]:
        """Which of `upload_ids` are uploads whose files stay (see `_holds_a_file`)."""
        query = select(Upload.id).where(Upload.id.in_(upload_ids), _holds_a_file())
        return set((await self._run(query)).scalars())


async def reserved_bytes(session: AsyncSession, owner_id: str | None) -> int:
    """`UploadRepository.reserved`, as the job layer's quota checks take it (compose.py)."""
    return await UploadRepository(session).reserved(owner_id)
