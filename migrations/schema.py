"""The context-server schema, as an ordered set of named migrations.

Shipped migrations are never edited: add a new function at the end. Every table that holds user data
carries `user_id`, and every query the domain makes is scoped by it (see `adapters/store.py`).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("context_server")


@migrations()
def m001_create_users(db: Database) -> None:
    db["users"].create(
        {"id": str, "name": str, "created_at": str, "revoked_at": str},
        pk="id",
        not_null={"name", "created_at"},
    )
    db["users"].create_index(["name"], unique=True)
    db["tokens"].create(
        {"id": str, "user_id": str, "token_hash": str, "created_at": str, "revoked_at": str},
        pk="id",
        not_null={"user_id", "token_hash", "created_at"},
    )
    db["tokens"].create_index(["token_hash"], unique=True)


@migrations()
def m002_create_images_and_jobs(db: Database) -> None:
    db["jobs"].create(
        {
            "id": str,
            "user_id": str,
            "request_id": str,
            "request_hash": str,
            "kind": str,  # generate | edit
            "status": str,  # running | completed | failed
            "progress": float,
            "params": str,  # JSON of the validated request
            "result": str,  # JSON of the result once completed
            "error": str,
            "provider": str,
            "model": str,
            "provider_job_id": str,
            "image_id": str,
            "incognito": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"user_id", "status", "created_at"},
        defaults={"progress": 0.0, "incognito": 0},
    )
    db["jobs"].create_index(["user_id", "request_id"], unique=True)
    db["jobs"].create_index(["user_id", "created_at"])
    db["images"].create(
        {
            "id": str,
            "user_id": str,
            "job_id": str,
            "parent_id": str,
            "prompt": str,
            "final_prompt": str,
            "negative_prompt": str,
            "provider": str,
            "model": str,
            "seed": int,
            "width": int,
            "height": int,
            "format": str,
            "path": str,
            "applied": str,  # JSON receipt
            "incognito": int,
            "created_at": str,
        },
        pk="id",
        not_null={"user_id", "prompt", "path", "created_at"},
        defaults={"incognito": 0},
    )
    db["images"].create_index(["user_id", "created_at"])


@migrations()
def m003_create_memories_and_profiles(db: Database) -> None:
    db["memories"].create(
        {
            "id": str,
            "user_id": str,
            "session_id": str,  # set for scope=session
            "content": str,
            "kind": str,
            "scope": str,
            "tags": str,  # JSON list
            "pinned": int,
            "use_count": int,
            "last_used_at": str,
            "replaces": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"user_id", "content", "kind", "scope", "created_at", "updated_at"},
        defaults={"pinned": 0, "use_count": 0, "tags": "[]"},
    )
    db["memories"].create_index(["user_id", "created_at"])
    db["profiles"].create(
        {
            "user_id": str,
            "default_provider": str,
            "default_model": str,
            "default_aspect_ratio": str,
            "default_negative_prompt": str,
            "style_strength": str,
            "daily_budget_usd": float,
            "updated_at": str,
        },
        pk="user_id",
    )
    db["sessions"].create(
        {"id": str, "user_id": str, "created_at": str, "last_seen_at": str, "last_image_id": str},
        pk="id",
        not_null={"user_id", "created_at", "last_seen_at"},
    )


@migrations()
def m004_create_templates(db: Database) -> None:
    db["templates"].create(
        {
            "id": int,
            "user_id": str,
            "name": str,
            "version": int,
            "description": str,
            "body": str,
            "arguments": str,  # JSON list of {name, description, required}
            "deleted": int,
            "created_at": str,
        },
        pk="id",
        not_null={"user_id", "name", "version", "body", "created_at"},
        defaults={"deleted": 0},
    )
    db["templates"].create_index(["user_id", "name", "version"], unique=True)


@migrations()
def m005_create_index_outbox(db: Database) -> None:
    db["outbox"].create(
        {
            "id": int,
            "user_id": str,
            "collection": str,  # memories | images
            "item_id": str,
            "op": str,  # upsert | delete
            "document": str,
            "created_at": str,
        },
        pk="id",
        not_null={"user_id", "collection", "item_id", "op", "created_at"},
    )
    db["index_meta"].create({"key": str, "value": str}, pk="key")


@migrations()
def m006_create_usage_and_audit(db: Database) -> None:
    db["usage"].create(
        {
            "id": int,
            "user_id": str,
            "job_id": str,
            "provider": str,
            "model": str,
            "cost_usd": float,
            "created_at": str,
        },
        pk="id",
        not_null={"user_id", "provider", "created_at"},
    )
    db["usage"].create_index(["user_id", "created_at"])
    db["audit"].create(
        {"id": int, "user_id": str, "tool": str, "outcome": str, "duration_ms": float, "created_at": str},
        pk="id",
        not_null={"user_id", "tool", "outcome", "created_at"},
    )


@migrations()
def m007_create_search_fallback(db: Database) -> None:
    """FTS5 tables: the search fallback for a process that does not hold the Chroma lock."""
    db.execute(
        "CREATE VIRTUAL TABLE memories_fts USING fts5(content, content='memories', content_rowid='rowid')"
    )
    db.execute("CREATE VIRTUAL TABLE images_fts USING fts5(prompt, content='images', content_rowid='rowid')")
    for table, column in (("memories", "content"), ("images", "prompt")):
        db.execute(
            f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {table}_fts(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )
        db.execute(
            f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {table}_fts({table}_fts, rowid, {column}) VALUES('delete', old.rowid, old.{column}); END"
        )
        db.execute(
            f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN "
            f"INSERT INTO {table}_fts({table}_fts, rowid, {column}) VALUES('delete', old.rowid, old.{column}); "
            f"INSERT INTO {table}_fts(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )


@migrations()
def m008_add_job_owner(db: Database) -> None:
    """Which process runs a job, so a second server process never fails a job that is alive elsewhere."""
    db["jobs"].add_column("owner", str)
    db["jobs"].add_column("kind_detail", str)


@migrations()
def m009_index_memory_lookups(db: Database) -> None:
    """Every generation reads the user's pinned styles and this session's styles; without these indexes
    both scan all of the user's memories (1.8 ms and 1.5 ms at 2,500 memories a user)."""
    db["memories"].create_index(["user_id", "kind", "pinned", "created_at"], if_not_exists=True)
    db["memories"].create_index(["user_id", "session_id", "created_at"], if_not_exists=True)


