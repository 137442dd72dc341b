"""A tus server as small as the client's tests need, behind httpx.MockTransport: it keeps the
bytes of a cut PATCH as filejob's server does, can cut one PATCH after so many bytes, lose one
creation's answer, or answer with a problem, and records every request."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import httpx


@dataclass
class Upload:
    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    job_id: str | None = None


@dataclass
class FakeTus:
    uploads: dict[str, Upload] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    cut_patch_after: int | None = None  # the next PATCH is cut once this many bytes arrived
    lose_creation_answer: int = 0  # creations made whose answers are lost
    refuse: dict[str, httpx.Response] = field(default_factory=dict)  # by method: once
    link_on_finish: bool = True
    received: int = 0  # PATCH body bytes that arrived

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://tus.test", transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        refusal = self.refuse.pop(request.method, None)
        if refusal is not None:
            request.read()
            return refusal
        upload_id = request.url.path.removeprefix("/v1/uploads").strip("/")
        if request.method == "POST":
            return self._create(request)
        upload = self.uploads.get(upload_id)
        if upload is None:
            return problem(404, "upload_not_found")
        if request.method == "HEAD":
            return httpx.Response(200, headers=self._described(upload))
        if request.method == "GET":
            body = {"id": upload_id, "offset": len(upload.data), "job_id": upload.job_id}
            return httpx.Response(200, json=body)
        return self._patch(request, upload)

    def _create(self, request: httpx.Request) -> httpx.Response:
        upload_id = f"u{len(self.uploads) + 1}"
        metadata = {}
        for pair in request.headers["upload-metadata"].split(","):
            key, _, value = pair.partition(" ")
            metadata[key] = base64.b64decode(value).decode()
        self.uploads[upload_id] = Upload(int(request.headers["upload-length"]), metadata)
        if self.lose_creation_answer:
            self.lose_creation_answer -= 1
            raise httpx.ReadError("the answer was lost")
        return httpx.Response(201, headers={"Location": f"/v1/uploads/{upload_id}"})

    def _patch(self, request: httpx.Request, upload: Upload) -> httpx.Response:
        offset = int(request.headers["upload-offset"])
        if offset != len(upload.data):
            request.read()
            return problem(409, "upload_offset_mismatch")
        assert isinstance(request.stream, httpx.SyncByteStream)
        for chunk in request.stream:
            if self.cut_patch_after is not None:
                keep = chunk[: self.cut_patch_after]
                upload.data += keep
                self.received += len(keep)
                self.cut_patch_after -= len(keep)
                if self.cut_patch_after == 0:
                    self.cut_patch_after = None
                    raise httpx.WriteError("the connection was cut")
                continue
            upload.data += chunk
            self.received += len(chunk)
        if len(upload.data) == upload.length:
            upload.job_id = f"job-{len(self.uploads)}"
        return httpx.Response(204, headers=self._described(upload))

    def _described(self, upload: Upload) -> dict[str, str]:
        headers = {"Upload-Offset": str(len(upload.data)), "Upload-Length": str(upload.length)}
        if upload.job_id and self.link_on_finish:
            headers["Link"] = f'</v1/jobs/{upload.job_id}>; rel="monitor"'
        return headers

    def of(self, method: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method]


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    """A problem+json answer, as filejob's server refuses."""
    body = json.dumps({"code": code, "detail": code.replace("_", " ")})
    return httpx.Response(
        status, content=body, headers={"Content-Type": "application/problem+json", **headers}
    )
