"""`context-server reindex | doctor | demo`: looking after the data directory, and the first thing to run.

`demo` talks to the server through the MCP SDK's in-memory client (`mcp.Client(build_server(app))`)
rather than calling the domain: it then proves the path Claude uses (tool schemas, validation,
structured results, the audit), and the receipts it prints are exactly what an assistant receives.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
import click

from context_server.cli._common import domain_errors, open_app, progress_bar
from context_server.cli.images import describe_applied

__all__ = ["demo", "doctor", "reindex"]


def _wait_for_model(app: Any) -> None:
    """Load the embedding model, saying so on stderr (it takes several seconds)."""
    if app.embedder.ready:
        return
    click.echo("Loading the embedding model (several seconds)...", err=True)
    began = time.perf_counter()
    app.embedder.wait()
    click.echo(f"Model ready in {time.perf_counter() - began:.1f}s.", err=True)


@click.command()
def reindex() -> None:
    """Rebuild the vector index from SQLite, with a progress bar.

    SQLite is the source of truth, so this loses nothing. Safe to interrupt and run again: an interrupted
    rebuild is finished by the next `reindex` or server start. Refused while a running server holds the
    index (stop it first; a server repairs its own index at start-up).
    """
    with open_app() as app, domain_errors():
        if not app.indexer.acquire():
            raise click.ClickException("the index is in use by another process (a running server); stop it "
                                       "and run `context-server reindex` again")
        _wait_for_model(app)
        with progress_bar("Indexing") as progress:
            count = app.indexer.rebuild(progress=progress)
        click.echo(f"Rebuilt the index: {count} item(s) from {app.settings.db_path}.", err=True)


@click.command()
@click.option("--offline", is_flag=True, help="Skip the network checks of configured providers.")
def doctor(offline: bool) -> None:
    """Check the data directory, database, index, embedder and each configured provider.

    Prints one line per check (OK / PENDING / WARN / FAIL) with what it sees, and the command that fixes it
    when something needs fixing; exits with status 1 when any check fails. Changes nothing: a missing data
    directory or database is reported, not created; the database is read, never migrated; the index is never
    taken from a running server.
    """
    import httpx

    from context_server.adapters.embedder import Embedder
    from context_server.adapters.providers.registry import ProviderRegistry
    from context_server.app import default_providers
    from context_server.cli import load_settings
    from context_server.domain import health
    from context_server.domain.search.indexing import Indexer

    settings = load_settings()
    checks = [health.check_data_dir(settings.home)]
    if checks[0].status == "fail":
        _report(checks)
    store = health.open_database(settings.db_path)
    embedder = Embedder(settings.embed_threads, cache_dir=settings.models_path, prepare=False)
    indexer = None
    try:
        checks.append(health.check_database(settings.db_path, store))
        if store is not None:
            indexer = Indexer.for_settings(settings, store, embedder)
        checks.append(health.check_index(indexer))
        checks.append(health.check_embedder(embedder))
    finally:
        if indexer is not None:
            indexer.close()
        if store is not None:
            store.close()
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    try:
        registry = ProviderRegistry(default_providers(settings, http))
        checks.extend(health.check_providers(settings, registry, offline=offline))
    finally:
        anyio.run(http.aclose)
    _report(checks)


def _report(checks: list[Any]) -> None:
    for check in checks:
        click.echo(f"{check.status.upper():<7}  {check.name}: {check.detail}")
        if check.fix and check.status in ("warn", "fail"):
            click.echo(f"         fix: {check.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        click.echo(f"{len(failed)} problem(s): {', '.join(failed)}", err=True)
        sys.exit(1)
    click.echo("No problems found.", err=True)


DEMO_STYLE = "soft watercolour, muted colours, visible paper texture"
DEMO_PROMPTS = ("a lighthouse on a rocky coast at dusk", "a red fox asleep in the snow")
DEMO_FOLLOW_UP = ("the same place at sunrise, seen from the sea", "my last lighthouse image")


@click.command()
def demo() -> None:
    """A short scripted session on the embedded defaults: what to run first.

    Over MCP, in memory: saves a pinned style, makes two images with the offline placeholder provider,
    then a third whose `reference` ("my last lighthouse image") resolves to the first by meaning. Prints
    each receipt and file path. Runs as the configured user (CONTEXT_SERVER_USER) in the configured data
    directory (CONTEXT_SERVER_HOME or --home); its memory and images stay there.
    """
    with open_app() as app, domain_errors():
        click.echo(f"Demo as user {app.settings.user!r} in {app.settings.home}")
        app.embedder.start()
        _wait_for_model(app)
        anyio.run(_demo_session, app)


async def _demo_session(app: Any) -> None:
    from mcp import Client

    from context_server.server import build_server

    async with Client(build_server(app)) as client:

        async def call(step: str, tool: str, **args: Any) -> dict[str, Any]:
            shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "provider")
            click.echo(f"\n{step} {tool}({shown})")
            result = await client.call_tool(tool, args)
            if result.is_error or result.structured_content is None:
                text = getattr(result.content[0], "text", "") if result.content else ""
                raise click.ClickException(f"{tool} failed: {text}")
            return dict(result.structured_content)

        saved = await call("1.", "save_memory", content=DEMO_STYLE, kind="style", pinned=True)
        if saved.get("merged_into"):
            click.echo(f"   merged into the style you already had: memory {saved['merged_into']}")
        else:
            click.echo(f"   saved style memory {saved['memory_id']} (pinned: applies to every image)")
        made = []
        for step, prompt in zip(("2.", "3."), DEMO_PROMPTS, strict=True):
            made.append(await call(step, "generate_image", prompt=prompt, provider="placeholder"))
            _print_result(made[-1])
        prompt, reference = DEMO_FOLLOW_UP
        last = await call("4.", "generate_image", prompt=prompt, reference=reference, provider="placeholder")
        _print_result(last)
        resolved = (last["applied"].get("reference") or {}).get("image_id")
        if resolved != made[0]["image_id"]:
            raise click.ClickException(f"{reference!r} resolved to {resolved}, not to the first image "
                                       f"{made[0]['image_id']}")
        click.echo(f"\n\"{reference}\" found image {made[0]['image_id']} (step 2) by meaning, not by id.")
        click.echo("Next: `context-server images list`, `context-server memories list`, and "
                   "`context-server config claude-desktop --install` to use it from Claude Desktop.")


def _print_result(result: dict[str, Any]) -> None:
    click.echo(f"   image {result['image_id']}  {result['width']}x{result['height']}  {result['provider']}  "
               f"{result['timings_ms']['total']:.0f} ms")
    click.echo(f"   {'final prompt:':<16} {result['final_prompt']}")
    for line in describe_applied(result["applied"]):
        click.echo(f"   {line}")
    click.echo(f"   {'path:':<16} {result['path']}")
