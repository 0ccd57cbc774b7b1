"""context-server: an MCP server for image generation with memory."""

__version__ = "0.1.0"
__all__ = ["__version__"]
