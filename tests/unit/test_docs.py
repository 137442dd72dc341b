"""The README's settings table says exactly what service/filejob/config.py does."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from filejob.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_matches_settings() -> None:
    text = README.read_text()
    table = text.split("<!-- settings-table")[1].split("<!-- /settings-table -->")[0]
    documented = dict(re.findall(r"^\| `FILEJOB_(\w+)` \| (.+?) \|", table, flags=re.M))
    fields = Settings.model_fields
    assert set(documented) == {name.upper() for name in fields}
    for name, field in fields.items():
        shown = documented[name.upper()]
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if field.default_factory is not None or default in ("", None):
            continue
        if isinstance(default, bool):
            expected = str(default).lower()
        elif isinstance(default, float) and default.is_integer():
            expected = str(int(default))
        else:
            expected = str(default)
        assert shown.startswith(f"`{expected}`"), (name, shown)
