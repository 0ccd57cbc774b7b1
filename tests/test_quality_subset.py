"""A slice of the issue-13 quality set (bench/quality.py), held to the issue's targets.

The full set runs with `python bench/quality.py`; here two histories and two style sets keep the resolver
honest in the suite, each server in this process (`served`: the same App and MCP server a stdio process runs,
a restart is a new App on the same directory) instead of a process per start. The labelled set itself is
checked for the sizes the issue asks for.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType

import pytest
from mcp import Client

from context_server.adapters.embedder import Embedder
from context_server.settings import Settings

from .conftest import WORKTREE, served


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_quality", WORKTREE / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


quality = _load_harness()

SUBSET = {"logos-portraits", "colours", "designer", "photographer"}


def test_the_labelled_set_has_the_size_and_labels_the_issue_asks_for() -> None:
    histories, style_sets = quality.load("references"), quality.load("styles")
    probes = [s for h in histories for s in h["steps"] if "probe" in s]
    style_probes = [s for st in style_sets for s in st["steps"] if "prompt" in s]
    assert len(histories) >= 15 and len(probes) >= 200
    assert len(style_sets) >= 8 and len(style_probes) >= 100
    assert all(p.get("why") and p.get("cat") for p in [*probes, *style_probes])
    for history in histories:
        labels = {s.get("gen") or s.get("edit") for s in history["steps"]} - {None}
        for step in history["steps"]:
            if "image" in step:
                assert step["image"] in labels, (history["name"], step)
            if "probe" in step:
                assert step["expect"] == "none" or step["expect"] in labels, (history["name"], step)
    for style_set in style_sets:
        labels = {s["save"] for s in style_set["steps"] if "save" in s}
        for step in style_set["steps"]:
            if "prompt" in step:
                assert set(step["expect"]) | set(step.get("optional", [])) <= labels, (style_set["name"], step)
    assert {h["name"] for h in histories} | {s["name"] for s in style_sets} >= SUBSET


def test_time_words_are_written_on_a_fixed_afternoon_clock() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 2, 22, 10, tzinfo=UTC)
    offset = quality.local_offset(now)
    assert offset == -7 and quality.posix_tz(offset) == "QBT7"
    assert quality.when_to_utc("today 09:00", offset, now) == "2026-03-02T16:00:00.000000Z"
    assert quality.when_to_utc("yesterday 20:00", offset, now) == "2026-03-02T03:00:00.000000Z"
    assert quality.when_to_utc("-7d 11:00", offset, now) == "2026-02-23T18:00:00.000000Z"
    assert quality.when_to_utc("-3h", offset, now) == "2026-03-02T19:10:00.000000Z"


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_slice_of_the_quality_set_meets_the_issue_13_targets(
        embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers run in this process on the session's model. The harness gives each server the UTC offset
    it plays as TZ; in one process that is the process's time zone (`time.tzset`; where there is none, the
    servers are spawned over stdio, as the harness does by default)."""
    tzset: Callable[[], None] | None = getattr(time, "tzset", None)

    @asynccontextmanager
    async def in_process(env: dict[str, str]) -> AsyncIterator[Client]:
        assert tzset is not None
        monkeypatch.setenv("TZ", env["TZ"])  # every server of one run gets the same offset
        tzset()
        async with served(Settings.from_env(env), embedder) as client:
            yield client

    try:
        refs, styles = await quality.evaluate(SUBSET, warm=False, checkout=WORKTREE, jobs=len(SUBSET),
                                              connect=in_process if tzset is not None else None)
    finally:
        monkeypatch.undo()  # TZ as it was
        if tzset is not None:
            tzset()
    values = quality.scores(refs, styles)
    details = quality.report(refs, styles, verbose=True)
    assert len(refs) >= 25 and len(styles) >= 20
    # The whole set meets the issue's 0.95 (docs/benchmarks.md); this 27-probe slice holds two probes that
    # need world knowledge no lexicon gives ("the red bird" for a cardinal), so its floor is 0.90.
    assert values["ref_accuracy"] >= 0.90, details
    assert values["style_recall"] >= 0.90, details
    assert values["style_leakage"] <= 0.05, details
    assert values["pinned_applied"] == 1.0, details
