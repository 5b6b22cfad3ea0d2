"""An ensemble of the linear model and XGBoost on the same TF-IDF rows: their (calibrated)
probabilities averaged. The two make different mistakes (a linear score over every word
against a few hundred tree splits on selected words), so the average beats either one, at the
cost of training both.

Saved as each member saves itself (``linear.*``, ``xgboost.*``) plus ``ensemble.json``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pagecat.features.io import read_bytes
from pagecat.runs import write_bytes_atomic

from .models import LinearTextClassifier, XGBoostTextClassifier


class EnsembleClassifier:
    """Mean of ``LinearTextClassifier`` and ``XGBoostTextClassifier`` probabilities."""

    kind = "ensemble"

    def __init__(self, linear: dict[str, Any] | None = None, xgboost: dict[str, Any] | None = None,
                 input: str = "tfidf"):
        self.linear = dict(linear or {})
        self.xgboost = dict(xgboost or {})
        self.input = input

    def get_params(self) -> dict[str, Any]:
        return {"linear": self.linear, "xgboost": self.xgboost, "input": self.input}

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None
            ) -> EnsembleClassifier:
        linear = {**self.linear, "c_grid": tuple(self.linear.get("c_grid", (1.0, 10.0, 100.0)))}
        self.members_ = [LinearTextClassifier(**{**linear, "input": self.input}),
                         XGBoostTextClassifier(**{**self.xgboost, "input": self.input})]
        for m in self.members_:
            m.fit(X, y, X_val, y_val, sample_weight=sample_weight, sample_weight_val=sample_weight_val)
        self.classes_ = self.members_[0].classes_
        if not all(np.array_equal(m.classes_, self.classes_) for m in self.members_):
            raise ValueError("ensemble members learned different classes")
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.mean([m.predict_proba(X) for m in self.members_], axis=0).astype(np.float32)

    def save(self, fs, folder: str) -> list[str]:
        files = [f for m in self.members_ for f in m.save(fs, folder)]
        write_bytes_atomic(fs, f"{folder}/ensemble.json", json.dumps({"params": self.get_params()}, indent=2).encode())
        return [*files, "ensemble.json"]

    @classmethod
    def load(cls, fs, folder: str) -> EnsembleClassifier:
        model = cls(**json.loads(read_bytes(fs, f"{folder}/ensemble.json"))["params"])
        model.members_ = [LinearTextClassifier.load(fs, folder), XGBoostTextClassifier.load(fs, folder)]
        model.classes_ = model.members_[0].classes_
        return model
