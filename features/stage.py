"""The features stage: hashed TF-IDF of every doc, and transformer embeddings when asked for.

Steps (TF-IDF design in ``tfidf.py``, embeddings in ``embeddings.py``):

1. ``run_part`` (one Part per docs part, any worker): hashed term counts and the part's
   document frequencies.
2. ``finish``: the DF vectors summed on the cluster, the IDF fitted and saved, the counts
   weighted into ``features/tfidf/<part>``; then, when embeddings are wanted
   (``features.embeddings.enabled`` or a model on embeddings in ``train.models``), one task
   per docs part writing ``features/emb/<part>``, sent with ``resources={"GPU": 1}`` when a
   worker declares that resource (half precision there), to any worker otherwise.

Every folder has its own name in ``outputs``, so a fresh start clears all of them and neither
step wipes the other's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from distributed import Client

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage

from .embeddings import (
    EMB_DIR,
    EMB_MODEL_DIR,
    check_fields,
    embed_part,
    embedding_settings,
    embeddings_wanted,
    gpu_resources,
    resolve_fields,
)
from .io import (
    csr_to_table,
    docs_parts,
    docs_version,
    load_arrays,
    parquet_columns,
    read_bytes,
    save_arrays,
    table_to_csr,
)
from .tfidf import COUNTS_DIR, DF_DIR, MODEL_DIR, TFIDF_DIR, TfidfModel, load_fitted


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
    doc_ids, counts = table_to_csr(run.read_part(counts_path), model.width)
    run.write_table(out_path, csr_to_table(doc_ids, model.weight(counts)))
    run.fs.rm(counts_path)
    return len(doc_ids)


class FeaturesStage(Stage):
    """docs/<version>/ -> features/tfidf/ + features/tfidf_model/ (+ features/emb/ + features/emb_model/)."""

    name = "features"
    sections = ("features",)
    upstream = ("label",)
    outputs = (TFIDF_DIR, MODEL_DIR, COUNTS_DIR, DF_DIR, EMB_DIR, EMB_MODEL_DIR)
    unit = "docs"

    def check(self, cfg: Config, run: RunDir) -> None:
        s = cfg.features.tfidf
        for key, low in (("n_features", 2), ("ngram_max", 1), ("min_df", 1)):
            if getattr(s, key) < low:
                raise UsageError(f"config field features.tfidf.{key}: must be at least {low}, "
                                 f"got {getattr(s, key)}")
        if s.char_ngrams and (len(s.char_ngrams) != 2 or not 1 <= s.char_ngrams[0] <= s.char_ngrams[1]):
            raise UsageError(f"config field features.tfidf.char_ngrams: give [lo, hi] with 1 <= lo <= hi, "
                             f"got {s.char_ngrams}")
        e = cfg.features.embeddings
        if e.max_length < 2 or e.batch_size < 1:
            raise UsageError("config fields features.embeddings.max_length and batch_size: must be at least 2 and 1")
        # A model on embeddings named after this stage ran without them: the config hash (features
        # section) is unchanged, so reopen the finished manifest. The runner then resumes it: no part
        # is redone, and ``finish`` adds the embeddings beside the TF-IDF it keeps.
        m = Manifest.load(run, self.name)
        if m.status == "complete" and embeddings_wanted(cfg) and not m.extra.get("embeddings"):
            m.status = "running"
            m.save(run)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        parts = docs_parts(run)
        if not parts:
            raise UsageError(f"no docs parts in {run.url('docs', docs_version(run))}; re-run `pagecat label`")
        if embeddings_wanted(cfg):
            check_fields(list(cfg.features.embeddings.fields), parquet_columns(run, next(iter(parts.values()))))
        return [Part(id=pid, inputs=[path]) for pid, path in parts.items()]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        model = TfidfModel.from_settings(cfg.features.tfidf)
        columns = ["doc_id", "title", "text"] + (["url"] if model.url_tokens else [])
        docs = run.read_part(part.inputs[0], columns=columns)
        titles, texts = docs.column("title").to_pylist(), docs.column("text").to_pylist()
        urls = docs.column("url").to_pylist() if model.url_tokens else [None] * docs.num_rows
        counts = model.count(model.compose(t, x, u) for t, x, u in zip(titles, texts, urls))
        doc_ids = docs.column("doc_id").to_pylist()
        run.write_table(run.path(COUNTS_DIR, f"{part.id}.parquet"), csr_to_table(doc_ids, counts))
        save_arrays(run.fs, run.path(DF_DIR, f"{part.id}.safetensors"),
                    {"df": model.document_frequency(counts), "n_docs": np.array([len(doc_ids)], np.int64)})
        return {"in": len(doc_ids), "out": len(doc_ids), "rejected": 0, "dropped": 0}

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        extra = self._finish_tfidf(cfg, run, client, manifest)
        if embeddings_wanted(cfg):
            extra["embeddings"] = self._finish_embeddings(cfg, run, client, manifest)
        return extra

    @staticmethod
    def _finish_tfidf(cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
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
        # hash=False: a fresh key, since a resumed run may scatter the very same model again
        [model_future] = client.scatter([model], broadcast=True, hash=False)
        rows = client.gather(client.map(_weight_part, part_ids, model=model_future, run=run, pure=False))
        run.remove(COUNTS_DIR)
        return {"docs_version": docs_version(run), "n_docs": model.n_docs_, "rows": int(sum(rows)),
                "active_features": int(np.count_nonzero(model.idf_)), "model_dir": MODEL_DIR,
                "settings": model.settings()}

    @staticmethod
    def _finish_embeddings(cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        s = cfg.features.embeddings
        resources = gpu_resources(client)
        paths = docs_parts(run)
        fields = resolve_fields(s, run, paths[min(paths)])
        futures = [client.submit(embed_part, pid, paths[pid], s, fields, run, resources=resources, pure=False)
                   for pid in sorted(manifest.parts)]
        done = client.gather(futures)
        settings = client.submit(embedding_settings, s, fields, resources=resources, pure=False).result()
        run.write_json(run.path(EMB_MODEL_DIR, "settings.json"), settings)
        return {"settings": settings, "rows": int(sum(d["rows"] for d in done)),
                "resources": resources or {}, "parts": {d.pop("part"): d for d in done}}
