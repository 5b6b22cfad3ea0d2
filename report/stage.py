"""The report stage: ``report.html`` and ``report.pdf`` in the run directory.

It reads manifests and datasets only (predictions, model comparison and metrics, rejects,
duplicates), never another stage's code. The work is one part: the inputs are summaries
(counts per label, per stage), so the one worker that builds the report reads the
prediction parts one at a time and keeps only their counts.
"""

from __future__ import annotations

from typing import Any

from distributed import Client

from pagecat.config import Config
from pagecat.report.collect import collect, require_predictions
from pagecat.report.html import render_html
from pagecat.report.pdf import render_pdf
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


class ReportStage(Stage):
    """Counts: in = predictions read, out = predictions summarised in the report (all of them),
    so in = out + rejected + dropped holds; ``files`` = report files written (2)."""

    name = "report"
    sections = ("report",)
    upstream = ("predict",)
    outputs = (HTML_NAME, PDF_NAME)
    unit = "predictions"

    def check(self, cfg: Config, run: RunDir) -> None:
        require_predictions(run)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        return [Part(id="report")]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        data = collect(cfg, run)
        run.write_bytes_atomic(run.path(HTML_NAME), render_html(data).encode("utf-8"))
        run.write_bytes_atomic(run.path(PDF_NAME), render_pdf(data))
        n = data.distribution.total
        return {"in": n, "out": n, "rejected": 0, "dropped": 0, "files": 2}

    def finish(self, cfg: Config, run: RunDir, client: Client, manifest: Manifest) -> dict[str, Any]:
        return {"report": run.url(HTML_NAME), "pdf": run.url(PDF_NAME)}
