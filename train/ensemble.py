"""An ensemble of feature-based classifiers: their (calibrated) probabilities averaged, with
weights chosen on the validation split or equal. Members make different mistakes (a linear
score over every word, a few hundred tree splits on selected words, the nearest neighbours
in an embedding space), so the average beats each one, at the cost of training them all.

The default is the linear model and XGBoost on the same TF-IDF rows. Members may also read
embeddings: with ``input="tfidf+emb"`` a row of ``X`` is the TF-IDF row followed by the doc's
embedding (its last ``emb_dim`` columns; ``stack_inputs`` builds it), and each member reads its
own part: the TF-IDF columns, the embedding, or both (one model over words, characters and the
embedding space, the embedding columns scaled by the member's ``emb_scale``; with a list of
scales, the one with the least validation loss is kept).

Saved as each member saves itself, its file names prefixed ``member<i>.``, plus
``ensemble.json`` (settings, weights and the members' embedding scales).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from contextlib import contextmanager
from typing import Any

import fsspec
import numpy as np
import scipy.sparse as sp

from pagecat.features.io import read_bytes
from pagecat.runs import write_bytes_atomic

from .models import KnnClassifier, LinearTextClassifier, XGBoostTextClassifier

MEMBER_KINDS = {"linear": LinearTextClassifier, "xgboost": XGBoostTextClassifier, "knn": KnnClassifier}
INPUTS = ("tfidf", "emb", "tfidf+emb")


def stack_inputs(tfidf: sp.csr_matrix, emb: np.ndarray) -> sp.csr_matrix:
    """The ``tfidf+emb`` input: (n_docs, width + dim) float32 CSR, TF-IDF columns then embedding."""
    return sp.hstack([tfidf, sp.csr_matrix(np.asarray(emb, np.float32))], format="csr", dtype=np.float32)


def simplex_grid(n: int, step: float) -> list[np.ndarray]:
    """Every weight vector of ``n`` non-negative multiples of ``step`` summing to 1."""
    units = round(1 / step)
    return [np.array(c, float) / units for c in itertools.product(range(units + 1), repeat=n) if sum(c) == units]


class EnsembleClassifier:
    """Weighted mean of member probabilities.

    ``members``: a list of ``{"kind": "linear" | "xgboost" | "knn", "input": "tfidf" | "emb" |
    "tfidf+emb", **settings}``; without it, the legacy pair ``linear`` + ``xgboost`` (settings
    dicts) on TF-IDF. A member on ``tfidf+emb`` (an ensemble on ``tfidf+emb`` only) may set
    ``emb_scale``: the factor on its embedding columns (TF-IDF rows and embeddings both have unit
    length), or a list of them, each fitted and the one whose member scores the least validation
    loss (its ``scores_``) kept. ``weights``: ``"equal"``, or ``"validation"`` for the weights (a
    grid of step ``weight_step``) with the least validation log-loss, each member's validation
    probabilities coming from its fit-split model (never from a model that saw the validation docs).
    """

    kind = "ensemble"

    def __init__(self, linear: dict[str, Any] | None = None, xgboost: dict[str, Any] | None = None,
                 input: str = "tfidf", members: list[dict[str, Any]] | None = None, weights: str = "equal",
                 weight_step: float = 0.1, emb_dim: int = 384):
        if input not in INPUTS:
            raise ValueError(f"ensemble input {input!r} is not one of {', '.join(INPUTS)}")
        if weights not in ("equal", "validation"):
            raise ValueError(f"ensemble weights {weights!r} is not one of equal, validation")
        self.linear = dict(linear or {})
        self.xgboost = dict(xgboost or {})
        self.input = input
        self.members = [dict(m) for m in members] if members else None
        self.weights = weights
        self.weight_step = weight_step
        self.emb_dim = emb_dim
        for m in self.member_specs():
            if m.get("kind") not in MEMBER_KINDS:
                raise ValueError(f"ensemble member kind {m.get('kind')!r} is not one of {', '.join(MEMBER_KINDS)}")
            if m["input"] not in INPUTS or (input != "tfidf+emb" and m["input"] != input):
                raise ValueError(f"ensemble member {m['kind']} reads {m['input']!r}, which an ensemble on "
                                 f"{input!r} does not give")
            if "emb_scale" in m and (m["input"] != "tfidf+emb" or not self._scales(m)
                                     or min(self._scales(m)) <= 0):
                raise ValueError(f"ensemble member {m['kind']}: emb_scale (a positive number or a list of them) "
                                 "is for a member that reads tfidf+emb")

    def get_params(self) -> dict[str, Any]:
        return {"linear": self.linear, "xgboost": self.xgboost, "input": self.input, "members": self.members,
                "weights": self.weights, "weight_step": self.weight_step, "emb_dim": self.emb_dim}

    def member_specs(self) -> list[dict[str, Any]]:
        if self.members:
            return [{"input": "tfidf", **m} for m in self.members]
        return [{"kind": "linear", **self.linear, "input": self.input},
                {"kind": "xgboost", **self.xgboost, "input": self.input}]

    @staticmethod
    def _build(spec: dict[str, Any]):
        return MEMBER_KINDS[spec["kind"]](**{k: v for k, v in spec.items() if k not in ("kind", "emb_scale")})

    @staticmethod
    def _scales(spec: dict[str, Any]) -> list[float | None]:
        """The embedding scales a member is tried with: [None] for a member on one input."""
        if spec["input"] != "tfidf+emb":
            return [None]
        scale = spec.get("emb_scale", 1.0)
        return [float(x) for x in scale] if isinstance(scale, list | tuple) else [float(scale)]

    def part(self, X, member_input: str, emb_scale: float | None = None):
        """The columns of ``X`` a member reads (for ``tfidf+emb``, all of them, the embedding
        columns times ``emb_scale``)."""
        if self.input != "tfidf+emb":
            return X
        if X.shape[1] <= self.emb_dim:
            raise ValueError(f"an ensemble on tfidf+emb needs TF-IDF columns then {self.emb_dim} embedding "
                             f"columns; got {X.shape[1]} columns")
        if member_input == "emb":
            part = X[:, -self.emb_dim:]
            return part.toarray() if sp.issparse(part) else np.asarray(part)
        if member_input == "tfidf+emb":
            scale = np.ones(X.shape[1], np.float32)
            scale[-self.emb_dim:] = 1.0 if emb_scale is None else emb_scale
            return sp.csr_matrix(X) @ sp.diags(scale, format="csr")
        return X[:, : X.shape[1] - self.emb_dim]

    def member_part(self, X, i: int):
        """The input of fitted member ``i``: its columns of ``X``, at its chosen embedding scale."""
        return self.part(X, self.member_specs()[i]["input"], self.emb_scales_[i])

    def fit(self, X, y: np.ndarray, X_val=None, y_val: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None, sample_weight_val: np.ndarray | None = None
            ) -> EnsembleClassifier:
        specs = self.member_specs()
        self.members_, self.emb_scales_ = [], []
        has_val = X_val is not None and X_val.shape[0] > 0
        val_probas = []
        self.member_seconds_ = []
        for spec in specs:
            t0 = time.perf_counter()
            tried = []  # (validation loss, member, scale, its validation input) for each scale
            for scale in self._scales(spec):
                m = self._build(spec)
                X_m = self.part(X, spec["input"], scale)
                X_val_m = self.part(X_val, spec["input"], scale) if has_val else None
                m.fit(X_m, y, X_val_m, y_val, sample_weight=sample_weight, sample_weight_val=sample_weight_val)
                scores = getattr(m, "scores_", None)
                tried.append((min(scores.values()) if has_val and scores else np.inf, m, scale, X_val_m))
            _, m, scale, X_val_m = min(tried, key=lambda t: t[0])  # first of equals: the first scale listed
            self.members_.append(m)
            self.emb_scales_.append(scale)
            self.member_seconds_.append(time.perf_counter() - t0)
            if has_val and self.weights == "validation":
                # refitted members (linear, kNN) kept their fit-split validation probabilities;
                # XGBoost only ever trained on the fit split
                p = getattr(m, "validation_proba_", None)
                val_probas.append(p if p is not None else m.predict_proba(X_val_m))
        self.classes_ = self.members_[0].classes_
        if not all(np.array_equal(m.classes_, self.classes_) for m in self.members_):
            raise ValueError("ensemble members learned different classes")
        self.weights_ = np.full(len(self.members_), 1 / len(self.members_))
        self.scores_: dict[str, float] = {}
        if val_probas:
            rows = np.searchsorted(self.classes_, y_val)
            best = np.inf
            for w in simplex_grid(len(val_probas), self.weight_step):
                p = sum(wi * pi for wi, pi in zip(w, val_probas, strict=True))
                loss = float(-np.mean(np.log(np.clip(p[np.arange(len(rows)), rows], 1e-12, None))))
                self.scores_[",".join(f"{wi:.2f}" for wi in w)] = loss
                if loss < best - 1e-9:
                    best, self.weights_ = loss, w
        return self

    def predict_proba(self, X) -> np.ndarray:
        p = sum(w * m.predict_proba(self.member_part(X, i))
                for i, (w, m) in enumerate(zip(self.weights_, self.members_, strict=True)) if w > 0)
        return np.asarray(p, dtype=np.float32)

    def save(self, fs, folder: str) -> list[str]:
        files = []
        for i, m in enumerate(self.members_):
            with _scratch() as (mem, tmp):
                for f in m.save(mem, tmp):  # the member's own files, renamed member<i>.<file>
                    write_bytes_atomic(fs, f"{folder}/member{i}.{f}", mem.cat_file(f"{tmp}/{f}"))
                    files.append(f"member{i}.{f}")
        write_bytes_atomic(fs, f"{folder}/ensemble.json", json.dumps(
            {"params": self.get_params(), "weights": self.weights_.tolist(), "emb_scales": self.emb_scales_},
            indent=2).encode())
        return [*files, "ensemble.json"]

    @classmethod
    def load(cls, fs, folder: str) -> EnsembleClassifier:
        meta = json.loads(read_bytes(fs, f"{folder}/ensemble.json"))
        model = cls(**meta["params"])
        model.members_ = []
        paths = fs.ls(folder, detail=False)
        for i, spec in enumerate(model.member_specs()):
            prefix = f"member{i}."
            with _scratch() as (mem, tmp):
                for path in paths:
                    name = path.rsplit("/", 1)[-1]
                    if name.startswith(prefix):
                        mem.pipe_file(f"{tmp}/{name[len(prefix):]}", read_bytes(fs, path))
                model.members_.append(MEMBER_KINDS[spec["kind"]].load(mem, tmp))
        model.weights_ = np.array(meta["weights"], float)
        model.emb_scales_ = meta.get("emb_scales") or [None] * len(model.members_)
        model.classes_ = model.members_[0].classes_
        return model


@contextmanager
def _scratch():
    """A private in-memory folder: members save and load there under their own file names (the
    model store keeps one flat folder a model, so the ensemble prefixes each member's names)."""
    mem = fsspec.filesystem("memory")
    tmp = f"/pagecat-ensemble-{uuid.uuid4().hex}"
    mem.makedirs(tmp, exist_ok=True)
    try:
        yield mem, tmp
    finally:
        mem.rm(tmp, recursive=True)
