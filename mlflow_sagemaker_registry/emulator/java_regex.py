"""Compile the Java regular expressions of AWS service models so they match as SageMaker matches them.

SageMaker validates a ``pattern`` with Java's ``Pattern.matches``: the whole value must match, and Java's
defaults differ from Python's in ways that decide whether a value is accepted:

- ``.`` does not match any line terminator (``\\n``, ``\\r``, ``\\u0085``, ``\\u2028``, ``\\u2029``); the
  model itself works around this in places (``.*(?:[ \\r\\n\\t].*)*``), so it is meant that way.
- ``\\d``, ``\\s``, ``\\w`` and POSIX classes such as ``\\p{Alnum}`` are ASCII-only, while ``\\p{L}``,
  ``\\p{N}``, ``\\p{Z}`` are full Unicode. Python's ``regex.ASCII`` flag would turn ``\\p{L}`` ASCII too,
  so the shorthands are rewritten instead.
- Characters outside the Basic Multilingual Plane are written as UTF-16 surrogate pairs (``\\uD800\\uDC00``).
- A character class may contain a nested class (``[a[b]]``); the ``regex`` module's VERSION1 syntax
  understands that, Python's ``re`` does not.
"""

from __future__ import annotations

import functools
from typing import Any

import regex

_LINE_TERMINATORS = "\\n\\r\\u0085\\u2028\\u2029"
_SPACE = " \\t\\n\\x0B\\f\\r"
# Inside a class: the members of each ASCII shorthand (negated ones become nested negated classes).
_CLASS_BODY = {"d": "0-9", "w": "a-zA-Z0-9_", "s": _SPACE}
_POSIX = {"Alnum": "a-zA-Z0-9", "Alpha": "a-zA-Z", "Digit": "0-9", "Upper": "A-Z", "Lower": "a-z"}


@functools.cache
def compile_java(pattern: str) -> Any:
    """Return a compiled ``regex`` pattern equivalent to the Java ``pattern``; use ``.fullmatch``."""
    return regex.compile(_translate(pattern), regex.VERSION1)


def _translate(pattern: str) -> str:
    out: list[str] = []
    depth = 0  # nesting of character classes
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            text, i = _escape(pattern, i, inside=depth > 0)
            out.append(text)
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char == "." and not depth:
            char = f"[^{_LINE_TERMINATORS}]"
        out.append(char)
        i += 1
    return "".join(out)


def _escape(pattern: str, i: int, *, inside: bool) -> tuple[str, int]:
    """Translate the escape at ``pattern[i]`` (a backslash); return its text and the next index."""
    letter = pattern[i + 1]
    if letter in _CLASS_BODY:
        body = _CLASS_BODY[letter]
        return (body if inside else f"[{body}]"), i + 2
    if letter.lower() in _CLASS_BODY:
        return f"[^{_CLASS_BODY[letter.lower()]}]", i + 2
    if letter == "p" and pattern.startswith("{", i + 2):
        end = pattern.index("}", i)
        name = pattern[i + 3 : end]
        if name in _POSIX:
            return (_POSIX[name] if inside else f"[{_POSIX[name]}]"), end + 1
        return pattern[i : end + 1], end + 1
    if letter == "u":
        return _utf16_escape(pattern, i)
    return pattern[i : i + 2], i + 2


def _utf16_escape(pattern: str, i: int) -> tuple[str, int]:
    """Join a UTF-16 surrogate pair ``\\uD8xx\\uDCxx`` into one code point; keep other ``\\uXXXX``."""
    high = int(pattern[i + 2 : i + 6], 16)
    if 0xD800 <= high <= 0xDBFF and pattern.startswith("\\u", i + 6):
        low = int(pattern[i + 8 : i + 12], 16)
        code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        return f"\\U{code:08X}", i + 12
    return pattern[i : i + 6], i + 6
