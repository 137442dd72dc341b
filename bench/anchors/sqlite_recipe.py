"""Bare FastAPI + one SQLite read: `GET /v1/jobs/{id}` reads one row by primary key, the poll
floor. `uvicorn sqlite_recipe:app`; env ANCHOR_DB (a file, created in WAL mode with one job
row whose id is ANCHOR_JOB_ID)."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from fastapi import FastAPI, HTTPException

DB = os.environ["ANCHOR_DB"]
COLUMNS = ("id", "status", "processor", "progress", "created_at", "finished_at", "result")


def _seed() -> None:
    with sqlite3.connect(DB) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, status TEXT, processor TEXT,"
            " progress REAL, created_at TEXT, finished_at TEXT, result TEXT)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO jobs VALUES (?, 'succeeded', 'checksum', 1.0,"
            " '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.030000Z',"
            ' \'{"filename": "in.bin.checksum.json", "size": 346}\')',
            (os.environ["ANCHOR_JOB_ID"],),
        )
    conn.close()


_seed()
# One connection, read on the event loop: a WAL read does not wait for writers.
conn = sqlite3.connect(DB, check_same_thread=False)
app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/jobs/{job_id}")
async def status(job_id: str) -> dict[str, Any]:
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise HTTPException(404, "job not found")
    return dict(zip(COLUMNS, row, strict=True))
