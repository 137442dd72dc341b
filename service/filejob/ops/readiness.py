"""Readiness: can this process do its work right now? Each check is bounded in time, so a
probe answers in milliseconds when all is well and within `CHECK_SECONDS` when not."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from filejob.db.engine import Database
from filejob.jobs.executors.base import Executor
from filejob.storage.base import Storage

CHECK_SECONDS = 2.0
PROBE_PREFIX = "readyz/"  # probe blobs, removed at once (and by the orphan sweep if not)


class Readiness:
    def __init__(
        self, db: Database, storage: Storage, executor: Executor, *, min_free_bytes: int
    ) -> None:
        self.db = db
        self.storage = storage
        self.executor = executor
        self.min_free_bytes = min_free_bytes

    async def check(self) -> dict[str, str]:
        """Every check's outcome: "ok", or what is wrong."""
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "database": self._database,
            "storage": self._storage,
            "free_space": self._free_space,
            "executor": self._executor,
        }
        outcomes = await asyncio.gather(*map(self._bounded, checks.values()))
        return dict(zip(checks, outcomes, strict=True))

    @staticmethod
    async def _bounded(check: Callable[[], Awaitable[str]]) -> str:
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                return await check()
        except TimeoutError:
            return f"no answer within {CHECK_SECONDS:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    async def _database(self) -> str:
        async with self.db.read() as session:
            await session.execute(text("SELECT 1"))
        return "ok"

    async def _storage(self) -> str:
        key = f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        writer = await self.storage.create(key)
        try:
            writer.file.write(b"ok")
            await writer.commit()
        except BaseException:
            await writer.discard()
            raise
        await self.storage.delete(key)
        return "ok"

    async def _free_space(self) -> str:
        free = self.storage.free_bytes()
        if free < self.min_free_bytes:
            return f"{free} bytes free, below FILEJOB_MIN_FREE_BYTES ({self.min_free_bytes})"
        return "ok"

    async def _executor(self) -> str:
        return "ok" if self.executor.running() else "not running"
