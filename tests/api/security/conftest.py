"""The hostile-input catalog's fixture: the state the server keeps, taken before the test sends
anything (helpers: tests/support/snapshots.py, multipart.py, problems.py)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from filejob.config import Settings
from tests.support.snapshots import Snapshot, take_snapshot


@pytest.fixture
def before(app: FastAPI, settings: Settings) -> Snapshot:
    """The state once the app has started (and before the test sends anything)."""
    return take_snapshot(settings.data_dir)
