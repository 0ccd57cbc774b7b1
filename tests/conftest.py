"""Shared pytest configuration."""

from __future__ import annotations

import pytest

# ---- providers (worktree `providers`): async tests use anyio's pytest plugin on asyncio ----------
# Mark async tests with @pytest.mark.anyio; this fixture pins the backend so they run once.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- end providers ------------------------------------------------------------------------------
