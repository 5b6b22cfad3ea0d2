"""The classifiers, scikit-learn style, each saving itself in a safe format.

Every classifier takes TF-IDF rows ``X`` (n_docs, n_features) CSR and class indices ``y``
(n_docs,) int in ``0..n_classes-1``; ``predict_proba`` gives (n_docs, n_classes) float32.
``fit`` may use a validation split (``X_val``, ``y_val``) for early stopping or tuning.
``save(fs, folder)`` returns the file names it wrote (the model store hashes them);
``load(fs, folder)`` rebuilds the model from them without unpickling anything.

A new model kind (char-CNN, transformer, ...) is one more class here and one more entry in
``MODEL_KINDS``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import scipy.sparse as sp
import xgboost as xgb
from sklearn.feature_selection import chi2
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from pagecat.config import TrainSettings
from pagecat.features.io import load_arrays, read_bytes, save_arrays
from pagecat.runs import write_bytes_atomic


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearTextClassifier:
    """Multinomial logistic regression (saga, balanced class weights).

    With more than one ``C`` in ``c_grid`` and a validation split, ``C`` is the one with the
    best validation macro-F1; the final model is then refitted on train + validation.
    Saved as ``coef`` (n_classes, n_features) and ``intercept`` (n_classes,) in safetensors.
    """

    kind = "linear"

    def __init__(self, c_grid: tuple[float, ...] = (1.0, 10.0, 100.0), max_iter: int = 1000, seed: int = 0):
        self.c_grid = tuple(c_grid)
        self.max_iter = max_iter
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {"c_grid": list(self.c_grid), "max_iter": self.max_iter, "seed": self.seed}

    def _estimator(self, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, solver="saga", class_weight="balanced", max_iter=self.max_iter,
                                  random_state=self.seed)

    def fit(self, X: sp.csr_matrix, y: np.ndarray, X_val: sp.csr_matrix | None = None,
            y_val: np.ndarray | None = None) -> LinearTextClassifier:
        self.scores_: dict[float, float] = {}
        best_c = self.c_grid[0]
        if len(self.c_grid) > 1 and X_val is not None and X_val.shape[0] > 0:
            for c in self.c_grid:
                pred = self._estimator(c).fit(X, y).predict(X_val)
                self.scores_[c] = float(f1_score(y_val, pred, average="macro", zero_division=0))
            best_c = max(self.c_grid, key=lambda c: self.scores_[c])  # first of equals: the smallest C
        if X_val is not None and X_val.shape[0] > 0:
            X, y = sp.vstack([X, X_val], format="csr"), np.concatenate([y, y_val])
        est = self._estimator(best_c).fit(X, y)
        self.C_ = best_c
        self.classes_ = est.classes_.astype(np.int64)
        coef, intercept = est.coef_, est.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row (class 1 vs 0); softmax needs both
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        return self

    def decision_function(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        return softmax(self.decision_function(X)).astype(np.float32)

    def save(self, fs, folder: str) -> list[str]:
        save_arrays(fs, f"{folder}/linear.safetensors",
                    {"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_})
        write_bytes_atomic(fs, f"{folder}/linear.json",
                           json.dumps({"params": self.get_params(), "C": self.C_}, indent=2).encode())
        return ["linear.safetensors", "linear.json"]

    @classmethod
    def load(cls, fs, folder: str) -> LinearTextClassifier:
        meta = json.loads(read_bytes(fs, f"{folder}/linear.json"))
        model = cls(**{**meta["params"], "c_grid": tuple(meta["params"]["c_grid"])})
        arrays = load_arrays(read_bytes(fs, f"{folder}/linear.safetensors"))
        model.coef_, model.intercept_, model.classes_ = arrays["coef"], arrays["intercept"], arrays["classes"]
        model.C_ = meta["C"]
        return model


def select_columns(X: sp.csr_matrix, y: np.ndarray, min_df: int, max_features: int) -> np.ndarray:
    """Columns worth a tree split, sorted (k,) int32: in at least ``min_df`` training docs,
    then the ``max_features`` best by chi2 against the classes.

    A hashed TF-IDF matrix has up to 2**18 mostly empty columns; tree building costs grow with
    the column count, and a column seen in one doc can never pass ``min_child_weight``.
    """
    df = np.bincount(X.indices, minlength=X.shape[1])
    cols = np.flatnonzero(df >= min_df)
    if len(cols) == 0:  # a handful of docs: keep whatever occurs, at least one column
        cols = np.flatnonzero(df > 0) if df.any() else np.array([0])
    if len(cols) > max_features:
        scores = np.nan_to_num(chi2(X[:, cols], y)[0])
        cols = np.sort(cols[np.argsort(-scores, kind="stable")[:max_features]])
    return cols.astype(np.int32)


class XGBoostTextClassifier:
    """Gradient-boosted trees (``xgboost.XGBClassifier``, hist) on selected TF-IDF columns.

    Early stopping watches the validation split; the saved booster keeps only the trees up
    to the best round, so a loaded model predicts exactly like the fitted one.
    Saved as ``xgboost.ubj`` (XGBoost's own format) and ``columns`` in safetensors.
    """

    kind = "xgboost"

    def __init__(self, n_estimators: int = 300, max_depth: int = 6, learning_rate: float = 0.1,
                 early_stopping_rounds: int = 20, max_features: int = 20000, min_df: int = 2,
                 n_jobs: int = 1, seed: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.early_stopping_rounds = early_stopping_rounds
        self.max_features = max_features
        self.min_df = min_df
        self.n_jobs = n_jobs
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate",
                                               "early_stopping_rounds", "max_features", "min_df",
                                               "n_jobs", "seed")}

    def fit(self, X: sp.csr_matrix, y: np.ndarray, X_val: sp.csr_matrix | None = None,
            y_val: np.ndarray | None = None) -> XGBoostTextClassifier:
        self.columns_ = select_columns(X, y, self.min_df, self.max_features)
        has_val = X_val is not None and X_val.shape[0] > 0
        clf = xgb.XGBClassifier(tree_method="hist", n_estimators=self.n_estimators, max_depth=self.max_depth,
                                learning_rate=self.learning_rate, n_jobs=self.n_jobs, random_state=self.seed,
                                early_stopping_rounds=self.early_stopping_rounds if has_val else None)
        eval_set = [(X_val[:, self.columns_], y_val)] if has_val else None
        clf.fit(X[:, self.columns_], y, eval_set=eval_set, verbose=False)
        booster = clf.get_booster()
        self.best_iteration_ = int(clf.best_iteration) if has_val else self.n_estimators - 1
        self.booster_ = booster[: self.best_iteration_ + 1]
        self.classes_ = clf.classes_.astype(np.int64)
        return self

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        p = self.booster_.inplace_predict(X[:, self.columns_].tocsr(), validate_features=False)
        p = np.asarray(p, dtype=np.float32)
        return np.column_stack([1 - p, p]) if p.ndim == 1 else p  # binary objective gives P(class 1)

    def save(self, fs, folder: str) -> list[str]:
        write_bytes_atomic(fs, f"{folder}/xgboost.ubj", bytes(self.booster_.save_raw(raw_format="ubj")))
        save_arrays(fs, f"{folder}/xgboost_columns.safetensors",
                    {"columns": self.columns_, "classes": self.classes_})
        write_bytes_atomic(fs, f"{folder}/xgboost.json", json.dumps(
            {"params": self.get_params(), "best_iteration": self.best_iteration_}, indent=2).encode())
        return ["xgboost.ubj", "xgboost_columns.safetensors", "xgboost.json"]

    @classmethod
    def load(cls, fs, folder: str) -> XGBoostTextClassifier:
        meta = json.loads(read_bytes(fs, f"{folder}/xgboost.json"))
        model = cls(**meta["params"])
        model.booster_ = xgb.Booster()
        model.booster_.load_model(bytearray(read_bytes(fs, f"{folder}/xgboost.ubj")))
        model.booster_.set_param({"nthread": model.n_jobs})
        arrays = load_arrays(read_bytes(fs, f"{folder}/xgboost_columns.safetensors"))
        model.columns_, model.classes_ = arrays["columns"], arrays["classes"]
        model.best_iteration_ = meta["best_iteration"]
        return model


MODEL_KINDS = {"linear": LinearTextClassifier, "xgboost": XGBoostTextClassifier}


def build_model(name: str, settings: TrainSettings):
    """An unfitted classifier for the model name in ``train.models``, from its settings."""
    if name == "linear":
        s = settings.linear
        return LinearTextClassifier(c_grid=tuple(s.c_grid), max_iter=s.max_iter, seed=settings.seed)
    if name == "xgboost":
        s = settings.xgboost
        return XGBoostTextClassifier(n_estimators=s.n_estimators, max_depth=s.max_depth,
                                     learning_rate=s.learning_rate, early_stopping_rounds=s.early_stopping_rounds,
                                     max_features=s.max_features, seed=settings.seed)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_KINDS)}")
