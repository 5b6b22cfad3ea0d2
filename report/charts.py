"""Charts as inline SVG strings for the HTML report: no JavaScript, no network, no files.

Every text that goes into the SVG is escaped here, so callers pass plain strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

ACCENT = "#2f6690"  # bars
ACCENT_BEST = "#d1495b"  # the highlighted bar
TEXT = "#1f2933"
MUTED = "#6b7785"
GRID = "#e4e7eb"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def bar_chart_svg(items: Sequence[tuple[str, float]], *, title: str,
                  value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
                  highlight: str | None = None, max_value: float | None = None,
                  width: int = 760, row_height: int = 24, label_chars: int = 32) -> str:
    """A horizontal bar chart, one bar per ``(label, value)`` in the order given.

    ``highlight`` names a bar drawn in the accent colour; ``max_value`` fixes the scale
    (e.g. 1.0 for scores), else the largest value fills the plot. Long labels are clipped
    with an ellipsis and kept whole in each bar's tooltip (``<title>``).
    """
    if not items:
        return ""
    label_w = min(label_chars, max(len(label) for label, _ in items)) * 7 + 16
    value_w = 72  # room for the number after the longest bar
    plot_w = max(width - label_w - value_w, 80)
    top = max(max_value or 0.0, max(v for _, v in items)) or 1.0
    height = row_height * len(items) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{label_w}" y1="0" x2="{label_w}" y2="{height - 4}" stroke="{GRID}"/>',
    ]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_height
        bar_w = max(plot_w * value / top, 1.0 if value > 0 else 0.0)
        color = ACCENT_BEST if highlight is not None and label == highlight else ACCENT
        mid = y + row_height / 2
        out.append(
            f"<g><title>{escape(label)}: {escape(value_format(value))}</title>"
            f'<text x="{label_w - 8}" y="{mid:.1f}" text-anchor="end" dominant-baseline="central" '
            f'fill="{TEXT}">{escape(_clip(label, label_chars))}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w:.1f}" height="{row_height - 6}" rx="2" '
            f'fill="{color}"/>'
            f'<text x="{label_w + bar_w + 6:.1f}" y="{mid:.1f}" dominant-baseline="central" '
            f'fill="{MUTED}">{escape(value_format(value))}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
