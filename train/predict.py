"""The predict stage: a trained model applied to the untagged docs, one Part per docs part.

Each part reads its docs part (untagged rows only) and the model's input for them (the very
TF-IDF rows or embeddings the features stage wrote, or the docs' text for the models that read
it), loads the model from the store (hashes and features settings verified) and writes
``predictions/<part>.parquet``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc
from distributed import Client

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.features.embeddings import doc_columns, field_texts, read_emb_part
from pagecat.features.io import docs_parts, parquet_columns
from pagecat.features.tfidf import load_fitted, read_tfidf_part
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import PREDICTIONS, REJECTS, table
from pagecat.stage import Part, Stage

from .data import feature_settings, text_fields
from .registry import MODEL_INPUT
from .store import load_model, read_comparison

TOP_K = 3


def resolve_model(cfg: Config, run: RunDir) -> str:
    """The model ``predict.model`` names: a trained model's name, or the best by macro-F1."""
    if Manifest.load(run, "train").status != "complete":
        raise UsageError("stage predict needs stage train first; run `pagecat train` (or `pagecat run`)")
    comparison = read_comparison(run)
    trained = [m["name"] for m in comparison["models"]]
    name = comparison["best"] if cfg.predict.model == "best" else cfg.predict.model
    if name not in trained:
        raise UsageError(f"config field predict.model: {name!r} is not a trained model; "
                         f"choose best or one of: {', '.join(trained)}")
    return name


def top_k(proba: np.ndarray, classes: list[str], k: int = TOP_K) -> tuple[list[list[str]], np.ndarray]:
    """The ``k`` most probable labels of each row and their probabilities (n_docs, k), best first."""
    k = min(k, proba.shape[1])
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    names = np.asarray(classes, dtype=object)[order]
    return names.tolist(), np.take_along_axis(proba, order, axis=1).astype(np.float32)


class PredictStage(Stage):
    """docs/<version>/ (untagged) + features/tfidf/ + models/<name>/ -> predictions/."""

    name = "predict"
    sections = ("predict",)
    upstream = ("train",)
    outputs = ("predictions",)
    unit = "docs"

    def check(self, cfg: Config, run: RunDir) -> None:
        # Refuse a changed model file or stale features before any work is sent out.
        name = resolve_model(cfg, run)
        load_model(run, name, features=feature_settings(run, MODEL_INPUT[name], cfg))

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        name = resolve_model(cfg, run)
        return [Part(id=pid, inputs=[path], args={"model": name}) for pid, path in docs_parts(run).items()]

    @staticmethod
    def model_input(run: RunDir, part: Part, cfg: Config, docs, input_name: str) -> tuple[list[str], object]:
        """(doc ids that have an input row, the rows) for the docs of one part."""
        if input_name == "text":
            per_field = field_texts(docs, text_fields(run, cfg))
            return docs.column("doc_id").to_pylist(), [list(t) for t in zip(*per_field)]
        if input_name == "emb":
            return read_emb_part(run, part.id)
        return read_tfidf_part(run, part.id, load_fitted(run).width)

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        name = part.args["model"]
        input_name = MODEL_INPUT[name]
        columns = ["doc_id", "url", "label"]
        if input_name == "text":
            names = parquet_columns(run, part.inputs[0])
            columns += [c for c in doc_columns(text_fields(run, cfg), names) if c not in columns]
        docs = run.read_part(part.inputs[0], columns=columns)
        docs = docs.filter(pc.is_null(docs.column("label")))
        doc_ids = docs.column("doc_id").to_pylist()
        rows, rejects = [], []
        if doc_ids:
            stored = load_model(run, name, features=feature_settings(run, input_name, cfg))
            feature_ids, X = PredictStage.model_input(run, part, cfg, docs, input_name)
            where = {d: i for i, d in enumerate(feature_ids)}
            keep = [i for i, d in enumerate(doc_ids) if d in where]
            rejects = [{"source": part.inputs[0], "stage": "predict", "reason": f"no {input_name} row",
                        "record": d} for d in doc_ids if d not in where]
            picked = [where[doc_ids[i]] for i in keep]
            proba = stored.model.predict_proba([X[j] for j in picked] if isinstance(X, list) else X[picked])
            labels, probs = top_k(proba, stored.classes)
            urls = docs.column("url").to_pylist()
            rows = [{"doc_id": doc_ids[i], "url": urls[i], "label": labels[j][0],
                     "probability": float(probs[j, 0]), "top_labels": labels[j],
                     "top_probabilities": probs[j].tolist(), "model": stored.name}
                    for j, i in enumerate(keep)]
        run.write_table(run.path("predictions", f"{part.id}.parquet"), table(rows, PREDICTIONS))
        if rejects:
            run.write_table(run.path("rejects", "predict", f"{part.id}.parquet"), table(rejects, REJECTS))
        return {"in": len(doc_ids), "out": len(rows), "rejected": len(rejects), "dropped": 0}

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        predicted: Counter[str] = Counter()
        for path in run.list_files("predictions", suffix=".parquet"):
            for item in pc.value_counts(run.read_part(path, columns=["label"]).column("label")).to_pylist():
                predicted[item["values"]] += item["counts"]
        return {"model": resolve_model(cfg, run), "predicted": dict(predicted.most_common())}

