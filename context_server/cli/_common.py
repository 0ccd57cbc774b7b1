"""What every CLI verb shares: opening the app on the configured data directory, the user, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import click

from context_server.errors import ContextServerError, InvalidInput, NotFound

__all__ = ["domain_errors", "echo_json", "open_app", "progress_bar", "resolve_user", "shorten", "user_option"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def open_app() -> Iterator[Any]:
    from context_server.app import App
    from context_server.cli import load_settings

    app = App.create(load_settings())
    try:
        yield app
    finally:
        anyio.run(app.aclose)


def user_option(fn: F) -> F:
    return click.option(
        "--user", "user", default=None, metavar="NAME",
        help="Act on this user's data (default: CONTEXT_SERVER_USER, else 'local').",
    )(fn)


def resolve_user(app: Any, user: str | None) -> str:
    return user or str(app.settings.user)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Domain errors end the command with their message and exit code 1 (bad input too: it was read)."""
    try:
        yield
    except (InvalidInput, NotFound, ContextServerError) as exc:
        raise click.ClickException(str(exc)) from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback drawing a bar on stderr (stdout carries only the verb's output).

    The bar is made on the first call, when the total is known; a total of 0 draws nothing.
    """
    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if total <= 0:
            return
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield progress
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
