"""Cheap guards: layers import one way, each repeated fact has one home, every tool is fully described
(settings and verbs: test_docs.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parent.parent / "context_server"
ROOT = PACKAGE.parent

#: layer → packages it must never import (dependencies point server → domain → adapters → models). Settings
#: and the App are the composition root's: below it, parts get plain values; the server reaches files,
#: the index and providers only through the domain.
FORBIDDEN = {
    "server": ("context_server.adapters",),
    "domain": ("context_server.server", "context_server.cli", "mcp", "context_server.settings", "context_server.app"),
    "adapters": ("context_server.server", "context_server.cli", "context_server.domain", "mcp",
                 "context_server.settings", "context_server.app"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                found.add(".".join((*package, node.module or "")).rstrip("."))
            elif node.module:
                found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_in_one_direction(layer: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert offenders == []


async def test_every_tool_has_a_title_annotations_an_output_schema_and_described_parameters(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) >= 10
    for tool in tools:
        assert tool.title, tool.name
        assert tool.description and len(tool.description) > 20, tool.name
        assert tool.output_schema, tool.name
        ann = tool.annotations
        assert ann is not None, tool.name
        assert None not in (ann.read_only_hint, ann.destructive_hint, ann.idempotent_hint, ann.open_world_hint)
        for name, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"


async def test_annotations_tell_the_truth(client: Client) -> None:
    tools = {t.name: t.annotations for t in (await client.list_tools()).tools}
    for name in ("list_providers", "get_generation", "list_recent_generations", "list_templates", "get_usage"):
        assert tools[name].read_only_hint is True, name  # type: ignore[union-attr]
    for name in ("delete_image", "delete_template"):
        assert tools[name].destructive_hint is True, name  # type: ignore[union-attr]
    assert tools["generate_image"].read_only_hint is False  # type: ignore[union-attr]


def _sources() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "packaging").glob("*.py")])


def test_provider_variable_names_are_spelled_only_in_the_adapters_declarations() -> None:
    from context_server.adapters.providers.env import PROVIDER_ENVS

    home = PACKAGE / "adapters" / "providers" / "env.py"
    names = {name for env in PROVIDER_ENVS for name in (env.key, env.base) if name}
    bases = {env.default_base for env in PROVIDER_ENVS if env.default_base}
    offenders = [
        f"{path.relative_to(ROOT)} spells {word}"
        for path in _sources() if path != home
        for word in sorted(names | bases) if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_the_image_view_uri_is_built_only_by_image_uri() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in _sources()
                 if path != PACKAGE / "models.py" and re.search(r"image://\{[^}]*\}/view[\"']", path.read_text(encoding="utf-8"))]
    assert offenders == []
