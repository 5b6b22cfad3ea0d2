"""XGBoost with xgboost.dask (``train.xgboost.distributed``) on a 2-worker LocalCluster, against
the local fit on the same WebKB docs: same columns, same store format, close accuracy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_features_train import webkb_docs, write_docs

from pagecat.config import config_from_dict
from pagecat.errors import UsageError
from pagecat.features.stage import FeaturesStage
from pagecat.features.tfidf import read_tfidf
from pagecat.runs import RunDir
from pagecat.stage import execute
from pagecat.train.data import load_labelled
from pagecat.train.models import select_columns
from pagecat.train.stage import TrainStage, split_indices
from pagecat.train.store import load_model
from pagecat.train.xgb_dask import (
    AUTO_SHARE,
    input_bytes,
    labelled_meta,
    select_columns_from_stats,
    smallest_worker_memory,
    wants_distributed,
)


def config(root, distributed: str):
    return config_from_dict({
        "run": {"dir": str(root)},
        "features": {"tfidf": {"n_features": 2**16}, "embeddings": {"max_length": 32, "batch_size": 32}},
        "train": {"models": ["xgboost", "xgboost_emb"],
                  "xgboost": {"n_estimators": 60, "max_depth": 4, "max_features": 4000, "early_stopping_rounds": 10,
                              "distributed": distributed}},
    })


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """A run dir with WebKB docs (3 parts) and their TF-IDF features (features stage done)."""
    root = tmp_path_factory.mktemp("featured")
    run = RunDir(str(root))
    write_docs(run, webkb_docs(step=4))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, featured, client):
    """{mode: (run, cfg, train manifest)} for the local (never) and the xgboost.dask (always) fit,
    each training XGBoost on TF-IDF (sparse parts) and on embeddings (dense parts) at once."""
    execute(FeaturesStage(), config(featured, "never"), RunDir(str(featured)), client, progress=False)
    out = {}
    for mode in ("never", "always"):
        root = tmp_path_factory.mktemp(mode)
        shutil.copytree(featured, root, dirs_exist_ok=True)
        run, cfg = RunDir(str(root)), config(root, mode)
        out[mode] = (run, cfg, execute(TrainStage(), cfg, run, client, progress=False))
    return out


def test_distributed_setting_is_checked():
    with pytest.raises(UsageError, match="train.xgboost.distributed: 'sometimes' is not one of auto, always, never"):
        config("r", "sometimes")


def test_column_selection_from_part_sums_matches_the_local_one(trained):
    run, cfg, _ = trained["never"]
    data = load_labelled(run, "tfidf", cfg)
    classes = sorted(set(data.labels))
    y = np.array([classes.index(label) for label in data.labels])
    X = data.X[:300]
    y = y[:300]
    df = np.bincount(X.indices, minlength=X.shape[1])
    onehot = np.eye(len(classes))[y]
    observed = onehot.T @ X.toarray().astype(np.float64)
    for max_features in (50, 400, 10**6):
        expected = select_columns(X, y, min_df=2, max_features=max_features)
        got = select_columns_from_stats(df, observed, np.bincount(y, minlength=len(classes)), 2, max_features)
        assert np.array_equal(got, expected)


def test_metadata_and_split_match_the_local_loader(trained):
    run, cfg, _ = trained["never"]
    full = load_labelled(run, "tfidf", cfg)
    meta, parts = labelled_meta(run)
    assert meta.doc_ids == full.doc_ids and meta.labels == full.labels and meta.X is None
    assert sum(n for _, _, n in parts) == len(full.doc_ids) and len(parts) == 3
    y = np.array([sorted(set(full.labels)).index(label) for label in full.labels])
    for a, b in zip(split_indices(meta, y, cfg), split_indices(full, y, cfg)):
        assert np.array_equal(a, b)


def test_auto_keeps_small_features_local_and_modes_decide(trained, client):
    run, cfg, _ = trained["never"]
    assert not wants_distributed(cfg, run, "xgboost")  # never
    # auto: a few hundred docs' features are far below a quarter of a worker's memory
    workers = client.scheduler_info(n_workers=-1)["workers"]
    assert 0 < input_bytes(run, "tfidf") < AUTO_SHARE * smallest_worker_memory(workers)
    assert not client.submit(wants_distributed, config(run.root, "auto"), run, "xgboost", pure=False).result()
    assert smallest_worker_memory({"a": {"memory_limit": 4e9}, "b": {"memory_limit": 2e9}}) == 2e9
    assert not wants_distributed(config(run.root, "always"), run, "linear")  # not an XGBoost model
    assert wants_distributed(config(run.root, "always"), run, "xgboost")


def test_xgboost_dask_model_matches_the_local_one(trained):
    (local_run, _, local_m), (dist_run, _, dist_m) = trained["never"], trained["always"]
    local, dist = load_model(local_run, "xgboost"), load_model(dist_run, "xgboost")
    lm, dm = local.card["metrics"], dist.card["metrics"]
    assert dm["distributed_workers"] == 2 and "distributed_workers" not in lm
    assert dm["n_test"] == lm["n_test"] and dm["n_fit"] == lm["n_fit"]
    # same store format: the same files, kind, classes and features settings on the card
    assert set(dist.card["files"]) == set(local.card["files"]) and dist.card["kind"] == local.card["kind"] == "xgboost"
    assert dist.classes == local.classes and dist.card["features"] == local.card["features"]
    # the same TF-IDF columns (the distributed selection sums the same statistics part by part)
    assert np.array_equal(dist.model.columns_, local.model.columns_)
    assert abs(dm["accuracy"] - lm["accuracy"]) <= 0.05 and dm["accuracy"] > 0.6
    assert dist_m.counts["models"] == 2 and dist_m.counts["in"] == local_m.counts["in"]
    # the loaded booster predicts the stored docs' rows like any local model
    doc_ids, X = read_tfidf(dist_run)
    proba = dist.model.predict_proba(X[:20])
    assert proba.shape == (20, len(dist.classes)) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_xgboost_dask_on_embeddings_matches_the_local_one(trained):
    local, dist = load_model(trained["never"][0], "xgboost_emb"), load_model(trained["always"][0], "xgboost_emb")
    lm, dm = local.card["metrics"], dist.card["metrics"]
    assert dm["distributed_workers"] == 2 and dm["input"] == "emb" and dm["n_test"] == lm["n_test"]
    assert dist.card["features"] == local.card["features"] and dist.model.columns_.shape == (384,)
    assert abs(dm["accuracy"] - lm["accuracy"]) <= 0.05
