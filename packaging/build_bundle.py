"""Build the MCP bundle (`.mcpb`, the Claude Desktop extension format) from this checkout.

    python packaging/build_bundle.py [--out dist] [--mcpb "npx -y @anthropic-ai/mcpb@2.1.2"]

The bundle is a `server.type: "uv"` bundle (manifest v0.4): it carries this package's source, the
migrations, the built-in prompt templates and pyproject.toml, and Claude Desktop installs the dependencies
with uv on the user's machine, for the user's platform (macOS, Windows or Linux; Intel or ARM). A
`"python"` bundle would have to carry compiled wheels (onnxruntime, chromadb, numpy, ...) for one platform
and one Python version, hundreds of MB each.

The manifest lists the tools (read from the server itself, so it cannot drift), the built-in templates as
prompts (users' own templates come at run time: `prompts_generated`), and `user_config` for the provider
keys (`sensitive`: Claude Desktop keeps them in the OS keychain), the data directory and the default
provider. The official `mcpb` tool validates the manifest and packs the folder; `--stage-only` stops
before that and leaves the folder in `<out>/bundle/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from context_server.app import App

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MCPB = "npx -y @anthropic-ai/mcpb@2.1.2"
COPIED = ("context_server", "migrations", "prompts", "README.md", "CHANGELOG.md", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")



def provider_settings() -> list[tuple[str, str, str, bool]]:
    """What the bundle asks for, from the adapters' declarations: (env var, title, description, sensitive).
    Each provider's key (kept in the OS keychain), or its address when it needs no key."""
    from context_server.adapters.providers.env import PROVIDER_ENVS

    return [(env.enabled_by, env.title, env.purpose, env.key is not None) for env in PROVIDER_ENVS]


def project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert isinstance(version, str)
    return version


async def _tools() -> list[dict[str, str]]:
    """The tools as the server lists them; building the server opens no data directory."""
    from typing import cast

    from context_server.server import build_server
    from context_server.server.deferred import DeferredApp
    from context_server.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        app = DeferredApp(Settings.from_env({"CONTEXT_SERVER_HOME": home}))  # stands in for the App (not imported)
        tools = await build_server(cast("App", app)).list_tools()
        await app.aclose()
    return [{"name": tool.name, "description": _first_sentence(tool.description or tool.name)} for tool in tools]


def _first_sentence(text: str) -> str:
    first = text.strip().split("\n\n")[0].replace("\n", " ")
    match = re.match(r"(.+?[.!?])(\s|$)", first)
    return match.group(1) if match else first


def _prompts() -> list[dict[str, Any]]:
    from context_server.domain.templates.library import load_builtins

    prompts = []
    for definition in load_builtins(ROOT / "prompts").values():
        names = [argument.name for argument in definition.arguments]
        pattern = "|".join(map(re.escape, names))
        text = re.sub(rf"\{{({pattern})\}}", r"${arguments.\1}", definition.body) if names else definition.body
        prompts.append({"name": definition.name, "description": definition.description,
                        "arguments": names, "text": text})
    return prompts


def manifest() -> dict[str, Any]:
    asked = provider_settings()
    env = {name: "${user_config." + name.lower() + "}" for name, *_ in asked}
    env.update({
        "CONTEXT_SERVER_HOME": "${user_config.data_directory}",
        "CONTEXT_SERVER_DEFAULT_PROVIDER": "${user_config.default_provider}",
    })
    user_config: dict[str, Any] = {
        "data_directory": {
            "type": "directory", "title": "Data directory",
            "description": "Where your images, memories and templates are kept (context.db, chroma/, images/).",
            "default": "${HOME}/context-server", "required": True,
        },
        "default_provider": {
            "type": "string", "title": "Default provider",
            "description": "Used when a request names no provider: placeholder (offline, free), openai, "
                           "stability, sd_webui or replicate. The provider's key must be set below.",
            "default": "placeholder", "required": False,
        },
    }
    for name, title, description, sensitive in asked:
        user_config[name.lower()] = {"type": "string", "title": title, "description": description,
                                     "sensitive": sensitive, "required": False}
    return {
        "$schema": "https://raw.githubusercontent.com/modelcontextprotocol/mcpb/main/schemas/mcpb-manifest-v0.4.schema.json",
        "manifest_version": "0.4",
        "name": "context-server",
        "display_name": "Context Server: image generation with memory",
        "version": project_version(),
        "description": "Image generation that remembers your styles, finds earlier images by meaning and keeps "
                       "prompt templates; offline by default.",
        "long_description": (ROOT / "README.md").read_text(encoding="utf-8").split("\n\n")[1],
        "author": {"name": "context-server contributors"},
        "license": "MIT",
        "keywords": ["image generation", "memory", "prompt templates", "stable diffusion", "openai"],
        "server": {
            "type": "uv",
            "entry_point": "server/main.py",
            "mcp_config": {
                "command": "uv",
                "args": ["run", "--directory", "${__dirname}", "server/main.py"],
                "env": env,
            },
        },
        "tools": asyncio.run(_tools()),
        "tools_generated": False,
        "prompts": _prompts(),
        "prompts_generated": True,
        "user_config": user_config,
        "compatibility": {
            "platforms": ["darwin", "win32", "linux"],
            "runtimes": {"python": ">=3.11"},
        },
    }


def stage(target: Path) -> Path:
    """Lay the bundle's folder out in `target` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORED)
        else:
            shutil.copy2(source, target / name)
    shutil.copytree(ROOT / "packaging" / "bundle" / "server", target / "server", ignore=IGNORED)
    (target / "manifest.json").write_text(json.dumps(manifest(), indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    (target / ".mcpbignore").write_text(".venv/\n__pycache__/\n*.pyc\nserver/lib/\nserver/venv/\n",
                                        encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="Output folder (default dist/).")
    parser.add_argument("--mcpb", default=DEFAULT_MCPB, help=f"The mcpb command (default: {DEFAULT_MCPB}).")
    parser.add_argument("--stage-only", action="store_true", help="Lay the folder out; do not validate or pack.")
    args = parser.parse_args(argv)
    folder = stage(args.out / "bundle")
    if args.stage_only:
        sys.stderr.write(f"bundle folder: {folder}\n")
        return 0
    mcpb = shlex.split(args.mcpb)
    output = args.out / f"context-server-{project_version()}.mcpb"
    for step in (["validate", str(folder / "manifest.json")], ["pack", str(folder), str(output)]):
        done = subprocess.run([*mcpb, *step], stdout=sys.stderr, check=False)
        if done.returncode != 0:
            sys.stderr.write(f"mcpb {step[0]} failed (exit {done.returncode})\n")
            return 1
    sys.stderr.write(f"bundle: {output} ({output.stat().st_size / 1024:.0f} KiB)\n")
    return 0


if __name__ == "__main__":
    from context_server.startup import command_start

    with command_start():  # the server is built to list its tools: the SDK's models built on first use
        code = main()
    sys.exit(code)
