"""Every query of webhook deliveries. Their state is on the job row (`Job.callback_*`), which
`JobRepository.transition` marks pending when a job becomes final; from then on only these
queries touch it. Callers own the transaction (see `Database.read/write`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.jobs.model import Job
from filejob.jobs.states import CallbackState


class CallbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(self, now: datetime, limit: int = 50) -> Sequence[Job]:
        """Final jobs whose webhook is due (first try or a retry), oldest due first."""
        query = (
            select(Job)
            .where(Job.callback_state == CallbackState.PENDING, Job.callback_next_at <= now)
            .order_by(Job.callback_next_at)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def claim(self, job_id: str, due: datetime, lease_until: datetime) -> bool:
        """Take one delivery: push its due time past the attempt, if no one else moved it."""
        result = await self.session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.callback_state == CallbackState.PENDING,
                Job.callback_next_at == due,
            )
            .values(callback_next_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def record(self, job_id: str, **values: Any) -> None:
        """Set the job's `callback_*` columns named in `values` (an attempt's outcome)."""
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
