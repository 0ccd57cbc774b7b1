"""The MCP clients' own config files: where they are, and merging our entry in without touching the rest.

`config claude-desktop --install` and `config claude-code --install` use this. The rules, for a file the
user also edits by hand:

- only `mcpServers["context-server"]` changes; every other key and server is kept as it was;
- a file that is not a JSON object (or whose `mcpServers` is not one) is refused, and nothing is written;
- a read-only file is refused (checked on the mode bits, so it holds for root too), nothing written;
- before an existing file is replaced, a copy is kept beside it as `<name>.<YYYYmmdd-HHMMSS>.bak`;
- the new file is written to a temporary file in the same folder and moved over the old one, so a crash
  leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from platformdirs.macos import MacOS
from platformdirs.unix import Unix
from platformdirs.windows import Windows

__all__ = ["ConfigFileError", "Merge", "claude_desktop_config_path", "plan_merge", "write_merge"]

DESKTOP_FILE = "claude_desktop_config.json"


class ConfigFileError(Exception):
    """The client's file cannot be changed safely; the message says why and what to do. Nothing was written."""


def claude_desktop_config_path(platform: str | None = None) -> Path:
    """Where Claude Desktop reads its servers: macOS `~/Library/Application Support/Claude/`, Windows
    `%APPDATA%\\Claude\\`, Linux `$XDG_CONFIG_HOME/Claude/` (default `~/.config/Claude/`)."""
    platform = platform or sys.platform
    dirs: type[MacOS] | type[Windows] | type[Unix]
    if platform == "darwin":
        dirs = MacOS
    elif platform == "win32":
        dirs = Windows
    else:
        dirs = Unix
    return Path(dirs("Claude", appauthor=False, roaming=True).user_config_dir) / DESKTOP_FILE


@dataclass(frozen=True)
class Merge:
    """What an install would do to one file."""

    path: Path
    old_text: str | None  # None: the file does not exist yet
    new_text: str
    others: list[str]  # the other servers in the file, kept

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        old = [] if self.old_text is None else self.old_text.splitlines(keepends=True)
        label = str(self.path)
        return "".join(difflib.unified_diff(old, self.new_text.splitlines(keepends=True),
                                            fromfile=label if self.old_text is not None else "/dev/null",
                                            tofile=label))


def plan_merge(path: Path, name: str, entry: Mapping[str, Any]) -> Merge:
    """Read `path` and work out the file with `mcpServers[name] = entry`; raises `ConfigFileError`."""
    old_text: str | None = None
    data: dict[str, Any] = {}
    if path.exists():
        try:
            old_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"cannot read {path}: {exc}; nothing was changed") from None
        if old_text.strip():
            try:
                loaded = json.loads(old_text)
            except json.JSONDecodeError as exc:
                raise ConfigFileError(
                    f"cannot parse {path} as JSON ({exc}); fix it or move it away and run this again; "
                    "nothing was changed") from None
            if not isinstance(loaded, dict):
                raise ConfigFileError(f"{path} holds a JSON {type(loaded).__name__}, not an object; "
                                      "nothing was changed")
            data = loaded
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigFileError(f'"mcpServers" in {path} is a JSON {type(servers).__name__}, not an object; '
                              "nothing was changed")
    others = [key for key in servers if key != name]
    data = {**data, "mcpServers": {**servers, name: dict(entry)}}
    return Merge(path, old_text, json.dumps(data, indent=2, ensure_ascii=False) + "\n", others)


def write_merge(merge: Merge, now: datetime | None = None) -> Path | None:
    """Write the merged file (backing the old one up first); returns the backup's path, if one was made."""
    path = merge.path
    if path.exists() and not path.stat().st_mode & stat.S_IWUSR:
        raise ConfigFileError(f"{path} is read-only; make it writable (or add the entry by hand); "
                              "nothing was changed")
    backup = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if merge.old_text is not None:
            stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
            backup = path.with_name(f"{path.name}.{stamp}.bak")
            shutil.copy2(path, backup)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(merge.new_text)
            if merge.old_text is not None:
                shutil.copymode(path, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if backup is not None:
            backup.unlink(missing_ok=True)
        raise ConfigFileError(f"cannot write {path}: {exc}; nothing was changed") from None
    return backup
