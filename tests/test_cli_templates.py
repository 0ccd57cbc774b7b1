"""The `templates` CLI verbs, in process (`run_cli`) and, for the exit codes, as the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_cli


def spawn(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `context-server` script in a new process."""
    exe = Path(sys.executable).parent / "context-server"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CONTEXT_SERVER_HOME": str(home), **(env or {})})


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The same verbs in process (`run_cli`); exit codes of the script itself: `spawn`."""
    return run_cli(home, *args, **(env or {}))


@pytest.mark.slow
def test_export_edit_import_round_trip_makes_a_new_version(home: Path, tmp_path: Path) -> None:
    file = tmp_path / "poster.md"
    assert run(home, "templates", "export", "poster", "--output", str(file)).returncode == 0
    file.write_text(file.read_text().replace("description: ", "description: Edited - ", 1))
    imported = run(home, "templates", "import", str(file))
    assert imported.returncode == 0, imported.stderr
    listed = run(home, "templates", "list")
    line = next(row for row in listed.stdout.splitlines() if row.startswith("poster "))
    assert "user" in line and "Edited - " in line
    again = run(home, "templates", "import", str(file.with_name("poster.md")))
    assert again.returncode == 0


@pytest.mark.slow
def test_edit_opens_the_editor_and_saves_a_new_version(home: Path, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/soft blues/deep indigo/' \"$1\"\n")
    editor.chmod(0o755)
    result = run(home, "templates", "edit", "watercolour", env={"EDITOR": str(editor)})
    assert result.returncode == 0, result.stderr
    assert "v1" in result.stderr or "Saved watercolour" in result.stderr
    shown = run(home, "templates", "show", "watercolour")
    assert "deep indigo" in shown.stdout and "version 1" in shown.stdout
    unchanged = run(home, "templates", "edit", "watercolour", env={"EDITOR": "true"})
    assert unchanged.returncode == 0 and "No changes" in unchanged.stderr


@pytest.mark.slow
def test_errors_and_usage_exit_codes(home: Path) -> None:
    missing = run(home, "templates", "show", "no-such-template")
    assert missing.returncode == 1 and "unknown template" in missing.stderr and missing.stdout == ""
    usage = spawn(home, "templates", "export")  # the installed script's own exit code for a usage error
    assert usage.returncode == 2 and "NAME" in usage.stderr
