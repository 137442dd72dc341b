"""The worker's queue loop on procrastinate's in-memory connector, with a stand-in runner: how
each way a run ends becomes its entry's end, a cancel and a stop reaching the run, the grace a
stop gives, the slot limit, the slot freed once the attempt has ended, an entry's end recorded
through a failure, and a failed heartbeat or record stopping the worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from procrastinate import testing
from procrastinate.jobs import Job as QueueEntry
from procrastinate.manager import JobManager

from filejob.jobs.attempt import NotStarted
from filejob.jobs.control import RunEnd, RunOutcome, StopReason, StopSignal
from filejob.jobs.executors.queue_loop import LoopTiming, QueueLoop
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job
from filejob.jobs.runner import Started
from tests.support.wait import wait_until_async

QUEUE = "filejob"
TIMING = LoopTiming(
    poll=0.01,
    abort_poll=0.01,
    heartbeat=0.01,
    stalled_worker=60,
    grace=0.0,
    record_backoff=(0.01, 0.01),
)
ERROR_DELAY = 30.0

Run = Callable[[StopSignal], Awaitable[Started | RunOutcome]]


def ends(end: RunEnd) -> Run:
    async def run(stop: StopSignal) -> RunOutcome:
        return RunOutcome(end)

    return run


def retries_in(seconds: float) -> Run:
    async def run(stop: StopSignal) -> RunOutcome:
        return RunOutcome.retry(seconds)

    return run


async def raises(stop: StopSignal) -> RunOutcome:
    raise RuntimeError("the database went away")


async def until_stopped(stop: StopSignal) -> RunOutcome:
    """What the runner does with a run asked to stop: cancelled, or handed back."""

    async def asked() -> bool:
        return stop.is_set()

    await wait_until_async(asked, timeout=10, interval=0.005)
    return RunOutcome(RunEnd.CANCELLED if stop.reason is StopReason.CANCEL else RunEnd.INTERRUPTED)


class StandInRunner:
    """Starts each job as `runs` says (the stand-in's default: succeeded at once); a job whose
    start returned `Started` settles when `settle` is set."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.started: list[str] = []
        self.stops: dict[str, StopSignal] = {}
        self.settle = asyncio.Event()
        self.at_once = 0  # attempts running now
        self.most_at_once = 0

    async def start(
        self, job_id: str, upload: IncomingFile | None, stop: StopSignal, *, take_back: bool
    ) -> Started | RunOutcome:
        self.started.append(job_id)
        self.stops[job_id] = stop
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        try:
            return await self.runs.get(job_id, ends(RunEnd.SUCCEEDED))(stop)
        finally:
            self.at_once -= 1

    async def finish(self, started: Started) -> RunOutcome:
        await self.settle.wait()
        return RunOutcome(RunEnd.FAILED)


@pytest.fixture
async def manager() -> JobManager:
    connector = testing.InMemoryConnector()
    await connector.open_async()
    return JobManager(connector)


def rows(manager: JobManager) -> dict[int, dict[str, Any]]:
    connector = manager.connector
    assert isinstance(connector, testing.InMemoryConnector)
    return connector.jobs


async def enqueue(manager: JobManager, job_id: str) -> int:
    entry = QueueEntry(
        id=None,
        queue=QUEUE,
        lock=None,
        queueing_lock=None,
        task_name="filejob.run_job",
        task_kwargs={"job_id": job_id},
    )
    deferred = await manager.defer_job_async(entry)
    assert deferred.id is not None
    return deferred.id


async def ended(manager: JobManager, entry: int, *statuses: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        row = rows(manager)[entry]
        return row if row["status"] in statuses and row["attempts"] > 0 else None

    return await wait_until_async(reached, timeout=10)


@contextlib.asynccontextmanager
async def running(loop: QueueLoop) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        loop.stop()
        with contextlib.suppress(Exception):
            await task


def queue_loop(
    manager: JobManager, runner: StandInRunner, slots: int = 2, timing: LoopTiming = TIMING
) -> QueueLoop:
    return QueueLoop(
        manager,
        runner,
        queue=QUEUE,
        slots=slots,
        timing=timing,
        error_delay=lambda: ERROR_DELAY,
    )


@pytest.mark.parametrize(
    ("run", "status", "due_in"),
    [
        (ends(RunEnd.SUCCEEDED), "succeeded", None),
        (ends(RunEnd.FAILED), "succeeded", None),  # the job's failure is in its row
        (ends(RunEnd.NOT_CLAIMED), "succeeded", None),
        (retries_in(60.0), "todo", 60.0),
        (raises, "todo", ERROR_DELAY),  # ours, not the job's: it runs again
    ],
    ids=["succeeded", "failed", "not-claimed", "retry", "runner-error"],
)
async def test_each_way_a_run_ends_becomes_its_entrys_end(
    manager: JobManager, run: Run, status: str, due_in: float | None
) -> None:
    runner = StandInRunner()
    runner.runs["a"] = run
    async with running(queue_loop(manager, runner)):
        entry = await enqueue(manager, "a")
        row = await ended(manager, entry, status)
    if due_in is not None:
        due = row["scheduled_at"] - datetime.now(UTC)
        assert timedelta(seconds=due_in - 5) < due <= timedelta(seconds=due_in)
    assert runner.started == ["a"]


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "polled"])
async def test_a_cancel_stops_the_running_job_and_its_entry_ends_aborted(
    manager: JobManager, notified: bool
) -> None:
    runner = StandInRunner()
    runner.runs["a"] = until_stopped
    async with running(queue_loop(manager, runner)):
        entry = await enqueue(manager, "a")

        async def started() -> bool:
            return "a" in runner.stops

        await wait_until_async(started)
        if not notified:  # the notification is lost: the loop's polling finds the cancel
            manager.connector.on_notification = None  # type: ignore[attr-defined]
        await manager.cancel_job_by_id_async(entry, abort=True)
        await ended(manager, entry, "aborted")
    assert runner.stops["a"].reason is StopReason.CANCEL


