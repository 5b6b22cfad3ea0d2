"""pagecat's classifiers against the plain baseline (TfidfVectorizer + LinearSVC), same folds, same run.

Datasets (``--datasets``):

- ``webkb``: WebKB 4 classes (course, faculty, project, student), leave-one-university-out:
  train on the other three universities + misc, test on the held-out one; 4 folds. Page text
  is pagecat's own extraction (``pagecat.etl.parse`` decode + ``HtmlExtractor``: title + main
  text, as docs carry it); pagecat's TF-IDF also reads the URL's words (``url_tokens``).
- ``mmlu``: the 57 MMLU subjects as classes (question + choices), 5-fold stratified.
- ``agnews``: AG News test split (4 classes, title + description), 5-fold stratified, for the
  char-CNN against its paper's table (Zhang, Zhao and LeCun 2015, trained on 120,000 docs).

Each pagecat model is the class the train stage builds (``pagecat.train``), fed the features
the features stage makes (``TfidfModel`` fitted on the training fold; ``TextEncoder``
embeddings, which use no labels). Every model gets a validation split carved from its
training fold (C, temperature, early stopping), as in the train stage.

    python benchmarks/models.py                    # webkb, every fast model (about 10 minutes on 2 cores)
    python benchmarks/models.py --datasets webkb,mmlu,agnews --models linear,xgboost,charcnn
    python benchmarks/models.py --quick            # an eighth of WebKB, linear, xgboost, ensemble; < 1 minute
"""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
import time
from pathlib import Path

import numpy as np
from common import Result, Timer, parse_args, peak_rss_mb, report
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from pagecat.data.webkb import read_archive, split_http_response
from pagecat.features.embed import TextEncoder
from pagecat.features.tfidf import TfidfModel
from pagecat.train.charcnn import CharCnnClassifier
from pagecat.train.data import validation_split
from pagecat.train.ensemble import EnsembleClassifier
from pagecat.train.models import LinearTextClassifier, XGBoostTextClassifier
from pagecat.train.transformer import TransformerClassifier

WEBKB_CLASSES = ("course", "faculty", "project", "student")
DEFAULT_MODELS = "linear,xgboost,ensemble,linear_emb,xgboost_emb"
# Zhang et al. 2015, Table 4, AG's News test error (%), models trained on the 120,000 training docs.
AGNEWS_PAPER = {"char-CNN large (Lg. Conv.)": 12.82, "char-CNN small (Sm. Conv.)": 15.65,
                "n-grams TFIDF (their best)": 7.64}


# -- data ---------------------------------------------------------------------------------
def load_webkb(data: Path, step: int = 1) -> list[dict]:
    from pagecat.etl.parse.decode import decode_html
    from pagecat.etl.parse.extract import ExtractRejected, HtmlExtractor

    extractor, docs = HtmlExtractor(), []
    for i, rec in enumerate(r for r in read_archive(data / "webkb") if r["label"] in WEBKB_CLASSES):
        if i % step:
            continue
        headers, body = split_http_response(rec["raw"])
        html, _ = decode_html(body, headers.get("Content-Type"))
        try:
            e = extractor.extract(html)
            title, text = e.title or "", e.text
        except ExtractRejected:  # kept with no text, as a page the parse stage would reject
            title, text = "", ""
        docs.append({"url": rec["url"], "title": title, "text": text, "label": rec["label"],
                     "group": rec["university"]})
    return docs


