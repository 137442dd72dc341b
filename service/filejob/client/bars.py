"""Progress bars (Rich, on stderr) when attached to a terminal; otherwise nothing is drawn."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


@dataclass
class Bars:
    progress: Progress | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, total: float | None) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(label, total=total)

    def advance(self, task: TaskID | None, amount: float) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, amount)

    def update(self, task: TaskID | None, **fields: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **fields)


@contextmanager
def bars(enabled: bool) -> Iterator[Bars]:
    if not enabled:
        yield Bars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield Bars(progress)
