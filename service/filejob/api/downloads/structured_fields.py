"""Parsing RFC 8941 Structured Field Dictionaries, as RFC 9530's digest fields are written.

Follows the parsing algorithms of RFC 8941 §4.2 (Dictionary, Item, Inner List, Parameters and
every bare item type), because a field that fails them must be ignored whole rather than half
understood. A small module rather than a dependency: only Dictionaries are needed here.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field
from typing import TypeAlias


class Token(str):
    """A Token bare item (`sha-256`-like words without quotes), told apart from a String."""


BareItem: TypeAlias = int | float | str | bytes | bool
Parameters: TypeAlias = dict[str, BareItem]


@dataclass(frozen=True)
class Item:
    value: BareItem
    params: Parameters = field(default_factory=dict)


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: Parameters = field(default_factory=dict)


Member: TypeAlias = Item | InnerList


class ParseError(ValueError):
    """The field is not a valid Structured Field: RFC 8941 says to ignore all of it."""


_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_START = _LCALPHA | {"*"}
_KEY_CHARS = _KEY_START | frozenset(string.digits + "_-.")
_TOKEN_START = frozenset(string.ascii_letters + "*")
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | {":", "/"}
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


def parse_dictionary(value: str) -> dict[str, Member]:
    """The members of a Dictionary field value (field lines already joined with `,`)."""
    parser = _Parser(value)
    parser.skip(" ")
    members = parser.dictionary()
    parser.skip(" ")
    if not parser.done():
        raise ParseError("trailing characters")
    return members


class _Parser:
    """A cursor over the text: every step moves `pos`, so parsing is linear in its length."""

    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise ParseError("not ASCII")
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self) -> str:
        char = self.peek()
        self.pos += len(char)
        return char

    def skip(self, chars: str) -> None:
        while not self.done() and self.text[self.pos] in chars:
            self.pos += 1

    def run(self, allowed: frozenset[str]) -> str:
        """The first character (already checked) and the allowed ones after it."""
        start = self.pos
        self.pos += 1
        while not self.done() and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def dictionary(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        while not self.done():
            key = self.key()
            if self.peek() == "=":
                self.take()
                members[key] = self.inner_list() if self.peek() == "(" else self.item()
            else:
                members[key] = Item(True, self.parameters())
            self.skip(" \t")
            if self.done():
                break
            if self.take() != ",":
                raise ParseError("expected a comma between members")
            self.skip(" \t")
            if self.done():
                raise ParseError("trailing comma")
        return members

    def inner_list(self) -> InnerList:
        self.take()  # "("
        items: list[Item] = []
        while not self.done():
            self.skip(" ")
            if self.peek() == ")":
                self.take()
                return InnerList(tuple(items), self.parameters())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise ParseError("bad inner list")
        raise ParseError("unterminated inner list")

    def item(self) -> Item:
        return Item(self.bare_item(), self.parameters())

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.take()
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.take()
                value = self.bare_item()
            params[key] = value
        return params

    def key(self) -> str:
        if self.done() or self.peek() not in _KEY_START:
            raise ParseError("bad key")
        return self.run(_KEY_CHARS)

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit():
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char and char in _TOKEN_START:
            return Token(self.run(_TOKEN_CHARS))
        raise ParseError("bad item")

    def number(self) -> int | float:
        sign = -1 if self.peek() == "-" else 1
        if sign < 0:
            self.take()
        start = self.pos
        self.skip("0123456789.")
        whole, dot, fraction = self.text[start : self.pos].partition(".")
        if not whole or "." in fraction:
            raise ParseError("bad number")
        if not dot:
            if len(whole) > 15:
                raise ParseError("integer too long")
            return sign * int(whole)
        if len(whole) > 12 or not 1 <= len(fraction) <= 3:
            raise ParseError("bad decimal")
        return sign * float(f"{whole}.{fraction}")

    def string(self) -> str:
        self.take()  # '"'
        out: list[str] = []
        while not self.done():
            char = self.take()
            if char == "\\":
                escaped = self.take()
                if escaped not in ('"', "\\"):
                    raise ParseError("bad escape")
                out.append(escaped)
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise ParseError("bad string character")
            else:
                out.append(char)
        raise ParseError("unterminated string")

    def byte_sequence(self) -> bytes:
        self.take()  # ":"
        end = self.text.find(":", self.pos)
        if end < 0:
            raise ParseError("unterminated byte sequence")
        encoded, self.pos = self.text[self.pos : end], end + 1
        if not set(encoded) <= _BASE64:
            raise ParseError("bad byte sequence")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise ParseError("bad base64") from error

    def boolean(self) -> bool:
        self.take()  # "?"
        char = self.take()
        if char not in ("0", "1"):
            raise ParseError("bad boolean")
        return char == "1"
