"""The prompt-template library: built-ins shipped in `prompts/`, user edits in SQLite with versions.

A user template named like a built-in overrides it for that user only; deleting it brings the
built-in back. Every save of changed content is a new version and every version is kept, so a
receipt that says "template product-shot v3" can always be reproduced. Deletion is soft
(`deleted = 1`) and numbering continues after it, so a version number never points at two
different texts. Every query is scoped by `user_id`: another user's template behaves exactly like
one that does not exist.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from context_server.adapters.store import Store, now_iso, resource_dir
from context_server.domain.templates.body import parse_body, placeholder_names, render_body
from context_server.domain.templates.completion import suggest_argument_values
from context_server.domain.templates.format import (
    MAX_VALUE_CHARS,
    TemplateArgument,
    TemplateDefinition,
    argument_from_mapping,
    check_name,
    dump_template_text,
    parse_template_text,
    validate_definition,
)
from context_server.errors import InvalidInput, LimitExceeded, NotFound

__all__ = ["MAX_TEMPLATES_PER_USER", "Template", "TemplateLibrary", "load_builtins"]

MAX_TEMPLATES_PER_USER = 500
MAX_COMPLETIONS = 100  # the MCP completion result holds at most 100 values


@dataclass(frozen=True)
class Template:
    """One version of a template as a user sees it; `versions` lists every version still kept."""

    name: str
    description: str
    body: str
    arguments: list[TemplateArgument]
    version: int
    source: Literal["builtin", "user"]
    versions: list[int] = field(default_factory=list)
    created_at: str | None = None
    overrides_builtin: bool = False
    #: Set by `save` when the content equalled the latest version, so no version was added.
    unchanged: bool = False

    @property
    def definition(self) -> TemplateDefinition:
        return TemplateDefinition(self.name, self.description, self.body, list(self.arguments))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the shape of SPEC §3 (plus `default`/`examples` per argument)."""
        return {
            "name": self.name,
            "description": self.description,
            "body": self.body,
            "arguments": [argument.to_dict() for argument in self.arguments],
            "version": self.version,
            "source": self.source,
            "versions": list(self.versions),
            "created_at": self.created_at,
            "overrides_builtin": self.overrides_builtin,
        }


#: Parsed built-ins by directory and the files' names, sizes and modification times: every App in a process
#: (each CLI command's, each test's) reads the same package files, parsed once (frozen definitions).
_PARSED: dict[tuple[str, tuple[tuple[str, int, int], ...]], dict[str, TemplateDefinition]] = {}


def load_builtins(directory: Path) -> dict[str, TemplateDefinition]:
    """Parse every `<name>.md` in `directory`; a broken file is a packaging bug, so it fails loudly."""
    paths = sorted(directory.glob("*.md"))
    stats = [path.stat() for path in paths]
    key = (str(directory), tuple((p.name, s.st_size, s.st_mtime_ns) for p, s in zip(paths, stats, strict=True)))
    if key not in _PARSED:
        _PARSED[key] = _parse_builtins(paths)
    return dict(_PARSED[key])


def _parse_builtins(paths: list[Path]) -> dict[str, TemplateDefinition]:
    found: dict[str, TemplateDefinition] = {}
    for path in paths:
        try:
            definition = parse_template_text(path.read_text(encoding="utf-8"))
        except InvalidInput as error:
            raise InvalidInput(f"built-in template {path.name}: {error}") from None
        if definition.name != path.stem:
            raise InvalidInput(f"built-in template {path.name} is named {definition.name!r}; rename one")
        found[definition.name] = definition
    return found