async def test_a_stop_hands_running_jobs_back_after_the_grace(manager: JobManager) -> None:
    runner = StandInRunner()
    runner.runs["a"] = until_stopped
    loop = queue_loop(manager, runner)
    task = asyncio.create_task(loop.run())
    entry = await enqueue(manager, "a")

    async def started() -> bool:
        return "a" in runner.stops

    await wait_until_async(started)
    task.cancel()  # as the worker's owner stops it: the same as `stop`, then re-raised
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.stops["a"].reason is StopReason.SHUTDOWN
    row = rows(manager)[entry]
    assert row["status"] == "todo" and row["scheduled_at"] <= datetime.now(UTC)
    assert manager.connector.workers == {}  # type: ignore[attr-defined]  # unregistered


async def test_a_job_ending_within_the_grace_after_a_stop_is_left_to_end(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `stop`, a running job gets the grace: the worker goes on beating, the job is not
    asked to stop, and its entry ends as its run did rather than being handed back."""
    runner = StandInRunner()
    released = asyncio.Event()

    async def ends_once_released(stop: StopSignal) -> RunOutcome:
        async def released_or_stopped() -> bool:
            return released.is_set() or stop.is_set()

        await wait_until_async(released_or_stopped, timeout=10, interval=0.005)
        return RunOutcome(RunEnd.INTERRUPTED if stop.is_set() else RunEnd.SUCCEEDED)

    runner.runs["a"] = ends_once_released
    beats = 0
    real_beat = manager.update_heartbeat

    async def counted(worker_id: int) -> None:
        nonlocal beats
        beats += 1
        await real_beat(worker_id)

    monkeypatch.setattr(manager, "update_heartbeat", counted)
    loop = queue_loop(manager, runner, timing=dataclasses.replace(TIMING, grace=60.0))
    task = asyncio.create_task(loop.run())
    entry = await enqueue(manager, "a")

    async def started() -> bool:
        return "a" in runner.stops

    await wait_until_async(started)
    loop.stop()
    beats_at_stop = beats

    async def beaten_since() -> bool:  # so the stop has long reached the loop
        return beats >= beats_at_stop + 3

    await wait_until_async(beaten_since, timeout=10)
    assert not runner.stops["a"].is_set()
    released.set()
    await asyncio.wait_for(task, 10)
    assert runner.stops["a"].reason is None
    assert rows(manager)[entry]["status"] == "succeeded"


async def test_one_slot_never_runs_two_attempts_at_once(manager: JobManager) -> None:
    runner = StandInRunner()

    async def takes_a_while(stop: StopSignal) -> RunOutcome:
        await asyncio.sleep(0.02)  # a start without a free slot would come meanwhile
        return RunOutcome(RunEnd.SUCCEEDED)

    names = ["a", "b", "c", "d"]
    entries = [await enqueue(manager, name) for name in names]  # all waiting at the start
    runner.runs = dict.fromkeys(names, takes_a_while)
    async with running(queue_loop(manager, runner, slots=1)):
        for entry in entries:
            await ended(manager, entry, "succeeded")
    assert runner.most_at_once == 1
    assert sorted(runner.started) == names


async def test_the_slot_is_free_once_the_attempt_has_ended(manager: JobManager) -> None:
    runner = StandInRunner()

    async def attempt_ended(stop: StopSignal) -> Started:
        return Started(Job(id="a"), NotStarted("input_missing", "gone"))

    runner.runs["a"] = attempt_ended
    async with running(queue_loop(manager, runner, slots=1)):
        first = await enqueue(manager, "a")
        second = await enqueue(manager, "b")
        await ended(manager, second, "succeeded")  # while "a" has not settled
        assert rows(manager)[first]["status"] == "doing"
        runner.settle.set()
        await ended(manager, first, "succeeded")
    assert runner.started == ["a", "b"]


async def test_a_failed_heartbeat_stops_the_worker_with_its_error(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(worker_id: int) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(manager, "update_heartbeat", unreachable)
    loop = queue_loop(manager, StandInRunner())
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(loop.run(), 10)


@pytest.mark.parametrize("landed", [False, True], ids=["refused", "answer-lost"])
async def test_an_end_that_failed_to_record_is_recorded_once_on_a_retry(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """A blip of the database while the entry is sent back to `todo`: tried again, and the
    worker goes on. If the failed try had in fact committed (its answer lost), it is not
    recorded a second time."""
    real_retry = manager.retry_job
    failed: list[int | None] = []

    async def fails_once(entry: QueueEntry, **kwargs: Any) -> None:
        if not failed:
            failed.append(entry.id)
            if landed:
                await real_retry(entry, **kwargs)
            raise ConnectionError("the database went away")
        await real_retry(entry, **kwargs)

    monkeypatch.setattr(manager, "retry_job", fails_once)
    runner = StandInRunner()
    runner.runs["a"] = retries_in(60.0)
    async with running(queue_loop(manager, runner)) as task:
        entry = await enqueue(manager, "a")
        await ended(manager, entry, "todo")
        await ended(manager, await enqueue(manager, "b"), "succeeded")
    task.result()  # stopped as asked, not by a failure
    row = rows(manager)[entry]
    assert failed == [entry]
    assert row["status"] == "todo" and row["attempts"] == 1
    assert row["scheduled_at"] - datetime.now(UTC) > timedelta(seconds=55)


@pytest.mark.parametrize(
    ("run", "recording"),
    [(retries_in(60.0), "retry_job"), (ends(RunEnd.SUCCEEDED), "finish_job")],
    ids=["retry", "finish"],
)
async def test_an_end_that_cannot_be_recorded_stops_the_worker_with_its_error(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch, run: Run, recording: str
) -> None:
    """Left `doing` under a worker that still beats, the entry would never run again: after
    its tries, the worker stops, and its entry is free for the other workers' rescue."""
    tries: list[int | None] = []

    async def unreachable(entry: QueueEntry, *args: Any, **kwargs: Any) -> None:
        tries.append(entry.id)
        raise ConnectionError("the database went away")

    monkeypatch.setattr(manager, recording, unreachable)
    runner = StandInRunner()
    runner.runs["a"] = run
    task = asyncio.create_task(queue_loop(manager, runner).run())
    entry = await enqueue(manager, "a")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, 10)
    assert tries == [entry] * (1 + len(TIMING.record_backoff))
    stalled = await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=60)
    assert [stalled_entry.id for stalled_entry in stalled] == [entry]
