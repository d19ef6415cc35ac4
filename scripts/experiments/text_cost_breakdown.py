"""Experiment of issue 15 (cost): where the seconds of the text rows go. For each
method of ``compare text`` (as :data:`~captum_maskopt.text.peers.PEERS` runs it, 8
validation snippets per call), the seconds per snippet, the share spent in the final
ranking's band readings, and the model's forward passes during the optimization steps
and during the readings: calls, rows (views) and token positions (rows times the
padded length) per snippet::

    python scripts/experiments/text_cost_breakdown.py [--snippets 16] \\
        [--methods MaskOptimization,LayerMaskOptimization]

It printed that the token-level call reads more padded positions than the word-level
one, which splits a batch into runs of similar lengths, and where the token-level
call's views go: the optimization steps, each band reading and the swaps at the cuts
(see ``README.md``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, Dict, List, Tuple

import torch

from captum_maskopt import optimization


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snippets", type=int, default=16)
    parser.add_argument("--methods", default="MaskOptimization,LayerMaskOptimization")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.text.peers import PEERS

    phase = {"now": "steps"}
    reading_seconds = [0.0]
    band_readings = optimization._band_readings

    def timed_readings(*given: Any) -> torch.Tensor:
        phase["now"] = "readings"
        start = time.perf_counter()
        try:
            result: torch.Tensor = band_readings(*given)
            return result
        finally:
            reading_seconds[0] += time.perf_counter() - start
            phase["now"] = "steps"

    optimization._band_readings = timed_readings  # type: ignore[assignment]
    # The readings one by one (each a pass of _banded_level_effects) and the swaps at
    # the cuts after them, counted apart from the optimization steps.
    level_effects = optimization._banded_level_effects
    exchanged = optimization._exchanged_at_cuts
    readings_so_far = [0]

    def counted_reading(*given: Any) -> torch.Tensor:
        readings_so_far[0] += 1
        phase["now"] = f"reading {(readings_so_far[0] - 1) % optimization.BAND_READINGS + 1}"
        try:
            result: torch.Tensor = level_effects(*given)
            return result
        finally:
            phase["now"] = "readings"

    def counted_exchanges(*given: Any) -> torch.Tensor:
        phase["now"] = "exchanges"
        try:
            result: torch.Tensor = exchanged(*given)
            return result
        finally:
            phase["now"] = "steps"

    optimization._banded_level_effects = counted_reading  # type: ignore[assignment]
    optimization._exchanged_at_cuts = counted_exchanges  # type: ignore[assignment]
    explainer = TextExplainer(*load_sentiment_classifier())
    passes: Dict[str, List[int]] = {}

    def count(module: torch.nn.Module, given: Tuple[Any, ...], keywords: Dict[str, Any]) -> None:
        ids = given[0] if given else next(iter(keywords.values()))
        totals = passes.setdefault(phase["now"], [0, 0, 0])
        totals[0] += 1
        totals[1] += ids.shape[0]
        totals[2] += ids.shape[0] * ids.shape[1]

    explainer.model.register_forward_pre_hook(count, with_kwargs=True)
    texts = [d.text for d in load_snippets("validation")[: args.snippets]]
    names = args.methods.split(",")
    PEERS[names[0]](explainer, texts[:1], None, {})  # warm-up
    n = len(texts)
    for name in names:
        passes.clear()
        readings_so_far[0] = 0
        reading_seconds[0] = 0.0
        seconds = 0.0
        for start in range(0, n, 8):
            batch = texts[start : start + 8]
            targets = explainer.predict(explainer.encode(batch)).argmax(dim=1)
            began = time.perf_counter()
            PEERS[name](explainer, batch, targets, {})
            seconds += time.perf_counter() - began
        print(f"{name}: {seconds / n:.3f} s per snippet, readings {reading_seconds[0] / seconds:.0%} of it")
        for part, (calls, rows, positions) in passes.items():
            print(f"  {part:9s} {calls} calls, {rows / n:.1f} views and {positions / n:.0f} token positions per snippet")
    encoding = explainer.encode(texts)
    pieces = float(encoding.attention_mask.sum()) / n
    words = sum(len(spans) for spans in encoding.word_spans) / n
    print(f"{pieces:.1f} token positions ([CLS] and [SEP] included) and {words:.1f} words per snippet")


if __name__ == "__main__":
    main()
