"""The pictures of docs/settings.md: what each setting of the objective and the mask
does to a real explanation.

Every figure is one setting tried at a few values, everything else at its default:

* text settings on the packaged MiniLM sentiment classifier
  (:func:`captum_maskopt.text.load_sentiment_classifier`), one Rotten Tomatoes test
  snippet, one row per value, each word shaded by its mask value;
* image settings on EfficientNet-Lite0 (:mod:`captum_maskopt.vision.models`) and the
  scikit-image cat photo, one panel per value, the mask laid over the photo.

Each row or panel is labelled with what the optimization record says: the kept
fraction and the target probability of the keep and remove views. Nothing is drawn by
hand: rerun the script to remake every figure (20 to 30 minutes on two CPU cores)::

    python scripts/make_settings_figures.py                 # all figures
    python scripts/make_settings_figures.py --only text     # the text ones
    python scripts/make_settings_figures.py --fast          # a quick smoke run

Needs the ``text`` and ``vision`` extras and matplotlib.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from captum_maskopt.settings import PRESETS  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "figures"
#: The text defaults' steps, which the steps figure labels as the default.
_DEFAULT_STEPS = PRESETS["default"].n_steps

#: (file name, setting shown, [(row label, keyword arguments)]) for the text figures.
TEXT_FIGURES: List[Tuple[str, str, List[Tuple[str, Dict[str, Any]]]]] = [
    ("text_compactness_weight", "compactness_weight", [
        ("0.25", {"compactness_weight": 0.25}),
        ("1.0 (default)", {}),
        ("4.0", {"compactness_weight": 4.0}),
    ]),
    # Rows labelled "(paper)" are the settings of the "paper" preset.
    ("text_target_kept_fraction", "target_kept_fraction", [
        ("None (paper)", {"target_kept_fraction": None}),
        ("0.5", {"target_kept_fraction": 0.5}),
        ("0.2", {"target_kept_fraction": 0.2}),
        ("0.05", {"target_kept_fraction": 0.05}),
        ("drawn (default)", {}),
    ]),
    ("text_path_average", "path_average", [
        ("False (paper)", {"path_average": False}),
        ("True (default)", {}),
    ]),
    # TextExplainer groups pieces into words with a feature_mask, for which "auto"
    # means free logits; the kernel widths (and so smoothness_weight) only act with
    # the Gaussian-kernel mask.
    ("text_smoothness_weight", 'smoothness_weight (parametrization="gaussian1d")', [
        ("0", {"parametrization": "gaussian1d", "smoothness_weight": 0.0}),
        ("1.2 (default)", {"parametrization": "gaussian1d"}),
        ("5.0", {"parametrization": "gaussian1d", "smoothness_weight": 5.0}),
    ]),
    ("text_parametrization", "parametrization", [
        ('"logits" (auto here)', {}),
        ('"gaussian1d"', {"parametrization": "gaussian1d"}),
    ]),
    ("text_sufficiency_comprehensiveness", "sufficiency_weight / comprehensiveness_weight", [
        ("both 1.0 (default)", {}),
        ("sufficiency only", {"comprehensiveness_weight": 0.0}),
        ("comprehensiveness only", {"sufficiency_weight": 0.0}),
    ]),
    ("text_comprehensiveness_form", "comprehensiveness", [
        ('"log" (paper)', {"comprehensiveness": "log"}),
        ('"hinge", margin 0.1 (default)', {}),
        ('"hinge", margin 0.4', {"comprehensiveness_margin": 0.4}),
    ]),
    ("text_noise", "noise_std / flip_fraction", [
        ("no noise", {"noise_std": 0.0, "flip_fraction": 0.0}),
        ("0.03 / 0.05 (default)", {}),
        ("0.1 / 0.2", {"noise_std": 0.1, "flip_fraction": 0.2}),
    ]),
    ("text_steps", "n_steps / learning_rate", [
        *((f"{steps} steps (default)", {}) if steps == _DEFAULT_STEPS else (f"{steps} steps", {"n_steps": steps})
          for steps in sorted({_DEFAULT_STEPS, 25, 50, 100, 200})),
        (f"{_DEFAULT_STEPS} steps, lr 0.03", {"learning_rate": 0.03}),
    ]),
    ("text_tie_break", "tie_break_weight / tie_break", [
        ("0 (paper)", {"tie_break_weight": 0.0}),
        ('1, bands (default)', {}),
        ('1, "gradient"', {"tie_break": "gradient"}),
    ]),
    ("text_probability", "probability", [
        ('"softmax" (default)', {}),
        ('"sigmoid"', {"probability": "sigmoid"}),
    ]),
    ("text_seed", "seed", [
        ("0 (default)", {}),
        ("1", {"seed": 1}),
        ("2", {"seed": 2}),
    ]),
]

#: The same for the image figures; ``baseline``/``features`` name special cases.
IMAGE_FIGURES: List[Tuple[str, str, List[Tuple[str, Dict[str, Any]]]]] = [
    ("image_total_variation_weight", "total_variation_weight", [
        ("0", {"total_variation_weight": 0.0}),
        ("10 (default)", {}),
        ("100", {"total_variation_weight": 100.0}),
    ]),
    ("image_mask_cell_size", "mask_cell_size", [
        ("4", {"mask_cell_size": 4}),
        ("8 (default)", {}),
        ("16", {"mask_cell_size": 16}),
    ]),
    ("image_compactness_weight", "compactness_weight", [
        ("0.25", {"compactness_weight": 0.25}),
        ("1.0 (default)", {}),
        ("3.0", {"compactness_weight": 3.0}),
    ]),
    ("image_baselines", "baselines", [
        ("0 (grey)", {}),
        ("[black, white, mean]", {"baseline": "three"}),
        ("blur, sigma 20", {"baseline": "blur"}),
    ]),
    ("image_parametrization", "parametrization / feature_mask", [
        ('"smooth2d" (auto)', {}),
        ('"logits", every pixel', {"parametrization": "logits", "total_variation_weight": 10.0}),
        ('"logits", 60 superpixels', {"features": "superpixels"}),
    ]),
]


# ----------------------------------------------------------------------- drawing

def _shade(score: float) -> Tuple[float, float, float]:
    """White (0) to green (1)."""
    score = min(max(score, 0.0), 1.0)
    return (1.0 - 0.85 * score, 1.0 - 0.35 * score, 1.0 - 0.75 * score)


def draw_text_rows(
    rows: Sequence[Tuple[str, Sequence[str], Sequence[float], Dict[str, float]]],
    title: str, path: Path, width: float = 9.5,
) -> None:
    """One block per row: its label and record, then the words wrapped to the
    figure's ``width`` (inches), each on a background shaded by its score."""
    figure = plt.figure(figsize=(width, 1.0), dpi=110)
    renderer = figure.canvas.get_renderer()
    margin, line_height, space = 6.0, 22.0, 7.0  # in points
    limit = width * 72.0 - 2 * margin
    items = []  # (x, y, text, style) in points from the top left
    y = 10.0
    items.append((margin, y, title, {"fontsize": 11}))
    y += line_height * 1.4
    for label, words, scores, record in rows:
        summary = (
            f"kept {record['kept_fraction']:.0%} · p(keep view) {record['keep_probability']:.2f}"
            f" · p(remove view) {record['remove_probability']:.2f} · {int(record['steps'])} steps"
        )
        items.append((margin, y, label, {"fontsize": 9.5, "fontweight": "bold"}))
        items.append((margin + 165.0, y, summary, {"fontsize": 8.5, "color": "#444444"}))
        y += line_height
        x = margin
        for word, score in zip(words, scores):
            probe = figure.text(0, 0, word, fontsize=9.5)
            extent = probe.get_window_extent(renderer).width * 72.0 / figure.dpi
            probe.remove()
            if x + extent > limit and x > margin:
                x, y = margin, y + line_height
            style = {
                "fontsize": 9.5,
                "bbox": dict(boxstyle="square,pad=0.2", facecolor=_shade(float(score)), edgecolor="none"),
            }
            items.append((x, y, word, style))
            x += extent + space
        y += line_height * 1.5
    height = y / 72.0
    figure.set_size_inches(width, height)
    for x, y, text, style in items:
        figure.text(x / (width * 72.0), 1.0 - y / (height * 72.0), text, va="center", **style)
    figure.savefig(path)
    plt.close(figure)


