"""The operator's rules for imports: patterns match the whole URL with its host normalised,
deny wins over allow, and the settings read them as words or as a JSON array."""

from __future__ import annotations

import pytest

from filejob.config import Settings
from filejob.jobs.imports import ImportPolicy, InvalidSourceUrl, SourceUrlRefused
from filejob.untrusted.destinations import DestinationForbidden
from filejob.untrusted.downloads import UrlRules

ALLOW = [r"https://files\.example\.com/.*"]


@pytest.mark.parametrize(
    ("url", "taken"),
    [
        ("https://files.example.com/a.pdf", True),
        ("https://FILES.Example.com./a.pdf", True),  # judged as it is looked up
        ("https://files.example.com.evil.test/a.pdf", False),  # the whole URL must match
        ("https://evil.test/?https://files.example.com/", False),
        ("http://files.example.com/a.pdf", False),
        ("https://files.example.com/secret/a.pdf", False),  # denied
    ],
)
def test_patterns_match_the_whole_normalised_url(url: str, taken: bool) -> None:
    rules = UrlRules.of(ALLOW, [r".*/secret/.*"], allow_private=False)
    if taken:
        assert rules.judge(url).host == "files.example.com"
    else:
        with pytest.raises(DestinationForbidden):
            rules.judge(url)


def test_without_patterns_any_public_url_is_taken_and_no_private_one() -> None:
    rules = UrlRules()
    assert rules.judge("http://example.org/x").port == 80
    with pytest.raises(DestinationForbidden):
        rules.judge("http://192.168.1.1/x")
    assert UrlRules(allow_private=True).judge("http://192.168.1.1/x").host == "192.168.1.1"


def test_the_policy_says_which_refusal_it_is() -> None:
    policy = ImportPolicy(UrlRules.of([], [r".*\.internal/.*"], allow_private=False), 10)
    with pytest.raises(InvalidSourceUrl):
        policy.check("file:///etc/passwd")
    with pytest.raises(SourceUrlRefused):
        policy.check("http://db.internal/dump")
    with pytest.raises(SourceUrlRefused):
        policy.check("http://[::1]/")


@pytest.mark.parametrize(
    ("raw", "patterns"),
    [
        (
            r"https://a\.example/.*  https://b\.example/.*",
            [r"https://a\.example/.*", r"https://b\.example/.*"],
        ),
        (r'["https://a\\.example/.*"]', [r"https://a\.example/.*"]),
        ("", []),
    ],
)
def test_settings_read_patterns_as_words_or_json(
    raw: str, patterns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILEJOB_IMPORT_ALLOW", raw)
    assert Settings().import_allow == patterns


def test_a_pattern_that_is_no_regular_expression_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILEJOB_IMPORT_DENY", "(unclosed")
    with pytest.raises(ValueError, match="not a regular expression"):
        Settings()
