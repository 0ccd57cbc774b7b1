"""The bundle's entry point: serve MCP over stdio from the code in this bundle.

The host runs it with uv (`server.type: "uv"` in manifest.json), which installs the dependencies named in
the bundle's pyproject.toml first. The bundle's own folder goes first on `sys.path`, so the
`context_server` package next to this folder is the one that runs, installed or not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from context_server.cli import run

if __name__ == "__main__":
    run(["serve", "--transport", "stdio"])
