"""Everything the report shows, read from the run directory: manifests and datasets only.

The report never imports another stage's code. It reads ``predictions/`` part by part (one
part in memory at a time, only the columns it counts), ``models/comparison.json`` and each
model's ``metrics.json``, every stage's manifest, and the ``rejects/`` and ``duplicates/``
datasets, and gathers them into one ``ReportData`` that the HTML and PDF renderers share.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.runs import Manifest, RunDir, now_iso
from pagecat.stages import STAGE_ORDER

PIPELINE_STAGES = [s for s in STAGE_ORDER if s != "report"]  # the report does not report on itself
NO_LABEL = "(none)"  # shown for a prediction or a reject whose value is null


@dataclass
class CategoryRow:
    """One predicted category: how many untagged docs got it and how sure the model was."""

    label: str
    docs: int
    share: float  # percent of all predictions, 0-100
    mean_probability: float | None  # mean of the predicted label's probability; None if all null


@dataclass
class Distribution:
    """Predicted categories of the untagged docs, most frequent first."""

    rows: list[CategoryRow]
    total: int
    models: dict[str, int]  # model name -> predictions it made (normally one model)
    parts: int  # prediction parts read


@dataclass
class ReportData:
    """What both renderers draw; built by ``collect``."""

    title: str
    run_url: str
    generated_at: str
    distribution: Distribution
    comparison: dict[str, Any] | None  # models/comparison.json, None when absent
    model_metrics: dict[str, dict[str, Any]]  # model name -> its metrics.json (those present)
    stages: list[Manifest]  # manifests of the pipeline stages that have run, in pipeline order
    rejects: dict[str, Counter]  # stage -> reason group -> rejected records
    duplicates: Counter  # duplicate kind (exact, url, near) -> pages dropped
    predict_setting: str = "best"  # cfg.predict.model, the rule that chose the prediction model
    notes: list[str] = field(default_factory=list)  # inputs that were unreadable, shown to the reader

    @property
    def best_model(self) -> str | None:
        return (self.comparison or {}).get("best")

    @property
    def class_balance(self) -> dict[str, Any]:
        """The label stage's ``extra``: class_counts, tagged, untagged (empty when absent)."""
        for m in self.stages:
            if m.stage == "label":
                return {k: m.extra[k] for k in ("class_counts", "tagged", "untagged") if k in m.extra}
        return {}


def require_predictions(run: RunDir) -> list[str]:
    """The prediction parts; UsageError naming `pagecat predict` when the stage has not produced them."""
    files = run.list_files("predictions", suffix=".parquet")
    if files:
        return files
    m = Manifest.load(run, "predict")
    if m.status != "complete" or m.counts.get("out", 0) > 0:
        raise UsageError(f"no predictions in {run.url('predictions')}; run `pagecat predict` first "
                         "(or `pagecat run`)")
    return files  # predict ran and had no untagged docs: the report says so


def category_distribution(run: RunDir, files: list[str]) -> Distribution:
    """Count predicted labels part by part and sum, so memory stays one part's two columns."""
    docs: Counter = Counter()
    prob_sum: dict[str, float] = defaultdict(float)
    prob_n: Counter = Counter()
    models: Counter = Counter()
    for path in files:
        part = run.read_part(path, columns=["label", "probability", "model"])
        grouped = part.group_by("label").aggregate(
            [("probability", "sum"), ("probability", "count"), ([], "count_all")])
        for row in grouped.to_pylist():
            label = row["label"] if row["label"] is not None else NO_LABEL
            docs[label] += row["count_all"]
            prob_sum[label] += row["probability_sum"] or 0.0
            prob_n[label] += row["probability_count"]
        for item in pc.value_counts(part.column("model")).to_pylist():
            models[item["values"] if item["values"] is not None else NO_LABEL] += item["counts"]
    total = sum(docs.values())
    rows = [
        CategoryRow(label=label, docs=n, share=100.0 * n / total,
                    mean_probability=prob_sum[label] / prob_n[label] if prob_n[label] else None)
        for label, n in sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return Distribution(rows=rows, total=total, models=dict(models.most_common()), parts=len(files))


def reason_group(reason: str | None) -> str:
    """A reject reason without its detail, which starts at " (" or ": " (a colon and a space).

    ``"too_short (3 words)"`` -> ``"too_short"``; ``"extract_failed: ValueError: x"`` ->
    ``"extract_failed"``. A colon with no space joins a reason's parts and is kept, so the
    crawl's ``"failed:http_404"`` and ``"filtered:offsite"`` stay apart.
    """
    if not reason:
        return NO_LABEL
    cut = min((i for i in (reason.find(" ("), reason.find(": ")) if i > 0), default=len(reason))
    return reason[:cut].strip()


def count_column(run: RunDir, folder: tuple[str, ...], column: str, key=lambda v: v) -> Counter:
    """Value counts of one column over every part of a dataset folder, part by part."""
    counts: Counter = Counter()
    for path in run.list_files(*folder, suffix=".parquet"):
        for item in pc.value_counts(run.read_part(path, columns=[column]).column(column)).to_pylist():
            counts[key(item["values"])] += item["counts"]
    return counts


def _read_json(run: RunDir, *parts: str, notes: list[str]) -> dict | None:
    if not run.exists(*parts):
        return None
    try:
        data = run.read_json(run.path(*parts))
    except ValueError as e:  # a half-written or hand-edited file: say so in the report, don't fail it
        notes.append(f"{'/'.join(parts)} could not be read: {e}")
        return None
    return data if isinstance(data, dict) else None


def collect(cfg: Config, run: RunDir) -> ReportData:
    """Read everything the report shows. Raises UsageError when there are no predictions."""
    files = require_predictions(run)
    notes: list[str] = []
    comparison = _read_json(run, "models", "comparison.json", notes=notes)
    model_metrics = {}
    for entry in (comparison or {}).get("models", []):
        name = str(entry.get("name", ""))
        metrics = _read_json(run, "models", name, "metrics.json", notes=notes) if name else None
        if metrics is not None:
            model_metrics[name] = metrics
    stages = [m for m in (Manifest.load(run, s) for s in PIPELINE_STAGES) if m.status != "new"]
    rejects = {s: c for s in PIPELINE_STAGES if (c := count_column(run, ("rejects", s), "reason", reason_group))}
    duplicates = count_column(run, ("duplicates",), "kind", lambda v: v or NO_LABEL)
    return ReportData(
        title=cfg.report.title, run_url=run.url(), generated_at=now_iso(),
        distribution=category_distribution(run, files), comparison=comparison,
        model_metrics=model_metrics, stages=stages, rejects=rejects, duplicates=duplicates,
        predict_setting=cfg.predict.model, notes=notes,
    )
