"""Guard: every SQL statement on a table of user data names `user_id`, so no query can forget the user.

The domain scopes each query itself (there is no unscoped helper to call by mistake); this test is the
one place that checks all of them. A statement that must see every user is listed with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "context_server"
USER_TABLES = {"images", "jobs", "memories", "sessions", "templates", "outbox", "usage", "audit", "profiles",
               "memories_fts", "images_fts", "tokens", "item_vectors"}
SQL = re.compile(r"^\s*(select|update|delete|insert|with|replace)\b", re.I)
TABLE = re.compile(r"\b(?:from|join|update|into)\s+([a-z_]+)", re.I)

#: (file, start of the statement) → why it spans users.
ACROSS_USERS = {
    ("domain/search/stored.py", "DELETE FROM item_vectors WHERE model != ?"):
        "after a rebuild, drops the vectors of another model and of items gone, for every user; returns nothing",
    ("domain/search/stored.py", "DELETE FROM item_vectors WHERE collection = ? AND item_id NOT IN"):
        "after a rebuild, drops the vectors of items gone or no longer indexed, for every user",
    ("domain/search/stored.py", "SELECT v.item_id, v.vector"):
        "a rebuild reuses the stored vectors of the page of items it indexes, each by its own id and user",
    ("domain/generation/jobs.py", "select * from jobs where status = 'running'"):
        "start-up recovery finds every interrupted job; each is then failed or resumed with its own user_id",
    ("domain/audit.py", "select * from audit order by id desc"):
        "the operator's view of the audit trail (Python API only, never a tool or resource)",
    **{(f"domain/search/{module}.py", start): "the index outbox is one queue for the process: each row carries its "
       "own user_id and is applied to that user's collection; nothing here answers a user"
       for module, start in (("report", "SELECT count(*) AS n FROM outbox"),
                             ("outbox", "SELECT * FROM outbox ORDER BY id LIMIT ?"),
                             ("outbox", "SELECT max(id) AS top FROM outbox"),
                             ("lifecycle", "SELECT max(id) AS top FROM outbox"),
                             ("outbox", "DELETE FROM outbox WHERE id IN"),
                             ("lifecycle", "DELETE FROM outbox WHERE id <= ?"))},
}


def sql_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside_fstrings:
            found.append(node.value)
    return [text for text in found if SQL.match(text)]


def test_every_query_on_user_data_names_the_user() -> None:
    unscoped, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for text in sql_literals(path):
            tables = set(TABLE.findall(text)) & USER_TABLES
            allowed = [(f, start) for f, start in ACROSS_USERS if rel == f and text.strip().startswith(start)]
            used.update(allowed)
            if tables and "user_id" not in text and not allowed:
                unscoped.append(f"{rel}: {text[:120]!r}")
    assert not unscoped, "queries on user data without user_id:\n" + "\n".join(unscoped)
    assert used == set(ACROSS_USERS), f"stale ACROSS_USERS entries: {set(ACROSS_USERS) - used}"


def test_the_guard_sees_queries() -> None:
    texts = [t for p in PACKAGE.rglob("*.py") for t in sql_literals(p)]
    assert len(texts) > 20 and any("from images where" in t for t in texts)
