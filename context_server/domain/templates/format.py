"""The template text format, shared by the built-ins in `prompts/` and by CLI import/export.

    ---
    name: watercolour
    description: Loose watercolour illustration on textured paper.
    arguments:
      - name: subject
        description: What the picture shows
        required: true
        examples: ["a lighthouse on a cliff", "a fox in the snow"]
      - name: palette
        description: Colours to favour
        required: false
        default: soft blues and warm ochres
    ---
    A watercolour painting of {subject}, in {palette} ...

The front matter is a strict subset of YAML (so editors highlight it and PyYAML reads it), parsed
here by hand: it is three keys and a list of small mappings, and a strict parser gives errors with
line numbers and never builds arbitrary objects. Scalars are plain text, "double-quoted" (JSON
escapes) or 'single-quoted'; `examples` is a flow list; comments only on lines of their own.

The body language (`{name}` placeholders only, `{{`/`}}` for braces) lives in `template_body`;
`validate_definition` here ties the two together: every placeholder declared, every argument used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from context_server.domain.templates.body import ARGUMENT_RULE, Placeholder, is_argument_name, parse_body
from context_server.errors import InvalidInput

__all__ = [
    "MAX_ARGUMENTS",
    "MAX_BODY_CHARS",
    "MAX_VALUE_CHARS",
    "NAME_RULE",
    "TemplateArgument",
    "TemplateDefinition",
    "argument_from_mapping",
    "check_name",
    "dump_template_text",
    "parse_template_text",
    "validate_definition",
]

MAX_BODY_CHARS = 8000
MAX_DESCRIPTION_CHARS = 500
MAX_ARGUMENTS = 20
MAX_VALUE_CHARS = 2000
MAX_EXAMPLES = 20
MAX_EXAMPLE_CHARS = 200

NAME_RULE = "lowercase letters, digits and '-', 1 to 64 characters (e.g. 'product-shot')"
_NAME = re.compile(r"[a-z0-9-]{1,64}")
# C0/C1 controls other than tab and newline, and the bidi overrides that can disguise text.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class TemplateArgument:
    """One `{placeholder}` a template accepts. Optional arguments render as `default` when absent."""

    name: str
    description: str = ""
    required: bool = False
    default: str | None = None
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": self.required,
            "default": self.default,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class TemplateDefinition:
    """What a template file holds; the library adds version and source."""

    name: str
    description: str
    body: str
    arguments: list[TemplateArgument] = field(default_factory=list)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"invalid template name {name!r}: use {NAME_RULE}")
    return name


def _check_text(value: str, what: str) -> None:
    bad = _FORBIDDEN_CHARS.search(value)
    if bad:
        raise InvalidInput(f"{what} contains a control or bidi-override character (U+{ord(bad.group()):04X})")


def validate_definition(definition: TemplateDefinition) -> TemplateDefinition:
    """Every rule a template must meet before it is stored or shipped; errors say what is allowed."""
    name = check_name(definition.name)
    if len(definition.description) > MAX_DESCRIPTION_CHARS or "\n" in definition.description:
        raise InvalidInput(f"template description must be one line of at most {MAX_DESCRIPTION_CHARS} chars")
    _check_text(definition.description, "the description")
    body = definition.body
    if not body.strip():
        raise InvalidInput("template body is empty: write the prompt text, with {placeholders}")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(f"template body has {len(body)} characters; the limit is {MAX_BODY_CHARS}")
    _check_text(body, "the body")
    if len(definition.arguments) > MAX_ARGUMENTS:
        raise InvalidInput(f"a template takes at most {MAX_ARGUMENTS} arguments")
    declared: list[str] = []
    for argument in definition.arguments:
        _validate_argument(argument)
        if argument.name in declared:
            raise InvalidInput(f"argument {argument.name!r} is declared twice")
        declared.append(argument.name)
    used = {part.name for part in parse_body(body) if isinstance(part, Placeholder)}
    undeclared = sorted(used - set(declared))
    if undeclared:
        raise InvalidInput(
            f"the body uses {', '.join('{' + n + '}' for n in undeclared)} but the declared arguments are: "
            f"{', '.join(declared) or '(none)'}; declare it, or write '{{{{' and '}}}}' for literal braces"
        )
    unused = [n for n in declared if n not in used]
    if unused:
        raise InvalidInput(
            f"argument(s) {', '.join(unused)} are declared but never used as {{name}} in the body"
        )
    return TemplateDefinition(name, definition.description.strip(), body.strip(), list(definition.arguments))


def _validate_argument(argument: TemplateArgument) -> None:
    if not isinstance(argument.name, str) or not is_argument_name(argument.name):
        raise InvalidInput(f"invalid argument name {argument.name!r}: use {ARGUMENT_RULE}")
    label = f"argument {argument.name!r}"
    if len(argument.description) > MAX_DESCRIPTION_CHARS or "\n" in argument.description:
        raise InvalidInput(f"{label}: description must be one line of at most {MAX_DESCRIPTION_CHARS} chars")
    _check_text(argument.description, f"{label}'s description")
    if argument.required and argument.default is not None:
        raise InvalidInput(f"{label} is required, so it cannot have a default; make it optional or drop it")
    if argument.default is not None:
        if len(argument.default) > MAX_VALUE_CHARS:
            raise InvalidInput(f"{label}: default is longer than {MAX_VALUE_CHARS} characters")
        _check_text(argument.default, f"{label}'s default")
    if len(argument.examples) > MAX_EXAMPLES:
        raise InvalidInput(f"{label}: at most {MAX_EXAMPLES} examples")
    for example in argument.examples:
        if not isinstance(example, str) or not example.strip() or len(example) > MAX_EXAMPLE_CHARS:
            raise InvalidInput(f"{label}: each example must be text of 1 to {MAX_EXAMPLE_CHARS} characters")
        _check_text(example, f"{label}'s examples")


_ARGUMENT_KEYS = ("name", "description", "required", "default", "examples")


def argument_from_mapping(raw: Mapping[str, Any] | TemplateArgument) -> TemplateArgument:
    """Build an argument from a tool's JSON object, checking key names and types."""
    if isinstance(raw, TemplateArgument):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidInput("each argument must be an object with name, description, required")
    unknown = sorted(set(raw) - set(_ARGUMENT_KEYS))
    if unknown:
        allowed = ", ".join(_ARGUMENT_KEYS)
        raise InvalidInput(f"unknown argument field(s) {', '.join(unknown)}; allowed: {allowed}")
    name, description = raw.get("name"), raw.get("description") or ""
    # An argument without a default is required unless it says otherwise: a placeholder left empty
    # renders a broken prompt ("Retro neon poster of, glowing pink").
    default, examples = raw.get("default"), raw.get("examples") or []
    required = raw.get("required", default is None)
    if not isinstance(name, str):
        raise InvalidInput("every argument needs a name")
    if not isinstance(description, str):
        raise InvalidInput(f"argument {name!r}: description must be text")
    if not isinstance(required, bool):
        raise InvalidInput(f"argument {name!r}: required must be true or false")
    if default is not None and not isinstance(default, str):
        raise InvalidInput(f"argument {name!r}: default must be text")
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise InvalidInput(f"argument {name!r}: examples must be a list of text")
    return TemplateArgument(name, description.strip(), required, default, list(examples))


