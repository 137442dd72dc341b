"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a request repeated with the
same `Idempotency-Key` gets the job the first one made, and makes no other. The same holds for
`POST /v1/uploads`: a repeat gets the upload (tus creation) the first one made.

A key is claimed before the request's body is read: a row (owner, key) with this request's
random `token` and no job yet. While it is so, the same key answers `409` (in flight). The row
is completed in the transaction that commits the job (`complete`, called by jobs/commits.py),
with the job's id and the request's fingerprint (its fields and the input's sha256), so the job
and its key commit together or not at all. A request that fails releases its claim; a claim
whose request died with its server is taken over once it is older than any request can take
(`abandoned_after`). A completed key is kept for `ttl` seconds (FILEJOB_IDEMPOTENCY_TTL), then
swept; deleting its job forgets it too (ON DELETE CASCADE).

A key completed by an upload's creation names the upload (`upload_id`) instead of a job, in
the transaction that adds the upload's row (`complete_upload`), and goes with the upload's row.

Keys are scoped by owner: the API key's id, or "" for the anonymous caller.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, String, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.engine import Database
from filejob.db.orm import Base, UTCDateTime, utcnow
from filejob.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, ServiceUnavailable
from filejob.jobs.admission import JobRequest
from filejob.jobs.model import Job
from filejob.jobs.repository import JobRepository

MAX_KEY_LENGTH = 255
IN_FLIGHT_RETRY_AFTER = "5"  # seconds; the first request may be a long upload


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(32), primary_key=True)  # "" for anonymous
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    # Which request holds the claim: only it may complete or release it.
    token: Mapped[str] = mapped_column(String(32))
    # Set together when the job (or the upload) commits; all None while the request is in
    # flight. A key names a job or an upload, never both.
    job_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    upload_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("resumable_uploads.id", ondelete="CASCADE")
    )
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_idempotency_keys_job_id", "job_id"),  # the cascade of a job's delete
        Index("ix_idempotency_keys_upload_id", "upload_id"),  # and of an upload's (0013)
        Index("ix_idempotency_keys_expires_at", "expires_at"),  # the sweep
    )


@dataclass
class Claim:
    """One request's hold on a key. `job_id` (or `upload_id`) set: an earlier request
    completed the key, and this one is its repeat (a replay if `fingerprint` matches, else a
    misuse)."""

    owner: str
    key: str
    token: str
    ttl: float
    job_id: str | None = None
    done_fingerprint: str | None = None
    fingerprint: str | None = None  # this request's, once its body is read
    replayed: bool = False  # set by `JobService.accept` when it answered with the earlier job
    upload_id: str | None = None

    @property
    def owned(self) -> bool:
        """This request holds the claim (it will make the job), rather than repeating one."""
        return self.job_id is None and self.upload_id is None


class ClaimLost(IdempotencyKeyInFlight):
    """The claim was taken over (its request outlived `abandoned_after`): another request
    holds the key now, so this one's job must not commit."""


def scope(owner_id: str | None) -> str:
    return owner_id or ""


