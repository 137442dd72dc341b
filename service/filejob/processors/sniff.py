"""Judge an upload's content type from its first bytes rather than trusting the client.

Processors declare the types they accept; the type they are matched against comes from here, so a
client cannot route an executable into the image decoder by calling it image/png.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"


class _Signature(NamedTuple):
    content_type: str
    parts: tuple[tuple[int, bytes], ...]  # (offset, magic) pairs that must all match
    # Short ASCII magics ("BM", "MZ", "PAR1") also begin ordinary text such as a CSV header
    # "BMI,age"; the real formats always carry NUL or non-UTF-8 bytes early, so these only
    # count when the head is not text.
    binary_only: bool = False


_SIGNATURES: tuple[_Signature, ...] = (
    _Signature("image/png", ((0, b"\x89PNG\r\n\x1a\n"),)),
    _Signature("image/jpeg", ((0, b"\xff\xd8\xff"),)),
    _Signature("image/gif", ((0, b"GIF87a"),)),
    _Signature("image/gif", ((0, b"GIF89a"),)),
    _Signature("image/webp", ((0, b"RIFF"), (8, b"WEBP"))),
    _Signature("image/bmp", ((0, b"BM"),), binary_only=True),
    _Signature("image/tiff", ((0, b"II*\x00"),)),
    _Signature("image/tiff", ((0, b"MM\x00*"),)),
    _Signature("application/pdf", ((0, b"%PDF-"),)),
    _Signature("application/gzip", ((0, b"\x1f\x8b\x08"),)),
    _Signature("application/zstd", ((0, b"\x28\xb5\x2f\xfd"),)),
    _Signature("application/zip", ((0, b"PK\x03\x04"),)),
    _Signature("application/vnd.apache.parquet", ((0, b"PAR1"),), binary_only=True),
    _Signature("application/vnd.microsoft.portable-executable", ((0, b"MZ"),), binary_only=True),
    _Signature("application/x-executable", ((0, b"\x7fELF"),)),
)

# Declared types we keep for text content (after normalising); others fall back to the filename.
_TEXT_DECLARED_ALIASES = {
    "application/json": "application/json",
    "application/xml": "application/xml",
    "application/csv": "text/csv",
}
_TEXT_SUFFIXES = {".csv": "text/csv", ".tsv": "text/tab-separated-values"}
# A declared type is echoed back into job metadata, so only accept a plain type/subtype token.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def sniff(head: bytes, declared: str | None = None, filename: str | None = None) -> str:
    """Return the content type of a file whose first (up to SNIFF_BYTES) bytes are `head`.

    Binary signatures win over anything the client said; the declared type and the filename
    only refine content that already looks like UTF-8 text.
    """
    head = head[:SNIFF_BYTES]
    text = _is_text(head)
    for sig in _SIGNATURES:
        if sig.binary_only and text:
            continue
        if all(head[offset : offset + len(magic)] == magic for offset, magic in sig.parts):
            return sig.content_type
    if not text:
        return OCTET_STREAM
    return _text_type(declared, filename)


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    # final=False: the head is an arbitrary prefix, so a multi-byte character may be cut at the
    # end; the incremental decoder buffers it instead of failing, but still rejects bad bytes.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _text_type(declared: str | None, filename: str | None) -> str:
    if declared:
        base = declared.split(";", 1)[0].strip().lower()
        if _MEDIA_TYPE.fullmatch(base):
            if base.startswith("text/"):
                return base
            if base in _TEXT_DECLARED_ALIASES:
                return _TEXT_DECLARED_ALIASES[base]
    if filename:
        lowered = filename.lower()
        for suffix, content_type in _TEXT_SUFFIXES.items():
            if lowered.endswith(suffix):
                return content_type
    return "text/plain"
