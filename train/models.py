"""The feature-based classifiers (linear, XGBoost), scikit-learn style, each saving itself in a
safe format.

Every classifier takes ``X`` (TF-IDF rows, (n_docs, width) CSR, or embeddings, (n_docs, dim)
float32; its ``input`` says which) and class indices ``y`` (n_docs,) int in ``0..n_classes-1``;
``predict_proba`` gives (n_docs, n_classes) float32. ``fit`` may use a validation split
(``X_val``, ``y_val``) for early stopping or tuning, and per-doc ``sample_weight``.
``save(fs, folder)`` returns the file names it wrote (the model store hashes them);
``load(fs, folder)`` rebuilds the model from them without unpickling anything.
The models that read text themselves (transformer, char-CNN) are in ``neural.py``; every
kind is registered in ``registry.py``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import scipy.sparse as sp
import xgboost as xgb
from scipy.optimize import minimize_scalar
from sklearn.feature_selection import chi2
from sklearn.linear_model import LogisticRegression

from pagecat.features.io import load_arrays, read_bytes, save_arrays
from pagecat.runs import write_bytes_atomic


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the log-loss of softmax(logits / T) on held-out docs (temperature
    scaling, Guo et al. 2017): one number, so accuracy is unchanged and confidence honest."""
    if len(y) == 0:
        return 1.0
    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    best = minimize_scalar(nll, bounds=(np.log(0.02), np.log(50.0)), method="bounded")
    return float(np.exp(best.x))


