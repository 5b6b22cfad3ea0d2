"""The model store: ``models/<name>/`` with the model files, labels, metrics and a model card.

::

    models/<name>/<model files>   written by the classifier's own ``save`` (UBJ, safetensors, JSON)
    models/<name>/labels.json     the class list, column order of ``predict_proba``
    models/<name>/metrics.json    held-out metrics
    models/<name>/card.json       name, kind, classes, docs version, features settings, metrics,
                                  sha256 of every other file, pagecat version, created at
    models/comparison.json        every model's headline metrics and the best by macro-F1

The card is written last, so a folder without one is an unfinished save. ``load_model``
checks every hash, the pagecat major version and (when given) the features settings before
it reads a model, and never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pagecat
from pagecat.errors import UsageError
from pagecat.features.io import read_bytes, sha256_bytes
from pagecat.runs import RunDir, now_iso

from .metrics import classification_metrics
from .registry import MODEL_KINDS

STORE_FORMAT = 1
COMPARISON = ("models", "comparison.json")


@dataclass
class StoredModel:
    name: str
    model: Any             # a fitted classifier from .models
    classes: list[str]     # label of each predict_proba column
    card: dict[str, Any]


def _major(version: str) -> str:
    return str(version).split(".")[0]


def save_model(run: RunDir, name: str, model, *, classes: list[str], docs_version: str,
               features: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """Write ``models/<name>/`` (replacing an older one) and return its card."""
    run.remove("models", name)
    folder = run.path("models", name)
    files = list(model.save(run.fs, folder))
    run.write_json(f"{folder}/labels.json", list(classes))
    run.write_json(f"{folder}/metrics.json", metrics)
    files += ["labels.json", "metrics.json"]
    card = {
        "format": STORE_FORMAT,
        "name": name,
        "kind": model.kind,
        "classes": list(classes),
        "docs_version": docs_version,
        "features": features,
        "params": model.get_params(),
        "metrics": metrics,
        "files": {f: sha256_bytes(read_bytes(run.fs, f"{folder}/{f}")) for f in files},
        "pagecat_version": pagecat.__version__,
        "created_at": now_iso(),
    }
    run.write_json(f"{folder}/card.json", card)
    return card


def save_trained(run: RunDir, name: str, model, *, input_name: str, split, proba, train_seconds: float,
                 predict_seconds: float, features: dict[str, Any], docs_version: str, group_by: str | None,
                 **extra: Any) -> dict[str, Any]:
    """Measure a trained model on its split's test docs (``proba`` (n_test, n_classes)) and save it
    with those metrics (``extra`` adds fields to them); returns its card."""
    metrics = classification_metrics(split.y[split.test], proba, split.classes)
    metrics.update(model=name, input=input_name, train_seconds=round(train_seconds, 3),
                   predict_docs_per_s=round(len(split.test) / max(predict_seconds, 1e-9), 1),
                   n_train=len(split.fit) + len(split.val), n_fit=len(split.fit), n_validation=len(split.val),
                   n_test=len(split.test), group_by=group_by, **extra)
    return save_model(run, name, model, classes=split.classes, docs_version=docs_version, features=features,
                      metrics=metrics)


def trained_models(run: RunDir) -> list[str]:
    """Names of the models with a complete save (a card) in this run."""
    return sorted(p.rsplit("/", 2)[-2] for p in run.list_files("models", suffix="/card.json"))


def load_card(run: RunDir, name: str) -> dict[str, Any]:
    path = run.path("models", name, "card.json")
    if not run.fs.exists(path):
        known = ", ".join(trained_models(run)) or "none"
        raise UsageError(f"model {name!r} is not in {run.url('models')} (trained: {known}); "
                         "pick one of those or run `pagecat train`")
    return run.read_json(path)


def load_model(run: RunDir, name: str, *, features: dict[str, Any] | None = None) -> StoredModel:
    """Verify ``models/<name>/`` against its card, then load it.

    Raises UsageError (one line) when a file is missing or changed since it was saved, when
    the card comes from another pagecat major version, or when ``features`` (the settings of
    the TF-IDF model in use) differ from those the model was trained on.
    """
    card = load_card(run, name)
    folder = run.path("models", name)
    fix = "re-run `pagecat train --force`"
    if card.get("format") != STORE_FORMAT or _major(card.get("pagecat_version", "")) != _major(
            pagecat.__version__):
        raise UsageError(f"model {name!r} was saved by pagecat {card.get('pagecat_version')} (store format "
                         f"{card.get('format')}), this is {pagecat.__version__}; {fix}")
    for fname, digest in card.get("files", {}).items():
        path = f"{folder}/{fname}"
        if "/" in fname or fname.startswith(".") or not run.fs.exists(path):
            raise UsageError(f"model {name!r}: file {fname} named by its card is missing; {fix}")
        if sha256_bytes(read_bytes(run.fs, path)) != digest:
            raise UsageError(f"model {name!r}: {fname} does not match the sha256 in its card "
                             f"(changed or corrupt); refusing to load it; {fix}")
    if features is not None and features != card.get("features"):
        changed = sorted(k for k in set(features) | set(card.get("features", {}))
                         if features.get(k) != card.get("features", {}).get(k))
        raise UsageError(f"model {name!r} was trained on other features ({', '.join(changed)} differ); {fix}")
    kind = card.get("kind")
    if kind not in MODEL_KINDS:
        raise UsageError(f"model {name!r}: unknown kind {kind!r} in its card; {fix}")
    classes = json.loads(read_bytes(run.fs, f"{folder}/labels.json"))
    return StoredModel(name=name, model=MODEL_KINDS[kind].load(run.fs, folder), classes=classes, card=card)


def read_comparison(run: RunDir) -> dict[str, Any]:
    path = run.path(*COMPARISON)
    if not run.fs.exists(path):
        raise UsageError(f"no {run.url(*COMPARISON)}; run `pagecat train` first")
    return run.read_json(path)
