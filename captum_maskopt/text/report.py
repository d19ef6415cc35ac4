"""A self-contained HTML report: several methods' word attributions side by side.

Text is escaped (a review that contains markup shows the markup, it does not run it);
colours are inline styles, so the file needs nothing else to display.
"""

from __future__ import annotations

import html
from typing import Dict, List, Optional, Sequence

from captum_maskopt.text.integration import WordAttribution

__all__ = ["render_html_report"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; width: 100%; }
td, th { border: 1px solid #ccc; padding: 0.4em 0.6em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; width: 12em; }
.legend span { padding: 0.1em 0.5em; margin-right: 0.3em; }
.meta { color: #555; font-size: 0.9em; }
"""


def _colour(score: float) -> str:
    """Green for positive importance, red for negative, alpha by magnitude."""
    alpha = min(abs(score), 1.0)
    return f"rgba(0, 160, 60, {alpha:.3f})" if score >= 0 else f"rgba(210, 40, 40, {alpha:.3f})"


def _highlight(attribution: WordAttribution) -> str:
    """The original text with each word's background coloured by its normalised score;
    the characters between words are kept as they are."""
    scores = attribution.scores.double()
    peak = float(scores.abs().max()) if len(scores) else 0.0
    normalised = (scores / peak).tolist() if peak > 0 else [0.0] * len(scores)
    parts: List[str] = []
    cursor = 0
    for (start, end), score in zip(attribution.spans, normalised):
        parts.append(html.escape(attribution.text[cursor:start]))
        word = html.escape(attribution.text[start:end])
        parts.append(
            f'<span style="background:{_colour(score)}" title="{score:+.3f}">{word}</span>'
        )
        cursor = end
    parts.append(html.escape(attribution.text[cursor:]))
    return "".join(parts)


def render_html_report(
    documents: Sequence[Dict[str, WordAttribution]],
    labels: Optional[Sequence[int]] = None,
    class_names: Sequence[str] = ("negative", "positive"),
    title: str = "Word attributions",
) -> str:
    """Render one table per document with a row per method.

    Args:
        documents: per document, ``{method name: WordAttribution}`` (all for the same
            text).
        labels: the documents' true labels, shown next to the prediction.
        class_names: names of the classes, by index.
        title: the page title.
    """
    def name_of(index: int) -> str:
        return class_names[index] if 0 <= index < len(class_names) else str(index)

    out = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='legend'>Legend: <span style='background:rgba(0,160,60,0.9)'>supports the "
        "explained class</span><span style='background:rgba(0,160,60,0.3)'>weakly</span>"
        "<span style='background:rgba(210,40,40,0.6)'>speaks against it</span> "
        "(scores normalised per method and document; hover a word for its value)</p>",
    ]
    for number, methods in enumerate(documents):
        if not methods:
            continue
        first = next(iter(methods.values()))
        truth = "" if labels is None else f"; true label: {html.escape(name_of(labels[number]))}"
        out.append(
            f"<h2>Document {number + 1}</h2><p class='meta'>explained class: "
            f"{html.escape(name_of(first.target))} (probability {first.probability:.3f}){truth}</p>"
        )
        out.append("<table>")
        for method, attribution in methods.items():
            out.append(f"<tr><th>{html.escape(method)}</th><td>{_highlight(attribution)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
