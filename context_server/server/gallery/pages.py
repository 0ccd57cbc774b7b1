"""HTML for the gallery: one layout and small escaping helpers. Every value from the store goes through `e()`.

Pages are plain server-rendered HTML with forms, so everything works without JavaScript; the stylesheet
follows the system's light or dark theme.
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["MESSAGES", "daily_chart", "diff_html", "e", "layout", "receipt_html", "url"]

BASE = "/gallery"

#: The only texts a redirect may ask a page to show (`?msg=` names one), so a link cannot put words there.
MESSAGES = {
    "pinned": "Pinned: this style now applies to every generation.",
    "unpinned": "Unpinned: this style applies only when a prompt is about it.",
    "forgotten": "Forgotten: the memory is deleted and will not be applied again.",
    "updated": "Memory updated.",
    "saved": "Template saved as a new version.",
    "unchanged": "Nothing changed: the template is the same as its latest version.",
    "restored": "Version restored: it is now the latest version.",
    "profile": "Profile updated.",
}

CSS = """
:root{color-scheme:light dark;--bg:#fff;--bg2:#f3f3f1;--fg:#1a1a1a;--fg2:#4a4a4a;--line:#c9c9c4;--accent:#1d56ad;
--danger:#9b1c1c;--add:#dff3df;--del:#f8dede;font-family:system-ui,sans-serif;font-size:15px;line-height:1.45}
@media (prefers-color-scheme:dark){:root{--bg:#181818;--bg2:#242424;--fg:#f0f0f0;--fg2:#c4c4c4;--line:#4a4a4a;
--accent:#93bbff;--danger:#ff9a9a;--add:#173d1d;--del:#4a1c1c}}
body{margin:0;background:var(--bg);color:var(--fg)}a{color:var(--accent)}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px}
header{display:flex;flex-wrap:wrap;gap:16px;align-items:center;padding:10px 20px;border-bottom:1px solid var(--line);background:var(--bg2)}
header nav ul{display:flex;gap:14px;list-style:none;margin:0;padding:0}header nav a[aria-current]{font-weight:700}
.brand{font-weight:700}.who{margin-left:auto;color:var(--fg2)}
main{padding:16px 20px;max-width:1100px}h1{font-size:22px;margin:4px 0 12px}h2{font-size:17px;margin:18px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:14px;list-style:none;padding:0}
.grid li{border:1px solid var(--line);border-radius:8px;padding:8px;background:var(--bg2)}
.grid img{width:100%;height:auto;border-radius:5px;display:block}.grid p{margin:6px 0 0;font-size:13px}
.muted{color:var(--fg2)}.row{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
form.inline{display:inline}button,input,select,textarea{font:inherit;color:var(--fg);background:var(--bg);
border:1px solid var(--line);border-radius:5px;padding:4px 8px}button{background:var(--bg2);cursor:pointer}
button.danger{color:var(--danger)}textarea{width:100%;min-height:16em;font-family:ui-monospace,monospace;font-size:13px}
table{border-collapse:collapse}td,th{border-bottom:1px solid var(--line);padding:4px 10px 4px 0;text-align:left;vertical-align:top}
.big{max-width:min(100%,640px);height:auto;border-radius:8px;border:1px solid var(--line)}
.status{padding:6px 10px;border-left:4px solid var(--accent);background:var(--bg2)}
.error{padding:6px 10px;border-left:4px solid var(--danger);background:var(--bg2);white-space:pre-wrap}
.memory{border-bottom:1px solid var(--line);padding:8px 0}pre.diff{background:var(--bg2);padding:8px;overflow:auto}
.diff .add{background:var(--add)}.diff .del{background:var(--del)}code{font-family:ui-monospace,monospace;font-size:13px}
svg text{fill:var(--fg);font-size:11px}svg .bar{fill:var(--accent)}svg .axis{stroke:var(--line)}
"""

NAV = (("Images", ""), ("Memories", "/memories"), ("Templates", "/templates"), ("Profile and usage", "/profile"))


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def url(path: str, **params: object) -> str:
    """A gallery address; `path` is relative to `/gallery`, parameters left None are dropped."""
    query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
    return f"{BASE}{quote(path, safe='/')}" + (f"?{query}" if query else "")


def layout(title: str, body: str, *, user: str, section: str, message: str | None = None) -> str:
    links = "".join(
        f'<li><a href="{url(path or "/")}"{" aria-current=page" if label == section else ""}>{e(label)}</a></li>'
        for label, path in NAV
    )
    note = f'<p class="status" role="status">{e(MESSAGES[message])}</p>' if message in MESSAGES else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · context-server gallery</title><style>{CSS}</style></head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><span class="brand">context-server</span><nav aria-label="Gallery"><ul>{links}</ul></nav>'
        f'<span class="who">Signed in as <strong>{e(user)}</strong></span>'
        f'<form class="inline" method="post" action="{url("/logout")}"><button>Sign out</button></form></header>'
        f'<main id="main"><h1>{e(title)}</h1>{note}{body}</main></body></html>'
    )


def bare(title: str, body: str) -> str:
    """A page outside the signed-in layout (sign-in, not found)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · context-server gallery</title><style>{CSS}</style></head><body>"
        f'<main id="main"><h1>{e(title)}</h1>{body}</main></body></html>'
    )


def receipt_html(applied: dict[str, Any], *, back: str) -> str:
    """The `applied` receipt, with pin / unpin / forget buttons next to each style that came from memory."""
    items: list[str] = []
    for style in applied.get("styles") or []:
        memory_id = str(style.get("memory_id", ""))
        items.append(
            f'<li>Style “{e(style.get("content"))}” <span class="muted">(memory <code>{e(memory_id)}</code>, '
            f'score {e(style.get("score"))})</span> '
            + memory_buttons(memory_id, pinned=None, back=back) + "</li>"
        )
    profile = applied.get("profile") or {}
    if profile:
        items.append("<li>Profile defaults: " + e(", ".join(f"{k}={v}" for k, v in profile.items())) + "</li>")
    if applied.get("template"):
        version = applied.get("template_version")
        name = str(applied["template"])
        items.append(f'<li>Template: <a href="{url("/templates/" + name)}">{e(name)}</a>'
                     + (f" v{e(version)}" if version else "") + "</li>")
    reference = applied.get("reference")
    if reference:
        ref_id = str(reference.get("image_id", ""))
        alternatives = "".join(
            f'<li><a href="{url("/images/" + str(a.get("image_id", "")))}">{e(a.get("image_id"))}</a> '
            f'{e(a.get("prompt", ""))}</li>' for a in reference.get("alternatives") or [] if isinstance(a, dict))
        items.append(
            f'<li>Reference: <a href="{url("/images/" + ref_id)}">{e(ref_id)}</a> ({e(reference.get("mode"))}'
            + (f"; {e(reference.get('reason'))}" if reference.get("reason") else "") + ")"
            + (f"<ul>{alternatives}</ul>" if alternatives else "") + "</li>")
    if not items:
        return '<p class="muted">Nothing: the prompt was sent as given.</p>'
    return f'<ul id="receipt">{"".join(items)}</ul>'


def memory_buttons(memory_id: str, *, pinned: bool | None, back: str) -> str:
    """Pin (or unpin) and forget forms for one memory; `pinned=None` offers both pin and unpin."""
    forms = []
    for value, label in (("1", "Pin"), ("0", "Unpin")):
        if pinned is None or pinned != (value == "1"):
            forms.append(
                f'<form class="inline" method="post" action="{url("/memories/" + memory_id + "/pin")}">'
                f'<input type="hidden" name="pinned" value="{value}"><input type="hidden" name="next" value="{e(back)}">'
                f'<button aria-label="{label} memory {e(memory_id)}">{label}</button></form>')
    forms.append(
        f'<form class="inline" method="post" action="{url("/memories/" + memory_id + "/delete")}">'
        f'<input type="hidden" name="next" value="{e(back)}">'
        f'<button class="danger" aria-label="Forget memory {e(memory_id)}">Forget</button></form>')
    return " ".join(forms)


def table(rows: Iterable[tuple[str, object]]) -> str:
    return "<table><tbody>" + "".join(
        f'<tr><th scope="row">{e(k)}</th><td>{e(v if not isinstance(v, dict | list) else json.dumps(v))}</td></tr>'
        for k, v in rows) + "</tbody></table>"


def diff_html(old: str, new: str, old_label: str, new_label: str) -> str:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, lineterm=""))
    if not lines:
        return '<p class="muted">No difference.</p>'
    out = []
    for line in lines:
        cls = "add" if line.startswith("+") and not line.startswith("+++") else \
              "del" if line.startswith("-") and not line.startswith("---") else ""
        out.append(f'<span class="{cls}">{e(line)}</span>' if cls else e(line))
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def daily_chart(days: Sequence[dict[str, Any]]) -> str:
    """Bars of generations per day with the cost written under each; the table beside it has the numbers."""
    if not days:
        return '<p class="muted">No generations in this period.</p>'
    width, height, pad = 44 * len(days) + 40, 190, 30
    top = max(int(d["generations"]) for d in days) or 1
    bars = []
    for i, day in enumerate(days):
        h = int(day["generations"]) / top * (height - 2 * pad - 20)
        x = 30 + i * 44
        y = height - pad - h
        bars.append(
            f'<rect class="bar" x="{x}" y="{y:.1f}" width="30" height="{h:.1f}"><title>{e(day["day"])}: '
            f'{e(day["generations"])} generations, ${float(day["cost_usd"]):.3f}</title></rect>'
            f'<text x="{x + 15}" y="{y - 4:.1f}" text-anchor="middle">{e(day["generations"])}</text>'
            f'<text x="{x + 15}" y="{height - pad + 13}" text-anchor="middle">{e(str(day["day"])[5:])}</text>'
            f'<text x="{x + 15}" y="{height - pad + 26}" text-anchor="middle">${float(day["cost_usd"]):.2f}</text>')
    total = sum(int(d["generations"]) for d in days)
    cost = sum(float(d["cost_usd"]) for d in days)
    label = f"Generations per day: {total} in {len(days)} days, ${cost:.2f} estimated cost"
    return (f'<svg role="img" aria-label="{e(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><line class="axis" x1="25" x2="{width}" y1="{height - pad}" '
            f'y2="{height - pad}"/>{"".join(bars)}</svg>')
