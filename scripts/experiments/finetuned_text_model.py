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
"""

from __future__ import annotations

import argparse
import os
import random
import time
import warnings
from pathlib import Path
from typing import List

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from captum_maskopt.text.classifier import cache_directory, encoder_path, load_tokenizer  # noqa: E402
from captum_maskopt.text.data import TextExample, load_snippets  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=cache_directory() / "finetuned-minilm")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from transformers import BertForSequenceClassification

    torch.set_num_threads(2)
    torch.manual_seed(0)
    shuffle = random.Random(0)
    tokenizer = load_tokenizer()
    model = BertForSequenceClassification.from_pretrained(
        str(encoder_path()), num_labels=2, id2label={0: "rotten", 1: "fresh"}, label2id={"rotten": 0, "fresh": 1}
    )
    train = load_snippets("train")
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
    print(f"validation accuracy {_accuracy(model, tokenizer, load_snippets('validation')):.4f}")
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    print(f"saved to {args.output}; compare on it with:\n  captum-maskopt compare text --model {args.output} "
          "--split validation --snippets 120 --paragraphs 0 --shortcut 0 --batch-size 4")


if __name__ == "__main__":
    main()
