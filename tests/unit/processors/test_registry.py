"""Processors from other packages arrive through the `filejob.processors` entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from filejob.processors.registry import ProcessorRegistry


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[Path]:
    """A real installed distribution (dist-info + module) on sys.path."""
    (tmp_path / "fj_plugin.py").write_text(
        textwrap.dedent(
            """
            from filejob.processors.base import Output, Processor

            class Reverse(Processor):
                name = "reverse"
                description = "Reverses the bytes."

                def run(self, ctx, params):
                    ctx.output.write(ctx.input.read()[::-1])
                    return Output(filename="reversed", content_type="application/octet-stream")

            class NotAProcessor:
                pass

            def broken():
                raise RuntimeError("cannot load")
            """
        )
    )
    dist = tmp_path / "fj_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fj-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[filejob.processors]\n"
        "reverse = fj_plugin:Reverse\n"
        "wrong = fj_plugin:NotAProcessor\n"
        "checksum = fj_plugin:Reverse\n"
        "broken = fj_plugin:broken\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fj_plugin", None)


def test_builtins_are_registered() -> None:
    names = [p.name for p in ProcessorRegistry.discover()]
    assert names == ["checksum", "compress", "csv-to-parquet", "thumbnail"]


def test_entry_point_processors_are_loaded_and_bad_ones_skipped(plugin_dist: Path) -> None:
    registry = ProcessorRegistry.discover()
    reverse = registry.get("reverse")
    assert reverse is not None and reverse.description == "Reverses the bytes."
    assert registry.get("wrong") is None and registry.get("broken") is None
    # A plugin cannot shadow a built-in.
    assert type(registry.get("checksum")).__module__ == "filejob.processors.checksum"


def test_the_plugin_api_is_one_import() -> None:
    import filejob.processors as api
    from filejob.processors import base

    for name in ("Processor", "ProcessorContext", "Output", "ProcessingError", "RetryableError"):
        assert getattr(api, name) is getattr(base, name)
    assert set(api.__all__) >= {"Processor", "ProcessorContext", "Output", "ProcessingError"}
