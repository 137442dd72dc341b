"""/v1/processors: what this server can do with a file."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from filejob.api.caller import DOCUMENTED, get_caller
from filejob.api.deps import ServicesDep
from filejob.api.problems import problems
from filejob.api.schemas import ProcessorList, ProcessorOut

router = APIRouter(
    prefix="/v1/processors",
    tags=["processors"],
    dependencies=[*DOCUMENTED, Depends(get_caller)],
    responses=problems({401: "Missing or invalid API key", 429: "Rate limit reached"}),
)


@router.get("", response_model=ProcessorList, summary="List processors and their params")
async def list_processors(services: ServicesDep) -> ProcessorList:
    return ProcessorList(
        items=[
            ProcessorOut(
                name=p.name,
                description=p.description,
                params_schema=p.Params.model_json_schema(),
                content_types=list(p.content_types),
            )
            for p in services.registry
        ]
    )
