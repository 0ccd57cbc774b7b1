"""`context-server templates list|show|edit|import|export`: the template library, edited like code."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import click

from context_server.cli._common import domain_errors, echo_json, open_app, resolve_user, user_option

__all__ = ["templates"]


@click.group()
def templates() -> None:
    """List, show, edit, import and export prompt templates."""


@templates.command("list")
@user_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(user: str | None, as_json: bool) -> None:
    """List built-in and user templates."""
    with open_app() as app, domain_errors():
        items = app.templates.list(resolve_user(app, user))
        if as_json:
            echo_json([t.to_dict() for t in items])
            return
        width = max((len(t.name) for t in items), default=4)
        for t in items:
            click.echo(f"{t.name:<{width}}  v{t.version:<3} {t.source:<7}  {t.description}")


@templates.command()
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="A kept version (default: latest).")
@user_option
def show(name: str, version: int | None, user: str | None) -> None:
    """Print a template in the prompts/ file format."""
    with open_app() as app, domain_errors():
        click.echo(app.templates.export_text(resolve_user(app, user), name, version), nl=False)


@templates.command()
@click.argument("name")
@user_option
def edit(name: str, user: str | None) -> None:
    """Open NAME in $EDITOR; saving a changed file stores a new version."""
    with open_app() as app, domain_errors():
        uid = resolve_user(app, user)
        original = app.templates.export_text(uid, name)
        fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".md")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(original)
            editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
            if subprocess.call([*editor.split(), path]) != 0:
                raise click.ClickException(f"the editor ({editor}) exited with an error; nothing was saved")
            edited = Path(path).read_text(encoding="utf-8")
        finally:
            Path(path).unlink(missing_ok=True)
        if edited == original:
            click.echo(f"No changes; {name} stays as it was.", err=True)
            return
        saved = app.templates.import_text(uid, edited)
        click.echo(f"Saved {saved.name} v{saved.version}.", err=True)


@templates.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_option
def import_(files: tuple[Path, ...], user: str | None) -> None:
    """Import template files (the prompts/ format); each becomes a new version."""
    with open_app() as app, domain_errors():
        uid = resolve_user(app, user)
        for file in files:
            saved = app.templates.import_text(uid, file.read_text(encoding="utf-8"))
            click.echo(f"{file}: {saved.name} v{saved.version}", err=True)


@templates.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Export every template into --dir.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for --all (created if missing).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write NAME to this file instead of stdout.")
@user_option
def export(name: str | None, all_: bool, directory: Path | None, output: Path | None, user: str | None) -> None:
    """Export NAME (to stdout or --output), or --all into --dir."""
    if all_ == bool(name):
        raise click.UsageError("give a template NAME, or --all with --dir")
    if all_ and directory is None:
        raise click.UsageError("--all needs --dir")
    with open_app() as app, domain_errors():
        uid = resolve_user(app, user)
        if all_:
            assert directory is not None
            directory.mkdir(parents=True, exist_ok=True)
            for t in app.templates.list(uid):
                (directory / f"{t.name}.md").write_text(app.templates.export_text(uid, t.name), encoding="utf-8")
            click.echo(f"Exported to {directory}", err=True)
            return
        assert name is not None
        text = app.templates.export_text(uid, name)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            click.echo(text, nl=False)
