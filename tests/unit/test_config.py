"""Settings refuse unsafe authentication set-ups; the default follows the bind address."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from filejob.config import Settings

SECRET = "x" * 32


@pytest.mark.parametrize(
    ("values", "auth"),
    [
        ({"host": "127.0.0.1"}, "off"),
        ({"host": "::1"}, "off"),
        ({"host": "localhost"}, "off"),
        ({"host": "0.0.0.0", "secret_key": SECRET}, "required"),
        ({"host": "10.1.2.3", "secret_key": SECRET}, "required"),
        ({"host": "0.0.0.0", "auth": "off", "allow_public_without_auth": True}, "off"),
        ({"host": "127.0.0.1", "auth": "required", "secret_key": SECRET}, "required"),
    ],
)
def test_auth_mode(values: dict[str, Any], auth: str) -> None:
    assert Settings(**values).auth == auth


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"host": "0.0.0.0", "auth": "off"}, "without authentication"),
        ({"host": "example.com", "auth": "off"}, "without authentication"),
        ({"auth": "required", "secret_key": "changeme"}, "placeholder"),
        ({"auth": "required", "secret_key": "CHANGEME"}, "placeholder"),
        ({"auth": "required", "secret_key": "y" * 31}, "placeholder"),
        ({"auth": "required", "secret_key": f"{SECRET},short"}, "placeholder"),
    ],
)
def test_unsafe_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_secret_keys_rotate_in_order() -> None:
    settings = Settings(auth="required", secret_key=f"{'a' * 32}, {'b' * 40}")
    assert settings.secret_keys == [b"a" * 32, b"b" * 40]
    assert "a" * 32 not in repr(settings)  # secrets stay out of logs and tracebacks