@migrations()
def m010_add_session_owner(db: Database) -> None:
    """Which process a session lives in, so the next start can end the sessions of a server that was killed
    without shutting down (and purge their session-scope memories). Older rows stay NULL: left alone."""
    db["sessions"].add_column("owner", str)


@migrations()
def m011_store_item_vectors(db: Database) -> None:
    """The vectors of indexed items, beside their rows: a process that does not hold the Chroma directory
    ranks with these, exactly as the holder does (`domain/search/stored.py`). Derived data, like the index:
    a row is deleted whenever its item changes, and written again by whoever embeds the item next."""
    db["item_vectors"].create(
        {"collection": str, "item_id": str, "user_id": str, "model": str, "vector": bytes},
        pk=("collection", "item_id"),
        not_null={"user_id", "model", "vector"},
    )


@migrations()
def m012_add_subjects_and_style_scope(db: Database) -> None:
    """Issue 13: what each image is about, and when each style applies, decided once at write time.

    images.search_text: the image's prompt, or for an edit its source's search_text plus the instruction
    (through any chain of edits), so an edited spaceship is still a spaceship. images.subjects: the
    subject-lexicon concepts of that text (" 12 345 ... "), so "my last dog image" is one indexed query
    plus a LIKE, never a scan of every prompt. images.session_id: which conversation made it ("the one
    before that"). Rows written before this migration are filled in by the server's warm-up.

    memories.applies_to: "always", a subject phrase ("logos"), or NULL (not a style); memories.placement:
    "negative" for a negative preference ("never use neon colours"), else "prompt"; memories.prompt_phrase:
    the words that go to the provider ("soft watercolour style"), the user's own words staying in content.
    """
    for column in ("search_text", "subjects", "session_id"):
        db["images"].add_column(column, str)
    db["images"].create_index(["user_id", "session_id", "created_at"], if_not_exists=True)
    for column in ("applies_to", "placement", "prompt_phrase"):
        db["memories"].add_column(column, str)


