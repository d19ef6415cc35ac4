"""Seconds per document of MaskOptimization and Captum's methods on the same batches,
measured in one process, close together in time:

    python benchmarks/bench_methods.py [--snippets 200] [--paragraphs 0] \\
        [--methods MaskOptimization,MaskOptimization:n_steps=25,ShapleyValueSampling,IntegratedGradients]

The result tables' seconds come from checkpoint rows filed on different days, on a
shared machine whose speed moves from day to day; this script times the methods of
``compare text`` (each as :data:`~captum_maskopt.text.peers.PEERS` runs it, on the
packaged MiniLM classifier, 8 documents per call as the comparison makes them) batch
by batch, rotating the methods' order from batch to batch, so that every ratio is of
two timings of the same batch minutes apart. ``NAME:setting=value,...`` runs
MaskOptimization (or ``LayerMaskOptimization``, the token-level call of ``compare text
--level token``) with settings over its defaults (``;`` separates several). Prints
each method's median seconds per document, and for every row of ours its median ratio
to each of Captum's methods over the batches with a 95 % bootstrap interval.
Needs the ``text`` extra.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import warnings
from typing import Any, Dict, List, Tuple


def _parse(spec: str) -> Tuple[str, Dict[str, Any]]:
    name, _, given = spec.partition(":")
    settings: Dict[str, Any] = {}
    for item in filter(None, given.split(";")):
        key, _, value = item.partition("=")
        settings[key.strip()] = json.loads(value)
    return name.strip(), settings


def _interval(ratios: List[float], rounds: int = 2000) -> Tuple[float, float]:
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snippets", type=int, default=200, help="test snippets (default 200)")
    parser.add_argument("--paragraphs", type=int, default=0, help="test paragraphs (default 0)")
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--methods", default="MaskOptimization,MaskOptimization:n_steps=25,ShapleyValueSampling,IntegratedGradients",
        help="comma-separated methods; MaskOptimization:setting=value;... for settings over its defaults")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(2)
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.text.data import load_paragraphs
    from captum_maskopt.text.peers import OURS, PEERS

    methods = [_parse(spec) for spec in args.methods.split(",")]
    labels = [spec.strip() for spec in args.methods.split(",")]
    explainer = TextExplainer(*load_sentiment_classifier())
    parts = {"snippets": load_snippets(args.split)[: args.snippets],
             "paragraphs": load_paragraphs(args.split)[: args.paragraphs]}
    batches = []
    for kind, documents in parts.items():
        chosen = [d.text for d in documents]
        batches += [(kind, chosen[i : i + args.batch_size]) for i in range(0, len(chosen), args.batch_size)]
    PEERS[methods[0][0]](explainer, [batches[0][1][0][:200]], None, methods[0][1])  # warm-up, short
    seconds: Dict[str, Dict[str, List[float]]] = {}
    for number, (kind, texts) in enumerate(batches):
        targets = explainer.predict(explainer.encode(texts)).argmax(dim=1)
        shift = number % len(methods)
        for label, (name, settings) in (list(zip(labels, methods))[shift:] + list(zip(labels, methods))[:shift]):
            start = time.perf_counter()
            PEERS[name](explainer, texts, targets, settings)
            seconds.setdefault(kind, {}).setdefault(label, []).append((time.perf_counter() - start) / len(texts))
        print(f"{kind} batch {number}: " + ", ".join(
            f"{label} {seconds[kind][label][-1]:.2f}" for label in labels), flush=True)
    for kind, rows in seconds.items():
        print(f"\n{kind}: {len(rows[labels[0]])} batches of up to {args.batch_size}; median seconds per document")
        for label in labels:
            print(f"  {label:40s} {statistics.median(rows[label]):.3f}")
        for label, (name, _) in zip(labels, methods):
            if name not in OURS:
                continue
            for other, (other_name, _) in zip(labels, methods):
                if other_name in OURS:
                    continue
                ratios = [a / b for a, b in zip(rows[label], rows[other])]
                low, high = _interval(ratios)
                print(f"  {label} / {other}: median ratio {statistics.median(ratios):.3f} [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
