"""The tagged docs with their model input, and the splits trained and measured on.

``load_labelled`` gathers the tagged docs of every docs part into one worker's memory: fine
for the thousands to low millions of tagged docs a classifier is trained on; untagged docs,
usually the bulk, are never gathered (``predict`` works part by part).

A model reads one of three inputs: ``tfidf`` (the stored sparse rows), ``emb`` (the stored
embeddings) or ``text`` (the docs' own text, per field, for models that read words or
characters themselves).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from pagecat.config import Config
from pagecat.errors import StageError, UsageError
from pagecat.features.embeddings import (
    doc_columns,
    field_texts,
    load_emb_settings,
    read_emb_part,
    resolve_fields,
)
from pagecat.features.io import docs_parts, parquet_columns
from pagecat.features.tfidf import load_fitted, read_tfidf_part
from pagecat.runs import RunDir
from pagecat.urls import registered_domain

GROUP_BY = ("group", "site", "cluster")


@dataclass
class LabelledDocs:
    doc_ids: list[str]
    X: Any                    # tfidf: (n, width) float32 CSR; emb: (n, dim) float32; text: n lists of fields
    labels: list[str]
    groups: list[str | None]  # the docs' group column, for grouped splits
    hosts: list[str | None]
    clusters: list[str | None] | None = None   # near-duplicate cluster ids, when docs carry them
    sample_weight: np.ndarray | None = None    # (n,) float, when docs carry a sample_weight column


def read_labels(run: RunDir) -> list[str]:
    """The label of every tagged doc (one column read per docs part)."""
    out: list[str] = []
    for path in docs_parts(run).values():
        labels = run.read_part(path, columns=["label"]).column("label")
        out += labels.filter(pc.is_valid(labels)).to_pylist()
    return out


def feature_settings(run: RunDir, input_name: str, cfg: Config) -> dict[str, Any]:
    """The settings of the input a model reads; its card records them, predict compares them."""
    if input_name == "tfidf":
        return load_fitted(run).settings()
    if input_name == "emb":
        return load_emb_settings(run)
    return {"input": "text", "fields": text_fields(run, cfg) or ["title+text"]}


def text_fields(run: RunDir, cfg: Config) -> list[str]:
    """The fields a text model reads apart (as the embeddings do): [] = title + text as one."""
    parts = docs_parts(run)
    return resolve_fields(cfg.features.embeddings, run, parts[min(parts)]) if parts else []


def _rows(run: RunDir, part_id: str, docs: pa.Table, input_name: str, cfg: Config, width: int):
    """The model input of ``docs`` (tagged rows of one part), in their order."""
    if input_name == "text":
        per_field = field_texts(docs, text_fields(run, cfg))
        return [list(t) for t in zip(*per_field)]
    ids, rows = read_tfidf_part(run, part_id, width) if input_name == "tfidf" else read_emb_part(run, part_id)
    where = {d: i for i, d in enumerate(ids)}
    part_ids = docs.column("doc_id").to_pylist()
    missing = [d for d in part_ids if d not in where]
    if missing:
        raise StageError("train", f"docs part {part_id}: {len(missing)} tagged docs have no {input_name} row "
                                  f"(first {missing[0]!r}); re-run `pagecat features --force`")
    return rows[[where[d] for d in part_ids]]


def labelled_meta(run: RunDir, cfg: Config | None = None, input_name: str = "tfidf",
                  on_part: Callable[[str, pa.Table], None] | None = None
                  ) -> tuple[LabelledDocs, list[tuple[str, str, int]]]:
    """The tagged docs' ids, labels, groups, hosts, clusters and weights (``X`` left None), and
    (part id, docs path, tagged rows) of every docs part with tagged docs, in docs-part order.
    ``on_part(part_id, docs)`` sees each part's tagged docs table (with the text fields the
    ``text`` input reads) while it is in memory, so a caller can read the part's model input."""
    cfg = cfg or Config()
    out = LabelledDocs(doc_ids=[], X=None, labels=[], groups=[], hosts=[])
    parts: list[tuple[str, str, int]] = []
    clusters: list = []
    weights: list = []
    has_cluster = has_weight = False
    for part_id, path in docs_parts(run).items():
        names = parquet_columns(run, path)
        has_cluster, has_weight = "cluster" in names, "sample_weight" in names
        wanted = ["doc_id", "label", "group", "host"] + [c for c in ("cluster", "sample_weight") if c in names]
        if input_name == "text":
            wanted += doc_columns(text_fields(run, cfg), names)
        docs = run.read_part(path, columns=list(dict.fromkeys(wanted)))
        docs = docs.filter(pc.is_valid(docs.column("label")))
        if docs.num_rows == 0:
            continue
        if on_part is not None:
            on_part(part_id, docs)
        parts.append((part_id, path, docs.num_rows))
        out.doc_ids += docs.column("doc_id").to_pylist()
        out.labels += docs.column("label").to_pylist()
        out.groups += docs.column("group").to_pylist()
        out.hosts += docs.column("host").to_pylist()
        clusters += docs.column("cluster").to_pylist() if has_cluster else [None] * docs.num_rows
        weights += docs.column("sample_weight").to_pylist() if has_weight else [1.0] * docs.num_rows
    out.clusters = clusters if has_cluster else duplicate_clusters(run, out.doc_ids)
    if has_weight and any(w not in (None, 1.0) for w in weights):  # all ones (or nulls): no weights at all
        out.sample_weight = np.asarray([1.0 if w is None else w for w in weights], np.float64)
    return out, parts