def draw_image_panels(
    rgb: torch.Tensor, panels: Sequence[Tuple[str, torch.Tensor, Dict[str, float]]],
    title: str, path: Path,
) -> None:
    """The photo, then per value the mask over the photo (darkened where removed)."""
    count = len(panels) + 1
    figure, axes = plt.subplots(1, count, figsize=(2.9 * count, 3.5), dpi=100)
    image = rgb.permute(1, 2, 0).numpy()
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=10)
    for axis, (label, mask, record) in zip(axes[1:], panels):
        shown = image * (0.15 + 0.85 * mask.numpy()[..., None])
        axis.imshow(shown)
        axis.contour(mask.numpy(), levels=[0.5], colors=["#ffcc00"], linewidths=1.2)
        axis.set_title(label, fontsize=10)
        axis.set_xlabel(
            f"kept {record['kept_fraction']:.0%}, p(keep) {record['keep_probability']:.2f},\n"
            f"p(remove) {record['remove_probability']:.2f}, {int(record['steps'])} steps",
            fontsize=8.5,
        )
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


# ---------------------------------------------------------------------- the runs

def choose_snippet(explainer: Any) -> Tuple[str, int, float]:
    """The first test snippet of 12 to 20 words that the classifier gets right with a
    probability of at least 0.9 (a fixed choice that depends only on the corpus and
    the classifier)."""
    from captum_maskopt.text import load_snippets

    for example in load_snippets("test"):
        if not 12 <= len(example.text.split()) <= 20:
            continue
        probabilities = explainer.predict(explainer.encode([example.text]))[0]
        label = int(probabilities.argmax())
        if label == example.label and float(probabilities[label]) >= 0.9:
            return example.text, label, float(probabilities[label])
    raise RuntimeError("no test snippet fits the rule")


