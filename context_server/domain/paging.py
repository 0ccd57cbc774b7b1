"""Opaque cursors for newest-first lists: (created_at, id) of the last item shown."""

from __future__ import annotations

import base64
import json

from ..errors import InvalidInput

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(created_at: str, item_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, item_id]).encode()).decode()


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        created_at, item_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(created_at, str) or not isinstance(item_id, str):
            raise ValueError
        return created_at, item_id
    except Exception:
        raise InvalidInput("cursor is not valid; pass the next_cursor value from the previous page") from None
