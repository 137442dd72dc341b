"""Typed access to what `create_app` built, for the routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from filejob.api.caller import Authenticator
from filejob.auth.links import LinkSigner
from filejob.config import Settings
from filejob.jobs.executors.base import Executor
from filejob.jobs.service import JobService
from filejob.jobs.watch import JobWatcher
from filejob.ops.metrics import Metrics
from filejob.ops.readiness import Readiness
from filejob.processors.registry import ProcessorRegistry
from filejob.storage.base import PresignsDownloads


@dataclass
class Services:
    """Everything the lifespan built; stored on `app.state.services`."""

    settings: Settings
    jobs: JobService
    registry: ProcessorRegistry
    executor: Executor
    auth: Authenticator
    links: LinkSigner
    watcher: JobWatcher
    readiness: Readiness
    metrics: Metrics
    presigner: PresignsDownloads | None = None  # redirect downloads to the store itself


# `async def` on purpose: FastAPI runs plain `def` dependencies in its threadpool, one thread
# round trip per dependency per request.
async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_jobs(request: Request) -> JobService:
    return request.app.state.services.jobs


async def get_links(request: Request) -> LinkSigner:
    return request.app.state.services.links


ServicesDep = Annotated[Services, Depends(get_services)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
LinksDep = Annotated[LinkSigner, Depends(get_links)]
