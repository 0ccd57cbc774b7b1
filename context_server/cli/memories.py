"""`context-server memories list|search|add|delete|export|import`: the long-term memory, from a terminal.

Write verbs take the index lock when it is free, so their changes are searchable at once; when a running
server holds it, they write SQLite and the outbox, and the server indexes them within seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click

from context_server.cli._common import (
    domain_errors,
    echo_json,
    open_app,
    progress_bar,
    resolve_user,
    shorten,
    user_option,
)
from context_server.domain.memory.io import export_jsonl, import_jsonl
from context_server.domain.memory.rules import MAX_LIST, MAX_SEARCH, MEMORY_KINDS, Memory

__all__ = ["memories"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
_kind_option = click.option("--kind", type=click.Choice(MEMORY_KINDS), default=None, help="Only memories of this kind.")


@click.group()
def memories() -> None:
    """List, search, add, delete, export and import memories."""


def _table(items: list[Memory], with_score: bool = False) -> None:
    if not items:
        click.echo("No memories.", err=True)
        return
    for m in items:
        score = f"{m.score:.2f}  " if with_score and m.score is not None else ""
        pin = "pinned" if m.pinned else "      "
        click.echo(f"{score}{m.memory_id}  {m.kind:<10}  {pin}  {m.created_at[:10]}  {shorten(m.content, 70)}")


def _as_dict(m: Memory) -> dict[str, Any]:
    return {k: v for k, v in vars(m).items() if k not in ("session_id",) and not (k == "score" and v is None)}


@memories.command("list")
@_kind_option
@click.option("--limit", type=click.IntRange(1, MAX_LIST), default=50, show_default=True, help="How many.")
@click.option("--cursor", default=None, help="The next page: the cursor printed after the previous one.")
@_json_option
@user_option
def list_(kind: str | None, limit: int, cursor: str | None, as_json: bool, user: str | None) -> None:
    """List long-term memories, newest first."""
    with open_app() as app, domain_errors():
        items, next_cursor = app.memories.list(resolve_user(app, user), kind=kind, scope="long_term",
                                             limit=limit, cursor=cursor)
        if as_json:
            echo_json({"memories": [_as_dict(m) for m in items], "next_cursor": next_cursor})
            return
        _table(items)
        if next_cursor:
            click.echo(f"More: context-server memories list --cursor {next_cursor}", err=True)


@memories.command()
@click.argument("query")
@_kind_option
@click.option("--limit", type=click.IntRange(1, MAX_SEARCH), default=5, show_default=True, help="How many.")
@_json_option
@user_option
def search(query: str, kind: str | None, limit: int, as_json: bool, user: str | None) -> None:
    """Search memories by meaning (loads the embedding model: a few seconds)."""
    with open_app() as app, domain_errors():
        found = app.memories.search(resolve_user(app, user), query, limit=limit, kind=kind)
        if as_json:
            echo_json({"memories": [_as_dict(m) for m in found]})
            return
        _table(found, with_score=True)


@memories.command()
@click.argument("content")
@click.option("--kind", type=click.Choice(MEMORY_KINDS), default="note", show_default=True, help="What it is.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for several).")
@click.option("--pinned", is_flag=True, help="A pinned style applies to every generation.")
@user_option
def add(content: str, kind: str, tags: tuple[str, ...], pinned: bool, user: str | None) -> None:
    """Remember CONTENT; prints its id (a near-duplicate merges into the existing memory)."""
    with open_app() as app, domain_errors():
        app.indexer.take_index()
        result = app.memories.save(resolve_user(app, user), content, kind=kind, tags=list(tags), pinned=pinned)
        if result.merged_into:
            click.echo(f"Merged into the existing memory {result.merged_into}.", err=True)
        else:
            click.echo(f"Saved a {kind} memory.", err=True)
        click.echo(result.memory_id)


@memories.command()
@click.argument("memory_ids", nargs=-1, required=True)
@user_option
def delete(memory_ids: tuple[str, ...], user: str | None) -> None:
    """Delete memories by id."""
    with open_app() as app, domain_errors():
        app.indexer.take_index()
        uid = resolve_user(app, user)
        for memory_id in memory_ids:
            app.memories.delete(uid, memory_id)
            click.echo(f"Deleted {memory_id}.", err=True)


@memories.command()
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@user_option
def export(output: Path | None, user: str | None) -> None:
    """Write long-term memories as JSON Lines (one memory per line), oldest first."""
    with open_app() as app, domain_errors():
        handle = sys.stdout if output is None else output.open("w", encoding="utf-8")
        count = 0
        try:
            for line in export_jsonl(app.memories, resolve_user(app, user)):
                handle.write(line + "\n")
                count += 1
        finally:
            if output is not None:
                handle.close()
        click.echo(f"Exported {count} memories{f' to {output}' if output else ''}.", err=True)


@memories.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_json_option
@user_option
def import_(file: IO[str], as_json: bool, user: str | None) -> None:
    """Import FILE (JSON Lines, as `export` writes; '-' for stdin).

    Importing the same file again adds nothing: known ids and near-duplicates merge. Broken lines are
    skipped and listed with the reason; the rest are imported.
    """
    with open_app() as app, domain_errors():
        click.echo("Loading the embedding model...", err=True)
        app.indexer.take_index()
        with progress_bar("Importing") as progress:
            report = import_jsonl(app.memories, resolve_user(app, user), file, progress)
        if as_json:
            echo_json(report.to_dict())
        else:
            click.echo(f"{file.name}: {report.added} added, {report.merged} merged into existing memories, "
                       f"{len(report.skipped)} skipped.")
            for line, reason in report.skipped:
                click.echo(f"  line {line}: {reason}")
        if report.skipped and not (report.added or report.merged):
            click.echo(f"error: no memory in {file.name} could be imported", err=True)
            sys.exit(1)
