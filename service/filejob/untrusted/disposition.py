"""The file name a `Content-Disposition` header suggests (RFC 6266): a client's raw upload's,
an import's origin's. Untrusted: shown only once `sanitize_filename` has cleaned it."""

from __future__ import annotations

from email.message import Message
from email.utils import collapse_rfc2231_value

RFC_8187_CHARSETS = ("utf-8", "iso-8859-1")  # the ones every recipient knows; others: ignored


def disposition_filename(disposition: str | None) -> str | None:
    """`filename*` (RFC 8187) where it is understood, else `filename`; None if the header
    names none, or cannot be read."""
    if not disposition:
        return None
    header = Message()
    header["content-disposition"] = disposition
    try:
        params = header.get_params(header="content-disposition") or []
    except Exception:  # a header email cannot read: as if it named nothing
        return None
    plain = extended = None
    for key, value in params[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):  # filename*=charset'lang'percent-encoded (RFC 8187)
            if (value[0] or "").lower() in RFC_8187_CHARSETS:
                extended = collapse_rfc2231_value(value, errors="replace")
        else:
            plain = value
    return extended or plain  # RFC 6266 §4.3: filename* wins where it is understood
