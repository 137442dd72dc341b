"""/metrics: Prometheus exposition (see filejob/ops/metrics.py for what is counted where)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from filejob.api.deps import ServicesDep
from filejob.ops.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Exposition text format"}},
)
async def metrics(services: ServicesDep) -> Response:
    return Response(await services.metrics.render(), media_type=CONTENT_TYPE)
