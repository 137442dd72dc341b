"""The documentation says what the code does: the settings table matches config.py, the plugin
example runs, the copies of the README's examples match it, and no link points nowhere."""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from filejob.config import Settings
from filejob.processors import Output, Processor, ProcessorContext

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.glob("*.md"))


def marked_block(path: Path, marker: str) -> str:
    """The text between `<!-- marker ... -->` and `<!-- /marker -->` in a page."""
    text = path.read_text()
    assert text.count(f"<!-- {marker}") == 1, (path, marker)
    return text.split(f"<!-- {marker}")[1].split("-->", 1)[1].split(f"<!-- /{marker} -->")[0]


def test_settings_table_matches_settings() -> None:
    table = marked_block(DOCS / "settings.md", "settings-table")
    documented = dict(re.findall(r"^\| `FILEJOB_(\w+)` \| (.+?) \|", table, flags=re.M))
    fields = Settings.model_fields
    assert set(documented) == {name.upper() for name in fields}
    for name, field in fields.items():
        shown = documented[name.upper()]
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if field.default_factory is not None or default in ("", None):
            continue
        if isinstance(default, bool):
            expected = str(default).lower()
        elif isinstance(default, float) and default.is_integer():
            expected = str(int(default))
        else:
            expected = str(default)
        assert shown.startswith(f"`{expected}`"), (name, shown)


def test_the_overview_shows_the_readmes_tested_curl_block() -> None:
    """tests/system/live/test_readme.py runs the README's block; the site's copy is the same."""

    def code(path: Path) -> str:
        return marked_block(path, "curl-examples").split("```sh\n", 1)[1].rsplit("```", 1)[0]

    assert code(DOCS / "index.md") == code(README)


def test_the_processor_example_runs() -> None:
    block = marked_block(DOCS / "processors.md", "processor-example")
    code = block.split("```python\n", 1)[1].rsplit("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/processors.md", "exec"), namespace)
    upper = namespace["Upper"]
    assert issubclass(upper, Processor)
    processor = upper()
    assert processor.accepts("text/plain") and not processor.accepts("image/png")
    data = b"hello, world\n" * 100_000  # more than one 1 MiB chunk
    output = io.BytesIO()
    progress: list[float] = []
    ctx = ProcessorContext(
        input=io.BytesIO(data),
        input_size=len(data),
        input_filename="notes.txt",
        input_content_type="text/plain",
        output=output,
        on_progress=progress.append,
    )
    result = processor.run(ctx, upper.Params())
    assert result == Output(filename="notes.txt.upper", content_type="text/plain")
    assert output.getvalue() == data.upper()
    assert progress[-1] == 1.0


# -- links ----------------------------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", flags=re.M)


def prose(path: Path) -> str:
    """A page without its code: links in code blocks and spans are examples, not links."""
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text()))


def slug(heading: str) -> str:
    """A heading's anchor, as Python-Markdown's toc (and, for these headings, GitHub) makes it."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(FENCE.sub("", path.read_text()))}


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: page.name)
def test_every_relative_link_points_at_something(page: Path) -> None:
    links = relative_links(page)
    for link in links:
        target, _, fragment = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link} points at no file"
        if fragment and path.suffix == ".md":
            assert fragment in anchors(path), f"{page.name}: {link}: no such heading"


def test_the_readme_links_to_every_page() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in relative_links(README)}
    assert set(PAGES) <= linked


def test_the_site_nav_lists_every_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = config.split("\nnav:\n", 1)[1]
    listed = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", nav, flags=re.M)
    assert len(listed) == len(set(listed)), "a page is listed twice"
    assert sorted(listed) == [page.name for page in PAGES]
