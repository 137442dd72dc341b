"""Blobs as objects in an S3-compatible store, under `s3://bucket/prefix/<key>`.

Uploads still arrive in a local spool (`<data_dir>/tmp`), hashed on the way; storing one then
streams the spool into the store (a multipart upload above `PART_SIZE`), never holding it
whole. Writers fill a local temp file and upload it on `commit()`: S3 makes an object visible
only once it is complete, so a crash never leaves half a blob under a key. Readers fetch byte
ranges on demand. Unlike a local file, an object deleted while a download reads it is gone:
that download fails part-way (the client sees a short body and can retry).

Presigned downloads are signed with botocore, not obstore: obstore's `sign` signs a bare GET,
and the URL must also carry the `response-content-disposition` and `response-content-type`
the store answers with (a signature covers the whole query, so nothing can be added after).
They are signed for the endpoint clients reach (FILEJOB_S3_PUBLIC_ENDPOINT), whose host SigV4
signs, and which this server itself may not be able to reach.

`uploads/` is not blobs' ground: resumable uploads in progress keep there what does not fill
a multipart part yet (resumable/multipart.py); their own sweep judges it, so `list` (what the
orphan sweep judges) leaves it out, as the local storage's list leaves out its uploads folder.
"""

from __future__ import annotations

import builtins
import io
import os
import threading
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio.to_thread
import obstore
from obstore.store import S3Store

from filejob.storage.base import Abilities, BlobInfo, BlobNotFound, DownloadHeaders, abilities_of
from filejob.storage.s3_parts import MAX_COPY_PART, S3Parts, copy_ranges
from filejob.storage.s3_parts import client as s3_client
from filejob.storage.spool import UploadSpool
from filejob.storage.temp_area import TempArea

if TYPE_CHECKING:
    from botocore.client import BaseClient  # type: ignore[import-untyped]

PART_SIZE = 8 * 1024 * 1024
READ_BUFFER = 1024 * 1024
UPLOADS_AREA = "uploads/"


class _RangeFile(io.RawIOBase):
    """A seekable, read-only file over one object, one ranged GET per buffer fill."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self._store, self._key, self._size, self._pos = store, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = _get_range(self._store, self._key, self._pos, length)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _get_range(store: S3Store, key: str, start: int, length: int) -> memoryview:
    try:
        return memoryview(obstore.get_range(store, key, start=start, length=length))
    except FileNotFoundError as exc:
        raise BlobNotFound(key) from exc


class S3BlobReader:
    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self.size = size
        self._store, self._key = store, key
        self.file: BinaryIO = io.BufferedReader(_RangeFile(store, key, size), READ_BUFFER)

    def read_at(self, offset: int, size: int) -> bytes:
        size = min(size, self.size - offset)
        return bytes(_get_range(self._store, self._key, offset, size)) if size > 0 else b""

    def close(self) -> None:
        self.file.close()


class StoredObject(UploadSpool):
    """An object of this bucket as an `UploadSpool` whose size and sha256 are known (a
    finished resumable upload): read by ranges; `S3Storage.put_file` places it under another
    key by a server-side copy, and under its own key by doing nothing."""

    def __init__(self, storage: S3Storage, key: str, size: int, sha256: Any) -> None:
        super().__init__(_ObjectFile(storage.store, key, size), memory_bytes=0)
        self.rollover()  # "opens" the object: nothing is read until asked
        self.storage, self.key = storage, key
        self.size, self.sha256 = size, sha256


class _ObjectFile:
    """`SpoolFiles` giving one object, read by ranged GETs."""

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        self._store, self._key, self._size = store, key, size

    def open(self) -> tuple[BinaryIO, Path | None]:
        return _ObjectReader(_RangeFile(self._store, self._key, self._size), 64 * 1024), None

    def close(self, file: BinaryIO, path: Path | None) -> None:
        file.close()


class _ObjectReader(io.BufferedReader):
    """Read-only, but for the empty write a spool's rollover makes (nothing was in memory)."""

    def write(self, data: Any) -> int:
        if len(data):
            raise io.UnsupportedOperation("a stored object is read-only")
        return 0


