"""The template body language: literal text and `{name}` placeholders, nothing else.

Bodies are never handed to `str.format` or any evaluator: `{a.__class__}`, `{a[0]}`, `{0}` and
`{a!r}` are refused when the template is saved, with the position and the allowed form.
`{{` and `}}` are literal braces. Rendering substitutes in one pass, so a value that itself
contains `{x}` is never expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from context_server.errors import InvalidInput

__all__ = ["ARGUMENT_RULE", "Placeholder", "is_argument_name", "parse_body", "placeholder_names", "render_body"]

ARGUMENT_RULE = "a lowercase letter, then lowercase letters, digits or '_', at most 40 characters"
_ARGUMENT = re.compile(r"[a-z][a-z0-9_]{0,39}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Placeholder:
    name: str


def is_argument_name(name: object) -> bool:
    return isinstance(name, str) and _ARGUMENT.fullmatch(name) is not None


def parse_body(body: str) -> list[str | Placeholder]:
    """Split a body into literal text and placeholders, refusing anything but `{name}`.

    >>> parse_body("a {subject}, {{literal}}")
    ['a ', Placeholder(name='subject'), ', {literal}']
    """
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(body):
        literal.append(body[position : match.start()])
        position = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        where = _where(body, match.start())
        inner = match.group(1)
        if inner is None:
            raise InvalidInput(
                f"unmatched '{token}' at {where}: write '{token}{token}' for a literal brace, "
                "or '{name}' for a placeholder"
            )
        if not _ARGUMENT.fullmatch(inner):
            raise InvalidInput(
                f"placeholder {token!r} at {where} is not allowed: a placeholder is {{name}} where name is "
                f"{ARGUMENT_RULE}; attribute or index access, format specs and positional fields are not "
                "supported; write '{{' and '}}' for literal braces"
            )
        if "".join(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(Placeholder(inner))
    literal.append(body[position:])
    if "".join(literal):
        parts.append("".join(literal))
    return parts


def placeholder_names(body: str) -> list[str]:
    """The body's placeholders in order of first use, each once.

    >>> placeholder_names("{subject} at {time}, {subject} again")
    ['subject', 'time']
    """
    return list(dict.fromkeys(part.name for part in parse_body(body) if isinstance(part, Placeholder)))


def _where(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column} of the body"


def render_body(parts: Sequence[str | Placeholder], values: Mapping[str, str]) -> str:
    """Substitute in one pass; tidy the punctuation an empty value leaves behind."""
    out = [values[part.name] if isinstance(part, Placeholder) else part for part in parts]
    text = "".join(out)
    if any(isinstance(part, Placeholder) and not values[part.name] for part in parts):
        text = _tidy(text)
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;])(?:[ \t]*[,;])+", r"\1", text)
    text = re.sub(r",([.!?])", r"\1", text)
    lines = [re.sub(r"^[ \t]*[,;][ \t]*", "", line).rstrip() for line in text.split("\n")]
    return re.sub(r"[ \t]{2,}", " ", "\n".join(lines)).strip()
