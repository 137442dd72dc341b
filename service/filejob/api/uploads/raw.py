"""Raw bodies: `POST /v1/jobs?processor=...` whose whole body is the file.

No multipart parsing at all: the body streams into the same hashed, adoptable spool a form's
file part lands in (`PipelinedUpload` over an `UploadSpool`), under the same limits (body.py),
and the job's fields come from the query string. The result is handed to the endpoint as the
form it would have parsed (`file` plus the fields), so from there on both ways are one:
the same validation, admission, storage and answers.

The file's type is the Content-Type (a hint for sniffing, as a part's is; curl's default
`application/x-www-form-urlencoded` is no hint), its name the `filename` query parameter or
else `Content-Disposition`'s (RFC 6266: `filename*` before `filename`), sanitised later like
a part's name.

An import (`?source_url=...`) has an empty body: then there is no file in the form, and the
job's input is fetched from the URL. A body beside a `source_url` is a file all the same (the
endpoint refuses the two together).
"""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import ClientDisconnect

from filejob.api.uploads.body import (
    MAX_CONTENT_TYPE_BYTES,
    UploadPolicy,
    declared_length,
    limited,
    read_error,
    refuse_when_disk_is_full,
)
from filejob.api.uploads.pipeline import PipelinedUpload
from filejob.errors import MalformedRequest, UnsupportedMediaType
from filejob.untrusted.disposition import disposition_filename

# The endpoint's fields, taken from the query string of a raw upload.
FIELDS = (
    "processor",
    "params",
    "delete_after_download",
    "max_attempts",
    "timeout_seconds",
    "callback_url",
    "sha256",
    "source_url",
    "reuse",
)
FORM_TYPES = ("multipart/form-data",)
NO_HINT = ("application/x-www-form-urlencoded",)  # what curl --data-binary says by default


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_raw(request: Request) -> bool:
    """A raw upload: a body that is not a form, with the job's fields in the query. (Without
    `processor` in the query, a body that is not a form is refused as before: 415.)"""
    return media_type(request) not in FORM_TYPES and "processor" in request.query_params


def filename_of(request: Request) -> str | None:
    """The client's name for the file, untrusted (admission sanitises it)."""
    named = request.query_params.get("filename")
    if named:
        return named
    return disposition_filename(request.headers.get("content-disposition"))


async def parse_raw_body(request: Request, policy: UploadPolicy) -> FormData:
    """The body as the file of the form `submit_job` takes, the query's fields beside it."""
    raw_type = request.headers.get("content-type", "")
    if len(raw_type) > MAX_CONTENT_TYPE_BYTES:
        raise MalformedRequest(f"The Content-Type header exceeds {MAX_CONTENT_TYPE_BYTES} bytes.")
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {coding} is not taken: send the file's bytes as they are."
        )
    declared = declared_length(request, policy.max_file_bytes, policy.max_file_bytes)
    refuse_when_disk_is_full(policy, declared or 0)
    hint = raw_type if raw_type and media_type(request) not in NO_HINT else None
    upload = PipelinedUpload(
        policy.new_spool(),
        size=0,
        filename=filename_of(request),
        headers=Headers({"content-type": hint} if hint else {}),
    )
    try:
        await _receive(request, policy, upload)
        await upload.seek(0)  # waits for the hashing of the last bytes (as a form's part does)
        if declared is not None and upload.size != declared:
            raise MalformedRequest(
                f"The body has {upload.size} bytes, not the {declared} of its Content-Length."
            )
    except BaseException:
        upload.file.close()  # the spool: whatever stopped the read, no file stays open
        raise
    items: list[tuple[str, str | UploadFile]] = [("file", upload)]
    if upload.size == 0 and "source_url" in request.query_params:
        upload.file.close()  # an import's empty body: no file
        items = []
    items += [(name, value) for name in FIELDS for value in request.query_params.getlist(name)]
    return FormData(items)


async def _receive(request: Request, policy: UploadPolicy, upload: PipelinedUpload) -> None:
    body = limited(
        request.stream(), policy.max_file_bytes, policy.body_timeout, policy.body_deadline
    )
    try:
        async for chunk in body:
            if chunk:
                await upload.write(chunk)
    except (ClientDisconnect, OSError) as exc:
        mapped = read_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc
