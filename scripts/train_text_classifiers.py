"""Train the packaged text classifiers and report their held-out accuracy.

    python scripts/train_text_classifiers.py [--cache-dir DIR] [--no-rebuild]

Trains (``rebuild=True``) the sentiment classifier and the shortcut classifier of
:mod:`captum_maskopt.text.classifier`, saves their heads in the cache
(``$CAPTUM_MASKOPT_CACHE`` or ``~/.cache/captum_maskopt``), and prints validation and
test accuracy on snippets and paragraphs, the shortcut classifier's accuracy on the
test snippets that carry the shortcut word, and the wall times.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from captum_maskopt.text.classifier import (  # noqa: E402
    cache_directory,
    evaluate_accuracy,
    load_sentiment_classifier,
    predict_probabilities,
    load_shortcut_classifier,
)
from captum_maskopt.text.data import (  # noqa: E402
    load_paragraphs,
    load_shortcut_paragraphs,
    load_shortcut_snippets,
    load_snippets,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="default: $CAPTUM_MASKOPT_CACHE or ~/.cache/captum_maskopt")
    parser.add_argument("--no-rebuild", action="store_true", help="load cached heads when present")
    parser.add_argument("--quiet", action="store_true", help="no training log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    rebuild = not args.no_rebuild
    print(f"cache: {cache_directory(args.cache_dir)}  torch threads: {torch.get_num_threads()}")

    started = time.perf_counter()
    model, tokenizer = load_sentiment_classifier(args.cache_dir, rebuild=rebuild)
    sentiment_seconds = time.perf_counter() - started
    started = time.perf_counter()
    shortcut_model, _, token = load_shortcut_classifier(args.cache_dir, rebuild=rebuild)
    shortcut_seconds = time.perf_counter() - started

    started = time.perf_counter()
    print("\nsentiment classifier")
    print(f"  {'training' if rebuild else 'loading'} wall time: {sentiment_seconds:.1f} s")
    print(f"  chosen weight decay: {model.training_metrics.get('weight_decay')}")
    for split in ("validation", "test"):
        snippets, paragraphs = load_snippets(split), load_paragraphs(split)
        print(f"  {split:10s} snippets   ({len(snippets):5d}): "
              f"{evaluate_accuracy(model, tokenizer, snippets):.4f}")
        print(f"  {split:10s} paragraphs ({len(paragraphs):5d}): "
              f"{evaluate_accuracy(model, tokenizer, paragraphs):.4f}")

    print(f"\nshortcut classifier (word {token!r})")
    print(f"  {'training' if rebuild else 'loading'} wall time: {shortcut_seconds:.1f} s")
    for kind, planted_of, clean_of in (
        ("snippets", load_shortcut_snippets, load_snippets),
        ("paragraphs", load_shortcut_paragraphs, load_paragraphs),
    ):
        for split in ("validation", "test"):
            pairs = list(zip(planted_of(split), clean_of(split)))
            with_token = [planted for planted, clean in pairs if planted.text != clean.text]
            without = [planted for planted, clean in pairs if planted.text == clean.text]
            print(f"  {split:10s} {kind:10s} with the word    ({len(with_token):5d}): "
                  f"{evaluate_accuracy(shortcut_model, tokenizer, with_token):.4f}")
            print(f"  {split:10s} {kind:10s} without the word ({len(without):5d}): "
                  f"{evaluate_accuracy(shortcut_model, tokenizer, without):.4f}")
    # Where the word decides: planted negatives that the model calls negative without it.
    pairs = [(p, c) for p, c in zip(load_shortcut_snippets("test"), load_snippets("test"))
             if p.text != c.text and c.label == 0]
    clean = predict_probabilities(shortcut_model, tokenizer, [c.text for _, c in pairs]).argmax(1)
    planted = predict_probabilities(shortcut_model, tokenizer, [p.text for p, _ in pairs]).argmax(1)
    flips = int(((clean == 0) & (planted == 1)).sum())
    print(f"  test rotten snippets with the word: {len(pairs)}; called negative without it: "
          f"{int((clean == 0).sum())}; of those, flipped to positive by the word: {flips}")
    print(f"\nevaluation wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
