"""/v1/jobs/{id}/attempts: a job's attempts, for its timeline (queued -> running -> final)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import ErrorOut
from filejob.jobs.attempts import AttemptOutcome, JobAttempt, attempts_of

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED)

PROBLEMS = problems(
    {
        401: "Missing or invalid API key",
        404: "No such job",
        429: "Rate limit reached",
        503: "Database busy",
    }
)


class AttemptOut(BaseModel):
    number: int = Field(description="1, 2, 3... in the order the attempts started.")
    started_at: datetime
    ended_at: datetime | None = Field(description="null while the attempt runs.")
    outcome: AttemptOutcome | None = Field(description="How it ended; null while it runs.")
    error: ErrorOut | None

    @classmethod
    def of(cls, attempt: JobAttempt) -> AttemptOut:
        code, message = attempt.error_code, attempt.error_message
        return cls(
            number=attempt.number,
            started_at=attempt.started_at,
            ended_at=attempt.ended_at,
            outcome=attempt.outcome,
            error=ErrorOut(code=code, message=message or "") if code is not None else None,
        )


class AttemptList(BaseModel):
    items: list[AttemptOut]


@router.get(
    "/{job_id}/attempts",
    response_model=AttemptList,
    responses=PROBLEMS,
    summary="The job's attempts, first first, each with how it ended",
)
async def list_attempts(job_id: str, caller: CallerDep, jobs: JobsDep) -> AttemptList:
    attempts = await attempts_of(jobs, job_id, caller.owner_id)
    return AttemptList(items=[AttemptOut.of(attempt) for attempt in attempts])
