"""The PDF report: three A4 landscape pages drawn with matplotlib's Agg-based PDF backend.

Page 1: category distribution (bar chart + table); page 2: model comparison (+ per-class F1 of
the best model); page 3: pipeline stage counts and rejects. Figures are built with
``matplotlib.figure.Figure`` directly, not pyplot, so no global backend or state is touched and
the function is safe in a Dask worker thread.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from pagecat.report.charts import ACCENT, ACCENT_BEST
from pagecat.report.collect import ReportData

PAGE = (11.69, 8.27)  # A4 landscape, inches
MAX_ROWS = 25  # table rows per page; the rest are summed into one "other" row


def _fmt(v, fmt: str = "{:.3f}") -> str:
    return "\u2013" if v is None else fmt.format(v)


def _page(title: str, subtitle: str) -> Figure:
    fig = Figure(figsize=PAGE)
    fig.text(0.04, 0.95, title, fontsize=16, weight="bold")
    fig.text(0.04, 0.92, subtitle, fontsize=9, color="#6b7785")
    return fig


def _table(ax, header: list[str], rows: list[list[str]], *, widths: list[float] | None = None,
           text_columns: tuple[int, ...] = (0,), highlight: int | None = None) -> None:
    """A table filling ``ax`` from the top; ``widths`` are column shares, text columns align left."""
    ax.axis("off")
    if not rows:
        ax.text(0, 0.9, "(nothing to show)", fontsize=10)
        return
    t = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right", colLoc="right",
                 colWidths=widths)
    t.auto_set_font_size(False)
    t.set_fontsize(8 if len(rows) > 12 else 9)
    t.scale(1, 1.0 if len(rows) > 12 else 1.3)
    for (r, c), cell in t.get_celld().items():
        cell.set_edgecolor("#e4e7eb")
        if c in text_columns:
            cell.set_text_props(ha="left")
        if r == 0:
            cell.set_text_props(weight="bold", color="#1f2933")
            cell.set_facecolor("#f5f7fa")
        elif highlight is not None and r == highlight + 1:
            cell.set_facecolor("#fdf1f2")


def distribution_page(data: ReportData) -> Figure:
    d = data.distribution
    fig = _page("Category distribution of the untagged docs",
                f"{d.total:,} docs classified by {', '.join(d.models) or 'no model'} - {data.run_url}")
    shown = d.rows[:MAX_ROWS]
    rest = d.rows[MAX_ROWS:]
    ax = fig.add_axes((0.22, 0.50, 0.72, 0.38))
    labels = [r.label for r in shown] + ([f"({len(rest)} more labels)"] if rest else [])
    counts = [r.docs for r in shown] + ([sum(r.docs for r in rest)] if rest else [])
    ax.barh(range(len(labels)), counts, color=ACCENT, height=0.7)
    ax.set_yticks(range(len(labels)), [lbl[:32] for lbl in labels], fontsize=7 if len(labels) > 15 else 9)
    ax.invert_yaxis()
    ax.set_xlabel("docs")
    ax.spines[["top", "right"]].set_visible(False)
    rows = [[r.label[:40], f"{r.docs:,}", f"{r.share:.1f}%", _fmt(r.mean_probability)] for r in shown]
    if rest:
        n = sum(r.docs for r in rest)
        rows.append([f"({len(rest)} more labels)", f"{n:,}", f"{100 * n / d.total:.1f}%", ""])
    rows.append(["Total", f"{d.total:,}", "100.0%" if d.total else "\u2013", ""])
    _table(fig.add_axes((0.04, 0.02, 0.92, 0.42)), ["label", "docs", "share", "mean probability"], rows,
           widths=[0.46, 0.18, 0.18, 0.18])
    return fig


def models_page(data: ReportData) -> Figure:
    comp = data.comparison or {}
    models, best = comp.get("models", []), comp.get("best")
    fig = _page("Model comparison", f"best by macro-F1: {best or '-'}; used for predictions: "
                f"{', '.join(data.distribution.models) or '-'}")
    rows = [[str(m.get("name", "")), _fmt(m.get("accuracy")), _fmt(m.get("macro_f1")),
             _fmt(m.get("top3_accuracy")), _fmt(m.get("ece")), _fmt(m.get("train_seconds"), "{:.1f}"),
             _fmt(m.get("predict_docs_per_s"), "{:,.0f}")] for m in models]
    best_row = next((i for i, m in enumerate(models) if m.get("name") == best), None)
    top = 0.88 - 0.035 * (len(rows) + 1)  # the table's height, so the chart sits just below it
    _table(fig.add_axes((0.04, top, 0.92, 0.88 - top)),
           ["model", "accuracy", "macro-F1", "top-3", "ECE", "train s", "predict docs/s"], rows,
           widths=[0.22, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13], highlight=best_row)
    per_class = data.model_metrics.get(str(best), {}).get("per_class") if best else None
    if isinstance(per_class, dict) and per_class:
        names = list(per_class)[:MAX_ROWS]
        ax = fig.add_axes((0.22, 0.06, 0.72, top - 0.16))
        ax.barh(range(len(names)), [float(per_class[c].get("f1") or 0.0) for c in names], color=ACCENT_BEST,
                height=0.7)
        ax.set_yticks(range(len(names)), [str(c)[:32] for c in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"F1 per class, {best}", fontsize=11, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def stages_page(data: ReportData) -> Figure:
    fig = _page("Pipeline", "records per stage, from the manifests; rejects by reason")
    rows = []
    for m in data.stages:
        c = m.counts
        rate = f"{c.get('in', 0) / m.seconds:,.1f}" if m.seconds > 0 else "\u2013"
        rows.append([m.stage, m.status, *(f"{int(c.get(k, 0)):,}" for k in ("in", "out", "rejected", "dropped")),
                     f"{m.seconds:,.1f}", rate, m.finished_at or ""])
    _table(fig.add_axes((0.04, 0.50, 0.92, 0.40)),
           ["stage", "status", "in", "out", "rejected", "dropped", "seconds", "records/s", "finished (UTC)"],
           rows, widths=[0.10, 0.10, 0.09, 0.09, 0.09, 0.09, 0.09, 0.10, 0.25], text_columns=(0, 1, 8))
    reasons = [[stage, reason[:60], f"{n:,}"] for stage, c in data.rejects.items() for reason, n in c.most_common(5)]
    fig.text(0.04, 0.46, "Rejected records by reason (top 5 per stage)", fontsize=11, weight="bold")
    _table(fig.add_axes((0.04, 0.02, 0.92, 0.42)), ["stage", "reject reason", "records"], reasons[:MAX_ROWS],
           widths=[0.2, 0.6, 0.2], text_columns=(0, 1))
    return fig


def render_pdf(data: ReportData) -> bytes:
    """The PDF file's bytes."""
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": data.title, "Creator": "pagecat"}) as pdf:
        for page in (distribution_page(data), models_page(data), stages_page(data)):
            pdf.savefig(page)
    return buf.getvalue()
