"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

``render_html(data)`` turns a ``ReportData`` into the page; ``build_html(cfg, run)`` reads the
run directory first. Every text from the data is escaped. The main tables carry ids and
``data-*`` attributes (``#category-distribution`` rows: ``data-label``, ``data-count``;
``#model-comparison`` rows: ``data-model``, ``data-accuracy``, ``data-macro-f1``; ``#pipeline``
rows: ``data-stage``, ``data-in``, ``data-out``) so a program can read the numbers back.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from pagecat.config import Config
from pagecat.report.charts import bar_chart_svg
from pagecat.report.collect import ReportData, collect
from pagecat.runs import RunDir

CORE_COUNTS = ("in", "out", "rejected", "dropped")
TOP_REASONS = 5  # reason groups listed per stage; the rest are summed as "other"

CSS = """
:root { --text:#1f2933; --muted:#6b7785; --line:#e4e7eb; --accent:#2f6690; --best:#fdf1f2; --bad:#b3261e; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--text);
       background:#f5f7fa; }
main { max-width:1040px; margin:0 auto; padding:32px 24px 64px; }
header { border-bottom:3px solid var(--accent); margin-bottom:24px; padding-bottom:12px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:19px; margin:0 0 12px; color:var(--accent); }
h3 { font-size:15px; margin:20px 0 8px; }
.meta { color:var(--muted); margin:0; }
.meta code { color:var(--text); }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:20px 24px;
          margin-bottom:20px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-bottom:20px; }
.card { flex:1 1 160px; background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 16px; }
.card .v { font-size:22px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; width:100%; margin:8px 0 4px; font-variant-numeric:tabular-nums; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.03em; }
td.n, th.n { text-align:right; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fafbfc; }
tr.total td { font-weight:600; border-top:2px solid var(--text); }
tr.best td { background:var(--best); }
.badge { display:inline-block; font-size:11px; padding:0 6px; margin-left:6px; border-radius:8px;
         background:var(--accent); color:#fff; }
.badge.best { background:#d1495b; }
.bad { color:var(--bad); font-weight:600; }
.muted { color:var(--muted); }
.chart { display:block; margin:12px 0; }
table.confusion td { text-align:right; min-width:36px; }
ul.notes { color:var(--bad); }
"""


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "\u2013" if v is None else fmt.format(v)


def _int(v: Any) -> str:
    return "\u2013" if v is None else f"{int(v):,}"


def _attr(v: Any) -> str:
    """A number for a data-* attribute: exact (repr) so it reads back equal to the source."""
    return "" if v is None else escape(str(v), quote=True)


