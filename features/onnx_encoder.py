"""The embedding model as an ONNX Runtime session: the CPU path of ``TextEncoder``.

It gives PyTorch's float32 vectors (max abs difference ~1e-7) in a runtime whose graph
optimisations fuse bias + GELU and some MatMuls. How much that buys depends on the CPU and on
PyTorch's own kernels: ``benchmarks/embed.py`` measures it beside PyTorch float32 (on a
2-core CPU with AMX, 112 against 115 texts/s: no gain there, where bfloat16
autocast, ``TextEncoder``'s default on such CPUs, is about three times either).

The ONNX file is made once per model from the transformers folder itself (``torch.onnx``,
the TorchScript exporter) and kept in a local cache folder named by the model's fingerprint
and the exporter's versions, so nothing is fetched and a changed model gets a new file::

    <cache>/onnx/<model fingerprint>-<export key>/model.onnx   the graph: ids, mask -> unit vectors
    <cache>/onnx/<...>/model.json                             sha256 of model.onnx, what made it

The graph ends in the encoder's mean pooling over the real tokens and L2 normalisation, so a
batch comes back as (batch, dim) float32 unit vectors. The cache folder is
``$PAGECAT_CACHE_DIR`` or ``$XDG_CACHE_HOME/pagecat`` (default ``~/.cache/pagecat``); a file
whose sha256 does not match its ``model.json`` is exported again, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings

import numpy as np

ONNX_OPSET = 17
EXPORT_FORMAT = 1  # bump when the exported graph changes (inputs, outputs, pooling)


def onnx_runtime_available() -> bool:
    """Whether onnxruntime (to run the graph) and onnx (torch's exporter writes with it) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> str:
    """The local folder for derived model files (``$PAGECAT_CACHE_DIR``, else the user's cache)."""
    if os.environ.get("PAGECAT_CACHE_DIR"):
        return os.environ["PAGECAT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pagecat")


def export_key() -> str:
    """What the exported graph depends on besides the weights: the exporter and model code."""
    import torch
    import transformers

    return hashlib.sha256(f"{EXPORT_FORMAT}:{ONNX_OPSET}:{torch.__version__}:{transformers.__version__}"
                          .encode()).hexdigest()[:8]


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _export(model_path: str, target: str) -> None:
    """Trace the transformers model + mean pooling + L2 normalisation into ``target`` (ONNX)."""
    import torch
    from transformers import AutoModel

    from .embed import mean_pool

    # Eager attention traces to plain MatMul/Softmax ops, which ONNX Runtime fuses into its own
    # attention kernel; SDPA would trace to an opaque pattern it does not.
    model = AutoModel.from_pretrained(model_path, local_files_only=True, attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return mean_pool(self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                             attention_mask)

    # The example batch has a padded row, so the trace keeps the attention mask's path (an
    # all-ones mask may be dropped by the model code as a shortcut).
    ids = torch.full((2, 8), 101, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python values held constant (shapes, flags)
        torch.onnx.export(Pooled(model), (ids, mask), target, input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "embedding": {0: "batch"}})


def exported_model(model_path: str, fingerprint: str, root: str | None = None) -> str:
    """The ONNX file of the model folder ``model_path`` (whose ``model_fingerprint`` is
    ``fingerprint``): from the cache when present and intact, else exported into it.

    Written under a temporary name and renamed, so workers exporting at once on one machine
    never read a half-written file.
    """
    folder = os.path.join(root or cache_dir(), "onnx", f"{fingerprint}-{export_key()}")
    target, meta_path = os.path.join(folder, "model.onnx"), os.path.join(folder, "model.json")
    if os.path.isfile(target) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("sha256") == _file_sha256(target):
            return target
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".model-{uuid.uuid4().hex}.onnx")
    try:
        _export(model_path, tmp)
        meta = {"sha256": _file_sha256(tmp), "model_fingerprint": fingerprint, "opset": ONNX_OPSET,
                "format": EXPORT_FORMAT}
        tmp_meta = f"{tmp}.json"
        with open(tmp_meta, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(tmp, target)
        os.replace(tmp_meta, meta_path)
    finally:
        for leftover in (tmp, f"{tmp}.json"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return target


class OnnxEncoderSession:
    """An ONNX Runtime CPU session over the exported graph: (ids, mask) int64 -> unit vectors."""

    def __init__(self, onnx_path: str, threads: int):
        import onnxruntime as ort

        ort.disable_telemetry_events()  # offline by design: nothing of a run is reported anywhere
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about unused initialisers and the like are noise here
        self.session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(out, dtype=np.float32)
