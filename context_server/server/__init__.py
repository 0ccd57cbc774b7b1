"""The MCP surface: protocol in, domain calls out, nothing else."""

from .app import ContextServer, build_server

__all__ = ["ContextServer", "build_server"]
