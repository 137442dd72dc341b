"""Issue 13's goals, each stated as met or not met by one run's medians, so that the output of
a run says where filejob stands."""

from __future__ import annotations

from dataclasses import dataclass

from anchor_table import Results, median

Figure = tuple[str, str]  # (system, figure key)


@dataclass(frozen=True)
class Goal:
    """`ours` / `theirs` ≥ `at_least` (a throughput goal); or, without `at_least`, `ours` ≤
    `theirs` (a cost or latency goal, in `unit`); or, without `theirs`, `ours` ≤ `limit`."""

    text: str
    ours: Figure
    theirs: Figure | None = None
    at_least: float | None = None
    limit: float | None = None
    unit: str = ""

    def verdict(self, results: Results) -> str:
        ours = median(results, *self.ours)
        theirs = median(results, *self.theirs) if self.theirs else self.limit
        if ours is None or theirs is None:
            return f"{self.text}: not measured in this run"
        if self.at_least is not None:
            ratio = ours / theirs
            return f"{self.text}: {ratio:.2f}x — {_met(ratio >= self.at_least)}"
        top = max(ours, theirs)
        decimals = 0 if top >= 100 else 2 if top >= 1 else 3
        shown = f"{ours:,.{decimals}f} {self.unit}".rstrip()
        if self.theirs:
            shown += f" vs {theirs:,.{decimals}f} {self.unit}".rstrip()
        return f"{self.text}: {shown} — {_met(ours <= theirs)}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _throughput(text: str, ours: Figure, theirs: Figure, at_least: float) -> Goal:
    return Goal(f"{text} ≥ {at_least:.2f}x", ours, theirs, at_least=at_least)


GOALS = [
    _throughput(
        "poll req/s vs bare FastAPI + SQLite", ("filejob", "polls"), ("sqlite", "polls"), 0.5
    ),
    _throughput("poll req/s vs Celery", ("filejob", "polls"), ("celery", "polls"), 1.3),
    Goal("poll p99 ≤ Celery's", ("filejob", "poll_p99"), ("celery", "poll_p99"), unit="ms"),
    Goal(
        "conditional poll (304) CPU ≤ a poll's",
        ("filejob", "cpu_etag_poll"),
        ("filejob", "cpu_poll"),
        unit="ms",
    ),
    _throughput(
        "small checksum jobs/s vs Celery, embedded", ("filejob", "jobs"), ("celery", "jobs"), 1.0
    ),
    _throughput(
        "small checksum jobs/s vs Celery, cluster, 1 worker process",
        ("filejob-pg1", "jobs"),
        ("celery-c1", "jobs"),
        1.0,
    ),
    _throughput(
        "small checksum jobs/s vs Celery, cluster, 2 worker processes",
        ("filejob-pg2", "jobs"),
        ("celery", "jobs"),
        1.0,
    ),
    Goal(
        "CPU per small job ≤ Celery's, embedded",
        ("filejob", "cpu_job"),
        ("celery", "cpu_job"),
        unit="ms",
    ),
    Goal(
        "CPU per small job ≤ Celery's, cluster, 1 worker process",
        ("filejob-pg1", "cpu_job"),
        ("celery-c1", "cpu_job"),
        unit="ms",
    ),
    Goal(
        "CPU per small job ≤ Celery's, cluster, 2 worker processes",
        ("filejob-pg2", "cpu_job"),
        ("celery", "cpu_job"),
        unit="ms",
    ),
    _throughput(
        "small compress (gzip) jobs/s vs Celery",
        ("filejob", "gzip_jobs"),
        ("celery", "gzip_jobs"),
        0.7,
    ),
    _throughput("submits/s vs Celery", ("filejob", "submits"), ("celery", "submits"), 1.0),
    _throughput(
        "small result downloads/s vs Celery", ("filejob", "downloads"), ("celery", "downloads"), 1.0
    ),
    _throughput(
        "1 GiB download vs nginx sendfile", ("filejob", "big_down"), ("nginx", "big_down"), 0.95
    ),
    _throughput(
        "1 GiB upload vs bare of the same durability",
        ("filejob", "big_up"),
        ("bare", "big_up"),
        0.9,
    ),
    Goal(
        "RSS flat during a 1 GiB upload (growth ≤ 32 MiB)",
        ("filejob", "rss_growth"),
        limit=32.0,
        unit="MiB",
    ),
    Goal("1.00 bytes written per byte uploaded (≤ 1.01)", ("filejob", "wchar"), limit=1.01),
    Goal(
        "poll p99 while two CPU-heavy jobs run ≤ Celery's",
        ("filejob", "busy_p99"),
        ("celery", "busy_p99"),
        unit="ms",
    ),
]


def goals(results: Results) -> str:
    lines = [goal.verdict(results) for goal in GOALS]
    met = sum(line.endswith("— met") for line in lines)
    measured = sum(not line.endswith("not measured in this run") for line in lines)
    head = f"Issue 13's goals in this run: {met} of {measured} measured met ({len(lines)} in all)."
    return "\n".join([head, "", *(f"- {line}" for line in lines)])
