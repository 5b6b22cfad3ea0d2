"""The tagged docs with their TF-IDF rows, and the splits trained and measured on.

``load_labelled`` gathers the tagged docs of every docs part into one worker's memory (one
CSR matrix): fine for the thousands to low millions of tagged docs a classifier is trained
on; untagged docs, usually the bulk, are never gathered (``predict`` works part by part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from pagecat.errors import StageError, UsageError
from pagecat.features.io import docs_parts
from pagecat.features.tfidf import read_tfidf_part
from pagecat.runs import RunDir


@dataclass
class LabelledDocs:
    doc_ids: list[str]
    X: sp.csr_matrix          # (n_docs, n_features) float32 TF-IDF rows
    labels: list[str]
    groups: list[str | None]  # the docs' group column, for grouped splits


def read_labels(run: RunDir) -> list[str]:
    """The label of every tagged doc (one column read per docs part)."""
    out: list[str] = []
    for path in docs_parts(run).values():
        labels = run.read_part(path, columns=["label"]).column("label")
        out += labels.filter(pc.is_valid(labels)).to_pylist()
    return out


def load_labelled(run: RunDir, n_features: int) -> LabelledDocs:
    """Tagged docs (label not null) and their stored TF-IDF rows, in docs-part order."""
    ids: list[str] = []
    labels: list[str] = []
    groups: list[str | None] = []
    mats = []
    for part_id, path in docs_parts(run).items():
        docs = run.read_part(path, columns=["doc_id", "label", "group"])
        docs = docs.filter(pc.is_valid(docs.column("label")))
        if docs.num_rows == 0:
            continue
        feature_ids, rows = read_tfidf_part(run, part_id, n_features)
        where = {d: i for i, d in enumerate(feature_ids)}
        part_ids = docs.column("doc_id").to_pylist()
        missing = [d for d in part_ids if d not in where]
        if missing:
            raise ValueError(f"docs part {part_id}: {len(missing)} tagged docs have no features row "
                             f"(first {missing[0]!r}); re-run `pagecat features --force`")
        mats.append(rows[[where[d] for d in part_ids]])
        ids += part_ids
        labels += docs.column("label").to_pylist()
        groups += docs.column("group").to_pylist()
    X = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, n_features), dtype=np.float32)
    return LabelledDocs(doc_ids=ids, X=X, labels=labels, groups=groups)


def check_trainable(labels: list[str], test_size: float) -> None:
    """Raise a clear error before any training when the tagged docs cannot be split."""
    if not labels:
        raise UsageError("no tagged docs: check label.labels / label.join_on")
    classes, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    if len(classes) < 2:
        raise StageError("train", f"all {len(labels)} tagged docs are of class {classes[0]!r}; "
                                  "a classifier needs at least 2 classes: tag docs of other classes")
    few = [(c, n) for c, n in zip(classes, counts) if n < 2]
    if few:
        listed = ", ".join(f"{c!r} ({n} doc)" for c, n in few)
        raise StageError("train", f"{'class' if len(few) == 1 else 'classes'} {listed}: fewer than 2 tagged "
                                  "docs, too few for a stratified train/test split; tag more docs of it or "
                                  "leave it out of label.classes")
    n_test = math.ceil(test_size * len(labels))
    if min(n_test, len(labels) - n_test) < len(classes):
        raise StageError("train", f"{len(labels)} tagged docs with train.test_size={test_size} give a split "
                                  f"smaller than the {len(classes)} classes: tag more docs or change "
                                  "train.test_size")


def stratified_split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), class shares kept in both."""
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_size, stratify=y, shuffle=True, random_state=seed)
    return np.sort(train), np.sort(test)


def validation_split(y: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) carved from a train split, class by class.

    Each class gives ``round(size * its count)`` docs but always keeps one for fitting, so
    every class the train split has is still in the fit part (tree models need all classes).
    """
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        val.extend(members[: min(len(members) - 1, round(size * len(members)))])
    val = np.sort(np.asarray(val, dtype=np.int64))
    return np.setdiff1d(np.arange(len(y)), val), val
