"""TF-IDF features, training, the model store and batch prediction, on WebKB sample pages.

The docs the label stage would write are made here from the bundled WebKB sample (crude
text: tags stripped with lxml; group = university; one university held back untagged), so
these tests depend on no other stage's code.
"""

from __future__ import annotations

import hashlib
import shutil
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
import numpy as np
import pyarrow.compute as pc
import pytest
import scipy.sparse as sp
from distributed import Client, LocalCluster
from sklearn.feature_extraction.text import TfidfTransformer

from pagecat.config import config_from_dict
from pagecat.data.webkb import load_sample, split_http_response
from pagecat.errors import StageError, UsageError
from pagecat.features.io import csr_to_table, table_to_csr
from pagecat.features.stage import FeaturesStage, _read_df, _weight_part
from pagecat.features.tfidf import DF_DIR, MODEL_DIR, TfidfModel, doc_text, load_fitted, read_tfidf
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DOCS, PREDICTIONS, table
from pagecat.stage import execute
from pagecat.train.data import check_trainable, load_labelled, stratified_split, validation_split
from pagecat.train.metrics import expected_calibration_error, top_k_accuracy
from pagecat.train.predict import PredictStage
from pagecat.train.stage import TrainStage
from pagecat.train.store import load_model, read_comparison

HELD_OUT = "texas"  # this university's docs stay untagged: they are what predict labels


def webkb_docs(step: int = 4) -> list[dict]:
    """Every ``step``-th sample page as a DOCS row (~375 docs, 7 classes)."""
    docs = []
    for rec in load_sample()[::step]:
        _, body = split_http_response(rec["raw"])
        try:
            root = lxml.html.document_fromstring(body)
            title, text = root.findtext(".//title") or "", root.text_content()
        except (lxml.etree.ParserError, ValueError):  # an empty or unparsable body: no text
            title, text = "", ""
        tagged = rec["university"] != HELD_OUT
        docs.append({"doc_id": hashlib.sha1(rec["url"].encode()).hexdigest()[:16], "url": rec["url"],
                     "host": urlsplit(rec["url"]).hostname, "title": title.strip(), "text": text,
                     "label": rec["label"] if tagged else None, "label_source": "file" if tagged else None,
                     "group": rec["university"]})
    return docs


def write_docs(run: RunDir, docs: list[dict], n_parts: int = 3) -> None:
    """docs/v1/part-*.parquet and a complete label manifest, as the label stage leaves them."""
    for i in range(n_parts):
        run.write_table(run.path("docs", "v1", f"part-{i:05d}.parquet"), table(docs[i::n_parts], DOCS))
    classes = sorted({d["label"] for d in docs if d["label"]})
    Manifest(stage="label", status="complete", finished_at="test",
             extra={"docs_version": "v1", "classes": classes}).save(run)


def small_config(run_dir) -> object:
    return config_from_dict({
        "run": {"dir": str(run_dir)},
        "features": {"tfidf": {"n_features": 2**16}},
        "train": {"xgboost": {"n_estimators": 60, "max_depth": 4, "max_features": 4000,
                              "early_stopping_rounds": 10},
                  "linear": {"c_grid": [1.0, 10.0]}},
    })


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return webkb_docs()


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, docs, client):
    """features -> train -> predict on the WebKB docs; (run, cfg, {stage: manifest})."""
    root = tmp_path_factory.mktemp("run")
    run = RunDir(str(root))
    write_docs(run, docs)
    cfg = small_config(root)
    manifests = {stage.name: execute(stage, cfg, run, client, progress=False)
                 for stage in (FeaturesStage(), TrainStage(), PredictStage())}
    return run, cfg, manifests


# -- TF-IDF model ---------------------------------------------------------------------------
def test_tfidf_transform_is_deterministic(docs):
    texts = [doc_text(d["title"], d["text"]) for d in docs[:80]]
    a = TfidfModel(n_features=2**14).fit(texts).transform(texts)
    b = TfidfModel(n_features=2**14).fit(texts[::-1]).transform(texts)  # df does not depend on order
    assert a.shape == (80, 2**14) and a.dtype == np.float32
    assert (a != b).nnz == 0
    norms = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


