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

The front matter is YAML read by PyYAML, then checked strictly: three keys and a list of small
mappings, every value text (`required` is true or false), errors with line numbers, and nothing built
but text, lists and mappings (no YAML tags, no implicit types: `default: yes` is the text "yes").

The body language (`{name}` placeholders only, `{{`/`}}` for braces) lives in `template_body`;
`validate_definition` here ties the two together: every placeholder declared, every argument used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode
from yaml.resolver import BaseResolver

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


#: The only node tags the front matter may hold: YAML's plain text, lists and mappings (no `!!python/...`).
_STR, _SEQ, _MAP = BaseResolver.DEFAULT_SCALAR_TAG, BaseResolver.DEFAULT_SEQUENCE_TAG, BaseResolver.DEFAULT_MAPPING_TAG


def _parse_front_matter(lines: list[str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """PyYAML composes the front matter into nodes (`BaseLoader`: no implicit types, so every scalar is the
    text written, and nothing is ever constructed); the walk below checks their shape and reports the line."""
    for number, line in enumerate(lines, start=2):
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise InvalidInput(f"front matter line {number}: indent with spaces, not tabs")
    try:
        root = yaml.compose("\n".join(lines), Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        raise InvalidInput(_yaml_error(exc, lines)) from None
    if root is None:
        return {}, []
    _expect(root, _MAP, "the front matter must be 'key: value' lines")
    fields: dict[str, str] = {}
    arguments: list[dict[str, Any]] = []
    for key, value in _pairs(root):
        if key == "arguments":
            if isinstance(value, ScalarNode) and value.value == "":
                continue
            _expect(value, _SEQ, "write 'arguments:' followed by '- name: ...' items")
            arguments = [_argument(item) for item in value.value]
        elif key in ("name", "description"):
            fields[key] = _text(value)
        else:
            raise InvalidInput(f"{_where(_key_node(root, key))}: unknown key {key!r}; allowed: name, description, "
                               "arguments")
    return fields, arguments


def _argument(node: Node) -> dict[str, Any]:
    _expect(node, _MAP, "argument items start with '- ' and hold 'key: value' lines")
    item: dict[str, Any] = {}
    for key, value in _pairs(node, what="in one argument"):
        if key not in _ARGUMENT_KEYS:
            raise InvalidInput(f"{_where(_key_node(node, key))}: unknown argument key {key!r}; allowed: "
                               f"{', '.join(_ARGUMENT_KEYS)}")
        if key == "required":
            if _text(value) not in ("true", "false"):
                raise InvalidInput(f"{_where(value)}: required must be true or false")
            item[key] = value.value == "true"
        elif key == "examples":
            if isinstance(value, ScalarNode) and value.value == "":
                item[key] = []
                continue
            _expect(value, _SEQ, 'examples is a list: ["one", "two"] or "- item" lines below it')
            item[key] = [_text(example, "examples must be a list of text") for example in value.value]
        else:
            item[key] = _text(value)
    return item


def _pairs(node: Node, what: str = "") -> list[tuple[str, Node]]:
    seen: set[str] = set()
    pairs: list[tuple[str, Node]] = []
    for key_node, value in node.value:
        key = _text(key_node, "expected 'key: value'")
        if key in seen:
            raise InvalidInput(f"{_where(key_node)}: {key!r} appears twice{' ' + what if what else ''}")
        seen.add(key)
        pairs.append((key, value))
    return pairs


def _key_node(node: Node, key: str) -> Node:
    found: Node = next(k for k, _ in node.value if k.value == key)
    return found


def _text(node: Node, problem: str = "expected text (not a list, a mapping or a YAML tag)") -> str:
    _expect(node, _STR, problem)
    value: str = node.value
    return value


def _expect(node: Node, tag: str, problem: str) -> None:
    if node.tag != tag:
        raise InvalidInput(f"{_where(node)}: {problem}")


def _where(node: Node) -> str:
    return f"front matter line {node.start_mark.line + 2}"


def _yaml_error(exc: yaml.YAMLError, lines: list[str]) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError):  # e.g. a character YAML does not allow
        return f"front matter: {str(exc).splitlines()[0]}"
    mark = exc.problem_mark or exc.context_mark
    where = "front matter" if mark is None else f"front matter line {mark.line + 2}"
    opened = exc.context_mark
    if "quoted scalar" in (exc.context or "") and opened is not None:
        if lines[opened.line][opened.column : opened.column + 1] == '"':
            return f"{where}: bad double-quoted text (JSON escapes, closing quote)"
        return f"{where}: bad single-quoted text (write '' for a quote inside)"
    return (f"{where}: {exc.problem}; put text that holds ': ' or ' #', or starts with one of "
            f"[ {{ & * ! | > ' %, in double quotes (\"...\"), as YAML needs")


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, and examples on one line, as the built-ins
    are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


class _OneLine(list[str]):
    pass


_Dumper.add_representer(_OneLine, lambda dumper, data: dumper.represent_sequence(_SEQ, data, flow_style=True))


def dump_template_text(definition: TemplateDefinition, comment: str | None = None) -> str:
    """The canonical text of a template: `parse_template_text(dump_template_text(d)) == d`."""
    arguments = []
    for argument in definition.arguments:
        item: dict[str, Any] = {"name": argument.name, "description": argument.description,
                                "required": argument.required}
        if argument.default is not None:
            item["default"] = argument.default
        if argument.examples:
            item["examples"] = _OneLine(argument.examples)
        arguments.append(item)
    front = yaml.dump({"name": definition.name, "description": definition.description, "arguments": arguments},
                      Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                      width=1 << 16)
    out = ["---"]
    if comment:
        out += [f"# {line}".rstrip() for line in comment.splitlines()]
    out += [front.rstrip("\n"), "---", definition.body, ""]
    return "\n".join(out)
