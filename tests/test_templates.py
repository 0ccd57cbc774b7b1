"""The template library on a real SQLite store: built-ins, versions, overrides, users, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_server.adapters.store import Store, resource_dir
from context_server.domain.prompt_guide import prompt_guide
from context_server.domain.templates.library import Template, TemplateLibrary, load_builtins
from context_server.errors import InvalidInput, NotFound

ALICE, BOB = "alice", "bob"
BUILTINS = sorted(load_builtins(resource_dir("prompts")))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "context.db")
    store.migrate()
    return store


@pytest.fixture
def library(store: Store) -> TemplateLibrary:
    return TemplateLibrary(store)


def _required_args(template: Template) -> dict[str, str]:
    return {a.name: f"<{a.name}>" for a in template.arguments if a.required}


def test_at_least_ten_builtins_ship() -> None:
    assert len(BUILTINS) >= 10
    assert {"photo", "watercolour", "anime", "pixel-art", "vector-logo", "poster"} <= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_renders_with_its_required_arguments(library: TemplateLibrary, name: str) -> None:
    template = library.get(ALICE, name)
    assert template.source == "builtin" and template.version == 1 and template.versions == [1]
    assert template.description and any(a.required for a in template.arguments)
    text = library.render(ALICE, name, _required_args(template))
    for argument in template.arguments:
        if argument.required:
            assert f"<{argument.name}>" in text
        else:
            assert argument.default, f"optional {argument.name} needs a default"
            assert argument.default in text
    assert "{" not in text and "}" not in text and "  " not in text


def test_optional_argument_given_replaces_its_default(library: TemplateLibrary) -> None:
    text = library.render(ALICE, "photo", {"subject": "a fox", "lighting": "harsh noon sun"})
    assert "harsh noon sun" in text
    assert library.get(ALICE, "photo").arguments[2].default not in text


def test_list_merges_builtins_and_user_templates(library: TemplateLibrary) -> None:
    library.save(ALICE, "my-style", "a {thing} in my style", arguments=[{"name": "thing", "required": True}])
    names = [t.name for t in library.list(ALICE)]
    assert names == sorted([*BUILTINS, "my-style"])


def test_saving_twice_keeps_both_versions(library: TemplateLibrary) -> None:
    first = library.save(ALICE, "mine", "first {x}", "d1", [{"name": "x", "required": True}])
    second = library.save(ALICE, "mine", "second {x}", "d2", [{"name": "x", "required": True}])
    assert (first.version, second.version) == (1, 2)
    assert second.versions == [1, 2] and second.source == "user"
    assert library.get(ALICE, "mine").body == "second {x}"
    old = library.get(ALICE, "mine", version=1)
    assert (old.body, old.description, old.versions) == ("first {x}", "d1", [1, 2])
    assert library.render(ALICE, "mine", {"x": "a"}, version=1) == "first a"
    with pytest.raises(NotFound, match="kept versions: 1, 2"):
        library.get(ALICE, "mine", version=3)


def test_saving_unchanged_content_adds_no_version(library: TemplateLibrary) -> None:
    library.save(ALICE, "mine", "same body")
    assert library.save(ALICE, "mine", "same body").versions == [1]


def test_user_template_overrides_builtin_until_deleted(library: TemplateLibrary) -> None:
    override = library.save(ALICE, "photo", "my own photo of {subject}", arguments=[{"name": "subject"}])
    assert override.source == "user" and override.overrides_builtin
    assert library.render(ALICE, "photo", {"subject": "a cat"}) == "my own photo of a cat"
    assert [t.source for t in library.list(ALICE) if t.name == "photo"] == ["user"]
    # Bob still sees the built-in.
    assert library.get(BOB, "photo").source == "builtin"
    restored = library.delete(ALICE, "photo")
    assert restored is not None and restored.source == "builtin"
    assert library.get(ALICE, "photo").source == "builtin"


def test_deleting_a_builtin_without_override_is_refused(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput, match=r"built-in template.*cannot be deleted"):
        library.delete(ALICE, "photo")


def test_deleting_unknown_template_is_not_found(library: TemplateLibrary) -> None:
    with pytest.raises(NotFound, match="unknown template 'nope'"):
        library.delete(ALICE, "nope")


def test_deleted_template_is_gone_and_numbering_continues(library: TemplateLibrary) -> None:
    library.save(ALICE, "mine", "v1")
    library.save(ALICE, "mine", "v2")
    assert library.delete(ALICE, "mine") is None
    with pytest.raises(NotFound):
        library.get(ALICE, "mine")
    assert "mine" not in [t.name for t in library.list(ALICE)]
    again = library.save(ALICE, "mine", "fresh")
    assert (again.version, again.versions) == (3, [3])


def test_another_users_templates_are_invisible(library: TemplateLibrary) -> None:
    library.save(ALICE, "secret", "alice's {x}", arguments=[{"name": "x"}])
    assert "secret" not in [t.name for t in library.list(BOB)]
    for call in (
        lambda: library.get(BOB, "secret"),
        lambda: library.render(BOB, "secret", {"x": "1"}),
        lambda: library.export_text(BOB, "secret"),
        lambda: library.delete(BOB, "secret"),
    ):
        with pytest.raises(NotFound, match="unknown template 'secret'"):
            call()
    assert "secret" not in library.complete_template_names(BOB, "s")
    # Bob's own template of the same name is numbered independently.
    assert library.save(BOB, "secret", "bob's").version == 1
    assert library.get(ALICE, "secret").body == "alice's {x}"


@pytest.mark.parametrize("name", ["Photo", "my template", "x" * 65, "../x", ""])
def test_bad_names_are_refused_everywhere(library: TemplateLibrary, name: str) -> None:
    with pytest.raises(InvalidInput, match="lowercase letters, digits and '-'"):
        library.save(ALICE, name, "body")
    with pytest.raises(InvalidInput, match="lowercase letters, digits and '-'"):
        library.get(ALICE, name)


def test_missing_required_argument_is_named(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput, match=r"missing required argument\(s\) subject .*'photo'"):
        library.render(ALICE, "photo", {"mood": "sad"})
    with pytest.raises(InvalidInput, match="missing required"):
        library.render(ALICE, "photo", {"subject": "   "})


def test_unknown_argument_is_named_with_the_allowed_ones(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput, match=r"unknown argument\(s\) colour .*its arguments: subject, setting"):
        library.render(ALICE, "photo", {"subject": "a fox", "colour": "red"})


def test_non_text_argument_values_are_refused(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput, match="must be text or a number"):
        library.render(ALICE, "photo", {"subject": {"__class__": 1}})
    assert library.render(ALICE, "photo", {"subject": 3}).startswith("A photorealistic photograph of 3,")


def test_unknown_template_lists_what_is_available(library: TemplateLibrary) -> None:
    with pytest.raises(NotFound, match="unknown template 'nope'; available: anime"):
        library.render(ALICE, "nope", {})


@pytest.mark.parametrize("body", ["{prompt.__class__}", "{0}", "{a[0]}", "{subject!r}", "{subject:>9}"])
def test_injection_attempts_are_refused_at_save(library: TemplateLibrary, body: str) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        library.save(ALICE, "evil", body, arguments=[{"name": "subject"}, {"name": "prompt"}, {"name": "a"}])
    with pytest.raises(NotFound):
        library.get(ALICE, "evil")


def test_argument_values_are_never_interpreted(library: TemplateLibrary) -> None:
    library.save(ALICE, "echo", "say {x}", arguments=[{"name": "x", "required": True}])
    assert library.render(ALICE, "echo", {"x": "{x.__class__} {{y}}"}) == "say {x.__class__} {{y}}"


def test_braces_escape_round_trip_through_storage(library: TemplateLibrary) -> None:
    library.save(ALICE, "json-ish", 'emit {{"subject": "{subject}"}}', arguments=[{"name": "subject"}])
    assert library.render(ALICE, "json-ish", {"subject": "fox"}) == 'emit {"subject": "fox"}'


def test_bad_argument_objects_are_refused(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput, match="unknown argument field"):
        library.save(ALICE, "t", "{x}", arguments=[{"name": "x", "type": "string"}])
    with pytest.raises(InvalidInput, match="invalid argument name"):
        library.save(ALICE, "t", "{x}", arguments=[{"name": "X-1"}])


def test_export_edit_import_gives_a_new_version(library: TemplateLibrary) -> None:
    text = library.export_text(ALICE, "watercolour")
    assert text.startswith("---\n# builtin template watercolour, version 1\nname: watercolour\n")
    edited = text.replace("A loose watercolour painting", "A tiny loose watercolour sketch")
    first = library.import_text(ALICE, edited)
    assert (first.source, first.version, first.overrides_builtin) == ("user", 1, True)
    again = library.import_text(ALICE, library.export_text(ALICE, "watercolour").replace("tiny", "small"))
    assert again.version == 2 and again.versions == [1, 2]
    assert "A small loose watercolour sketch" in library.render(ALICE, "watercolour", {"subject": "a boat"})
    assert library.get(BOB, "watercolour").source == "builtin"


def test_import_of_a_broken_file_changes_nothing(library: TemplateLibrary) -> None:
    with pytest.raises(InvalidInput):
        library.import_text(ALICE, "---\nname: broken\n---\nhello {who.__init__}")
    assert "broken" not in [t.name for t in library.list(ALICE)]


def test_builtin_dir_with_a_bad_file_fails_loudly(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "one.md").write_text("---\nname: two\n---\nbody\n")
    with pytest.raises(InvalidInput, match=r"one\.md is named 'two'"):
        TemplateLibrary(store, folder)


def test_custom_builtin_dir_is_used(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "hello.md").write_text("---\nname: hello\narguments: []\n---\nhello world\n")
    library = TemplateLibrary(store, folder)
    assert [t.name for t in library.list(ALICE)] == ["hello"]
    assert library.render(ALICE, "hello") == "hello world"


def test_complete_template_names_by_prefix(library: TemplateLibrary) -> None:
    library.save(ALICE, "poster-mine", "x")
    assert library.complete_template_names(ALICE, "po") == ["poster", "poster-mine"]
    assert library.complete_template_names(ALICE, "") == sorted([*BUILTINS, "poster-mine"])
    assert library.complete_template_names(BOB, "poster-") == []


def test_complete_aspect_ratio_offers_the_seven_ratios(library: TemplateLibrary) -> None:
    assert library.complete_argument(ALICE, "photo", "aspect_ratio", "") == [
        "1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4",
    ]  # fmt: skip
    assert library.complete_argument(ALICE, "photo", "aspect_ratio", "1") == ["1:1", "16:9"]


def test_complete_style_like_argument_puts_remembered_words_first(library: TemplateLibrary) -> None:
    values = library.complete_argument(ALICE, "anime", "style", "", style_words=["moody noir", "risograph"])
    assert values[:3] == [
        "90s cel anime with film grain",
        "soft pastel slice-of-life",
        "high-contrast action shonen",
    ]
    assert values.index("moody noir") < values.index("watercolour")
    assert library.complete_argument(ALICE, "anime", "style", "noi", style_words=["moody noir"]) == [
        "moody noir"
    ]


def test_complete_other_argument_uses_front_matter_examples(library: TemplateLibrary) -> None:
    assert library.complete_argument(ALICE, "photo", "subject", "a red") == [
        "a red fox standing in fresh snow"
    ]
    assert library.complete_argument(ALICE, "photo", "subject", "zzz") == []
    assert library.complete_argument(ALICE, "no-such-template", "subject", "") == []


def test_prompt_guide_covers_every_provider() -> None:
    guide = prompt_guide()
    for word in ("placeholder", "gpt-image-1", "dall-e-3", "stability", "sd_webui", "(word:1.2)", "Flux"):
        assert word in guide
    assert "negative_prompt" in guide
