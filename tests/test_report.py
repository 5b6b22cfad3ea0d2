"""The report stage: HTML and PDF built from a run directory written by hand in the real formats.

The run directory holds two prediction parts (PREDICTIONS schema), a model comparison and one
model's metrics, manifests of the stages before it and reject / duplicate parts. The tests read
the numbers back out of the HTML (by table id and data-* attributes) and compare them with
what was written.
"""

from __future__ import annotations

import json
from collections import Counter
from html.parser import HTMLParser

import pytest
from distributed import Client, LocalCluster

from pagecat.config import load_config
from pagecat.errors import UsageError
from pagecat.report.charts import bar_chart_svg
from pagecat.report.collect import collect, reason_group
from pagecat.report.html import build_html, render_html
from pagecat.report.pdf import render_pdf
from pagecat.report.stage import ReportStage
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DUPLICATES, PREDICTIONS, REJECTS, table
from pagecat.stage import execute

ODD_LABEL = "<b>&x"
PARTS = {
    "part-00000": ["student"] * 5 + ["course"] * 3 + [ODD_LABEL] * 2 + ["faculty"],
    "part-00001": ["student"] * 2 + ["faculty"] * 4 + ["course"] + ["project"],
}
COMPARISON = {
    "models": [
        {"name": "xgboost", "accuracy": 0.8125, "macro_f1": 0.7713, "top3_accuracy": 0.96, "ece": 0.041,
         "train_seconds": 12.5, "predict_docs_per_s": 20431.2, "n_train": 800, "n_test": 200},
        {"name": "linear", "accuracy": 0.79, "macro_f1": 0.7402, "top3_accuracy": 0.95, "ece": 0.087,
         "train_seconds": 1.25, "predict_docs_per_s": 91000.0, "n_train": 800, "n_test": 200},
    ],
    "best": "xgboost",
    "classes": ["course", "faculty", "project", "student"],
    "docs_version": "v1",
}
METRICS = {
    "per_class": {c: {"precision": 0.8, "recall": 0.7, "f1": f1, "support": 50}
                  for c, f1 in zip(COMPARISON["classes"], [0.91, 0.74, 0.42, 0.88])},
    "confusion": {"labels": COMPARISON["classes"],
                  "matrix": [[45, 2, 1, 2], [3, 37, 4, 6], [5, 9, 21, 15], [1, 3, 2, 44]]},
}
REJECT_REASONS = ["too_short (3 words)", "too_short (1 words)", "not_html: application/pdf", "http_404",
                  "too_short (2 words)"]


