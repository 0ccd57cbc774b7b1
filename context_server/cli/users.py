"""`context-server users add|list|revoke`: the people who may use the HTTP transport, and their tokens."""

from __future__ import annotations

import click

from context_server.cli._common import domain_errors, echo_json, open_app

__all__ = ["users"]


@click.group()
def users() -> None:
    """Create, list and revoke HTTP users and their bearer tokens."""


@users.command()
@click.argument("name")
def add(name: str) -> None:
    """Create user NAME and print a new bearer token, alone on the last line of stdout.

    The token is shown once and stored only as a hash. A revoked NAME is reinstated with a new token
    (its data is kept); an active NAME is refused, so revoke it first to replace a lost token.
    """
    with open_app() as app, domain_errors():
        user, token = app.users.add(name)
        click.echo(f"Created user {user.name!r}. Send this token as 'Authorization: Bearer <token>'; "
                   "it is not shown again:")
        click.echo(token)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """List users, whether each is active, and how many live tokens it has (never the tokens)."""
    with open_app() as app, domain_errors():
        items = app.users.all()
        if as_json:
            echo_json([u.to_dict() for u in items])
            return
        if not items:
            click.echo("No users yet; create one with `context-server users add NAME`.", err=True)
            return
        width = max(len(u.name) for u in items)
        for u in items:
            state = f"revoked {u.revoked_at}" if u.revoked_at else f"active, {u.tokens} token(s)"
            click.echo(f"{u.name:<{width}}  created {u.created_at}  {state}")


@users.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke NAME and all its tokens at once; its data stays (see `users add` to reinstate)."""
    with open_app() as app, domain_errors():
        user = app.users.revoke(name)
        click.echo(f"Revoked user {user.name!r}; its tokens no longer work.", err=True)
