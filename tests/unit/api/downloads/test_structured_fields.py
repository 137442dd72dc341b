"""RFC 8941 Dictionary parsing: what RFC 9530's fields look like, and what must be refused."""

from __future__ import annotations

import pytest

from filejob.api.downloads.structured_fields import (
    InnerList,
    Item,
    ParseError,
    Token,
    parse_dictionary,
)


def values(text: str) -> dict[str, object]:
    return {
        key: member.value if isinstance(member, Item) else member
        for key, member in parse_dictionary(text).items()
    }


def test_want_digest_weights() -> None:
    assert values("sha-256=10, sha-512=3") == {"sha-256": 10, "sha-512": 3}
    assert values("  sha-256=1,sha-512=0  ") == {"sha-256": 1, "sha-512": 0}
    assert values("sha-256=1,\tsha-512=2") == {"sha-256": 1, "sha-512": 2}


def test_digest_byte_sequences() -> None:
    parsed = values("sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:, md5=:AAAA:")
    assert parsed["md5"] == b"\0\0\0"
    assert isinstance(parsed["sha-256"], bytes) and len(parsed["sha-256"]) == 32


def test_every_bare_item_type_and_parameters() -> None:
    members = parse_dictionary(
        'a=1;w=2, b, c=?0, d="q\\"x", e=tok/en:x, f=-4.5, g=(1 "two" th;p);q=?1, h=*x'
    )
    assert members["a"] == Item(1, {"w": 2})
    assert members["b"] == Item(True)
    assert members["c"] == Item(False) and members["c"].value is False
    assert members["d"] == Item('q"x')
    assert members["e"] == Item(Token("tok/en:x")) and isinstance(members["e"].value, Token)
    assert members["f"] == Item(-4.5)
    assert members["g"] == InnerList(
        (Item(1), Item("two"), Item(Token("th"), {"p": True})), {"q": True}
    )
    assert members["h"] == Item(Token("*x"))


def test_a_repeated_key_keeps_the_last_value() -> None:
    assert values("sha-256=1, sha-256=0") == {"sha-256": 0}


def test_empty_is_an_empty_dictionary() -> None:
    assert parse_dictionary("") == {} and parse_dictionary("   ") == {}


@pytest.mark.parametrize(
    "text",
    [
        "SHA-256=1",  # keys are lowercase
        "sha-256=1,",  # trailing comma
        "sha-256=1 sha-512=2",  # no comma
        "sha-256=1;;",
        "=1",
        "1a=1",
        "sha-256=",
        "sha-256=1.",  # decimal without fraction
        "sha-256=1.2345",
        "sha-256=1234567890123456",  # 16 digits
        "sha-256=-",
        "sha-256=:not base64!:",
        "sha-256=:AAAA",  # unterminated
        "sha-256=:AAA:",  # bad padding
        'a="unterminated',
        'a="bad \\n escape"',
        "a=?2",
        "a=(1 2",
        "a=(1,2)",
        "a=@",
        "a=1, b=ü",
    ],
)
def test_malformed_fields_fail_whole(text: str) -> None:
    with pytest.raises(ParseError):
        parse_dictionary(text)
