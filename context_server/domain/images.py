"""The user's stored images: lookup, listing, provenance and deletion (file, row and index entry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

from context_server.adapters.files import ImageFiles
from context_server.adapters.store import Store
from context_server.domain.paging import decode_cursor, page
from context_server.domain.search.indexing import Indexer
from context_server.errors import InvalidInput, NotFound
from context_server.models import image_uri

__all__ = ["ImageRow", "Images", "ScoredImageRow"]


class ImageRow(TypedDict):
    """A row of the `images` table (`select *`), as the domain hands it on."""

    id: str
    user_id: str
    job_id: str | None
    parent_id: str | None
    prompt: str
    final_prompt: str | None
    negative_prompt: str | None
    provider: str | None
    model: str | None
    seed: int | None
    width: int | None
    height: int | None
    format: str | None
    path: str
    #: The JSON of the generation's `Applied` receipt.
    applied: str | None
    incognito: int
    created_at: str
    #: What the index and the reference resolver read (see `domain/memory/references.py`).
    search_text: str | None
    subjects: str | None
    session_id: str | None


class ScoredImageRow(ImageRow):
    """An image row found by meaning: `score` is the cosine similarity, 0..1, to 4 decimals."""

    score: float


class Images:
    def __init__(self, store: Store, files: ImageFiles, indexer: Indexer) -> None:
        self.store = store
        self.files = files
        self.indexer = indexer

    def get(self, user_id: str, image_id: str) -> ImageRow:
        if not isinstance(image_id, str) or not image_id or len(image_id) > 64:
            raise NotFound(f"no image {image_id!r}")
        row = self.store.one("select * from images where id = ? and user_id = ?", [image_id, user_id])
        if row is None:
            raise NotFound(f"no image {image_id!r}")
        return cast("ImageRow", row)

    def path(self, user_id: str, image_id: str) -> Path:
        return Path(self.get(user_id, image_id)["path"])

    def read(self, user_id: str, image_id: str) -> bytes:
        try:
            return self.path(user_id, image_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the file of image {image_id!r} is missing from the data directory") from None

    def search(self, user_id: str, query: str, limit: int) -> list[ScoredImageRow]:
        """The user's images ranked by the meaning of their prompts; near-equal scores go to the newer one."""
        if not query.strip():
            raise InvalidInput("query must contain some text")
        if not 1 <= limit <= 50:
            raise InvalidInput(f"limit must be between 1 and 50, got {limit}")
        hits = dict(self.indexer.search(user_id, "images", query, max(limit * 3, 20)))
        if not hits:
            return []
        marks = ",".join("?" * len(hits))
        rows = self.store.query(f"select * from images where +user_id = ? and incognito = 0 and id in ({marks})",
                                [user_id, *hits])
        scored = [cast("ScoredImageRow", {**row, "score": round(hits[row["id"]], 4)}) for row in rows]
        scored.sort(key=lambda r: (round(r["score"], 2), r["created_at"]), reverse=True)
        return scored[:limit]

    def view(self, user_id: str, image_id: str, *, format: str | None = None, width: int | None = None,
             height: int | None = None, quality: int | None = None) -> tuple[bytes, str]:
        """The bytes and MIME type behind `image://{id}/view` (see `ImageFiles.view`)."""
        return self.files.view(self.path(user_id, image_id), format=format, width=width, height=height,
                               quality=quality)

    def preview(self, user_id: str, image_id: str) -> bytes:
        """The small JPEG a tool result shows inline (see `ImageFiles.preview`)."""
        return self.files.preview(self.path(user_id, image_id))

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
            "uri": image_uri(row["id"]),
        }

    def recent(self, user_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[ImageRow], str | None]:
        if not 1 <= limit <= 100:
            raise InvalidInput("limit must be between 1 and 100")
        before = decode_cursor(cursor)
        sql = "select * from images where user_id = ? and incognito = 0"
        params: list[Any] = [user_id]
        if before:
            sql += " and (created_at < ? or (created_at = ? and id < ?))"
            params += [before[0], before[0], before[1]]
        rows = self.store.query(sql + " order by created_at desc, id desc limit ?", [*params, limit + 1])
        return page(cast("list[ImageRow]", rows), limit)

    def children(self, user_id: str, image_id: str) -> list[ImageRow]:
        """Images made from this one (`edit_image`, or a reference used image-to-image), oldest first."""
        return cast("list[ImageRow]", self.store.query(
            "select * from images where user_id = ? and parent_id = ? and incognito = 0 order by created_at, id",
            [user_id, image_id],
        ))

    def lineage(self, user_id: str, image_id: str, limit: int = 20) -> list[ImageRow]:
        """The parents of an image, nearest first (stops at a deleted or foreign parent, and after `limit`)."""
        chain: list[ImageRow] = []
        row = self.get(user_id, image_id)
        while row["parent_id"] and len(chain) < limit:
            parent = self.store.one("select * from images where id = ? and user_id = ?", [row["parent_id"], user_id])
            if parent is None or any(p["id"] == parent["id"] for p in chain):
                break
            chain.append(cast("ImageRow", parent))
            row = chain[-1]
        return chain

    def record(self, db: Any, row: ImageRow) -> None:
        """Insert an image row inside the caller's transaction (`db`), and queue it for the index unless it
        is incognito."""
        db.table("images").insert(row)
        if not row["incognito"]:
            self.indexer.enqueue(db, row["user_id"], "images", row["id"], "upsert", row["search_text"] or row["prompt"])

    def index_soon(self) -> None:
        """After the transaction that `record`ed images committed: have the background drainer index them now,
        so the user's next search finds them embedded instead of embedding them on its own path."""
        self.indexer.wake()

    def delete(self, user_id: str, image_id: str) -> None:
        row = self.get(user_id, image_id)
        with self.store.write() as db:
            db.execute("delete from images where id = ? and user_id = ?", [image_id, user_id])
            self.indexer.enqueue(db, user_id, "images", image_id, "delete")
        self.files.delete(Path(row["path"]))
        self.index_soon()
