from __future__ import annotations

import unicodedata

import pytest

from filejob.untrusted.filenames import content_disposition, sanitize_filename


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.txt", "x.txt"),
        ("C:\\Users\\me\\doc.txt", "doc.txt"),
        ("na\x00me\x1f.txt", "name.txt"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # bidi override removed
        ("..", "upload"),
        ("", "upload"),
        (None, "upload"),
        ("  spaced .txt  ", "spaced .txt"),
    ],
)
def test_sanitize(raw: str | None, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_long_names_keep_extension_and_fit_255_bytes() -> None:
    name = sanitize_filename("é" * 1000 + ".jpeg")
    assert name.endswith(".jpeg") and len(name.encode()) <= 255


def test_unicode_normalisation_makes_lookalikes_equal() -> None:
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert decomposed != "café.txt"
    assert sanitize_filename(decomposed) == sanitize_filename("café.txt") == "café.txt"


def test_content_disposition_has_ascii_fallback_and_rfc5987() -> None:
    header = content_disposition('naïve "quote";.txt')
    assert header.startswith('attachment; filename="naive _quote__.txt"')
    assert "filename*=UTF-8''na%C3%AFve%20%22quote%22%3B.txt" in header
    header.encode("latin-1")
    assert content_disposition("東京").startswith('attachment; filename="upload"')
    assert content_disposition("a.png", inline=True).startswith("inline;")