def _table(table_id: str | None, headers: Iterable[tuple[str, bool]], rows: Iterable[str],
           extra_class: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    cls = f' class="{extra_class}"' if extra_class else ""
    head = "".join(f'<th{" class=n" if numeric else ""}>{escape(h)}</th>' for h, numeric in headers)
    return f"<table{ident}{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cards(data: ReportData) -> str:
    d = data.distribution
    best = data.best_model
    best_f1 = next((m.get("macro_f1") for m in (data.comparison or {}).get("models", [])
                    if m.get("name") == best), None)
    cards = [
        ("untagged docs classified", _int(d.total)),
        ("categories predicted", _int(len(d.rows))),
        ("best model", f"{best} ({_num(best_f1, '{:.3f}')} macro-F1)" if best else "\u2013"),
        ("stages run", f"{sum(m.status == 'complete' for m in data.stages)} complete"),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
        for k, v in cards) + "</div>"


def category_section(data: ReportData) -> str:
    d = data.distribution
    if not d.rows:
        return ('<section id="categories"><h2>Category distribution of the untagged docs</h2>'
                '<p>There were no untagged docs to classify: every doc has a label.</p></section>')
    rows = [
        f'<tr data-label="{escape(r.label, quote=True)}" data-count="{r.docs}">'
        f'<td>{escape(r.label)}</td><td class="n">{r.docs:,}</td><td class="n">{r.share:.1f}%</td>'
        f'<td class="n">{_num(r.mean_probability)}</td></tr>'
        for r in d.rows
    ]
    weighted = [r.mean_probability * r.docs for r in d.rows if r.mean_probability is not None]
    overall = sum(weighted) / sum(r.docs for r in d.rows if r.mean_probability is not None) if weighted else None
    rows.append(f'<tr class="total" data-total="{d.total}"><td>Total</td><td class="n">{d.total:,}</td>'
                f'<td class="n">100.0%</td><td class="n">{_num(overall)}</td></tr>')
    models = ", ".join(f"{escape(name)} ({n:,} docs)" for name, n in d.models.items())
    chart = bar_chart_svg([(r.label, r.docs) for r in d.rows], title="Untagged docs per predicted category")
    return (
        '<section id="categories"><h2>Category distribution of the untagged docs</h2>'
        f'<p class="muted">{d.total:,} untagged docs from {d.parts} prediction part(s), classified by '
        f"{models or 'no model'}. Mean probability is the model's probability for the label it chose.</p>"
        + chart
        + _table("category-distribution",
                 [("label", False), ("docs", True), ("share", True), ("mean probability", True)], rows)
        + "</section>"
    )


def _per_class(data: ReportData, best: str) -> str:
    metrics = data.model_metrics.get(best, {})
    per_class = metrics.get("per_class")
    out = []
    if isinstance(per_class, dict) and per_class:
        order = [c for c in (data.comparison or {}).get("classes", []) if c in per_class]
        order += [c for c in per_class if c not in order]
        rows = [
            f'<tr data-label="{escape(str(c), quote=True)}" data-f1="{_attr(per_class[c].get("f1"))}">'
            f"<td>{escape(str(c))}</td><td class=n>{_num(per_class[c].get('precision'))}</td>"
            f"<td class=n>{_num(per_class[c].get('recall'))}</td><td class=n>{_num(per_class[c].get('f1'))}</td>"
            f"<td class=n>{_int(per_class[c].get('support'))}</td></tr>"
            for c in order
        ]
        chart = bar_chart_svg([(str(c), float(per_class[c].get("f1") or 0.0)) for c in order],
                              title=f"F1 per class, {best}", value_format=lambda v: f"{v:.3f}", max_value=1.0)
        out.append(f"<h3>Per-class F1 of the best model ({escape(best)})</h3>" + chart + _table(
            "per-class", [("class", False), ("precision", True), ("recall", True), ("F1", True),
                          ("support", True)], rows))
    confusion = metrics.get("confusion")
    if isinstance(confusion, dict) and confusion.get("labels") and confusion.get("matrix"):
        labels, matrix = [str(x) for x in confusion["labels"]], confusion["matrix"]
        body = []
        for label, row in zip(labels, matrix):
            total = sum(row) or 1
            cells = "".join(
                f'<td style="background:rgba(47,102,144,{0.85 * v / total:.2f});'
                f'{"color:#fff;" if v / total > 0.5 else ""}">{int(v):,}</td>' for v in row)
            body.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
        head = "".join(f"<th class=n>{escape(label)}</th>" for label in labels)
        out.append(f"<h3>Confusion matrix of {escape(best)} (rows: true class, columns: predicted)</h3>"
                   f'<table id="confusion" class="confusion"><thead><tr><th></th>{head}</tr></thead>'
                   f"<tbody>{''.join(body)}</tbody></table>")
    return "".join(out)


def model_section(data: ReportData) -> str:
    comp = data.comparison
    if not comp or not comp.get("models"):
        return ('<section id="models"><h2>Model comparison</h2>'
                "<p>No model comparison found (models/comparison.json is missing).</p></section>")
    best, used = comp.get("best"), set(data.distribution.models)
    rows = []
    for m in comp["models"]:
        name = str(m.get("name", ""))
        badges = ('<span class="badge best">best</span>' if name == best else "") + (
            '<span class="badge">used for predictions</span>' if name in used else "")
        rows.append(
            f'<tr class="{"best" if name == best else ""}" data-model="{escape(name, quote=True)}" '
            f'data-accuracy="{_attr(m.get("accuracy"))}" data-macro-f1="{_attr(m.get("macro_f1"))}">'
            f"<td>{escape(name)}{badges}</td><td class=n>{_num(m.get('accuracy'))}</td>"
            f"<td class=n>{_num(m.get('macro_f1'))}</td><td class=n>{_num(m.get('top3_accuracy'))}</td>"
            f"<td class=n>{_num(m.get('ece'))}</td><td class=n>{_num(m.get('train_seconds'), '{:.1f}')}</td>"
            f"<td class=n>{_num(m.get('predict_docs_per_s'), '{:,.0f}')}</td>"
            f"<td class=n>{_int(m.get('n_train'))}</td><td class=n>{_int(m.get('n_test'))}</td></tr>")
    used_text = ", ".join(escape(u) for u in data.distribution.models) or "none (no predictions)"
    chart = bar_chart_svg([(str(m.get("name", "")), float(m.get("macro_f1") or 0.0)) for m in comp["models"]],
                          title="Macro-F1 per model", value_format=lambda v: f"{v:.3f}",
                          highlight=best, max_value=1.0)
    return (
        '<section id="models"><h2>Model comparison</h2>'
        f'<p>Best by macro-F1: <strong>{escape(str(best))}</strong>. Model used for the predictions: '
        f"<strong>{used_text}</strong> (setting <code>predict.model: {escape(data.predict_setting)}</code>). "
        f'Docs version {escape(str(comp.get("docs_version", "")))}, '
        f'{len(comp.get("classes", []))} classes. ECE is the expected calibration error (lower is better).</p>'
        + _table("model-comparison",
                 [("model", False), ("accuracy", True), ("macro-F1", True), ("top-3 acc.", True),
                  ("ECE", True), ("train s", True), ("predict docs/s", True), ("train docs", True),
                  ("test docs", True)], rows)
        + chart + (_per_class(data, str(best)) if best else "")
        + "</section>"
    )


def pipeline_section(data: ReportData) -> str:
    if not data.stages:
        return '<section id="stages"><h2>Pipeline</h2><p>No stage manifests found.</p></section>'
    rows = []
    for m in data.stages:
        c = m.counts
        n_in, n_out, rej, drop = (int(c.get(k, 0)) for k in CORE_COUNTS)
        gap = n_in - n_out - rej - drop
        check = "\u2713" if gap == 0 else f'<span class="bad">off by {gap:+,}</span>'
        others = ", ".join(f"{escape(k)}={v:,}" for k, v in c.items() if k not in CORE_COUNTS)
        rate = f"{n_in / m.seconds:,.1f}" if m.seconds > 0 else "\u2013"
        status = escape(m.status) if m.status == "complete" else f'<span class="bad">{escape(m.status)}</span>'
        rows.append(
            f'<tr data-stage="{escape(m.stage, quote=True)}" data-in="{n_in}" data-out="{n_out}" '
            f'data-rejected="{rej}" data-dropped="{drop}"><td>{escape(m.stage)}</td><td>{status}</td>'
            f"<td class=n>{n_in:,}</td><td class=n>{n_out:,}</td><td class=n>{rej:,}</td><td class=n>{drop:,}</td>"
            f"<td class=n>{check}</td><td>{others}</td><td class=n>{m.seconds:,.1f}</td><td class=n>{rate}</td>"
            f"<td>{escape(m.finished_at or '')}</td></tr>")
    return (
        '<section id="stages"><h2>Pipeline</h2><p class="muted">Records in and out of each stage, from its '
        "manifest. Every stage keeps in = out + rejected + dropped; throughput is records in per second.</p>"
        + _table("pipeline",
                 [("stage", False), ("status", False), ("in", True), ("out", True), ("rejected", True),
                  ("dropped", True), ("balanced", True), ("other counters", False), ("seconds", True),
                  ("records/s", True), ("finished (UTC)", False)], rows)
        + "</section>"
    )


def quality_section(data: ReportData) -> str:
    parts = ['<section id="quality"><h2>Data quality</h2>']
    rejected = {m.stage: int(m.counts.get("rejected", 0)) for m in data.stages}
    stages = [s for s in [m.stage for m in data.stages] + list(data.rejects) if rejected.get(s) or s in data.rejects]
    rows = []
    for stage in dict.fromkeys(stages):
        reasons = data.rejects.get(stage)
        if reasons:
            top = reasons.most_common(TOP_REASONS)
            rest = sum(reasons.values()) - sum(n for _, n in top)
            text = "; ".join(f"{escape(r)} ({n:,})" for r, n in top) + (f"; other ({rest:,})" if rest else "")
        else:
            text = '<span class="muted">no reject files</span>'
        n = rejected.get(stage, sum(reasons.values()) if reasons else 0)
        rows.append(f'<tr data-stage="{escape(stage, quote=True)}" data-rejected="{n}"><td>{escape(stage)}</td>'
                    f"<td class=n>{n:,}</td><td>{text}</td></tr>")
    parts.append("<h3>Rejected records</h3>")
    parts.append(_table("rejects", [("stage", False), ("rejected", True), ("top reasons", False)], rows)
                 if rows else "<p>No records were rejected.</p>")
    dedup = next((m for m in data.stages if m.stage == "dedup"), None)
    dropped = int(dedup.counts.get("dropped", 0)) if dedup else sum(data.duplicates.values())
    kinds = ", ".join(f"{escape(k)} {n:,}" for k, n in data.duplicates.most_common())
    parts.append(f'<h3>Duplicates</h3><p id="duplicates" data-dropped="{dropped}">{dropped:,} duplicate pages '
                 f"dropped{' (' + kinds + ')' if kinds else ''}.</p>")
    balance = data.class_balance
    counts = balance.get("class_counts") or {}
    if counts or "tagged" in balance:
        total = sum(counts.values()) or 1
        rows = [f'<tr data-label="{escape(str(k), quote=True)}" data-count="{int(v)}"><td>{escape(str(k))}</td>'
                f"<td class=n>{int(v):,}</td><td class=n>{100 * v / total:.1f}%</td></tr>"
                for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        parts.append(
            "<h3>Training class balance</h3>"
            f"<p>{_int(balance.get('tagged'))} tagged docs (used for training and testing), "
            f"{_int(balance.get('untagged'))} untagged docs (classified above).</p>"
            + bar_chart_svg([(str(k), v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])],
                            title="Tagged docs per class")
            + _table("class-balance", [("class", False), ("docs", True), ("share", True)], rows))
    if data.notes:
        parts.append('<h3>Unreadable inputs</h3><ul class="notes">'
                     + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The whole report page as one string (UTF-8 when written)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(data.title)}</title><style>{CSS}</style></head><body><main>"
        f"<header><h1>{escape(data.title)}</h1>"
        f'<p class="meta">Run <code>{escape(data.run_url)}</code> &middot; generated {escape(data.generated_at)}'
        "</p></header>"
        + _cards(data) + category_section(data) + model_section(data) + pipeline_section(data)
        + quality_section(data)
        + "</main></body></html>\n"
    )


def build_html(cfg: Config, run: RunDir) -> str:
    """Read the run directory and render the report (UsageError when there are no predictions)."""
    return render_html(collect(cfg, run))
