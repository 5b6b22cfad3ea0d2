"""The feature-based classifiers (linear SVM, XGBoost, kNN on embeddings), scikit-learn style,
each saving itself in a safe format.

Every classifier takes ``X`` (TF-IDF rows, (n_docs, width) CSR, or embeddings, (n_docs, dim)
float32; its ``input`` says which) and class indices ``y`` (n_docs,) int in ``0..n_classes-1``;
``predict_proba`` gives (n_docs, n_classes) float32. ``fit`` may use a validation split
(``X_val``, ``y_val``) for early stopping or tuning, and per-doc ``sample_weight``.
``save(fs, folder)`` returns the file names it wrote (the model store hashes them);
``load(fs, folder)`` rebuilds the model from them without unpickling anything.
The models that read text themselves (transformer, char-CNN) are in ``neural.py``; the
train stage's kinds are registered in ``registry.py`` (kNN is, so far, an ensemble member).
"""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
import xgboost as xgb
from scipy.optimize import minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import chi2
from sklearn.svm import LinearSVC

from pagecat.features.io import load_arrays, read_bytes, save_arrays
from pagecat.runs import write_bytes_atomic


def save_model_files(fs, folder: str, stem: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> list[str]:
    """``<stem>.safetensors`` (the fitted arrays) and ``<stem>.json`` (params and scalars) in
    ``folder``; returns the two file names."""
    save_arrays(fs, f"{folder}/{stem}.safetensors", arrays)
    write_bytes_atomic(fs, f"{folder}/{stem}.json", json.dumps(meta, indent=2).encode())
    return [f"{stem}.safetensors", f"{stem}.json"]


def load_model_files(fs, folder: str, stem: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) written by ``save_model_files``."""
    meta = json.loads(read_bytes(fs, f"{folder}/{stem}.json"))
    return meta, load_arrays(read_bytes(fs, f"{folder}/{stem}.safetensors"))


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
    """A linear SVM (liblinear, one-vs-rest, squared hinge), its margins calibrated on the
    validation split.

    With a validation split, each ``C`` of ``c_grid`` is fitted on the fit split and scored by
    validation log-loss after temperature scaling of the margins; the best ``C`` is refitted on
    fit + validation and keeps its temperature. ``predict_proba`` is softmax(margins / T).
    liblinear's dual coordinate descent takes seconds where a multinomial saga solver takes
    minutes on wide TF-IDF rows, and a linear SVM is the stronger text classifier of the two;
    the classes are fitted one against the rest, ``n_jobs`` at a time (liblinear frees the GIL;
    its threads share one random generator for the order of coordinate descent, so with
    ``n_jobs`` > 1 the weights match a serial fit to the solver's tolerance, not bit for bit).
    No class re-weighting unless ``sample_weight`` asks: balanced weights skew the
    probabilities. ``X`` is TF-IDF CSR or dense embeddings.
    Saved as ``coef`` (n_classes, n_features), ``intercept`` (n_classes,) in safetensors.
    """

    kind = "linear"

    def __init__(self, c_grid: tuple[float, ...] = (0.3, 1.0, 3.0), max_iter: int = 1000, seed: int = 0,
                 input: str = "tfidf", n_jobs: int = 1, tol: float = 1e-4):
        self.c_grid = tuple(c_grid)
        self.max_iter = max_iter
        self.seed = seed
        self.input = input
        self.n_jobs = n_jobs
        self.tol = tol

    def get_params(self) -> dict[str, Any]:
        return {"c_grid": list(self.c_grid), "max_iter": self.max_iter, "seed": self.seed, "input": self.input,
                "n_jobs": self.n_jobs, "tol": self.tol}

    def _fit_ovr(self, X, y: np.ndarray, classes: np.ndarray, c: float,
                 sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(coef (n_classes, n_features), intercept (n_classes,)) float32: one binary SVM a class.
        A class with no doc on this side of a split never wins (weights 0, intercept -1)."""
        # dense embeddings have more docs than dimensions: the primal problem is the smaller one
        dual = sp.issparse(X) or X.shape[0] < X.shape[1]

        def one(k: int) -> tuple[np.ndarray, float]:
            target = (y == k).astype(np.int64)
            if not target.any() or target.all():
                return np.zeros(X.shape[1], np.float32), -1.0 if not target.any() else 1.0
            with warnings.catch_warnings():  # max_iter reached: the weights so far are still usable
                warnings.simplefilter("ignore", ConvergenceWarning)
                est = LinearSVC(C=c, tol=self.tol, max_iter=self.max_iter, dual=dual, random_state=self.seed)
                est.fit(X, target, sample_weight=sample_weight)
            return est.coef_[0].astype(np.float32), float(est.intercept_[0])

        if self.n_jobs > 1 and len(classes) > 1:
            with ThreadPoolExecutor(self.n_jobs) as pool:
                fitted = list(pool.map(one, classes))
        else:
            fitted = [one(k) for k in classes]
        return np.vstack([w for w, _ in fitted]), np.array([b for _, b in fitted], np.float32)

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None
            ) -> LinearTextClassifier:
        self.scores_: dict[float, float] = {}
        has_val = X_val is not None and X_val.shape[0] > 0
        classes = np.unique(np.concatenate([y, y_val]) if has_val else y).astype(np.int64)
        best_c, temperature = self.c_grid[0], 1.0
        self.validation_proba_ = None  # the chosen C's fit-split model on the validation split (for ensembles)
        if has_val:
            temps, logits = {}, {}
            for c in self.c_grid:
                coef, intercept = self._fit_ovr(X, y, classes, c, sample_weight)
                z = np.asarray(X_val @ coef.T) + intercept
                rows = np.searchsorted(classes, y_val)
                temps[c] = fit_temperature(z, rows)
                p = softmax(z / temps[c])
                self.scores_[c] = float(-np.mean(np.log(np.clip(p[np.arange(len(y_val)), rows], 1e-12, None))))
                logits[c] = z
            best_c = min(self.c_grid, key=lambda c: self.scores_[c])  # first of equals: the first in c_grid
            temperature = temps[best_c]
            self.validation_proba_ = softmax(logits[best_c] / temperature).astype(np.float32)
            X = sp.vstack([X, X_val], format="csr") if sp.issparse(X) else np.vstack([X, X_val])
            y = np.concatenate([y, y_val])
            if sample_weight is not None:
                sample_weight = np.concatenate([sample_weight, sample_weight_val if sample_weight_val is not None
                                                else np.ones(len(y_val))])
        self.coef_, self.intercept_ = self._fit_ovr(X, y, classes, best_c, sample_weight)
        self.C_, self.temperature_ = best_c, temperature
        self.classes_ = classes
        return self

    def decision_function(self, X) -> np.ndarray:
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self.decision_function(X) / self.temperature_).astype(np.float32)

    def save(self, fs, folder: str) -> list[str]:
        return save_model_files(fs, folder, "linear",
                                {"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_},
                                {"params": self.get_params(), "C": self.C_, "temperature": self.temperature_})

    @classmethod
    def load(cls, fs, folder: str) -> LinearTextClassifier:
        meta, arrays = load_model_files(fs, folder, "linear")
        model = cls(**{**meta["params"], "c_grid": tuple(meta["params"]["c_grid"])})
        model.coef_, model.intercept_, model.classes_ = arrays["coef"], arrays["intercept"], arrays["classes"]
        model.C_, model.temperature_ = meta["C"], meta["temperature"]
        return model


class KnnClassifier:
    """k nearest neighbours by cosine similarity on embeddings, votes weighted by
    exp(similarity / tau): a doc that restates a training doc (a shared passage, a reworded
    question) gets that doc's class, which a linear model over the whole space may miss.

    With a validation split, ``k`` and ``tau`` (``k_grid`` x ``tau_grid``) are chosen by the
    validation log-loss of the fit split's neighbours; then validation docs join the index.
    A ``sample_weight`` (class weights, docs' own weights) multiplies each neighbour's vote, as it
    multiplies each doc's loss in the other models.
    ``X`` is (n_docs, dim) float embeddings; rows are L2-normalised here.
    Saved as the index (``vectors`` float16, ``labels``, ``weights`` when given) in safetensors
    and ``knn.json``.
    """

    kind = "knn"

    def __init__(self, k_grid: tuple[int, ...] = (10, 30), tau_grid: tuple[float, ...] = (0.02, 0.05, 0.1),
                 smoothing: float = 1e-3, input: str = "emb", batch_size: int = 1024):
        self.k_grid = tuple(k_grid)
        self.tau_grid = tuple(tau_grid)
        self.smoothing = smoothing
        self.input = input
        self.batch_size = batch_size

    def get_params(self) -> dict[str, Any]:
        return {"k_grid": list(self.k_grid), "tau_grid": list(self.tau_grid), "smoothing": self.smoothing,
                "input": self.input, "batch_size": self.batch_size}

    @staticmethod
    def _unit(X) -> np.ndarray:
        X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def _neighbours(self, Q: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, indices), each (n_queries, k), of every query's k nearest index rows."""
        k = min(k, len(index))
        sims, idx = [], []
        for start in range(0, len(Q), self.batch_size):  # a block of queries at a time: bounded memory
            s = Q[start:start + self.batch_size] @ index.T
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            sims.append(np.take_along_axis(s, top, axis=1))
            idx.append(top)
        return np.vstack(sims), np.vstack(idx)

    def _proba(self, sims: np.ndarray, labels: np.ndarray, k: int, tau: float,
               weights: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities from the neighbours' ``sims``, ``labels`` and ``weights`` (each
        (n_queries, n_found); ``weights`` None: all 1)."""
        order = np.argsort(-sims, axis=1)[:, :k]  # the k most similar of the neighbours found
        s, lab = np.take_along_axis(sims, order, axis=1), np.take_along_axis(labels, order, axis=1)
        w = np.exp((s - s[:, :1]) / tau)
        if weights is not None:
            w = w * np.take_along_axis(weights, order, axis=1)
        votes = np.zeros((len(s), len(self.classes_)), np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(s)), s.shape[1]), np.searchsorted(self.classes_, lab).ravel()),
                  w.ravel())
        votes /= votes.sum(axis=1, keepdims=True)
        votes += self.smoothing  # no class is impossible: one wrong neighbourhood costs a bounded log-loss
        return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None) -> KnnClassifier:
        X = self._unit(X)
        has_val = X_val is not None and X_val.shape[0] > 0
        self.classes_ = np.unique(np.concatenate([y, y_val]) if has_val else y).astype(np.int64)
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        self.k_, self.tau_ = self.k_grid[0], self.tau_grid[0]
        self.scores_: dict[str, float] = {}
        self.validation_proba_ = None
        if has_val:
            V = self._unit(X_val)
            sims, idx = self._neighbours(V, X, max(self.k_grid))
            rows = np.searchsorted(self.classes_, y_val)
            best = np.inf
            for k in self.k_grid:
                for tau in self.tau_grid:
                    p = self._proba(sims, y[idx], k, tau, None if weights is None else weights[idx])
                    loss = float(-np.mean(np.log(p[np.arange(len(rows)), rows])))
                    self.scores_[f"k={k},tau={tau}"] = loss
                    if loss < best:
                        best, self.k_, self.tau_, self.validation_proba_ = loss, k, tau, p
            if weights is not None:
                weights = np.concatenate([weights, np.ones(len(y_val), np.float32) if sample_weight_val is None
                                          else np.asarray(sample_weight_val, np.float32)])
            X, y = np.vstack([X, V]), np.concatenate([y, y_val])
        self.vectors_, self.labels_, self.weights_ = X.astype(np.float16), y.astype(np.int64), weights
        return self

    def predict_proba(self, X) -> np.ndarray:
        sims, idx = self._neighbours(self._unit(X), self.vectors_.astype(np.float32), self.k_)
        return self._proba(sims, self.labels_[idx], self.k_, self.tau_,
                           None if self.weights_ is None else self.weights_[idx])

    def save(self, fs, folder: str) -> list[str]:
        arrays = {"vectors": self.vectors_, "labels": self.labels_, "classes": self.classes_}
        if self.weights_ is not None:
            arrays["weights"] = self.weights_
        return save_model_files(fs, folder, "knn", arrays,
                                {"params": self.get_params(), "k": self.k_, "tau": self.tau_})

    @classmethod
    def load(cls, fs, folder: str) -> KnnClassifier:
        meta, arrays = load_model_files(fs, folder, "knn")
        model = cls(**meta["params"])
        model.vectors_, model.labels_, model.classes_ = arrays["vectors"], arrays["labels"], arrays["classes"]
        model.weights_ = arrays.get("weights")
        model.k_, model.tau_ = meta["k"], meta["tau"]
        return model


def frequent_columns(df: np.ndarray, min_df: int) -> np.ndarray:
    """Columns whose document frequency ``df`` (width,) is at least ``min_df``; with a handful of
    docs, whatever occurs, and at least one column."""
    cols = np.flatnonzero(df >= min_df)
    if len(cols) == 0:
        cols = np.flatnonzero(df > 0) if df.any() else np.array([0])
    return cols


def select_columns(X: sp.csr_matrix, y: np.ndarray, min_df: int, max_features: int) -> np.ndarray:
    """Columns worth a tree split, sorted (k,) int32: in at least ``min_df`` training docs,
    then the ``max_features`` best by chi2 against the classes.

    A hashed TF-IDF matrix has up to 2**18 mostly empty columns; tree building costs grow with
    the column count, and a column seen in one doc can never pass ``min_child_weight``.
    """
    cols = frequent_columns(np.bincount(X.indices, minlength=X.shape[1]), min_df)
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
                 n_jobs: int = 1, seed: int = 0, input: str = "tfidf", subsample: float = 1.0,
                 colsample_bytree: float = 1.0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.early_stopping_rounds = early_stopping_rounds
        self.max_features = max_features
        self.min_df = min_df
        self.n_jobs = n_jobs
        self.seed = seed
        self.input = input
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_estimators", "max_depth", "learning_rate",
                                               "early_stopping_rounds", "max_features", "min_df",
                                               "n_jobs", "seed", "input", "subsample", "colsample_bytree")}

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
                                subsample=self.subsample, colsample_bytree=self.colsample_bytree,
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
