"""Check for a change meant to make the method cheaper without changing what it ranks:
save the word scores of ``MaskOptimization`` (word level) and ``LayerMaskOptimization``
(token level), as ``compare text`` runs them (8 validation snippets per call), under
one version of the code, then under the other, and compare::

    python scripts/experiments/same_rankings.py save before.pt [--snippets 24]
    git stash   # or check out the other version
    python scripts/experiments/same_rankings.py save after.pt [--snippets 24]
    python scripts/experiments/same_rankings.py compare before.pt after.pt

Prints, per method, the largest score difference and how many snippets keep exactly
the same word order (ties broken by position, as the metrics break them).
"""

from __future__ import annotations

import argparse
import warnings
from typing import Dict, List

import torch

METHODS = ("MaskOptimization", "LayerMaskOptimization")


def save(path: str, snippets: int) -> None:
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets
    from captum_maskopt.text.peers import PEERS

    explainer = TextExplainer(*load_sentiment_classifier())
    texts = [document.text for document in load_snippets("validation")[:snippets]]
    scores: Dict[str, List[torch.Tensor]] = {}
    for name in METHODS:
        scores[name] = []
        for start in range(0, len(texts), 8):
            batch = texts[start : start + 8]
            targets = explainer.predict(explainer.encode(batch)).argmax(dim=1)
            scores[name] += [torch.as_tensor(w.scores) for w in PEERS[name](explainer, batch, targets, {})]
    torch.save(scores, path)


def compare(first: str, second: str) -> None:
    before, after = torch.load(first), torch.load(second)
    for name in METHODS:
        pairs = list(zip(before[name], after[name]))
        largest = max(float((a - b).abs().max()) for a, b in pairs)
        same = sum(
            torch.equal(a.argsort(descending=True, stable=True), b.argsort(descending=True, stable=True))
            for a, b in pairs
        )
        print(f"{name}: largest score difference {largest:.2e}; same word order on {same} of {len(pairs)} snippets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    saving = commands.add_parser("save")
    saving.add_argument("path")
    saving.add_argument("--snippets", type=int, default=24)
    comparing = commands.add_parser("compare")
    comparing.add_argument("first")
    comparing.add_argument("second")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    if args.command == "save":
        save(args.path, args.snippets)
    else:
        compare(args.first, args.second)


if __name__ == "__main__":
    main()
