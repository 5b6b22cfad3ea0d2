"""Every model family through train and predict, calibration, grouped splits, weights, and the
model store refusing what it should. Docs are WebKB sample pages (see test_features_train)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_features_train import webkb_docs, write_docs

from pagecat.config import config_from_dict
from pagecat.errors import StageError, UsageError
from pagecat.features.stage import FeaturesStage
from pagecat.features.tfidf import TfidfModel, doc_text
from pagecat.runs import RunDir
from pagecat.schemas import PREDICTIONS
from pagecat.stage import execute
from pagecat.train.charcnn import CharCnnClassifier, quantize
from pagecat.train.data import class_weights, group_keys, grouped_split, load_labelled
from pagecat.train.metrics import expected_calibration_error
from pagecat.train.models import LinearTextClassifier, fit_temperature, softmax
from pagecat.train.predict import PredictStage
from pagecat.train.registry import MODEL_INPUT
from pagecat.train.stage import TrainStage, split_indices, take
from pagecat.train.store import load_model, read_comparison

ALL = ["xgboost", "linear", "xgboost_emb", "linear_emb", "transformer", "charcnn", "ensemble"]


def config(root, **train) -> object:
    return config_from_dict({
        "run": {"dir": str(root)},
        "features": {"tfidf": {"n_features": 2**15}, "embeddings": {"max_length": 32, "batch_size": 32}},
        "train": {"models": ALL, "xgboost": {"n_estimators": 40, "max_depth": 3, "max_features": 3000,
                                             "early_stopping_rounds": 8},
                  "linear": {"c_grid": [1.0, 10.0]},
                  "transformer": {"epochs": 1, "max_length": 16, "batch_size": 16},
                  "charcnn": {"epochs": 2, "max_chars": 256, "channels": 32}, **train},
    })


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return webkb_docs(step=6)  # ~250 docs


@pytest.fixture(scope="module")
def trained(tmp_path_factory, docs, client):
    root = tmp_path_factory.mktemp("run")
    run = RunDir(str(root))
    write_docs(run, docs)
    cfg = config(root)
    manifests = {s.name: execute(s, cfg, run, client, progress=False)
                 for s in (FeaturesStage(), TrainStage(), PredictStage())}
    return run, cfg, manifests


def test_every_model_family_is_compared_and_reloads_exactly(trained, docs):
    run, cfg, manifests = trained
    comparison = read_comparison(run)
    assert [m["name"] for m in comparison["models"]] == ALL
    n_tagged = sum(d["label"] is not None for d in docs)
    for row in comparison["models"]:
        assert row["n_train"] + row["n_test"] == n_tagged and 0 <= row["ece"] <= 1
    # the linear models beat always-the-biggest-class by far; the small neural ones at least run
    labels = [d["label"] for d in docs if d["label"]]
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    by_name = {m["name"]: m for m in comparison["models"]}
    assert by_name["linear"]["accuracy"] > majority + 0.2 and by_name["linear_emb"]["accuracy"] > majority + 0.1
    for name in ALL:
        input_name = MODEL_INPUT[name]
        data = load_labelled(run, input_name, cfg)
        stored = load_model(run, name)
        assert stored.card["metrics"]["input"] == input_name
        y = np.array([stored.classes.index(label) for label in data.labels])
        _, _, test = split_indices(data, y, cfg)
        proba = stored.model.predict_proba(take(data.X, test))
        assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
        assert float(np.mean(proba.argmax(axis=1) == y[test])) == pytest.approx(stored.card["metrics"]["accuracy"])
    files = set(load_model(run, "transformer").card["files"])
    assert {"transformer.safetensors", "transformer.json"} <= files
    assert not any(f.endswith((".pkl", ".pt", ".bin")) for name in ALL for f in load_model(run, name).card["files"])


def test_predict_with_a_model_on_embeddings_and_one_on_text(trained, client, docs):
    run, cfg, _ = trained
    untagged = sorted(d["doc_id"] for d in docs if d["label"] is None)
    for name in ("linear_emb", "charcnn"):
        cfg_p = config_from_dict({**cfg.to_dict(), "predict": {"model": name}})
        m = execute(PredictStage(), cfg_p, run, client, progress=False, force=True)
        preds = run.read_dataset("predictions", schema=PREDICTIONS)
        assert sorted(preds.column("doc_id").to_pylist()) == untagged
        assert set(preds.column("model").to_pylist()) == {name} and m.counts["out"] == len(untagged)


def test_linear_probabilities_are_calibrated(docs):
    """Temperature on the validation split: the top probability means what it says, unlike
    class-balanced logistic regression at a fixed C (the earlier model)."""
    from sklearn.linear_model import LogisticRegression

    tagged = [d for d in webkb_docs(step=2) if d["label"]]
    classes = sorted({d["label"] for d in tagged})
    y = np.array([classes.index(d["label"]) for d in tagged])
    X = TfidfModel(n_features=2**16).fit_transform(doc_text(d["title"], d["text"]) for d in tagged)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    fit, val, test = order[: len(y) // 2], order[len(y) // 2: 3 * len(y) // 4], order[3 * len(y) // 4:]
    model = LinearTextClassifier(c_grid=(1.0, 10.0, 100.0)).fit(X[fit], y[fit], X[val], y[val])
    ece = expected_calibration_error(y[test], model.predict_proba(X[test]))
    old = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(X[np.r_[fit, val]], y[np.r_[fit, val]])
    old_ece = expected_calibration_error(y[test], old.predict_proba(X[test]))
    assert ece < 0.12 and ece < old_ece / 2, (ece, old_ece)
    assert model.temperature_ != 1.0 and set(model.scores_) == {1.0, 10.0, 100.0}


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 5)) * 2
    y = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)


def test_grouped_splits_keep_groups_apart(docs):
    y = np.array([hash(d["label"]) % 3 for d in docs if d["label"]])
    groups = np.array([d["group"] for d in docs if d["label"]], dtype=object)
    train, test = grouped_split(y, groups, 0.25, seed=0)
    assert not set(groups[train]) & set(groups[test]) and len(train) + len(test) == len(y)
    with pytest.raises(StageError, match="all tagged docs are in one group"):
        grouped_split(y, np.array(["g"] * len(y), dtype=object), 0.25, seed=0)


def test_group_keys_by_site_and_cluster(tmp_path):
    from pagecat.train.data import LabelledDocs

    data = LabelledDocs(doc_ids=["a", "b", "c"], X=None, labels=["x", "y", "x"], groups=["u1", None, "u2"],
                        hosts=["www.cs.wisc.edu", "ftp.cs.wisc.edu", "www.cornell.edu"])
    assert group_keys(data, "site").tolist() == ["wisc.edu", "wisc.edu", "cornell.edu"]
    assert group_keys(data, "group").tolist()[::2] == ["u1", "u2"]  # the doc without a group is its own
    with pytest.raises(UsageError, match="cluster needs duplicate clusters: run dedup"):
        group_keys(data, "cluster")
    data.clusters = ["k1", "k1", None]
    assert group_keys(data, "cluster").tolist()[:2] == ["k1", "k1"]


def test_group_by_group_trains_on_unseen_universities(tmp_path, docs, client):
    run = RunDir(str(tmp_path))
    write_docs(run, docs)
    cfg = config(tmp_path, models=["linear"], group_by="group", test_size=0.3)
    execute(FeaturesStage(), cfg, run, client, progress=False)
    execute(TrainStage(), cfg, run, client, progress=False)
    data = load_labelled(run, "tfidf", cfg)
    y = np.array([sorted(set(data.labels)).index(label) for label in data.labels])
    fit, val, test = split_indices(data, y, cfg)
    groups = np.array(data.groups, dtype=object)
    assert not set(groups[np.r_[fit, val]]) & set(groups[test])
    assert load_model(run, "linear").card["metrics"]["group_by"] == "group"


def test_class_weights_and_docs_sample_weight(tmp_path, docs, client):
    y = np.array([0, 0, 0, 1])
    assert class_weights(y, 2, None) is None
    assert class_weights(y, 2, "balanced").tolist() == pytest.approx([2 / 3] * 3 + [2.0])
    assert class_weights(y, 2, "balanced", np.array([1, 1, 1, 0.5])).tolist() == pytest.approx([2 / 3] * 3 + [1.0])
    run = RunDir(str(tmp_path))
    write_docs(run, [{**d, "sample_weight": 2.0 if d["label"] == "course" else None} for d in docs])
    cfg = config(tmp_path, models=["linear"])
    execute(FeaturesStage(), cfg, run, client, progress=False)
    data = load_labelled(run, "tfidf", cfg)
    expected = [2.0 if label == "course" else 1.0 for label in data.labels]
    assert data.sample_weight.tolist() == expected


def test_charcnn_quantizes_like_the_paper():
    q = quantize(["Ab1 é", ""], 6)
    assert q.shape == (2, 6) and q[0, 0] == 1 and q[0, 1] == 2 and q[0, 4] == 0 and not q[1].any()
    with pytest.raises(ValueError, match="too short"):
        CharCnnClassifier(max_chars=64).out_length()


def test_models_refuse_another_version_tampering_and_other_features(trained, tmp_path):
    run, _, _ = trained
    copy = RunDir(str(tmp_path / "run"))
    shutil.copytree(run.root, copy.root)
    card_path = tmp_path / "run" / "models" / "linear_emb" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "pagecat_version": "99.0.0"}))
    with pytest.raises(UsageError, match="was saved by pagecat 99.0.0"):
        load_model(copy, "linear_emb")
    emb = card["features"]
    with pytest.raises(UsageError, match="max_length differ"):
        load_model(run, "linear_emb", features={**emb, "max_length": 256})
    meta_path = tmp_path / "run" / "models" / "transformer" / "transformer.json"
    meta_path.write_text(meta_path.read_text().replace('"epochs": 1', '"epochs": 9'))
    with pytest.raises(UsageError, match="transformer.json does not match the sha256"):
        load_model(copy, "transformer")


def test_transformer_weights_from_another_base_model_are_refused(trained, tmp_path):
    from pagecat.train.transformer import TransformerClassifier

    run, _, _ = trained
    folder = run.path("models", "transformer")
    meta = json.loads(run.fs.cat(f"{folder}/transformer.json"))
    other = tmp_path / "m"
    other.mkdir()
    (other / "transformer.json").write_text(json.dumps({**meta, "base_model_sha": "0" * 16}))
    with pytest.raises(UsageError, match="made from base model"):
        TransformerClassifier.load(run.fs, str(other))


def test_embedding_models_need_embeddings_and_docs_need_labels(tmp_path, docs, client):
    run = RunDir(str(tmp_path))
    write_docs(run, docs[:80])
    cfg = config(tmp_path, models=["linear"])
    execute(FeaturesStage(), cfg, run, client, progress=False)
    with pytest.raises(UsageError, match="linear_emb, which reads embeddings, but the features stage ran without"):
        TrainStage().check(config(tmp_path, models=["linear_emb"]), run)
    untagged = RunDir(str(tmp_path / "untagged"))
    write_docs(untagged, [{**d, "label": None, "label_source": None} for d in docs[:40]])
    cfg = config(tmp_path / "untagged", models=["linear"])
    execute(FeaturesStage(), cfg, untagged, client, progress=False)
    with pytest.raises(UsageError, match="no tagged docs"):
        execute(TrainStage(), cfg, untagged, client, progress=False)


def test_clusters_come_from_duplicates(tmp_path):
    from pagecat.schemas import DUPLICATES, table
    from pagecat.train.data import duplicate_clusters

    run = RunDir(str(tmp_path))
    assert duplicate_clusters(run, ["a"]) is None  # no dedup output: no clusters
    run.write_table(run.path("duplicates", "part-0.parquet"), table(
        [{"page_id": "b", "kept_id": "a", "kind": "near", "similarity": 0.9, "cluster_id": "c1"}], DUPLICATES))
    assert duplicate_clusters(run, ["a", "b", "z"]) == ["c1", "c1", None]


def test_transformer_encodes_fields_apart_and_reloads(tmp_path):
    from pagecat.train.transformer import TransformerClassifier

    docs = [["acme plumbing", "we fix pipes and drains"], ["bella pasta", "fresh pasta and pizza menu"]] * 6
    y = np.array([0, 1] * 6)
    model = TransformerClassifier(max_length=12, epochs=2, batch_size=4, learning_rate=1e-4)
    model.fit(docs[:8], y[:8], docs[8:], y[8:])
    assert model.module_.head.in_features == 2 * 384 and model.n_fields_ == 2
    run = RunDir(str(tmp_path))
    files = model.save(run.fs, run.path("m"))
    assert files == ["transformer.safetensors", "transformer.json"]
    loaded = TransformerClassifier.load(run.fs, run.path("m"))
    assert np.allclose(loaded.predict_proba(docs[8:]), model.predict_proba(docs[8:]), atol=1e-5)
