"""Transformer embeddings of every doc, part by part, on GPU workers when the cluster has any.

``features/emb/<part>.parquet`` (schema ``emb_schema(dim)``: doc_id + a fixed-size float32
vector) holds one row per doc of the docs part of the same id, in its row order;
``features/emb_model/settings.json`` says what made them (model and its fingerprint, max
length, fields, width). Parquet rather than a safetensors blob per part: the rows carry their
doc ids, and readers (train, predict, notebooks) use the same part reader as every dataset.

Fields: with ``features.embeddings.fields`` empty a doc is one text (title + text), except site
docs (a ``fields`` JSON column), whose name, domain words, page titles and page texts are
encoded apart; with fields named, each (a docs column or a key of ``fields``) is encoded apart.
A doc's vector is its fields' unit vectors joined, so no field drowns the others.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np
import pyarrow as pa

from pagecat.config import Config, EmbeddingSettings
from pagecat.errors import UsageError
from pagecat.runs import RunDir
from pagecat.schemas import emb_schema

from .embed import TextEncoder, cached_encoder
from .io import parquet_columns
from .tfidf import doc_text

EMB_DIR = "features/emb"
EMB_MODEL_DIR = "features/emb_model"
# Models that read embeddings: naming one in train.models switches the embeddings step on.
EMBEDDING_MODELS = ("xgboost_emb", "linear_emb")
# Site docs (``label.unit: site``) keep these apart in their ``fields`` JSON column.
SITE_FIELDS = ("name", "domain_words", "titles", "texts")


def embeddings_wanted(cfg: Config) -> bool:
    return cfg.features.embeddings.enabled or any(m in EMBEDDING_MODELS for m in cfg.train.models)


def site_fields_present(run: RunDir, path: str) -> bool:
    """Whether a docs part holds site docs: a ``fields`` JSON column with values."""
    if "fields" not in parquet_columns(run, path):
        return False
    column = run.read_part(path, columns=["fields"]).column("fields")
    return column.null_count < len(column)


def resolve_fields(s: EmbeddingSettings, run: RunDir, first_part: str) -> list[str]:
    """The fields encoded apart: ``features.embeddings.fields``; else, for site docs, the site's
    name, domain words, page titles and page texts; else [] (one text: title + text)."""
    if s.fields:
        return list(s.fields)
    return list(SITE_FIELDS) if site_fields_present(run, first_part) else []


def check_fields(fields: list[str], columns: list[str]) -> None:
    """UsageError unless every field is a docs column or a key of the site docs' ``fields``."""
    for f in fields:
        if f not in columns and not ("fields" in columns and f in SITE_FIELDS + ("tld",)):
            raise UsageError(f"config field features.embeddings.fields: docs have no column {f!r}; docs columns "
                             f"are {', '.join(columns)} (site docs also give {', '.join(SITE_FIELDS)})")


def doc_columns(fields: list[str], columns: list[str]) -> list[str]:
    """The docs columns to read for ``fields``."""
    if not fields:
        return ["title", "text"]
    wanted = [f for f in fields if f in columns and f != "fields"]
    if any(f not in columns for f in fields):
        wanted.append("fields")
    return wanted


def field_texts(docs: pa.Table, fields: list[str]) -> list[list[str]]:
    """Per field, the texts to encode: ``[[title+text of each doc]]`` or one list per field. A
    field is a docs column, else a key of the ``fields`` JSON (lists joined by new lines)."""
    if not fields:
        titles, texts = docs.column("title").to_pylist(), docs.column("text").to_pylist()
        return [[doc_text(t, x) for t, x in zip(titles, texts)]]
    parsed = None
    out = []
    for f in fields:
        if f in docs.column_names and f != "fields":
            out.append([str(v or "") for v in docs.column(f).to_pylist()])
            continue
        if parsed is None:
            if "fields" not in docs.column_names:
                raise UsageError(f"config field features.embeddings.fields: docs have no column {f!r}")
            parsed = [json.loads(v) if v else {} for v in docs.column("fields").to_pylist()]
        values = [p.get(f, "") for p in parsed]
        out.append(["\n".join(map(str, v)) if isinstance(v, list) else str(v or "") for v in values])
    return out