class TemplateLibrary:
    """Every method takes `user_id` first; the MCP tools, prompts, resources and CLI call these."""

    def __init__(self, store: Store, builtin_dir: Path | None = None) -> None:
        self.store = store
        self.builtins = load_builtins(builtin_dir if builtin_dir is not None else resource_dir("prompts"))

    # --- reading -------------------------------------------------------------------------------

    def list(self, user_id: str) -> builtins.list[Template]:
        """Built-ins merged with the user's templates (latest version each), sorted by name."""
        versions = self._user_versions(user_id)
        rows = self.store.query(
            "SELECT * FROM templates t WHERE t.user_id = ? AND t.deleted = 0 AND t.version = (SELECT "
            "MAX(version) FROM templates WHERE user_id = t.user_id AND name = t.name AND deleted = 0)",
            [user_id],
        )
        merged = {name: self._builtin(name) for name in self.builtins}
        for row in rows:
            # A save racing between the two reads (another process) must not break the listing.
            merged[row["name"]] = self._from_row(row, versions.get(row["name"], [int(row["version"])]))
        return [merged[name] for name in sorted(merged)]

    def get(self, user_id: str, name: str, version: int | None = None) -> Template:
        """The latest version, or the one asked for; NotFound names what exists."""
        check_name(name)
        versions = self._user_versions(user_id, name).get(name, [])
        if versions:
            wanted = versions[-1] if version is None else version
            if wanted not in versions:
                raise NotFound(
                    f"template {name!r} has no version {version}; kept versions: "
                    f"{', '.join(map(str, versions))}"
                )
            row = self.store.one(
                "SELECT * FROM templates WHERE user_id = ? AND name = ? AND version = ? AND deleted = 0",
                [user_id, name, wanted],
            )
            if row is None:  # deleted by another process since the versions were read
                raise NotFound(f"template {name!r} was just deleted")
            return self._from_row(row, versions)
        if name in self.builtins:
            if version not in (None, 1):
                raise NotFound(f"built-in template {name!r} has only version 1")
            return self._builtin(name)
        raise NotFound(f"unknown template {name!r}; available: {self._available(user_id)}")

    def render(
        self,
        user_id: str,
        name: str,
        args: Mapping[str, object] | None = None,
        version: int | None = None,
    ) -> str:
        """Fill the placeholders; unknown, missing or non-text arguments are refused by name."""
        template = self.get(user_id, name, version)
        values = _argument_values(template, args or {})
        return render_body(parse_body(template.body), values)

    def export_text(self, user_id: str, name: str, version: int | None = None) -> str:
        """The template file text, ready to edit and `import_text` back (or to commit to a repo)."""
        template = self.get(user_id, name, version)
        comment = f"{template.source} template {template.name}, version {template.version}"
        return dump_template_text(template.definition, comment=comment)

    # --- writing -------------------------------------------------------------------------------

    def save(
        self,
        user_id: str,
        name: str,
        body: str,
        description: str = "",
        arguments: Sequence[TemplateArgument | Mapping[str, Any]] = (),
    ) -> Template:
        """Create the template or add a version; saving unchanged content returns the latest, `unchanged`.

        Without `arguments`, they are inferred from the body's `{placeholders}`: each one required, except
        that an argument the latest version (or the built-in of that name) declared keeps its
        description, default and examples."""
        if not isinstance(body, str) or not isinstance(description, str):
            raise InvalidInput("template body and description must be text")
        check_name(name)
        declared = [argument_from_mapping(a) for a in arguments]
        with self.store.write() as db:
            latest = self.store.one(
                "SELECT * FROM templates WHERE user_id = ? AND name = ? AND deleted = 0 "
                "ORDER BY version DESC LIMIT 1",
                [user_id, name],
            )
            if not declared:
                previous = _row_definition(latest) if latest is not None else self.builtins.get(name)
                declared = _infer_arguments(body, previous.arguments if previous else [])
            definition = validate_definition(TemplateDefinition(name, description, body, declared))
            if latest is not None and _row_definition(latest) == definition:
                return dataclasses.replace(self.get(user_id, name), unchanged=True)
            if latest is None:
                self._check_capacity(user_id)
            top = self.store.one(
                "SELECT MAX(version) AS v FROM templates WHERE user_id = ? AND name = ?", [user_id, name]
            )
            version = (top["v"] if top and top["v"] else 0) + 1
            db.execute(
                "INSERT INTO templates (user_id, name, version, description, body, arguments, deleted, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                [
                    user_id,
                    name,
                    version,
                    definition.description,
                    definition.body,
                    json.dumps([a.to_dict() for a in definition.arguments]),
                    now_iso(),
                ],
            )
        return self.get(user_id, name)

    def import_text(self, user_id: str, text: str) -> Template:
        """Save a template from its file text (the name comes from the front matter)."""
        definition = parse_template_text(text)
        return self.save(
            user_id, definition.name, definition.body, definition.description, definition.arguments
        )

    def delete(self, user_id: str, name: str) -> Template | None:
        """Delete the user's template (all versions); returns the built-in now visible again, if any."""
        check_name(name)
        with self.store.write() as db:
            cursor = db.execute(
                "UPDATE templates SET deleted = 1 WHERE user_id = ? AND name = ? AND deleted = 0",
                [user_id, name],
            )
            removed = cursor.rowcount
        if removed:
            return self._builtin(name) if name in self.builtins else None
        if name in self.builtins:
            raise InvalidInput(
                f"{name!r} is a built-in template and you have no edited version of it to delete; "
                "built-ins cannot be deleted (save a template with that name to override it)"
            )
        raise NotFound(f"unknown template {name!r}; your templates: {self._user_names(user_id) or '(none)'}")

    # --- completion ----------------------------------------------------------------------------

    def complete_template_names(self, user_id: str, prefix: str) -> builtins.list[str]:
        names = [t.name for t in self.list(user_id) if t.name.startswith(prefix.lower())]
        return names[:MAX_COMPLETIONS]

    def complete_argument(
        self,
        user_id: str,
        template_name: str,
        argument: str,
        prefix: str,
        style_words: Sequence[str] = (),
    ) -> builtins.list[str]:
        """Values for one argument; an unknown template still gets generic suggestions, never an error."""
        declared: TemplateArgument | None = None
        try:
            template = self.get(user_id, template_name)
        except (InvalidInput, NotFound):
            template = None
        if template is not None:
            declared = next((a for a in template.arguments if a.name == argument), None)
        return suggest_argument_values(argument, declared, prefix, style_words)[:MAX_COMPLETIONS]

    # --- helpers -------------------------------------------------------------------------------

    def _user_versions(self, user_id: str, name: str | None = None) -> dict[str, builtins.list[int]]:
        sql = "SELECT name, version FROM templates WHERE user_id = ? AND deleted = 0"
        params: builtins.list[object] = [user_id]
        if name is not None:
            sql, params = sql + " AND name = ?", [user_id, name]
        versions: dict[str, builtins.list[int]] = {}
        for row in self.store.query(sql + " ORDER BY name, version", params):
            versions.setdefault(row["name"], []).append(int(row["version"]))
        return versions

    def _user_names(self, user_id: str) -> str:
        return ", ".join(sorted(self._user_versions(user_id)))

    def _available(self, user_id: str) -> str:
        return ", ".join(t.name for t in self.list(user_id))

    def _check_capacity(self, user_id: str) -> None:
        if len(self._user_versions(user_id)) >= MAX_TEMPLATES_PER_USER:
            raise LimitExceeded(
                f"you have {MAX_TEMPLATES_PER_USER} templates, the most allowed; delete one first"
            )

    def _builtin(self, name: str) -> Template:
        d = self.builtins[name]
        return Template(d.name, d.description, d.body, list(d.arguments), 1, "builtin", [1])

    def _from_row(self, row: Mapping[str, Any], versions: builtins.list[int]) -> Template:
        d = _row_definition(row)
        return Template(
            d.name,
            d.description,
            d.body,
            d.arguments,
            int(row["version"]),
            "user",
            list(versions),
            created_at=row["created_at"],
            overrides_builtin=d.name in self.builtins,
        )


