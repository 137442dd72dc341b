"""Typed access to what `create_app` built, for the routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.api.auth import Authenticator
from service.auth.links import LinkSigner
from service.config import Settings
from service.jobs.executors.base import Executor
from service.jobs.service import JobService
from service.jobs.watch import JobWatcher
from service.metrics import Metrics
from service.processors.registry import ProcessorRegistry
from service.readiness import Readiness
from service.storage.base import PresignsDownloads


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
