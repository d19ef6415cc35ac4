"""The measured tables of the documentation, made from the comparison commands' JSON,
and the table of the method's settings, made from their definition.

The pages never carry numbers typed in by hand. A page asks for a table with a marker
line::

    <!-- results-table: text.json -->

and this file, registered as a MkDocs hook in ``mkdocs.yml``, replaces the marker at
every build with tables rendered from ``docs/results/text.json`` (written by
``captum-maskopt compare text --json docs/results/text.json``; see
``docs/results/README.md``). When the file is missing, the page shows a table marked
"not yet measured" with the command that makes it, and the build goes on.

The marker line ``<!-- settings-table -->`` becomes the table of every field of
:class:`captum_maskopt.settings.MaskOptimizationSettings` (name, default, accepted
values, doc), so the settings page cannot disagree with the code; the inline marker
``<!-- default: NAME -->`` becomes one setting's default as that table writes it
(``10 (images: 200)`` for ``n_steps``), for prose that names a default.

Run it as a script to print the markdown of results files, or to write it next to
them as ``docs/results/<name>.md``::

    python scripts/build_docs_tables.py docs/results/text.json
    python scripts/build_docs_tables.py --write docs/results/text.json docs/results/image.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

MARKER = re.compile(r"^<!--\s*results-table:\s*(?P<name>[\w.-]+\.json)\s*-->\s*$", re.MULTILINE)
SETTINGS_MARKER = re.compile(r"^<!--\s*settings-table\s*-->\s*$", re.MULTILINE)
DEFAULT_MARKER = re.compile(r"<!--\s*default:\s*(?P<name>\w+)\s*-->")

#: What a metric is called in the tables and whether a higher value is better (None:
#: a reference figure, the same for every method).
METRICS: Dict[str, Dict[str, Any]] = {
    "aopc_comprehensiveness": {"label": "AOPC comprehensiveness", "higher": True},
    "aopc_sufficiency": {"label": "AOPC sufficiency", "higher": False},
    "deletion_auc": {"label": "deletion AUC", "higher": False},
    "insertion_auc": {"label": "insertion AUC", "higher": True},
    "delta_accuracy": {"label": "Δ accuracy", "higher": True},
    "protocol_comprehensiveness": {"label": "comprehensiveness 5–95 %", "higher": True},
    "protocol_sufficiency": {"label": "sufficiency 5–95 %", "higher": False},
    "evidence_auprc": {"label": "human evidence AUPRC", "higher": True},
    "evidence_token_f1": {"label": "human evidence token F1 (top 20 %)", "higher": True},
    "evidence_top_share": {"label": "top 20 % inside human evidence", "higher": True},
    "evidence_word_share": {"label": "evidence share of the words (a random ranking's AUPRC)", "higher": None},
    "pointing_game": {"label": "pointing game", "higher": True},
    "energy_inside": {"label": "share inside object", "higher": True},
    "share_inside": {"label": "share inside object", "higher": True},
    "infidelity": {"label": "infidelity", "higher": False},
    "sensitivity_max": {"label": "max-sensitivity", "higher": False},
    "seconds_per_example": {"label": "seconds / example", "higher": False},
    "seconds_per_image": {"label": "seconds / image", "higher": False},
    "shortcut_first_rank_rate": {"label": "planted word ranked first", "higher": True},
}

#: The command that writes each results file (also in docs/results/README.md).
COMMANDS = {
    "text.json": "captum-maskopt compare text --json docs/results/text.json",
    "image.json": "captum-maskopt compare image --json docs/results/image.json",
    "image-rankings.json": ("python scripts/experiments/image_rankings.py CACHE.pt "
                            "docs/results/image-rankings.json"),
    "text-steps.json": ("python scripts/steps_curve.py --checkpoint docs/results/runs/text-test.jsonl.xz "
                        "--json docs/results/text-steps.json"),
    "text-paper.json": ("captum-maskopt compare text --snippets 24 --paragraphs 0 --shortcut 0 --methods "
                        "'MaskOptimization,MaskOptimization (paper),ShapleyValueSampling,IntegratedGradients' "
                        "--checkpoint docs/results/runs/text-test.jsonl.xz --json docs/results/text-paper.json"),
    "text-token.json": ("captum-maskopt compare text --level token --snippets 200 --paragraphs 0 --shortcut 100 "
                        "--methods LayerMaskOptimization,ShapleyValueSampling,Lime,IntegratedGradients,"
                        "FeatureAblation,KernelShap,MASE,InputXGradient "
                        "--checkpoint docs/results/runs/text-test.jsonl.xz --json docs/results/text-token.json"),
}


def _label(metric: str) -> str:
    known = METRICS.get(metric)
    if known is None:
        return metric.replace("_", " ")
    if known["higher"] is None:
        return str(known["label"])
    arrow = "↑" if known["higher"] else "↓"
    return f"{known['label']} {arrow}"


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 0.001 or magnitude >= 1000):
        return f"{value:.3g}"
    return f"{value:.3f}"


def _best(rows: Mapping[str, Mapping[str, Any]], metric: str) -> Optional[float]:
    known = METRICS.get(metric)
    values = [
        row[metric] for row in rows.values()
        if isinstance(row.get(metric), (int, float)) and not isinstance(row.get(metric), bool)
        and not math.isnan(row[metric])
    ]
    if known is None or known["higher"] is None or len(values) < 2:
        return None
    return max(values) if known["higher"] else min(values)


def methods_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per method, one column per metric; the best value of each metric whose
    direction is known is bold (formatted values compared, so ties are all bold)."""
    metrics: List[str] = []
    for row in rows.values():
        metrics += [m for m in row if m not in metrics]
    lines = [
        "| method | " + " | ".join(_label(m) for m in metrics) + " |",
        "| --- |" + " ---: |" * len(metrics),
    ]
    best = {m: _best(rows, m) for m in metrics}
    for name, row in rows.items():
        cells = []
        for metric in metrics:
            value = row.get(metric, "")
            text = _format(value)
            if best[metric] is not None and text == _format(best[metric]):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rates_table(rates: Mapping[str, Any], column: str) -> str:
    """A one-column table of a number per method (higher is better), best in bold."""
    return methods_table({name: {column: value} for name, value in rates.items()})


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def differences_table(name: str, rows: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """The paired differences of ``name`` minus each other method (``compare text``'s
    ``paired_differences``): one row per method, the difference and its 95 % interval
    in each metric's column, bold where the interval excludes 0 on ``name``'s better side."""
    metrics: List[str] = []
    for row in rows.values():
        # A reference figure (the same for every method) has no difference to show.
        metrics += [m for m, v in row.items() if isinstance(v, Mapping) and m not in metrics
                    and METRICS.get(m, {}).get("higher", False) is not None]
    first = next(iter(rows.values()))
    fewer = {metric: first[metric]["batches"] for metric in metrics
             if isinstance(first.get(metric), Mapping) and "batches" in first[metric]}
    lines = [
        "| minus | " + " | ".join(_label(m) + (" *" if m in fewer else "") for m in metrics) + " |",
        "| --- |" + " ---: |" * len(metrics),
    ]
    for other, row in rows.items():
        cells = []
        for metric in metrics:
            figure = row.get(metric)
            if not isinstance(figure, Mapping):
                cells.append("")
                continue
            text = f"{_signed(figure['difference'])} [{_signed(figure['low'])}, {_signed(figure['high'])}]"
            higher = METRICS.get(metric, {}).get("higher")
            if (higher is True and figure["low"] > 0) or (higher is False and figure["high"] < 0):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {other} | " + " | ".join(cells) + " |")
    # The human-evidence columns exist on the paragraphs' batches only.
    partial = "".join(f"; the columns marked * over the {k} batches that measured them"
                      for k in sorted(set(fewer.values())))
    caption = (f"**{name} minus each method**, over {first.get('batches')} batches "
               f"({first.get('documents')} documents){partial}, with 95 % paired bootstrap intervals "
               f"over batches; bold where the interval excludes 0 on {name}'s better side.")
    return [caption, "\n".join(lines)]


def _config_line(config: Mapping[str, Any]) -> str:
    if not config:
        return ""
    parts = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        parts.append(f"`{key}`: {value}")
    return "Settings of the run: " + "; ".join(parts) + "."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_rows(value: Any) -> bool:
    """A mapping of names to mappings of numbers (one row per name)."""
    return (
        isinstance(value, Mapping) and bool(value)
        and all(isinstance(row, Mapping) and row for row in value.values())
        and all(_is_number(v) or v is None for row in value.values() for v in row.values())
    )


def _is_column(value: Any) -> bool:
    """A mapping of names to numbers (one number per name)."""
    return isinstance(value, Mapping) and bool(value) and all(_is_number(v) for v in value.values())


def _title(key: str) -> str:
    return key.replace("_", " ")


def _sections(key: str, value: Any, depth: int) -> List[str]:
    """Tables for every part of the JSON that is a table: rows of numbers per method,
    one number per method, or mappings of those (e.g. per photo), up to three levels."""
    if _is_rows(value):
        return [methods_table(value)]
    if _is_column(value):
        return [rates_table(value, key)]
    if isinstance(value, Mapping) and depth < 3:
        parts = []
        for sub_key, sub_value in value.items():
            tables = _sections(str(sub_key), sub_value, depth + 1)
            if tables:
                parts.append(f"**{_title(key)}: {_title(str(sub_key))}**" if key else f"**{_title(str(sub_key))}**")
                parts += tables
        return parts
    return []


def render_results(results: Mapping[str, Any], name: str = "") -> str:
    """The markdown for one results file: the ``methods`` table first, then every other
    table the JSON holds (such as the planted-shortcut rates), then the run's settings
    from ``config``. A file with no table in it gives a marked notice, not an error."""
    command = COMMANDS.get(name, "")
    parts = []
    if command:
        parts.append(f"Measured by `{command}`.")
    tables: List[str] = []
    if isinstance(results, Mapping):
        keys = ["methods"] if "methods" in results else []
        keys += [k for k in results if k not in ("methods", "config", "paired_differences")]
        for key in keys:
            value = results[key]
            if (_is_rows(value) or _is_column(value)) and key != "methods":
                tables.append(f"**{_title(key)}**")
            tables += _sections(key, value, 1)
            if key == "methods":
                for name, rows in (results.get("paired_differences") or {}).items():
                    tables += differences_table(name, rows)
    if not tables:
        return (
            '!!! warning "Not measured: no table in the results file"\n'
            f"    `docs/results/{name}` holds no table of numbers per method that "
            "`scripts/build_docs_tables.py` can read.\n"
        )
    parts += tables
    config_line = _config_line(results.get("config", {}) if isinstance(results, Mapping) else {})
    if config_line:
        parts.append(config_line)
    return "\n\n".join(parts) + "\n"


def missing_notice(name: str) -> str:
    """A table marked "not yet measured", with the command that measures it."""
    command = COMMANDS.get(name, f"the comparison command with --json docs/results/{name}")
    return (
        '!!! warning "Not yet measured"\n'
        f"    `docs/results/{name}` is not in this checkout, so there are no numbers here yet.\n\n"
        "    | results file | status | made by |\n"
        "    | --- | --- | --- |\n"
        f"    | `docs/results/{name}` | **not yet measured** | `{command}` |\n"
    )


def render_file(path: Path) -> str:
    """The markdown for the results file at ``path``, or the notice that it is missing."""
    if not path.is_file():
        return missing_notice(path.name)
    with open(path, encoding="utf-8") as handle:
        return render_results(json.load(handle), path.name)


def fill_markers(markdown: str, results_dir: Path) -> str:
    """Replace every results-table marker in ``markdown`` by its tables, the
    settings-table marker by the settings' table and each default marker by the
    setting's default."""
    if SETTINGS_MARKER.search(markdown) or DEFAULT_MARKER.search(markdown):
        from captum_maskopt.settings import default_text, settings_table

        markdown = SETTINGS_MARKER.sub(lambda match: settings_table(), markdown)
        markdown = DEFAULT_MARKER.sub(lambda match: default_text(match.group("name")), markdown)
    return MARKER.sub(lambda match: render_file(results_dir / match.group("name")), markdown)


# ----------------------------------------------------------------- the MkDocs hook


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return fill_markers(markdown, Path(config["docs_dir"]) / "results")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results JSON files")
    parser.add_argument("--write", action="store_true",
                        help="write each table to <file>.md beside its JSON instead of printing")
    args = parser.parse_args(argv)
    for path in args.paths:
        markdown = render_file(path)
        if args.write:
            path.with_suffix(".md").write_text(markdown, encoding="utf-8")
        else:
            print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
