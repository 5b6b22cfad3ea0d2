"""The train stage: every model in ``train.models`` on the tagged docs, one Part per model.

Each part (on a worker) loads the tagged docs' TF-IDF rows, makes the same seeded stratified
train/test split, carves a validation split from the train part (early stopping, tuning C),
fits, measures on the held-out test split and saves to the model store. ``finish`` writes
``models/comparison.json`` and picks the best model by macro-F1.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from distributed import Client

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.features.io import docs_version
from pagecat.features.tfidf import load_fitted
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage

from .data import check_trainable, load_labelled, read_labels, stratified_split, validation_split
from .metrics import classification_metrics
from .models import build_model
from .store import COMPARISON, load_card, save_model

HEADLINE = ("accuracy", "macro_f1", "top3_accuracy", "ece", "train_seconds", "predict_docs_per_s",
            "n_train", "n_test")


class TrainStage(Stage):
    """features/tfidf/ + docs labels -> models/<name>/ and models/comparison.json."""

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

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        check_trainable(read_labels(run), cfg.train.test_size)  # fail here, before any worker trains
        return [Part(id=name, args={"model": name}) for name in cfg.train.models]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        name = part.args["model"]
        tfidf = load_fitted(run)
        data = load_labelled(run, tfidf.n_features)
        classes = sorted(set(data.labels))
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[label] for label in data.labels], dtype=np.int64)
        train, test = stratified_split(y, cfg.train.test_size, cfg.train.seed)
        fit, val = validation_split(y[train], cfg.train.validation_size, cfg.train.seed)
        fit, val = train[fit], train[val]

        model = build_model(name, cfg.train)
        t0 = time.perf_counter()
        model.fit(data.X[fit], y[fit], data.X[val], y[val])
        train_seconds = time.perf_counter() - t0
        if not np.array_equal(model.classes_, np.arange(len(classes))):
            raise ValueError(f"model {name} learned classes {model.classes_.tolist()}, expected 0..{len(classes) - 1}")
        t0 = time.perf_counter()
        proba = model.predict_proba(data.X[test])
        predict_seconds = time.perf_counter() - t0

        metrics = classification_metrics(y[test], proba, classes)
        metrics.update(model=name, train_seconds=round(train_seconds, 3),
                       predict_docs_per_s=round(len(test) / max(predict_seconds, 1e-9), 1),
                       n_train=len(train), n_fit=len(fit), n_validation=len(val),
                       n_test=len(test))
        save_model(run, name, model, classes=classes, docs_version=docs_version(run),
                   features=tfidf.settings(), metrics=metrics)
        return {"in": len(y), "out": len(y), "models": 1}

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