def load_mmlu(data: Path) -> list[dict]:
    docs = []
    with tarfile.open(data / "mmlu" / "mmlu_dev_test_csv.tar.gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".csv"):
                continue
            subject = Path(member.name).stem.rsplit("_", 1)[0]
            for row in csv.reader(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8")):
                docs.append({"url": "", "title": "", "text": " ".join(row[:5]), "label": subject, "group": None})
    return docs


def load_agnews(data: Path) -> list[dict]:
    names = (data / "ag_news" / "classes.txt").read_text().split()
    with gzip.open(data / "ag_news" / "test.csv.gz", "rt", encoding="utf-8") as f:
        return [{"url": "", "title": t, "text": d.replace("\\", " "), "label": names[int(c) - 1], "group": None}
                for c, t, d in csv.reader(f)]


def folds(docs: list[dict], y: np.ndarray, dataset: str, seed: int = 0):
    """(name, train indices, test indices) for each fold."""
    if dataset == "webkb":
        groups = np.array([d["group"] for d in docs])
        for uni in ("cornell", "texas", "washington", "wisconsin"):
            yield uni, np.flatnonzero(groups != uni), np.flatnonzero(groups == uni)
        return
    for k, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
        yield f"fold{k}", tr, te


# -- models -------------------------------------------------------------------------------
def make_model(name: str, quick: bool, threads: int):
    if name.startswith("linear"):
        return LinearTextClassifier(c_grid=(1.0, 10.0, 100.0), input="emb" if name.endswith("emb") else "tfidf")
    if name.startswith("xgboost"):
        return XGBoostTextClassifier(n_estimators=40 if quick else 300, max_depth=6, n_jobs=threads,
                                     max_features=2000 if quick else 20000,
                                     input="emb" if name.endswith("emb") else "tfidf")
    if name == "ensemble":  # linear + xgboost probabilities averaged, members as above
        xgb = make_model("xgboost", quick, threads)
        return EnsembleClassifier(linear={"c_grid": [1.0, 10.0, 100.0]},
                                  xgboost={k: v for k, v in xgb.get_params().items() if k != "input"})
    if name == "transformer":  # one epoch, short inputs, at most 5 minutes a fold: CPU-bound
        return TransformerClassifier(max_length=64, epochs=1, batch_size=16, threads=threads, max_seconds=300)
    if name == "charcnn":
        return CharCnnClassifier(max_chars=512, channels=128, epochs=8, threads=threads, max_seconds=300)
    raise ValueError(name)


def rows(X, idx: np.ndarray):
    return [X[i] for i in idx] if isinstance(X, list) else X[idx]


def evaluate(dataset: str, docs: list[dict], models: list[str], quick: bool, threads: int) -> list[Result]:
    classes = sorted({d["label"] for d in docs})
    y = np.array([classes.index(d["label"]) for d in docs])
    texts = [f"{d['title']}\n{d['text']}" for d in docs]
    embeddings = None
    if any(m.endswith("_emb") for m in models):
        with Timer() as t:
            embeddings = TextEncoder(max_length=128, batch_size=64).encode(texts)
        print(f"  [{dataset}] embeddings of {len(docs)} docs: {t.seconds:.0f}s", flush=True)
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in ["baseline", *models]}
    seconds = dict.fromkeys(scores, 0.0)
    for fold, tr, te in folds(docs, y, dataset):
        t0 = time.perf_counter()
        vec = TfidfVectorizer()
        svc = LinearSVC().fit(vec.fit_transform([texts[i] for i in tr]), y[tr])
        pred = svc.predict(vec.transform([texts[i] for i in te]))
        seconds["baseline"] += time.perf_counter() - t0
        scores["baseline"].append((accuracy_score(y[te], pred), f1_score(y[te], pred, average="macro")))
        tfidf = TfidfModel(n_features=2**18, url_tokens=dataset == "webkb")
        composed = [tfidf.compose(d["title"], d["text"], d["url"]) for d in docs]
        t0 = time.perf_counter()
        tfidf.fit([composed[i] for i in tr])
        X_tfidf = tfidf.transform(composed)
        tfidf_seconds = time.perf_counter() - t0
        fit, val = validation_split(y[tr], 0.1, 0)
        fit, val = tr[fit], tr[val]
        for name in models:
            if name in ("transformer", "charcnn"):
                X = [[t] for t in texts]
            else:
                X = embeddings if name.endswith("_emb") else X_tfidf
            t0 = time.perf_counter()
            model = make_model(name, quick, threads).fit(rows(X, fit), y[fit], rows(X, val), y[val])
            pred = model.predict_proba(rows(X, te)).argmax(axis=1)
            seconds[name] += time.perf_counter() - t0 + (tfidf_seconds if X is X_tfidf else 0.0)
            scores[name].append((accuracy_score(y[te], pred), f1_score(y[te], pred, average="macro")))
            print(f"  [{dataset}] {fold:10s} {name:12s} acc={scores[name][-1][0]:.3f} "
                  f"macro-F1={scores[name][-1][1]:.3f}", flush=True)
    results = []
    for name, s in scores.items():
        system = "baseline (TfidfVectorizer+LinearSVC)" if name == "baseline" else f"pagecat {name}"
        acc, f1 = np.mean(s, axis=0)
        results += [Result(system, dataset, "accuracy", float(acc)), Result(system, dataset, "macro_f1", float(f1)),
                    Result(system, dataset, "seconds", seconds[name], "s")]
    return results


def main() -> None:
    def extra(p):
        p.add_argument("--datasets", default="webkb", help="comma list of webkb, mmlu, agnews")
        p.add_argument("--models", default=DEFAULT_MODELS,
                       help="comma list of linear, xgboost, ensemble, linear_emb, xgboost_emb, transformer, charcnn")
        p.add_argument("--threads", type=int, default=2)

    args = parse_args("models", "pagecat classifiers vs TfidfVectorizer+LinearSVC (WebKB LOUO, MMLU, AG News)",
                      extra)
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    models = ["linear", "xgboost", "ensemble"] if args.quick else args.models.split(",")
    datasets = ["webkb"] if args.quick else args.datasets.split(",")
    results = []
    with Timer() as total:
        for dataset in datasets:
            with Timer() as t:
                if dataset == "webkb":
                    docs = load_webkb(data, step=8 if args.quick else 1)
                else:
                    docs = load_mmlu(data) if dataset == "mmlu" else load_agnews(data)
            print(f"[{dataset}] {len(docs)} docs read and extracted in {t.seconds:.0f}s", flush=True)
            results += evaluate(dataset, docs, models, args.quick, args.threads)
    results.append(Result("pagecat+baseline", "all", "total_seconds", total.seconds, "s"))
    results.append(Result("pagecat+baseline", "all", "peak_rss_mb", peak_rss_mb(), "MB"))
    report("models", results, args, ratios=[("pagecat linear", "baseline (TfidfVectorizer+LinearSVC)", "accuracy"),
                                            ("pagecat xgboost", "baseline (TfidfVectorizer+LinearSVC)", "accuracy")])
    if "agnews" in datasets:
        print("AG News test error (%) in Zhang et al. 2015, Table 4 (trained on 120,000 docs; here 5-fold on "
              "the 7,600 test docs, ~6,000 to train):")
        for k, v in AGNEWS_PAPER.items():
            print(f"  {k}: {v}")
    print(f"time used: {total.seconds:.0f}s")


if __name__ == "__main__":
    main()
