"""Seconds of ``TextExplainer.explain`` on texts longer than the model's window, with
each distinct window run once per call (the default) against every window of every
view run, in one process, on the same texts:

    python benchmarks/bench_windows.py [--split validation] [--documents 2] [--size 2] \\
        [--max-length 128] [--repeats 3] [--n-steps N] [--joined]

Explains ``--documents`` paragraphs of the packaged MiniLM classifier's split,
``--size`` per call, in windows of ``--max-length`` tokens (a paragraph fits in the
packaged model's own 512, and a document over 512 tokens takes many minutes on a
CPU: short windows make the same shape of work, several windows per text, in
minutes), alternating the two ways from repeat to repeat so that a slow spell of a
shared machine hits both. With ``--joined`` the paragraphs are joined into one
document (the quick start's long document: ``--split test --documents 3 --joined
--size 1 --max-length 512 --n-steps 4 --repeats 1``). Prints the seconds of each
repeat, their medians, the median ratio, the words and windows per text, the
largest difference between the two ways' word scores and whether the word order is
the same (float rounding only: a reused window's logits were computed in another
batch, and a short window is run without the padding). Needs the ``text`` extra.
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
    parser.add_argument("--documents", type=int, default=2, help="paragraphs explained per repeat (default 2)")
    parser.add_argument("--size", type=int, default=2, help="paragraphs per call (default 2)")
    parser.add_argument("--max-length", type=int, default=128, help="window length in tokens (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each way (default 3)")
    parser.add_argument("--n-steps", type=int, default=None, help="n_steps (default: the method's)")
    parser.add_argument("--joined", action="store_true", help="join the paragraphs into one document")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(2)
    import captum_maskopt.text.integration as integration
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier
    from captum_maskopt.text.data import load_paragraphs

    explainer = TextExplainer(*load_sentiment_classifier(), max_length=args.max_length)
    documents = [d.text for d in load_paragraphs(args.split)[: args.documents]]
    if args.joined:
        documents = [" ".join(documents)]
    batches = [documents[i : i + args.size] for i in range(0, len(documents), args.size)]
    settings = {} if args.n_steps is None else {"n_steps": args.n_steps}
    once = integration._WindowLogits.__call__

    def every_window(self: "integration._WindowLogits", values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # What the windowed call did before: the model on every window of every view.
        return self._forward(values, mask)

    def explain_all(way: str) -> List[torch.Tensor]:
        integration._WindowLogits.__call__ = once if way == "once" else every_window  # type: ignore[method-assign, assignment]
        try:
            return [w.scores for batch in batches for w in explainer.explain(batch, **settings)]
        finally:
            integration._WindowLogits.__call__ = once  # type: ignore[method-assign]

    seconds: Dict[str, List[float]] = {"once": [], "every": []}
    scores: Dict[str, List[torch.Tensor]] = {}
    for repeat in range(args.repeats):
        ways = ["once", "every"]
        for way in ways if repeat % 2 == 0 else ways[::-1]:
            start = time.perf_counter()
            scores[way] = explain_all(way)
            seconds[way].append(time.perf_counter() - start)
        print(f"repeat {repeat}: each window once {seconds['once'][-1]:.1f} s, "
              f"every window {seconds['every'][-1]:.1f} s", flush=True)
    encoding = explainer.encode(documents, windows=True)
    windows = (encoding.attention_mask.sum(-1) > 0).sum(-1).tolist()
    ratios = [a / b for a, b in zip(seconds["once"], seconds["every"])]
    gap = max(float((a - b).abs().max()) for a, b in zip(scores["once"], scores["every"]))
    same_order = sum(
        bool(torch.equal(a.argsort(descending=True, stable=True), b.argsort(descending=True, stable=True)))
        for a, b in zip(scores["once"], scores["every"])
    )
    print(f"median seconds: each window once {statistics.median(seconds['once']):.1f}, every window "
          f"{statistics.median(seconds['every']):.1f}; median ratio {statistics.median(ratios):.3f}")
    words = [len(spans) for spans in encoding.word_spans]
    print(f"words per text {words}, windows per text {windows}; largest word-score difference {gap:.2e}; "
          f"same word order in {same_order} of {len(documents)} texts")


if __name__ == "__main__":
    main()