class LinearTextClassifier:
    """Multinomial logistic regression, calibrated on the validation split.

    With a validation split, each ``C`` of ``c_grid`` is fitted on the fit split and scored by
    validation log-loss after temperature scaling; the best ``C`` is refitted on fit +
    validation and keeps its temperature. No class re-weighting unless ``sample_weight`` asks:
    balanced weights skew the probabilities. ``X`` is TF-IDF CSR or dense embeddings.
    Saved as ``coef`` (n_classes, n_features), ``intercept`` (n_classes,) in safetensors.
    """

    kind = "linear"

    def __init__(self, c_grid: tuple[float, ...] = (1.0, 10.0, 100.0), max_iter: int = 1000, seed: int = 0,
                 input: str = "tfidf"):
        self.c_grid = tuple(c_grid)
        self.max_iter = max_iter
        self.seed = seed
        self.input = input

    def get_params(self) -> dict[str, Any]:
        return {"c_grid": list(self.c_grid), "max_iter": self.max_iter, "seed": self.seed, "input": self.input}

    def _estimator(self, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, solver="saga", tol=1e-3, max_iter=self.max_iter, random_state=self.seed)

    @staticmethod
    def _weights(est: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
        coef, intercept = est.coef_, est.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row (class 1 vs 0); softmax needs both
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        return coef.astype(np.float32), intercept.astype(np.float32)

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None
            ) -> LinearTextClassifier:
        self.scores_: dict[float, float] = {}
        has_val = X_val is not None and X_val.shape[0] > 0
        best_c, temperature = self.c_grid[0], 1.0
        if has_val:
            temps = {}
            for c in self.c_grid:
                est = self._estimator(c).fit(X, y, sample_weight=sample_weight)
                logits = est.decision_function(X_val)
                logits = np.column_stack([-logits / 2, logits / 2]) if logits.ndim == 1 else logits
                temps[c] = fit_temperature(logits, y_val)
                p = softmax(logits / temps[c])
                self.scores_[c] = float(-np.mean(np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-12, None))))
            best_c = min(self.c_grid, key=lambda c: self.scores_[c])  # first of equals: the smallest C
            temperature = temps[best_c]
            X = sp.vstack([X, X_val], format="csr") if sp.issparse(X) else np.vstack([X, X_val])
            y = np.concatenate([y, y_val])
            if sample_weight is not None:
                sample_weight = np.concatenate([sample_weight, sample_weight_val if sample_weight_val is not None
                                                else np.ones(len(y_val))])
        est = self._estimator(best_c).fit(X, y, sample_weight=sample_weight)
        self.C_, self.temperature_ = best_c, temperature
        self.classes_ = est.classes_.astype(np.int64)
        self.coef_, self.intercept_ = self._weights(est)
        return self

    def decision_function(self, X) -> np.ndarray:
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self.decision_function(X) / self.temperature_).astype(np.float32)

    def save(self, fs, folder: str) -> list[str]:
        save_arrays(fs, f"{folder}/linear.safetensors",
                    {"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_})
        write_bytes_atomic(fs, f"{folder}/linear.json", json.dumps(
            {"params": self.get_params(), "C": self.C_, "temperature": self.temperature_}, indent=2).encode())
        return ["linear.safetensors", "linear.json"]

    @classmethod
    def load(cls, fs, folder: str) -> LinearTextClassifier:
        meta = json.loads(read_bytes(fs, f"{folder}/linear.json"))
        model = cls(**{**meta["params"], "c_grid": tuple(meta["params"]["c_grid"])})
        arrays = load_arrays(read_bytes(fs, f"{folder}/linear.safetensors"))
        model.coef_, model.intercept_, model.classes_ = arrays["coef"], arrays["intercept"], arrays["classes"]
        model.C_, model.temperature_ = meta["C"], meta["temperature"]
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
    """Gradient-boosted trees (``xgboost.XGBClassifier``, hist) on selected TF-IDF columns or on
    dense embeddings (every column kept).

    Early stopping watches the validation split; the saved booster keeps only the trees up
    to the best round, so a loaded model predicts exactly like the fitted one.
    Saved as ``xgboost.ubj`` (XGBoost's own format) and ``columns`` in safetensors.
    """

    kind = "xgboost"

    def __init__(self, n_estimators: int = 300, max_depth: int = 6, learning_rate: float = 0.1,
                 early_stopping_rounds: int = 20, max_features: int = 20000, min_df: int = 2,
                 n_jobs: int = 1, seed: int = 0, input: str = "tfidf"):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.early_stopping_rounds = early_stopping_rounds
        self.max_features = max_features
        self.min_df = min_df
        self.n_jobs = n_jobs
        self.seed = seed
        self.input = input

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate",
                                               "early_stopping_rounds", "max_features", "min_df",
                                               "n_jobs", "seed", "input")}

    def _columns(self, X):
        return X[:, self.columns_] if sp.issparse(X) else np.asarray(X, np.float32)

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None
            ) -> XGBoostTextClassifier:
        if sp.issparse(X):
            self.columns_ = select_columns(X, y, self.min_df, self.max_features)
        else:  # dense embeddings: every dimension carries signal, none to select
            self.columns_ = np.arange(X.shape[1], dtype=np.int32)
        has_val = X_val is not None and X_val.shape[0] > 0
        clf = xgb.XGBClassifier(tree_method="hist", n_estimators=self.n_estimators, max_depth=self.max_depth,
                                learning_rate=self.learning_rate, n_jobs=self.n_jobs, random_state=self.seed,
                                early_stopping_rounds=self.early_stopping_rounds if has_val else None)
        eval_set = [(self._columns(X_val), y_val)] if has_val else None
        clf.fit(self._columns(X), y, eval_set=eval_set, verbose=False, sample_weight=sample_weight,
                sample_weight_eval_set=[sample_weight_val] if has_val and sample_weight_val is not None else None)
        booster = clf.get_booster()
        self.best_iteration_ = int(clf.best_iteration) if has_val else self.n_estimators - 1
        self.booster_ = booster[: self.best_iteration_ + 1]
        self.classes_ = clf.classes_.astype(np.int64)
        return self

    def predict_proba(self, X) -> np.ndarray:
        cols = self._columns(X)
        p = self.booster_.inplace_predict(cols.tocsr() if sp.issparse(cols) else cols, validate_features=False)
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
