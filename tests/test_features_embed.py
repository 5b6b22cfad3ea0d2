"""Embeddings: the encoder against sentence-transformers, the stored parts, and the features
stage sending embedding tasks to a worker that declares a GPU resource."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from distributed import Client, Scheduler, SpecCluster, Worker
from test_features_train import webkb_docs, write_docs

from pagecat.config import config_from_dict
from pagecat.errors import UsageError
from pagecat.features.embed import TextEncoder, cpu_has_native_bf16, default_model_path
from pagecat.features.embeddings import EMB_DIR, from_table, read_emb_part, to_table
from pagecat.features.stage import FeaturesStage
from pagecat.features.tfidf import TFIDF_DIR, doc_text
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DOCS, table
from pagecat.stage import execute

EMB = {"max_length": 32, "batch_size": 16, "precision": "float32"}  # the encoder fixture's vectors


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return webkb_docs(step=12)  # ~125 docs


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(max_length=32, batch_size=16, precision="float32")  # exactly sentence-transformers' vectors


@pytest.fixture(scope="module")
def gpu_cluster():
    """A scheduler, one worker declaring ``GPU: 1`` and one plain worker (both in-process threads)."""
    workers = {"gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
               "cpu": {"cls": Worker, "options": {"nthreads": 1}}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(workers=workers, scheduler=scheduler) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def test_encoder_matches_sentence_transformers(docs, encoder):
    from sentence_transformers import SentenceTransformer

    texts = [doc_text(d["title"], d["text"]) for d in docs[:24]] + ["", "short"]
    ours = encoder.encode(texts)
    st = SentenceTransformer(default_model_path(), device="cpu")
    st.max_seq_length = 32
    theirs = st.encode(texts, batch_size=16, normalize_embeddings=True)
    assert ours.shape == (26, 384) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-4
    again = encoder.encode(texts[::-1])[::-1]  # batches differ, vectors do not
    assert np.abs(again - ours).max() < 1e-4
    assert encoder.encode([]).shape == (0, 384)


def test_bfloat16_vectors_are_the_float32_ones_to_rounding(docs, encoder):
    texts = [doc_text(d["title"], d["text"]) for d in docs[:24]] + ["", "short"]
    reference = encoder.encode(texts)
    bf16 = TextEncoder(max_length=32, batch_size=16, precision="bfloat16")
    got = bf16.encode(texts)
    assert bf16.backend_ == "torch" and bf16.precision_ == "bfloat16"
    assert got.dtype == np.float32 and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(got * reference, axis=1)
    assert cosine.min() > 0.999 and np.abs(got - reference).max() > 0  # rounded, not the float32 path again
    auto = TextEncoder(max_length=32, batch_size=16)
    auto.encode(["x"])
    assert auto.precision_ == ("bfloat16" if cpu_has_native_bf16() else "float32")


def test_precision_errors():
    with pytest.raises(UsageError, match="embedding precision 'int4': choose one of auto, float32, bfloat16"):
        TextEncoder(precision="int4")
    with pytest.raises(UsageError, match="bfloat16 and quantize"):
        TextEncoder(precision="bfloat16", quantize=True)
    with pytest.raises(UsageError, match="features.embeddings.precision: 'fp8' is not one of auto, float32, bfloat16"):
        config_from_dict({"features": {"embeddings": {"precision": "fp8"}}})


def test_embedding_rows_round_trip_through_arrow():
    X = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    t = to_table([f"d{i}" for i in range(6)], X)
    assert t.schema.field("embedding").type == pa.list_(pa.float32(), 5)
    ids, back = from_table(t.slice(2, 3))
    assert ids == ["d2", "d3", "d4"] and np.array_equal(back, X[2:5])


def test_embeddings_run_on_the_gpu_worker_beside_tfidf(tmp_path, docs, encoder, gpu_cluster):
    run = RunDir(str(tmp_path))
    write_docs(run, docs)
    cfg = config_from_dict({"run": {"dir": str(tmp_path)}, "features": {"tfidf": {"n_features": 2**14},
                                                                        "embeddings": {"enabled": True, **EMB}}})
    m = execute(FeaturesStage(), cfg, run, gpu_cluster, progress=False)
    emb = m.extra["embeddings"]
    gpu_worker = [a for a, w in gpu_cluster.scheduler_info()["workers"].items() if w["resources"].get("GPU")]
    assert emb["resources"] == {"GPU": 1} and emb["rows"] == len(docs)
    assert {p["worker"] for p in emb["parts"].values()} == set(gpu_worker)  # every part on the GPU worker
    assert emb["settings"]["dim"] == 384 and emb["settings"]["fields"] == ["title+text"]
    # TF-IDF and embeddings side by side, one part each per docs part
    assert len(run.list_files(TFIDF_DIR, suffix=".parquet")) == len(run.list_files(EMB_DIR, suffix=".parquet")) == 3
    by_id = {d["doc_id"]: d for d in docs}
    ids, X = read_emb_part(run, "part-00001")
    expected = encoder.encode([doc_text(by_id[i]["title"], by_id[i]["text"]) for i in ids])
    assert np.abs(X - expected).max() < 1e-4


def test_embeddings_are_added_when_a_model_needs_them(tmp_path, docs, client):
    """Features ran without embeddings; naming linear_emb reopens the stage, which adds them and
    keeps the TF-IDF parts it already wrote. Without a GPU worker they run anywhere."""
    run = RunDir(str(tmp_path))
    write_docs(run, docs[:60], n_parts=2)
    base = {"run": {"dir": str(tmp_path)}, "features": {"tfidf": {"n_features": 2**12}, "embeddings": EMB}}
    first = execute(FeaturesStage(), config_from_dict(base), run, client, progress=False)
    assert "embeddings" not in first.extra and not run.exists(EMB_DIR)
    tfidf_before = {p: run.fs.info(p)["mtime"] for p in run.list_files(TFIDF_DIR)}
    cfg = config_from_dict({**base, "train": {"models": ["linear_emb"]}})
    second = execute(FeaturesStage(), cfg, run, client, progress=False)
    assert second.extra["embeddings"]["rows"] == 60 and second.extra["embeddings"]["resources"] == {}
    assert {p: run.fs.info(p)["mtime"] for p in run.list_files(TFIDF_DIR)} == tfidf_before
    assert second.config_hash == first.config_hash and second.finished_at >= first.finished_at
    third = execute(FeaturesStage(), cfg, run, client, progress=False)  # now unchanged: skipped
    assert third.finished_at == second.finished_at


def test_site_fields_are_encoded_apart_and_joined(tmp_path, docs, encoder, client):
    """Site docs (a ``fields`` JSON column): name, domain words, titles and texts, each encoded
    on its own, joined in that order; a named field that docs lack is a usage error."""
    run = RunDir(str(tmp_path))
    rows = docs[:20]
    sites = [{"name": f"site {i}", "domain_words": "acme plumbing", "tld": "com",
              "titles": [d["title"], "About us"], "texts": [d["text"][:200], "we fix pipes"]}
             for i, d in enumerate(rows)]
    run.write_table(run.path("docs", "v1", "part-00000.parquet"),
                    table([{**d, "fields": json.dumps(f)} for d, f in zip(rows, sites)], DOCS))
    Manifest(stage="label", status="complete", finished_at="t", extra={"docs_version": "v1"}).save(run)
    cfg = config_from_dict({"run": {"dir": str(tmp_path)}, "features": {
        "tfidf": {"n_features": 2**12}, "embeddings": {"enabled": True, **EMB}}})
    m = execute(FeaturesStage(), cfg, run, client, progress=False)
    settings = m.extra["embeddings"]["settings"]
    assert settings["fields"] == ["name", "domain_words", "titles", "texts"] and settings["width"] == 4 * 384
    ids, X = read_emb_part(run, "part-00000")
    assert ids == [d["doc_id"] for d in rows]
    assert np.abs(X[:, :384] - encoder.encode([f["name"] for f in sites])).max() < 1e-4
    assert np.abs(X[:, 1152:] - encoder.encode(["\n".join(f["texts"]) for f in sites])).max() < 1e-4
    bad = config_from_dict({**cfg.to_dict(), "features": {**cfg.to_dict()["features"],
                                                          "embeddings": {"enabled": True, "fields": ["nmae"]}}})
    with pytest.raises(UsageError, match="embeddings.fields: docs have no column 'nmae'"):
        execute(FeaturesStage(), bad, run, client, progress=False, force=True)


def test_missing_embedding_model_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found; name a local transformers folder"):
        TextEncoder(model_path=str(tmp_path / "nope")).encode(["x"])

