"""Memory records and the rules for what may be saved: allowed values, limits, sanitising, paging cursors.

Limits come from SPEC §3 (content 1..2000 characters after sanitising, at most 20 tags). Every refusal is
an `InvalidInput` whose message names what is allowed, because the assistant reads it and retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from context_server.domain.text import sanitise
from context_server.errors import InvalidInput

if TYPE_CHECKING:
    from context_server.domain.memory.scope import StyleScope

__all__ = [
    "MAX_CONTENT",
    "MAX_LIST",
    "MAX_SEARCH",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MEMORY_KINDS",
    "SCOPES",
    "Memory",
    "SaveResult",
    "check_choice",
    "check_content",
    "check_tags",
    "effective_applies_to",
    "merge_tags",
    "visibility_sql",
]

MEMORY_KINDS = ("style", "preference", "fact", "note")
SCOPES = ("long_term", "session")
MAX_CONTENT = 2000
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_LIST = 200
MAX_SEARCH = 50


class Memory(BaseModel):
    """One memory as the domain returns it and as the memory tools show it (their output schema): the fields
    of `get_all_memories`, plus `session_id` and `replaces`, which tool results leave out."""

    model_config = ConfigDict(frozen=True)

    memory_id: str
    content: str
    kind: str
    scope: str
    tags: list[str]
    pinned: bool
    created_at: str
    updated_at: str
    use_count: int
    last_used_at: str | None = None
    session_id: SkipJsonSchema[str | None] = Field(None, exclude=True)
    replaces: SkipJsonSchema[str | None] = Field(None, exclude=True)
    score: float | None = None
    applies_to: str | None = Field(None, description='Styles only: "always" or the subject it is for ("logos").')

    @property
    def placement(self) -> str | None:
        """"negative" for a negative preference, "prompt" for other styles, None for other kinds."""
        return _scope(self).placement if self.kind == "style" else None

    @classmethod
    def from_row(cls, row: dict[str, Any], score: float | None = None) -> Memory:
        """Trusts the row (SQLite holds only what `save` checked): no validation, as cheap as a dataclass."""
        return cls.model_construct(
            memory_id=row["id"],
            content=row["content"],
            kind=row["kind"],
            scope=row["scope"],
            tags=json.loads(row["tags"] or "[]"),
            pinned=bool(row["pinned"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            use_count=row["use_count"] or 0,
            last_used_at=row["last_used_at"],
            session_id=row["session_id"],
            replaces=row["replaces"],
            score=score,
            applies_to=effective_applies_to(row),
        )


@dataclass(frozen=True)
class SaveResult:
    memory_id: str
    kind: str
    scope: str
    merged_into: str | None = None
    applies_to: str | None = None
    placement: str | None = None


def effective_applies_to(row: dict[str, Any]) -> str | None:
    """When a memory applies: None for preferences, facts and notes; "always" for a pinned style; else the
    stored scope, or the one read from its words (rows saved before scopes were stored)."""
    if row["kind"] != "style":
        return None
    if row["pinned"]:
        return _always()
    return row.get("applies_to") or _read_style(row["content"]).applies_to


def _scope(memory: Memory) -> StyleScope:
    return _read_style(memory.content, memory.applies_to)


# `scope` is imported on first use: the memory tools' output schema needs `Memory` before the server's
# first answer, and `scope` loads the lexicon, which only reading a memory needs.


def _read_style(content: str, applies_to: str | None = None) -> StyleScope:
    from context_server.domain.memory.scope import read_style

    return read_style(content, applies_to)


def _always() -> str:
    from context_server.domain.memory.scope import ALWAYS

    return ALWAYS


def visibility_sql(scope: str | None, session_id: str | None, params: list[Any], column: str = "") -> str:
    """The visibility rule: long-term memories always; session memories only for their own session."""
    long_term = f"{column}scope = 'long_term'"
    this_session = f"({column}scope = 'session' AND {column}session_id = ?)"
    if scope == "long_term":
        return long_term
    if scope == "session":
        params.append(session_id or "")
        return this_session
    if session_id:
        params.append(session_id)
        return f"({long_term} OR {this_session})"
    return long_term


def check_content(content: str) -> str:
    text = sanitise(content)
    if not text:
        raise InvalidInput("content must contain some text (1 to 2000 characters)")
    if len(text) > MAX_CONTENT:
        raise InvalidInput(f"content is {len(text)} characters; the most a memory can hold is {MAX_CONTENT}")
    return text


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        raise InvalidInput("tags must be a list of strings, not one string")
    clean = list(dict.fromkeys(t for t in (sanitise(str(tag)) for tag in tags) if t))
    if len(clean) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags are allowed; got {len(clean)}")
    for tag in clean:
        if len(tag) > MAX_TAG_CHARS:
            raise InvalidInput(
                f"each tag must be at most {MAX_TAG_CHARS} characters; {tag[:20]!r}… is {len(tag)}"
            )
    return clean


def merge_tags(existing: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*existing, *new]))[:MAX_TAGS]

