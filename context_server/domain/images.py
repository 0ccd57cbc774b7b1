"""The user's stored images: lookup, listing, provenance and deletion (file, row and index entry)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from context_server.adapters.files import ImageFiles
from context_server.adapters.store import Store
from context_server.domain.paging import decode_cursor, page
from context_server.errors import InvalidInput, NotFound

__all__ = ["Images"]


class Images:
    def __init__(self, store: Store, files: ImageFiles) -> None:
        self.store = store
        self.files = files
        #: Called inside the deleting transaction: (db, user_id, image_id) → enqueue index deletion.
        self.on_delete: list[Callable[[Any, str, str], None]] = []

    def get(self, user_id: str, image_id: str) -> dict[str, Any]:
        if not isinstance(image_id, str) or not image_id or len(image_id) > 64:
            raise NotFound(f"no image {image_id!r}")
        row = self.store.one("select * from images where id = ? and user_id = ?", [image_id, user_id])
        if row is None:
            raise NotFound(f"no image {image_id!r}")
        return row

    def path(self, user_id: str, image_id: str) -> Path:
        return Path(self.get(user_id, image_id)["path"])

    def read(self, user_id: str, image_id: str) -> bytes:
        try:
            return self.path(user_id, image_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the file of image {image_id!r} is missing from the data directory") from None

    def metadata(self, user_id: str, image_id: str) -> dict[str, Any]:
        row = self.get(user_id, image_id)
        return {
            "image_id": row["id"],
            "prompt": row["prompt"],
            "final_prompt": row["final_prompt"],
            "negative_prompt": row["negative_prompt"],
            "applied": json.loads(row["applied"] or "{}"),
            "provider": row["provider"],
            "model": row["model"],
            "seed": row["seed"],
            "size": {"width": row["width"], "height": row["height"]},
            "format": row["format"],
            "parent_id": row["parent_id"],
            "job_id": row["job_id"],
            "created_at": row["created_at"],
            "uri": f"image://{row['id']}/view",
        }

    def recent(self, user_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        if not 1 <= limit <= 100:
            raise InvalidInput("limit must be between 1 and 100")
        before = decode_cursor(cursor)
        sql = "select * from images where user_id = ? and incognito = 0"
        params: list[Any] = [user_id]
        if before:
            sql += " and (created_at < ? or (created_at = ? and id < ?))"
            params += [before[0], before[0], before[1]]
        rows = self.store.query(sql + " order by created_at desc, id desc limit ?", [*params, limit + 1])
        return page(rows, limit)

    def children(self, user_id: str, image_id: str) -> list[dict[str, Any]]:
        """Images made from this one (`edit_image`, or a reference used image-to-image), oldest first."""
        return self.store.query(
            "select * from images where user_id = ? and parent_id = ? and incognito = 0 order by created_at, id",
            [user_id, image_id],
        )

    def lineage(self, user_id: str, image_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The parents of an image, nearest first (stops at a deleted or foreign parent, and after `limit`)."""
        chain: list[dict[str, Any]] = []
        row = self.get(user_id, image_id)
        while row.get("parent_id") and len(chain) < limit:
            parent = self.store.one("select * from images where id = ? and user_id = ?", [row["parent_id"], user_id])
            if parent is None or any(p["id"] == parent["id"] for p in chain):
                break
            chain.append(parent)
            row = parent
        return chain

    def delete(self, user_id: str, image_id: str) -> None:
        row = self.get(user_id, image_id)
        with self.store.write() as db:
            db.execute("delete from images where id = ? and user_id = ?", [image_id, user_id])
            for hook in self.on_delete:
                hook(db, user_id, image_id)
        self.files.delete(Path(row["path"]))
