"""Seconds of ``TextExplainer.explain`` with texts of different lengths split into runs
of similar lengths (the default on the CPU) against one run for the whole batch, in
one process, on the same texts:

    python benchmarks/bench_chunks.py [--split validation] [--batches 4] [--size 8] [--repeats 3] [--paragraphs]

Explains ``--batches`` consecutive batches of ``--size`` snippets (paragraphs with
``--paragraphs``) of the packaged MiniLM classifier's split, alternating the two ways
from repeat to repeat so that a slow spell of a shared machine hits both, and prints
the seconds of each repeat, their medians, the median ratio, the share of padded
token positions in one run, and the largest difference between the two ways' word
scores (float rounding only: each text's mask does not depend on its batch). Needs
the ``text`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Dict, List


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--batches", type=int, default=4, help="batches explained per repeat (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each way (default 3)")
    parser.add_argument("--size", type=int, default=8, help="documents per batch (default 8, as compare text)")
    parser.add_argument("--paragraphs", action="store_true", help="paragraphs instead of snippets")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(2)
    import captum_maskopt.text.integration as integration
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.text.data import load_paragraphs

    explainer = TextExplainer(*load_sentiment_classifier())
    size = args.size
    documents = (load_paragraphs if args.paragraphs else load_snippets)(args.split)[: size * args.batches]
    batches = [[d.text for d in documents[i : i + size]] for i in range(0, len(documents), size)]
    split_cost = integration._RUN_COST_POSITIONS
    one_run_cost = 10**12  # so large that no batch is ever split

    def explain_all(run_cost: int) -> List[torch.Tensor]:
        integration._RUN_COST_POSITIONS = run_cost
        try:
            return [w.scores for batch in batches for w in explainer.explain(batch)]
        finally:
            integration._RUN_COST_POSITIONS = split_cost

    explainer.explain(batches[0][:2])  # warm-up
    seconds: Dict[str, List[float]] = {"split": [], "one run": []}
    scores: Dict[str, List[torch.Tensor]] = {}
    for repeat in range(args.repeats):
        ways = [("split", split_cost), ("one run", one_run_cost)]
        for name, cost in ways if repeat % 2 == 0 else ways[::-1]:
            start = time.perf_counter()
            scores[name] = explain_all(cost)
            seconds[name].append(time.perf_counter() - start)
        print(f"repeat {repeat}: split {seconds['split'][-1]:.2f} s, one run {seconds['one run'][-1]:.2f} s", flush=True)
    padded = real = 0
    for batch in batches:
        encoding = explainer.encode(batch, windows=True)
        padded += encoding.attention_mask.numel()
        real += int(encoding.attention_mask.sum())
    ratios = [a / b for a, b in zip(seconds["split"], seconds["one run"])]
    gap = max(float((a - b).abs().max()) for a, b in zip(scores["split"], scores["one run"]))
    print(f"median seconds: split {statistics.median(seconds['split']):.2f}, "
          f"one run {statistics.median(seconds['one run']):.2f}; median ratio {statistics.median(ratios):.3f}")
    print(f"padding in one run: {1 - real / padded:.1%} of token positions; "
          f"largest word-score difference {gap:.2e}")


if __name__ == "__main__":
    main()
