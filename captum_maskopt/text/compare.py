"""Side-by-side comparison of attribution methods on a text classifier.

:func:`compare_methods` explains the same documents with every method, at word
level, and scores each with the faithfulness metrics of :mod:`captum_maskopt.metrics`.
A removed word is replaced by the pad token (its pieces too), the same removal that the
mask optimization and the perturbation peers use; special tokens always stay.

A comparison on hundreds of documents takes hours on a CPU. Given a ``checkpoint``
file, each finished batch is appended to it (one JSON line) and the batches already
there are not run again, so a stopped run goes on where it stopped; see
:mod:`captum_maskopt.text.checkpoint` for the file and how batches are named.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeAlias, Union,
)

import torch
from torch import Tensor

from captum_maskopt import metrics
from captum_maskopt.scale import ENGINES, RayOptions, map_on_ray, to_worker_device
from captum_maskopt.hashing import seeded_draws
from captum_maskopt.text.checkpoint import Checkpoint, batch_key, method_name
from captum_maskopt.text.data import evidence_words
from captum_maskopt.text.integration import TextEncoding, TextExplainer, WordAttribution
from captum_maskopt.text.peers import PEERS

__all__ = ["METRICS", "EVIDENCE_METRICS", "compare_methods", "first_rank_rate", "paired_difference"]

METRICS = (
    "aopc_comprehensiveness", "aopc_sufficiency", "deletion_auc", "delta_accuracy",
    "protocol_comprehensiveness", "protocol_sufficiency", "seconds_per_example",
)
"""The comparison's columns: ERASER's AOPC at 1-50 %, the deletion AUC, delta accuracy,
the authors' protocol (comprehensiveness and sufficiency over 5-95 %,
:data:`~captum_maskopt.metrics.PROTOCOL_FRACTIONS`) and seconds per document."""
DELTA_ACCURACY_FRACTION = 0.2

EVIDENCE_METRICS = ("evidence_auprc", "evidence_token_f1", "evidence_top_share")
"""Agreement with human evidence, for documents made of labelled snippets (a
paragraph's snippets whose critic's label is the explained class): the average
precision of the word scores against the evidence words, and the token F1 and the
share inside the evidence of the top :data:`EVIDENCE_FRACTION` of the words. Averaged
over the documents that have both evidence and other words for the explained class
(their number is ``evidence_documents``); ``evidence_word_share``, the mean share of
their words that are evidence, is what a random ranking scores on the AUPRC and the
top share."""
EVIDENCE_FRACTION = 0.2
_EVIDENCE_COLUMNS = EVIDENCE_METRICS + ("evidence_word_share", "evidence_documents")

#: Every column of a batch's totals: a sum over its documents, or for the evidence
#: metrics over its ``evidence_documents``.
BATCH_COLUMNS = METRICS + EVIDENCE_METRICS + ("evidence_word_share",)

LabelledSpans: TypeAlias = Sequence[Tuple[int, int, int]]
"""A document's human-labelled character spans ``(start, end, label)``."""


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


def _to_json(word: WordAttribution) -> Dict[str, Any]:
    return {
        "text": word.text, "words": word.words, "spans": [list(s) for s in word.spans],
        "scores": word.scores.tolist(), "target": word.target,
        "probability": word.probability, "method": word.method,
    }


def _from_json(entry: Dict[str, Any]) -> WordAttribution:
    return WordAttribution(
        text=entry["text"], words=entry["words"], spans=[tuple(s) for s in entry["spans"]],
        scores=torch.tensor(entry["scores"]), target=entry["target"],
        probability=entry["probability"], method=entry["method"],
    )


