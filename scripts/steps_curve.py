"""How MaskOptimization's faithfulness and seconds grow with ``n_steps``, against
IntegratedGradients (50 steps) and ShapleyValueSampling on the same documents.

Runs the text comparison on the packaged sentiment classifier at word level once per
step count (by default 25, 50, 100, 200 and the default's), every run filed in one
checkpoint, so the peers explain each batch once and the default (``n_steps`` at its
default) is read from the test run's own batches::

    python scripts/steps_curve.py --checkpoint docs/results/runs/text-test.jsonl.xz \\
        --json docs/results/text-steps.json

and writes ``{"methods": {row: means}, "paired_differences": {row:
{"IntegratedGradients": ...}}, "seconds_over_integrated_gradients": {row: median},
"config": ...}``: each step count's means, its paired differences to
IntegratedGradients with 95 % bootstrap intervals over batches, and the median over
batches of its seconds over IntegratedGradients' (each as filed in the checkpoint: rows
read from an earlier run were timed when that run ran, possibly on another day, on a
machine whose speed moves from day to day; ``benchmarks/bench_methods.py`` times the
methods on the same batches in one run).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from captum_maskopt.settings import PRESETS
from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
from captum_maskopt.text.checkpoint import method_name, results_of, run_key
from captum_maskopt.text.compare import compare_methods, paired_difference, shared_batches

PEER = "IntegratedGradients"
#: The curve's step counts: the issue's 25, 50, 100 and 200, and the default's.
DEFAULT_CURVE = tuple(sorted({PRESETS["default"].n_steps, 25, 50, 100, 200}))
OTHERS = ("ShapleyValueSampling",)


def _row(steps: int) -> str:
    return f"MaskOptimization (n_steps={steps})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_CURVE)),
                        help=f"comma-separated step counts (default {','.join(map(str, DEFAULT_CURVE))})")
    parser.add_argument("--snippets", type=int, default=200, help="snippets of the split (default 200)")
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        steps = [int(part) for part in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if not steps or min(steps) < 1:
        parser.error(f"--steps must be positive, got {args.steps!r}")

    model, tokenizer = load_sentiment_classifier()
    explainer = TextExplainer(model, tokenizer)
    documents = load_snippets(args.split)[: args.snippets]
    texts, labels = [d.text for d in documents], [d.label for d in documents]
    rows: Dict[str, Dict[str, float]] = {}
    differences: Dict[str, Dict[str, Any]] = {}
    ratios: Dict[str, float] = {}
    batches = {tuple(texts[i : i + args.batch_size]) for i in range(0, len(texts), args.batch_size)}
    for count in steps:
        settings = {"n_steps": count}
        methods = ["MaskOptimization", PEER, *OTHERS]
        results, _ = compare_methods(explainer, texts, labels, methods, args.batch_size,
                                     checkpoint=args.checkpoint, seed=args.seed, mask_settings=settings)
        rows[_row(count)] = results["MaskOptimization"]
        peers = {name: results[name] for name in (PEER, *OTHERS)}
        filed = {method_name("MaskOptimization", settings): _row(count), method_name(PEER, None): PEER}
        own: List[Dict[str, Any]] = [
            dict(result, method=filed[result["method"]])
            for result in results_of(args.checkpoint, [run_key(model, args.seed)])
            if result.get("method") in filed and "hits" not in result
            and tuple(word["text"] for word in result["words"]) in batches
        ]
        differences[_row(count)] = {PEER: paired_difference(own, _row(count), PEER)}
        mine, theirs, _ = shared_batches(own, _row(count), PEER)
        ratios[_row(count)] = statistics.median(
            a["seconds_per_example"] / b["seconds_per_example"] for a, b in zip(mine, theirs))
        print(f"n_steps={count}: AOPC comprehensiveness {rows[_row(count)]['aopc_comprehensiveness']:.4f}, "
              f"sufficiency {rows[_row(count)]['aopc_sufficiency']:.4f}, "
              f"{rows[_row(count)]['seconds_per_example']:.2f} s per snippet, "
              f"{ratios[_row(count)]:.2f} times {PEER}'s")
    output = {
        "methods": {**rows, **peers},
        "paired_differences": differences,
        "seconds_over_integrated_gradients": ratios,
        "config": {"split": args.split, "snippets": len(texts), "batch_size": args.batch_size,
                   "seed": args.seed, "steps": steps, "model": "packaged"},
    }
    if args.json:
        args.json.write_text(json.dumps(output, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
