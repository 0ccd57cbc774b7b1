"""`context-server gallery`: look at and steer the memory in a browser (see docs/gallery.md)."""

from __future__ import annotations

import click

__all__ = ["gallery"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Print the link without opening a browser.")
def gallery(host: str, port: int, no_browser: bool) -> None:
    """Open the local gallery: images, memories, templates, profile and usage of the local user.

    It listens on loopback and prints a link (with a one-time token) on stderr; only that link opens it.
    """
    import anyio

    from context_server.app import App
    from context_server.cli import configure_logging, load_settings
    from context_server.errors import InvalidInput
    from context_server.server.gallery import serve_gallery

    settings = load_settings()
    configure_logging(settings.log_level)
    app = App.create(settings)

    def announce(link: str) -> None:
        click.echo(f"Gallery of user {settings.user!r}: {link}\n(Ctrl+C to stop)", err=True)

    async def main() -> None:
        try:
            await serve_gallery(app, host=host, port=port, open_browser=not no_browser, announce=announce)
        finally:
            await app.aclose()

    try:
        anyio.run(main)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    except KeyboardInterrupt:
        pass