class _Tables(HTMLParser):
    """Rows of each table with an id: {table id: [the row's attributes]}, plus the svg count."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.ids: dict[str, dict[str, str]] = {}
        self._current: str | None = None
        self.svgs = 0

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = a
        if tag == "table":
            self._current = a.get("id")
            if self._current:
                self.tables[self._current] = []
        elif tag == "tr" and self._current:
            self.tables[self._current].append(a)
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._current = None


def parse(html: str) -> _Tables:
    p = _Tables()
    p.feed(html)
    return p


def _rows(p: _Tables, table_id: str, key: str) -> list[dict[str, str]]:
    return [r for r in p.tables[table_id] if key in r]


def write_run(root, *, predictions: bool = True) -> RunDir:
    """A run directory as the stages before the report leave it."""
    run = RunDir(str(root))
    if predictions:
        for part_id, labels in PARTS.items():
            rows = [{"doc_id": f"{part_id}-{i}", "url": f"http://example.edu/{part_id}/{i}", "label": label,
                     "probability": 0.5 + 0.04 * i, "top_labels": [label, "other"],
                     "top_probabilities": [0.5 + 0.04 * i, 0.1], "model": "xgboost"}
                    for i, label in enumerate(labels)]
            run.write_table(run.path("predictions", f"{part_id}.parquet"), table(rows, PREDICTIONS))
    run.write_json(run.path("models", "comparison.json"), COMPARISON)
    run.write_json(run.path("models", "xgboost", "metrics.json"), METRICS)  # linear has none: tolerated
    n_pred = sum(map(len, PARTS.values()))
    manifests = [
        ("parse", {"in": 120, "out": 115, "rejected": 5, "dropped": 0, "bytes": 99_000}, {}),
        ("dedup", {"in": 115, "out": 110, "rejected": 0, "dropped": 5}, {}),
        ("label", {"in": 110, "out": 110, "rejected": 0, "dropped": 0},
         {"class_counts": {"student": 40, "faculty": 30, "course": 25, "project": 15},
          "tagged": 110 - n_pred, "untagged": n_pred}),
        ("train", {"in": 110 - n_pred, "out": 110 - n_pred, "rejected": 0, "dropped": 0}, {}),
        ("predict", {"in": n_pred, "out": n_pred, "rejected": 0, "dropped": 0}, {"model": "xgboost"}),
    ]
    for stage, counts, extra in manifests:
        Manifest(stage=stage, status="complete", counts=counts, seconds=2.0, extra=extra,
                 finished_at="2026-01-02T03:04:05Z").save(run)
    Manifest(stage="features", status="new").save(run)  # never run: left out of the pipeline table
    for i, chunk in enumerate([REJECT_REASONS[:2], REJECT_REASONS[2:]]):
        rows = [{"source": f"in.warc.gz:{j}", "stage": "parse", "reason": r, "record": f"http://x/{j}"}
                for j, r in enumerate(chunk)]
        run.write_table(run.path("rejects", "parse", f"p{i}.parquet"), table(rows, REJECTS))
    dups = [{"page_id": str(i), "url": f"http://x/{i}", "kept_id": "k", "kind": kind, "similarity": 1.0}
            for i, kind in enumerate(["exact", "exact", "exact", "url", "near"])]
    run.write_table(run.path("duplicates", "p0.parquet"), table(dups, DUPLICATES))
    return run


def expected_counts(run: RunDir) -> Counter:
    """Labels counted straight from the prediction parts, independently of the report code."""
    counts: Counter = Counter()
    for path in run.list_files("predictions", suffix=".parquet"):
        counts.update(run.read_part(path, columns=["label"]).column("label").to_pylist())
    return counts


@pytest.fixture
def cfg(tmp_path):
    return load_config(overrides={"run": {"dir": str(tmp_path)}, "report": {"title": "WebKB <test> & co"}})


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            yield c


def test_category_table_counts_equal_the_prediction_parts(tmp_path, cfg):
    run = write_run(tmp_path)
    p = parse(build_html(cfg, run))
    rows = _rows(p, "category-distribution", "data-label")
    got = {r["data-label"]: int(r["data-count"]) for r in rows}
    want = expected_counts(run)
    assert got == dict(want)
    assert [int(r["data-count"]) for r in rows] == sorted(want.values(), reverse=True)
    assert int(_rows(p, "category-distribution", "data-total")[0]["data-total"]) == sum(want.values()) == 19


def test_mean_probability_and_models_are_aggregated_over_parts(tmp_path, cfg):
    run = write_run(tmp_path)
    d = collect(cfg, run).distribution
    faculty = next(r for r in d.rows if r.label == "faculty")
    # faculty: index 10 of part 0, indexes 2..5 of part 1
    want = sum(0.5 + 0.04 * i for i in (10, 2, 3, 4, 5)) / 5
    assert faculty.mean_probability == pytest.approx(want, abs=1e-6)
    assert faculty.share == pytest.approx(100 * 5 / 19)
    assert d.models == {"xgboost": 19} and d.parts == 2


def test_model_table_matches_comparison_json(tmp_path, cfg):
    run = write_run(tmp_path)
    html = build_html(cfg, run)
    p = parse(html)
    rows = _rows(p, "model-comparison", "data-model")
    assert [r["data-model"] for r in rows] == [m["name"] for m in COMPARISON["models"]]
    for r, m in zip(rows, COMPARISON["models"]):
        assert float(r["data-accuracy"]) == m["accuracy"]
        assert float(r["data-macro-f1"]) == m["macro_f1"]
    assert [r.get("class") for r in rows] == ["best", ""]  # best highlighted
    assert "used for predictions" in html
    per_class = {r["data-label"]: float(r["data-f1"]) for r in _rows(p, "per-class", "data-f1")}
    assert per_class == {c: v["f1"] for c, v in METRICS["per_class"].items()}
    assert "confusion" in p.tables


def test_text_is_escaped(tmp_path, cfg):
    run = write_run(tmp_path)
    html = build_html(cfg, run)
    assert ODD_LABEL not in html and "<test>" not in html
    assert "&lt;b&gt;&amp;x" in html and "WebKB &lt;test&gt; &amp; co" in html
    labels = [r["data-label"] for r in _rows(parse(html), "category-distribution", "data-label")]
    assert ODD_LABEL in labels  # escaped in the file, read back whole


def test_pipeline_and_data_quality(tmp_path, cfg):
    run = write_run(tmp_path)
    p = parse(build_html(cfg, run))
    stages = {r["data-stage"]: r for r in _rows(p, "pipeline", "data-stage")}
    assert list(stages) == ["parse", "dedup", "label", "train", "predict"]  # pipeline order, "new" skipped
    assert (stages["parse"]["data-in"], stages["parse"]["data-rejected"]) == ("120", "5")
    assert stages["dedup"]["data-dropped"] == "5"
    rejects = {r["data-stage"]: r["data-rejected"] for r in _rows(p, "rejects", "data-stage")}
    assert rejects == {"parse": "5"}
    assert p.ids["duplicates"]["data-dropped"] == "5"
    balance = {r["data-label"]: int(r["data-count"]) for r in _rows(p, "class-balance", "data-label")}
    assert balance == {"student": 40, "faculty": 30, "course": 25, "project": 15}
    data = collect(cfg, run)
    assert data.rejects["parse"] == Counter({"too_short": 3, "not_html": 1, "http_404": 1})
    assert data.duplicates == Counter({"exact": 3, "url": 1, "near": 1})


def test_reason_groups_drop_the_detail():
    assert reason_group("too_short (3 words)") == "too_short"
    assert reason_group("extract_failed: ValueError: bad (x)") == "extract_failed"
    assert reason_group("failed:http_404") == "failed:http_404"  # the crawl's outcome:reason, kept whole
    assert reason_group("failed:timeout (after 3 tries)") == "failed:timeout"
    assert reason_group("timeout") == "timeout"
    assert reason_group(None) == "(none)"


def test_bar_chart_has_one_bar_per_item_and_escapes():
    svg = bar_chart_svg([("a", 3), (ODD_LABEL, 1), ("c", 0)], title="t & u")
    assert svg.count("<rect") == 3 and ODD_LABEL not in svg and "t &amp; u" in svg
    assert bar_chart_svg([], title="empty") == ""


def test_missing_comparison_and_metrics_are_tolerated(tmp_path, cfg):
    run = write_run(tmp_path)
    run.remove("models")
    html = build_html(cfg, run)
    p = parse(html)
    assert "model-comparison" not in p.tables and "comparison.json is missing" in html
    assert len(_rows(p, "category-distribution", "data-label")) == 5


def test_no_predictions_is_a_usage_error_naming_predict(tmp_path, cfg):
    run = write_run(tmp_path, predictions=False)
    Manifest(stage="predict").save(run)  # predict never completed
    with pytest.raises(UsageError, match="pagecat predict"):
        build_html(cfg, run)


def test_predict_with_no_untagged_docs_gives_an_empty_distribution(tmp_path, cfg):
    run = write_run(tmp_path, predictions=False)  # predict manifest complete, but out = 19 ...
    m = Manifest.load(run, "predict")
    m.counts = {"in": 0, "out": 0, "rejected": 0, "dropped": 0}  # ... make it a run with nothing untagged
    m.save(run)
    data = collect(cfg, run)
    assert data.distribution.total == 0 and data.distribution.rows == []
    assert "no untagged docs" in render_html(data)
    assert render_pdf(data).startswith(b"%PDF")


def test_stage_writes_html_and_pdf(tmp_path, cfg, client):
    run = write_run(tmp_path)
    m = execute(ReportStage(), cfg, run, client, progress=False)
    assert m.status == "complete"
    assert m.counts == {"in": 19, "out": 19, "rejected": 0, "dropped": 0, "files": 2}
    assert m.extra == {"report": run.url("report.html"), "pdf": run.url("report.pdf")}
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    rows = _rows(parse(html), "category-distribution", "data-label")
    assert {r["data-label"]: int(r["data-count"]) for r in rows} == dict(expected_counts(run))
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 3
    assert "http" not in "".join(line for line in html.splitlines() if "src=" in line)  # nothing fetched
    assert json.loads((tmp_path / "manifests" / "report.json").read_text())["status"] == "complete"


def test_stage_without_predictions_stops_before_work(tmp_path, cfg, client):
    run = RunDir(str(tmp_path))
    with pytest.raises(UsageError, match="pagecat predict"):
        execute(ReportStage(), cfg, run, client, progress=False)
    assert not (tmp_path / "report.html").exists()
