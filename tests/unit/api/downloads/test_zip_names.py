"""Names in a zip of results: each result's file name, under its step, never twice."""

from __future__ import annotations

from filejob.api.downloads.zip import member_names
from filejob.jobs.model import JobResult


def result(filename: str, step: str | None = None) -> JobResult:
    return JobResult(filename=filename, step=step)


def test_names_are_the_results_names_made_unique() -> None:
    results = [
        result("page.png"),
        result("page.png"),
        result("PAGE.png"),
        result("notes"),
        result("notes"),
        result("page.png", step="small"),
        result("page.png", step="small"),
    ]
    assert member_names(results) == [
        "page.png",
        "page (2).png",
        "PAGE (3).png",
        "notes",
        "notes (2)",
        "small/page.png",
        "small/page (2).png",
    ]