def test_idf_and_weights_match_sklearn_tfidf_transformer(docs):
    texts = [doc_text(d["title"], d["text"]) for d in docs[:120]]
    model = TfidfModel(n_features=2**14, ngram_max=2, min_df=1, sublinear_tf=True).fit(texts)
    counts = model.count(texts)
    reference = TfidfTransformer(smooth_idf=True, sublinear_tf=True).fit(counts)
    seen = model.document_frequency(counts) > 0  # unseen columns: sklearn gives ln(n+1)+1, we give 0
    assert np.allclose(model.idf_[seen], reference.idf_[seen], rtol=1e-5)
    assert abs(model.transform(texts) - reference.transform(counts)).max() < 1e-5


def test_min_df_zeroes_rare_columns(docs):
    texts = [doc_text(d["title"], d["text"]) for d in docs[:60]]
    model = TfidfModel(n_features=2**14, min_df=3).fit(texts)
    df = model.document_frequency(model.count(texts))
    assert np.all(model.idf_[df < 3] == 0) and np.all(model.idf_[df >= 3] > 0)
    used = np.unique(model.transform(texts).indices)
    assert np.all(df[used] >= 3)


def test_tfidf_save_load_round_trip_and_tamper(tmp_path, docs):
    texts = [doc_text(d["title"], d["text"]) for d in docs[:50]]
    model = TfidfModel(n_features=2**12, ngram_max=1, min_df=2, sublinear_tf=False).fit(texts)
    run = RunDir(str(tmp_path))
    model.save(run.fs, run.path("m"))
    loaded = TfidfModel.load(run.fs, run.path("m"))
    assert loaded.settings() == model.settings()
    assert (loaded.transform(texts) != model.transform(texts)).nnz == 0
    idf_path = tmp_path / "m" / "idf.safetensors"
    data = bytearray(idf_path.read_bytes())
    data[-1] ^= 0xFF
    idf_path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="does not match"):
        TfidfModel.load(run.fs, run.path("m"))


def test_sparse_rows_round_trip_through_arrow():
    m = sp.random(7, 50, density=0.2, format="csr", dtype=np.float32, random_state=0)
    ids = [f"d{i}" for i in range(7)]
    t = csr_to_table(ids, m)
    back_ids, back = table_to_csr(t.slice(2, 4), 50)  # a slice keeps its own offsets
    assert back_ids == ids[2:6] and (back != m[2:6]).nnz == 0


# -- splits and metrics ---------------------------------------------------------------------
def test_splits_keep_every_class():
    y = np.array([0] * 30 + [1] * 10 + [2] * 2 + [3] * 3)
    train, test = stratified_split(y, 0.2, seed=0)
    assert set(train) | set(test) == set(range(len(y))) and not set(train) & set(test)
    assert len(test) == 9 and set(y[train]) == {0, 1, 2, 3}
    assert np.bincount(y[test]).tolist()[:2] == [6, 2]  # class shares kept: 30/45 and 10/45 of 9
    fit, val = validation_split(y[train], 0.3, seed=0)
    assert set(y[train][fit]) == set(y[train]) and len(val) > 0
    assert not set(fit) & set(val)


def test_check_trainable_errors():
    with pytest.raises(UsageError, match="no tagged docs: check label.labels / label.join_on"):
        check_trainable([], 0.2)
    with pytest.raises(StageError, match="'b' \\(1 doc\\).*fewer than 2"):
        check_trainable(["a"] * 10 + ["b"], 0.2)
    with pytest.raises(StageError, match="at least 2 classes"):
        check_trainable(["a"] * 10, 0.2)
    check_trainable(["a"] * 10 + ["b"] * 10, 0.2)


def test_top_k_and_calibration_error():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([0, 1, 1, 0])
    assert top_k_accuracy(y, proba, 1) == 0.25 and top_k_accuracy(y, proba, 2) == 0.75
    assert top_k_accuracy(y, proba, 3) == 1.0
    # every doc predicted with confidence 1.0 and right: perfectly calibrated
    assert expected_calibration_error(np.array([0, 1]), np.eye(2)) == 0.0
    # confidence 0.6 in one bin, accuracy 1/4: |0.25 - 0.6|
    p = np.array([[0.6, 0.4]] * 4)
    assert expected_calibration_error(np.array([0, 1, 1, 1]), p) == pytest.approx(0.35)


