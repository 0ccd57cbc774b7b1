"""Windows and macOS: nothing POSIX-only on an import path, and a process check that cannot kill.

`mypy --platform win32` and `--platform darwin` in CI catch POSIX-only calls by type; these tests catch
what types cannot: a module that imports `fcntl` (absent on Windows) somewhere on the way in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from context_server.domain.generation.jobs import PROCESS_OWNER, owner_is_alive

ROOT = Path(__file__).resolve().parent.parent

#: Modules Windows does not have; `None` in sys.modules makes `import X` raise ImportError, as there.
POSIX_ONLY = ("fcntl", "termios", "pwd", "grp", "resource")


def test_every_module_imports_without_posix_only_modules() -> None:
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        for name in {POSIX_ONLY!r}:
            sys.modules[name] = None
        import context_server
        failed = []
        names = [m.name for m in pkgutil.walk_packages(context_server.__path__, "context_server.")]
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
        print(len(names))
        print("\\n".join(failed))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    count, *failed = done.stdout.strip().split("\n")
    assert int(count) > 60, "walked the whole package"
    assert [line for line in failed if line] == []


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