def settings_encoder(s: EmbeddingSettings) -> TextEncoder:
    """This worker's encoder for ``s`` (loaded once per process: ``cached_encoder``)."""
    return cached_encoder(s.model_path, s.max_length, s.batch_size, s.precision)


def encode_docs(docs: pa.Table, s: EmbeddingSettings, fields: list[str]) -> np.ndarray:
    """(n_docs, n_fields * dim) float32: each field's unit vectors, joined in field order."""
    enc = settings_encoder(s)
    blocks = [enc.encode(texts) for texts in field_texts(docs, fields)]
    return np.hstack(blocks)


def embedding_settings(s: EmbeddingSettings, fields: list[str]) -> dict[str, Any]:
    """What the stored vectors depend on: a model trained on them must see the very same."""
    enc = settings_encoder(s)
    base = enc.settings()
    names = list(fields) or ["title+text"]
    return {**base, "fields": names, "width": base["dim"] * len(names)}


def to_table(doc_ids: list[str], X: np.ndarray) -> pa.Table:
    flat = pa.array(np.ascontiguousarray(X, dtype=np.float32).ravel(), pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, X.shape[1])
    return pa.Table.from_arrays([pa.array(doc_ids, pa.string()), vectors], schema=emb_schema(X.shape[1]))


def from_table(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """An embeddings part back to (doc ids, (n_docs, width) float32)."""
    col = table.column("embedding").combine_chunks()
    width = col.type.list_size
    values = np.asarray(col.flatten(), dtype=np.float32)  # a sliced array flattens to its own rows
    return table.column("doc_id").to_pylist(), values.reshape(len(col), width)


def embed_part(part_id: str, docs_path: str, s: EmbeddingSettings, fields: list[str], run: RunDir) -> dict[str, Any]:
    """One docs part -> ``features/emb/<part>.parquet`` on a worker; where and how it ran.

    A part already written (a resumed stage) is kept: parts are written atomically and the
    folder is cleared whenever the settings change.
    """
    out = run.path(EMB_DIR, f"{part_id}.parquet")
    where = _worker_name()
    if run.fs.exists(out):
        return {"part": part_id, "rows": run.read_part(out, columns=["doc_id"]).num_rows, "worker": where,
                "device": "", "seconds": 0.0, "resumed": True}
    import time

    t0 = time.perf_counter()
    docs = run.read_part(docs_path, columns=["doc_id", *doc_columns(fields, parquet_columns(run, docs_path))])
    X = encode_docs(docs, s, fields)
    run.write_table(out, to_table(docs.column("doc_id").to_pylist(), X))
    enc = settings_encoder(s)
    return {"part": part_id, "rows": docs.num_rows, "worker": where, "device": enc.device_,
            "seconds": round(time.perf_counter() - t0, 3), "resumed": False}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # called outside a worker (tests, notebooks)
        return socket.gethostname()


def gpu_resources(client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when some worker of the cluster declares a GPU resource, else None."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    has_gpu = any(float((w.get("resources") or {}).get("GPU", 0)) >= 1 for w in workers)
    return {"GPU": 1} if has_gpu else None


def read_emb_part(run: RunDir, part_id: str) -> tuple[list[str], np.ndarray]:
    path = run.path(EMB_DIR, f"{part_id}.parquet")
    if not run.fs.exists(path):
        raise UsageError(f"no embeddings part {run.url(EMB_DIR, part_id + '.parquet')}; embeddings are off "
                         "or stale: set features.embeddings.enabled: true and run `pagecat features --force`")
    return from_table(run.read_part(path))


def load_emb_settings(run: RunDir) -> dict[str, Any]:
    path = run.path(EMB_MODEL_DIR, "settings.json")
    if not run.fs.exists(path):
        raise UsageError("the features stage computed no embeddings in this run; set "
                         "features.embeddings.enabled: true and run `pagecat features --force`")
    return run.read_json(path)
