"""Leases kept alive while their holder works without reading a body: a request completing an
upload (hashing it, streaming it into storage, making its job) or making a final upload of
its parts. Renewal is otherwise driven by arriving bytes (receive.py); without it the lease
would run out after `LEASE_SECONDS`, and a retried PATCH could take the upload over and
truncate its file, or a DELETE or the sweep remove a part still being copied."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from filejob.db.engine import Database
from filejob.jobs.model import utcnow
from filejob.resumable import leases
from filejob.resumable.repository import UploadRepository

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def kept_alive(db: Database, upload_ids: Sequence[str], token: str) -> AsyncIterator[None]:
    """Renew `token`'s leases on `upload_ids` every `RENEW_SECONDS` until the block ends.
    The heartbeat is stopped, not cancelled: a renewal under way finishes its transaction."""
    stop = asyncio.Event()
    beat = asyncio.create_task(_beat(db, list(upload_ids), token, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.shield(beat)


async def _beat(db: Database, upload_ids: list[str], token: str, stop: asyncio.Event) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), leases.RENEW_SECONDS)
        if stop.is_set():
            return
        until = utcnow() + timedelta(seconds=leases.LEASE_SECONDS)
        try:
            async with db.write() as session:
                held = await UploadRepository(session).renew_all(upload_ids, token, until)
        except Exception:  # the next beat tries again; the commit checks the lease anyway
            log.warning("uploads %s: could not renew their lease", upload_ids, exc_info=True)
            continue
        if held < len(upload_ids):
            return  # taken over (or completed): the commit's compare-and-set will tell
