"""Every CLI verb and sub-verb, and every setting, is documented in README.md or docs/*.md."""

from __future__ import annotations

import re
from pathlib import Path

import click

from context_server.cli import main
from context_server.settings import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent


def _docs() -> str:
    return (ROOT / "README.md").read_text() + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def _verbs(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    ctx = click.Context(group)  # verbs are loaded on demand: ask the group, as `--help` does
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            found.extend(_verbs(command, f"{prefix}{name} "))
    return found


def test_every_cli_verb_is_documented() -> None:
    docs = _docs()
    verbs = _verbs(main)
    assert {"memories import", "images show", "doctor", "config claude-desktop"} <= set(verbs)
    missing = [verb for verb in verbs if not _mentioned(verb, docs)]
    assert missing == []


def _mentioned(verb: str, docs: str) -> bool:
    """`context-server doctor`, `memories import`, or a list such as `templates list|show|edit`."""
    *group, name = verb.split()
    if not group:
        return f"context-server {name}" in docs or f"`{name}`" in docs
    return re.search(rf"\b{group[0]} [\w|/` -]*?\b{re.escape(name)}\b", docs) is not None


def test_every_setting_is_documented() -> None:
    docs = _docs()
    assert [name for name in ENV_VARS if name not in docs] == []
