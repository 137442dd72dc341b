"""The processors this server offers: the built-ins plus those other packages register.

Third-party packages add processors through the entry-point group `filejob.processors`, each
entry naming a `Processor` subclass:

    [project.entry-points."filejob.processors"]
    ocr = "mypkg.ocr:Ocr"
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points

from filejob.processors.base import Processor

ENTRY_POINT_GROUP = "filejob.processors"
log = logging.getLogger(__name__)


def builtin_processors() -> list[Processor]:
    from filejob.processors.checksum import Checksum
    from filejob.processors.compress import Compress
    from filejob.processors.csv_to_parquet import CsvToParquet
    from filejob.processors.thumbnail import Thumbnail

    return [Checksum(), Compress(), Thumbnail(), CsvToParquet()]


def plugin_processors() -> list[Processor]:
    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            processor = loaded() if isinstance(loaded, type) else loaded
        except Exception:
            # One broken plugin must not take the server down with it.
            log.exception("cannot load processor entry point %r", entry.value)
            continue
        if not isinstance(processor, Processor):
            log.error("entry point %r is not a filejob Processor; skipped", entry.value)
            continue
        found.append(processor)
    return found


class ProcessorRegistry:
    def __init__(self, processors: Iterable[Processor]) -> None:
        self._by_name: dict[str, Processor] = {}
        for processor in processors:
            if processor.name in self._by_name:
                log.warning("processor %r registered twice; keeping the first", processor.name)
                continue
            self._by_name[processor.name] = processor

    @classmethod
    def discover(cls) -> ProcessorRegistry:
        return cls([*builtin_processors(), *plugin_processors()])

    def get(self, name: str) -> Processor | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Processor]:
        return iter(sorted(self._by_name.values(), key=lambda p: p.name))

    def __len__(self) -> int:
        return len(self._by_name)
