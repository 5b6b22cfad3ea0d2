"""Class balance as a per-doc ``sample_weight`` (DOCS column; 1.0 = as is), from the class counts.

Strategies (``label.balance``):

- ``none``: every tagged doc weighs 1.
- ``cap``: at most ``balance_cap`` docs per class weigh 1, the rest 0 (which ones is fixed by a
  hash of the doc id, so it does not change between runs).
- ``oversample``: a class of n docs weighs max_n / n per doc: as if each of its docs were
  repeated until it matched the largest class.
- ``weights``: "balanced" class weights, n_total / (n_classes * n).
- ``ratio``: a class smaller than max_n / ``balance_max_ratio`` is weighted up to that size;
  the largest class then weighs at most ``balance_max_ratio`` times the smallest.

Untagged docs weigh 1 (they are not trained on). ``effective_counts`` reports the weighted class
sizes the trainer sees.
"""

from __future__ import annotations

import hashlib

STRATEGIES = ("none", "cap", "oversample", "weights", "ratio")


class ClassBalance:
    """``fit(class_counts)`` then ``weight(label, doc_id)`` per doc."""

    def __init__(self, strategy: str = "none", cap: int = 0, max_ratio: float = 3.0):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown balance strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.cap = cap
        self.max_ratio = max_ratio

    def fit(self, class_counts: dict[str, int]) -> ClassBalance:
        counts = {k: v for k, v in class_counts.items() if v > 0}
        self.class_weights_: dict[str, float] = {k: 1.0 for k in counts}
        if counts:
            largest, total = max(counts.values()), sum(counts.values())
            for k, n in counts.items():
                if self.strategy == "oversample":
                    self.class_weights_[k] = largest / n
                elif self.strategy == "weights":
                    self.class_weights_[k] = total / (len(counts) * n)
                elif self.strategy == "ratio":
                    floor = largest / self.max_ratio
                    self.class_weights_[k] = max(1.0, floor / n)
        self.counts_ = counts
        return self

    def weight(self, label: str | None, doc_id: str) -> float:
        if label is None:
            return 1.0
        if self.strategy == "cap":
            n = self.counts_.get(label, 0)
            if self.cap <= 0 or n <= self.cap:
                return 1.0
            # keep a fixed, hash-chosen share cap/n of the class: ~cap docs, the same ones every run
            h = int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:8], "big") / 2**64
            return 1.0 if h < self.cap / n else 0.0
        return float(self.class_weights_.get(label, 1.0))

    def effective_counts(self) -> dict[str, float]:
        if self.strategy == "cap":
            return {k: float(min(n, self.cap) if self.cap > 0 else n) for k, n in self.counts_.items()}
        return {k: round(n * self.class_weights_[k], 3) for k, n in self.counts_.items()}
