"""Windows and macOS: nothing POSIX-only on an import path, and a process check that cannot kill.

`mypy --platform win32` and `--platform darwin` in CI catch POSIX-only calls by type; these tests catch
what types cannot: a module that imports `fcntl` (absent on Windows) somewhere on the way in.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from context_server.domain.generation.jobs import PROCESS_OWNER, owner_is_alive

ROOT = Path(__file__).resolve().parent.parent

#: Standard modules Windows does not have.
POSIX_ONLY = {"fcntl", "termios", "pwd", "grp", "resource", "posix", "tty", "pty", "syslog", "crypt"}


def test_every_module_imports_without_fcntl() -> None:
    """`None` in sys.modules makes `import fcntl` raise ImportError, as on Windows. The SDK's stdio module
    takes fcntl on POSIX only (its Windows branch does without), so it is imported first; the Linux backends
    of other dependencies (psutil's imports `resource`) are not what runs on Windows either, so only fcntl
    is taken away here and the AST test below covers the rest of our own imports."""
    script = textwrap.dedent("""
        import importlib, pkgutil, sys, warnings
        import mcp.server.stdio
        sys.modules["fcntl"] = None
        warnings.simplefilter("ignore")  # filelock says it falls back to soft locks: expected here
        import context_server
        failed = []
        names = [m.name for m in pkgutil.walk_packages(context_server.__path__, "context_server.")
                 if not m.name.endswith("__main__")]  # runs the CLI
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        print(len(names))
        print("\\n".join(failed))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    count, *failed = done.stdout.strip().split("\n")
    assert int(count) > 60, "walked the whole package"
    assert [line for line in failed if line] == []


def test_no_module_imports_a_posix_only_module_even_lazily() -> None:
    found = []
    for path in sorted((ROOT / "context_server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in POSIX_ONLY]
    assert found == []


def test_a_live_process_is_alive_and_an_ended_one_is_not() -> None:
    host = PROCESS_OWNER.partition(":")[0]
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    try:
        assert owner_is_alive(f"{host}:{child.pid}:abcd1234")
        assert child.poll() is None, "checking a process must leave it running (os.kill ends it on Windows)"
    finally:
        child.communicate(b"\n", timeout=30)
    assert not owner_is_alive(f"{host}:{child.pid}:abcd1234")
    assert owner_is_alive(PROCESS_OWNER)
    assert owner_is_alive(f"another-machine:{child.pid}:abcd1234"), "never steal another machine's work"
    assert not owner_is_alive(None)
