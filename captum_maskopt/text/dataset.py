"""Explain a whole data set of texts: rows of word scores and rationale spans.

:func:`explain_texts` explains texts batch by batch with any method of the text
comparison (:data:`~captum_maskopt.text.peers.PEERS`, MaskOptimization by default) and
yields one JSON-ready row per text; :func:`explain_dataset` does the same for a list of
strings or a Hugging Face ``datasets.Dataset`` (a batched ``map`` that adds the
columns). The ``captum-maskopt explain text`` command is a thin layer over
:func:`explain_texts` that writes the rows to a resumable
:class:`~captum_maskopt.output.ExplanationFile`.

A text that cannot be explained (empty, not a string, or one on which the method
fails) gets its reason in the row's ``"error"`` field, and the other texts go on; a
text longer than the model's window is explained in overlapping windows by
MaskOptimization (Captum's methods see its first window).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple,
    TypeAlias, Union,
)

import torch

from captum_maskopt.scale import ENGINES, to_worker_device
from captum_maskopt.settings import resolve_settings
from captum_maskopt.tables import InputError
from captum_maskopt.text.integration import TextExplainer, WordAttribution, text_settings
from captum_maskopt.text.peers import PEER_SETTINGS, PEERS

if TYPE_CHECKING:
    from captum_maskopt.scale import RayOptions

__all__ = [
    "explain_texts", "explain_dataset", "attribution_of", "method_settings",
    "resolve_targets",
]

TargetChoice: TypeAlias = Union[None, str, int, Sequence[Union[int, str]]]
"""What ``target`` accepts: None or ``"predicted"`` (each text's predicted class), a
class index or label name for all texts, or one index or name per text."""

#: The share of words (at least one) that a row's ``"rationale"`` holds by default.
DEFAULT_TOP_FRACTION = 0.2


def method_settings(method: str, mask_settings: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The settings ``method`` runs with, JSON-ready: for MaskOptimization every
    setting in force (:data:`~captum_maskopt.text.TEXT_SETTINGS` and ``mask_settings``
    over the defaults; for LayerMaskOptimization ``mask_settings`` over the defaults),
    for Captum's methods the keywords the comparison gives them."""
    PEERS[method]  # an unknown name raises here, listing the methods
    if method == "LayerMaskOptimization":
        return resolve_settings(**dict(mask_settings or {})).as_record()
    if method != "MaskOptimization":
        return dict(PEER_SETTINGS.get(method, {}))
    return resolve_settings(**text_settings(mask_settings)).as_record()


def resolve_targets(explainer: TextExplainer, target: TargetChoice, count: int) -> Optional[List[int]]:
    """``target`` as one class index per text, or None for the predicted classes.

    Raises:
        ValueError: for a class name the model does not have, an index out of range,
            or a per-text sequence of another length.
    """
    if target is None or (isinstance(target, str) and target == "predicted"):
        return None
    if isinstance(target, (int, str)):
        return [explainer.class_index(target)] * count
    values = list(target)
    if len(values) != count:
        raise InputError(f"target: expected one class per text ({count}), got {len(values)}")
    return [explainer.class_index(value, f"target of text {i}") for i, value in enumerate(values)]


def _problem(text: Any) -> Optional[str]:
    if not isinstance(text, str):
        return f"not a text: {type(text).__name__} {text!r}"
    if not text.strip():
        return "empty text: nothing to explain"
    return None


def _row(
    explainer: TextExplainer, attribution: WordAttribution, predicted: int, probability: float,
    top_fraction: Optional[float], threshold: Optional[float],
) -> Dict[str, Any]:
    names = explainer.label_names
    scores = [float(value) for value in attribution.scores.tolist()]
    if not all(math.isfinite(value) for value in scores):
        raise FloatingPointError("the method returned non-finite word scores")
    rationale = attribution.rationale_spans(top_fraction, threshold) if attribution.words else []
    return {
        "predicted": predicted,
        "predicted_label": names[predicted] if names else None,
        "probability": probability,
        "target": attribution.target,
        "target_label": names[attribution.target] if names else None,
        "target_probability": attribution.probability,
        "words": [
            {"word": word, "start": start, "end": end, "score": score}
            for word, (start, end), score in zip(attribution.words, attribution.spans, scores)
        ],
        "rationale": [{"start": start, "end": end, "text": attribution.text[start:end]}
                      for start, end in rationale],
    }


def _failed(error: str) -> Dict[str, Any]:
    return {"predicted": None, "predicted_label": None, "probability": None, "target": None,
            "target_label": None, "target_probability": None, "words": [], "rationale": [],
            "error": error}


def _explain_batch(
    explainer: TextExplainer, texts: List[str], targets: Optional[List[int]], method: str,
    mask_settings: Mapping[str, Any], top_fraction: Optional[float], threshold: Optional[float],
) -> List[Dict[str, Any]]:
    probabilities = explainer.predict(explainer.encode(texts, windows=True))
    predicted = probabilities.argmax(dim=1)
    chosen = predicted if targets is None else torch.tensor(targets, device=predicted.device)
    attributions = PEERS[method](explainer, texts, chosen, mask_settings)
    return [
        {**_row(explainer, attribution, int(predicted[i]), float(probabilities[i, predicted[i]]),
                top_fraction, threshold), "error": None}
        for i, attribution in enumerate(attributions)
    ]


def explain_texts(
    explainer: TextExplainer,
    texts: Sequence[Any],
    target: TargetChoice = None,
    method: str = "MaskOptimization",
    batch_size: int = 8,
    top_fraction: Optional[float] = DEFAULT_TOP_FRACTION,
    threshold: Optional[float] = None,
    mask_settings: Optional[Mapping[str, Any]] = None,
    skip: Sequence[int] = (),
    progress: Optional[Callable[[int], None]] = None,
    engine: str = "local",
    ray_options: Optional["RayOptions"] = None,
) -> Iterator[List[Dict[str, Any]]]:
    """Explain ``texts`` batch by batch, yielding each batch's rows in input order.

    Args:
        explainer: the classifier, wrapped.
        texts: the texts; an entry that is empty or not a string gets an error row.
        target: see :data:`TargetChoice`. Default: the predicted classes.
        method: a name of :data:`~captum_maskopt.text.peers.PEERS`.
        batch_size: texts per attribution call.
        top_fraction: the share of words (at least one) a row's ``"rationale"``
            holds; None when ``threshold`` is given. Default: 20 %
        threshold: instead, the rationale holds the words scoring above it.
        mask_settings: MaskOptimization settings over
            :data:`~captum_maskopt.text.TEXT_SETTINGS`.
        skip: ids of texts not to explain (done by an earlier run).
        progress: called with the number of texts done after each batch.
        engine: ``"local"`` (this process) or ``"ray"``: the batches run on a Ray
            actor pool (:func:`captum_maskopt.scale.map_on_ray`), each actor with its
            own copy of the explainer; the rows are those of the local engine (the
            same batches), yielded in the same order.
        ray_options: the cluster and the pool for ``engine="ray"``
            (:class:`~captum_maskopt.scale.RayOptions`; default: a local Ray, one
            worker).

    Yields:
        lists of rows ``{"id", "text", "predicted", "predicted_label", "probability",
        "target", "target_label", "target_probability", "words": [{"word", "start",
        "end", "score"}], "rationale": [{"start", "end", "text"}], "method",
        "settings", "seconds", "error"}``; ``seconds`` is the batch's time shared
        among its texts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (top_fraction is None) == (threshold is None):
        raise ValueError("give exactly one of top_fraction and threshold")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    settings = method_settings(method, mask_settings)
    targets = resolve_targets(explainer, target, len(texts))
    job = _BatchJob(method, dict(mask_settings or {}), top_fraction, threshold, settings)
    skipped = set(skip)
    todo = [i for i in range(len(texts)) if i not in skipped]
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    payloads = [([texts[i] for i in ids], None if targets is None else [targets[i] for i in ids])
                for ids in batches]
    if engine == "ray":
        from captum_maskopt.scale import RayOptions, map_on_ray

        results: Iterator[List[Dict[str, Any]]] = map_on_ray(
            functools.partial(_ray_worker, explainer, job), payloads, ray_options or RayOptions())
    else:
        results = (job(explainer, *payload) for payload in payloads)
    for ids, rows in zip(batches, results):
        yield [{"id": i, **row} for i, row in zip(ids, rows)]
        if progress is not None:
            progress(len(ids))


@dataclass(frozen=True)
class _BatchJob:
    """What every batch of one run is explained with; called on a batch, its rows
    (without ids), the same on either engine."""

    method: str
    overrides: Dict[str, Any]
    top_fraction: Optional[float]
    threshold: Optional[float]
    settings: Dict[str, Any]

    def __call__(
        self, explainer: TextExplainer, texts: Sequence[Any], targets: Optional[List[int]],
    ) -> List[Dict[str, Any]]:
        rows: Dict[int, Dict[str, Any]] = {}
        usable = []
        for i, text in enumerate(texts):
            problem = _problem(text)
            if problem is None:
                usable.append(i)
            else:
                rows[i] = {**_failed(problem), "seconds": 0.0}
        begun = time.perf_counter()
        explained = _explain_guarded(explainer, texts, usable, targets, self.method, self.overrides,
                                     self.top_fraction, self.threshold)
        share = (time.perf_counter() - begun) / max(1, len(usable))
        for i, row in zip(usable, explained):
            rows[i] = {**row, "seconds": share}
        return [{"text": text, **rows[i], "method": self.method, "settings": self.settings}
                for i, text in enumerate(texts)]


def _ray_worker(
    explainer: TextExplainer, job: _BatchJob,
) -> Callable[[Tuple[Sequence[Any], Optional[List[int]]]], List[Dict[str, Any]]]:
    """Run in each Ray actor, once: the explainer on the actor's GPU when it has one."""
    to_worker_device(explainer.model)
    return lambda payload: job(explainer, *payload)


def _explain_guarded(
    explainer: TextExplainer, texts: Sequence[Any], ids: List[int], targets: Optional[List[int]],
    method: str, overrides: Mapping[str, Any], top_fraction: Optional[float], threshold: Optional[float],
) -> List[Dict[str, Any]]:
    """The batch's rows; when the batch fails, each text alone, so that one text's
    failure is its own row's ``error`` and not the batch's."""
    if not ids:
        return []
    chosen = None if targets is None else [targets[i] for i in ids]
    try:
        return _explain_batch(explainer, [texts[i] for i in ids], chosen, method, overrides,
                              top_fraction, threshold)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:
        if len(ids) == 1:
            return [_failed(f"{type(error).__name__}: {error}")]
    return [row for i in ids for row in _explain_guarded(
        explainer, texts, [i], targets, method, overrides, top_fraction, threshold)]


def explain_dataset(
    dataset: Any,
    explainer: TextExplainer,
    text_column: str = "text",
    **options: Any,
) -> Any:
    """Explain every text of ``dataset``.

    Args:
        dataset: a list of strings, or a Hugging Face ``datasets.Dataset``.
        explainer: the classifier, wrapped.
        text_column: the dataset's column of texts (a list of strings has none).
        **options: those of :func:`explain_texts` (``target``, ``method``,
            ``batch_size``, ``top_fraction``, ``threshold``, ``mask_settings``,
            ``engine``, ``ray_options``); with ``engine="ray"`` the whole data set is
            one Ray pipeline.

    Returns:
        for a list, the rows of :func:`explain_texts`; for a ``Dataset``, the dataset
        with the columns ``predicted``, ``probability``, ``target``,
        ``target_probability``, ``words``, ``scores``, ``spans``, ``rationale_spans`` and
        ``error`` added, by a batched ``map``.
    """
    if isinstance(dataset, (list, tuple)):
        return [row for batch in explain_texts(explainer, list(dataset), **options) for row in batch]
    if not hasattr(dataset, "map") or not hasattr(dataset, "column_names"):
        raise TypeError(f"dataset must be a list of strings or a datasets.Dataset, got {type(dataset).__name__}")
    if text_column not in dataset.column_names:
        raise InputError(f"text_column: no column {text_column!r}; the columns are {dataset.column_names}")
    target = options.pop("target", None)
    if isinstance(target, str) and target in dataset.column_names:
        options["target_column"] = target
    elif target is not None and not isinstance(target, (int, str)):
        raise TypeError("target of a Dataset: None, 'predicted', a class, or the name of a column")
    else:
        options["target"] = target
    if options.get("engine", "local") == "ray":
        # One pipeline for the whole column: the actors load the model once, not once
        # per batch of a datasets map.
        columns = _dataset_batch(dataset.to_dict(), explainer, text_column, options)
        dataset = dataset.remove_columns([name for name in columns if name in dataset.column_names])
        for name, values in columns.items():
            dataset = dataset.add_column(name, values)
        return dataset
    batch_size = int(options.get("batch_size", 8))
    return dataset.map(
        _dataset_batch, batched=True, batch_size=batch_size,
        fn_kwargs={"explainer": explainer, "text_column": text_column, "options": options},
    )


def _dataset_batch(
    batch: Mapping[str, List[Any]], explainer: TextExplainer, text_column: str, options: Mapping[str, Any],
) -> Dict[str, List[Any]]:
    options = dict(options)
    column = options.pop("target_column", None)
    if column is not None:
        options["target"] = batch[column]
    rows = [row for part in explain_texts(explainer, batch[text_column], **options) for row in part]
    return {
        "predicted": [row["predicted"] for row in rows],
        "probability": [row["probability"] for row in rows],
        "target": [row["target"] for row in rows],
        "target_probability": [row["target_probability"] for row in rows],
        "words": [[word["word"] for word in row["words"]] for row in rows],
        "scores": [[word["score"] for word in row["words"]] for row in rows],
        "spans": [[[word["start"], word["end"]] for word in row["words"]] for row in rows],
        "rationale_spans": [[[span["start"], span["end"]] for span in row["rationale"]] for row in rows],
        "error": [row["error"] for row in rows],
    }


def attribution_of(row: Mapping[str, Any]) -> WordAttribution:
    """The :class:`~captum_maskopt.text.WordAttribution` that a row of
    :func:`explain_texts` describes (for the HTML report or Captum's
    ``visualize_text``); a row with an ``error`` has none."""
    if row.get("error"):
        raise ValueError(f"row {row.get('id')} has no attribution: {row['error']}")
    words = row["words"]
    return WordAttribution(
        text=row["text"], words=[word["word"] for word in words],
        spans=[(word["start"], word["end"]) for word in words],
        scores=torch.tensor([word["score"] for word in words], dtype=torch.float64),
        target=int(row["target"]), probability=float(row["target_probability"]), method=row["method"],
    )
