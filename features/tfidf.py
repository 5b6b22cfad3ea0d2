"""Hashed TF-IDF features, with the IDF fitted across the cluster.

Distributed design (two passes, nothing gathered but one vector per part; the stage that
runs them is ``stage.FeaturesStage``):

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
Optional: the URL's words as ``url_<word>`` tokens, and character n-grams within words in a
second hashed space of ``n_features`` columns after the words' (``width`` = 2 * n_features).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import safetensors.numpy
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from pagecat.config import TfidfSettings
from pagecat.errors import UsageError
from pagecat.runs import RunDir, write_bytes_atomic

from .io import (
    load_arrays,
    read_bytes,
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


def url_words(url: str | None) -> str:
    """The words of a URL as ``url_<word>`` tokens: ``http://cs.x.edu/~jo/cs302/`` ->
    ``url_cs url_x url_edu url_jo url_cs302``. Kept apart from the text's own words, because
    ``course`` in a path says more than ``course`` in a sentence."""
    words = re.findall(r"[a-z0-9]+", (url or "").lower().split("://", 1)[-1])
    return " ".join(f"url_{w}" for w in words if len(w) > 1 and w not in ("www", "http", "https", "html", "htm"))


class TfidfModel:
    """Hashed word n-gram TF-IDF: smoothed IDF, optional sublinear tf, L2-normalised rows.

    ``idf_`` (n_features,) float32 is set by ``fit`` / ``fit_df``; a column whose document
    frequency is below ``min_df`` gets weight 0, so it never appears in a transformed row.
    """

    def __init__(self, n_features: int = 2**18, ngram_max: int = 2, min_df: int = 2,
                 sublinear_tf: bool = True, url_tokens: bool = False, char_ngrams: tuple[int, ...] = ()):
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.url_tokens = url_tokens
        self.char_ngrams = tuple(char_ngrams)

    @classmethod
    def from_settings(cls, s: TfidfSettings) -> TfidfModel:
        return cls(n_features=s.n_features, ngram_max=s.ngram_max, min_df=s.min_df,
                   sublinear_tf=s.sublinear_tf, url_tokens=s.url_tokens, char_ngrams=tuple(s.char_ngrams))

    @property
    def width(self) -> int:
        """Columns of a transformed row: the word space, then the char n-gram space if any."""
        return self.n_features * (2 if self.char_ngrams else 1)

    def compose(self, title: str | None, text: str | None, url: str | None = None) -> str:
        """The string vectorised for one doc: title and text, and the URL's words when asked."""
        base = doc_text(title, text)
        return f"{url_words(url)}\n{base}" if self.url_tokens else base

    def vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(n_features=self.n_features, ngram_range=(1, self.ngram_max),
                                 alternate_sign=False, norm=None, lowercase=True,
                                 token_pattern=TOKEN_PATTERN, dtype=np.float32)

    def char_vectorizer(self) -> HashingVectorizer:
        lo, hi = self.char_ngrams
        return HashingVectorizer(n_features=self.n_features, analyzer="char_wb", ngram_range=(lo, hi),
                                 alternate_sign=False, norm=None, lowercase=True, dtype=np.float32)

    def count(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Raw hashed term counts, (n_docs, width) float32 CSR with sorted indices."""
        texts = list(texts)
        counts = self.vectorizer().transform(texts)
        if self.char_ngrams:
            counts = sp.hstack([counts, self.char_vectorizer().transform(texts)], format="csr")
        counts = counts.tocsr()
        counts.sort_indices()
        return counts

    def document_frequency(self, counts: sp.csr_matrix) -> np.ndarray:
        """Docs per column, (width,) int64: a CSR row holds each column at most once."""
        return np.bincount(counts.indices, minlength=self.width).astype(np.int64)

    def fit_df(self, df: np.ndarray, n_docs: int) -> TfidfModel:
        """Fit from summed document frequencies: idf = ln((1 + n) / (1 + df)) + 1."""
        df = np.asarray(df, dtype=np.float64)
        if df.shape != (self.width,):
            raise ValueError(f"df has shape {df.shape}, expected ({self.width},)")
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
                "url_tokens": self.url_tokens, "char_ngrams": list(self.char_ngrams),
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
                    sublinear_tf=s["sublinear_tf"], url_tokens=s.get("url_tokens", False),
                    char_ngrams=tuple(s.get("char_ngrams", ())))
        model.idf_ = load_arrays(data)["idf"]
        model.n_docs_ = s["n_docs"]
        model._idf_sha = s["idf_sha256"]
        return model


# -- reading the features back ----------------------------------------------------------------
def load_fitted(run: RunDir) -> TfidfModel:
    """The TfidfModel the features stage fitted for this run."""
    return TfidfModel.load(run.fs, run.path(MODEL_DIR))


def read_tfidf_part(run: RunDir, part_id: str, n_features: int) -> tuple[list[str], sp.csr_matrix]:
    """One features part: (doc ids, (n_docs, n_features) float32 CSR), rows in docs-part order;
    ``n_features`` is the fitted model's ``width``."""
    return table_to_csr(run.read_part(run.path(TFIDF_DIR, f"{part_id}.parquet")), n_features)


def read_tfidf(run: RunDir) -> tuple[list[str], sp.csr_matrix]:
    """Every features part stacked (small runs, tests, notebooks): (doc ids, CSR)."""
    n_features = load_fitted(run).width
    ids: list[str] = []
    mats = []
    for path in run.list_files(TFIDF_DIR, suffix=".parquet"):
        part_ids, m = table_to_csr(run.read_part(path), n_features)
        ids += part_ids
        mats.append(m)
    if not mats:
        return ids, sp.csr_matrix((0, n_features), dtype=np.float32)
    return ids, sp.vstack(mats, format="csr")
