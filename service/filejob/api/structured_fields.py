"""RFC 8941 structured fields, as RFC 9530's digest headers use them (parsed by http-sf)."""

from __future__ import annotations

import http_sf


def dictionary(value: str) -> dict[str, object]:
    """The members of a Dictionary field, by key, as bare values (an inner list as a list;
    parameters dropped). ValueError when `value` is not one: RFC 8941 has such a field
    ignored or refused whole, never read in part."""
    parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary")  # ValueError subclasses
    if not isinstance(parsed, dict):
        raise ValueError("not a dictionary")
    # Each member is (value, parameters) in a Dictionary, whatever http-sf's wider type says.
    return {key: member[0] for key, member in parsed.items() if isinstance(member, tuple)}
