"""The embedder: the real all-MiniLM-L6-v2 from its package, loaded in the background, silent on stdout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from context_server.adapters.embedder import (
    Embedder,
    EmbedderUnavailable,
    SharedBatches,
    cosine,
    default_model_path,
)
from context_server.settings import Settings


def test_vectors_are_normalised_384_floats_and_meaning_decides_similarity(embedder: Embedder) -> None:
    fox, vixen, tax = embedder.embed(
        ["a red fox in the snow", "a ginger vixen on a snowy field", "quarterly tax law"]
    )
    assert len(fox) == embedder.dimension == 384
    assert math.isclose(sum(x * x for x in fox), 1.0, rel_tol=1e-4)
    assert cosine(fox, vixen) > 0.5 > cosine(fox, tax)


def test_batches_keep_input_order(embedder: Embedder) -> None:
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'ships'}" for i in range(70)]
    embedder_small = embedder.batch_size
    together = embedder.embed(texts)
    one_by_one = [embedder.embed([text])[0] for text in (texts[0], texts[65], texts[69])]
    assert embedder_small == 64 and len(together) == 70
    for got, want in zip((together[0], together[65], together[69]), one_by_one, strict=True):
        assert cosine(got, want) > 0.9999


def test_callers_that_arrive_while_the_model_is_busy_share_its_next_run(embedder: Embedder) -> None:
    runs: list[list[str]] = []
    first_run_started, release = threading.Event(), threading.Event()

    def encode(texts: list[str]) -> list[list[float]]:
        runs.append(texts)
        if len(runs) == 1:  # hold the model busy until every other caller has queued
            first_run_started.set()
            release.wait(30)
        return embedder.embed(texts)

    batches = SharedBatches(encode, batch_size=64)
    texts = [f"a {animal} in the {place}" for animal in ("fox", "cat", "owl") for place in ("snow", "rain", "city")]
    got: dict[str, list[float]] = {}

    def call(text: str) -> None:
        got[text] = batches.encode([text])[0]

    lone = threading.Thread(target=call, args=(texts[0],))
    lone.start()
    assert first_run_started.wait(30)
    others = [threading.Thread(target=call, args=(text,)) for text in texts[1:]]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while len(batches._queue) < len(others) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in (lone, *others):
        thread.join(30)
    assert runs[0] == [texts[0]]  # the first caller ran at once, alone
    assert len(runs) == 2 and sorted(runs[1]) == sorted(texts[1:])  # the eight others shared one run
    for text in texts:  # and each got its own text's vector
        assert cosine(got[text], embedder.embed([text])[0]) > 0.9999


def test_a_failed_run_fails_only_its_callers_and_the_next_run_works(embedder: Embedder) -> None:
    calls = []

    def encode(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("the model run failed")
        return embedder.embed(texts)

    batches = SharedBatches(encode, batch_size=64)
    with pytest.raises(RuntimeError, match="the model run failed"):
        batches.encode(["first"])
    assert len(batches.encode(["second", "third"])) == 2


@pytest.fixture(scope="module")
def own_embedder() -> Embedder:
    """An embedder of this module's own (the session's is shared), on the cached ONNX export."""
    model = Embedder(threads=1, cache_dir=Path(os.environ["CONTEXT_SERVER_MODEL_CACHE"]))
    model.wait(60)
    return model


def _held_first_run(model: Embedder, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False
                    ) -> tuple[list[list[str]], threading.Event, threading.Event]:
    """Record every list the model runs; hold the first run until `release` is set (and then fail it if
    `fail`). Returns (runs, first run started, release)."""
    runs: list[list[str]] = []
    started, release = threading.Event(), threading.Event()
    real = model._encode

    def encode(batch: list[str]) -> object:
        runs.append(list(batch))
        if len(runs) == 1:
            started.set()
            release.wait(30)
            if fail:
                raise RuntimeError("the model run failed")
        return real(batch)

    monkeypatch.setattr(model, "_encode", encode)
    return runs, started, release


def test_a_text_being_embedded_is_not_embedded_again_by_a_second_caller(
    own_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search that ranks stored items while a rebuild embeds the same items waits for those vectors instead
    of computing them again, and embeds its own new text itself; a query never waits behind the rebuild."""
    own_embedder.clear_cache()
    runs, started, release = _held_first_run(own_embedder, monkeypatch)
    rebuilt = [f"a lighthouse number {i} on a rocky coast" for i in range(20)]
    ranked = [*rebuilt[2:18], "a red fox in the snow"]
    got: dict[str, list[list[float]]] = {}
    rebuild = threading.Thread(target=lambda: got.setdefault("rebuild", own_embedder.embed(rebuilt)))
    rebuild.start()
    assert started.wait(30)
    search = threading.Thread(target=lambda: got.setdefault("search", own_embedder.embed(ranked)))
    search.start()
    query = own_embedder.embed([rebuilt[5]])  # answered while the rebuild is still held
    search.join(0.5)  # its 17 texts take ~50 ms to compute; the runs recorded below show it computed none
    assert search.is_alive()  # waiting for the rebuild's vectors, not computing them
    release.set()
    rebuild.join(30)
    search.join(30)
    seen = [text for run in runs for text in run]
    assert all(seen.count(text) == 1 for text in rebuilt if text != rebuilt[5])
    assert seen.count(rebuilt[5]) == 2 and seen.count("a red fox in the snow") == 1
    assert got["search"][:16] == got["rebuild"][2:18]
    assert cosine(query[0], got["rebuild"][5]) > 0.9999
    assert cosine(got["search"][16], own_embedder.embed(["a red fox in the snow"])[0]) > 0.9999


