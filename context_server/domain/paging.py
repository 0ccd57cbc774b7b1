"""Opaque cursors for newest-first lists: (created_at, id) of the last item shown."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from context_server.errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor", "page"]

#: A row with `created_at` and `id` (an image, job or memory row).
_Row = TypeVar("_Row", bound=Mapping[str, Any])


def encode_cursor(created_at: str, item_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, item_id]).encode()).decode()


def page(rows: list[_Row], limit: int) -> tuple[list[_Row], str | None]:
    """Split `limit + 1` newest-first rows into the page and the cursor of the next one (None: last page)."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"])
    return rows, None


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        created_at, item_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(created_at, str) and isinstance(item_id, str):
            return created_at, item_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidInput("cursor is not valid; pass the next_cursor value from the previous page")
