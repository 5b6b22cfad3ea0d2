"""Hashed TF-IDF features, with the IDF fitted across the cluster.

Distributed design (two passes, nothing gathered but one vector per part):

1. ``run_part`` (one Part per docs part, on the workers) hashes each doc's words and word
   n-grams into ``n_features`` columns and writes the raw term counts to
   ``features/_counts/<part>.parquet`` and the part's document frequencies (+ its doc count)
   to ``features/_df/<part>.safetensors``.
2. ``finish`` sums the DF vectors on the cluster (a pairwise tree of ``client.submit``), fits
   the smoothed IDF in the client (a vector of ``n_features`` floats), saves the fitted
   ``TfidfModel`` to ``features/tfidf_model/``, then maps "counts -> sublinear tf * idf -> L2"
   over the parts on the workers, writing ``features/tfidf/<part>.parquet`` (schema TFIDF).
   The intermediate ``_counts``/``_df`` folders are removed once every part is weighted.

Hashing needs no vocabulary, so pass 1 is embarrassingly parallel and a doc never seen in
training (``predict``) gets the very same columns through ``TfidfModel.transform``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import safetensors.numpy
import scipy.sparse as sp
from distributed import Client
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from pagecat.config import Config, TfidfSettings
from pagecat.errors import UsageError
from pagecat.runs import Manifest, RunDir, write_bytes_atomic
from pagecat.stage import Part, Stage

from .io import (
    csr_to_table,
    docs_parts,
    docs_version,
    load_arrays,
    read_bytes,
    save_arrays,
    sha256_bytes,
    table_to_csr,
)

TFIDF_DIR = "features/tfidf"
MODEL_DIR = "features/tfidf_model"
COUNTS_DIR = "features/_counts"
DF_DIR = "features/_df"
# Words of two or more letters/digits (sklearn's default): keeps course numbers like "cs302".
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
MODEL_FORMAT = 1


def doc_text(title: str | None, text: str | None) -> str:
    """What gets vectorised for a doc: its title, a newline, its text (None counts as empty)."""
    return f"{title or ''}\n{text or ''}"


class TfidfModel:
    """Hashed word n-gram TF-IDF: smoothed IDF, optional sublinear tf, L2-normalised rows.

    ``idf_`` (n_features,) float32 is set by ``fit`` / ``fit_df``; a column whose document
    frequency is below ``min_df`` gets weight 0, so it never appears in a transformed row.
    """

    def __init__(self, n_features: int = 2**18, ngram_max: int = 2, min_df: int = 2,
                 sublinear_tf: bool = True):
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    @classmethod
    def from_settings(cls, s: TfidfSettings) -> TfidfModel:
        return cls(n_features=s.n_features, ngram_max=s.ngram_max, min_df=s.min_df,
                   sublinear_tf=s.sublinear_tf)

    def vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(n_features=self.n_features, ngram_range=(1, self.ngram_max),
                                 alternate_sign=False, norm=None, lowercase=True,
                                 token_pattern=TOKEN_PATTERN, dtype=np.float32)

    def count(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Raw hashed term counts, (n_docs, n_features) float32 CSR with sorted indices."""
        counts = self.vectorizer().transform(list(texts)).tocsr()
        counts.sort_indices()
        return counts

    def document_frequency(self, counts: sp.csr_matrix) -> np.ndarray:
        """Docs per column, (n_features,) int64: a CSR row holds each column at most once."""
        return np.bincount(counts.indices, minlength=self.n_features).astype(np.int64)

    def fit_df(self, df: np.ndarray, n_docs: int) -> TfidfModel:
        """Fit from summed document frequencies: idf = ln((1 + n) / (1 + df)) + 1."""
        df = np.asarray(df, dtype=np.float64)
        if df.shape != (self.n_features,):
            raise ValueError(f"df has shape {df.shape}, expected ({self.n_features},)")
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        idf[df < self.min_df] = 0.0
        self.idf_ = idf.astype(np.float32)
        self.n_docs_ = int(n_docs)
        self._idf_sha = sha256_bytes(self._idf_bytes())
        return self

    def fit(self, texts: Iterable[str]) -> TfidfModel:
        counts = self.count(texts)
        return self.fit_df(self.document_frequency(counts), counts.shape[0])

    def weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Raw counts -> (sublinear) tf * idf -> L2 rows, (n_docs, n_features) float32 CSR."""
        x = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        if self.sublinear_tf:
            np.log(x.data, out=x.data)
            x.data += 1.0
        x.data *= self.idf_[x.indices]
        x.eliminate_zeros()
        return normalize(x, norm="l2", copy=False)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        return self.weight(self.count(texts))

    def fit_transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        counts = self.count(texts)
        return self.fit_df(self.document_frequency(counts), counts.shape[0]).weight(counts)

    # -- persistence: settings JSON + idf safetensors, never pickle ---------------------------
    def settings(self) -> dict[str, Any]:
        """What a model trained on these features must match (the model card records it)."""
        return {"format": MODEL_FORMAT, "n_features": self.n_features, "ngram_max": self.ngram_max,
                "min_df": self.min_df, "sublinear_tf": self.sublinear_tf, "lowercase": True,
                "token_pattern": TOKEN_PATTERN, "n_docs": self.n_docs_, "idf_sha256": self._idf_sha}

    def _idf_bytes(self) -> bytes:
        return safetensors.numpy.save({"idf": self.idf_})

    def save(self, fs, folder: str) -> None:
        write_bytes_atomic(fs, f"{folder}/idf.safetensors", self._idf_bytes())
        write_bytes_atomic(fs, f"{folder}/settings.json", json.dumps(self.settings(), indent=2).encode())

    @classmethod
    def load(cls, fs, folder: str) -> TfidfModel:
        s = json.loads(read_bytes(fs, f"{folder}/settings.json"))
        data = read_bytes(fs, f"{folder}/idf.safetensors")
        if sha256_bytes(data) != s["idf_sha256"]:
            raise UsageError(f"{folder}/idf.safetensors does not match its settings.json (changed or "
                             "corrupt); re-run `pagecat features --force`")
        if s.get("format") != MODEL_FORMAT or s.get("token_pattern") != TOKEN_PATTERN:
            raise UsageError(f"{folder}/settings.json was written by another pagecat version (format "
                             f"{s.get('format')}); re-run `pagecat features --force`")
        model = cls(n_features=s["n_features"], ngram_max=s["ngram_max"], min_df=s["min_df"],
                    sublinear_tf=s["sublinear_tf"])
        model.idf_ = load_arrays(data)["idf"]
        model.n_docs_ = s["n_docs"]
        model._idf_sha = s["idf_sha256"]
        return model


# -- reading the features back ----------------------------------------------------------------
def load_fitted(run: RunDir) -> TfidfModel:
    """The TfidfModel the features stage fitted for this run."""
    return TfidfModel.load(run.fs, run.path(MODEL_DIR))


def read_tfidf_part(run: RunDir, part_id: str, n_features: int) -> tuple[list[str], sp.csr_matrix]:
    """One features part: (doc ids, (n_docs, n_features) float32 CSR), rows in docs-part order."""
    return table_to_csr(run.read_part(run.path(TFIDF_DIR, f"{part_id}.parquet")), n_features)


def read_tfidf(run: RunDir) -> tuple[list[str], sp.csr_matrix]:
    """Every features part stacked (small runs, tests, notebooks): (doc ids, CSR)."""
    n_features = load_fitted(run).n_features
    ids: list[str] = []
    mats = []
    for path in run.list_files(TFIDF_DIR, suffix=".parquet"):
        part_ids, m = table_to_csr(run.read_part(path), n_features)
        ids += part_ids
        mats.append(m)
    if not mats:
        return ids, sp.csr_matrix((0, n_features), dtype=np.float32)
    return ids, sp.vstack(mats, format="csr")


# -- the stage ------------------------------------------------------------------------------
def _read_df(path: str, run: RunDir) -> tuple[np.ndarray, int]:
    arrays = load_arrays(read_bytes(run.fs, path))
    return arrays["df"], int(arrays["n_docs"][0])


def _add_df(a: tuple[np.ndarray, int], b: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    return a[0] + b[0], a[1] + b[1]


def _weight_part(part_id: str, model: TfidfModel, run: RunDir) -> int:
    """Counts part -> TF-IDF part on a worker; returns its rows. Already done parts are kept."""
    counts_path = run.path(COUNTS_DIR, f"{part_id}.parquet")
    out_path = run.path(TFIDF_DIR, f"{part_id}.parquet")
    if not run.fs.exists(counts_path):  # weighted before an interruption: its counts are gone
        return run.read_part(out_path, columns=["doc_id"]).num_rows
    doc_ids, counts = table_to_csr(run.read_part(counts_path), model.n_features)
    run.write_table(out_path, csr_to_table(doc_ids, model.weight(counts)))
    run.fs.rm(counts_path)
    return len(doc_ids)


class TfidfStage(Stage):
    """docs/<version>/ -> features/tfidf/ (one part per docs part) + features/tfidf_model/."""

    name = "features"
    sections = ("features",)
    upstream = ("label",)
    # Its own folders only: other feature stages (embeddings) write beside them under features/.
    outputs = (TFIDF_DIR, MODEL_DIR, COUNTS_DIR, DF_DIR)
    unit = "docs"

    def check(self, cfg: Config, run: RunDir) -> None:
        s = cfg.features.tfidf
        for key, low in (("n_features", 2), ("ngram_max", 1), ("min_df", 1)):
            if getattr(s, key) < low:
                raise UsageError(f"config field features.tfidf.{key}: must be at least {low}, "
                                 f"got {getattr(s, key)}")

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        parts = docs_parts(run)
        if not parts:
            raise UsageError(f"no docs parts in {run.url('docs', docs_version(run))}; re-run `pagecat label`")
        return [Part(id=pid, inputs=[path]) for pid, path in parts.items()]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        docs = run.read_part(part.inputs[0], columns=["doc_id", "title", "text"])
        model = TfidfModel.from_settings(cfg.features.tfidf)
        titles, texts = docs.column("title").to_pylist(), docs.column("text").to_pylist()
        counts = model.count(doc_text(t, x) for t, x in zip(titles, texts))
        doc_ids = docs.column("doc_id").to_pylist()
        run.write_table(run.path(COUNTS_DIR, f"{part.id}.parquet"), csr_to_table(doc_ids, counts))
        save_arrays(run.fs, run.path(DF_DIR, f"{part.id}.safetensors"),
                    {"df": model.document_frequency(counts), "n_docs": np.array([len(doc_ids)], np.int64)})
        return {"in": len(doc_ids), "out": len(doc_ids), "rejected": 0, "dropped": 0}

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        part_ids = sorted(manifest.parts)
        df_paths = [run.path(DF_DIR, f"{pid}.safetensors") for pid in part_ids]
        if all(run.fs.exists(p) for p in df_paths):
            level = client.map(_read_df, df_paths, run=run, pure=False)
            while len(level) > 1:  # pairwise tree sum: no one task holds more than two vectors
                pairs = [client.submit(_add_df, level[i], level[i + 1], pure=False)
                         for i in range(0, len(level) - 1, 2)]
                level = pairs + level[len(pairs) * 2:]
            df, n_docs = level[0].result()
            model = TfidfModel.from_settings(cfg.features.tfidf).fit_df(df, n_docs)
            model.save(run.fs, run.path(MODEL_DIR))
            run.remove(DF_DIR)
        else:  # resumed after the model was saved and the DF vectors removed
            model = load_fitted(run)
        [model_future] = client.scatter([model], broadcast=True)
        rows = client.gather(client.map(_weight_part, part_ids, model=model_future, run=run, pure=False))
        run.remove(COUNTS_DIR)
        return {"docs_version": docs_version(run), "n_docs": model.n_docs_, "rows": int(sum(rows)),
                "active_features": int(np.count_nonzero(model.idf_)), "model_dir": MODEL_DIR,
                "settings": model.settings()}
