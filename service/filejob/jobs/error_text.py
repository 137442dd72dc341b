"""Error text fit for a client: the server's paths taken out.

A processor's error message becomes the job's `error.message`, which the job JSON, the result
endpoint's problem detail and the webhook all carry. Library errors name files freely (Pillow:
"cannot identify image file <_io.BufferedReader name='/srv/filejob/blobs/inputs/…'>", an
`OSError`'s filename, a traceback's source file), and third-party processors are no better, so
the runner passes every such message through `scrub_paths` on its way to the job row: what the
error says stays, where the server keeps things does not.
"""

from __future__ import annotations

import functools
import os
import re
import site
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PLACEHOLDER = "<path>"
FILE = "<file>"

# Characters of a path segment, as paths in messages have them (no spaces: a path with spaces
# is only recognised whole when it is known).
_SEGMENT = r"[\w.@+~-]"
# The rest of a path after a known folder: more segments.
_CONTINUATION = rf"(?:/{_SEGMENT}*)*"
# Any other absolute path: a slash that does not follow a word, a dot or another slash (so not
# "image/png", "3/4", "MB/s" nor the "//host/path" of a URL), then a segment; or "~/".
_ABSOLUTE = re.compile(rf"(?<![\w./])~?/{_SEGMENT}+{_CONTINUATION}")
_FILE_URL = re.compile(rf"\bfile:/+{_SEGMENT}*{_CONTINUATION}")
# The repr of an open file: <_io.BufferedReader name='/a/b'>, <_io.TextIOWrapper name=3
# mode='r' encoding='UTF-8'>; its name is a path or a descriptor number.
_FILE_REPR = re.compile(
    r"<_?[\w.]+ name=(?P<name>'[^']*'|\"[^\"]*\"|-?\d+)(?: \w+=(?:'[^']*'|\"[^\"]*\"))*>"
)


@functools.cache
def _installation() -> tuple[str, ...]:
    """Where Python, the installed packages and the temp folder are: named by tracebacks and
    by errors of the libraries installed there."""
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, tempfile.gettempdir()}
    places.update(sysconfig.get_paths().values())
    places.update(site.getsitepackages())
    places.add(site.getusersitepackages())
    places.add(os.path.expanduser("~"))
    return tuple(places)


def _forms(path: str) -> set[str]:
    """`path` as given and absolute, without a trailing slash; none for "/" or for a relative
    path of one segment (a bare word like "storage" is not worth replacing in prose)."""
    forms = set()
    for form in (path, os.path.abspath(path)):
        form = form.rstrip("/")
        if form and (form.startswith("/") or "/" in form):
            forms.add(form)
    return forms


def scrub_paths(
    text: str, named: Mapping[str, str] | None = None, folders: Iterable[str] = ()
) -> str:
    """`text` without server paths. Each path in `named` becomes its name (the job's input
    "<input>", say), even inside a file object's repr; a file repr of anything else becomes
    "<file>"; a path under one of `folders`, under the Python installation or the temp folder,
    and any other absolute path, becomes "<path>"."""
    names: dict[str, str] = {}
    for path, name in (named or {}).items():
        names.update(dict.fromkeys(_forms(path), name))

    def file_repr(match: re.Match[str]) -> str:
        name = match["name"].strip("'\"")
        return next((names[form] for form in _forms(name) if form in names), FILE)

    text = _FILE_REPR.sub(file_repr, text)
    known = dict(names)
    for folder in (*folders, *_installation()):
        for form in _forms(folder):
            known.setdefault(form, PLACEHOLDER)
    if known:
        # Longest first, so that a file is named before the folder it is in; each swallows
        # the rest of the path after it, and never a longer name ("/data" in "/database").
        alternatives = "|".join(re.escape(path) for path in sorted(known, key=len, reverse=True))
        pattern = re.compile(rf"(?<!{_SEGMENT})({alternatives})(?!{_SEGMENT}){_CONTINUATION}")
        text = pattern.sub(lambda match: known[match[1]], text)
    text = _FILE_URL.sub(PLACEHOLDER, text)
    return _ABSOLUTE.sub(PLACEHOLDER, text)


def folders_of(*paths: str | None) -> list[str]:
    """The folders that hold `paths`, up to (not including) the root: the data folder and the
    temp folder when given the job's input and output."""
    folders: list[str] = []
    for path in paths:
        if not path:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        while parent not in ("/", ""):
            folders.append(parent)
            parent = os.path.dirname(parent)
    return folders


@dataclass(frozen=True)
class AttemptFiles:
    """Where an attempt's input and output are (when they have a path): named in its error
    message as "<input>" and "<output>", and their folders not at all."""

    input: str | None
    output: str | None

    @classmethod
    def of(cls, *files: object) -> AttemptFiles:
        """From open files: the `name` of each, when it is a path."""
        names = [getattr(file, "name", None) for file in files]
        paths = [name if isinstance(name, str) else None for name in names]
        return cls(*paths)

    def scrub(self, text: str) -> str:
        """`text` fit for a client: no server path in it (`scrub_paths`)."""
        pairs = ((self.input, "<input>"), (self.output, "<output>"))
        named = {path: name for path, name in pairs if path}
        return scrub_paths(text, named, folders_of(self.input, self.output))