# -- the three stages on a cluster ----------------------------------------------------------
def test_features_stage_writes_one_row_per_doc(pipeline, docs):
    run, _cfg, manifests = pipeline
    m = manifests["features"]
    assert m.counts["in"] == m.counts["out"] == len(docs) and m.counts.get("rejected", 0) == 0
    assert sorted(m.parts) == ["part-00000", "part-00001", "part-00002"]
    assert not run.exists("features", "_counts") and not run.exists("features", "_df")
    doc_ids, X = read_tfidf(run)
    assert sorted(doc_ids) == sorted(d["doc_id"] for d in docs)
    assert X.shape == (len(docs), 2**16)
    # the stored rows are the fitted model's transform of the same text
    model = load_fitted(run)
    assert model.n_docs_ == len(docs) and m.extra["settings"] == model.settings()
    by_id = {d["doc_id"]: d for d in docs}
    again = model.transform(doc_text(by_id[i]["title"], by_id[i]["text"]) for i in doc_ids[:40])
    assert abs(again - X[:40]).max() < 1e-6


def test_features_finish_resumes_after_the_model_was_saved(pipeline, tmp_path, docs, client):
    """An interruption after the IDF was saved and one part weighted: the resumed finish
    weights only the rest and gives the same rows as the uninterrupted run."""
    done, cfg, manifests = pipeline
    run = RunDir(str(tmp_path))
    write_docs(run, docs)
    stage = FeaturesStage()
    parts = stage.plan(cfg, run)
    manifest = Manifest(stage="features", parts={p.id: stage.run_part(p, cfg, run) for p in parts})
    model = TfidfModel.from_settings(cfg.features.tfidf)
    model.fit_df(*_sum_df(run, [p.id for p in parts]))
    model.save(run.fs, run.path(MODEL_DIR))
    run.remove(DF_DIR)
    assert _weight_part(parts[0].id, model, run) > 0  # then the process died
    extra = stage.finish(cfg, run, client, manifest)
    assert extra["rows"] == len(docs) and extra["settings"] == manifests["features"].extra["settings"]
    ids_a, a = read_tfidf(done)
    ids_b, b = read_tfidf(run)
    assert ids_a == ids_b and (a != b).nnz == 0


def _sum_df(run: RunDir, part_ids: list[str]) -> tuple[np.ndarray, int]:
    pairs = [_read_df(run.path(DF_DIR, f"{pid}.safetensors"), run) for pid in part_ids]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def test_comparison_has_both_models_with_sane_metrics(pipeline, docs):
    run, _cfg, manifests = pipeline
    comparison = read_comparison(run)
    assert manifests["train"].extra == comparison
    assert [m["name"] for m in comparison["models"]] == ["xgboost", "linear"]
    assert comparison["classes"] == sorted({d["label"] for d in docs if d["label"]})
    assert comparison["docs_version"] == "v1"
    n_tagged = sum(d["label"] is not None for d in docs)
    majority = max(np.unique([d["label"] for d in docs if d["label"]], return_counts=True)[1]) / n_tagged
    for m in comparison["models"]:
        assert m["n_train"] + m["n_test"] == n_tagged
        assert m["accuracy"] > majority + 0.15, m  # well above always-the-biggest-class
        assert m["macro_f1"] > 0.35 and m["top3_accuracy"] >= m["accuracy"]
        assert 0 <= m["ece"] <= 1 and m["train_seconds"] > 0 and m["predict_docs_per_s"] > 0
        metrics = run.read_json(run.path("models", m["name"], "metrics.json"))
        matrix = np.array(metrics["confusion"]["matrix"])
        assert metrics["confusion"]["labels"] == comparison["classes"] and matrix.sum() == m["n_test"]
        assert np.trace(matrix) / m["n_test"] == pytest.approx(m["accuracy"])
        assert [metrics["per_class"][c]["support"] for c in comparison["classes"]] == matrix.sum(axis=1).tolist()
    best = max(comparison["models"], key=lambda m: m["macro_f1"])
    assert comparison["best"] == best["name"]
    assert manifests["train"].counts["in"] == manifests["train"].counts["out"] == n_tagged
    assert manifests["train"].counts["models"] == 2


