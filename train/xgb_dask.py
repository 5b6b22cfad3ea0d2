"""XGBoost trained with ``xgboost.dask`` on the cluster's workers, for tagged docs whose features
are larger than one worker should hold.

``train.xgboost.distributed`` picks the path: ``never`` (the local ``XGBoostTextClassifier``
fit in one worker's memory), ``always``, or ``auto`` (the default): distributed when the
cluster has two or more workers and the stored features of the model's input (TF-IDF or
embeddings, uncompressed, from the Parquet footers) exceed ``AUTO_SHARE`` of the smallest
worker's memory limit.

What stays the same as the local fit: the split (``split_indices`` over the tagged docs in
docs-part order), the TF-IDF columns kept for the trees (document frequency and chi2 on the
fit split, summed part by part instead of computed on one matrix), the booster parameters,
early stopping on the validation split, and the saved model (an ``XGBoostTextClassifier``
with its booster, columns and classes: the same files, card and loading). Only the docs'
labels, groups and weights are gathered; each worker reads the feature rows of its own docs
parts, so no process ever holds the whole matrix.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from pagecat.config import Config
from pagecat.features.embeddings import EMB_DIR
from pagecat.features.io import docs_version
from pagecat.features.tfidf import TFIDF_DIR, load_fitted
from pagecat.runs import RunDir

from .data import _rows, feature_settings, labelled_meta, training_split
from .models import XGBoostTextClassifier, frequent_columns
from .registry import MODEL_INPUT, build_model
from .store import save_trained

# auto: distributed when the features exceed this share of the smallest worker's memory limit.
# A hist DMatrix, its quantile sketch and the gradients take a few times the raw CSR.
AUTO_SHARE = 0.25
TRAIN_LOCK = "pagecat-xgboost-dask"
DISTRIBUTED_MODELS = ("xgboost", "xgboost_emb")


def input_bytes(run: RunDir, input_name: str) -> int:
    """Uncompressed bytes of the stored features of every docs part (TF-IDF or embeddings)."""
    folder = TFIDF_DIR if input_name == "tfidf" else EMB_DIR
    total = 0
    for path in run.list_files(*folder.split("/"), suffix=".parquet"):
        with run.fs.open(path, "rb") as fh:
            meta = pq.ParquetFile(fh).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def smallest_worker_memory(workers: dict[str, dict]) -> float:
    """The smallest worker memory limit in bytes (a worker without one counts the machine's memory)."""
    import psutil

    limits = [float(w.get("memory_limit") or 0) or float(psutil.virtual_memory().total) for w in workers.values()]
    return min(limits) if limits else float(psutil.virtual_memory().total)


def wants_distributed(cfg: Config, run: RunDir, name: str) -> bool:
    """Whether model ``name`` trains with xgboost.dask: an XGBoost model, and
    ``train.xgboost.distributed`` (auto | always | never) says so for this cluster and input."""
    mode = cfg.train.xgboost.distributed
    if name not in DISTRIBUTED_MODELS or mode == "never":
        return False
    if mode == "always":
        return True
    from distributed import get_client

    workers = get_client().scheduler_info(n_workers=-1)["workers"]
    if len(workers) < 2:
        return False
    return input_bytes(run, MODEL_INPUT[name]) > AUTO_SHARE * smallest_worker_memory(workers)


# -- the tagged docs' rows, part by part ------------------------------------------------------
def part_masks(indices: np.ndarray, parts: list[tuple[str, str, int]]) -> list[np.ndarray]:
    """For each part, which entries of ``indices`` (sorted, global) fall in it (boolean masks)."""
    bounds = np.cumsum([0] + [n for _, _, n in parts])
    return [(indices >= lo) & (indices < hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def per_part(indices: np.ndarray, parts: list[tuple[str, str, int]]) -> list[np.ndarray]:
    """Sorted global row indices -> each part's local row positions."""
    starts = np.cumsum([0] + [n for _, _, n in parts])
    return [indices[mask] - lo for mask, lo in zip(part_masks(indices, parts), starts)]


# -- on the workers ---------------------------------------------------------------------------
def part_rows(run: RunDir, part_id: str, docs_path: str, input_name: str, width: int, rows: np.ndarray,
              columns: np.ndarray | None):
    """The feature rows ``rows`` (local positions among the part's tagged docs) of one docs part:
    CSR restricted to ``columns`` for TF-IDF, dense float32 for embeddings."""
    docs = run.read_part(docs_path, columns=["doc_id", "label"])
    docs = docs.filter(pc.is_valid(docs.column("label")))
    X = _rows(run, part_id, docs, input_name, Config(), width)[rows]
    if sp.issparse(X):
        return sp.csr_matrix(X if columns is None else X[:, columns], dtype=np.float32)
    return np.ascontiguousarray(X, dtype=np.float32)


def column_stats(run: RunDir, part_id: str, docs_path: str, width: int, rows: np.ndarray, y: np.ndarray,
                 n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Of one part's fit rows: document frequency per column (width,) and the per-class column
    sums (n_classes, width), the two sums ``select_columns`` needs."""
    X = part_rows(run, part_id, docs_path, "tfidf", width, rows, None).tocsr()
    df = np.bincount(X.indices, minlength=width)
    onehot = sp.csr_matrix((np.ones(len(y)), (np.arange(len(y)), y)), shape=(len(y), n_classes))
    return df, np.asarray((onehot.T @ X.astype(np.float64)).todense())


def select_columns_from_stats(df: np.ndarray, observed: np.ndarray, class_counts: np.ndarray, min_df: int,
                              max_features: int) -> np.ndarray:
    """``models.select_columns`` from summed statistics: columns in at least ``min_df`` fit docs,
    then the ``max_features`` best by chi2 (sklearn's formula: observed per-class sums against
    the class shares times the column sums)."""
    cols = frequent_columns(df, min_df)
    if len(cols) > max_features:
        obs = observed[:, cols]
        expected = np.outer(class_counts / class_counts.sum(), obs.sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.nan_to_num((((obs - expected) ** 2) / expected).sum(axis=0))
        cols = np.sort(cols[np.argsort(-scores, kind="stable")[:max_features]])
    return cols.astype(np.int32)


# -- the part of the train stage ------------------------------------------------------------
def _dask_rows(run, parts, local, input_name, width, columns, n_cols):
    import dask
    import dask.array as da

    blocks = []
    for (part_id, path, _), rows in zip(parts, local):
        if len(rows) == 0:
            continue
        value = dask.delayed(part_rows, pure=True)(run, part_id, path, input_name, width, rows, columns)
        meta = sp.csr_matrix((0, n_cols), dtype=np.float32) if input_name == "tfidf" else np.zeros((0, n_cols),
                                                                                                    np.float32)
        blocks.append(da.from_delayed(value, shape=(len(rows), n_cols), dtype=np.float32, meta=meta))
    return da.concatenate(blocks, axis=0)


def _dask_vector(values: np.ndarray, local: list[np.ndarray]):
    import dask.array as da

    chunks = tuple(len(rows) for rows in local if len(rows))
    return da.from_array(np.asarray(values), chunks=(chunks,))


def train_distributed(name: str, cfg: Config, run: RunDir) -> dict[str, Any]:
    """The train stage's part for ``xgboost`` / ``xgboost_emb`` with xgboost.dask; same outputs as
    the local fit (``models/<name>/``, its card and metrics) and the same counts."""
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 (the submodule is not imported by the package)
    from distributed import Lock, worker_client

    input_name = MODEL_INPUT[name]
    data, parts = labelled_meta(run)
    features = feature_settings(run, input_name, cfg)
    split = training_split(data, cfg)
    classes, y, fit, val, test, weights = split.classes, split.y, split.fit, split.val, split.test, split.weights
    model: XGBoostTextClassifier = build_model(name, cfg.train, cfg.features.embeddings.model_path)
    local = {k: per_part(v, parts) for k, v in (("fit", fit), ("val", val), ("test", test))}
    width = load_fitted(run).width if input_name == "tfidf" else 0

    # Seceded from the worker's thread pool while the cluster trains; one xgboost.dask training
    # at a time, since two would each wait for worker threads the other holds.
    with worker_client() as client, Lock(TRAIN_LOCK):
        t0 = time.perf_counter()
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if input_name == "tfidf":
            futures = [client.submit(column_stats, run, pid, path, width, rows, y[fit][mask], len(classes),
                                     pure=False)
                       for (pid, path, _), rows, mask in zip(parts, local["fit"], part_masks(fit, parts))
                       if len(rows)]
            df, observed = np.zeros(width, np.int64), np.zeros((len(classes), width))
            for fut in futures:  # summed as they arrive: one part's sums in memory at a time
                part_df, part_obs = fut.result()
                df += part_df
                observed += part_obs
                fut.release()
            model.columns_ = select_columns_from_stats(df, observed, np.bincount(y[fit], minlength=len(classes)),
                                                       model.min_df, model.max_features)
            n_cols = len(model.columns_)
        else:
            n_cols = int(features["width"])
            model.columns_ = np.arange(n_cols, dtype=np.int32)
        cols = model.columns_ if input_name == "tfidf" else None

        def dmatrix(split: str, idx: np.ndarray):
            w = None if weights is None else _dask_vector(weights[idx], local[split])
            return xgb.dask.DaskDMatrix(client, _dask_rows(run, parts, local[split], input_name, width, cols, n_cols),
                                        _dask_vector(y[idx], local[split]), weight=w)

        params = {"tree_method": "hist", "max_depth": model.max_depth, "eta": model.learning_rate,
                  "seed": model.seed}
        if len(classes) > 2:
            params.update(objective="multi:softprob", num_class=len(classes), eval_metric="mlogloss")
        else:
            params.update(objective="binary:logistic", eval_metric="logloss")
        if cfg.train.threads > 0:
            params["nthread"] = cfg.train.threads
        has_val = len(val) > 0
        evals = [(dmatrix("val", val), "validation")] if has_val else None
        out = xgb.dask.train(client, params, dmatrix("fit", fit), num_boost_round=model.n_estimators, evals=evals,
                             early_stopping_rounds=model.early_stopping_rounds if has_val else None, verbose_eval=False)
        booster = out["booster"]
        model.best_iteration_ = int(booster.best_iteration) if has_val else model.n_estimators - 1
        model.booster_ = booster[: model.best_iteration_ + 1]
        model.booster_.set_param({"nthread": model.n_jobs})
        model.classes_ = np.arange(len(classes), dtype=np.int64)
        train_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        X_test = _dask_rows(run, parts, local["test"], input_name, width, cols, n_cols)
        proba = np.asarray(xgb.dask.inplace_predict(client, model.booster_, X_test).compute(), dtype=np.float32)
        proba = np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba
        predict_seconds = time.perf_counter() - t0

    save_trained(run, name, model, input_name=input_name, split=split, proba=proba, train_seconds=train_seconds,
                 predict_seconds=predict_seconds, features=features,
                 docs_version=docs_version(run), group_by=cfg.train.group_by, distributed_workers=n_workers)
    return {"in": len(y), "out": len(y), "models": 1}

