"""tus 1.0.0's headers: reading a request's (version, lengths, offset, checksum, metadata) and
writing an upload's into an answer."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from filejob.errors import FilejobError, MalformedRequest, ValidationFailed
from filejob.jobs.admission import JobRequest
from filejob.resumable.digests import CHECKSUM_ALGORITHMS, Checksum
from filejob.resumable.errors import InvalidConcat, InvalidUploadLength
from filejob.resumable.model import ResumableUpload, UploadState
from filejob.untrusted.boundary import parse_count
from filejob.untrusted.filenames import sanitize_filename

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
OFFSET_STREAM = "application/offset+octet-stream"
MAX_METADATA_BYTES = 16 * 1024


class UnsupportedVersion(FilejobError):
    code, status, title = "tus_version_unsupported", 412, "Unsupported tus version"

    def __init__(self, sent: str | None) -> None:
        super().__init__(
            f"This server speaks tus {TUS_VERSION}; the request sent Tus-Resumable: "
            f"{sent or '(none)'}.",
            headers={"Tus-Version": TUS_VERSION},
        )


def require_version(headers: Mapping[str, str]) -> None:
    sent = headers.get("tus-resumable")
    if sent != TUS_VERSION:
        raise UnsupportedVersion(sent)


def discovery() -> dict[str, str]:
    """What OPTIONS tells a client about this server."""
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


def count(headers: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer header, None if absent; 400 if it is anything else."""
    raw = headers.get(name.lower())
    if raw is None:
        return None
    value = parse_count(raw.strip())
    if value is None:
        error = InvalidUploadLength if name == "Upload-Length" else MalformedRequest
        raise error(f"{name} must be a non-negative integer, not {raw[:40]!r}.")
    return value


def creation_length(headers: Mapping[str, str]) -> int | None:
    """Upload-Length, or None with `Upload-Defer-Length: 1`; exactly one of them."""
    length = count(headers, "Upload-Length")
    deferred = headers.get("upload-defer-length")
    if deferred is not None and deferred.strip() != "1":
        raise InvalidUploadLength("Upload-Defer-Length, when sent, must be 1.")
    if (length is None) == (deferred is None):
        raise InvalidUploadLength(
            "Send either Upload-Length (the file's size) or Upload-Defer-Length: 1."
        )
    return length


def checksum(headers: Mapping[str, str]) -> Checksum | None:
    raw = headers.get("upload-checksum")
    return None if raw is None else Checksum.parse(raw)


def parse_metadata(header: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be left out),
    keys unique. Values are UTF-8 text here."""
    if len(header) > MAX_METADATA_BYTES:
        raise MalformedRequest(f"Upload-Metadata exceeds {MAX_METADATA_BYTES} bytes.")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key:
            if item.strip():
                raise MalformedRequest("Upload-Metadata has an empty key.")
            continue
        if not key.isascii() or not key.isprintable() or key in pairs:
            raise MalformedRequest(f"Upload-Metadata has an invalid or repeated key {key!r}.")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, ValueError):
            raise MalformedRequest(
                f"Upload-Metadata's {key!r} is not base64-encoded UTF-8."
            ) from None
    return pairs


class UploadFields(BaseModel):
    """The job's fields as Upload-Metadata carries them: those of the `POST /v1/jobs` form,
    with the same bounds (api/uploads/submit.py), and the file's name and type."""

    model_config = ConfigDict(extra="ignore")

    processor: str = Field(min_length=1)
    params: str | None = None
    delete_after_download: bool = False
    max_attempts: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    callback_url: str | None = Field(None, max_length=2048)
    reuse: bool = False
    filename: str | None = None
    filetype: str | None = Field(None, max_length=255)


@dataclass(frozen=True)
class Metadata:
    request: JobRequest
    filename: str | None
    filetype: str | None


def job_metadata(header: str | None) -> Metadata:
    """The job an upload asks for, from its Upload-Metadata; invalid fields answer as the
    upload form's do (422 `validation_error`, each field's error under `errors`)."""
    # A key sent without a value is as good as absent (an empty form field is, too).
    pairs = {key: value for key, value in parse_metadata(header or "").items() if value}
    for field, alias in (("filename", "name"), ("filetype", "type")):
        if field not in pairs and alias in pairs:  # what Uppy and some tus clients send
            pairs[field] = pairs[alias]
    try:
        fields = UploadFields.model_validate(pairs)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"loc": ["metadata", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        raise ValidationFailed(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
            errors=errors,
        ) from None
    request = JobRequest(
        fields.processor.strip(),
        fields.params,
        fields.delete_after_download,
        fields.max_attempts,
        fields.timeout_seconds,
        fields.callback_url or None,
        reuse=fields.reuse,
    )
    return Metadata(request, _display_name(fields.filename), _media_type(fields.filetype))


def _display_name(filename: str | None) -> str | None:
    """The file's name cleaned as `POST /v1/jobs` cleans a multipart one (control characters
    and path dropped), before it is stored: PostgreSQL's text refuses NUL."""
    return None if filename is None else sanitize_filename(filename)


def _media_type(filetype: str | None) -> str | None:
    """The declared type, unless it has control characters: then it is ignored, as
    `POST /v1/jobs` ignores a declared type that is no media type (processors/sniff.py)."""
    if filetype is None or not filetype.isprintable():
        return None
    return filetype


UPLOADS_PATH = "/v1/uploads/"


def concat(headers: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """Upload-Concat: None, "partial", or "final" with the ids of the partial uploads its
    URLs name (absolute or relative), in order."""
    raw = headers.get("upload-concat")
    if raw is None:
        return None, []
    kind, _, urls = raw.strip().partition(";")
    if kind == "partial" and not urls:
        return "partial", []
    ids = []
    for url in urls.split():
        try:
            path = urlsplit(url).path
        except ValueError:  # not a URL at all (an unclosed IPv6 bracket, say)
            path = ""
        upload_id = path.removeprefix(UPLOADS_PATH)
        if not path.startswith(UPLOADS_PATH) or not upload_id or "/" in upload_id:
            raise InvalidConcat(f"Upload-Concat names {url[:80]!r}, not an upload of this server.")
        ids.append(upload_id)
    if kind != "final" or not ids:
        raise InvalidConcat("Upload-Concat is `partial` or `final;<upload URL> <upload URL>...`.")
    return "final", ids


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def upload_path(upload_id: str) -> str:
    return f"/v1/uploads/{upload_id}"


def described(upload: ResumableUpload) -> dict[str, str]:
    """An upload's state as an answer's headers: offset, expiry, and its job once made."""
    headers = {
        "Upload-Offset": str(upload.received),
        "Upload-Expires": http_date(upload.expires_at),
    }
    if upload.state is UploadState.COMPLETE and upload.job_id:
        headers["Link"] = f'</v1/jobs/{upload.job_id}>; rel="monitor"'
    if upload.concat == "partial":
        headers["Upload-Concat"] = "partial"
    elif upload.concat == "final":
        headers["Upload-Concat"] = "final;" + " ".join(map(upload_path, upload.parts or ()))
    return headers