def fingerprint(request: JobRequest, sha256: str) -> str:
    """What makes two requests the same: their fields and the input's sha256. Params are
    compared as JSON values (key order and spacing do not matter)."""
    document = [
        request.processor,
        _canonical_params(request.params_json),
        request.delete_after_download,
        request.max_attempts,
        request.timeout_seconds,
        request.callback_url,
        sha256,
    ]
    if request.reuse:  # added only when asked, so keys stored before it existed still match
        document.append("reuse")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def upload_fingerprint(fields: dict[str, Any]) -> str:
    """What makes two tus creations the same: their headers that shape the upload (length,
    metadata, concatenation, digest), as `fields`; never equal to a job's fingerprint."""
    canonical = json.dumps(["upload", fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_params(params_json: str | None) -> Any:
    if not params_json:
        return {}
    try:
        return json.loads(params_json)
    except (ValueError, RecursionError):
        return params_json  # invalid: compared as sent (admission refuses it anyway)


async def complete(session: AsyncSession, claim: Claim, job_id: str) -> None:
    """In the transaction that inserts the job `job_id` (after its row): the key now names it.
    Raises `ClaimLost` if the claim is no longer this request's."""
    await _complete(session, claim, job_id=job_id)


async def complete_upload(session: AsyncSession, claim: Claim, upload_id: str) -> None:
    """In the transaction that adds the upload `upload_id`'s row: the key now names it.
    Raises `ClaimLost` if the claim is no longer this request's."""
    await _complete(session, claim, upload_id=upload_id)


async def _complete(session: AsyncSession, claim: Claim, **named: str) -> None:
    """The claim's key names what `named` says (a job or an upload), if this request still
    holds it and nothing has completed it."""
    result = await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.owner == claim.owner,
            IdempotencyKey.key == claim.key,
            IdempotencyKey.token == claim.token,
            IdempotencyKey.job_id.is_(None),
            IdempotencyKey.upload_id.is_(None),
        )
        .values(
            **named,
            fingerprint=claim.fingerprint,
            expires_at=utcnow() + timedelta(seconds=claim.ttl),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ClaimLost(
            "Another request took this Idempotency-Key over while this one was being stored.",
            headers={"Retry-After": IN_FLIGHT_RETRY_AFTER},
        )


def _insert_if_absent(session: AsyncSession, values: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: a row back if this one was inserted. (Not
    `rowcount`: psycopg's is -1 for it.)"""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = builder(IdempotencyKey).values(**values).on_conflict_do_nothing()
    return statement.returning(IdempotencyKey.token)


class IdempotencyKeys:
    """Claims, releases and sweeps keys (see the module doc)."""

    ATTEMPTS = 5  # claim races lost in a row before giving up (each loser re-reads the row)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, owner_id: str | None, key: str, *, ttl: float, abandoned_after: float
    ) -> Claim:
        """Claim `key` for a new request, or find the earlier request that completed it.
        Raises `IdempotencyKeyInFlight` while another request holds it."""
        owner, token = scope(owner_id), secrets.token_hex(16)
        for _ in range(self.ATTEMPTS):
            now = utcnow()
            fresh = {
                "token": token,
                "job_id": None,
                "upload_id": None,
                "fingerprint": None,
                "claimed_at": now,
                # Never swept while its request may still be running (see `complete`).
                "expires_at": now + timedelta(seconds=abandoned_after + ttl),
            }
            async with self.db.write() as session:
                values = {"owner": owner, "key": key, **fresh}
                if await session.scalar(_insert_if_absent(session, values)) is not None:
                    return Claim(owner, key, token, ttl)
                row = (
                    await session.execute(
                        select(IdempotencyKey.__table__).where(
                            IdempotencyKey.owner == owner, IdempotencyKey.key == key
                        )
                    )
                ).one_or_none()
                if row is None:  # removed meanwhile (released, swept): try again
                    continue
                in_flight = row.job_id is None and row.upload_id is None
                stale = row.expires_at <= now or (
                    in_flight and row.claimed_at <= now - timedelta(seconds=abandoned_after)
                )
                if not stale:
                    if in_flight:
                        raise IdempotencyKeyInFlight(
                            "A request with this Idempotency-Key is still being handled; "
                            "repeat this one once it has been answered.",
                            headers={"Retry-After": IN_FLIGHT_RETRY_AFTER},
                        )
                    return Claim(
                        owner,
                        key,
                        row.token,
                        ttl,
                        row.job_id,
                        row.fingerprint,
                        upload_id=row.upload_id,
                    )
                # Expired, or abandoned by a request that died with its server: take it over,
                # unless another request just did.
                taken = await session.execute(
                    update(IdempotencyKey)
                    .where(
                        IdempotencyKey.owner == owner,
                        IdempotencyKey.key == key,
                        IdempotencyKey.token == row.token,
                    )
                    .values(**fresh)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    return Claim(owner, key, token, ttl)
        raise IdempotencyKeyInFlight(
            "Requests with this Idempotency-Key keep racing; try again.",
            headers={"Retry-After": "1"},
        )

    @staticmethod
    def same_request(claim: Claim) -> None:
        """Refuse a repeat of a completed key (its `fingerprint` set) that is another
        request."""
        if claim.fingerprint != claim.done_fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for another request (other fields or another "
                "file); use a new key for a new job."
            )

    async def replay(self, claim: Claim, owner_id: str | None) -> Job:
        """The job of the earlier request that completed `claim`'s key, if this request (its
        `fingerprint` set) is the same one; marks the claim `replayed`."""
        self.same_request(claim)
        async with self.db.read() as session:
            job = await JobRepository(session).get_owned(claim.job_id or "", owner_id)
        if job is None:  # deleted since the claim was read, and its key with it
            raise ServiceUnavailable(
                "The job of this Idempotency-Key was just deleted; try again.",
                headers={"Retry-After": "1"},
            )
        claim.replayed = True
        return job

    async def release(self, claim: Claim) -> None:
        """Give up a claim this request holds and has not completed (its request failed)."""
        if not claim.owned:
            return
        async with self.db.write() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.owner == claim.owner,
                    IdempotencyKey.key == claim.key,
                    IdempotencyKey.token == claim.token,
                    IdempotencyKey.job_id.is_(None),
                    IdempotencyKey.upload_id.is_(None),
                )
            )

    async def sweep(self) -> int:
        """Forget expired keys; returns how many."""
        now = utcnow()
        async with self.db.read() as session:  # most sweeps find none: no write transaction
            due = await session.scalar(
                select(IdempotencyKey.key).where(IdempotencyKey.expires_at <= now).limit(1)
            )
        if due is None:
            return 0
        async with self.db.write() as session:
            result = await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
