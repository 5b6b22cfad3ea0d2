"""The linear SVM (one-vs-rest, calibrated), kNN on embeddings, XGBoost's subsampling and the
ensemble that weighs members reading TF-IDF and embeddings on the validation split. Small
synthetic data: fast."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import LinearSVC

from pagecat.runs import RunDir
from pagecat.train.ensemble import EnsembleClassifier, simplex_grid, stack_inputs
from pagecat.train.models import KnnClassifier, LinearTextClassifier, XGBoostTextClassifier


def clusters(n: int, n_classes: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one random centre a class: (X (n, dim) float32, y (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    y = np.arange(n) % n_classes
    X = centres[y] + spread * rng.normal(size=(n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def sparse_noise(n: int, width: int, seed: int) -> sp.csr_matrix:
    """TF-IDF-like rows that say nothing of the class."""
    X = sp.random(n, width, density=0.02, random_state=seed, format="csr", dtype=np.float32)
    X.data[:] = 1.0
    return X


def test_linear_is_liblinear_one_vs_rest_fitted_in_threads():
    X, y = clusters(300, 4, 20, 1.0, seed=0)
    X = sp.csr_matrix(X)
    single = LinearTextClassifier(c_grid=(0.5,), n_jobs=1).fit(X, y)
    threaded = LinearTextClassifier(c_grid=(0.5,), n_jobs=2).fit(X, y)
    reference = LinearSVC(C=0.5, random_state=0).fit(X, y)  # liblinear's own one-vs-rest
    # liblinear's threads share its random generator (the order of coordinate descent): the same
    # optimum to the solver's tolerance, not bit for bit
    assert np.allclose(single.coef_, threaded.coef_, atol=1e-3)
    assert np.allclose(single.intercept_, threaded.intercept_, atol=1e-3)
    assert np.allclose(single.coef_, reference.coef_, atol=1e-3)
    assert np.allclose(single.intercept_, reference.intercept_, atol=1e-3)
    assert single.temperature_ == 1.0 and single.validation_proba_ is None


def test_linear_picks_c_on_validation_and_keeps_fit_split_probabilities():
    X, y = clusters(600, 5, 30, 1.2, seed=1)
    fit, val, test = np.arange(300), np.arange(300, 450), np.arange(450, 600)
    model = LinearTextClassifier(c_grid=(0.01, 1.0), n_jobs=2).fit(X[fit], y[fit], X[val], y[val])
    assert set(model.scores_) == {0.01, 1.0} and model.C_ == min(model.scores_, key=model.scores_.get)
    # the validation probabilities come from the model fitted without the validation docs
    assert model.validation_proba_.shape == (150, 5)
    assert np.allclose(model.validation_proba_.sum(axis=1), 1.0, atol=1e-5)
    p = model.predict_proba(X[test])
    assert np.mean(p.argmax(axis=1) == y[test]) > 0.8 and model.temperature_ != 1.0


def test_linear_with_a_class_missing_from_the_fit_split():
    X, y = clusters(200, 3, 10, 0.5, seed=2)
    keep = y != 2
    model = LinearTextClassifier(c_grid=(1.0,)).fit(X[keep], y[keep], X[~keep][:5], y[~keep][:5])
    assert model.classes_.tolist() == [0, 1, 2]
    assert model.predict_proba(X).shape == (200, 3)


def test_knn_finds_the_neighbours_class_and_reloads(tmp_path):
    X, y = clusters(400, 4, 16, 0.6, seed=3)
    fit, val, test = np.arange(200), np.arange(200, 300), np.arange(300, 400)
    model = KnnClassifier(k_grid=(1, 10), tau_grid=(0.05, 0.5)).fit(X[fit] * 3.0, y[fit], X[val], y[val])
    assert len(model.scores_) == 4 and model.validation_proba_.shape == (100, 4)
    assert len(model.labels_) == 300  # validation docs joined the index
    p = model.predict_proba(X[test])
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5) and p.min() > 0
    assert np.mean(p.argmax(axis=1) == y[test]) > 0.9
    # a query equal to an indexed doc gets that doc's class
    assert model.predict_proba(X[:1] * 0.5).argmax() == y[0]
    run = RunDir(str(tmp_path))
    assert model.save(run.fs, run.path("m")) == ["knn.safetensors", "knn.json"]
    loaded = KnnClassifier.load(run.fs, run.path("m"))
    assert (loaded.k_, loaded.tau_) == (model.k_, model.tau_)
    assert np.allclose(loaded.predict_proba(X[test]), p)


def test_knn_votes_are_weighted_by_sample_weight_and_the_weights_reload(tmp_path):
    # a query between two classes: 6 neighbours of class 0, 4 of class 1, equally near
    X = np.vstack([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (4, 1))]).astype(np.float32)
    y = np.array([0] * 6 + [1] * 4)
    query = np.array([[1.0, 1.0]], np.float32)
    plain = KnnClassifier(k_grid=(10,), tau_grid=(1.0,)).fit(X, y)
    assert plain.predict_proba(query)[0, 0] == pytest.approx(0.6, abs=1e-3)
    weight = np.array([1.0] * 6 + [2.0] * 4)  # class 1's docs count twice: 8 votes against 6
    weighted = KnnClassifier(k_grid=(10,), tau_grid=(1.0,)).fit(X, y, sample_weight=weight)
    p = weighted.predict_proba(query)
    assert p[0, 1] == pytest.approx(8 / 14, abs=1e-3)
    # validation docs join the index with their own weights (1 when none are given)
    with_val = KnnClassifier(k_grid=(10,), tau_grid=(1.0,)).fit(X[1:], y[1:], X[:1], y[:1], sample_weight=weight[1:])
    assert with_val.weights_.tolist() == [*weight[1:].tolist(), 1.0]
    run = RunDir(str(tmp_path))
    assert weighted.save(run.fs, run.path("w")) == ["knn.safetensors", "knn.json"]
    assert np.allclose(KnnClassifier.load(run.fs, run.path("w")).predict_proba(query), p)
    plain.save(run.fs, run.path("p"))
    assert KnnClassifier.load(run.fs, run.path("p")).weights_ is None


def test_xgboost_subsamples_rows_and_columns_and_reloads_its_settings(tmp_path):
    emb, y = clusters(300, 3, 12, 1.5, seed=6)
    fit, val, test = np.arange(200), np.arange(200, 250), np.arange(250, 300)
    full = XGBoostTextClassifier(n_estimators=30, input="emb").fit(emb[fit], y[fit], emb[val], y[val])
    sub = XGBoostTextClassifier(n_estimators=30, input="emb", subsample=0.8, colsample_bytree=0.5)
    sub.fit(emb[fit], y[fit], emb[val], y[val])
    p = sub.predict_proba(emb[test])
    assert not np.allclose(p, full.predict_proba(emb[test]))  # other rows and columns, other trees
    assert np.mean(p.argmax(axis=1) == y[test]) > 0.8
    run = RunDir(str(tmp_path))
    sub.save(run.fs, run.path("x"))
    loaded = XGBoostTextClassifier.load(run.fs, run.path("x"))
    assert (loaded.subsample, loaded.colsample_bytree) == (0.8, 0.5)
    assert np.allclose(loaded.predict_proba(emb[test]), p)


def test_ensemble_on_tfidf_and_embeddings_weighs_members_on_validation(tmp_path):
    emb, y = clusters(500, 4, 24, 1.0, seed=4)
    X = stack_inputs(sparse_noise(500, 300, seed=5), emb)
    assert X.shape == (500, 324) and sp.issparse(X)
    fit, val, test = np.arange(250), np.arange(250, 370), np.arange(370, 500)
    members = [{"kind": "linear", "input": "tfidf", "c_grid": [1.0]}, {"kind": "knn", "input": "emb"},
               {"kind": "linear", "input": "emb", "c_grid": [1.0]}]
    model = EnsembleClassifier(input="tfidf+emb", members=members, weights="validation", emb_dim=24)
    model.fit(X[fit], y[fit], X[val], y[val])
    assert model.weights_.sum() == pytest.approx(1.0) and len(model.scores_) == 66  # step 0.1, 3 members
    assert model.weights_[0] <= 0.2  # the noise member gets little or no weight
    p = model.predict_proba(X[test])
    assert np.mean(p.argmax(axis=1) == y[test]) > 0.85
    run = RunDir(str(tmp_path))
    files = model.save(run.fs, run.path("e"))
    assert files[-1] == "ensemble.json" and "member1.knn.safetensors" in files
    loaded = EnsembleClassifier.load(run.fs, run.path("e"))
    assert np.allclose(loaded.predict_proba(X[test]), p, atol=1e-6)
    assert np.array_equal(loaded.weights_, model.weights_)


def test_ensemble_member_on_tfidf_and_embedding_picks_the_embedding_scale_on_validation(tmp_path):
    emb, y = clusters(500, 4, 24, 1.0, seed=7)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    X = stack_inputs(sparse_noise(500, 300, seed=8), emb)  # the TF-IDF part is noise, the embedding the signal
    fit, val, test = np.arange(250), np.arange(250, 370), np.arange(370, 500)
    joint = {"kind": "linear", "input": "tfidf+emb", "c_grid": [1.0]}
    model = EnsembleClassifier(input="tfidf+emb", emb_dim=24, weights="validation",
                               members=[{**joint, "emb_scale": [0.05, 3.0]}, {"kind": "knn", "input": "emb"}])
    model.fit(X[fit], y[fit], X[val], y[val])
    assert model.emb_scales_ == [3.0, None]  # the signal weighed up scores the lesser validation loss
    member = model.member_part(X[test], 0)
    assert member.shape == X[test].shape
    assert np.allclose(member[:, -24:].toarray(), 3.0 * emb[test], atol=1e-6)
    assert np.allclose(member[:, :300].toarray(), X[test][:, :300].toarray())
    p = model.predict_proba(X[test])
    assert np.mean(p.argmax(axis=1) == y[test]) > 0.85
    run = RunDir(str(tmp_path))
    model.save(run.fs, run.path("j"))
    loaded = EnsembleClassifier.load(run.fs, run.path("j"))
    assert loaded.emb_scales_ == [3.0, None] and np.allclose(loaded.predict_proba(X[test]), p)
    one = EnsembleClassifier(input="tfidf+emb", emb_dim=24, members=[{**joint, "emb_scale": 0.05}])
    assert one.fit(X[fit], y[fit], X[val], y[val]).emb_scales_ == [0.05]
    with pytest.raises(ValueError, match="emb_scale"):
        EnsembleClassifier(input="tfidf+emb", members=[{"kind": "linear", "input": "tfidf", "emb_scale": 0.5}])
    with pytest.raises(ValueError, match="emb_scale"):
        EnsembleClassifier(input="tfidf+emb", members=[{**joint, "emb_scale": [0.0, 1.0]}])
    with pytest.raises(ValueError, match="reads 'tfidf\\+emb', which an ensemble on 'tfidf' does not give"):
        EnsembleClassifier(members=[joint])


def test_ensemble_default_pair_and_bad_settings():
    X, y = clusters(200, 3, 12, 0.8, seed=6)
    X = sp.csr_matrix(X)
    model = EnsembleClassifier(linear={"c_grid": [1.0]}, xgboost={"n_estimators": 5, "max_features": 12})
    model.fit(X[:150], y[:150], X[150:], y[150:])
    assert [m.kind for m in model.members_] == ["linear", "xgboost"] and model.weights_.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="reads 'emb', which an ensemble on 'tfidf' does not give"):
        EnsembleClassifier(members=[{"kind": "knn", "input": "emb"}])
    with pytest.raises(ValueError, match="kind 'forest'"):
        EnsembleClassifier(members=[{"kind": "forest"}])
    with pytest.raises(ValueError, match="needs TF-IDF columns then 24 embedding columns"):
        EnsembleClassifier(input="tfidf+emb", members=[{"kind": "knn", "input": "emb"}], emb_dim=24).fit(
            X, y)
    assert len(simplex_grid(2, 0.5)) == 3 and all(w.sum() == pytest.approx(1) for w in simplex_grid(3, 0.25))
