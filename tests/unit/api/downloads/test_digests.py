"""Which RFC 9530 digest fields a result download sends, for each Want-*-Digest."""

from __future__ import annotations

import base64
import hashlib

import pytest
from starlette.datastructures import Headers

from filejob.api.downloads.digests import digest_fields, format_digest, preferences

SHA = hashlib.sha256(b"hello world").hexdigest()
VALUE = "sha-256=:" + base64.b64encode(hashlib.sha256(b"hello world").digest()).decode() + ":"


def fields(*raw: tuple[str, str], whole_body: bool = True) -> dict[str, str]:
    headers = Headers(raw=[(k.lower().encode(), v.encode("latin-1")) for k, v in raw])
    return digest_fields(headers, SHA, whole_body=whole_body)


def test_format_is_base64_of_the_raw_digest() -> None:
    assert format_digest(SHA) == VALUE == "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:"
    assert format_digest("") is None and format_digest("zz" * 32) is None
    assert format_digest(SHA[:-2]) is None


def test_repr_digest_is_sent_unasked_content_digest_only_when_asked() -> None:
    assert fields() == {"Repr-Digest": VALUE}
    assert fields(("Want-Content-Digest", "sha-256=1")) == {
        "Repr-Digest": VALUE,
        "Content-Digest": VALUE,
    }


def test_content_digest_only_for_the_whole_body() -> None:
    asked = ("Want-Content-Digest", "sha-256=5")
    assert fields(asked, whole_body=False) == {"Repr-Digest": VALUE}


@pytest.mark.parametrize(
    ("want", "sent"),
    [
        ("sha-256=10, sha-512=3", True),
        ("sha-512=10, sha-256=1", True),
        ("sha-512=3", False),
        ("sha-256=0, sha-512=3", False),
        ("sha-256=0", False),
        ("sha-256=11", False),  # not a weight: left out, so sha-256 is not asked for
        ('sha-256="10"', False),
        ("sha-256", False),  # a Boolean, not a weight
        ("SHA-256=1", True),  # malformed: ignored, as if absent
        ("sha-256=1,", True),
        ("", True),
        ("sha-512=1, " * 400 + "sha-256=0", True),  # too long: ignored unread
    ],
)
def test_want_repr_digest(want: str, sent: bool) -> None:
    assert ("Repr-Digest" in fields(("Want-Repr-Digest", want))) is sent


def test_a_malformed_want_content_digest_asks_for_nothing() -> None:
    assert "Content-Digest" not in fields(("Want-Content-Digest", "sha-256=1 sha-512"))


def test_field_lines_are_joined() -> None:
    headers = Headers(
        raw=[(b"want-repr-digest", b"sha-512=3"), (b"want-repr-digest", b"sha-256=1")]
    )
    assert preferences(headers, "want-repr-digest") == {"sha-512": 3, "sha-256": 1}
    assert preferences(Headers(), "want-repr-digest") is None


def test_no_stored_digest_no_fields() -> None:
    assert digest_fields(Headers(), None, whole_body=True) == {}
