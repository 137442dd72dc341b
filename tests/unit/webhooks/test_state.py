"""A callback's state is one set of strings: the enum's values, the column's, the API's."""

from __future__ import annotations

from filejob.api.schemas import CallbackOut
from filejob.jobs.model import Job
from filejob.jobs.states import CallbackState

WIRE = ["pending", "delivered", "failed"]


def test_the_column_stores_the_values_not_the_names() -> None:
    column = Job.__table__.c.callback_state
    assert [state.value for state in CallbackState] == WIRE
    assert column.type.enums == WIRE  # type: ignore[attr-defined]
    assert column.type.length == 16 and column.nullable  # type: ignore[attr-defined]


def test_the_api_shows_the_values() -> None:
    for state in CallbackState:
        shown = CallbackOut(
            url="https://hooks.example.com/x",
            state=state,
            attempts=1,
            last_result="200",
            delivered_at=None,
        )
        assert shown.model_dump(mode="json")["state"] == state.value
    schema = CallbackOut.model_json_schema()
    assert schema["$defs"]["CallbackState"]["enum"] == WIRE