def text_figures(out: Path, fast: bool, log: Dict[str, Any], skip_existing: bool = False) -> None:
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier

    model, tokenizer = load_sentiment_classifier()
    explainer = TextExplainer(model, tokenizer)
    text, label, probability = choose_snippet(explainer)
    names = ("negative", "positive")
    log["text"] = {"snippet": text, "label": names[label], "probability": probability}
    print(f"snippet ({names[label]}, p = {probability:.3f}): {text}")
    for name, setting, variants in TEXT_FIGURES:
        if skip_existing and (out / f"{name}.png").is_file():
            continue
        start = time.perf_counter()
        rows = []
        for label_text, kwargs in variants:
            kwargs = dict(kwargs)
            if fast:
                kwargs["n_steps"] = min(kwargs.get("n_steps", 10), 10)
            result = explainer.explain([text], **kwargs)[0]
            rows.append((label_text, result.words, result.scores.tolist(), result.extra["record"]))
        draw_text_rows(
            rows, f"{setting}: explaining '{names[label]}' (p = {probability:.2f})",
            out / f"{name}.png",
        )
        log[name] = {r[0]: r[3] for r in rows}
        print(f"{name}: {time.perf_counter() - start:.0f} s")


def image_figures(
    out: Path, fast: bool, log: Dict[str, Any], n_steps: int, skip_existing: bool = False
) -> None:
    from captum_maskopt import MaskOptimization
    from captum_maskopt.baselines import gaussian_blur
    from captum_maskopt.vision.data import load_photo
    from captum_maskopt.vision.features import superpixel_mask
    from captum_maskopt.vision.models import (
        imagenet_categories,
        load_efficientnet_lite0,
        preprocess,
        to_rgb,
    )

    model = load_efficientnet_lite0()
    x = preprocess(load_photo("chelsea").image).unsqueeze(0)
    if fast:
        x = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=1)[0]
    target = int(probabilities.argmax())
    category = imagenet_categories()[target]
    log["image"] = {"photo": "chelsea", "class": category, "probability": float(probabilities[target])}
    print(f"image: {category} (p = {float(probabilities[target]):.3f})")
    black, white = torch.full_like(x, -127.0 / 128.0), torch.full_like(x, 1.0)
    mean = x.mean(dim=(2, 3), keepdim=True)
    method = MaskOptimization(model)
    for name, setting, variants in IMAGE_FIGURES:
        if skip_existing and (out / f"{name}.png").is_file():
            continue
        start = time.perf_counter()
        panels = []
        for label_text, kwargs in variants:
            kwargs = dict(kwargs)
            baseline = kwargs.pop("baseline", None)
            features = kwargs.pop("features", None)
            if baseline == "three":
                kwargs["baselines"] = [black, white, mean]
            elif baseline == "blur":
                kwargs["baselines"] = gaussian_blur(x, sigma=20.0)
            if features == "superpixels":
                kwargs["feature_mask"] = superpixel_mask(x, n_segments=60)
            kwargs["n_steps"] = 5 if fast else kwargs.get("n_steps", n_steps)
            mask, record = method.attribute(x, target=target, return_record=True, **kwargs)
            values = {k: float(getattr(record, k)[0]) for k in
                      ("steps", "keep_probability", "remove_probability", "kept_fraction")}
            panels.append((label_text, mask[0, 0].detach(), values))
        draw_image_panels(
            to_rgb(x[0]), panels,
            f"{setting}: explaining '{category}' (p = {float(probabilities[target]):.2f})",
            out / f"{name}.png",
        )
        log[name] = {p[0]: p[2] for p in panels}
        print(f"{name}: {time.perf_counter() - start:.0f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the PNG files")
    parser.add_argument("--only", choices=("text", "image"), help="make only these figures")
    parser.add_argument("--image-steps", type=int, default=100,
                        help="n_steps of the image runs (default 100)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave figures whose PNG exists as they are")
    parser.add_argument("--fast", action="store_true",
                        help="a few steps and a small image: checks the script, not the method")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # The numbers behind the labels, for the record; figures not remade keep theirs.
    record_path = args.out / "settings_figures.json"
    log: Dict[str, Any] = {}
    if record_path.is_file():
        with open(record_path, encoding="utf-8") as handle:
            log = json.load(handle)
    try:
        if args.only in (None, "text"):
            text_figures(args.out, args.fast, log, args.skip_existing)
        if args.only in (None, "image"):
            image_figures(args.out, args.fast, log, args.image_steps, args.skip_existing)
    finally:
        with open(record_path, "w", encoding="utf-8") as handle:
            json.dump(log, handle, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
