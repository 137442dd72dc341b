"""SQL statements one small job costs, by phase: the submit, the run, one poll, the download.

Run: `.venv/bin/python bench/statements.py`. Builds the embedded app in this process (SQLite
and local storage under a temp dir, the in-process executor), sends it requests over ASGI,
and counts every statement the database engines execute (SQLAlchemy's
`before_cursor_execute`, and the trace of the poll's own SQLite connection); BEGIN and COMMIT
are listed, not counted as statements. A count,
not a time: it does not depend on the machine, so it is the figure to compare before and
after a change to the job path (issue 13 asks what one job costs in statements).
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from filejob.app import create_app
from filejob.config import Settings
from filejob.db.engine import Database
from filejob.db.migrations import upgrade


class Counter:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def watch(self, db: Database, poll_reads: Any) -> None:
        engines = {db.write_engine.sync_engine, db.read_engine.sync_engine}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", lambda *_: self.counts.update(["COMMIT"]))
        quick = getattr(poll_reads, "quick", None)  # SQLite's poll read, on its own connection
        if quick is not None:
            quick.connection().set_trace_callback(lambda sql: self._count(sql, " (loop read)"))

    def _statement(self, *args: Any) -> None:
        self._count(str(args[2]))

    def _count(self, sql: str, where: str = "") -> None:
        self.counts[sql.lstrip().split(None, 1)[0].upper() + where] += 1

    def take(self) -> dict[str, int]:
        taken = dict(self.counts)
        self.counts.clear()
        return taken


async def measure(settings: Settings) -> dict[str, dict[str, int]]:
    app = create_app(settings)
    counter = Counter()
    phases: dict[str, dict[str, int]] = {}
    async with app.router.lifespan_context(app):
        jobs = app.state.services.jobs
        counter.watch(jobs.db, jobs.poll_reads)
        # The sweeper's and the webhook dispatcher's first passes run right after start-up:
        # let them go by, so that the counts are the job's alone.
        await asyncio.sleep(1.0)
        executor = app.state.services.executor
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            counter.take()
            created = await client.post(
                "/v1/jobs", files={"file": ("a.bin", b"x" * 1024)}, data={"processor": "checksum"}
            )
            job_id = created.json()["id"]
            phases["submit"] = counter.take()
            await executor.run_until_idle()
            phases["run"] = counter.take()
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "succeeded", job
            phases["poll"] = counter.take()
            assert (await client.get(job["result"]["url"])).status_code == 200
            phases["download"] = counter.take()
    return phases


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        upgrade(settings.database_url)  # Alembic runs its own event loop: before ours
        phases = asyncio.run(measure(settings))
    print("| phase | statements | of which |")
    print("|---|---|---|")
    for phase, counts in phases.items():
        total = sum(n for verb, n in counts.items() if verb not in ("BEGIN", "COMMIT"))
        detail = ", ".join(f"{verb} {n}" for verb, n in sorted(counts.items()))
        print(f"| {phase} | {total} | {detail} |")


if __name__ == "__main__":
    main()
