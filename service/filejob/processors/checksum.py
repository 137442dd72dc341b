"""Hash the input with several algorithms in one streaming pass."""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from filejob.processors.base import NoParams, Output, Processor, ProcessorContext


class _Digest(Protocol):
    """What the loop needs of a hashlib object (BLAKE2b's class is not hashlib's HASH)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class Checksum(Processor[NoParams]):
    name = "checksum"
    description = "Compute the SHA-256, SHA-1, MD5 and BLAKE2b digests and the size of the file."
    content_types = ("*/*",)
    Params = NoParams

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        # SHA-1 and MD5 are here for matching against published checksums, not for security;
        # saying so keeps them available on FIPS-mode Pythons.
        hashes: dict[str, _Digest] = {
            "sha256": hashlib.sha256(),
            "sha1": hashlib.sha1(usedforsecurity=False),
            "md5": hashlib.md5(usedforsecurity=False),
            "blake2b": hashlib.blake2b(),
        }
        size = 0
        for chunk in ctx.chunks():
            size += len(chunk)
            for h in hashes.values():
                h.update(chunk)
        # Size is what was actually read, not ctx.input_size, so the result describes the bytes
        # the digests were computed over.
        result = {"size": size, **{name: h.hexdigest() for name, h in hashes.items()}}
        ctx.output.write(json.dumps(result, indent=2).encode() + b"\n")
        ctx.report(1.0)
        return Output(
            filename=f"{ctx.input_filename or 'input'}.checksum.json",
            content_type="application/json",
        )
