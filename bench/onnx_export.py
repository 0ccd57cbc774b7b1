"""How long the one-time ONNX export of the packaged model takes (a machine's first start), in a fresh process.

    python bench/onnx_export.py

Exports into a temporary directory (imports included), prints wall and CPU seconds, whether torch was
imported, and the largest difference from the cached export's vectors when one exists in the model cache.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    from context_server.adapters.embedder import Embedder, default_model_path
    from context_server.adapters.onnx_encoder import OnnxEncoder, export_onnx, onnx_path_for
    from context_server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.onnx"
        export_onnx(default_model_path(), target)
        print(f"export: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU; "
              f"torch imported: {'torch' in sys.modules}")
        cached = onnx_path_for(Settings.from_env().models_path, default_model_path(), Embedder.model_name)
        if cached.is_file():
            texts = ["a red fox in the snow", "quarterly tax law", "watercolour", "my last spaceship image"]
            fresh = OnnxEncoder(target, default_model_path()).encode(texts)
            known = OnnxEncoder(cached, default_model_path()).encode(texts)
            print(f"largest difference from the cached export's vectors: {abs(fresh - known).max():.2e}")


if __name__ == "__main__":
    main()
