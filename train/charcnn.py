"""A character-level CNN classifier (Zhang, Zhao and LeCun 2015, "Character-level Convolutional
Networks for Text Classification"), smaller by default so it trains on CPU.

The paper's design: text lower-cased and quantised over a 70-character alphabet (others are
all zero), read up to 1014 characters; six temporal convolutions (kernels 7, 7, 3, 3, 3, 3,
max-pooling by 3 after the 1st, 2nd and 6th), two fully connected layers with dropout 0.5,
then the classes. Here: ``max_chars`` 512 and ``channels`` 128 by default (the paper's small
model has 256 channels and 1024 hidden units); a learned embedding of the alphabet in place of
one-hot vectors (the same thing, one linear map earlier). Fields are joined with " | ".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .neural import TorchTextClassifier

# The paper's alphabet: 26 letters, 10 digits, 33 other characters (and the new line).
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{}\n"
_INDEX = {c: i + 1 for i, c in enumerate(dict.fromkeys(ALPHABET))}  # 0: padding or unknown


def quantize(texts: list[str], max_chars: int) -> np.ndarray:
    """(n_texts, max_chars) int64 alphabet indices, 0 for padding and characters outside it."""
    out = np.zeros((len(texts), max_chars), dtype=np.int64)
    for row, text in enumerate(texts):
        codes = [_INDEX.get(c, 0) for c in text.lower()[:max_chars]]
        out[row, :len(codes)] = codes
    return out


class CharCnnClassifier(TorchTextClassifier):
    """Zhang et al. (2015) char-CNN: 6 convolutions, 3 max-pools, 2 dropout-FC layers, classes."""

    kind = "charcnn"

    def __init__(self, max_chars: int = 512, channels: int = 128, hidden: int = 256, epochs: int = 10,
                 batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0, threads: int = 0,
                 patience: int = 2, max_seconds: float = 0.0):
        super().__init__(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         threads=threads, patience=patience, max_seconds=max_seconds)
        self.max_chars = max_chars
        self.channels = channels
        self.hidden = hidden

    def module_params(self) -> dict[str, Any]:
        return {"max_chars": self.max_chars, "channels": self.channels, "hidden": self.hidden}

    def out_length(self) -> int:
        n = self.max_chars
        for kernel, pool in ((7, 3), (7, 3), (3, 1), (3, 1), (3, 1), (3, 3)):
            n = (n - kernel + 1) // pool
        if n < 1:
            raise ValueError(f"max_chars={self.max_chars} is too short for the char-CNN (at least 130)")
        return n

    def build(self, n_classes: int, n_fields: int):
        import torch
        from torch import nn

        c, n_symbols = self.channels, len(_INDEX) + 1
        layers: list[nn.Module] = []
        in_ch = c
        for kernel, pool in ((7, 3), (7, 3), (3, 1), (3, 1), (3, 1), (3, 3)):
            layers += [nn.Conv1d(in_ch, c, kernel), nn.ReLU()]
            if pool > 1:
                layers.append(nn.MaxPool1d(pool))
            in_ch = c
        length = self.out_length()

        class CharCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(n_symbols, c, padding_idx=0)
                self.convs = nn.Sequential(*layers)
                self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * length, self_hidden), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(self_hidden, self_hidden), nn.ReLU(), nn.Dropout(0.5),
                                        nn.Linear(self_hidden, n_classes))

            def forward(self, chars: torch.Tensor) -> torch.Tensor:  # (batch, max_chars) int64
                return self.fc(self.convs(self.embed(chars).transpose(1, 2)))

        self_hidden = self.hidden
        return CharCNN()

    def tensors(self, docs: list[list[str]]) -> dict[str, Any]:
        import torch

        return {"chars": torch.from_numpy(quantize([" | ".join(d) for d in docs], self.max_chars))}
