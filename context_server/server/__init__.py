"""The MCP surface: protocol in, domain calls out, nothing else."""

from context_server.server.mcp_server import ContextServer, build_server

__all__ = ["ContextServer", "build_server"]