def test_a_caller_waiting_for_a_failed_run_gets_its_error_and_the_next_call_works(
    own_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_embedder.clear_cache()
    runs, started, release = _held_first_run(own_embedder, monkeypatch, fail=True)
    errors: list[BaseException] = []

    def embed(texts: list[str]) -> None:
        try:
            own_embedder.embed(texts)
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=embed, args=(["a stone bridge in fog"],))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=embed, args=(["a stone bridge in fog"],))
    second.start()
    second.join(0.5)  # time to start waiting for the held run
    release.set()
    first.join(30)
    second.join(30)
    assert [str(e) for e in errors] == ["the model run failed"] * 2
    assert len(runs) == 1  # the waiting caller did not run the text itself
    assert len(own_embedder.embed(["a stone bridge in fog"])[0]) == 384  # nothing left marked as running


def test_status_reports_the_loaded_model(embedder: Embedder) -> None:
    status = embedder.status()
    assert (status.state, status.model_name, status.dimension, status.error) == (
        "ready",
        "all-MiniLM-L6-v2",
        384,
        None,
    )
    assert Path(status.model_path) == default_model_path()
    assert status.load_seconds is not None and status.load_seconds > 0


def test_a_missing_model_is_reported_on_use_not_at_start(tmp_path: Path) -> None:
    broken = Embedder(threads=1, model_path=tmp_path / "no-model-here")
    broken.start()
    with pytest.raises(EmbedderUnavailable, match="no sentence-transformers model at"):
        broken.wait(timeout=30)
    with pytest.raises(EmbedderUnavailable):
        broken.embed(["anything"])
    assert broken.failed and not broken.ready
    assert broken.status().state == "failed"
    assert "no-model-here" in (broken.status().error or "")


def test_empty_input_needs_no_model(tmp_path: Path) -> None:
    assert Embedder(threads=1, model_path=tmp_path).embed([]) == []


#: Texts the torch fallback and ONNX Runtime must embed alike.
COMPARED = ["muted watercolour with soft edges", "a logo for a coffee shop", "spaceship"]

_CHILD = """
import json, sys, time
from context_server.adapters.embedder import Embedder
began = time.perf_counter()
embedder = Embedder(threads=1)  # no cache directory: sentence-transformers on torch, the fallback
embedder.start()
returned_after = time.perf_counter() - began
ready_at_return = embedder.ready
vector = embedder.embed(["hello"])[0]
json.dump({"returned_after": returned_after, "ready_at_return": ready_at_return, "dim": len(vector),
           "backend": embedder.backend, "compared": embedder.embed(json.loads(sys.argv[2]))},
          open(sys.argv[1], "w"))
"""


@pytest.fixture(scope="module")
def torch_child(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]:
    """One process loading the torch fallback (about 12 s of CPU), shared by the two tests that need it: what
    it wrote to stdout, and its report (timings, and its vectors of `COMPARED`)."""
    report = tmp_path_factory.mktemp("torch") / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(report), json.dumps(COMPARED)],
        capture_output=True,
        timeout=180,
        cwd=Path(__file__).parent.parent,
    )
    return done, json.loads(report.read_text()) if report.is_file() else {}


def test_loading_is_in_the_background_and_never_writes_to_stdout(
    torch_child: tuple[subprocess.CompletedProcess[bytes], dict[str, Any]],
) -> None:
    """stdout is the MCP stdio transport: one stray progress bar there breaks the protocol."""
    done, result = torch_child
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout == b""
    assert result["returned_after"] < 1.0 and result["ready_at_return"] is False
    assert result["dim"] == 384


def test_the_onnx_runtime_gives_the_same_vectors_as_sentence_transformers(
    embedder: Embedder, torch_child: tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]
) -> None:
    """Production embeds with ONNX Runtime (built from the packaged weights); torch is the fallback.
    The two must agree, or an index built by one would be searched with the other's vectors."""
    assert embedder.backend == "onnx"
    done, result = torch_child
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    onnx_vectors = embedder.embed(COMPARED)
    torch_vectors = result["compared"]
    assert result["backend"] == "torch"
    assert len(torch_vectors) == len(COMPARED)
    for a, b in zip(onnx_vectors, torch_vectors, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    assert embedder.status().backend == "onnx"


def test_the_onnx_export_is_fused_and_kept_outside_the_data_directory(embedder: Embedder) -> None:
    """The export carries ONNX Runtime's fused attention (the fast graph), and lives in the shared model
    cache: the tests point CONTEXT_SERVER_MODEL_CACHE at one directory, as a machine's user cache would be."""
    import onnx

    cache = Path(os.environ["CONTEXT_SERVER_MODEL_CACHE"])
    exports = list(cache.glob("all-MiniLM-L6-v2-*.onnx"))
    assert len(exports) == 1 and "-fused" in exports[0].name
    graph = onnx.load(str(exports[0]), load_external_data=False).graph
    assert sum(node.op_type == "Attention" for node in graph.node) == 6  # one per layer
    assert Settings.from_env().models_path == cache  # what a spawned server reads
    default = Settings.from_env({"CONTEXT_SERVER_HOME": "/tmp/x"}).models_path
    assert default.parts[-2:] == ("context-server", "models") and Path("/tmp/x") not in default.parents