class S3BlobWriter:
    def __init__(self, storage: S3Storage, key: str, *, named: bool = False) -> None:
        self._storage, self._key = storage, key
        if named:
            self.file, self.path = storage.temp.open_named()
            self._named: Path | None = self.path
        else:
            self.file, self._named = storage.temp.open()

    async def commit(self) -> BlobInfo:
        try:
            await self._storage.put_file(self.file, self._key)
            size = os.fstat(self.file.fileno()).st_size  # what was uploaded: no HEAD needed
        finally:
            await self.discard()
        return BlobInfo(self._key, size, datetime.now(UTC))

    async def discard(self) -> None:
        self._storage.temp.close(self.file, self._named)


class S3Storage:
    """`Storage` on an S3-compatible object store; spools and writers use `<data_dir>/tmp`."""

    def __init__(
        self,
        store: S3Store,
        data_dir: Path,
        presigner: S3Presigner | None = None,
        parts: S3Parts | None = None,
    ) -> None:
        self.store = store
        self.temp = TempArea(data_dir / "tmp")
        self.presigner = presigner
        # Multipart uploads part by part (resumable uploads); None: not offered.
        self.parts = parts
        self.abilities: Abilities = abilities_of(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        data_dir: Path,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        public_endpoint: str | None = None,
    ) -> S3Storage:
        """`s3://bucket/prefix`; unset values come from the standard `AWS_*` variables.
        Presigned URLs name `public_endpoint` (default: `endpoint`)."""
        config: dict[str, Any] = {}
        for name, value in (
            ("endpoint", endpoint),
            ("region", region),
            ("access_key_id", access_key_id),
            ("secret_access_key", secret_access_key),
        ):
            if value:
                config[name] = value
        client_options = {"allow_http": True} if (endpoint or "").startswith("http:") else {}
        store = S3Store.from_url(url, config=config, client_options=client_options)  # type: ignore[arg-type]
        presigner = S3Presigner(
            store.config["bucket"],
            store.prefix or "",
            endpoint=public_endpoint or endpoint,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        parts = S3Parts(
            store.config["bucket"],
            store.prefix or "",
            _client_options(endpoint, region, access_key_id, secret_access_key),
        )
        return cls(store, data_dir, presigner, parts)

    def new_spool(self, memory_bytes: int) -> UploadSpool:
        return self.temp.new_spool(memory_bytes, early_writeback=False)

    # -- core -----------------------------------------------------------------------------

    async def create(self, key: str) -> S3BlobWriter:
        return await anyio.to_thread.run_sync(S3BlobWriter, self, key)

    async def create_named(self, key: str) -> S3BlobWriter:
        return await anyio.to_thread.run_sync(lambda: S3BlobWriter(self, key, named=True))

    def local_copy(self, source: BinaryIO) -> AbstractAsyncContextManager[Path]:
        """`source` copied to a named temp file (for a processor in a child process)."""
        return self.temp.local_copy(source)

    async def open(self, key: str) -> S3BlobReader:
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        return S3BlobReader(self.store, key, info.size)

    async def stat(self, key: str) -> BlobInfo | None:
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return None
        return BlobInfo(key, meta["size"], meta["last_modified"])

    async def delete(self, key: str) -> bool:
        existed = await self.stat(key) is not None
        if existed:
            await obstore.delete_async(self.store, key)
        return existed

    async def list(self) -> builtins.list[BlobInfo]:
        found: builtins.list[BlobInfo] = []
        async for batch in obstore.list(self.store, chunk_size=1000):
            found.extend(
                BlobInfo(m["path"], m["size"], m["last_modified"])
                for m in batch
                if not m["path"].startswith(UPLOADS_AREA)
            )
        return found

    async def sweep_temp(self, older_than: float) -> int:
        return await anyio.to_thread.run_sync(self.temp.sweep, older_than)

    def free_bytes(self) -> int:
        """Free space for spools: uploads still land on the local disk first."""
        return self.temp.free_bytes()

    # -- direct downloads -----------------------------------------------------------------

    async def presigned_get(self, key: str, expires_in: float, headers: DownloadHeaders) -> str:
        if self.presigner is None:
            raise RuntimeError("this S3Storage was made without a presigner (see from_url)")
        return await anyio.to_thread.run_sync(self.presigner.sign, key, expires_in, headers)

    # -- streaming a local file in --------------------------------------------------------

    async def put_file(self, file: BinaryIO, key: str) -> None:
        """Upload `file`'s whole content as `key`, streaming (multipart above PART_SIZE); an
        object of this bucket (`StoredObject`) is copied by the store, its bytes never
        leaving it (and is left as it is if `key` is its own)."""
        if isinstance(file, StoredObject) and file.storage is self:
            if file.key != key:
                await self.copy(file.key, key, file.size)
            return

        def upload() -> None:
            file.flush()
            file.seek(0)
            obstore.put(self.store, key, file, chunk_size=PART_SIZE, max_concurrency=4)

        await anyio.to_thread.run_sync(upload)

    async def copy(self, source: str, key: str, size: int) -> None:
        """The object `source` (of `size` bytes) copied to `key`, server-side."""
        if size <= MAX_COPY_PART or self.parts is None:
            try:
                await obstore.copy_async(self.store, source, key)
            except FileNotFoundError:  # obstore's NotFoundError
                raise BlobNotFound(source) from None
            return
        await anyio.to_thread.run_sync(self._copy_in_parts, self.parts, source, key, size)

    @staticmethod
    def _copy_in_parts(parts: S3Parts, source: str, key: str, size: int) -> None:
        """CopyObject stops at 5 GiB: larger objects are copied range by range."""
        upload_id = parts.create(key)
        try:
            etags = [
                (number, parts.copy_part(key, upload_id, number, source, start, end))
                for number, (start, end) in enumerate(copy_ranges(size), start=1)
            ]
            parts.complete(key, upload_id, etags)
        except BaseException:
            parts.abort(key, upload_id)
            raise


def _client_options(
    endpoint: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> dict[str, Any]:
    """botocore's options for the settings given (None: botocore's own chain, which reads
    the same `AWS_*` variables obstore reads)."""
    return {
        "region_name": region or os.environ.get("AWS_REGION") or None,
        "endpoint_url": endpoint,
        "aws_access_key_id": access_key_id,
        "aws_secret_access_key": secret_access_key,
    }


class S3Presigner:
    """Presigned GET URLs that carry response-header overrides (see the module doc).

    The client is made on first use, so that processes which never presign (workers) do not
    load botocore. Credentials and region left unset come from botocore's own chain (the same
    `AWS_*` variables obstore reads, then its config files and instance roles)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint = endpoint
        self._options = _client_options(endpoint, region, access_key_id, secret_access_key)
        self._client: BaseClient | None = None
        self._making = threading.Lock()

    def sign(self, key: str, expires_in: float, headers: DownloadHeaders) -> str:
        """The URL (blocking: botocore is synchronous, and loads its S3 model on first use)."""
        return str(
            self._s3().generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": f"{self.prefix}/{key}" if self.prefix else key,
                    "ResponseContentType": headers.content_type,
                    "ResponseContentDisposition": headers.content_disposition,
                    "ResponseCacheControl": headers.cache_control,
                },
                ExpiresIn=max(1, round(expires_in)),
            )
        )

    def _s3(self) -> BaseClient:
        with self._making:
            if self._client is None:
                # Stores other than AWS are reached by path (bucket in the path, as obstore
                # does); AWS by virtual host where the bucket name allows it.
                self._client = s3_client(self._options, path_style=bool(self.endpoint))
            return self._client
