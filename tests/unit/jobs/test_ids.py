"""Job ids: random, URL-safe, and never mistaken for a command-line option."""

from __future__ import annotations

import pytest

from filejob.jobs import service


def test_an_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["-leading-dash-00000000", "fine-id-0000000000000a"])
    monkeypatch.setattr(service.secrets, "token_urlsafe", lambda n: next(drawn))
    assert service.new_job_id() == "fine-id-0000000000000a"


def test_ids_are_22_url_safe_characters() -> None:
    ids = {service.new_job_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(
        set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )
