"""A lean `tools/list`: the schemas pydantic generates, without what no model or client reads.

Every tool list is sent to the model on every turn, so its size is a cost paid over and over. pydantic's
schemas repeat a `title` for every property ("Job Id" for `job_id`), spell `X | None` as a two-member
`anyOf` with `"default": null`, and give every output field its default. Here:

- `title` keys (the schema's name for a property, not a property called "title") are dropped;
- in input schemas, `X | None = None` becomes plain `X` with its constraints (leaving the argument out
  is how a model says "none"; an explicit null is still accepted);
- in output schemas, `X | None` becomes `"type": [X, "null"]`; defaults, descriptions and `required` are
  dropped (every result carries every field, the model reads the result's text, and SPEC §3 documents
  the fields);
- `"additionalProperties": true` (the default) is dropped, and so is `"type": "object"` on the nested
  parts of an output schema that list `properties`;
- a part used more than once in a schema is written once under `$defs` and referenced; a `$defs` entry
  used once is put in place (the reference and the name cost more than they share);
- objects nested deeper than `OUTPUT_DEPTH` in an output schema are plain objects: the result's fields and
  those of `applied` are spelled out, one applied style or the chosen reference is not (SPEC §3 has them).

Budgets (tests/test_result_texts.py fails past them): the whole list ≤ `TOOL_LIST_BUDGET` characters of
JSON, output schemas included; the model-facing part (names, descriptions, input schemas) ≤
`MODEL_FACING_BUDGET`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

__all__ = ["MODEL_FACING_BUDGET", "TOOL_LIST_BUDGET", "ToolBuilder", "compact_schema", "compact_tool"]

TOOL_LIST_BUDGET = 25_000
MODEL_FACING_BUDGET = 12_000


def compact_tool(tool: Tool) -> None:
    """Rewrite a tool's input and output schemas in place (the SDK has no public way to edit a tool)."""
    tool.parameters = compact_schema(tool.parameters, output=False)
    output = tool.fn_metadata.output_schema
    if output is not None:
        tool.fn_metadata.output_schema = compact_schema(output, output=True)
        tool.__dict__.pop("output_schema", None)  # a cached_property on Tool


class ToolBuilder:
    """Builds each tool's description once per process: its argument model and its compacted schemas.

    The SDK derives a tool from its function's signature (pydantic models and JSON schemas, about 8 ms a
    tool, 0.15 s for the whole list). The signatures are fixed in the code; only the function differs from
    one server to the next (each closes over its own App). So the first server built in a process pays,
    and a later one (the in-process servers of the tests, a server restarted in one process) gets a copy
    of the built tool with its own function. The copies share the schemas and the argument model, which
    nothing changes after `compact_tool`.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[Any, ...], Tool] = {}

    def build(self, fn: Callable[..., Any], **options: Any) -> Tool:
        """`Tool.from_function(fn, **options)`, compacted; the same function code with the same options
        (its signature, defaults, name, title, annotations, meta) is built once."""
        from mcp.server.mcpserver.tools import Tool

        code = inspect.unwrap(fn)
        # Everything the SDK reads to describe a tool: two closures over one code object share a key only
        # when their annotations, defaults and docstrings are equal too.
        key = (getattr(code, "__code__", code), repr(getattr(code, "__defaults__", None)),
               repr(getattr(code, "__kwdefaults__", None)), repr(getattr(code, "__annotations__", None)),
               getattr(code, "__doc__", None), repr(sorted(options.items())))
        built = self._built.get(key)
        if built is None:
            built = Tool.from_function(fn, **options)
            compact_tool(built)
            self._built[key] = built
        return built.model_copy(update={"fn": fn})


#: Output schemas spell out objects this deep (the result's fields, and the fields of `applied`); parts below
#: it (one applied style, the chosen reference) are plain objects whose fields SPEC §3 documents.
OUTPUT_DEPTH = 2


def compact_schema(schema: dict[str, Any], *, output: bool) -> dict[str, Any]:
    compact: dict[str, Any] = _compact(schema, output=output, in_properties=False, root=True)
    compact = _inline_single_use(compact)
    return _shallow(compact, 0) if output else compact


def _shallow(node: dict[str, Any], depth: int) -> dict[str, Any]:
    """`node` with every object nested deeper than `OUTPUT_DEPTH` written as a plain object (or null)."""
    if depth > OUTPUT_DEPTH and "properties" in node:
        return {"type": "object"}
    out = dict(node)
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: _shallow(value, depth + 1) for name, value in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _shallow(node["items"], depth + 1)
    if isinstance(node.get("anyOf"), list):
        members = [_shallow(m, depth) if isinstance(m, dict) else m for m in node["anyOf"]]
        if depth + 1 > OUTPUT_DEPTH and {"type": "null"} in members and {"type": "object"} in members:
            return {k: v for k, v in out.items() if k != "anyOf"} | {"type": ["object", "null"]}
        out["anyOf"] = members
    return out


def _inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    """Put a `$defs` entry referenced once in place of its `$ref`; entries used more than once stay shared."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema
    text = json.dumps(schema)
    once = {name for name in defs if text.count(f'"#/$defs/{name}"') == 1}
    if not once:
        return schema

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in once and len(node) == 1:
            return walk(defs[ref[8:]])
        return {key: walk(value) for key, value in node.items() if key != "$defs"}

    out: dict[str, Any] = walk(schema)
    kept = {name: walk(body) for name, body in defs.items() if name not in once}
    if kept:
        out["$defs"] = kept
    return out


def _compact(node: Any, *, output: bool, in_properties: bool, root: bool = False) -> Any:
    if isinstance(node, list):
        return [_compact(item, output=output, in_properties=False) for item in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # keys are property names, values are schemas
        return {name: _compact(value, output=output, in_properties=False) for name, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if output and key in ("default", "description", "required"):
            continue
        if key == "additionalProperties" and value is True:  # the default
            continue
        if output and not root and key == "type" and value == "object" and "properties" in node:
            continue  # `properties` says it; only the root must state "object" (MCP)
        out[key] = _compact(value, output=output, in_properties=key in ("properties", "$defs"))
    members = out.get("anyOf")
    if isinstance(members, list) and len(members) == 2 and {"type": "null"} in members:
        other = next(m for m in members if m != {"type": "null"})
        del out["anyOf"]
        if not output:
            if "default" in out and out["default"] is None:
                del out["default"]
            return {**other, **out}
        if set(other) <= {"type", "items", "minimum", "maximum", "minLength", "maxLength",
                          "maxItems", "additionalProperties", "format"} and isinstance(other.get("type"), str):
            return {**other, "type": [other["type"], "null"], **out}
        out["anyOf"] = [other, {"type": "null"}]
    return out
