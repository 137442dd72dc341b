"""Storage keys name their job (and a result key its attempt), whichever output they hold."""

from __future__ import annotations

import pytest

from filejob.jobs.storage_keys import attempt_of, input_key, job_of, result_key


@pytest.mark.parametrize("index", [0, 1, 2, 999])
def test_every_result_key_names_its_job_and_attempt(index: int) -> None:
    key = result_key("AbC_d-1", 3, index)
    assert key.startswith("results/AbC_d-1.3")
    assert job_of(key) == "AbC_d-1"
    assert attempt_of(key) == 3


def test_outputs_of_one_attempt_have_keys_of_their_own() -> None:
    keys = {result_key("job", 1, index) for index in range(5)} | {result_key("job", 2)}
    assert len(keys) == 6
    assert result_key("job", 1) == "results/job.1"  # the first output, as before


@pytest.mark.parametrize(
    "key", [input_key("job"), "uploads/job.1", "results/job", "results/job.x.1"]
)
def test_other_keys_name_no_attempt(key: str) -> None:
    assert attempt_of(key) is None
