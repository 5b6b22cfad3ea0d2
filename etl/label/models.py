"""Labelers backed by models: zero-shot (doc vs. label descriptions through the embedding model)
and a trained model's predictions from an earlier run. Both vote (label, confidence); the
vote counts only at or above ``label.min_confidence`` (see ``votes``)."""

from __future__ import annotations

import functools

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecat.errors import UsageError
from pagecat.etl.label_keys import canonical_url
from pagecat.runs import file_fingerprint

ZERO_SHOT_TEMPERATURE = 0.05  # cosine similarities are close together: sharpen before the softmax
ZERO_SHOT_CHARS = 2000  # of title + text fed to the encoder (it reads 128 tokens anyway)


@functools.lru_cache(maxsize=2)
def _encoder(model_path: str | None):
    from pagecat.features.embed import TextEncoder

    return TextEncoder(model_path=model_path)


class ZeroShotLabeler:
    """Each doc's label is the description its embedding is closest to (source ``zero_shot``).

    Parameters: ``descriptions`` {label: description}; ``model_path`` a local transformers folder
    (None: the bundled all-MiniLM-L6-v2). ``vote(texts)`` -> (labels, confidences (n,) float32),
    the confidence being the softmax of the cosine similarities / ``ZERO_SHOT_TEMPERATURE``.
    """

    source = "zero_shot"

    def __init__(self, descriptions: dict[str, str], model_path: str | None = None):
        self.descriptions = dict(descriptions)
        self.model_path = model_path

    def vote(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        labels = list(self.descriptions)
        if not texts:
            return [], np.zeros(0, np.float32)
        enc = _encoder(self.model_path)
        label_vecs = enc.encode([self.descriptions[k] for k in labels])
        doc_vecs = enc.encode([(t or "")[:ZERO_SHOT_CHARS] for t in texts])
        scores = doc_vecs @ label_vecs.T / ZERO_SHOT_TEMPERATURE
        scores -= scores.max(axis=1, keepdims=True)
        prob = np.exp(scores)
        prob /= prob.sum(axis=1, keepdims=True)
        best = prob.argmax(axis=1)
        return [labels[i] for i in best], prob[np.arange(len(texts)), best].astype(np.float32)


class PredictionsLabeler:
    """A trained model's predictions (columns doc_id and/or url, label, probability), looked up by
    doc id, else by canonical URL (source ``model``)."""

    source = "model"

    def __init__(self, path: str):
        self.path = path
        self.by_id: dict[str, tuple[str, float]] = {}
        self.by_url: dict[str, tuple[str, float]] = {}

    def load(self) -> PredictionsLabeler:
        fs, p = fsspec.core.url_to_fs(self.path)
        if not fs.exists(p):
            raise UsageError(f"label.predictions: {self.path} not found; name a predictions file or folder")
        files = sorted(f for f in fs.find(p) if f.endswith(".parquet")) if fs.isdir(p) else [p]
        tables = []
        for f in files:
            with fs.open(f, "rb") as fh:
                tables.append(pq.read_table(fh))
        table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        missing = [c for c in ("label", "probability") if c not in table.column_names]
        if missing or not ({"doc_id", "url"} & set(table.column_names)):
            raise UsageError(f"label.predictions: {self.path} needs columns label, probability and doc_id or url; "
                             f"found {', '.join(table.column_names) or 'none'}")
        labels = table.column("label").to_pylist()
        probs = table.column("probability").to_pylist()
        ids = table.column("doc_id").to_pylist() if "doc_id" in table.column_names else [None] * len(labels)
        urls = table.column("url").to_pylist() if "url" in table.column_names else [None] * len(labels)
        for doc_id, url, label, prob in zip(ids, urls, labels, probs):
            if label is None or prob is None:
                continue
            if doc_id:
                self.by_id[doc_id] = (label, float(prob))
            key = canonical_url(url)
            if key:
                self.by_url[key] = (label, float(prob))
        return self

    def vote(self, doc_id: str | None, url: str | None) -> tuple[str, float] | None:
        found = self.by_id.get(doc_id) if doc_id else None
        if found is None and url:
            found = self.by_url.get(canonical_url(url))
        return found


@functools.lru_cache(maxsize=2)
def _load_predictions(path: str, fingerprint: str) -> PredictionsLabeler:
    return PredictionsLabeler(path).load()


def load_predictions(path: str) -> PredictionsLabeler:
    """The predictions labeler, read once per process (per file version)."""
    return _load_predictions(path, file_fingerprint(path))
