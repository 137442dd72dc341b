"""The unit tier runs in seconds: no app, no database, no server, no worker. A unit test that
asks for a fixture that starts one fails collection; such a test belongs in tests/api/ or
tests/system/."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

# The fixtures of tests/conftest.py that start the app or reach a database or a service, and
# what they need. A fixture that depends on one of them needs it too: pytest's closure of a
# test's fixtures includes every fixture they depend on.
NOT_IN_UNIT_TESTS = {
    "app": "the ASGI app",
    "client": "the ASGI app",
    "run_until_idle": "the app's executor",
    "settings": "a migrated database",
    "database_url": "a database",
    "postgres_template": "PostgreSQL",
    "profile_settings": "the deployment profile's services",
    "seaweedfs": "a SeaweedFS server",
}


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    made = yield
    for item in made if isinstance(made, list) else [made]:
        needs = [n for n in getattr(item, "fixturenames", ()) if n in NOT_IN_UNIT_TESTS]
        if needs:
            raise collector.CollectError(
                f"{item.nodeid} is a unit test but asks for `{needs[0]}`, which needs "
                f"{NOT_IN_UNIT_TESTS[needs[0]]}: move it to tests/api/ or tests/system/"
            )
    return made
