"""Seconds of the ``"bands"`` final ranking (``_band_readings``) of this checkout against
those of another checkout of the project, in one process, on the same texts:

    python benchmarks/bench_readings.py /path/to/other/checkout [--paragraphs] [--documents 8] [--repeats 6]

The other checkout's ``captum_maskopt/optimization.py`` is loaded as a module of its own,
and ``TextExplainer.explain`` (the packaged MiniLM classifier, test snippets or with
``--paragraphs`` test paragraphs, one batch) is run with either checkout's readings in
turn, the order alternating from repeat to repeat, so that a slow spell of a shared
machine hits both. Everything else (the optimization steps, the model) is this
checkout's. Prints the seconds spent in the readings and in the whole call, their
medians and the median over repeats of this checkout's seconds over the other's. Needs
the ``text`` extra. Only ``optimization.py`` is swapped: compare checkouts that differ in
the readings, not in what they call.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List


def _load_optimization(checkout: Path) -> Any:
    path = checkout / "captum_maskopt" / "optimization.py"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: give the root of another checkout")
    spec = importlib.util.spec_from_file_location("other_optimization", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the root of the other checkout")
    parser.add_argument("--paragraphs", action="store_true", help="test paragraphs instead of snippets")
    parser.add_argument("--documents", type=int, default=8, help="documents in the batch (default 8)")
    parser.add_argument("--repeats", type=int, default=6, help="calls with each checkout's readings (default 6)")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(2)
    import captum_maskopt.optimization as optimization
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.text.data import load_paragraphs

    other = _load_optimization(args.other)
    model, tokenizer = load_sentiment_classifier()
    explainer = TextExplainer(model, tokenizer)
    documents = load_paragraphs("test") if args.paragraphs else load_snippets("test")
    texts = [document.text for document in documents[: args.documents]]
    readings: Dict[str, Callable[..., Any]] = {
        "this": optimization._band_readings, "other": other._band_readings,
    }
    in_readings: Dict[str, List[float]] = {"this": [], "other": []}
    in_call: Dict[str, List[float]] = {"this": [], "other": []}
    explainer.explain(texts[:1])  # warm-up
    try:
        for repeat in range(args.repeats):
            order = ("this", "other") if repeat % 2 == 0 else ("other", "this")
            for name in order:
                spent: List[float] = []

                def timed(*call_args: Any, _read: Callable[..., Any] = readings[name], **kwargs: Any) -> Any:
                    start = time.perf_counter()
                    result = _read(*call_args, **kwargs)
                    spent.append(time.perf_counter() - start)
                    return result

                optimization._band_readings = timed
                start = time.perf_counter()
                explainer.explain(texts)
                in_call[name].append(time.perf_counter() - start)
                in_readings[name].append(sum(spent))
    finally:
        optimization._band_readings = readings["this"]

    kind = "paragraphs" if args.paragraphs else "snippets"
    print(f"{len(texts)} test {kind}, {args.repeats} calls with each checkout's readings, alternated")
    for label, seconds in (("readings", in_readings), ("explain()", in_call)):
        ratios = [mine / theirs for mine, theirs in zip(seconds["this"], seconds["other"])]
        print(f"{label:10s} this {statistics.median(seconds['this']):.2f} s, other "
              f"{statistics.median(seconds['other']):.2f} s (medians); median ratio this/other "
              f"{statistics.median(ratios):.3f}; this {[round(s, 2) for s in seconds['this']]}, "
              f"other {[round(s, 2) for s in seconds['other']]}")


if __name__ == "__main__":
    main()
