"""Result names: decided in one place, under a lock; never shared by two results of a run,
never an existing file unless --clobber."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from filejob.client.names import (
    DestinationExists,
    Destinations,
    NotADirectory,
    numbered,
    safe_name,
)


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("same.bin.gz", 1, "same (1).bin.gz"),
        ("archive.tar.zst", 2, "archive (2).tar.zst"),
        ("report.final.pdf", 1, "report.final (1).pdf"),
        ("README", 1, "README (1)"),
        (".env", 1, ".env (1)"),
    ],
)
def test_numbered_keeps_the_extensions(name: str, n: int, expected: str) -> None:
    assert numbered(name, n) == expected


@pytest.mark.parametrize(
    ("given", "safe"), [("a/b/c.txt", "c.txt"), ("..", "result"), ("", "result"), ("x\\y", "y")]
)
def test_a_server_given_name_is_never_a_path(given: str, safe: str) -> None:
    assert safe_name(given) == safe


def test_concurrent_claims_of_one_name_get_distinct_files(tmp_path: Path) -> None:
    places = Destinations(tmp_path / "out", into_dir=True, clobber=False)
    claimed: list[Path] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def claim() -> None:
        start.wait()
        path = places.claim("same.bin.gz")
        with lock:
            claimed.append(path)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(p.name for p in claimed)
    assert len(set(names)) == 16
    assert "same.bin.gz" in names and "same (15).bin.gz" in names


def test_an_existing_file_is_refused_unless_clobber(tmp_path: Path) -> None:
    (tmp_path / "r.gz").write_bytes(b"mine")
    with pytest.raises(DestinationExists, match=r"r\.gz exists"):
        Destinations(tmp_path / "r.gz", into_dir=False, clobber=False).check_known()
    Destinations(tmp_path / "r.gz", into_dir=False, clobber=True).check_known()
    places = Destinations(tmp_path, into_dir=True, clobber=False)
    with pytest.raises(DestinationExists):
        places.claim("r.gz")
    # Its name stays taken: the next result of that name is numbered, not refused.
    assert places.claim("r.gz") == tmp_path / "r (1).gz"
    assert Destinations(tmp_path, into_dir=True, clobber=True).claim("r.gz") == tmp_path / "r.gz"


@pytest.mark.parametrize("output", ["plain.txt", "plain.txt/results"])
@pytest.mark.parametrize("clobber", [False, True])
def test_a_file_where_the_results_directory_goes_is_refused_up_front(
    tmp_path: Path, output: str, clobber: bool
) -> None:
    """Results go into a directory (several files, `-o DIR/`): a file there, or where one of
    its parents would be, is refused before anything is sent, and not even `--clobber` makes
    it a directory. Claiming a name there refuses it too, rather than failing in mkdir."""
    (tmp_path / "plain.txt").write_bytes(b"mine")
    places = Destinations(tmp_path / output, into_dir=True, clobber=clobber)
    with pytest.raises(NotADirectory, match=r"plain\.txt is not a directory") as refused:
        places.check_known()
    assert refused.value.path == tmp_path / "plain.txt"
    with pytest.raises(DestinationExists, match="is not a directory"):
        places.claim("r.gz")
    assert (tmp_path / "plain.txt").read_bytes() == b"mine"


def test_a_results_directory_may_be_new_or_exist(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    for output in ("there", "new/deeper"):
        places = Destinations(tmp_path / output, into_dir=True, clobber=False)
        places.check_known()
        assert places.claim("r.gz") == tmp_path / output / "r.gz"
