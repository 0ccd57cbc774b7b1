"""Behaviour: what the server does, in plain synchronous Python that never sees MCP types."""
