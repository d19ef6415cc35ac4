"""Side-by-side comparison of attribution methods on a text classifier.

:func:`compare_methods` explains the same documents with every method, at word
level, and scores each with the faithfulness metrics of :mod:`captum_maskopt.metrics`.
A removed word is replaced by the pad token (its pieces too), the same removal that the
mask optimization and the perturbation peers use; special tokens always stay.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_maskopt import metrics
from captum_maskopt.text.integration import TextEncoding, TextExplainer, WordAttribution
from captum_maskopt.text.peers import PEERS, token_scores

__all__ = ["METRICS", "compare_methods", "first_rank_rate"]

METRICS = (
    "aopc_comprehensiveness", "aopc_sufficiency", "deletion_auc", "delta_accuracy",
    "seconds_per_example",
)
DELTA_ACCURACY_FRACTION = 0.2


def _word_tensors(words: Sequence[WordAttribution]) -> Tuple[Tensor, Tensor]:
    """Word scores padded to ``(N, W)`` and the bool mask of real words."""
    width = max(len(w.words) for w in words)
    scores = torch.zeros(len(words), width, dtype=torch.float64)
    valid = torch.zeros(len(words), width, dtype=torch.bool)
    for row, word in enumerate(words):
        scores[row, : len(word.words)] = word.scores
        valid[row, : len(word.words)] = True
    return scores, valid


def probabilities_with_words(
    explainer: TextExplainer, encoding: TextEncoding
) -> Callable[[Tensor], Tensor]:
    """``keep (N, W) -> probabilities (N, C)`` with removed words set to the pad id."""
    special = encoding.special
    word_index = encoding.word_index.clamp_min(0)

    def probabilities_with(keep: Tensor) -> Tensor:
        keep = keep.to(encoding.input_ids.device)
        token_keep = special | keep.gather(1, word_index)
        ids = torch.where(token_keep, encoding.input_ids, torch.full_like(encoding.input_ids, explainer.pad_id))
        with torch.no_grad():
            return torch.softmax(explainer.forward(ids, encoding.attention_mask), dim=-1).double().cpu()

    return probabilities_with


def _explain_batch(
    explainer: TextExplainer, name: str, texts: Sequence[str]
) -> Tuple[TextEncoding, List[WordAttribution], Tensor, float]:
    encoding = explainer.encode(texts)
    probabilities = explainer.predict(encoding)
    targets = probabilities.argmax(dim=1)
    start = time.perf_counter()
    scores, reduce = token_scores(name, explainer, encoding, targets)
    elapsed = time.perf_counter() - start
    words = explainer.word_attributions(encoding, scores, targets, probabilities, reduce, name)
    return encoding, words, targets, elapsed


def compare_methods(
    explainer: TextExplainer,
    texts: Sequence[str],
    labels: Sequence[int],
    methods: Sequence[str] = PEERS,
    batch_size: int = 8,
    progress: Optional[Callable[[str], None]] = None,
    keep_attributions: int = 0,
) -> Tuple[Dict[str, Dict[str, float]], List[Dict[str, WordAttribution]]]:
    """Explain ``texts`` with each method and score it.

    Args:
        explainer: the classifier, wrapped.
        texts: the documents.
        labels: their true labels.
        methods: names from :data:`~captum_maskopt.text.peers.PEERS`.
        batch_size: documents per attribution call.
        progress: called with the method's name after each batch.
        keep_attributions: how many documents' word attributions to return (for a
            report).

    Returns:
        ``{method: {metric: value}}`` with the metrics of :data:`METRICS` averaged over
        the documents, and the first ``keep_attributions`` documents' attributions as
        ``[{method: WordAttribution}]``.
    """
    if len(texts) != len(labels) or not texts:
        raise ValueError("texts and labels must be non-empty and of the same length")
    label_tensor = torch.as_tensor(list(labels))
    kept: List[Dict[str, WordAttribution]] = [dict() for _ in range(min(keep_attributions, len(texts)))]
    results: Dict[str, Dict[str, float]] = {}
    for name in methods:
        totals = dict.fromkeys(METRICS, 0.0)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            encoding, words, targets, elapsed = _explain_batch(explainer, name, batch)
            scores, valid = _word_tensors(words)
            probabilities_with = probabilities_with_words(explainer, encoding)
            targets = targets.cpu()
            totals["aopc_comprehensiveness"] += float(
                metrics.aopc_comprehensiveness(probabilities_with, scores, targets, valid).sum())
            totals["aopc_sufficiency"] += float(
                metrics.aopc_sufficiency(probabilities_with, scores, targets, valid).sum())
            fractions, curve = metrics.deletion_curve(probabilities_with, scores, targets, valid)
            totals["deletion_auc"] += float(metrics.area_under_curve(fractions, curve).sum())
            totals["delta_accuracy"] += len(batch) * metrics.delta_accuracy(
                probabilities_with, scores, label_tensor[start : start + len(batch)],
                DELTA_ACCURACY_FRACTION, valid,
            )
            totals["seconds_per_example"] += elapsed
            for offset, word in enumerate(words):
                if start + offset < len(kept):
                    kept[start + offset][name] = word
            if progress is not None:
                progress(name)
        results[name] = {metric: value / len(texts) for metric, value in totals.items()}
    return results, kept


def first_rank_rate(
    explainer: TextExplainer, texts: Sequence[str], word: str, methods: Sequence[str] = PEERS,
    batch_size: int = 8,
) -> Dict[str, float]:
    """For each method, the share of ``texts`` whose top-scored word is ``word``
    (case-insensitive), e.g. a planted shortcut token."""
    rates = {}
    for name in methods:
        hits = 0
        for start in range(0, len(texts), batch_size):
            _, words, _, _ = _explain_batch(explainer, name, texts[start : start + batch_size])
            for attribution in words:
                top = int(attribution.scores.argmax())
                hits += attribution.words[top].lower() == word.lower()
        rates[name] = hits / len(texts)
    return rates


def summary_table(results: Dict[str, Dict[str, Any]]) -> str:
    """The results as a plain-text table, one row per method."""
    header = ["method"] + list(METRICS)
    width = max(len(m) for m in results) + 2
    lines = ["".join([header[0].ljust(width)] + [h.rjust(24) for h in header[1:]])]
    for name, row in results.items():
        lines.append("".join([name.ljust(width)] + [f"{row[m]:24.4f}" for m in METRICS]))
    return "\n".join(lines)
