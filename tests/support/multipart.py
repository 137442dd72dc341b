"""Request bodies built by hand: raw multipart, byte for byte (what a well-behaved client
library would never send), and a streamed body that counts what the server read."""

from __future__ import annotations

from collections.abc import AsyncIterator

JOBS = "/v1/jobs"
BOUNDARY = "s3cur1ty-b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def field_part(name: str, value: str | bytes, boundary: str = BOUNDARY) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )


def file_part(
    content: bytes,
    filename: bytes = b"input.bin",
    content_type: bytes = b"application/octet-stream",
    boundary: str = BOUNDARY,
) -> bytes:
    """A file part; `filename` goes into the quoted parameter byte for byte (escape it first)."""
    return (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: '
        + content_type
        + b"\r\n\r\n"
        + content
        + b"\r\n"
    )


def closing(boundary: str = BOUNDARY) -> bytes:
    return f"--{boundary}--\r\n".encode()


def upload_body(
    content: bytes,
    processor: str = "checksum",
    *,
    filename: bytes = b"input.bin",
    content_type: bytes = b"application/octet-stream",
    boundary: str = BOUNDARY,
) -> bytes:
    """A whole, well-formed upload: the processor field, the file part, the closing line."""
    return (
        field_part("processor", processor, boundary)
        + file_part(content, filename, content_type, boundary)
        + closing(boundary)
    )


def quoted(name: str) -> bytes:
    """`name` as the UTF-8 bytes of a quoted-string parameter (backslash and quote escaped)."""
    return name.replace("\\", "\\\\").replace('"', '\\"').encode()


class CountingBody:
    """A request body of `chunks` chunks of filler that counts how many the server pulled:
    a refusal "before the body is read" pulls at most the first."""

    def __init__(self, chunks: int, size: int = 65536) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size
