"""A self-contained HTML report of an image comparison: the metrics table, the goals
and the figure, embedded as a PNG, so the file needs nothing else to display."""

from __future__ import annotations

import base64
import html
from typing import Any, Mapping, Optional

from captum_maskopt.vision.compare import LOCALISATION_METRICS, METRICS, ImageComparison

__all__ = ["render_html_report"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; }
"""


def _table(rows: Mapping[str, Mapping[str, Any]], columns: Any) -> str:
    present = [c for c in columns if any(c in row for row in rows.values())]
    out = ["<table><tr><th>method</th>"] + [f"<th>{html.escape(c)}</th>" for c in present] + ["</tr>"]
    for name, row in rows.items():
        cells = "".join(f"<td>{row[c]:.4f}</td>" if c in row else "<td></td>" for c in present)
        out.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def render_html_report(
    comparison: ImageComparison,
    goals: Mapping[str, Any],
    figure_png: Optional[bytes] = None,
    title: str = "Image attributions",
) -> str:
    """Render the comparison as one HTML page.

    Args:
        comparison: the results of :func:`~captum_maskopt.vision.compare.compare_methods`.
        goals: the goals, as :func:`~captum_maskopt.vision.compare.goals` gives them.
        figure_png: the figure as PNG bytes, embedded at the end. Default: None
        title: the page title. Default: "Image attributions"
    """
    out = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<h2>Means over {len(comparison.photos)} photo(s)</h2>",
        _table(comparison.methods, METRICS),
    ]
    for photo, per_method in comparison.localisation.items():
        out.append(f"<h2>{html.escape(photo)}: localisation on the object outline</h2>")
        out.append(_table(per_method, LOCALISATION_METRICS))
    out.append("<h2>Goals</h2><table>")
    for goal, value in goals.items():
        out.append(f"<tr><td>{html.escape(goal)}</td><td>{html.escape(str(value))}</td></tr>")
    out.append("</table>")
    if figure_png is not None:
        encoded = base64.b64encode(figure_png).decode("ascii")
        out.append(f"<h2>Attributions</h2><img alt='attributions' src='data:image/png;base64,{encoded}'>")
    out.append("</body></html>")
    return "\n".join(out)
