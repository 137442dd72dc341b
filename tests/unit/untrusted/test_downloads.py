"""What a guarded download reads: the body as it came over the wire, never inflated. An answer
with a content coding is refused before a byte of its body is read, however small its body and
however large what it would inflate to; `identity` is no coding."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from filejob.untrusted.downloads import DownloadFailed, GuardedDownloads, UrlRules, name_in_url
from tests.support.origin import File, Origin, bomb, serving

MiB = 1024 * 1024
INFLATED = 64 * MiB  # what each bomb inflates to
BOUND = 8 * MiB  # far above what a refused answer allocates, far below one inflated chunk


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving() as origin:
        yield origin


def downloads() -> GuardedDownloads:
    return GuardedDownloads(UrlRules(allow_private=True), timeout=5.0)


async def read_all(fetcher: GuardedDownloads, url: str) -> bytes:
    async with fetcher.open(url) as download:
        return b"".join([chunk async for chunk in download.chunks()])


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
async def test_a_coded_body_is_refused_without_inflating_it(coding: str, origin: Origin) -> None:
    url = origin.serve("/bomb", File(bomb(coding, INFLATED), encoding=coding))
    fetcher = downloads()
    tracemalloc.start()
    try:
        with pytest.raises(DownloadFailed) as refused:
            await read_all(fetcher, url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await fetcher.aclose()
    assert refused.value.code == "source_encoding_unsupported"
    assert not refused.value.transient  # the origin will code it the same way next time
    assert f"Content-Encoding {coding}" in refused.value.message
    assert peak < BOUND


@pytest.mark.parametrize("header", ["br", "identity, gzip", "GZIP"])
async def test_any_coding_but_identity_is_refused(header: str, origin: Origin) -> None:
    url = origin.serve("/coded", File(b"\x00not really coded", encoding=header))
    fetcher = downloads()
    try:
        with pytest.raises(DownloadFailed) as refused:
            await read_all(fetcher, url)
    finally:
        await fetcher.aclose()
    assert refused.value.code == "source_encoding_unsupported"


@pytest.mark.parametrize("header", [None, "identity", " Identity "])
async def test_an_uncoded_body_is_read_as_sent(header: str | None, origin: Origin) -> None:
    data = bomb("gzip", 2 * MiB)  # gzip bytes as a file (a .gz), not as a coding
    url = origin.serve("/file.gz", File(data, content_type="application/gzip", encoding=header))
    fetcher = downloads()
    try:
        assert await read_all(fetcher, url) == data
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://a.example/files/report%20v2.pdf?x=1", "report v2.pdf"),
        ("https://a.example/files/", None),
        ("https://a.example", None),
        ("https://a.example/%E2%82%AC%ff", "\u20ac\ufffd"),
    ],
)
def test_the_url_names_the_file_by_its_last_segment(url: str, name: str | None) -> None:
    assert name_in_url(url) == name
