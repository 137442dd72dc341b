"""Client-supplied filenames: cleaned for display and for Content-Disposition, never for paths."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_FILENAME_BYTES = 255
FALLBACK = "upload"


def sanitize_filename(
    raw: str | None, fallback: str = FALLBACK, *, max_bytes: int = MAX_FILENAME_BYTES
) -> str:
    """A display name: the last path component, NFC, without control, format (bidi) or
    separator characters, at most `max_bytes` UTF-8 bytes with the extension kept."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = name.strip(" .")
    if not name:
        return fallback
    return _truncate_utf8(name, max_bytes)


def _truncate_utf8(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext, dot = name, "", ""
    room = limit - len((dot + ext).encode())
    cut = stem.encode()[:room].decode("utf-8", errors="ignore")
    return cut + dot + ext


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """RFC 6266: an ASCII `filename=` fallback for old clients plus RFC 5987 `filename*`."""
    kind = "inline" if inline else "attachment"
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(ch if ch.isprintable() and ch not in '"\\;' else "_" for ch in ascii_name)
    ascii_name = ascii_name.strip() or FALLBACK
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
