"""The S3 bucket part by part, for resumable uploads: multipart uploads driven one part at a
time (create, upload or copy a part, list, complete, abort, list those pending), and small
objects written and read whole (an upload's bytes that do not fill a part yet).

By botocore, already the presigner's client: obstore, the storage's client otherwise, puts
whole objects only (its own multipart upload is internal to one `put`). Every method blocks:
call it from a worker thread. Keys are the storage's (under its prefix, as obstore's are).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from botocore.client import BaseClient  # type: ignore[import-untyped]

MIN_PART = 5 * 1024 * 1024  # S3's least size of a part that is not the last
MAX_PARTS = 10_000  # S3's most parts in one multipart upload
MAX_COPY_PART = 5 * 1024 * 1024 * 1024  # S3's largest part copied by UploadPartCopy
_DELETE_BATCH = 1000  # DeleteObjects' most keys per request


class MultipartGone(Exception):
    """The multipart upload is no more: completed, aborted, or never made."""


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Pending:
    """A multipart upload not completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


def client(options: dict[str, Any], *, path_style: bool) -> BaseClient:
    """A botocore S3 client (`options`: region_name, endpoint_url, aws_access_key_id,
    aws_secret_access_key; unset ones come from botocore's own chain). Stores other than AWS
    are reached by path (the bucket in the path, as obstore does)."""
    import botocore.session  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "auto"},
        # Checksums only where S3 demands them: every S3-compatible store takes that.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=32,
    )
    return botocore.session.get_session().create_client("s3", **options, config=config)


class S3Parts:
    """One bucket (and prefix), as resumable uploads use it. The client is made on first use
    (processes that never take a resumable upload never load botocore)."""

    def __init__(self, bucket: str, prefix: str, options: dict[str, Any]) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._options = options
        self._client: BaseClient | None = None
        self._making = threading.Lock()

    def _s3(self) -> BaseClient:
        with self._making:  # creating a client is not thread-safe; using one is
            if self._client is None:
                self._client = client(self._options, path_style=bool(self._options["endpoint_url"]))
            return self._client

    def full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    # -- multipart uploads ------------------------------------------------------------------

    def create(self, key: str) -> str:
        """A new multipart upload for `key`; its id."""
        answer = self._s3().create_multipart_upload(Bucket=self.bucket, Key=self.full(key))
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: BinaryIO, size: int) -> str:
        """`size` bytes of `body` (seekable, at 0) as part `number`; its ETag."""
        with _gone_if_missing():
            answer = self._s3().upload_part(
                Bucket=self.bucket,
                Key=self.full(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=size,
            )
        return str(answer["ETag"])

    def copy_part(
        self, key: str, upload_id: str, number: int, source: str, start: int, end: int
    ) -> str:
        """Bytes `start` to `end` (excluded) of the object `source` as part `number`, copied
        by the store itself; its ETag."""
        with _gone_if_missing():
            answer = self._s3().upload_part_copy(
                Bucket=self.bucket,
                Key=self.full(key),
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": self.full(source)},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
        return str(answer["CopyPartResult"]["ETag"])

    def parts(self, key: str, upload_id: str) -> list[Part]:
        """Every part uploaded, as listed (some stores list a part uploaded twice twice)."""
        found: list[Part] = []
        marker = 0
        while True:
            with _gone_if_missing():
                answer = self._s3().list_parts(
                    Bucket=self.bucket,
                    Key=self.full(key),
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
            listed = answer.get("Parts", [])
            found += [Part(p["PartNumber"], p["Size"], p["ETag"]) for p in listed]
            if not answer.get("IsTruncated") or not listed:
                return found
            marker = int(answer["NextPartNumberMarker"])

    def complete(self, key: str, upload_id: str, etags: list[tuple[int, str]]) -> None:
        """Make `key` of the parts `etags` names ((number, ETag), ascending), server-side."""
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in etags]
        with _gone_if_missing():
            self._s3().complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.full(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )

    def abort(self, key: str, upload_id: str) -> None:
        """Drop the multipart upload and its parts (one already gone is no error)."""
        try:
            with _gone_if_missing():
                self._s3().abort_multipart_upload(
                    Bucket=self.bucket, Key=self.full(key), UploadId=upload_id
                )
        except MultipartGone:
            pass

    def pending(self, prefix: str) -> list[Pending]:
        """The multipart uploads in progress whose keys start with `prefix`."""
        found: list[Pending] = []
        markers: dict[str, str] = {}
        while True:
            answer = self._s3().list_multipart_uploads(
                Bucket=self.bucket, Prefix=self.full(prefix), **markers
            )
            found += [
                Pending(self._relative(u["Key"]), u["UploadId"], u["Initiated"])
                for u in answer.get("Uploads", [])
            ]
            if not answer.get("IsTruncated"):
                return found
            markers = {
                "KeyMarker": answer["NextKeyMarker"],
                "UploadIdMarker": answer["NextUploadIdMarker"],
            }

    # -- small objects ----------------------------------------------------------------------

    def put(self, key: str, body: BinaryIO, size: int) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=self.full(key), Body=body, ContentLength=size)

    def get_into(self, key: str, target: int) -> int | None:
        """The object `key` written into the file descriptor `target` from its start; how many
        bytes, or None if there is no such object."""
        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=self.full(key))
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        written = 0
        for chunk in answer["Body"].iter_chunks(1024 * 1024):
            view = memoryview(chunk)
            while view:
                done = os.pwrite(target, view, written)
                view, written = view[done:], written + done
        return written

    def exists(self, key: str) -> bool:
        try:
            self._s3().head_object(Bucket=self.bucket, Key=self.full(key))
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def keys(self, prefix: str) -> list[tuple[str, datetime]]:
        """The objects whose keys start with `prefix`, with when each was last written."""
        found: list[tuple[str, datetime]] = []
        paging: dict[str, str] = {}
        while True:
            answer = self._s3().list_objects_v2(
                Bucket=self.bucket, Prefix=self.full(prefix), **paging
            )
            found += [
                (self._relative(o["Key"]), o["LastModified"]) for o in answer.get("Contents", [])
            ]
            if not answer.get("IsTruncated"):
                return found
            paging = {"ContinuationToken": answer["NextContinuationToken"]}

    def delete(self, keys: list[str]) -> None:
        """Remove the objects `keys` (missing ones are no error)."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": self.full(key)} for key in keys[start : start + _DELETE_BATCH]]
            self._s3().delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def copy_ranges(size: int) -> Iterator[tuple[int, int]]:
    """`size` bytes cut into as few equal ranges as UploadPartCopy allows (each at most
    `MAX_COPY_PART`, and so each but a tiny object's at least `MIN_PART`)."""
    count = max(1, -(-size // MAX_COPY_PART))
    step = -(-size // count)
    for start in range(0, size, step):
        yield start, min(size, start + step)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class _gone_if_missing:
    """Turns S3's NoSuchUpload into `MultipartGone`."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, Exception) and _code(exc) == "NoSuchUpload":
            raise MultipartGone(str(exc)) from exc
