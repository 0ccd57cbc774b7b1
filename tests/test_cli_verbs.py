"""Every CLI verb, exit codes included: 0 success, 1 failure (message on stderr), 2 usage error. Verbs run in
process through click (`run_cli`); `spawn_cli` runs the installed command (`python -m context_server.cli`)
where the process itself is what is checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click
import click.testing
import httpx
import pytest

from context_server.adapters.index import IndexLock
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.adapters.providers.remote import build_remote_providers
from context_server.cli import main
from context_server.domain.health import check_providers
from context_server.settings import Settings

from .conftest import run_cli, spawn_cli

ROOT = Path(__file__).resolve().parent.parent


def cli(home: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """A verb that does work, run in process (`run_cli`: the same exit codes, stdout and stderr); the exit
    codes of the installed command itself are checked through `spawn_cli` below."""
    return run_cli(home, *args, stdin=stdin, **env)


def verbs(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    ctx = click.Context(group)  # verbs are loaded on demand: ask the group, as `--help` does
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(verbs(command, (*prefix, name)))
    return found


def in_process(home: Path, *args: str) -> click.testing.Result:
    """The command's parsing, help and usage errors without starting a process (click's CliRunner); the
    verbs that do work run as the installed command through `cli`."""
    runner = click.testing.CliRunner()
    return runner.invoke(main, list(args), prog_name="context-server",
                         env={"CONTEXT_SERVER_HOME": str(home), "CONTEXT_SERVER_LOG_LEVEL": "WARNING"})


@pytest.mark.parametrize("verb", [(), *verbs()], ids=lambda v: " ".join(v) or "context-server")
def test_every_verb_has_help(home: Path, verb: tuple[str, ...]) -> None:
    done = in_process(home, *verb, "--help")
    assert done.exit_code == 0, done.stderr
    assert "Usage:" in done.stdout and "--help" in done.stdout
    assert not home.exists()  # help opens nothing


@pytest.mark.parametrize("args", [
    ("no-such-verb",),
    ("memories", "list", "--limit", "0"),
    ("memories", "add"),
    ("memories", "add", "x", "--kind", "poem"),
    ("memories", "import", "/no/such/file.jsonl"),
    ("images", "show"),
    ("doctor", "--bogus"),
    ("config", "claude-desktop", "extra"),
    ("serve", "--transport", "carrier-pigeon"),
], ids=" ".join)
def test_bad_arguments_are_usage_errors(home: Path, args: tuple[str, ...]) -> None:
    done = in_process(home, *args)
    assert done.exit_code == 2, (done.stdout, done.stderr)
    assert "Usage:" in done.stderr and done.stdout == ""


@pytest.mark.slow
def test_failures_exit_1_with_the_message_on_stderr(home: Path) -> None:
    missing = spawn_cli(home, "images", "show", "0" * 32)  # the installed command: a process's exit code
    assert missing.returncode == 1 and "no image" in missing.stderr and missing.stdout == ""
    gone = cli(home, "memories", "delete", "nope")
    assert gone.returncode == 1 and "not found" in gone.stderr


@pytest.mark.slow
def test_memories_add_list_search_delete(home: Path) -> None:
    added = cli(home, "memories", "add", "muted watercolour, visible paper texture", "--kind", "style",
                "--tag", "paper", "--pinned")
    assert added.returncode == 0, added.stderr
    memory_id = added.stdout.strip()
    listed = cli(home, "memories", "list")
    assert memory_id in listed.stdout and "pinned" in listed.stdout and "watercolour" in listed.stdout
    found = json.loads(cli(home, "memories", "search", "watercolor painting", "--json").stdout)
    assert found["memories"][0]["memory_id"] == memory_id and found["memories"][0]["score"] > 0.3
    assert cli(home, "memories", "delete", memory_id).returncode == 0
    assert json.loads(cli(home, "memories", "list", "--json").stdout)["memories"] == []


@pytest.mark.slow
def test_import_skips_broken_lines_and_export_import_reproduces_the_memories(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    source = tmp_path / "in.jsonl"
    good = [{"content": f"memory number {word}", "kind": kind, "tags": [word]}
            for word, kind in (("alpha", "note"), ("bravo", "style"), ("charlie", "fact"))]
    good.append({"content": "a lighthouse in fog", "kind": "style", "pinned": True, "memory_id": "keepme"})
    source.write_text("\n".join([json.dumps(good[0]), "{broken", json.dumps(good[1]), '{"kind": "note"}',
                                 json.dumps(good[2]), json.dumps(good[3]), '"just a string"']) + "\n")
    imported = cli(first, "memories", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "4 added, 0 merged" in imported.stdout and "3 skipped" in imported.stdout
    assert "line 2: not valid JSON" in imported.stdout and "line 4: content" in imported.stdout
    assert "line 7: not a JSON object" in imported.stdout
    again = cli(first, "memories", "import", str(source), "--json")
    assert json.loads(again.stdout)["added"] == 0

    exported = cli(first, "memories", "export")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(x) for x in exported.stdout.splitlines()]  # stdout is pure JSONL
    assert len(rows) == 4 and {r["memory_id"] for r in rows} >= {"keepme"}
    dump = tmp_path / "dump.jsonl"
    assert cli(first, "memories", "export", "--output", str(dump)).returncode == 0
    assert cli(second, "memories", "import", "-", stdin=dump.read_text()).returncode == 0
    assert [json.loads(x) for x in cli(second, "memories", "export").stdout.splitlines()] == rows

    nothing = tmp_path / "junk.jsonl"
    nothing.write_text("junk\n")
    refused = cli(second, "memories", "import", str(nothing))
    assert refused.returncode == 1 and "could be imported" in refused.stderr


@pytest.mark.slow
def test_demo_images_reindex_and_doctor_on_a_fresh_directory(home: Path) -> None:
    demo = cli(home, "demo")
    assert demo.returncode == 0, demo.stderr
    paths = [line.split("path:")[1].strip() for line in demo.stdout.splitlines() if "path:" in line]
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths)
    assert "found image" in demo.stdout and "reference:" in demo.stdout and "style:" in demo.stdout

    listed = json.loads(cli(home, "images", "list", "--json").stdout)["images"]
    assert [Path(i["path"]) for i in listed] == [Path(p) for p in reversed(paths)]
    shown = cli(home, "images", "show", listed[0]["image_id"])
    assert shown.returncode == 0 and paths[-1] in shown.stdout and "reference:" in shown.stdout
    assert "lighthouse" in cli(home, "images", "list").stdout

    rebuilt = cli(home, "reindex")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "Rebuilt the index: 4 item(s)" in rebuilt.stderr  # 1 memory + 3 images

    doctor = cli(home, "doctor", "--offline")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "OK       index: healthy" in doctor.stdout and "OK       embedder" in doctor.stdout

    lock = IndexLock(home / "chroma.lock")  # play a running server
    assert lock.try_acquire()
    try:
        busy = cli(home, "doctor", "--offline")
        assert busy.returncode == 0 and "OK       index: in use by a running server" in busy.stdout
        refused = cli(home, "reindex")
        assert refused.returncode == 1 and "in use by another process" in refused.stderr
    finally:
        lock.release()


@pytest.mark.slow
def test_doctor_fails_on_an_unusable_data_directory(tmp_path: Path) -> None:
    file = tmp_path / "not-a-dir"
    file.write_text("")
    done = cli(file, "doctor", "--offline")
    assert done.returncode == 1 and "FAIL     data directory" in done.stdout and "fix:" in done.stdout


def test_doctor_checks_provider_keys_by_a_free_request() -> None:
    settings = Settings.from_env({"CONTEXT_SERVER_HOME": "/tmp/x", "OPENAI_API_KEY": "sk-bad",
                                  "SD_WEBUI_URL": "http://127.0.0.1:7860"})
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "api.openai.com":
            return httpx.Response(401, json={"error": {"message": "bad key"}})
        raise httpx.ConnectError("refused", request=request)

    registry = ProviderRegistry(build_remote_providers(settings.provider_env, httpx.AsyncClient()))
    checks = {c.name: c for c in check_providers(registry, offline=False,
                                                   transport=httpx.MockTransport(handler))}
    assert checks["provider openai"].status == "fail" and "OPENAI_API_KEY" in checks["provider openai"].fix
    assert "sk-bad" not in str(checks)
    assert checks["provider sd_webui"].status == "warn"
    assert checks["provider stability"].status == "ok"  # not configured is fine
    assert seen == ["https://api.openai.com/v1/models", "http://127.0.0.1:7860/sdapi/v1/progress"]
    offline = list(check_providers(registry, offline=True))
    assert all(c.status == "ok" for c in offline)


def test_config_prints_this_installations_paths(tmp_path: Path) -> None:
    desktop = cli(tmp_path / "data", "config", "claude-desktop")
    assert desktop.returncode == 0, desktop.stderr
    entry = json.loads(desktop.stdout)["mcpServers"]["context-server"]
    assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
    assert entry["env"] == {"CONTEXT_SERVER_HOME": str((tmp_path / "data").resolve())}
    code = cli(tmp_path / "data", "config", "claude-code").stdout.strip()
    assert code.startswith("claude mcp add --transport stdio --env CONTEXT_SERVER_HOME=")
    assert code.split(" -- ")[0].endswith(" context-server") and entry["command"] in code
    assert not (tmp_path / "data").exists()
