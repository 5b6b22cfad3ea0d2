"""Held-out metrics of a classifier: plain numbers and lists, ready for JSON.

``y_true`` is (n_docs,) int class indices, ``proba`` is (n_docs, n_classes) probabilities
whose column ``k`` is ``classes[k]``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int = 3) -> float:
    """Share of docs whose true class is among the ``k`` most probable (all classes if fewer)."""
    if len(y_true) == 0:
        return 0.0
    k = min(k, proba.shape[1])
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == np.asarray(y_true)[:, None]).any(axis=1)))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top prediction: sum over equal-width confidence bins of
    (share of docs in the bin) * |accuracy in the bin - mean confidence in the bin|."""
    if len(y_true) == 0:
        return 0.0
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)  # confidence 1.0 -> the last bin
    ece = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """accuracy, macro_f1, top3_accuracy, ece, per_class {label: precision/recall/f1/support},
    confusion {labels, matrix: rows true class, columns predicted, in ``classes`` order}."""
    y_true = np.asarray(y_true)
    labels = list(range(len(classes)))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "top3_accuracy": top_k_accuracy(y_true, proba, 3),
        "ece": expected_calibration_error(y_true, proba),
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]),
                          "f1": float(f1[i]), "support": int(support[i])} for i, c in enumerate(classes)},
        "confusion": {"labels": list(classes),
                      "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
        "classes": list(classes),
    }
