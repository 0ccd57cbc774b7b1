"""The gallery's pages: the same domain operations the MCP tools call, for the signed-in user only.

Every handler takes the user from `GalleryAuth` (the verified token) and passes it to the domain, which
scopes every query by it: another user's image, memory or template answers 404 exactly like one that does
not exist. Writes go through the domain services (their validation, their outbox for the index) and leave
an audit row named `gallery/<action>`, as a tool call does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from context_server.domain.memory.io import export_jsonl
from context_server.domain.memory.rules import MEMORY_KINDS
from context_server.domain.templates.format import parse_template_text
from context_server.errors import ContextServerError, InvalidInput, NotFound
from context_server.server.gallery.auth import GalleryAuth
from context_server.server.gallery.pages import (
    BASE,
    bare,
    daily_chart,
    diff_html,
    e,
    layout,
    memory_buttons,
    receipt_html,
    table,
    url,
)

if TYPE_CHECKING:
    from context_server.app import App
    from context_server.domain.images import ImageRow

__all__ = ["build_gallery"]

log = logging.getLogger(__name__)

Handler = Callable[[Request, str], Awaitable[Response]]
PAGE = 24


def _safe_next(value: object, default: str) -> str:
    """Redirect only inside the gallery (never to another site)."""
    text = str(value or "")
    return text if text.startswith(BASE + "/") and not text.startswith("//") and "\\" not in text else default


def _with_msg(target: str, msg: str) -> str:
    path, _, fragment = target.partition("#")
    return f"{path}{'&' if '?' in path else '?'}msg={msg}" + (f"#{fragment}" if fragment else "")


def build_gallery(app: App, auth: GalleryAuth) -> Starlette:
    """A Starlette app to mount at `/gallery`."""

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args))

    def audited(action: str, user: str, started: float, ok: bool) -> None:
        try:
            app.audit.record(user, f"gallery/{action}", "ok" if ok else "error", (time.perf_counter() - started) * 1000)
        except Exception:
            log.exception("could not record the audit row for gallery/%s", action)

    async def write(action: str, user: str, fn: Callable[[], Any]) -> Any:
        """A change through the domain, in a worker thread, leaving one audit row whatever the outcome."""
        started = time.perf_counter()
        ok = False
        try:
            result = await run(fn)
            ok = True
            return result
        finally:
            audited(action, user, started, ok)

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            redirect = auth.token_redirect(request)
            if redirect is not None:
                return redirect
            user = await run(auth.user, request)
            if user is None:
                return sign_in_page(request, status=401)
            app.request_answered()  # a gallery visit releases the background warm-up like a first MCP answer
            try:
                return await handler(request, user)
            except InvalidInput as exc:
                return HTMLResponse(layout("Not allowed", f'<p class="error" role="alert">{e(exc)}</p>',
                                           user=user, section=""), status_code=400)
            except NotFound:
                return HTMLResponse(layout("Not found", "<p>There is nothing here, or it is not yours. "
                                           f'<a href="{url("/")}">Back to the images</a>.</p>',
                                           user=user, section=""), status_code=404)

        return endpoint

    def page(request: Request, user: str, title: str, body: str, section: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(layout(title, body, user=user, section=section, message=request.query_params.get("msg")),
                            status_code=status)

    def sign_in_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        wrong = (f'<p class="error" role="alert" id="token-error">{e(error)}</p>' if error else "")
        if request.query_params.get("token") is not None and not error:
            wrong = '<p class="error" role="alert" id="token-error">That link\'s token is not valid (revoked or mistyped).</p>'
        body = (wrong + "<p>Sign in with your token: the one <code>context-server users add</code> printed "
                "(or the link <code>context-server gallery</code> opened).</p>"
                f'<form method="post" action="{url("/login")}"><label for="token">Token</label> '
                '<input id="token" name="token" type="password" autocomplete="current-password" required '
                f'{"aria-describedby=token-error " if wrong else ""}>'
                f'<input type="hidden" name="next" value="{e(_safe_next(request.url.path, BASE + "/"))}">'
                " <button>Sign in</button></form>")
        return HTMLResponse(bare("Sign in", body), status_code=status)

    # --- images --------------------------------------------------------------------------------------

    def thumb(row: ImageRow, extra: str = "") -> str:
        return (f'<li><a href="{url("/images/" + row["id"])}"><img src="{url("/images/" + row["id"] + "/file", width=384, format="jpeg")}" '
                f'alt="{e(row["prompt"])}" width="{row["width"]}" height="{row["height"]}" loading="lazy"></a>'
                f'<p>{e(row["prompt"][:140])}</p><p class="muted">{e(row["created_at"][:16].replace("T", " "))}{extra}</p></li>')

    async def images(request: Request, user: str) -> Response:
        query = request.query_params.get("q", "").strip()
        cursor = request.query_params.get("cursor") or None
        form = (f'<form role="search" method="get" action="{url("/")}" class="row"><label for="q">Search by meaning</label>'
                f'<input id="q" name="q" value="{e(query)}" placeholder="e.g. a red fox in snow"><button>Search</button>'
                + (f' <a href="{url("/")}">Show all</a>' if query else "") + "</form>")
        more = ""
        if query:
            try:
                rows = await run(app.images.search, user, query, 48)
            except InvalidInput as exc:
                return page(request, user, "Images", form + f'<p class="error" role="alert">{e(exc)}</p>', "Images", 400)
            cards = [thumb(r, f" · score {r['score']:.2f}") for r in rows]
            summary = f'<p id="count">{len(rows)} image(s) match “{e(query)}”, best first.</p>'
        else:
            rows, nxt = await run(app.images.recent, user, PAGE, cursor)
            cards = [thumb(r) for r in rows]
            summary = f'<p id="count">{len(rows)} image(s){", newest first" if rows else ""}.</p>'
            if nxt:
                more = f'<p><a href="{url("/", cursor=nxt)}">Older images</a></p>'
        grid = f'<ul class="grid" id="images">{"".join(cards)}</ul>' if cards else (
            '<p class="muted">No images yet: ask your assistant to generate one.</p>' if not query else "")
        return page(request, user, "Images", form + summary + grid + more, "Images")

    async def image(request: Request, user: str) -> Response:
        image_id = request.path_params["image_id"]
        meta = await run(app.images.metadata, user, image_id)
        parents = await run(app.images.lineage, user, image_id)
        children = await run(app.images.children, user, image_id)
        here = url("/images/" + image_id)
        lineage = ""
        if parents:
            lineage += "<h3>Made from</h3><ul class=\"grid\" id=\"parents\">" + "".join(thumb(p) for p in parents) + "</ul>"
        if children:
            lineage += "<h3>Made from this</h3><ul class=\"grid\" id=\"children\">" + "".join(thumb(c) for c in children) + "</ul>"
        body = (
            f'<img class="big" id="image" src="{url("/images/" + image_id + "/file", width=768, format="jpeg")}" '
            f'alt="{e(meta["prompt"])}" width="{meta["size"]["width"]}" height="{meta["size"]["height"]}">'
            f'<p><a href="{url("/images/" + image_id + "/file")}" download>Download the full image</a></p>'
            f'<h2>Prompt</h2><p id="prompt">{e(meta["prompt"])}</p>'
            f'<h2>Prompt as sent</h2><p id="final-prompt">{e(meta["final_prompt"])}</p>'
            '<h2 id="receipt-heading">Receipt: what memory added</h2>' + receipt_html(meta["applied"], back=here)
            + "<h2>Lineage</h2>" + (lineage or '<p class="muted">No parent and no edits.</p>')
            + "<h2>Metadata</h2>" + table([
                ("image_id", meta["image_id"]), ("provider", meta["provider"]), ("model", meta["model"]),
                ("seed", meta["seed"]), ("size", f'{meta["size"]["width"]}×{meta["size"]["height"]}'),
                ("format", meta["format"]), ("negative prompt", meta["negative_prompt"] or ""),
                ("parent_id", meta["parent_id"] or ""), ("job_id", meta["job_id"] or ""),
                ("created_at", meta["created_at"]), ("uri", meta["uri"])]))
        return page(request, user, "Image " + image_id, body, "Images")

    async def image_file(request: Request, user: str) -> Response:
        image_id = request.path_params["image_id"]
        params = request.query_params

        def number(name: str) -> int | None:
            raw = params.get(name)
            if not raw:
                return None
            try:
                return int(raw)
            except ValueError:
                raise InvalidInput(f"{name} must be a whole number, got {raw!r}") from None

        def view() -> tuple[bytes, str]:
            return app.images.view(user, image_id, format=params.get("format") or None, width=number("width"),
                                   height=number("height"), quality=number("quality"))

        try:
            data, mime = await run(view)
        except InvalidInput as exc:
            return Response(str(exc), status_code=400, media_type="text/plain")
        except FileNotFoundError:
            raise NotFound(image_id) from None
        return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})

    # --- memories ------------------------------------------------------------------------------------

    def memory_item(m: Any, back: str) -> str:
        kinds = "".join(f'<option{" selected" if k == m.kind else ""}>{k}</option>' for k in MEMORY_KINDS)
        return (
            f'<li class="memory" id="m-{e(m.memory_id)}"><p><strong>{e(m.content)}</strong></p>'
            f'<p class="muted">{e(m.kind)}{" · pinned" if m.pinned else ""} · <code>{e(m.memory_id)}</code> · used '
            f'{m.use_count} time(s){" · score " + format(m.score, ".2f") if m.score is not None else ""}'
            f'{" · tags: " + e(", ".join(m.tags)) if m.tags else ""}</p>'
            f'<p>{memory_buttons(m.memory_id, pinned=m.pinned, back=back)}</p>'
            f'<details><summary>Edit</summary><form method="post" action="{url("/memories/" + m.memory_id + "/edit")}">'
            f'<p><label for="c-{e(m.memory_id)}">Content</label><br><textarea id="c-{e(m.memory_id)}" name="content" '
            f'rows="3" maxlength="2000">{e(m.content)}</textarea></p>'
            f'<p class="row"><label for="k-{e(m.memory_id)}">Kind</label><select id="k-{e(m.memory_id)}" name="kind">{kinds}</select>'
            f'<label for="t-{e(m.memory_id)}">Tags (comma-separated)</label><input id="t-{e(m.memory_id)}" name="tags" '
            f'value="{e(", ".join(m.tags))}"><input type="hidden" name="next" value="{e(back)}"><button>Save</button></p>'
            "</form></details></li>")

    async def memories(request: Request, user: str) -> Response:
        query = request.query_params.get("q", "").strip()
        kind = request.query_params.get("kind") or None
        if kind is not None and kind not in MEMORY_KINDS:
            kind = None
        cursor = request.query_params.get("cursor") or None
        back = url("/memories", q=query or None, kind=kind)
        options = "".join(f'<option value="{k}"{" selected" if k == kind else ""}>{k}</option>' for k in MEMORY_KINDS)
        form = (f'<form role="search" method="get" action="{url("/memories")}" class="row">'
                f'<label for="mq">Search by meaning</label><input id="mq" name="q" value="{e(query)}">'
                f'<label for="mk">Kind</label><select id="mk" name="kind"><option value="">any</option>{options}</select>'
                f'<button>Show</button> <a href="{url("/memories/export")}" download="memories.jsonl">Export (JSONL)</a></form>')
        more = ""
        if query:
            found = await run(lambda: app.memories.search(user, query, limit=50, kind=kind))
        else:
            found, nxt = await run(lambda: app.memories.list(user, kind=kind, scope="long_term", limit=50, cursor=cursor))
            if nxt:
                more = f'<p><a href="{url("/memories", kind=kind, cursor=nxt)}">Older memories</a></p>'
        items = "".join(memory_item(m, back) for m in found)
        body = form + (f'<ul id="memories" style="list-style:none;padding:0">{items}</ul>' if items
                       else '<p class="muted">No memories here.</p>') + more
        return page(request, user, "Memories", body, "Memories")

    async def memory_pin(request: Request, user: str) -> Response:
        form = await request.form()
        memory_id = request.path_params["memory_id"]
        pinned = form.get("pinned") == "1"
        await write("pin_memory" if pinned else "unpin_memory", user,
                    lambda: app.memories.update(user, memory_id, pinned=pinned))
        return RedirectResponse(_with_msg(_safe_next(form.get("next"), url("/memories")), "pinned" if pinned else "unpinned"), 303)

    async def memory_delete(request: Request, user: str) -> Response:
        form = await request.form()
        await write("delete_memory", user, lambda: app.memories.delete(user, request.path_params["memory_id"]))
        return RedirectResponse(_with_msg(_safe_next(form.get("next"), url("/memories")), "forgotten"), 303)

    async def memory_edit(request: Request, user: str) -> Response:
        form = await request.form()
        memory_id = request.path_params["memory_id"]
        tags = [t.strip() for t in str(form.get("tags", "")).split(",") if t.strip()]
        try:
            await write("update_memory", user, lambda: app.memories.update(
                user, memory_id, content=str(form.get("content", "")), kind=str(form.get("kind", "")) or None, tags=tags))
        except InvalidInput as exc:
            m = await run(app.memories.get, user, memory_id)
            return page(request, user, "Memories", f'<p class="error" role="alert">{e(exc)}</p><ul style="list-style:none;padding:0">'
                        + memory_item(m, url("/memories")) + "</ul>", "Memories", 400)
        return RedirectResponse(_with_msg(_safe_next(form.get("next"), url("/memories")), "updated"), 303)

    async def memory_export(request: Request, user: str) -> Response:
        lines = await run(lambda: [line + "\n" for line in export_jsonl(app.memories, user)])
        return StreamingResponse(iter(lines), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": 'attachment; filename="memories.jsonl"'})

    # --- templates -----------------------------------------------------------------------------------

    async def templates(request: Request, user: str) -> Response:
        rows = await run(app.templates.list, user)
        items = "".join(
            f'<tr><th scope="row"><a href="{url("/templates/" + t.name)}">{e(t.name)}</a></th><td>{e(t.description)}</td>'
            f'<td>{e(t.source)}{" (overrides the built-in)" if t.overrides_builtin else ""}</td><td>v{t.version}</td></tr>'
            for t in rows)
        body = ("<table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Description</th><th scope=\"col\">Source</th>"
                f'<th scope="col">Version</th></tr></thead><tbody id="templates">{items}</tbody></table>')
        return page(request, user, "Templates", body, "Templates")

    async def template_page(request: Request, user: str, *, text: str | None = None, error: str = "",
                            status: int = 200) -> Response:
        name = request.path_params["name"]
        raw_version = request.query_params.get("version")
        latest = await run(app.templates.get, user, name)
        shown = latest
        if raw_version and raw_version.isdigit() and int(raw_version) != latest.version:
            shown = await run(app.templates.get, user, name, int(raw_version))
        if shown is not latest:
            old = await run(app.templates.export_text, user, name, shown.version)
            new = await run(app.templates.export_text, user, name)
            body = (f"<p>Version {shown.version} of {e(name)}; the latest is v{latest.version}.</p>"
                    f"<h2>Changes from v{shown.version} to v{latest.version}</h2>"
                    + diff_html(old, new, f"v{shown.version}", f"v{latest.version}")
                    + f'<form method="post" action="{url("/templates/" + name + "/restore")}">'
                    f'<input type="hidden" name="version" value="{shown.version}">'
                    f"<button>Restore version {shown.version}</button></form>"
                    f'<h2>Version {shown.version}</h2><pre class="diff">{e(old)}</pre>')
        else:
            current = text if text is not None else await run(app.templates.export_text, user, name)
            alert = f'<p class="error" role="alert" id="template-error">{e(error)}</p>' if error else ""
            body = (f"<p>{e(latest.description)}</p><p class=\"muted\">{e(latest.source)} template, version {latest.version}. "
                    "Saving changed text makes a new version; every version is kept.</p>"
                    f'<form method="post" action="{url("/templates/" + name)}">{alert}'
                    '<p><label for="template-text">Template file (front matter, then the body with {placeholders})</label>'
                    f'<textarea id="template-text" name="text" spellcheck="false"{" aria-invalid=true aria-describedby=template-error" if error else ""}>'
                    f"{e(current)}</textarea></p><button>Save as a new version</button></form>")
        versions = "".join(
            f'<li>{"<strong>" if v == shown.version else ""}<a href="{url("/templates/" + name, version=v)}">v{v}</a>'
            f'{" (latest)" if v == latest.version else ""}{"</strong>" if v == shown.version else ""}</li>'
            for v in reversed(latest.versions or [latest.version]))
        body += f'<h2>Version history</h2><ul id="versions">{versions}</ul>'
        return page(request, user, f"Template {name}", body, "Templates", status)

    async def template_show(request: Request, user: str) -> Response:
        return await template_page(request, user)

    async def template_save(request: Request, user: str) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        text = str(form.get("text", ""))
        before = await run(app.templates.get, user, name)

        def save() -> Any:
            definition = parse_template_text(text)
            if definition.name != name:
                raise InvalidInput(f"the front matter names the template {definition.name!r}; this page edits "
                                   f"{name!r} (to make a new template, ask your assistant to call save_template)")
            return app.templates.save(user, name, definition.body, definition.description, definition.arguments)

        try:
            saved = await write("save_template", user, save)
        except InvalidInput as exc:
            return await template_page(request, user, text=text, error=str(exc), status=400)
        msg = "saved" if saved.version != before.version or saved.source != before.source else "unchanged"
        return RedirectResponse(_with_msg(url("/templates/" + name), msg), 303)

    async def template_restore(request: Request, user: str) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        raw = str(form.get("version", ""))
        if not raw.isdigit():
            return HTMLResponse("version must be a whole number", status_code=400)
        old = await run(app.templates.get, user, name, int(raw))
        await write("restore_template", user, lambda: app.templates.save(user, name, old.body, old.description, old.arguments))
        return RedirectResponse(_with_msg(url("/templates/" + name), "restored"), 303)

    # --- profile and usage ---------------------------------------------------------------------------

    async def profile(request: Request, user: str, *, error: str = "", status: int = 200) -> Response:
        values = await run(app.profiles.get, user)
        days = await run(app.usage.daily, user, 14)
        today = await run(app.usage.summary, user, "month")
        fields = "".join(
            f'<p><label for="p-{k}">{e(k.replace("_", " "))}</label><br><input id="p-{k}" name="{k}" value="{e("" if v is None else v)}"></p>'
            for k, v in values.items())
        rows = "".join(f'<tr><th scope="row">{e(d["day"])}</th><td>{d["generations"]}</td><td>${d["cost_usd"]:.3f}</td></tr>'
                       for d in days if d["generations"])
        alert = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        body = (
            "<h2>Usage, last 14 days (UTC)</h2>" + daily_chart(days)
            + (f'<table><thead><tr><th scope="col">Day</th><th scope="col">Generations</th><th scope="col">Estimated cost</th>'
               f"</tr></thead><tbody>{rows}</tbody></table>" if rows else "")
            + f"<p>This month: ${today['total_cost_usd']:.3f}"
            + (f"; ${today['budget_left_usd']:.2f} left of today's ${today['daily_budget_usd']:.2f} budget"
               if today["daily_budget_usd"] is not None else "; no daily budget set") + ".</p>"
            + "<h2>Profile</h2><p class=\"muted\">Defaults filled into generations that leave them out; an empty field clears it.</p>"
            + f'<form method="post" action="{url("/profile")}">{alert}{fields}<button>Save profile</button></form>')
        return page(request, user, "Profile and usage", body, "Profile and usage", status)

    async def profile_save(request: Request, user: str) -> Response:
        form = await request.form()
        current = await run(app.profiles.get, user)
        changes: dict[str, Any] = {}
        for key in current:
            if key not in form:
                continue
            raw = str(form[key]).strip()
            if key == "daily_budget_usd":
                try:
                    changes[key] = float(raw) if raw else None
                except ValueError:
                    return await profile(request, user, error=f"daily budget usd must be a number of dollars, got {raw!r}",
                                         status=400)
            else:
                changes[key] = raw
        wanted = {k: v for k, v in changes.items() if v != current.get(k) and not (v == "" and current.get(k) is None)}
        if wanted:
            try:
                await write("update_profile", user, lambda: app.profiles.update(user, wanted))
            except ContextServerError as exc:
                return await profile(request, user, error=str(exc), status=400)
        return RedirectResponse(_with_msg(url("/profile"), "profile"), 303)

    # --- signing in and out --------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return sign_in_page(request)
        form = await request.form()
        token = str(form.get("token", "")).strip()
        if not token or await run(auth.verify, token) is None:
            return sign_in_page(request, status=401, error="That token is not valid (revoked or mistyped).")
        response = RedirectResponse(_safe_next(form.get("next"), BASE + "/"), 303)
        auth.set_cookie(request, response, token)
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse(url("/login"), 303)
        auth.clear_cookie(response)
        return response

    routes = [
        Route("/", signed_in(images)),
        Route("/images/{image_id}", signed_in(image)),
        Route("/images/{image_id}/file", signed_in(image_file)),
        Route("/memories", signed_in(memories)),
        Route("/memories/export", signed_in(memory_export)),
        Route("/memories/{memory_id}/pin", signed_in(memory_pin), methods=["POST"]),
        Route("/memories/{memory_id}/delete", signed_in(memory_delete), methods=["POST"]),
        Route("/memories/{memory_id}/edit", signed_in(memory_edit), methods=["POST"]),
        Route("/templates", signed_in(templates)),
        Route("/templates/{name}", signed_in(template_show)),
        Route("/templates/{name}", signed_in(template_save), methods=["POST"]),
        Route("/templates/{name}/restore", signed_in(template_restore), methods=["POST"]),
        Route("/profile", signed_in(profile)),
        Route("/profile", signed_in(profile_save), methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    return Starlette(routes=routes)

