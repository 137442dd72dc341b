from __future__ import annotations

import pytest

from filejob.processors.sniff import SNIFF_BYTES, sniff

# A realistic DOS/PE header start: "MZ", then header fields full of NULs.
EXE_HEAD = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
ELF_HEAD = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00", "image/bmp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (b"%PDF-1.4\n1 0 obj\n", "application/pdf"),  # an all-ASCII PDF is still a PDF
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "application/gzip"),
        (b"\x28\xb5\x2f\xfd\x04\x58\x00\x00", "application/zstd"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
        (b"PAR1\x15\x04\x15\x00\x15\x00", "application/vnd.apache.parquet"),
        (EXE_HEAD, "application/vnd.microsoft.portable-executable"),
        (ELF_HEAD, "application/x-executable"),
    ],
)
def test_signatures(head: bytes, expected: str) -> None:
    assert sniff(head) == expected
    # A signature is judged by bytes alone: the client's word and the name do not change it.
    assert sniff(head, declared="text/plain", filename="notes.txt") == expected


def test_riff_that_is_not_webp_is_not_an_image() -> None:
    assert sniff(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00") == "application/octet-stream"


def test_exe_declared_as_png_is_an_exe() -> None:
    head = EXE_HEAD + bytes(range(256)) * 4
    assert (
        sniff(head, declared="image/png", filename="cat.png")
        == "application/vnd.microsoft.portable-executable"
    )


@pytest.mark.parametrize("start", [b"BMI,age\n", b"MZ,state\n", b"PAR1,PAR2\n"])
def test_short_ascii_magic_at_the_start_of_text_is_still_text(start: bytes) -> None:
    assert sniff(start + b"1,2\n", filename="data.csv") == "text/csv"


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=UTF-8", "text/csv"),
        ("text/markdown", "text/markdown"),
        ("application/json", "application/json"),
        ("application/xml; charset=utf-8", "application/xml"),
        ("application/csv", "text/csv"),
        ("APPLICATION/CSV;header=present", "text/csv"),
    ],
)
def test_text_keeps_a_textual_declared_type(declared: str, expected: str) -> None:
    assert sniff(b'{"a": 1}\n', declared=declared, filename="x.bin") == expected


@pytest.mark.parametrize(
    "declared", [None, "", "application/octet-stream", "image/png", "text/pl ain", "text/"]
)
@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("data.csv", "text/csv"),
        ("DATA.CSV", "text/csv"),
        ("data.tsv", "text/tab-separated-values"),
        ("notes.txt", "text/plain"),
        ("csv", "text/plain"),
        (None, "text/plain"),
    ],
)
def test_text_otherwise_goes_by_filename(
    declared: str | None, filename: str | None, expected: str
) -> None:
    assert sniff(b"a,b\n1,2\n", declared=declared, filename=filename) == expected


def test_utf8_text() -> None:
    assert sniff("naïve café, 東京\n".encode()) == "text/plain"


def test_utf8_sequence_cut_at_the_end_of_the_head_is_still_text() -> None:
    text = ("a" * (SNIFF_BYTES - 1) + "東京").encode()  # "東" straddles byte SNIFF_BYTES
    head = text[:SNIFF_BYTES]
    assert head[-1:] == "東".encode()[:1]
    assert sniff(head, filename="x.csv") == "text/csv"
    # Also when the caller hands over more than SNIFF_BYTES.
    assert sniff(text, filename="x.csv") == "text/csv"


def test_bad_utf8_in_the_middle_is_binary() -> None:
    assert sniff(b"abc\xff\xfedef\n") == "application/octet-stream"
    # A lone lead byte followed by ASCII is not a cut sequence.
    assert sniff(b"abc\xe6def\n", declared="text/plain") == "application/octet-stream"


def test_nul_byte_is_binary() -> None:
    assert sniff(b"a,b\n1,\x002\n", declared="text/csv", filename="x.csv") == (
        "application/octet-stream"
    )


def test_empty_head_is_octet_stream() -> None:
    assert sniff(b"", declared="text/plain", filename="empty.txt") == "application/octet-stream"


def test_unknown_binary_is_octet_stream() -> None:
    assert sniff(bytes(range(256)), declared="text/csv") == "application/octet-stream"