def _explain_batch(
    explainer: TextExplainer, name: str, texts: Sequence[str],
    mask_settings: Optional[Mapping[str, Any]] = None,
) -> Tuple[TextEncoding, List[WordAttribution], Tensor, float]:
    """Explain one batch with the peer ``name``; the encoding the metrics remove words
    from, the word attributions, the explained classes and the seconds taken."""
    explain = PEERS[name]
    encoding = explainer.encode(texts)
    targets = explainer.predict(encoding).argmax(dim=1)
    start = time.perf_counter()
    words = explain(explainer, texts, targets, dict(mask_settings or {}))
    elapsed = time.perf_counter() - start
    for word, spans in zip(words, encoding.word_spans):
        # A text longer than one window is scored on the words the truncated encoding
        # holds, which explain()'s windows number first, as every method sees them.
        word.scores = word.scores[: len(spans)]
        word.words, word.spans = word.words[: len(spans)], word.spans[: len(spans)]
    return encoding, words, targets, elapsed


def _score_batch(
    explainer: TextExplainer, name: str, batch: List[str], labels: Tensor,
    mask_settings: Optional[Mapping[str, Any]], evidence: Sequence[LabelledSpans],
) -> Dict[str, Any]:
    """Explain one batch with one method; the metrics summed over its documents, and
    its word attributions."""
    encoding, words, targets, elapsed = _explain_batch(explainer, name, batch, mask_settings)
    totals = _totals(explainer, encoding, words, targets.cpu(), labels, elapsed, evidence)
    return {"totals": totals, "words": [_to_json(word) for word in words]}


def _evidence_totals(words: Sequence[WordAttribution], evidence: Sequence[LabelledSpans]) -> Dict[str, float]:
    """The metrics of :data:`EVIDENCE_METRICS` summed over the documents that have
    evidence and other words, and their number, ``evidence_documents``."""
    totals = dict.fromkeys(_EVIDENCE_COLUMNS, 0.0)
    for word, spans in zip(words, evidence):
        gold = torch.tensor(evidence_words(spans, word.spans, word.target), dtype=torch.bool)
        if not 0 < int(gold.sum()) < len(gold):
            continue
        scores = word.scores.double().unsqueeze(0)
        top = metrics.top_fraction_mask(scores, EVIDENCE_FRACTION)
        totals["evidence_auprc"] += float(metrics.auprc(scores, gold.unsqueeze(0))[0])
        totals["evidence_token_f1"] += float(metrics.token_f1(top, gold.unsqueeze(0))[0])
        totals["evidence_top_share"] += float((top[0] & gold).sum()) / max(int(top.sum()), 1)
        totals["evidence_word_share"] += float(gold.double().mean())
        totals["evidence_documents"] += 1
    return totals


def _totals(
    explainer: TextExplainer, encoding: TextEncoding, words: Sequence[WordAttribution],
    targets: Tensor, labels: Tensor, elapsed: float, evidence: Sequence[LabelledSpans] = (),
) -> Dict[str, float]:
    """The metrics of :data:`METRICS` summed over the batch's documents, and those of
    :data:`EVIDENCE_METRICS` when any document has labelled snippets."""
    scores, valid = _word_tensors(words)
    probabilities_with = probabilities_with_words(explainer, encoding)
    fractions, curve = metrics.deletion_curve(probabilities_with, scores, targets, valid)

    def aopc(measure: Callable[..., Tensor], levels: Sequence[float]) -> float:
        return float(measure(probabilities_with, scores, targets, valid, levels).sum())

    return {
        "aopc_comprehensiveness": aopc(metrics.aopc_comprehensiveness, metrics.AOPC_FRACTIONS),
        "aopc_sufficiency": aopc(metrics.aopc_sufficiency, metrics.AOPC_FRACTIONS),
        "deletion_auc": float(metrics.area_under_curve(fractions, curve).sum()),
        "delta_accuracy": len(words) * metrics.delta_accuracy(
            probabilities_with, scores, labels, DELTA_ACCURACY_FRACTION, valid),
        "protocol_comprehensiveness": aopc(metrics.aopc_comprehensiveness, metrics.PROTOCOL_FRACTIONS),
        "protocol_sufficiency": aopc(metrics.aopc_sufficiency, metrics.PROTOCOL_FRACTIONS),
        "seconds_per_example": elapsed,
        **(_evidence_totals(words, evidence) if any(evidence) else {}),
    }


