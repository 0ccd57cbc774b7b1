"""The errors the domain raises. The MCP surface turns each into a tool error whose text is the message.

    ContextServerError
    ├── InvalidInput        bad arguments: the message says what is allowed
    ├── NotFound            unknown id, or another user's id (the two are indistinguishable)
    ├── Conflict            e.g. a request_id reused with different parameters
    ├── LimitExceeded       rate limit or daily budget
    └── ProviderError       a provider failed; `may_have_charged` says whether a retry could pay twice
"""

from __future__ import annotations

__all__ = ["Conflict", "ContextServerError", "InvalidInput", "LimitExceeded", "NotFound", "ProviderError"]


class ContextServerError(Exception):
    """Base class: the message is safe to show to the user (never contains secrets)."""


class InvalidInput(ContextServerError):
    pass


class NotFound(ContextServerError):
    pass


class Conflict(ContextServerError):
    pass


class LimitExceeded(ContextServerError):
    pass


class ProviderError(ContextServerError):
    def __init__(self, message: str, *, may_have_charged: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.may_have_charged = may_have_charged
        self.retryable = retryable
