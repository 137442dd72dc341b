"""The operator's rules for imports: patterns match the whole URL with its host normalised,
deny wins over allow, and the settings read them as words or as a JSON array."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from filejob.config import Settings
from filejob.jobs.imports import ImportPolicy, InvalidSourceUrl, SourceUrlRefused
from filejob.untrusted.destinations import (
    DestinationForbidden,
    DestinationInvalid,
    parse_destination,
)
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


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://db.internal", "https://db.internal/"),
        ("https://db.internal?q=1#top", "https://db.internal/?q=1"),
        ("https://Secret.Example.com:443/x", "https://secret.example.com/x"),
        ("http://a.example:80/x", "http://a.example/x"),
        ("http://a.example:443/x", "http://a.example:443/x"),  # not http's default
        ("https://a.example:/x", "https://a.example/x"),  # an empty port is none
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("https://a.example/p/./q/../r?x=/../", "https://a.example/p/r?x=/../"),
        ("https://a.example/p/..", "https://a.example/"),
        ("https://a.example/%2e%2E/%73ecret/%2f%7E", "https://a.example/secret/%2F~"),
    ],
)
def test_urls_are_judged_as_they_are_requested(url: str, normalised: str) -> None:
    target = parse_destination(url, allow_private=True, name="source_url")
    assert target.normalised == normalised
    # What is requested of the vetted address is what was judged.
    pinned, host, _ = target.pinned("192.0.2.1")
    requested, judged = urlsplit(pinned), urlsplit(normalised)
    assert (requested.path, requested.query) == (judged.path, judged.query)
    assert host == {"Host": judged.netloc}


@pytest.mark.parametrize("url", ["https://a.example:0/", "http://a.example:65536/", "http://a:-1/"])
def test_a_port_outside_1_to_65535_is_invalid(url: str) -> None:
    with pytest.raises(DestinationInvalid, match=r"[Pp]ort"):
        parse_destination(url, allow_private=True, name="source_url")


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
