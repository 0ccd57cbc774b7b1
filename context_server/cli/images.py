"""`context-server images list|show`: the user's recent images, their prompts, receipts and files."""

from __future__ import annotations

import click

from context_server.cli._common import domain_errors, echo_json, open_app, resolve_user, shorten, user_option

__all__ = ["images"]


@click.group()
def images() -> None:
    """List recent images and show one's metadata and file path."""


@images.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="How many.")
@click.option("--cursor", default=None, help="The next page: the cursor printed after the previous one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_option
def list_(limit: int, cursor: str | None, as_json: bool, user: str | None) -> None:
    """Recent images, newest first: id, date, size, provider, prompt and file path."""
    with open_app() as app, domain_errors():
        rows, next_cursor = app.images.recent(resolve_user(app, user), limit=limit, cursor=cursor)
        if as_json:
            echo_json({"images": [{"image_id": r["id"], "prompt": r["prompt"], "path": r["path"],
                                   "provider": r["provider"], "model": r["model"], "width": r["width"],
                                   "height": r["height"], "created_at": r["created_at"]} for r in rows],
                       "next_cursor": next_cursor})
            return
        if not rows:
            click.echo("No images yet; `context-server demo` makes some.", err=True)
        for r in rows:
            click.echo(f"{r['id']}  {r['created_at'][:16].replace('T', ' ')}  {r['width']}x{r['height']}  "
                       f"{r['provider']:<11}  {shorten(r['prompt'], 50)}")
            click.echo(f"    {r['path']}")
        if next_cursor:
            click.echo(f"More: context-server images list --cursor {next_cursor}", err=True)


@images.command()
@click.argument("image_id")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@user_option
def show(image_id: str, as_json: bool, user: str | None) -> None:
    """Print IMAGE_ID's metadata (prompt, final prompt, receipt, provider, seed, size) and file path."""
    with open_app() as app, domain_errors():
        uid = resolve_user(app, user)
        meta = app.images.metadata(uid, image_id)
        meta["path"] = str(app.images.path(uid, image_id))
        if as_json:
            echo_json(meta)
            return
        for key in ("image_id", "created_at", "prompt", "final_prompt", "negative_prompt", "provider", "model",
                    "seed", "format", "parent_id", "job_id"):
            if meta.get(key) not in (None, ""):
                click.echo(f"{key + ':':<16} {meta[key]}")
        click.echo(f"{'size:':<16} {meta['size']['width']}x{meta['size']['height']}")
        for line in describe_applied(meta["applied"]):
            click.echo(line)
        click.echo(f"{'path:':<16} {meta['path']}")


def describe_applied(applied: dict[str, object]) -> list[str]:
    """The receipt in lines: styles, profile defaults, template and reference that were added."""
    lines: list[str] = []
    styles = applied.get("styles") or []
    assert isinstance(styles, list)
    for style in styles:
        lines.append(f"{'style:':<16} {style['content']} (memory {style['memory_id']}, score {style['score']:.2f})")
    profile = applied.get("profile") or {}
    assert isinstance(profile, dict)
    for key, value in profile.items():
        lines.append(f"{'profile:':<16} {key} = {value}")
    if applied.get("template"):
        lines.append(f"{'template:':<16} {applied['template']}")
    reference = applied.get("reference")
    if isinstance(reference, dict):
        lines.append(f"{'reference:':<16} {reference['image_id']} ({reference['mode']}, score "
                     f"{reference['score']:.2f}): {shorten(str(reference['prompt']), 60)}")
    if not lines:
        lines.append(f"{'applied:':<16} nothing (no memory, profile default, template or reference)")
    return lines