def load_labelled(run: RunDir, input_name: str = "tfidf", cfg: Config | None = None) -> LabelledDocs:
    """Tagged docs (label not null) and their model input, in docs-part order."""
    cfg = cfg or Config()
    width = load_fitted(run).width if input_name == "tfidf" else 0
    blocks = []
    out, _ = labelled_meta(run, cfg, input_name,
                           on_part=lambda part_id, docs: blocks.append(_rows(run, part_id, docs, input_name, cfg,
                                                                             width)))
    if input_name == "text":
        out.X = [row for block in blocks for row in block]
    elif input_name == "tfidf":
        out.X = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, width), dtype=np.float32)
    else:
        out.X = np.vstack(blocks) if blocks else np.zeros((0, 0), np.float32)
    return out


def duplicate_clusters(run: RunDir, doc_ids: list[str]) -> list[str | None] | None:
    """Each doc's near-duplicate cluster from ``duplicates/`` (a kept page and the pages dropped in
    its place share a ``cluster_id``); None when dedup wrote no clusters. A doc in no cluster gets
    None: it is a group of its own."""
    files = run.list_files("duplicates", suffix=".parquet")
    if not files:
        return None
    cluster_of: dict[str, str] = {}
    for path in files:
        if "cluster_id" not in parquet_columns(run, path):
            return None
        t = run.read_part(path, columns=["page_id", "kept_id", "cluster_id"])
        for page, kept, cluster in zip(*(t.column(c).to_pylist() for c in ("page_id", "kept_id", "cluster_id"))):
            if cluster:
                cluster_of[page] = cluster_of[kept] = cluster
    return [cluster_of.get(d) for d in doc_ids]


def group_keys(data: LabelledDocs, group_by: str | None) -> np.ndarray | None:
    """The key a grouped split keeps together, (n_docs,) object; None for a plain split."""
    if group_by is None:
        return None
    if group_by == "group":
        keys = data.groups
    elif group_by == "site":
        keys = [registered_domain(h) if h else None for h in data.hosts]
    else:
        if data.clusters is None:
            raise UsageError("config field train.group_by: cluster needs duplicate clusters: run dedup (it writes "
                             "duplicates/ with cluster ids) or give docs a cluster column; or use group, site or null")
        keys = data.clusters
    # A doc without a key is a group of its own: it can go either side without leaking.
    return np.asarray([k if k is not None else f"\0{data.doc_ids[i]}" for i, k in enumerate(keys)], dtype=object)


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


def grouped_split(y: np.ndarray, groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) with every group wholly on one side, class shares kept as
    far as the groups allow (one fold of ``StratifiedGroupKFold`` with 1/test_size folds).

    Raises StageError when there are too few groups to split, or when the train side would
    lack a class (every doc of it sits in the test groups).
    """
    n_groups = len(set(groups.tolist()))
    n_splits = max(2, round(1 / test_size))
    if n_groups < 2:
        raise StageError("train", "train.group_by: all tagged docs are in one group; a grouped split needs "
                                  "at least 2 groups: use another train.group_by or null")
    n_splits = min(n_splits, n_groups)
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, test = next(folds.split(np.zeros(len(y)), y, groups))
    lacking = sorted(set(y.tolist()) - set(y[train].tolist()))
    if lacking:
        raise StageError("train", f"train.group_by: the grouped split puts every doc of class index "
                                  f"{lacking[0]} in the test split (its docs share too few groups); tag "
                                  "docs of it in other groups, or use another train.group_by")
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


def class_weights(y: np.ndarray, n_classes: int, mode: str | None,
                  sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """Per-doc weights (n,) float: docs' own ``sample_weight`` times, with ``mode="balanced"``,
    n / (n_classes * count of the doc's class). None when every weight would be 1."""
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64).copy()
    if mode == "balanced":
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        per_class = len(y) / (n_classes * np.maximum(counts, 1))
        w = per_class[y] if w is None else w * per_class[y]
    return w


@dataclass
class TrainingSplit:
    """The class indices and the seeded splits every model of a run trains and is measured on."""

    classes: list[str]           # sorted labels; class i is classes[i]
    y: np.ndarray                # (n,) int64 class indices of the tagged docs
    fit: np.ndarray              # doc indices the model is fitted on
    val: np.ndarray              # doc indices for early stopping, C and temperature
    test: np.ndarray             # held-out doc indices the metrics are measured on
    weights: np.ndarray | None   # (n,) per-doc weights, or None when all are 1


def split_indices(data: LabelledDocs, y: np.ndarray, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, validation, test) indices: the same for every model of a run (seeded), grouped when
    ``train.group_by`` says so (the validation split is carved from the train side by class)."""
    t = cfg.train
    groups = group_keys(data, t.group_by)
    if groups is None:
        train, test = stratified_split(y, t.test_size, t.seed)
    else:
        train, test = grouped_split(y, groups, t.test_size, t.seed)
    fit, val = validation_split(y[train], t.validation_size, t.seed)
    return train[fit], train[val], test


def training_split(data: LabelledDocs, cfg: Config) -> TrainingSplit:
    """The tagged docs' classes, class indices, splits and weights under ``cfg.train``."""
    classes = sorted(set(data.labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in data.labels], dtype=np.int64)
    fit, val, test = split_indices(data, y, cfg)
    weights = class_weights(y, len(classes), cfg.train.class_weight, data.sample_weight)
    return TrainingSplit(classes, y, fit, val, test, weights)
