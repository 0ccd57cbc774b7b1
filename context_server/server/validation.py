"""Argument errors the model can act on: one plain sentence per problem, naming the argument, the rule and
the value given, e.g. `width must be 64..4096; got 10`.

The SDK validates tool arguments with the pydantic model it builds from the tool function and reports
pydantic's own text (`1 validation error for generate_imageArguments … https://errors.pydantic.dev/…`).
`ContextServer.call_tool` catches that error and asks `explain` for sentences instead; the rules
(ranges, lengths, allowed values) are read from the tool's published input schema, so the sentence
always agrees with what `tools/list` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

__all__ = ["explain"]

def explain(error: ValidationError, schema: Mapping[str, Any] | None) -> str:
    """Every problem in `error` as a sentence, joined; `schema` is the tool's input schema."""
    sentences: list[str] = []
    for item in error.errors(include_url=False):
        sentence = _sentence(item, schema or {})
        if sentence not in sentences:
            sentences.append(sentence)
    return "; ".join(sentences) + "."


def _sentence(item: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    loc = [part for part in item.get("loc", ()) if not _is_union_tag(part)]
    name = _name(loc)
    kind = str(item.get("type", ""))
    ctx: Mapping[str, Any] = item.get("ctx") or {}
    given = item.get("input")
    rule = _rule(_field_schema(schema, loc))
    if kind == "missing":
        return f"{name} is required" + (f" ({rule})" if rule else "")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = ", ".join(sorted(_properties(schema, loc[:-1])))
        return f"{name} is not an argument of this tool" + (f"; allowed: {allowed}" if allowed else "")
    if kind in ("string_too_short", "string_too_long"):
        return f"{name} must be {rule or 'of a different length'}; got {_length(given)}"
    if kind in ("too_short", "too_long"):
        count = len(given) if isinstance(given, list | dict) else "?"
        return f"{name} must have {rule or 'a different number of items'}; got {count}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{name} must be {rule or _bound(kind, ctx)}; got {_show(given)}"
    if kind in ("literal_error", "enum"):
        return f"{name} must be {rule or 'one of ' + str(ctx.get('expected', ''))}; got {_show(given)}"
    if kind.endswith("_parsing") or kind.endswith("_type") or kind == "model_attributes_type":
        expected = _expected_type(kind)
        return f"{name} must be {expected}" + (f" ({rule})" if rule and expected not in rule else "") + \
            f"; got {_show(given)}"
    if kind == "url_scheme" or kind.startswith("url"):
        return f"{name} must be a URL ({ctx.get('expected_schemes', 'https')}); got {_show(given)}"
    message = str(item.get("msg", "is not valid")).rstrip(".")
    return f"{name}: {message[0].lower() + message[1:] if message else 'is not valid'}; got {_show(given)}"


def _is_union_tag(part: object) -> bool:
    """pydantic puts the union member it tried into `loc` ('str', 'int', 'list[str]', 'function-after[…]')."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "none", "list", "dict"}
                                      or "[" in part or part.startswith(("literal", "constrained")))


def _name(loc: list[Any]) -> str:
    if not loc:
        return "the arguments"
    out = str(loc[0])
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _properties(schema: Mapping[str, Any], loc: list[Any]) -> dict[str, Any]:
    node: Mapping[str, Any] | None = schema
    for part in loc:
        node = _child(schema, node, part)
        if node is None:
            return {}
    node = _resolve(schema, node) if node is not None else None
    return dict(node.get("properties", {})) if node else {}


def _field_schema(schema: Mapping[str, Any], loc: list[Any]) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for part in loc:
        node = _child(schema, node, part)
        if node is None:
            return None
    return node


def _child(root: Mapping[str, Any], node: Mapping[str, Any] | None, part: Any) -> Mapping[str, Any] | None:
    node = _resolve(root, node)
    if node is None:
        return None
    if isinstance(part, int):
        items = node.get("items")
        return items if isinstance(items, Mapping) else None
    props = node.get("properties")
    if isinstance(props, Mapping) and part in props:
        return props[part]  # type: ignore[no-any-return]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Follow `$ref` and step into the non-null member of an `X | None` union."""
    for _ in range(10):
        if node is None:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = root.get("$defs", {}).get(ref.split("/")[-1])
            continue
        members = [m for m in node.get("anyOf", []) if m.get("type") != "null"]
        if len(members) == 1:
            node = members[0]
            continue
        return node
    return node


def _rule(field: Mapping[str, Any] | None) -> str:
    """The field's constraint in words: `64..4096`, `1..4000 characters`, `one of day, month`."""
    field = _resolve({}, field) if field is not None and "$ref" not in field else field
    if not field:
        return ""
    if "enum" in field or "const" in field:
        values = field.get("enum") or [field.get("const")]
        return "one of " + ", ".join(json.dumps(v) if v == "" else str(v) for v in values)
    low, high = field.get("minimum", field.get("exclusiveMinimum")), field.get("maximum", field.get("exclusiveMaximum"))
    if low is not None or high is not None:
        return _range(low, high, "")
    low, high = field.get("minLength"), field.get("maxLength")
    if low is not None or high is not None:
        return _range(low, high, " characters")
    low, high = field.get("minItems"), field.get("maxItems")
    if low is not None or high is not None:
        return _range(low, high, " items")
    return ""


def _range(low: object, high: object, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low}..{high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return f"at most {high}{unit}"


def _bound(kind: str, ctx: Mapping[str, Any]) -> str:
    words = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
             "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}
    label, key = words[kind]
    return f"{label} {ctx.get(key, '')}".strip()


def _expected_type(kind: str) -> str:
    for prefix, words in (("int", "a whole number"), ("float", "a number"), ("bool", "true or false"),
                          ("string", "text"), ("str", "text"), ("list", "a list"), ("dict", "an object"),
                          ("model", "an object")):
        if kind.startswith(prefix):
            return words
    return "of another type"


def _length(value: object) -> str:
    return f"{len(value)} characters" if isinstance(value, str) else _show(value)


def _show(value: object) -> str:
    """The value given, short: long texts by their length, never Python's `None`."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value) if len(value) <= 60 else f"a text of {len(value)} characters"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = json.dumps(value, default=str)
    what = "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "a value"
    return text if len(text) <= 60 else f"{what} of {len(text)} characters"
