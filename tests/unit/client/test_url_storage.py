"""Where resumable uploads' URLs are kept (client/url_storage.py): the cache directory, what
makes two uploads the same one, and a store left broken by a crash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from filejob.client.url_storage import UploadUrls, cache_dir, fingerprint


def test_the_cache_is_under_xdg_cache_home_when_it_is_absolute(tmp_path: Path) -> None:
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "filejob"
    relative = cache_dir({"XDG_CACHE_HOME": "relative/cache"})
    assert relative.is_absolute() and "relative" not in relative.parts


def test_the_default_store_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert UploadUrls().root == tmp_path / "filejob" / "uploads"


def test_the_fingerprint_is_the_server_file_fields_and_occurrence(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    fields = {"processor": "checksum"}
    same = fingerprint("http://h:1/", path, fields)
    assert fingerprint("http://h:1", path, dict(fields)) == same
    others = {
        fingerprint("http://h:2", path, fields),
        fingerprint("http://h:1", path, {"processor": "compress"}),
        fingerprint("http://h:1", path, fields, occurrence=1),
    }
    copy = tmp_path / "b.bin"
    copy.write_bytes(b"x" * 100)
    others.add(fingerprint("http://h:1", copy, fields))
    assert same not in others and len(others) == 4
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = fingerprint("http://h:1", path, fields)
    path.write_bytes(b"x" * 101)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert len({same, touched, fingerprint("http://h:1", path, fields)}) == 3


def test_urls_are_kept_across_instances_and_forgotten(tmp_path: Path) -> None:
    UploadUrls(tmp_path).put("k1", "http://h/v1/uploads/1")
    UploadUrls(tmp_path).put("k2", "http://h/v1/uploads/2")
    urls = UploadUrls(tmp_path)
    assert urls.get("k1") == "http://h/v1/uploads/1"
    urls.forget("k1")
    assert urls.get("k1") is None and urls.get("k2") == "http://h/v1/uploads/2"
    assert urls.get("never") is None
    assert not (tmp_path / "never.json").exists()  # a look-up writes nothing


def test_a_store_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "k.json").write_text('{"_default": {"1": {"key": "k", "url": "http://h/v1/up')
    assert UploadUrls(tmp_path).get("k") is None
    assert not (tmp_path / "k.json").exists()


def test_prune_forgets_uploads_begun_long_ago(tmp_path: Path) -> None:
    urls = UploadUrls(tmp_path)
    urls.put("old", "http://h/v1/uploads/old")
    urls.put("new", "http://h/v1/uploads/new")
    month_ago = time.time() - 31 * 86400
    os.utime(tmp_path / "old.json", (month_ago, month_ago))
    urls.prune()
    assert urls.get("old") is None and urls.get("new") is not None
    UploadUrls(tmp_path / "missing").prune()  # nothing kept yet: nothing to do
