"""Every model name of ``train.models``: its class, its input, and how its settings build it.

A name is a kind (the class, which saves and loads itself) plus the input it reads: ``tfidf``,
``emb`` (the stored embeddings) or ``text`` (models that read the docs' text themselves).
"""

from __future__ import annotations

from pagecat.config import TrainSettings

from .charcnn import CharCnnClassifier
from .ensemble import EnsembleClassifier
from .models import LinearTextClassifier, XGBoostTextClassifier
from .transformer import TransformerClassifier

MODEL_KINDS = {"linear": LinearTextClassifier, "xgboost": XGBoostTextClassifier,
               "transformer": TransformerClassifier, "charcnn": CharCnnClassifier, "ensemble": EnsembleClassifier}
MODEL_INPUT = {"xgboost": "tfidf", "linear": "tfidf", "xgboost_emb": "emb", "linear_emb": "emb",
               "transformer": "text", "charcnn": "text", "ensemble": "tfidf"}


def build_model(name: str, settings: TrainSettings, embedding_model_path: str | None = None):
    """An unfitted classifier for the model name in ``train.models``, from its settings."""
    if name not in MODEL_INPUT:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_INPUT)}")
    threads = settings.threads
    if name in ("linear", "linear_emb"):
        s = settings.linear
        return LinearTextClassifier(c_grid=tuple(s.c_grid), max_iter=s.max_iter, seed=settings.seed,
                                    input=MODEL_INPUT[name])
    if name in ("xgboost", "xgboost_emb"):
        s = settings.xgboost
        return XGBoostTextClassifier(n_estimators=s.n_estimators, max_depth=s.max_depth,
                                     learning_rate=s.learning_rate, early_stopping_rounds=s.early_stopping_rounds,
                                     max_features=s.max_features, seed=settings.seed, n_jobs=max(threads, 1),
                                     input=MODEL_INPUT[name])
    if name == "ensemble":
        lin, xg = settings.linear, settings.xgboost
        return EnsembleClassifier(
            linear={"c_grid": list(lin.c_grid), "max_iter": lin.max_iter, "seed": settings.seed},
            xgboost={"n_estimators": xg.n_estimators, "max_depth": xg.max_depth, "learning_rate": xg.learning_rate,
                     "early_stopping_rounds": xg.early_stopping_rounds, "max_features": xg.max_features,
                     "n_jobs": max(threads, 1), "seed": settings.seed})
    if name == "transformer":
        s = settings.transformer
        return TransformerClassifier(model_path=s.model_path or embedding_model_path, max_length=s.max_length,
                                     epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                                     seed=settings.seed, threads=threads)
    s = settings.charcnn
    return CharCnnClassifier(max_chars=s.max_chars, channels=s.channels, epochs=s.epochs, batch_size=s.batch_size,
                             learning_rate=s.learning_rate, seed=settings.seed, threads=threads)