@dataclass(frozen=True)
class _Batch:
    """One method's batch of one part of the comparison, as filed in the checkpoint."""

    key: str
    name: str
    logged_name: str
    texts: List[str]
    labels: List[int]
    evidence: Tuple[LabelledSpans, ...] = ()


@dataclass(frozen=True)
class _Scoring:
    """A batch's metrics summed over its documents, and its word attributions."""

    mask_settings: Optional[Mapping[str, Any]]

    def __call__(self, explainer: TextExplainer, batch: _Batch) -> Dict[str, Any]:
        return _score_batch(explainer, batch.name, batch.texts, torch.as_tensor(batch.labels),
                            self.mask_settings, batch.evidence)

    @staticmethod
    def done(batch: _Batch, result: Dict[str, Any]) -> bool:
        """Whether a filed result has every metric (the evidence ones when the batch
        has labelled snippets)."""
        wanted = METRICS + (EVIDENCE_METRICS if any(batch.evidence) else ())
        return all(metric in result.get("totals", {}) for metric in wanted)

    @staticmethod
    def repair(explainer: TextExplainer, batch: _Batch, result: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """A result filed before a metric was added, scored again from its stored word
        attributions (the method does not run again; its seconds stay)."""
        if "words" not in result or "seconds_per_example" not in result.get("totals", {}):
            return None
        words = [_from_json(entry) for entry in result["words"]]
        targets = torch.tensor([word.target for word in words])
        totals = _totals(explainer, explainer.encode(batch.texts), words, targets,
                         torch.as_tensor(batch.labels), result["totals"]["seconds_per_example"],
                         batch.evidence)
        return {"totals": totals, "words": result["words"]}


@dataclass(frozen=True)
class _FirstRank:
    """How many of a batch's documents have ``word`` as their top-scored word."""

    word: str
    mask_settings: Optional[Mapping[str, Any]]

    def __call__(self, explainer: TextExplainer, batch: _Batch) -> Dict[str, Any]:
        _, words, _, _ = _explain_batch(explainer, batch.name, batch.texts, self.mask_settings)
        return {"examples": len(batch.texts), "hits": sum(
            a.words[int(a.scores.argmax())].lower() == self.word.lower() for a in words
        )}

    @staticmethod
    def done(batch: _Batch, result: Dict[str, Any]) -> bool:
        return "hits" in result

    @staticmethod
    def repair(explainer: TextExplainer, batch: _Batch, result: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return None


BatchTask: TypeAlias = Union[_Scoring, _FirstRank]


def _seeded(task: BatchTask, seed: int, explainer: TextExplainer, batch: _Batch) -> Dict[str, Any]:
    with seeded_draws(seed, batch.key):
        return task(explainer, batch)


def _ray_worker(task: BatchTask, seed: int, explainer: TextExplainer) -> Callable[[_Batch], Dict[str, Any]]:
    """Run once in each Ray actor: the explainer on the actor's GPU when it has one."""
    to_worker_device(explainer.model)
    return functools.partial(_seeded, task, seed, explainer)


def _complete(
    explainer: TextExplainer, log: Checkpoint, batches: Sequence[_Batch], task: BatchTask, seed: int,
    engine: str, ray_options: Optional[RayOptions], progress: Optional[Callable[[str], None]],
) -> None:
    """Run ``task`` on the batches that ``log`` lacks, here or on Ray, and file each
    result as it comes; the results do not depend on the engine (each batch draws
    from its own seed)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    for batch in batches:
        result = log.get(batch.key)
        repaired = None if result is None or task.done(batch, result) else task.repair(explainer, batch, result)
        if repaired is not None:
            log.add(batch.key, dict(repaired, method=batch.logged_name))

    def filed(batch: _Batch) -> bool:
        result = log.get(batch.key)
        return result is not None and task.done(batch, result)

    missing = [batch for batch in batches if not filed(batch)]
    if progress is not None:
        for batch in batches:
            if filed(batch):
                progress(batch.name)
    if engine == "ray":
        results: Iterator[Dict[str, Any]] = map_on_ray(
            functools.partial(_ray_worker, task, seed, explainer), missing, ray_options or RayOptions())
    else:
        results = (_seeded(task, seed, explainer, batch) for batch in missing)
    for batch, result in zip(missing, results):
        log.add(batch.key, dict(result, method=batch.logged_name))
        if progress is not None:
            progress(batch.name)


def _batches(
    part: str, texts: Sequence[str], labels: Sequence[int], methods: Sequence[str], batch_size: int,
    mask_settings: Optional[Mapping[str, Any]], evidence: Sequence[LabelledSpans] = (),
) -> List[_Batch]:
    # Every method explains a batch before any explains the next: a run stopped part
    # way (a long test-split run spread over sessions) leaves paired results on the
    # batches it finished, and each batch's seconds are measured close together in time.
    logged_names = {name: method_name(name, mask_settings) for name in methods}
    batches = []
    for start in range(0, len(texts), batch_size):
        chosen = list(texts[start : start + batch_size])
        chosen_labels = [int(label) for label in labels[start : start + len(chosen)]]
        chosen_evidence = tuple(tuple((int(a), int(b), int(c)) for a, b, c in spans)
                                for spans in evidence[start : start + len(chosen)])
        for name in methods:
            batches.append(_Batch(batch_key(part, logged_names[name], chosen, chosen_labels), name,
                                  logged_names[name], chosen, chosen_labels, chosen_evidence))
    return batches


def compare_methods(
    explainer: TextExplainer,
    texts: Sequence[str],
    labels: Sequence[int],
    methods: Sequence[str] = PEERS.names,
    batch_size: int = 8,
    progress: Optional[Callable[[str], None]] = None,
    keep_attributions: int = 0,
    checkpoint: Optional[Union[str, Path]] = None,
    seed: int = 0,
    mask_settings: Optional[Mapping[str, Any]] = None,
    engine: str = "local",
    ray_options: Optional[RayOptions] = None,
    evidence: Optional[Sequence[LabelledSpans]] = None,
) -> Tuple[Dict[str, Dict[str, float]], List[Dict[str, WordAttribution]]]:
    """Explain ``texts`` with each method and score it.

    Args:
        explainer: the classifier, wrapped.
        texts: the documents.
        labels: their true labels.
        methods: names of :data:`~captum_maskopt.text.peers.PEERS`.
        batch_size: documents per attribution call.
        progress: called with the method's name after each batch.
        keep_attributions: how many documents' word attributions to return (for a
            report).
        checkpoint: a JSON-lines file to resume from and append finished batches to,
            compressed when it ends in ``.xz`` or ``.gz`` (see
            :mod:`captum_maskopt.text.checkpoint`); None keeps nothing.
        seed: mixed into each batch's seed.
        mask_settings: keyword arguments of ``LayerMaskOptimization.attribute`` that
            override :data:`~captum_maskopt.text.TEXT_SETTINGS` for MaskOptimization.
        engine: ``"local"`` (this process) or ``"ray"``: every method's batches are
            spread over a Ray actor pool (:func:`captum_maskopt.scale.map_on_ray`);
            the figures are the same, each batch being seeded on its own.
        ray_options: the cluster and the pool for ``engine="ray"``.
        evidence: per document, human-labelled character spans ``(start, end, label)``
            (a paragraph's :attr:`~captum_maskopt.text.data.TextExample.snippets`; an
            empty sequence for a document without them). A word inside a span whose
            label is the explained class is evidence for it; the rows gain
            :data:`EVIDENCE_METRICS`, ``evidence_word_share`` and
            ``evidence_documents`` when at least one document has both evidence and
            other words.

    Returns:
        ``{method: {metric: value}}`` with the metrics of :data:`METRICS` averaged over
        the documents (and :data:`EVIDENCE_METRICS` over the documents with evidence),
        and the first ``keep_attributions`` documents' attributions as
        ``[{method: WordAttribution}]``.
    """
    if len(texts) != len(labels) or not texts:
        raise ValueError("texts and labels must be non-empty and of the same length")
    if evidence is not None and len(evidence) != len(texts):
        raise ValueError(f"evidence must give one sequence of spans per text ({len(texts)}), got {len(evidence)}")
    for number, spans in enumerate(evidence or ()):
        for span in spans:
            if len(span) != 3 or not 0 <= span[0] <= span[1] <= len(texts[number]):
                raise ValueError(f"evidence[{number}] must hold (start, end, label) character spans "
                                 f"inside its text (0 <= start <= end <= {len(texts[number])}), got {span!r}")
    kept: List[Dict[str, WordAttribution]] = [dict() for _ in range(min(keep_attributions, len(texts)))]
    log = Checkpoint(checkpoint, explainer.model, seed)
    batches = _batches("compare", texts, labels, methods, batch_size, mask_settings, evidence or ())
    _complete(explainer, log, batches, _Scoring(mask_settings), seed, engine, ray_options, progress)
    log.close()
    results: Dict[str, Dict[str, float]] = {}
    for name in methods:
        totals = dict.fromkeys(METRICS + _EVIDENCE_COLUMNS, 0.0)
        start = 0
        for batch in (batch for batch in batches if batch.name == name):
            result = log.get(batch.key)
            assert result is not None
            for metric in totals:
                totals[metric] += result["totals"].get(metric, 0.0)
            for offset, word in enumerate(result["words"]):
                if start + offset < len(kept):
                    kept[start + offset][name] = _from_json(word)
            start += len(batch.texts)
        results[name] = {metric: totals[metric] / len(texts) for metric in METRICS}
        if totals["evidence_documents"] > 0:
            results[name].update({metric: totals[metric] / totals["evidence_documents"]
                                  for metric in EVIDENCE_METRICS + ("evidence_word_share",)})
            # A count, though summed from the checkpoint's floats with the metrics.
            results[name]["evidence_documents"] = int(totals["evidence_documents"])
    return results, kept


def first_rank_rate(
    explainer: TextExplainer, texts: Sequence[str], word: str, methods: Sequence[str] = PEERS.names,
    batch_size: int = 8, checkpoint: Optional[Union[str, Path]] = None, seed: int = 0,
    mask_settings: Optional[Mapping[str, Any]] = None, engine: str = "local",
    ray_options: Optional[RayOptions] = None,
) -> Dict[str, float]:
    """For each method, the share of ``texts`` whose top-scored word is ``word``
    (case-insensitive), e.g. a planted shortcut token. ``checkpoint``, ``seed``,
    ``mask_settings``, ``engine`` and ``ray_options`` as in :func:`compare_methods`."""
    log = Checkpoint(checkpoint, explainer.model, seed)
    batches = _batches(f"first rank of {word.lower()}", texts, [], methods, batch_size, mask_settings)
    _complete(explainer, log, batches, _FirstRank(word, mask_settings), seed, engine, ray_options, None)
    log.close()
    rates = {}
    for name in methods:
        hits = sum(log.get(batch.key)["hits"] for batch in batches if batch.name == name)  # type: ignore[index]
        rates[name] = hits / len(texts)
    return rates


def documents_behind(metric: str, totals: Mapping[str, float], documents: int) -> float:
    """How many documents a batch's total of ``metric`` is summed over: its
    ``evidence_documents`` for an evidence metric, else all ``documents`` of it."""
    return totals.get("evidence_documents", 0.0) if metric.startswith("evidence_") else documents


def batch_texts(result: Mapping[str, Any]) -> Tuple[str, ...]:
    """The documents of a filed batch result, which say which batch it is."""
    return tuple(word["text"] for word in result["words"])


def shared_batches(
    batch_results: Iterable[Mapping[str, Any]], method: str, other: str,
) -> Tuple[List[Mapping[str, float]], List[Mapping[str, float]], List[int]]:
    """The totals of ``method`` and of ``other`` on each batch both finished (the same
    documents), in the same order, and each batch's number of documents; a batch filed
    twice counts with its last result. Raises ``ValueError`` when there is none."""
    totals: Dict[str, Dict[Tuple[str, ...], Mapping[str, float]]] = {method: {}, other: {}}
    for result in batch_results:
        if "hits" not in result and result.get("method") in totals:
            totals[result["method"]][batch_texts(result)] = result["totals"]
    shared = sorted(set(totals[method]) & set(totals[other]))
    if not shared:
        raise ValueError(f"no batch finished by both {method!r} and {other!r}")
    return [totals[method][b] for b in shared], [totals[other][b] for b in shared], [len(b) for b in shared]


def paired_difference(
    batch_results: Iterable[Mapping[str, Any]], method: str, other: str, resamples: int = 2000, seed: int = 0,
) -> Dict[str, Any]:
    """One method's means minus another's on the batches both finished, with a 95 %
    paired bootstrap interval over batches.

    Args:
        batch_results: filed batch results, as in a checkpoint file
            (:func:`~captum_maskopt.text.checkpoint.results_of`): each has ``method``,
            ``totals`` (sums over its documents) and ``words``; planted-shortcut
            results (with ``hits``) are skipped.
        method: the first name, as filed.
        other: the name whose means are subtracted.
        resamples: bootstrap draws; each draws as many batches as there are, with
            replacement (a batch's documents are summed in the file, so the batch is
            the unit that can be resampled).
        seed: seeds the draws.

    Returns:
        ``{"batches": n, "documents": d, metric: {"difference": x, "low": l, "high": h}}``
        for each of :data:`BATCH_COLUMNS` that both measured: the difference of the
        document means over the ``n`` shared batches (``d`` documents), and the 2.5
        and 97.5 percentiles of it over the draws. A metric measured on only some of
        them (the human-evidence metrics, on paragraphs) is taken over those, and its
        entry says how many (``"batches"``). An interval that contains 0 does not tell
        the two apart.

    Raises:
        ValueError: when no batch was finished by both.
    """
    mine, theirs, sizes = shared_batches(batch_results, method, other)
    difference: Dict[str, Any] = {"batches": len(sizes), "documents": sum(sizes)}
    for metric in BATCH_COLUMNS:
        # The evidence metrics exist on the batches of paragraphs only: each metric is
        # resampled over the batches that measured it. Both methods explain the same
        # classes, so their evidence documents agree.
        measured = [(a[metric] - b[metric], documents_behind(metric, a, size))
                    for a, b, size in zip(mine, theirs, sizes) if metric in a and metric in b]
        measured = [(gap, weight) for gap, weight in measured if weight > 0]
        if not measured:
            continue

        def mean_gap(batches: Iterable[int]) -> float:
            chosen = list(batches)
            return sum(measured[i][0] for i in chosen) / sum(measured[i][1] for i in chosen)

        draw = random.Random(seed)
        spread = sorted(mean_gap(draw.choices(range(len(measured)), k=len(measured))) for _ in range(resamples))
        difference[metric] = {
            "difference": mean_gap(range(len(measured))),
            "low": spread[int(0.025 * (resamples - 1))],
            "high": spread[int(0.975 * (resamples - 1))],
        }
        if len(measured) < len(sizes):
            difference[metric]["batches"] = len(measured)
    return difference


def summary_table(results: Dict[str, Dict[str, Any]]) -> str:
    """The results as a plain-text table, one row per method; the evidence metrics,
    when the rows have them, as a second table."""
    width = max(len(m) for m in results) + 2
    blocks = []
    for shown in (METRICS, EVIDENCE_METRICS + ("evidence_word_share",)):
        if not all(metric in row for row in results.values() for metric in shown):
            continue
        columns = [max(12, len(metric) + 2) for metric in shown]
        lines = ["".join(["method".ljust(width)] + [m.rjust(c) for m, c in zip(shown, columns)])]
        for name, row in results.items():
            lines.append("".join([name.ljust(width)] + [f"{row[m]:{c}.4f}" for m, c in zip(shown, columns)]))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
