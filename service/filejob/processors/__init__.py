"""The plugin API: everything a processor's author imports, from one place.

    from filejob.processors import Output, Processor, ProcessorContext, ProcessingError

A processor is a `Processor[Params]` subclass with a `run(ctx, params)`; it is registered
through the entry-point group `filejob.processors` (see `filejob.processors.registry`).
"""

from filejob.processors.base import (
    Cancelled,
    NoParams,
    Output,
    ProcessingError,
    Processor,
    ProcessorContext,
    RetryableError,
)

__all__ = [
    "Cancelled",
    "NoParams",
    "Output",
    "ProcessingError",
    "Processor",
    "ProcessorContext",
    "RetryableError",
]