def test_loaded_models_reproduce_their_held_out_accuracy(pipeline):
    run, cfg, _ = pipeline
    tfidf = load_fitted(run)
    data = load_labelled(run, "tfidf", cfg)
    for name in ("xgboost", "linear"):
        stored = load_model(run, name, features=tfidf.settings())
        card = stored.card
        assert card["kind"] == name and card["docs_version"] == "v1" and card["features"] == tfidf.settings()
        assert set(card["files"]) >= {"labels.json", "metrics.json"}
        y = np.array([stored.classes.index(label) for label in data.labels])
        _, test = stratified_split(y, cfg.train.test_size, cfg.train.seed)
        proba = stored.model.predict_proba(data.X[test])
        assert proba.shape == (len(test), len(stored.classes))
        assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
        accuracy = float(np.mean(proba.argmax(axis=1) == y[test]))
        assert accuracy == pytest.approx(card["metrics"]["accuracy"])


def test_predictions_cover_exactly_the_untagged_docs(pipeline, docs):
    run, _cfg, manifests = pipeline
    preds = run.read_dataset("predictions", schema=PREDICTIONS)
    untagged = {d["doc_id"] for d in docs if d["label"] is None}
    assert len(untagged) > 10
    assert sorted(preds.column("doc_id").to_pylist()) == sorted(untagged)
    classes = read_comparison(run)["classes"]
    best = read_comparison(run)["best"]
    for row in preds.to_pylist():
        assert len(row["top_labels"]) == 3 and len(set(row["top_labels"])) == 3
        assert set(row["top_labels"]) <= set(classes)
        assert row["label"] == row["top_labels"][0] and row["model"] == best
        assert row["probability"] == row["top_probabilities"][0]
        assert row["top_probabilities"] == sorted(row["top_probabilities"], reverse=True)
    m = manifests["predict"]
    assert m.counts["in"] == m.counts["out"] == len(untagged)
    assert m.extra["model"] == best and sum(m.extra["predicted"].values()) == len(untagged)
    assert pc.sum(pc.equal(preds.column("label"), "other")).as_py() < len(untagged)  # not one constant label


def test_tampered_or_mismatched_model_is_refused(pipeline, tmp_path):
    run, _, _ = pipeline
    copy = tmp_path / "run"
    shutil.copytree(run.root, copy)
    other = RunDir(str(copy))
    settings = load_fitted(other).settings()
    load_model(other, "linear", features=settings)  # intact: loads
    with pytest.raises(UsageError, match="ngram_max differ"):
        load_model(other, "linear", features={**settings, "ngram_max": 3})
    path = copy / "models" / "xgboost" / "xgboost.ubj"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="xgboost.ubj does not match the sha256"):
        load_model(other, "xgboost")


def test_predict_with_unknown_model_name_is_a_usage_error(pipeline, client):
    run, cfg, _ = pipeline
    cfg = config_from_dict({**cfg.to_dict(), "predict": {"model": "forest"}})
    with pytest.raises(UsageError, match="'forest' is not a trained model; choose best or one of: xgboost, linear"):
        execute(PredictStage(), cfg, run, client, progress=False)


def test_class_with_one_example_is_a_clear_error(tmp_path, docs, client):
    tagged = [d for d in docs if d["label"] is not None]
    staff = [d for d in tagged if d["label"] == "staff"]
    few = [d for d in tagged if d["label"] != "staff"][:120] + staff[:1]
    run = RunDir(str(tmp_path))
    write_docs(run, few, n_parts=2)
    cfg = small_config(tmp_path)
    execute(FeaturesStage(), cfg, run, client, progress=False)
    with pytest.raises(StageError, match="class 'staff' \\(1 doc\\): fewer than 2 tagged docs"):
        execute(TrainStage(), cfg, run, client, progress=False)
