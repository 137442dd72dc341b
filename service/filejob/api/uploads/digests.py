"""The input's digest as a client may send it: RFC 9530's `Repr-Digest` header (on raw bodies,
where the body is the file) or a `sha256` field (hex). The bytes are compared with it once
they have arrived (jobs/service.py); here the header is read.

`Repr-Digest` is an RFC 8941 dictionary, `sha-256=:<base64>:, sha-512=:...:` (parsed by
http-sf). Algorithms this server does not compute
are ignored; a header with none it computes is ignored as a whole (RFC 9530 §2: a recipient MAY
ignore it). A header that is not a dictionary, or a `sha-256` that is not 32 bytes, is refused
(400, as RFC 8941 allows): a client that asked for a check should not silently get none.
"""

from __future__ import annotations

from filejob.api.structured_fields import dictionary
from filejob.errors import DigestMismatch, MalformedRequest

SUPPORTED = "sha-256"
_SHA256_BYTES = 32
MAX_HEADER_CHARS = 4096


def sha256_of_repr_digest(header: str | None) -> str | None:
    """The sha-256 (hex) a `Repr-Digest` header names; None without one it names."""
    if header is None:
        return None
    if len(header) > MAX_HEADER_CHARS:
        raise MalformedRequest(f"Repr-Digest exceeds {MAX_HEADER_CHARS} characters.")
    try:
        members = dictionary(header.strip(" \t"))
    except ValueError as exc:
        raise MalformedRequest(
            f"Repr-Digest is not a structured dictionary of digests ({exc})."
        ) from None
    if SUPPORTED not in members:
        return None
    value = members[SUPPORTED]
    if not isinstance(value, bytes):
        raise MalformedRequest("Repr-Digest's sha-256 must be a byte sequence, :<base64>:.")
    if len(value) != _SHA256_BYTES:
        raise MalformedRequest(
            f"Repr-Digest's sha-256 has {len(value)} bytes; a sha-256 has {_SHA256_BYTES}."
        )
    return value.hex()


def expected_sha256(*claimed: str | None) -> str | None:
    """The one sha256 (hex, lower case) the client's claims agree on; None if it made none.
    Two claims that differ cannot both hold: the upload is refused at once."""
    found = {value.lower() for value in claimed if value}
    if len(found) > 1:
        raise DigestMismatch(
            "The digests sent with the upload differ from each other "
            f"({', '.join(sorted(found))}); nothing was kept."
        )
    return found.pop() if found else None
