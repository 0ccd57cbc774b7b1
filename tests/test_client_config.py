"""`context-server config claude-desktop|claude-code --install`: the client's own file, merged as a careful
person would edit it (other servers kept, a backup, an unreadable or read-only file left alone)."""

from __future__ import annotations

import importlib.metadata
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from context_server.cli import main
from context_server.cli.client_files import claude_desktop_config_path
from context_server.cli.config import server_command

OTHER = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), "config", *args], catch_exceptions=False)


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.*.bak"))


def test_install_creates_an_absent_file_with_this_installations_entry(tmp_path: Path) -> None:
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    done = run(tmp_path / "data", "claude-desktop", "--install", "--file", str(path))
    assert done.exit_code == 0, done.output
    entry = json.loads(path.read_text())["mcpServers"]["context-server"]
    command, *args = server_command()
    assert entry == {"command": command, "args": args,
                     "env": {"CONTEXT_SERVER_HOME": str((tmp_path / "data").resolve())}}
    assert f"created {path}" in done.output and "restart Claude Desktop" in done.output
    assert backups(path) == []


def test_install_keeps_other_servers_and_keys_and_backs_the_old_file_up(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = json.dumps({"globalShortcut": "Ctrl+Space",
                           "mcpServers": {"filesystem": OTHER, "context-server": {"command": "/old/path"}}})
    path.write_text(original)
    done = run(tmp_path / "data", "claude-desktop", "--install", "--file", str(path))
    assert done.exit_code == 0, done.output
    data = json.loads(path.read_text())
    assert data["globalShortcut"] == "Ctrl+Space"
    assert data["mcpServers"]["filesystem"] == OTHER
    assert data["mcpServers"]["context-server"]["command"] == server_command()[0]
    [backup] = backups(path)
    assert backup.read_text() == original
    assert f"backup of the previous file: {backup}" in done.output
    assert "other servers kept: filesystem" in done.output

    again = run(tmp_path / "data", "claude-desktop", "--install", "--file", str(path))
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert len(backups(path)) == 1, "an install that changes nothing makes no backup"


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = json.dumps({"mcpServers": {"filesystem": OTHER}}, indent=2) + "\n"
    path.write_text(original)
    done = run(tmp_path / "data", "claude-desktop", "--install", "--dry-run", "--file", str(path))
    assert done.exit_code == 0, done.output
    assert f"--- {path}" in done.output and f"+++ {path}" in done.output
    assert '+    "context-server": {' in done.output
    assert '-    "filesystem"' not in done.output
    assert path.read_text() == original and backups(path) == []


@pytest.mark.parametrize("text", ['{"mcpServers": {"filesystem": ', "[1, 2]", '{"mcpServers": []}'])
def test_a_file_that_cannot_be_parsed_is_refused_and_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(text)
    done = CliRunner().invoke(main, ["--home", str(tmp_path / "data"), "config", "claude-desktop", "--install",
                                     "--file", str(path)])
    assert done.exit_code == 1
    assert str(path) in done.output and "nothing was changed" in done.output
    assert path.read_text() == text and backups(path) == []
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_read_only_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = json.dumps({"mcpServers": {"filesystem": OTHER}})
    path.write_text(original)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        done = CliRunner().invoke(main, ["--home", str(tmp_path / "data"), "config", "claude-desktop",
                                         "--install", "--file", str(path)])
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert done.exit_code == 1
    assert "read-only" in done.output and "nothing was changed" in done.output
    assert path.read_text() == original and backups(path) == []


def test_claude_code_install_writes_the_projects_mcp_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"filesystem": OTHER}}))
    monkeypatch.chdir(project)
    done = run(tmp_path / "data", "claude-code", "--install")
    assert done.exit_code == 0, done.output
    servers = json.loads((project / ".mcp.json").read_text())["mcpServers"]
    assert servers["filesystem"] == OTHER
    assert servers["context-server"]["type"] == "stdio"
    assert servers["context-server"]["command"] == server_command()[0]
    assert len(backups(project / ".mcp.json")) == 1


def test_dry_run_without_install_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["--home", str(tmp_path), "config", "claude-desktop", "--dry-run"])
    assert done.exit_code == 2 and "--dry-run goes with --install" in done.output


def test_the_desktop_file_is_found_where_each_platform_keeps_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    # Off Windows there is no shell folder API to ask: answer as Windows would, by folder kind.
    monkeypatch.setattr("platformdirs.windows.get_win_folder", lambda csidl: str(tmp_path / csidl))
    assert claude_desktop_config_path("darwin") == (
        tmp_path / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json")
    assert claude_desktop_config_path("win32") == tmp_path / "CSIDL_APPDATA" / "Claude" / "claude_desktop_config.json"
    assert claude_desktop_config_path("linux") == tmp_path / ".config" / "Claude" / "claude_desktop_config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert claude_desktop_config_path("linux") == tmp_path / "xdg" / "Claude" / "claude_desktop_config.json"


def test_under_uvx_the_entry_runs_uvx_again_not_its_throw_away_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvx runs the command in an environment inside uv's cache (a folder with a CACHEDIR.TAG), which
    `uv cache clean` deletes: the entry names uvx and what it installed from. (tests/test_install.py runs the
    real uvx from a wheel, where the source is the wheel's path.)"""
    cache = tmp_path / "uv-cache"
    (cache / "archive-v0" / "abc" / "bin").mkdir(parents=True)
    (cache / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    (tmp_path / "bin").mkdir()
    for name in ("uv", "uvx"):
        (tmp_path / "bin" / name).write_text("")
    monkeypatch.setattr("sys.prefix", str(cache / "archive-v0" / "abc"))
    monkeypatch.setenv("UV", str(tmp_path / "bin" / "uv"))
    # This checkout is installed editable (not from a wheel file): the entry asks the index for this release.
    release = f"context-server=={importlib.metadata.version('context-server')}"
    assert server_command() == [str(tmp_path / "bin" / "uvx"), "--from", release, "context-server"]
    monkeypatch.delenv("UV")
    assert server_command()[0] != str(tmp_path / "bin" / "uvx"), "without uv running us, no uvx entry"
