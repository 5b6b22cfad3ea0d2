"""The train stage: every model in ``train.models`` on the tagged docs, one Part per model.

Each part (on a worker) loads the tagged docs' input for its model (TF-IDF rows, embeddings
or text), makes the same seeded train/test split (stratified, or grouped by
``train.group_by``), carves a validation split from the train part (early stopping, C,
temperature), fits with the docs' weights, measures on the held-out test split and saves to
the model store. ``finish`` writes
``models/comparison.json`` and picks the best model by macro-F1.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from distributed import Client

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.features.embeddings import EMBEDDING_MODELS
from pagecat.features.io import docs_version
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage

from . import xgb_dask
from .data import (
    GROUP_BY,
    check_trainable,
    feature_settings,
    load_labelled,
    read_labels,
    split_indices,  # noqa: F401 (part of this module's API: the splits every model of a run shares)
    training_split,
)
from .registry import MODEL_INPUT, build_model
from .store import COMPARISON, load_card, save_trained

HEADLINE = ("accuracy", "macro_f1", "top3_accuracy", "ece", "train_seconds", "predict_docs_per_s",
            "n_train", "n_test")


def take(X, idx: np.ndarray):
    """Rows ``idx`` of a model input: a matrix, or a list of docs' fields."""
    return [X[i] for i in idx] if isinstance(X, list) else X[idx]


class TrainStage(Stage):
    """features/ + docs labels -> models/<name>/ and models/comparison.json."""

    name = "train"
    sections = ("train", "features")
    upstream = ("features",)
    outputs = ("models",)
    unit = "docs"

    def check(self, cfg: Config, run: RunDir) -> None:
        t = cfg.train
        if not 0 <= t.validation_size < 1:
            raise UsageError(f"config field train.validation_size: must be in [0, 1), got {t.validation_size}")
        if not t.linear.c_grid or min(t.linear.c_grid) <= 0:
            raise UsageError(f"config field train.linear.c_grid: name one or more positive C values, "
                             f"got {t.linear.c_grid}")
        if t.xgboost.max_features < 1 or t.xgboost.n_estimators < 1:
            raise UsageError("config fields train.xgboost.max_features and n_estimators: must be at least 1")
        if t.group_by is not None and t.group_by not in GROUP_BY:
            raise UsageError(f"config field train.group_by: {t.group_by!r} is not one of null, {', '.join(GROUP_BY)}")
        if t.class_weight not in (None, "balanced"):
            raise UsageError(f"config field train.class_weight: {t.class_weight!r} is not one of null, balanced")
        for key in ("epochs", "batch_size", "max_length"):
            if getattr(t.transformer, key) < 1:
                raise UsageError(f"config field train.transformer.{key}: must be at least 1")
        if t.charcnn.max_chars < 130 or t.charcnn.epochs < 1 or t.charcnn.channels < 1:
            raise UsageError("config fields train.charcnn: max_chars at least 130, epochs and channels at least 1")
        wanted = [m for m in t.models if m in EMBEDDING_MODELS]
        features = Manifest.load(run, "features")
        if wanted and features.status == "complete" and not features.extra.get("embeddings"):
            raise UsageError(f"train.models names {wanted[0]}, which reads embeddings, but the features stage "
                             "ran without them: run `pagecat features` again (it adds them)")

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        check_trainable(read_labels(run), cfg.train.test_size)  # fail here, before any worker trains
        return [Part(id=name, args={"model": name}) for name in cfg.train.models]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        name = part.args["model"]
        if xgb_dask.wants_distributed(cfg, run, name):  # features larger than one worker: xgboost.dask
            return xgb_dask.train_distributed(name, cfg, run)
        input_name = MODEL_INPUT[name]
        data = load_labelled(run, input_name, cfg)
        split = training_split(data, cfg)
        fit, val, weights = split.fit, split.val, split.weights

        model = build_model(name, cfg.train, cfg.features.embeddings.model_path)
        t0 = time.perf_counter()
        model.fit(take(data.X, fit), split.y[fit], take(data.X, val), split.y[val],
                  sample_weight=None if weights is None else weights[fit],
                  sample_weight_val=None if weights is None else weights[val])
        train_seconds = time.perf_counter() - t0
        if not np.array_equal(model.classes_, np.arange(len(split.classes))):
            raise ValueError(f"model {name} learned classes {model.classes_.tolist()}, "
                             f"expected 0..{len(split.classes) - 1}")
        t0 = time.perf_counter()
        proba = model.predict_proba(take(data.X, split.test))
        predict_seconds = time.perf_counter() - t0
        save_trained(run, name, model, input_name=input_name, split=split, proba=proba, train_seconds=train_seconds,
                     predict_seconds=predict_seconds, features=feature_settings(run, input_name, cfg),
                     docs_version=docs_version(run), group_by=cfg.train.group_by)
        return {"in": len(split.y), "out": len(split.y), "models": 1}

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        rows, classes = [], []
        for name in cfg.train.models:
            card = load_card(run, name)
            rows.append({"name": name, **{k: card["metrics"][k] for k in HEADLINE}})
            classes = card["classes"]
        best = max(rows, key=lambda r: r["macro_f1"])["name"]  # ties: the first in train.models
        comparison = {"models": rows, "best": best, "classes": classes, "docs_version": docs_version(run)}
        run.write_json(run.path(*COMPARISON), comparison)
        # Every part read all tagged docs: the stage's in and out are the tagged docs once (all of them
        # are used, for fitting or for the held-out split), and it counts the models apart.
        tagged = max(p.get("in", 0) for p in manifest.parts.values())
        manifest.counts = {"in": tagged, "out": tagged, "rejected": 0, "dropped": 0, "models": len(rows)}
        return comparison
