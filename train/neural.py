"""What the torch classifiers (fine-tuned transformer, char-CNN) share: the training loop with
early stopping on the validation split, temperature scaling, and safe saving.

A torch classifier is a ``TorchTextClassifier`` subclass that builds its ``nn.Module`` and
turns a batch of docs (each a list of field strings) into that module's input tensors. Its
weights are saved as safetensors (``<kind>.safetensors``) and everything else as JSON
(``<kind>.json``), never pickled.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from pagecat.features.io import read_bytes
from pagecat.runs import write_bytes_atomic

from .models import fit_temperature, softmax


class TorchTextClassifier:
    """Base: ``fit(X, y, X_val, y_val, sample_weight)`` where ``X`` is a list of docs, each a list
    of field strings; ``predict_proba(X)`` (n_docs, n_classes) float32."""

    kind = ""
    input = "text"

    def __init__(self, epochs: int = 2, batch_size: int = 16, learning_rate: float = 5e-5, seed: int = 0,
                 threads: int = 0, patience: int = 2, max_seconds: float = 0.0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.threads = threads
        self.patience = patience
        self.max_seconds = max_seconds  # 0: no limit; else stop after the epoch that passes it

    def get_params(self) -> dict[str, Any]:
        keys = ("epochs", "batch_size", "learning_rate", "seed", "threads", "patience", "max_seconds")
        return {k: getattr(self, k) for k in keys} | self.module_params()

    # -- subclasses -------------------------------------------------------------------------
    def module_params(self) -> dict[str, Any]:
        return {}

    def build(self, n_classes: int, n_fields: int):
        """Return a fresh ``nn.Module`` whose forward takes ``self.tensors(batch)`` as kwargs."""
        raise NotImplementedError

    def tensors(self, docs: list[list[str]]) -> dict[str, Any]:
        raise NotImplementedError

    def extra_meta(self) -> dict[str, Any]:
        return {}

    def check_meta(self, meta: dict[str, Any]) -> None:
        """Refuse weights that do not fit this environment (e.g. another base model)."""

    # -- shared -----------------------------------------------------------------------------
    def _threads(self) -> None:
        import torch

        if self.threads > 0:
            torch.set_num_threads(self.threads)

    def _logits(self, X: list[list[str]]) -> np.ndarray:
        import torch

        self.module_.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(X), self.batch_size * 4):
                out.append(self.module_(**self.tensors(X[start:start + self.batch_size * 4])).float().numpy())
        return np.vstack(out) if out else np.zeros((0, self.n_classes_), np.float32)

    def fit(self, X: list[list[str]], y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None):
        import torch

        self._threads()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.n_classes_ = int(y.max()) + 1
        self.n_fields_ = len(X[0]) if X else 1
        self.module_ = self.build(self.n_classes_, self.n_fields_)
        opt = torch.optim.AdamW(self.module_.parameters(), lr=self.learning_rate)
        weights = torch.as_tensor(sample_weight if sample_weight is not None else np.ones(len(y)), dtype=torch.float32)
        has_val = X_val is not None and len(X_val) > 0
        best_loss, best_state, stale = np.inf, None, 0
        self.history_: list[dict[str, float]] = []
        t0 = time.perf_counter()
        for epoch in range(self.epochs):
            self.module_.train()
            order = rng.permutation(len(X))
            total = 0.0
            for start in range(0, len(X), self.batch_size):
                idx = order[start:start + self.batch_size]
                logits = self.module_(**self.tensors([X[i] for i in idx]))
                target = torch.as_tensor(y[idx], dtype=torch.long)
                loss = (torch.nn.functional.cross_entropy(logits, target, reduction="none") * weights[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            row = {"epoch": epoch + 1, "train_loss": total / max(len(X), 1)}
            if has_val:
                p = softmax(self._logits(X_val))
                row["val_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-12, None))))
                if row["val_loss"] < best_loss - 1e-4:
                    best_loss, stale = row["val_loss"], 0
                    best_state = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
                else:
                    stale += 1
            self.history_.append(row)
            out_of_time = self.max_seconds and time.perf_counter() - t0 > self.max_seconds
            if (has_val and stale >= self.patience) or out_of_time:
                break
        if best_state is not None:  # early stopping: the epoch with the best validation loss
            self.module_.load_state_dict(best_state)
        self.temperature_ = fit_temperature(self._logits(X_val), y_val) if has_val else 1.0
        self.classes_ = np.arange(self.n_classes_, dtype=np.int64)
        return self

    def predict_proba(self, X: list[list[str]]) -> np.ndarray:
        self._threads()
        return softmax(self._logits(X) / self.temperature_).astype(np.float32)

    def save(self, fs, folder: str) -> list[str]:
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in self.module_.state_dict().items()}
        write_bytes_atomic(fs, f"{folder}/{self.kind}.safetensors", save(state))
        meta = {"params": self.get_params(), "n_classes": self.n_classes_, "n_fields": self.n_fields_,
                "temperature": self.temperature_, "history": self.history_, **self.extra_meta()}
        write_bytes_atomic(fs, f"{folder}/{self.kind}.json", json.dumps(meta, indent=2).encode())
        return [f"{self.kind}.safetensors", f"{self.kind}.json"]

    @classmethod
    def load(cls, fs, folder: str):
        from safetensors.torch import load

        meta = json.loads(read_bytes(fs, f"{folder}/{cls.kind}.json"))
        model = cls(**meta["params"])
        model.check_meta(meta)
        model.n_classes_, model.n_fields_ = meta["n_classes"], meta["n_fields"]
        model.temperature_, model.history_ = meta["temperature"], meta["history"]
        model.module_ = model.build(model.n_classes_, model.n_fields_)
        model.module_.load_state_dict(load(read_bytes(fs, f"{folder}/{cls.kind}.safetensors")), strict=True)
        model.module_.eval()
        model.classes_ = np.arange(model.n_classes_, dtype=np.int64)
        return model
