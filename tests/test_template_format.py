"""The template file format and body language: parsing, dumping, validation, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_server.adapters.store import resource_dir
from context_server.domain.templates.body import Placeholder, parse_body, render_body
from context_server.domain.templates.format import (
    MAX_ARGUMENTS,
    MAX_BODY_CHARS,
    TemplateArgument,
    TemplateDefinition,
    check_name,
    dump_template_text,
    parse_template_text,
    validate_definition,
)
from context_server.errors import InvalidInput

EXAMPLE = """---
# a comment line is ignored
name: fox-card
description: "Greeting card: a fox"
arguments:
  - name: subject
    description: What the card shows
    required: true
    examples: ["a fox", "a hare"]
  - name: mood
    description: 'it''s the mood'
    required: false
    default: cheerful
    examples:
      - calm
      - wild
---
A card showing {subject}, {mood}, with a {{curly}} frame.
"""


def test_parse_reads_every_field() -> None:
    d = parse_template_text(EXAMPLE)
    assert d.name == "fox-card"
    assert d.description == "Greeting card: a fox"
    assert d.body == "A card showing {subject}, {mood}, with a {{curly}} frame."
    assert d.arguments == [
        TemplateArgument("subject", "What the card shows", True, None, ["a fox", "a hare"]),
        TemplateArgument("mood", "it's the mood", False, "cheerful", ["calm", "wild"]),
    ]


def test_dump_then_parse_round_trips() -> None:
    d = parse_template_text(EXAMPLE)
    assert parse_template_text(dump_template_text(d, comment="exported")) == d


def test_dumped_front_matter_is_yaml_with_the_same_meaning() -> None:
    yaml = pytest.importorskip("yaml")
    d = TemplateDefinition(
        "tricky",
        "Starts plain: then a colon, # and 'quotes'",
        "x {a} {b}",
        [
            TemplateArgument("a", "yes", False, "true"),
            TemplateArgument("b", "- dash", False, "", ["1.5", 'say "hi"']),
        ],
    )
    text = dump_template_text(d)
    loaded = yaml.safe_load(text.split("---\n")[1])
    assert loaded["description"] == d.description
    assert loaded["arguments"][0] == {"name": "a", "description": "yes", "required": False, "default": "true"}
    assert loaded["arguments"][1]["description"] == "- dash"
    assert loaded["arguments"][1]["default"] == ""
    assert loaded["arguments"][1]["examples"] == ["1.5", 'say "hi"']
    assert parse_template_text(text) == d


def test_crlf_and_bom_are_accepted() -> None:
    text = "\ufeff" + EXAMPLE.replace("\n", "\r\n")
    assert parse_template_text(text) == parse_template_text(EXAMPLE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n---\nbody", "starts with a '---' line"),
        ("---\nname: x\nbody", "not closed"),
        ("---\ndescription: d\n---\nbody", "needs a 'name:'"),
        ("---\nname: x\ncolour: red\n---\nbody", "unknown key 'colour'"),
        ("---\nname: x\nname: y\n---\nbody", "appears twice"),
        ("---\nname: x\ndescription: a: b\n---\nbody", "double quotes"),
        ("---\nname: x\narguments:\n  - name: a\n    required: maybe\n---\n{a}", "true or false"),
        ("---\nname: x\narguments:\n  - name: a\n    colour: red\n---\n{a}", "unknown argument key"),
        ("---\nname: x\narguments:\n\t- name: a\n---\n{a}", "spaces, not tabs"),
        ('---\nname: x\ndescription: "open\n---\nbody', "double-quoted"),
        ("---\nname: Bad Name\n---\nbody", "invalid template name"),
    ],
)
def test_malformed_files_are_refused_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_template_text(text)


@pytest.mark.parametrize("name", ["", "Photo", "my_template", "a b", "x" * 65, "émoji", "../etc", "a.b"])
def test_bad_names_are_refused_with_the_allowed_form(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"lowercase letters, digits and '-', 1 to 64"):
        check_name(name)


def test_good_names_pass() -> None:
    for name in ("photo", "product-shot", "a", "x" * 64, "v2-final"):
        assert check_name(name) == name


@pytest.mark.parametrize(
    "body",
    [
        "{prompt.__class__}",
        "{0}",
        "{}",
        "{a[0]}",
        "{a!r}",
        "{a:>10}",
        "{ a }",
        "{Subject}",
        "{a.__globals__[os]}",
        "an unmatched { brace",
        "an unmatched } brace",
        "{a {b}",
    ],
)
def test_anything_but_simple_placeholders_is_refused(body: str) -> None:
    with pytest.raises(InvalidInput, match=r"placeholder|unmatched"):
        parse_body(body)


def test_refusal_names_the_position_and_the_escape() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_body("line one\nsee {a.__class__} here")
    message = str(error.value)
    assert "line 2, column 5" in message
    assert "{{" in message and "literal braces" in message


def test_double_braces_are_literal_and_never_placeholders() -> None:
    parts = parse_body("{{subject}} is {subject}}}")
    assert parts == ["{subject} is ", Placeholder("subject"), "}"]
    assert render_body(parts, {"subject": "x"}) == "{subject} is x}"


def test_values_are_substituted_once_never_expanded() -> None:
    parts = parse_body("A {a} and {b}")
    assert render_body(parts, {"a": "{b}", "b": "{a.__class__}"}) == "A {b} and {a.__class__}"


def test_empty_optional_value_leaves_tidy_punctuation() -> None:
    parts = parse_body("A photo of {subject}, {mood}, at dusk ({extra}).")
    assert render_body(parts, {"subject": "a fox", "mood": "", "extra": ""}) == "A photo of a fox, at dusk."


def _definition(body: str, arguments: list[TemplateArgument]) -> TemplateDefinition:
    return TemplateDefinition("t", "d", body, arguments)


def test_undeclared_placeholder_is_refused_naming_the_declared_ones() -> None:
    with pytest.raises(InvalidInput, match=r"uses \{style\}.*declared arguments are: subject"):
        validate_definition(_definition("{subject} {style}", [TemplateArgument("subject", required=True)]))


def test_declared_but_unused_argument_is_refused() -> None:
    with pytest.raises(InvalidInput, match="never used"):
        validate_definition(_definition("{a}", [TemplateArgument("a"), TemplateArgument("b")]))


def test_limits_on_body_and_argument_count() -> None:
    with pytest.raises(InvalidInput, match=f"limit is {MAX_BODY_CHARS}"):
        validate_definition(_definition("x" * (MAX_BODY_CHARS + 1), []))
    many = [TemplateArgument(f"a{i}") for i in range(MAX_ARGUMENTS + 1)]
    body = " ".join(f"{{a{i}}}" for i in range(MAX_ARGUMENTS + 1))
    with pytest.raises(InvalidInput, match=f"at most {MAX_ARGUMENTS} arguments"):
        validate_definition(_definition(body, many))


def test_required_argument_with_a_default_is_contradictory() -> None:
    with pytest.raises(InvalidInput, match="cannot have a default"):
        validate_definition(_definition("{a}", [TemplateArgument("a", required=True, default="x")]))


def test_control_and_bidi_characters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="U\\+202E"):
        validate_definition(_definition("safe \u202e txt", []))
    with pytest.raises(InvalidInput, match="U\\+0000"):
        validate_definition(_definition("nul \x00", []))


DOCS = Path(__file__).resolve().parent.parent / "docs" / "templates.md"


def test_the_documented_example_is_a_valid_template() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("```markdown\n", 1)[1].split("```", 1)[0]
    d = parse_template_text(example)
    assert d.name == "fox-card" and [a.name for a in d.arguments] == ["subject", "season"]
    rendered = render_body(parse_body(d.body), {"subject": "a fox", "season": d.arguments[1].default or ""})
    assert "{holly leaves}" in rendered and "a snowy winter evening" in rendered


def test_every_builtin_is_listed_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for path in sorted(resource_dir("prompts").glob("*.md")):
        assert f"| `{path.stem}` |" in text, f"docs/templates.md does not list {path.stem}"
