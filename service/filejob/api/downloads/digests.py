"""RFC 9530 digest fields of a result download: which to send, and how they are written.

The result's sha-256 was computed when it was stored (job.result_sha256, hex), so sending it
costs a base64 of 32 bytes: nothing is hashed at request time. sha-256 is the only algorithm
offered; a client that accepts none we have gets no digest field (RFC 9530 §4 lets it ask,
and lets us decline).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from starlette.datastructures import Headers

from filejob.api.structured_fields import dictionary

ALGORITHM = "sha-256"
MAX_WEIGHT = 10  # RFC 9530 §4: weights are Integers 0 (not acceptable) to 10
# Longer than any honest list of algorithms: ignored unread, so it costs no parsing time.
MAX_FIELD_CHARS = 4096


def format_digest(sha256_hex: str) -> str | None:
    """`sha-256=:<base64>:` (a Dictionary with one Byte Sequence), or None for a value that
    is not a sha-256 in hex (there is nothing true to say then)."""
    if len(sha256_hex) != 64:
        return None
    try:
        raw = bytes.fromhex(sha256_hex)
    except ValueError:
        return None
    return f"{ALGORITHM}=:{base64.b64encode(raw).decode('ascii')}:"


def preferences(headers: Headers, name: str) -> Mapping[str, int] | None:
    """The algorithm weights of a `Want-*-Digest` field, or None when it is absent, empty or
    malformed (or too long): RFC 8941 says a field that fails to parse is ignored as if it
    were absent. Members whose value is not a weight are left out: they say nothing of what
    is acceptable."""
    values = headers.getlist(name)
    joined = ", ".join(v for v in values if v.strip())
    if not joined or len(joined) > MAX_FIELD_CHARS:
        return None
    try:
        members = dictionary(joined)
    except ValueError:
        return None
    return {
        algorithm: value
        for algorithm, value in members.items()
        # an inner list, a bool or a token is no weight; bool is an int to Python
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WEIGHT
    }


def accepts_ours(weights: Mapping[str, int] | None, *, unasked: bool) -> bool:
    """Whether to send our sha-256: `unasked` when the client expressed no preference,
    else only when it weighed sha-256 above 0."""
    if weights is None:
        return unasked
    return weights.get(ALGORITHM, 0) > 0


def digest_fields(headers: Headers, sha256_hex: str | None, *, whole_body: bool) -> dict[str, str]:
    """The digest fields for a download of the result whose sha-256 is `sha256_hex`.

    Repr-Digest (the whole result, whatever part is sent) unless the client's
    Want-Repr-Digest rules sha-256 out. Content-Digest (this message's bytes) only when
    Want-Content-Digest asks for sha-256 and `whole_body` says the content is the whole,
    unencoded result, so that its digest equals the stored one: never for a 206 (that would
    mean reading and hashing the range before sending the headers) nor a HEAD (no content).
    """
    value = format_digest(sha256_hex or "")
    if value is None:
        return {}
    fields: dict[str, str] = {}
    if accepts_ours(preferences(headers, "want-repr-digest"), unasked=True):
        fields["Repr-Digest"] = value
    if whole_body and accepts_ours(preferences(headers, "want-content-digest"), unasked=False):
        fields["Content-Digest"] = value
    return fields
