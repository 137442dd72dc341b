"""Where a resumable upload's URL is kept between runs: the same `filejob submit`, run again
after Ctrl+C or a crash, finds the upload it began and resumes it instead of starting over.

This is tus clients' "URL storage" (as tusclient's `FileStorage` and tus-js-client's
`urlStorage` keep it), one small JSON file per file and server in the user's cache directory:
`$XDG_CACHE_HOME/filejob/uploads/` (else
`~/.cache/filejob/uploads/`; `~/Library/Caches/filejob/uploads/` on macOS,
`%LOCALAPPDATA%\\filejob\\Cache\\uploads\\` on Windows). One file per upload, named by its
fingerprint, means two commands running at once never write the same file unless they send
the same file to the same server; each is written whole to a temporary name and renamed, so a
crash never leaves half of one. (tusclient's `FileStorage` would add TinyDB, and through
tuspy requests and aiohttp, to hold one string per file.)

The fingerprint is that of everything that makes the upload the same one: the server's URL,
the file's absolute path, size and modification time, the job's fields (a re-run with another
processor or params must not finish an upload that asks for the old ones), and which
occurrence of the file on the command line it is (`submit a.bin a.bin` makes two jobs). A file
changed since stops matching, and its upload starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STALE_AFTER = 30 * 86400.0  # seconds; far past any upload's expiry on the server


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The user's cache directory for filejob (XDG Base Directory: an XDG_CACHE_HOME that is
    not an absolute path is ignored)."""
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "filejob"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "filejob" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "filejob"
    return Path.home() / ".cache" / "filejob"


def fingerprint(server: str, path: Path, fields: Mapping[str, Any], occurrence: int = 0) -> str:
    """The key of `path`'s upload to `server` with the job's `fields` (see the module)."""
    stat = path.stat()
    facts = {
        "server": server.rstrip("/"),
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "fields": dict(fields),
        "occurrence": occurrence,
    }
    encoded = json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


class UploadUrls:
    """Upload URLs by fingerprint, one tus `FileStorage` each under `root`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else cache_dir() / "uploads"

    def _store(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            kept = json.loads(self._store(key).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # unreadable or not ours: start over
            self._store(key).unlink(missing_ok=True)
            return None
        url = kept.get("url") if isinstance(kept, dict) else None
        return url if isinstance(url, str) else None

    def put(self, key: str, url: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._store(key)
        temporary = target.with_name(f".{target.name}.{os.getpid()}")
        temporary.write_text(json.dumps({"url": url}))
        os.replace(temporary, target)

    def forget(self, key: str) -> None:
        self._store(key).unlink(missing_ok=True)

    def prune(self, older_than: float = STALE_AFTER) -> None:
        """Forget uploads begun long ago: the server has let them expire."""
        cutoff = time.time() - older_than
        try:
            stores = list(self.root.glob("*.json"))
        except OSError:
            return
        for store in stores:
            try:
                if store.stat().st_mtime < cutoff:
                    store.unlink()
            except OSError:
                continue  # gone already, or not ours to remove
