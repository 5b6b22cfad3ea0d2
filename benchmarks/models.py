"""pagecat's classifiers against the plain baseline (TfidfVectorizer + LinearSVC), same folds, same run.

Datasets (``--datasets``):

- ``webkb``: WebKB 4 classes (course, faculty, project, student), leave-one-university-out:
  train on the other three universities + misc, test on the held-out one; 4 folds. Page text
  is pagecat's own extraction (``pagecat.etl.parse`` decode + ``HtmlExtractor``: title + main
  text, as docs carry it); pagecat's TF-IDF also reads the URL's words (``url_tokens``).
- ``mmlu``: the 57 MMLU subjects as classes (question + its four choices; dev and test files,
  14,327 questions, the CSV header rows skipped), 5-fold stratified.
- ``agnews`` (or ``ag_news``): AG News test split (4 classes, title + description), 5-fold
  stratified, for the char-CNN against its paper's table (Zhang, Zhao and LeCun 2015, trained
  on 120,000 docs).

Every setting is either fixed before any fold is run or chosen on a validation split carved
from the training fold (nested); none is chosen on a test fold:

- fixed: pagecat's TF-IDF (hashed, 2**18 columns a space, min_df 2): word 1-2-grams, sublinear
  tf; on WebKB the URL's words too; on MMLU and AG News also character 2-5-grams within words
  (MMLU's maths and science questions live in one-letter symbols and numbers that the word
  tokens drop). Class weights (the train stage's ``train.class_weight``): ``balanced`` on MMLU,
  whose 57 classes run from 100 to 1,534 questions while macro-F1 counts each class alike;
  none on WebKB and AG News. XGBoost: 300 rounds at most, depth 6, learning rate 0.1, rows
  subsampled 0.8 and columns 0.5 a tree, the 20,000 TF-IDF columns of best chi2 on the fit
  split. The ensembles' members, and ``ensemble`` (linear + XGBoost) averaging them equally.
- chosen on the validation split (10% of the training fold, class by class): the linear
  model's C (0.3, 1, 3) and temperature, the kNN's k and tau, the embedding's scale (0.5 or 1)
  in ``ensemble_emb``'s joint linear member, ``ensemble_emb``'s member weights (step 0.1),
  XGBoost's rounds (early stopping).

Each pagecat model is the class the train stage builds (``pagecat.train``), fed the features
the features stage makes (``TfidfModel`` fitted on the training fold; ``TextEncoder``
embeddings, which use no labels, computed once a run and kept in ``--work DIR``, default a
temporary folder, where a later run with the same texts finds them). Every model gets a
validation split carved from its training fold (C, temperature, early stopping), as in the
train stage. ``ensemble_emb`` is the linear model on the TF-IDF row and the embedding side by
side (``tfidf+emb``), kNN on embeddings and the linear model on embeddings, weighted on
validation; each member's own score is printed too (``ensemble_emb[linear/tfidf+emb]``: the
member fitted inside the ensemble, not a second fit).

    python benchmarks/models.py                    # webkb, every fast model (about 10 minutes on 2 cores)
    python benchmarks/models.py --datasets mmlu --models ensemble_emb
    python benchmarks/models.py --datasets agnews --models linear,xgboost,ensemble,ensemble_emb,charcnn
    python benchmarks/models.py --quick            # an eighth of WebKB, linear, xgboost, ensemble; < 1 minute
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tarfile
import tempfile
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
from pagecat.train.data import class_weights, validation_split
from pagecat.train.ensemble import EnsembleClassifier, stack_inputs
from pagecat.train.models import KnnClassifier, LinearTextClassifier, XGBoostTextClassifier
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
            rows = csv.reader(io.TextIOWrapper(tar.extractfile(member), encoding="utf-8"))
            next(rows)  # the header: question,choice0,choice1,choice2,choice3,answer
            for row in rows:
                docs.append({"url": "", "title": "", "text": "\n".join(row[:5]), "label": subject, "group": None})
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
C_GRID = (0.3, 1.0, 3.0)
EMB_SCALES = (0.5, 1.0)  # the embedding's weight beside the TF-IDF row in the joint linear member
# the TF-IDF each dataset gets (see the module docstring)
TFIDF = {"webkb": {"url_tokens": True}, "mmlu": {"char_ngrams": (2, 5)}, "agnews": {"char_ngrams": (2, 5)}}
# the train stage's ``train.class_weight`` each dataset gets (see the module docstring)
CLASS_WEIGHT = {"webkb": None, "mmlu": "balanced", "agnews": None}
EMB_DIM = 384


def make_model(name: str, quick: bool, threads: int, charcnn: dict | None = None):
    if name.startswith("linear"):
        return LinearTextClassifier(c_grid=C_GRID, n_jobs=threads, input="emb" if name.endswith("emb") else "tfidf")
    if name == "knn_emb":
        return KnnClassifier()
    if name.startswith("xgboost"):
        return XGBoostTextClassifier(n_estimators=40 if quick else 300, max_depth=6, n_jobs=threads,
                                     max_features=2000 if quick else 20000, subsample=0.8, colsample_bytree=0.5,
                                     input="emb" if name.endswith("emb") else "tfidf")
    if name == "ensemble":  # linear + xgboost probabilities averaged, members as above
        xgb = make_model("xgboost", quick, threads)
        return EnsembleClassifier(linear={"c_grid": list(C_GRID), "n_jobs": threads},
                                  xgboost={k: v for k, v in xgb.get_params().items() if k != "input"})
    if name == "ensemble_emb":  # words, characters and the embedding in one model; two views of the embedding space
        return EnsembleClassifier(input="tfidf+emb", weights="validation", emb_dim=EMB_DIM, members=[
            {"kind": "linear", "input": "tfidf+emb", "emb_scale": list(EMB_SCALES), "c_grid": list(C_GRID),
             "n_jobs": threads},
            {"kind": "knn", "input": "emb"},
            {"kind": "linear", "input": "emb", "c_grid": [1.0], "n_jobs": threads}])
    if name == "transformer":  # one epoch, short inputs, at most 5 minutes a fold: CPU-bound
        return TransformerClassifier(max_length=64, epochs=1, batch_size=16, threads=threads, max_seconds=300)
    if name == "charcnn":  # far smaller than the paper's (1014 chars, 256 or 1024 channels): CPU-bound
        return CharCnnClassifier(threads=threads, **charcnn)
    raise ValueError(name)


def rows(X, idx: np.ndarray):
    return [X[i] for i in idx] if isinstance(X, list) else X[idx]


def cached_embeddings(texts: list[str], work: Path, dataset: str) -> np.ndarray:
    """MiniLM embeddings of ``texts``, computed once and kept in ``work`` (keyed by the texts, the
    encoder's settings and the precision it runs at here), so every fold and model, and a later
    run, reads the same file."""
    encoder = TextEncoder(max_length=128, batch_size=64)
    settings = [*sorted(encoder.settings().items()), ("precision", encoder.effective_precision())]
    key = hashlib.sha256("\x00".join([repr(settings), *texts]).encode()).hexdigest()[:16]
    path = work / f"embeddings-{dataset}-{key}.npy"
    if path.exists():
        print(f"  [{dataset}] embeddings of {len(texts)} docs read from {path}", flush=True)
        return np.load(path)
    with Timer() as t:
        emb = encoder.encode(texts)
    np.save(path, emb)
    print(f"  [{dataset}] embeddings of {len(texts)} docs: {t.seconds:.0f}s (kept in {path})", flush=True)
    return emb


def evaluate(dataset: str, docs: list[dict], models: list[str], quick: bool, threads: int, work: Path,
             charcnn: dict) -> list[Result]:
    classes = sorted({d["label"] for d in docs})
    y = np.array([classes.index(d["label"]) for d in docs])
    texts = [f"{d['title']}\n{d['text']}" for d in docs]
    embeddings = None
    emb_seconds = 0.0
    if any(m.endswith("_emb") for m in models):
        with Timer() as t:
            embeddings = cached_embeddings(texts, work, dataset)
        emb_seconds = t.seconds
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in ["baseline", *models]}
    seconds = dict.fromkeys(scores, 0.0)
    for fold, tr, te in folds(docs, y, dataset):
        fold_start = t0 = time.perf_counter()
        vec = TfidfVectorizer()
        svc = LinearSVC().fit(vec.fit_transform([texts[i] for i in tr]), y[tr])
        pred = svc.predict(vec.transform([texts[i] for i in te]))
        seconds["baseline"] += time.perf_counter() - t0
        scores["baseline"].append((accuracy_score(y[te], pred), f1_score(y[te], pred, average="macro")))
        print(f"  [{dataset}] {fold:10s} {'baseline':12s} acc={scores['baseline'][-1][0]:.3f} "
              f"macro-F1={scores['baseline'][-1][1]:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        tfidf = TfidfModel(n_features=2**18, **TFIDF[dataset])
        composed = [tfidf.compose(d["title"], d["text"], d["url"]) for d in docs]
        t0 = time.perf_counter()
        tfidf.fit([composed[i] for i in tr])
        X_tfidf = tfidf.transform(composed)
        tfidf_seconds = time.perf_counter() - t0
        X_both = stack_inputs(X_tfidf, embeddings) if "ensemble_emb" in models else None
        fit, val = validation_split(y[tr], 0.1, 0)
        weights = class_weights(y[tr], len(classes), CLASS_WEIGHT[dataset])  # from the training fold's counts
        w_fit, w_val = (None, None) if weights is None else (weights[fit], weights[val])
        fit, val = tr[fit], tr[val]
        for name in models:
            if name in ("transformer", "charcnn"):
                X = [[t] for t in texts]
            elif name == "ensemble_emb":
                X = X_both
            else:
                X = embeddings if name.endswith("_emb") else X_tfidf
            t0 = time.perf_counter()
            model = make_model(name, quick, threads, charcnn).fit(rows(X, fit), y[fit], rows(X, val), y[val],
                                                                  sample_weight=w_fit, sample_weight_val=w_val)
            pred = model.predict_proba(rows(X, te)).argmax(axis=1)
            took = time.perf_counter() - t0 + (tfidf_seconds if X is X_tfidf or X is X_both else 0.0)
            seconds[name] += took
            scores[name].append((accuracy_score(y[te], pred), f1_score(y[te], pred, average="macro")))
            print(f"  [{dataset}] {fold:10s} {name:12s} acc={scores[name][-1][0]:.3f} "
                  f"macro-F1={scores[name][-1][1]:.3f} ({took:.0f}s){describe(model)}", flush=True)
            for label, member_pred in member_predictions(name, model, rows(X, te)):
                scores.setdefault(label, []).append((accuracy_score(y[te], member_pred),
                                                     f1_score(y[te], member_pred, average="macro")))
                print(f"  [{dataset}] {fold:10s}   {label:28s} acc={scores[label][-1][0]:.3f} "
                      f"macro-F1={scores[label][-1][1]:.3f}", flush=True)
        print(f"  [{dataset}] {fold:10s} fold done in {time.perf_counter() - fold_start:.0f}s", flush=True)
    results = []
    for name, s in scores.items():
        system = "baseline (TfidfVectorizer+LinearSVC)" if name == "baseline" else f"pagecat {name}"
        acc, f1 = np.mean(s, axis=0)
        results += [Result(system, dataset, "accuracy", float(acc)), Result(system, dataset, "macro_f1", float(f1))]
        if name in seconds:
            extra = emb_seconds if name.endswith("_emb") else 0.0  # the embeddings count for each model on them
            results.append(Result(system, dataset, "seconds", seconds[name] + extra, "s"))
    return results


def describe(model) -> str:
    """What the validation split chose, for the log."""
    if isinstance(model, EnsembleClassifier):
        return (f" weights={np.round(model.weights_, 2).tolist()} emb_scales={model.emb_scales_} member fit "
                f"seconds={np.round(model.member_seconds_, 1).tolist()}")
    if isinstance(model, LinearTextClassifier):
        return f" C={model.C_}"
    if isinstance(model, CharCnnClassifier):
        return f" epochs={len(model.history_)}"
    return ""


def member_predictions(name: str, model, X):
    """(label, predicted classes) of each member of an ensemble, as fitted inside it."""
    if not isinstance(model, EnsembleClassifier):
        return
    for i, (spec, member) in enumerate(zip(model.member_specs(), model.members_, strict=True)):
        yield f"{name}[{spec['kind']}/{spec['input']}]", member.predict_proba(model.member_part(X, i)).argmax(axis=1)


def main() -> None:
    def extra(p):
        p.add_argument("--datasets", default="webkb", help="comma list of webkb, mmlu, agnews (or ag_news)")
        p.add_argument("--models", default=DEFAULT_MODELS,
                       help="comma list of linear, xgboost, ensemble, linear_emb, xgboost_emb, knn_emb, "
                            "ensemble_emb, transformer, charcnn")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--work", metavar="DIR", help="where the embeddings are kept (default: a temporary folder)")
        p.add_argument("--charcnn-chars", type=int, default=256, help="characters the char-CNN reads (paper: 1014)")
        p.add_argument("--charcnn-channels", type=int, default=64, help="char-CNN channels (paper: 256, 1024)")
        p.add_argument("--charcnn-epochs", type=int, default=10, help="at most this many epochs (early stopping)")
        p.add_argument("--charcnn-seconds", type=float, default=150.0,
                       help="the char-CNN stops after the epoch that passes this many seconds of training")

    args = parse_args("models", "pagecat classifiers vs TfidfVectorizer+LinearSVC (WebKB LOUO, MMLU, AG News)",
                      extra)
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    models = ["linear", "xgboost", "ensemble"] if args.quick else args.models.split(",")
    datasets = ["webkb"] if args.quick else [d.replace("ag_news", "agnews") for d in args.datasets.split(",")]
    results = []
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="pagecat-bench-models-")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    charcnn = {"max_chars": args.charcnn_chars, "channels": args.charcnn_channels,
               "epochs": args.charcnn_epochs, "max_seconds": args.charcnn_seconds}
    with Timer() as total:
        for dataset in datasets:
            with Timer() as t:
                if dataset == "webkb":
                    docs = load_webkb(data, step=8 if args.quick else 1)
                else:
                    docs = load_mmlu(data) if dataset == "mmlu" else load_agnews(data)
            print(f"[{dataset}] {len(docs)} docs read and extracted in {t.seconds:.0f}s", flush=True)
            results += evaluate(dataset, docs, models, args.quick, args.threads, work, charcnn)
    if tmp is not None:
        tmp.cleanup()
    results.append(Result("pagecat+baseline", "all", "total_seconds", total.seconds, "s"))
    results.append(Result("pagecat+baseline", "all", "peak_rss_mb", peak_rss_mb(), "MB"))
    baseline = "baseline (TfidfVectorizer+LinearSVC)"
    report("models", results, args, ratios=[(f"pagecat {m}", baseline, metric) for m in models
                                            for metric in ("accuracy", "macro_f1")])
    if "agnews" in datasets:
        print("AG News test error (%) in Zhang et al. 2015, Table 4 (trained on 120,000 docs; here 5-fold on "
              "the 7,600 test docs, ~6,000 to train):")
        for k, v in AGNEWS_PAPER.items():
            print(f"  {k}: {v}")
        print(f"pagecat here (5-fold mean test error, %; char-CNN: {args.charcnn_chars} chars, "
              f"{args.charcnn_channels} channels, at most {args.charcnn_epochs} epochs or "
              f"{args.charcnn_seconds:.0f}s of training a fold):")
        for r in results:
            if r.dataset == "agnews" and r.metric == "accuracy":
                print(f"  {r.system}: {100 * (1 - r.value):.2f}")
    print(f"time used: {total.seconds:.0f}s")


if __name__ == "__main__":
    main()