def _infer_arguments(body: str, known: Sequence[TemplateArgument]) -> builtins.list[TemplateArgument]:
    by_name = {a.name: a for a in known}
    try:
        names = placeholder_names(body)
    except InvalidInput:
        return []  # validate_definition reports the bad placeholder with its position
    return [by_name.get(n) or TemplateArgument(n, required=True) for n in names]


def _row_definition(row: Mapping[str, Any]) -> TemplateDefinition:
    arguments = [argument_from_mapping(raw) for raw in json.loads(row["arguments"] or "[]")]
    return TemplateDefinition(row["name"], row["description"] or "", row["body"], arguments)


def _argument_values(template: Template, args: Mapping[str, object]) -> dict[str, str]:
    if not isinstance(args, Mapping):
        raise InvalidInput("template arguments must be an object of name → text")
    declared = {a.name: a for a in template.arguments}
    allowed = ", ".join(declared) or "(none: it takes no arguments)"
    unknown = sorted(str(key) for key in args if key not in declared)
    if unknown:
        raise InvalidInput(
            f"unknown argument(s) {', '.join(unknown)} for template {template.name!r}; "
            f"its arguments: {allowed}"
        )
    values: dict[str, str] = {}
    missing: builtins.list[str] = []
    for argument in template.arguments:
        raw = args.get(argument.name)
        if raw is not None and not isinstance(raw, str | int | float):
            raise InvalidInput(f"argument {argument.name!r} must be text or a number")
        value = "" if raw is None else str(raw).strip()
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"argument {argument.name!r} is longer than {MAX_VALUE_CHARS} characters")
        if not value:
            if argument.required:
                missing.append(argument.name)
            value = argument.default or ""
        values[argument.name] = value
    if missing:
        required = ", ".join(a.name for a in template.arguments if a.required)
        raise InvalidInput(
            f"missing required argument(s) {', '.join(missing)} for template {template.name!r} "
            f"(required: {required}; all arguments: {allowed})"
        )
    return values
