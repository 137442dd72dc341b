"""How `filejob serve` runs the app under uvicorn, with a drain phase before shutting down.

On the first SIGTERM/SIGINT: uploads are refused with 503 (status and downloads keep working),
no new job starts, and running jobs get up to `grace` seconds to finish. Then uvicorn shuts down
as usual; jobs still running are stopped and stay queued for the next start. A second signal
skips the wait. The process exits 0: the signal is handled, not re-raised.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("filejob")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace: float) -> None:
        super().__init__(config)
        self.app = app
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler in the loop's thread: only hand over to the loop here.
        if self._drain is not None or self._loop is None or not self.started:
            self.should_exit = True  # second signal, or not serving yet: stop now
            if sig == signal.SIGINT and self._drain is not None:
                self.force_exit = True
            return
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        self.app.state.draining = True
        executor = self.app.state.services.executor
        log.info("draining: uploads refused, up to %.0fs for running jobs", self.grace)
        try:
            await executor.drain_running(self.grace)
        finally:
            self.should_exit = True
