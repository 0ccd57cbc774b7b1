"""Reference and style quality (issue 13): the labelled set in bench/quality/, run against the installed server.

    python bench/quality.py [--only NAME] [--json FILE] [--verbose] [--jobs N]

Each *history* (bench/quality/references.yaml) and each *style set* (bench/quality/styles.yaml) is a script of
MCP calls on a fresh data directory (CONTEXT_SERVER_HOME), over stdio with the `mcp` client, on the
placeholder provider at 64x64. Probes are `generate_image(..., dry_run=True)`, so probing never changes the
history; the answer is read from the receipt: `applied.reference.image_id`, `applied.styles[].memory_id`,
`final_prompt` and `negative_prompt`.

Steps of a history (one YAML mapping each):

    {gen: LABEL, prompt: "...", when: "yesterday 14:00", incognito: true}   generate_image; `when` and
                                                          `incognito` optional
    {edit: LABEL, image: LABEL, instruction: "..."}       edit_image of a labelled image (passed by id)
    {delete: LABEL}                                       delete_image
    {restart: "why"}                                      a new server process on the same directory (a new
                                                          session); pending `when` times are written first
    {user: other}                                         a new server process as CONTEXT_SERVER_USER=other
    {probe: "words", expect: LABEL | none, cat: ..., why: "..."}
                                                          `@LABEL` as words means that image's id;
                                                          `expect: none` means the call must fail

Time words: MCP cannot set a creation time, so `when` is applied by rewriting `images.created_at` (and the
job's) in context.db while no server runs, at the next `restart`/`user` step. Times are local to a fixed
UTC offset chosen so that it is about 15:00 local now ("this morning" = earlier today, "yesterday" =
the previous calendar day); the server gets the same offset as its TZ.

Steps of a style set:

    {save: LABEL, content: "...", kind: style, pinned: true, scope: session, applies_to: "logos",
     neg: [terms]}                                        save_memory; `neg` marks a negative preference: it
                                                          is applied when a term is in negative_prompt
    {restart: "why"}
    {prompt: "...", expect: [LABELS], optional: [LABELS], cat: ..., why: "..."}

Scores (the last line): ref_accuracy = correct reference probes / all; style_recall = applied / (probe,
expected non-pinned memory) pairs; style_leakage = applied / (probe, non-pinned memory not expected and not
optional) pairs, plus one pair per (probe, negative memory) that counts as leaked when its term reaches the
positive prompt; pinned_applied = applied / (probe, pinned style) pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client, StdioServerParameters

HERE = Path(__file__).resolve().parent
SET_DIR = HERE / "quality"
CALL_TIMEOUT = 60.0
START_TIMEOUT = 120.0
WARM_UP_TIMEOUT = 900.0
SETTLE_TIMEOUT = 60.0
SIZE = 64
PROBE_PROMPT = "a new version of it"
LOCAL_HOUR = 15


#: Opens a client on a server given that server's environment (CONTEXT_SERVER_HOME, CONTEXT_SERVER_USER, TZ,
#: ...); None: the installed server over stdio. The suite passes one that runs the server in its own process.
Connect = Callable[[dict[str, str]], AbstractAsyncContextManager[Client]]


class SetupError(Exception):
    """A scripted call that must succeed did not: the rest of that history or set is counted as failed."""


# --- time --------------------------------------------------------------------------------------------------


def local_offset(now: datetime | None = None) -> int:
    """Whole hours east of UTC that make it about LOCAL_HOUR:00 local now (-12..+14)."""
    now = now or datetime.now(UTC)
    hours = round(LOCAL_HOUR - (now.hour + now.minute / 60))
    while hours > 14:
        hours -= 24
    while hours < -12:
        hours += 24
    return hours


def posix_tz(offset: int) -> str:
    """A POSIX TZ string (no tz database needed): 'QBT-3' is UTC+3."""
    return f"QBT{-offset:+d}".replace("+", "")


def when_to_utc(spec: str, offset: int, now: datetime | None = None) -> str:
    """'today 09:00', 'yesterday 20:00', '-7d 11:00' (local clock) or '-3h', '-20m' → the server's timestamp."""
    tz = timezone(timedelta(hours=offset))
    local = (now or datetime.now(UTC)).astimezone(tz)
    parts = spec.split()
    head = parts[0]
    if head.endswith(("h", "m")) and head.startswith("-") and len(parts) == 1:
        delta = timedelta(hours=int(head[1:-1])) if head.endswith("h") else timedelta(minutes=int(head[1:-1]))
        moment = local - delta
    else:
        days = {"today": 0, "yesterday": 1}.get(head)
        if days is None:
            if not (head.startswith("-") and head.endswith("d")):
                raise ValueError(f"bad when: {spec!r}")
            days = int(head[1:-1])
        hour, minute = (int(x) for x in parts[1].split(":"))
        moment = (local - timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        if moment > local:
            raise ValueError(f"when {spec!r} is in the future at {local:%H:%M} local")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- one data directory, one server at a time -------------------------------------------------------------


class Server:
    """The installed server over stdio on one data directory; `restart` starts a new process (new session)."""

    def __init__(self, home: Path, offset: int, checkout: Path | None = None, connect: Connect | None = None) -> None:
        self.home = home
        self.offset = offset
        self.checkout = checkout
        self.connect = connect
        self.user = "local"
        self.stack: AsyncExitStack | None = None
        self.client: Client | None = None
        self.pending_times: dict[str, str] = {}
        self.dirty = False

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTEXT_SERVER_HOME": str(self.home), "CONTEXT_SERVER_USER": self.user,
                "CONTEXT_SERVER_LOG_LEVEL": "ERROR", "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "0",
                "TZ": posix_tz(self.offset)}

    def params(self) -> StdioServerParameters:
        env = self.env()
        if self.checkout is not None:  # the tests run their own checkout, as conftest's stdio_server does
            env["PYTHONPATH"] = str(self.checkout)
            return StdioServerParameters(command=sys.executable, args=["-m", "context_server.cli"],
                                         cwd=str(self.checkout), env=env)
        exe = Path(sys.executable).parent / "context-server"
        if exe.exists():
            return StdioServerParameters(command=str(exe), args=[], env=env)
        return StdioServerParameters(command=sys.executable, args=["-m", "context_server.cli"], env=env)

    async def start(self) -> None:
        # No cancel scope may wrap entering the client (its task group would outlive the scope): the
        # client's own read timeout bounds the handshake instead.
        self.stack = AsyncExitStack()
        self.client = await self.stack.enter_async_context(
            Client(self.params(), read_timeout_seconds=START_TIMEOUT) if self.connect is None
            else self.connect(self.env()))
        with anyio.fail_after(START_TIMEOUT):
            await self.client.list_tools()
        self.dirty = True

    async def stop(self) -> None:
        if self.stack is not None:
            stack, self.stack, self.client = self.stack, None, None
            with contextlib.suppress(Exception):  # a server that died on its own is already stopped
                await stack.aclose()
        self._write_times()

    async def restart(self, user: str | None = None) -> None:
        await self.stop()
        if user is not None:
            self.user = user
        await self.start()

    async def settle(self) -> None:
        """Wait (up to SETTLE_TIMEOUT) until the server has indexed what it was given: its outbox in
        context.db is empty. A person's next message comes seconds later; probing faster than that would
        measure indexing lag, not resolution."""
        if not self.dirty:
            return
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                db = sqlite3.connect(f"file:{self.home / 'context.db'}?mode=ro", uri=True, timeout=5)
                try:
                    left = db.execute("select count(*) from outbox").fetchone()[0]
                finally:
                    db.close()
            except sqlite3.Error:
                left = 1
            if not left:
                break
            await anyio.sleep(0.02)  # a drain takes tens of ms; polling at 0.1 s idled the suite's slice ~5 s
        self.dirty = False

    def _write_times(self) -> None:
        if not self.pending_times:
            return
        db = sqlite3.connect(self.home / "context.db", timeout=30)
        try:
            with db:
                for image_id, created in self.pending_times.items():
                    db.execute("update images set created_at = ? where id = ?", [created, image_id])
                    db.execute("update jobs set created_at = ? where image_id = ?", [created, image_id])
        finally:
            db.close()
        self.pending_times.clear()

    async def call(self, tool: str, args: dict[str, Any],
                   timeout: float = CALL_TIMEOUT) -> tuple[bool, dict[str, Any], str]:
        """(ok, structured content, text). Errors, timeouts and dead servers come back as not ok."""
        if self.client is None:
            return False, {}, "no server running"
        try:
            with anyio.fail_after(timeout):
                result = await self.client.call_tool(tool, args)
        except TimeoutError:
            return False, {}, f"timed out after {timeout:.0f}s"
        except Exception as exc:  # a dead or broken server must not end the run
            return False, {}, f"{type(exc).__name__}: {exc}"
        text = " ".join(getattr(c, "text", "") for c in result.content or [])
        return (not result.is_error), (result.structured_content or {}), text

    async def must(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        self.dirty = True
        ok, out, text = await self.call(tool, args)
        if not ok:
            raise SetupError(f"{tool}({_short(args)}) failed: {text[:200]}")
        return out


def _short(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}"[:60] for k, v in args.items())


# --- references ------------------------------------------------------------------------------------------


@dataclass
class RefResult:
    history: str
    words: str
    expect: str
    got: str
    ok: bool
    cat: str
    why: str
    detail: str = ""


async def run_history(history: dict[str, Any], offset: int, checkout: Path | None = None,
                      connect: Connect | None = None) -> list[RefResult]:
    name = history["name"]
    results: list[RefResult] = []
    ids: dict[str, str] = {}
    broken = ""
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        server = Server(Path(tmp) / "home", offset, checkout, connect)
        try:
            await server.start()
        except Exception as exc:
            broken = f"server did not start: {exc}"
        try:
            for step in history["steps"]:
                if "probe" in step:
                    results.append(await _probe(server, name, step, ids, broken))
                    continue
                if broken:
                    continue
                try:
                    await _ref_step(server, step, ids)
                except Exception as exc:
                    broken = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"
        finally:
            await server.stop()
    return results


async def _ref_step(server: Server, step: dict[str, Any], ids: dict[str, str]) -> None:
    if "gen" in step:
        args: dict[str, Any] = {"prompt": step["prompt"], "width": SIZE, "height": SIZE}
        if step.get("incognito"):
            args["incognito"] = True
        out = await server.must("generate_image", args)
        ids[step["gen"]] = out["image_id"]
        if step.get("when"):
            server.pending_times[out["image_id"]] = when_to_utc(step["when"], server.offset)
    elif "edit" in step:
        source = ids.get(step["image"], step["image"])
        out = await server.must("edit_image", {"image": source, "instruction": step["instruction"]})
        ids[step["edit"]] = out["image_id"]
    elif "delete" in step:
        await server.must("delete_image", {"image_id": ids[step["delete"]]})
    elif "restart" in step:
        await server.restart()
    elif "user" in step:
        await server.restart(user=step["user"])
    else:
        raise SetupError(f"unknown step {step}")


async def _probe(server: Server, history: str, step: dict[str, Any], ids: dict[str, str],
                 broken: str) -> RefResult:
    words = str(step["probe"])
    expect = str(step["expect"])
    result = RefResult(history, words, expect, "", False, step.get("cat", "other"), step.get("why", ""))
    if broken:
        result.got, result.detail = "error", f"history broken: {broken}"
        return result
    if server.pending_times:
        result.got, result.detail = "error", "dataset: a probe after `when` needs a restart step first"
        return result
    reference = ids.get(words[1:], words) if words.startswith("@") else words
    await server.settle()
    ok, out, text = await server.call("generate_image", {
        "prompt": step.get("prompt", PROBE_PROMPT), "reference": reference, "dry_run": True,
        "width": SIZE, "height": SIZE})
    if not ok:
        result.got, result.detail = "none", text[:160]
        result.ok = expect == "none"
        return result
    ref = (out.get("applied") or {}).get("reference") or {}
    chosen = ref.get("image_id")
    labels = {v: k for k, v in ids.items()}
    result.got = labels.get(chosen, str(chosen))
    result.ok = expect != "none" and chosen == ids.get(expect)
    result.detail = str(ref.get("reason") or "")[:120]
    return result


# --- styles ----------------------------------------------------------------------------------------------


@dataclass
class StyleResult:
    style_set: str
    prompt: str
    cat: str
    why: str
    expected: list[str]
    missed: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    pinned_missed: list[str] = field(default_factory=list)
    hits: int = 0
    expected_pairs: int = 0
    leak_pairs: int = 0
    leaks: int = 0
    pinned_pairs: int = 0
    pinned_hits: int = 0
    error: str = ""


@dataclass
class Saved:
    label: str
    memory_id: str
    kind: str
    pinned: bool
    session: bool
    neg: list[str]


async def run_style_set(style_set: dict[str, Any], offset: int, checkout: Path | None = None,
                        connect: Connect | None = None) -> list[StyleResult]:
    name = style_set["name"]
    results: list[StyleResult] = []
    saved: dict[str, Saved] = {}
    declared: dict[str, dict[str, Any]] = {}
    broken = ""
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        server = Server(Path(tmp) / "home", offset, checkout, connect)
        try:
            await server.start()
        except Exception as exc:
            broken = f"server did not start: {exc}"
        try:
            for step in style_set["steps"]:
                if "save" in step:
                    declared[step["save"]] = step
                if "prompt" in step:
                    results.append(await _style_probe(server, name, step, saved, declared, broken))
                    continue
                if broken:
                    continue
                try:
                    await _style_step(server, step, saved)
                except Exception as exc:
                    broken = str(exc) if isinstance(exc, SetupError) else f"{type(exc).__name__}: {exc}"
        finally:
            await server.stop()
    return results


async def _style_step(server: Server, step: dict[str, Any], saved: dict[str, Saved]) -> None:
    if "save" in step:
        args: dict[str, Any] = {"content": step["content"], "kind": step.get("kind", "style")}
        for key in ("pinned", "scope", "applies_to", "tags"):
            if key in step:
                args[key] = step[key]
        out = await server.must("save_memory", args)
        memory_id = out.get("merged_into") or out["memory_id"]
        saved[step["save"]] = Saved(step["save"], memory_id, args["kind"], bool(step.get("pinned")),
                                    step.get("scope") == "session", [t.lower() for t in step.get("neg", [])])
    elif "restart" in step:
        await server.restart()
        for label in [k for k, s in saved.items() if s.session]:
            del saved[label]
    else:
        raise SetupError(f"unknown step {step}")


async def _style_probe(server: Server, set_name: str, step: dict[str, Any], saved: dict[str, Saved],
                       declared: dict[str, dict[str, Any]], broken: str) -> StyleResult:
    prompt = step["prompt"]
    expected = list(step.get("expect", []))
    optional = set(step.get("optional", []))
    result = StyleResult(set_name, prompt, step.get("cat", "other"), step.get("why", ""), expected)
    out: dict[str, Any] = {}
    if broken:
        result.error = f"set broken: {broken}"
    else:
        await server.settle()
        ok, out, text = await server.call("generate_image", {"prompt": prompt, "dry_run": True,
                                                               "width": SIZE, "height": SIZE})
        if not ok:
            result.error, out = text[:160], {}
    applied_ids = {s.get("memory_id") for s in (out.get("applied") or {}).get("styles", [])}
    final = str(out.get("final_prompt") or "").lower()
    positive_extra = final.replace(prompt.lower().rstrip(".!? "), " ", 1)
    negative = str(out.get("negative_prompt") or "").lower()
    # Labels whose save failed (broken set) are judged as if saved and never applied.
    memories = dict(saved)
    if broken:
        for label, decl in declared.items():
            if label not in memories and decl.get("scope") != "session":
                memories[label] = Saved(label, "", decl.get("kind", "style"), bool(decl.get("pinned")),
                                        False, [t.lower() for t in decl.get("neg", [])])
    for label, memory in memories.items():
        if memory.neg:
            in_negative = bool(out) and _mentions(negative, memory.neg)
            in_positive = bool(out) and _mentions(positive_extra, memory.neg)
            applied = in_negative
            result.leak_pairs += 1  # a negative preference must never reach the positive prompt
            if in_positive or result.error:
                result.leaks += 1
                result.leaked.append(f"{label}(+)")
        else:
            applied = bool(memory.memory_id) and memory.memory_id in applied_ids
        if memory.pinned and memory.kind == "style":
            result.pinned_pairs += 1
            result.pinned_hits += applied
            if not applied:
                result.pinned_missed.append(label)
        elif label in expected:
            result.expected_pairs += 1
            result.hits += applied
            if not applied:
                result.missed.append(label)
        elif label not in optional:
            result.leak_pairs += 1
            if applied or result.error:
                result.leaks += 1
                result.leaked.append(label)
    unknown = [x for x in expected if x not in memories]
    if unknown:
        result.error = (result.error + f" dataset: unknown labels {unknown}").strip()
    return result


def _mentions(text: str, terms: list[str]) -> bool:
    """A term as a word (plural allowed): 'text' is in 'no text' but not in 'gouache textures'."""
    return any(re.search(rf"\b{re.escape(t)}(?:s|es)?\b", text) for t in terms)


# --- report ----------------------------------------------------------------------------------------------


def _progress(line: str) -> None:
    """Progress goes to stderr, so stdout is the report alone."""
    print(line, file=sys.stderr, flush=True)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 1.0


def report(refs: list[RefResult], styles: list[StyleResult], verbose: bool) -> str:
    lines: list[str] = []
    if refs:
        lines.append(f"references: {sum(r.ok for r in refs)}/{len(refs)} correct")
        by_cat: dict[str, list[RefResult]] = defaultdict(list)
        by_hist: dict[str, list[RefResult]] = defaultdict(list)
        for r in refs:
            by_cat[r.cat].append(r)
            by_hist[r.history].append(r)
        lines.append("  by category: " + "  ".join(
            f"{c} {sum(r.ok for r in rs)}/{len(rs)}" for c, rs in sorted(by_cat.items())))
        lines.append("  by history:  " + "  ".join(
            f"{h} {sum(r.ok for r in rs)}/{len(rs)}" for h, rs in by_hist.items()))
        failing = [r for r in refs if not r.ok]
        if failing:
            lines.append("  failing reference probes:")
            for r in failing:
                detail = f"  [{r.detail}]" if verbose and r.detail else ""
                lines.append(f"    {r.history}: {r.words!r} -> {r.got} (expected {r.expect}; {r.cat}){detail}")
    if styles:
        lines.append(f"styles: {len(styles)} probes")
        by_cat2: dict[str, list[StyleResult]] = defaultdict(list)
        for s in styles:
            by_cat2[s.cat].append(s)
        for c, ss in sorted(by_cat2.items()):
            lines.append(f"  {c:<12} recall {_ratio(sum(s.hits for s in ss), sum(s.expected_pairs for s in ss)):.2f}"
                         f"  leakage {_ratio(sum(s.leaks for s in ss), sum(s.leak_pairs for s in ss)):.2f}"
                         f"  ({len(ss)} probes)")
        failing2 = [s for s in styles if s.missed or s.leaked or s.pinned_missed or s.error]
        if failing2:
            lines.append("  failing style probes:")
            for s in failing2:
                bits = [f"missed {s.missed}" if s.missed else "", f"leaked {s.leaked}" if s.leaked else "",
                        f"pinned missed {s.pinned_missed}" if s.pinned_missed else "",
                        f"error: {s.error[:100]}" if s.error else ""]
                lines.append(f"    {s.style_set}: {s.prompt!r}: " + "; ".join(b for b in bits if b))
    return "\n".join(lines)


def scores(refs: list[RefResult], styles: list[StyleResult]) -> dict[str, float]:
    leak_den = sum(s.leak_pairs for s in styles)
    return {
        "ref_accuracy": _ratio(sum(r.ok for r in refs), len(refs)) if refs else 0.0,
        "style_recall": _ratio(sum(s.hits for s in styles), sum(s.expected_pairs for s in styles)),
        "style_leakage": sum(s.leaks for s in styles) / leak_den if leak_den else 0.0,
        "pinned_applied": _ratio(sum(s.pinned_hits for s in styles), sum(s.pinned_pairs for s in styles)),
    }


def score_line(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in values.items())


def load(kind: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((SET_DIR / f"{kind}.yaml").read_text(encoding="utf-8")))


async def warm_up(offset: int) -> None:
    """One throwaway server that embeds something, so the model's one-time ONNX export (minutes on a busy
    machine) lands in the shared model cache before any timed call."""
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        server = Server(Path(tmp) / "home", offset)
        try:
            await server.start()
            await server.call("search_memories", {"query": "warm up"}, timeout=WARM_UP_TIMEOUT)
        finally:
            await server.stop()


async def evaluate(only: set[str] | None = None, *, warm: bool = True, checkout: Path | None = None,
                   jobs: int = 1, connect: Connect | None = None) -> tuple[list[RefResult], list[StyleResult]]:
    """Run the histories and style sets (all, or those named in `only`), `jobs` at a time, each on its own
    data directory: the installed `context-server`, `python -m context_server.cli` from `checkout`, or
    whatever `connect` opens (each restart closes the client and connects again).
    Results keep the order of the set whatever finishes first."""
    offset = local_offset()
    if warm:
        await warm_up(offset)
    histories = [h for h in load("references") if only is None or h["name"] in only]
    style_sets = [s for s in load("styles") if only is None or s["name"] in only]
    ref_out: list[list[RefResult]] = [[] for _ in histories]
    style_out: list[list[StyleResult]] = [[] for _ in style_sets]
    limiter = anyio.CapacityLimiter(max(1, jobs))

    async def one_history(i: int) -> None:
        async with limiter:
            started = time.perf_counter()
            ref_out[i] = done = await run_history(histories[i], offset, checkout, connect)
            _progress(f"{histories[i]['name']}: {sum(r.ok for r in done)}/{len(done)} "
                      f"({time.perf_counter() - started:.0f} s)")

    async def one_style_set(i: int) -> None:
        async with limiter:
            started = time.perf_counter()
            style_out[i] = done = await run_style_set(style_sets[i], offset, checkout, connect)
            clean = sum(not (s.missed or s.leaked or s.pinned_missed or s.error) for s in done)
            _progress(f"{style_sets[i]['name']}: {clean}/{len(done)} clean ({time.perf_counter() - started:.0f} s)")

    async with anyio.create_task_group() as group:
        for i in range(len(histories)):
            group.start_soon(one_history, i)
        for i in range(len(style_sets)):
            group.start_soon(one_style_set, i)
    return [r for rs in ref_out for r in rs], [s for ss in style_out for s in ss]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this history or style set "
                        "(repeatable)")
    parser.add_argument("--json", metavar="FILE", help="write every probe's details to FILE")
    parser.add_argument("--verbose", action="store_true", help="show the server's reason or error per failure")
    parser.add_argument("--jobs", type=int, default=1, help="histories and style sets run at once (default 1)")
    args = parser.parse_args()
    started = time.perf_counter()
    only = set(args.only) if args.only else None
    refs, styles = await evaluate(only, jobs=args.jobs)
    values = scores(refs, styles)
    print(report(refs, styles, args.verbose))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"scores": values, "references": [asdict(r) for r in refs], "styles": [asdict(s) for s in styles]},
            indent=1), encoding="utf-8")
    print(f"{len(refs)} reference probes, {len(styles)} style probes in {time.perf_counter() - started:.0f} s")
    print(score_line(values))


if __name__ == "__main__":
    asyncio.run(main())