@migrations()
def m013_index_subjects(db: Database) -> None:
    """Issue 13 at 100k items: "my last dog image" and "which styles are about this prompt" read only the
    rows that can match, through two derived tables kept in step by triggers (so no writer can forget them).

    image_subjects: one row per concept a (not incognito) image is about (the closure in images.subjects),
    keyed by user, concept and creation time, so "the newest of the user's dog images" and how many there
    are is read from one index range, not a LIKE over every prompt of the user.
    style_subjects: one row per key of a subject style (memories.subject_keys, a JSON list: concept numbers
    of its subject, or "w:<word>" for a subject the lexicon does not know), so a prompt's concepts find the
    styles about it. A style whose subject_keys is NULL (stored before this migration, or under another
    lexicon) is read the slow way until the warm-up fills it in. Rows name images by id (a VACUUM may
    renumber rowids). Deleting an image or a memory deletes its rows; updating its subjects rewrites them.
    """
    db["memories"].add_column("subject_keys", str)
    db.execute("""CREATE TABLE IF NOT EXISTS image_subjects (
        user_id TEXT NOT NULL, concept INTEGER NOT NULL, created_at TEXT NOT NULL, image_id TEXT NOT NULL,
        PRIMARY KEY (user_id, concept, created_at, image_id)) WITHOUT ROWID""")
    db.execute("""CREATE TABLE IF NOT EXISTS style_subjects (
        user_id TEXT NOT NULL, key TEXT NOT NULL, memory_id TEXT NOT NULL,
        PRIMARY KEY (user_id, key, memory_id)) WITHOUT ROWID""")
    db.execute("CREATE INDEX IF NOT EXISTS idx_style_subjects_memory ON style_subjects(memory_id)")
    # Rows still to be described: found through small partial indexes instead of a scan.
    db.execute("CREATE INDEX IF NOT EXISTS idx_images_undescribed ON images(user_id) WHERE subjects IS NULL")
    db.execute("CREATE INDEX IF NOT EXISTS idx_memories_style_general ON memories(user_id) WHERE kind = 'style' "
               "AND (pinned = 1 OR scope = 'session' OR applies_to = 'always' OR applies_to IS NULL "
               "OR subject_keys IS NULL)")

    def concepts(row: str) -> str:
        return f"json_each('[' || replace(trim({row}.subjects), ' ', ',') || ']')"

    add_image = (f"INSERT OR IGNORE INTO image_subjects SELECT NEW.user_id, value, NEW.created_at, NEW.id "
                 f"FROM {concepts('NEW')} WHERE NEW.incognito = 0 AND NEW.subjects IS NOT NULL "
                 "AND trim(NEW.subjects) != '';")
    # found through the primary key, from the concepts the row had (no second index on image_id)
    drop_image = (f"DELETE FROM image_subjects WHERE user_id = OLD.user_id AND created_at = OLD.created_at "
                  f"AND image_id = OLD.id AND concept IN (SELECT value FROM {concepts('OLD')} "
                  "WHERE OLD.subjects IS NOT NULL AND trim(OLD.subjects) != '');")
    triggers = [
        f"CREATE TRIGGER IF NOT EXISTS images_subjects_insert AFTER INSERT ON images BEGIN {add_image} END",
        "CREATE TRIGGER IF NOT EXISTS images_subjects_update AFTER UPDATE OF subjects, incognito, created_at, user_id, id ON images "
        f"BEGIN {drop_image} {add_image} END",
        f"CREATE TRIGGER IF NOT EXISTS images_subjects_delete AFTER DELETE ON images BEGIN {drop_image} END",
    ]
    add_style = ("INSERT OR IGNORE INTO style_subjects SELECT NEW.user_id, value, NEW.id "
                 "FROM json_each(NEW.subject_keys) WHERE NEW.kind = 'style' AND NEW.subject_keys IS NOT NULL "
                 "AND json_valid(NEW.subject_keys);")
    triggers += [
        f"CREATE TRIGGER IF NOT EXISTS memories_subjects_insert AFTER INSERT ON memories BEGIN {add_style} END",
        "CREATE TRIGGER IF NOT EXISTS memories_subjects_update AFTER UPDATE OF subject_keys, kind, user_id, id "
        f"ON memories BEGIN DELETE FROM style_subjects WHERE memory_id = OLD.id; {add_style} END",
        "CREATE TRIGGER IF NOT EXISTS memories_subjects_delete AFTER DELETE ON memories "
        "BEGIN DELETE FROM style_subjects WHERE memory_id = OLD.id; END",
    ]
    for statement in triggers:  # one by one: executescript would commit the migration's transaction
        db.execute(statement)
    db.execute("INSERT OR IGNORE INTO image_subjects SELECT i.user_id, j.value, i.created_at, i.id FROM images i, "
               "json_each('[' || replace(trim(i.subjects), ' ', ',') || ']') j "
               "WHERE i.incognito = 0 AND i.subjects IS NOT NULL AND trim(i.subjects) != ''")
