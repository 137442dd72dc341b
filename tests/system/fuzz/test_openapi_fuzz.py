"""Property-based fuzzing of the served OpenAPI schema with schemathesis.

Each operation of `/openapi.json` is one test: up to `MAX_EXAMPLES` requests that schemathesis
generates from the schema, valid and invalid ones alike, with a fixed seed. They go with a
valid API key to a real `filejob serve` (see conftest.py), and no response may be a 5xx, break
the documented response schema, or have an undocumented content type.

The tests are plain pytest parametrization over hypothesis tests built from schemathesis
strategies, not schemathesis's own pytest plugin (`@schema.parametrize()`): with pytest 9.2,
`schemathesis.pytest.from_fixture` fails (`'Function' object has no attribute '_nodeid'`) and
an eager `@schema.parametrize()` gives every operation the same node id.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from filejob.app import create_app
from filejob.config import Settings
from tests.support.fuzz import FuzzServer

# Fixed, so that a run can be replayed exactly; each operation gets its own seed derived from
# it. Change it locally to explore other inputs.
SEED = 20_260_517
MAX_EXAMPLES = 40  # per operation, valid and invalid requests together
# Only checks of the contract; none that judge business rules (which inputs must be accepted
# or refused, which status codes are used).
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
PROCESSORS = ("checksum", "compress", "thumbnail", "csv-to-parquet")

# pytest needs the operations at collection time, before any server runs, so the schema comes
# from the app's own code; `test_served_schema_is_the_fuzzed_one` checks that the server
# serves exactly this document at /openapi.json.
SPEC = create_app(Settings(data_dir="unused", auth="off")).openapi()
schema = schemathesis.openapi.from_dict(SPEC, config=schemathesis.Config(seed=SEED))
LOADED = list(schema.get_all_operations())
assert all(isinstance(result, Ok) for result in LOADED), LOADED  # every operation is valid
OPERATIONS = [result.ok() for result in LOADED if isinstance(result, Ok)]

# Set by the `server` fixture before any case is generated (the hooks below run lazily).
SERVER: list[FuzzServer] = []


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: Any
) -> st.SearchStrategy[Any]:
    """Aim at real jobs too, not only at ids that are certainly unknown (404)."""
    if not isinstance(path_parameters, dict) or "job_id" not in path_parameters:
        return st.just(path_parameters)
    server = SERVER[0]
    deleting = context.operation is not None and context.operation.method.upper() == "DELETE"
    ids = server.disposable if deleting else server.kept
    return st.one_of(
        st.just(path_parameters),
        st.sampled_from(ids).map(lambda job_id: {**path_parameters, "job_id": job_id}),
    )


# The schema types these as plain strings, so random strings would almost never reach the
# code that parses them: these strategies also send strings in the server's own formats.
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=2**80).map(str),  # past SQLite's 64-bit integers
    # Digits of other scripts, as str.isdigit() knows them: "١٢", "²", "①".
    st.text(st.characters(categories=["Nd", "No"]).filter(str.isdigit), min_size=1, max_size=12),
)
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["gzip", "zstd", "jpeg", "png", "webp", "snappy", "none", ",", "\t"]),
)
PARAMS = st.one_of(
    st.dictionaries(
        st.sampled_from(["format", "level", "width", "height", "delimiter", "compression", "x"]),
        JSON_VALUES,
        max_size=3,
    ).map(json.dumps),
    # Numbers past int()'s 4300-digit limit, which json.loads raises as a plain ValueError.
    st.sampled_from(["level", "width", "x"]).map(lambda key: f'{{"{key}": {"9" * 5000}}}'),
)


@schema.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    """Also send cursors (`s<seq>`) and link expiries (unix seconds) that look like the
    server's own."""
    if not isinstance(query, dict):
        return st.just(query)
    operation = context.operation
    names = [n for n in ("cursor", "expires") if operation is not None and n in operation.query]
    if not names:
        return st.just(query)
    formatted = {"cursor": NUMBERS.map(lambda n: f"s{n}"), "expires": NUMBERS}
    return st.one_of(
        st.just(query),
        st.fixed_dictionaries({name: formatted[name] for name in names}).map(
            lambda values: {**query, **values}
        ),
    )


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Also name real processors, with params that are JSON objects, so that uploads get past
    `unknown_processor` into params validation, sniffing and storage. Never with a callback:
    an accepted job would make the server call out to whatever host was generated."""
    if not isinstance(body, dict) or "processor" not in body:
        return st.just(body)
    rest = {k: v for k, v in body.items() if k != "callback_url"}
    return st.one_of(
        st.just(body),
        st.builds(
            lambda name, params: {**rest, "processor": name, **params},
            st.sampled_from(PROCESSORS),
            st.one_of(st.just({}), PARAMS.map(lambda params: {"params": params})),
        ),
    )


# Streams that stay open as long as the client does: a request that is accepted is checked by
# its status and headers, then closed; a refusal is a whole problem document, checked as usual.
ENDLESS = {"GET /v1/events"}


def check_endless(case: schemathesis.Case, server: FuzzServer, session: requests.Session) -> None:
    kwargs = case.as_transport_kwargs(base_url=server.url, headers=server.auth)
    with session.request(**kwargs, stream=True, timeout=30) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            assert response.status_code == 200, response.status_code
            return
        response.content  # noqa: B018 - read the refusal whole before checking it
        case.validate_response(response, checks=CHECKS)


def operation_seed(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{SEED}:{label}".encode(), digest_size=8).digest())


@pytest.fixture(scope="module")
def server(fuzz_server: FuzzServer) -> Iterator[FuzzServer]:
    SERVER.append(fuzz_server)
    try:
        yield fuzz_server
    finally:
        SERVER.clear()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:  # keep-alive across the examples
        yield session


def test_served_schema_is_the_fuzzed_one(server: FuzzServer) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == SPEC


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_openapi_fuzz(
    operation: schemathesis.APIOperation, server: FuzzServer, session: requests.Session
) -> None:
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        # Invalid requests too; none exist for some operations (any string is a valid job_id),
        # and hypothesis then discards these draws.
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @seed(operation_seed(operation.label))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the explicit seed above wins; this is the fallback
        database=None,  # no replay of earlier failures: every run sends the same requests
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],  # shrink: smaller reproductions
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        if operation.label in ENDLESS:
            check_endless(case, server, session)
            return
        case.call_and_validate(
            base_url=server.url, session=session, headers=server.auth, checks=CHECKS, timeout=30
        )

    try:
        fuzz()
    except BaseException:
        # The server's side of a failure (the traceback of a 500), shown with the test's output.
        time.sleep(0.5)  # uvicorn logs the traceback just after it has sent the 500
        print(server.log.read_text(errors="replace")[-6000:])
        raise
