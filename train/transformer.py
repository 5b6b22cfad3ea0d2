"""A fine-tuned transformer classifier: MiniLM (or any local encoder) with a classification head.

Each field of a doc (one field: title + text; site docs: name, domain, title, text ...) is
encoded apart by the shared encoder and mean-pooled; the pooled vectors are joined and a
linear head gives the class logits, as in fine-tuning BERT on a business's pages, title,
domain and name. The whole network is trained (AdamW, a few epochs, early stopping on the
validation split), then calibrated with a temperature.

Saved: ``transformer.safetensors`` (encoder + head weights) and ``transformer.json`` (settings,
the base model's name and fingerprint). Loading rebuilds the network from the base model's
config (same local folder) and refuses weights made from another base model.
"""

from __future__ import annotations

import os
from typing import Any

from pagecat.errors import UsageError
from pagecat.features.embed import model_fingerprint, resolve_model_path

from .neural import TorchTextClassifier


class _Network:
    """Built lazily so importing this module does not import torch."""

    @staticmethod
    def make(path: str, n_classes: int, n_fields: int, pretrained: bool):
        import torch
        from transformers import AutoConfig, AutoModel

        class FieldsEncoderClassifier(torch.nn.Module):
            def __init__(self):
                super().__init__()
                if pretrained:
                    self.encoder = AutoModel.from_pretrained(path, local_files_only=True)
                else:  # weights come from our own safetensors file next
                    self.encoder = AutoModel.from_config(AutoConfig.from_pretrained(path, local_files_only=True))
                hidden = self.encoder.config.hidden_size
                self.dropout = torch.nn.Dropout(0.1)
                self.head = torch.nn.Linear(hidden * n_fields, n_classes)

            def forward(self, input_ids, attention_mask):
                # input_ids, attention_mask: (n_fields, batch, tokens)
                pooled = []
                for ids, mask in zip(input_ids, attention_mask):
                    hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                    m = mask.unsqueeze(-1).to(hidden.dtype)
                    pooled.append((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9))
                return self.head(self.dropout(torch.cat(pooled, dim=1)))

        return FieldsEncoderClassifier()


class TransformerClassifier(TorchTextClassifier):
    """Fine-tuned encoder + linear head over the joined per-field mean-pooled vectors."""

    kind = "transformer"

    def __init__(self, model_path: str | None = None, max_length: int = 64, epochs: int = 2,
                 batch_size: int = 16, learning_rate: float = 5e-5, seed: int = 0, threads: int = 0,
                 patience: int = 2, max_seconds: float = 0.0):
        super().__init__(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         threads=threads, patience=patience, max_seconds=max_seconds)
        self.model_path = model_path
        self.max_length = max_length
        self._tokenizer = None

    def module_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "max_length": self.max_length}

    def _path(self) -> str:
        return resolve_model_path(self.model_path)

    def build(self, n_classes: int, n_fields: int):
        pretrained = not hasattr(self, "_loading")
        return _Network.make(self._path(), n_classes, n_fields, pretrained)

    def tensors(self, docs: list[list[str]]) -> dict[str, Any]:
        import torch
        from transformers import AutoTokenizer

        if self._tokenizer is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._tokenizer = AutoTokenizer.from_pretrained(self._path(), local_files_only=True)
        encoded = [self._tokenizer([d[f] or "" for d in docs], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt")
                   for f in range(len(docs[0]))]
        # Fields are padded to the longest field of the batch, so they stack into one tensor.
        width = max(e["input_ids"].shape[1] for e in encoded)
        pad = self._tokenizer.pad_token_id or 0
        F = torch.nn.functional
        ids = torch.stack([F.pad(e["input_ids"], (0, width - e["input_ids"].shape[1]), value=pad) for e in encoded])
        mask = torch.stack([F.pad(e["attention_mask"], (0, width - e["attention_mask"].shape[1])) for e in encoded])
        return {"input_ids": ids, "attention_mask": mask}

    def extra_meta(self) -> dict[str, Any]:
        path = self._path()
        return {"base_model": os.path.basename(path.rstrip("/")), "base_model_sha": model_fingerprint(path)}

    def check_meta(self, meta: dict[str, Any]) -> None:
        self._loading = True  # build() makes the network from the config; the weights follow
        sha = model_fingerprint(self._path())
        if meta.get("base_model_sha") != sha:
            raise UsageError(f"transformer model: made from base model {meta.get('base_model')} "
                             f"({meta.get('base_model_sha')}), but {self._path()} is {sha}; point "
                             "train.transformer.model_path at the same folder or re-run `pagecat train --force`")