# --- text format -------------------------------------------------------------------------------


def parse_template_text(text: str) -> TemplateDefinition:
    """Parse a template file; errors name the line. The result is validated."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        raise InvalidInput("a template file starts with a '---' line, then the front matter, then '---'")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise InvalidInput("the front matter is not closed: add a '---' line before the body") from None
    fields, arguments = _parse_front_matter(lines[1:end])
    if "name" not in fields:
        raise InvalidInput("the front matter needs a 'name:' line")
    definition = TemplateDefinition(
        name=fields["name"],
        description=fields.get("description", ""),
        body="\n".join(lines[end + 1 :]),
        arguments=[argument_from_mapping(raw) for raw in arguments],
    )
    return validate_definition(definition)


def _parse_front_matter(lines: list[str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    fields: dict[str, str] = {}
    arguments: list[dict[str, Any]] = []
    in_arguments = False
    seen: set[str] = set()
    list_key: tuple[dict[str, Any], str, int] | None = None  # (item, key, indent) of a block list
    for number, line in enumerate(lines, start=2):
        where = f"front matter line {number}"
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise InvalidInput(f"{where}: indent with spaces, not tabs")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if list_key is not None and indent > list_key[2] and stripped.startswith("- "):
            list_key[0][list_key[1]].append(_scalar(stripped[2:], where))
            continue
        list_key = None
        if indent == 0:
            key, value = _key_value(stripped, where)
            if key in seen:
                raise InvalidInput(f"{where}: {key!r} appears twice")
            seen.add(key)
            in_arguments = key == "arguments"
            if in_arguments:
                if value not in ("", "[]"):
                    raise InvalidInput(f"{where}: write 'arguments:' followed by '- name: ...' items")
                continue
            if key not in ("name", "description"):
                raise InvalidInput(f"{where}: unknown key {key!r}; allowed: name, description, arguments")
            fields[key] = _scalar(value, where)
            continue
        if not in_arguments:
            raise InvalidInput(f"{where}: unexpected indented line (only 'arguments:' has items)")
        if stripped.startswith("- ") or stripped == "-":
            arguments.append({})
            stripped, indent = stripped[1:].strip(), indent + 2
            if not stripped:
                continue
        if not arguments:
            raise InvalidInput(f"{where}: argument items start with '- '")
        key, value = _key_value(stripped, where)
        item = arguments[-1]
        if key not in _ARGUMENT_KEYS:
            raise InvalidInput(f"{where}: unknown argument key {key!r}; allowed: {', '.join(_ARGUMENT_KEYS)}")
        if key in item:
            raise InvalidInput(f"{where}: {key!r} appears twice in one argument")
        if key == "required":
            if value not in ("true", "false"):
                raise InvalidInput(f"{where}: required must be true or false")
            item[key] = value == "true"
        elif key == "examples":
            item[key] = _flow_list(value, where) if value else []
            if not value:
                list_key = (item, key, indent)
        else:
            item[key] = _scalar(value, where)
    return fields, arguments


def _key_value(stripped: str, where: str) -> tuple[str, str]:
    key, sep, value = stripped.partition(":")
    if not sep or not re.fullmatch(r"[a-z_]+", key):
        raise InvalidInput(f"{where}: expected 'key: value', got {stripped[:60]!r}")
    if value and not value.startswith(" "):
        raise InvalidInput(f"{where}: put a space after '{key}:'")
    return key, value.strip()


def _scalar(raw: str, where: str) -> str:
    raw = raw.strip()
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidInput(f"{where}: bad double-quoted text (JSON escapes, closing quote)") from None
        if not isinstance(value, str):
            raise InvalidInput(f"{where}: expected text")
        return value
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'") or re.search(r"(?<!')'(?!')", raw[1:-1]):
            raise InvalidInput(f"{where}: bad single-quoted text (write '' for a quote inside)")
        return raw[1:-1].replace("''", "'")
    if raw.startswith(("[", "{", "|", ">", "&", "*", "!", "%", "@", "`")) or ": " in raw or " #" in raw:
        raise InvalidInput(f'{where}: put this value in double quotes ("..."), as YAML would need')
    return raw


def _flow_list(raw: str, where: str) -> list[str]:
    if not (raw.startswith("[") and raw.endswith("]")):
        raise InvalidInput(f'{where}: examples is a list: ["one", "two"] or "- item" lines below it')
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        if any(c in raw[1:-1] for c in "\"'[]{}"):
            raise InvalidInput(f'{where}: write the list as ["one", "two"]') from None
        value = [item.strip() for item in raw[1:-1].split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{where}: examples must be a list of text")
    return value


_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def _dump_scalar(value: str) -> str:
    plain = (
        value
        and value == value.strip()
        and not value.startswith(tuple("\"'[]{}#&*!|>%@,-?:`"))
        and ": " not in value
        and " #" not in value
        and not value.endswith(":")
        and value.lower() not in _YAML_WORDS
        and not re.fullmatch(r"[-+.0-9eE_]+", value)
        and value.isprintable()
    )
    return value if plain else json.dumps(value, ensure_ascii=False)


def dump_template_text(definition: TemplateDefinition, comment: str | None = None) -> str:
    """The canonical text of a template: `parse_template_text(dump_template_text(d)) == d`."""
    out = ["---"]
    if comment:
        out += [f"# {line}".rstrip() for line in comment.splitlines()]
    out.append(f"name: {definition.name}")
    out.append(f"description: {_dump_scalar(definition.description)}")
    out.append("arguments:" if definition.arguments else "arguments: []")
    for argument in definition.arguments:
        out.append(f"  - name: {argument.name}")
        out.append(f"    description: {_dump_scalar(argument.description)}")
        out.append(f"    required: {'true' if argument.required else 'false'}")
        if argument.default is not None:
            out.append(f"    default: {_dump_scalar(argument.default)}")
        if argument.examples:
            out.append(f"    examples: {json.dumps(argument.examples, ensure_ascii=False)}")
    out += ["---", definition.body, ""]
    return "\n".join(out)
