"""Side-by-side comparison of attribution methods on a text classifier.

:func:`compare_methods` explains the same documents with every method, at word
level, and scores each with the faithfulness metrics of :mod:`captum_maskopt.metrics`.
A removed word is replaced by the pad token (its pieces too), the same removal that the
mask optimization and the perturbation peers use; special tokens always stay.

A comparison on hundreds of documents takes hours on a CPU. Given a ``checkpoint``
file, each finished batch is appended to it (one JSON line) and the batches already
there are not run again, so a stopped run goes on where it stopped. A batch's line is
keyed by the model's weights, the package version, the seed, the method and the
batch's texts and labels; each batch draws its random numbers from a seed of its own,
so a resumed run gives what an uninterrupted one would. MaskOptimization's batches are
filed under a name that carries its settings where they differ from a fixed reference,
the first text settings; with today's defaults that name is
``MaskOptimization {"comprehensiveness": "hinge"}``. A run with other
``mask_settings``, or after :data:`~captum_maskopt.text.TEXT_SETTINGS` changed, reruns
MaskOptimization only, while the peers' batches, which do not depend on those settings,
are shared between such runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import time
from pathlib import Path
from typing import (
    Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union,
)

import torch
from torch import Tensor, nn

import captum_maskopt
from captum_maskopt import metrics
from captum_maskopt.attr import LayerMaskOptimization
from captum_maskopt.text.integration import (
    TextEncoding, TextExplainer, WordAttribution, _with_text_settings,
)
from captum_maskopt.text.peers import PEERS, token_scores

__all__ = ["METRICS", "compare_methods", "first_rank_rate"]

METRICS = (
    "aopc_comprehensiveness", "aopc_sufficiency", "deletion_auc", "delta_accuracy",
    "seconds_per_example",
)
DELTA_ACCURACY_FRACTION = 0.2

#: The settings MaskOptimization's checkpoint names are relative to (see the module's
#: docstring): the text settings of the first checkpoints, fixed so that those files
#: stay valid when :data:`~captum_maskopt.text.TEXT_SETTINGS` changes.
_CHECKPOINT_REFERENCE_SETTINGS = {"target_kept_fraction": 0.05, "path_average": True}


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


def _model_fingerprint(model: nn.Module) -> str:
    """A SHA-1 digest of the model's parameters and buffers."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _BatchLog:
    """The finished batches of a comparison in a JSON-lines file (see the module's
    docstring); ``path=None`` keeps nothing."""

    def __init__(self, path: Optional[Union[str, Path]], explainer: TextExplainer, seed: int) -> None:
        self.path = None if path is None else Path(path)
        self.done: Dict[str, Dict[str, Any]] = {}
        if self.path is None:
            self.run = ""
            return
        self.run = hashlib.sha1(json.dumps(
            # The reference belongs to the key: the names are relative to it.
            [_model_fingerprint(explainer.model), captum_maskopt.__version__,
             _CHECKPOINT_REFERENCE_SETTINGS, seed],
            sort_keys=True,
        ).encode()).hexdigest()
        if self.path.exists():
            content = self.path.read_text(encoding="utf-8")
            if content and not content.endswith("\n"):
                # End the cut line, so the next batch starts a line of its own.
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("\n")
            for line in content.splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short when a run was killed
                if isinstance(entry, dict) and entry.get("run") == self.run:
                    self.done[entry["batch"]] = entry["result"]

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        return self.done.get(key)

    def add(self, key: str, result: Dict[str, Any]) -> None:
        self.done[key] = result
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"run": self.run, "batch": key, "result": result}) + "\n")


def _batch_key(part: str, name: str, texts: Sequence[str], labels: Sequence[int] = ()) -> str:
    return hashlib.sha1(json.dumps([part, name, list(texts), list(labels)]).encode()).hexdigest()


def _logged_name(name: str, mask_settings: Optional[Mapping[str, Any]]) -> str:
    """The name a method's batches are filed under in the checkpoint (see the module's
    docstring): MaskOptimization's carries the settings it runs with where they differ
    from the reference. A setting not given is ``attribute()``'s default, so
    ``comprehensiveness="log"`` and no ``comprehensiveness`` name one run."""
    if name != "MaskOptimization":
        return name
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(LayerMaskOptimization.attribute).parameters.items()
    }
    settings = _with_text_settings(mask_settings)
    reference = _CHECKPOINT_REFERENCE_SETTINGS

    def value(chosen: Mapping[str, Any], key: str) -> Any:
        return chosen.get(key, defaults.get(key))

    difference = {
        key: value(settings, key) for key in set(settings) | set(reference)
        if value(settings, key) != value(reference, key)
    }
    if not difference:
        return name
    return f"{name} {json.dumps(difference, sort_keys=True)}"


@contextlib.contextmanager
def _batch_seed(seed: int, key: str) -> Iterator[None]:
    """Run a batch under a seed of its own, so its random draws (Lime's and
    KernelShap's samples, Shapley's permutations) do not depend on the batches run
    before it; the caller's random state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16))
        yield


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
    encoding = explainer.encode(texts)
    probabilities = explainer.predict(encoding)
    targets = probabilities.argmax(dim=1)
    start = time.perf_counter()
    scores, reduce = token_scores(name, explainer, encoding, targets, mask_settings)
    elapsed = time.perf_counter() - start
    words = explainer.word_attributions(encoding, scores, targets, probabilities, reduce, name)
    return encoding, words, targets, elapsed


def _score_batch(
    explainer: TextExplainer, name: str, batch: List[str], labels: Tensor,
    mask_settings: Optional[Mapping[str, Any]],
) -> Dict[str, Any]:
    """Explain one batch with one method; the metrics summed over its documents, and
    its word attributions."""
    encoding, words, targets, elapsed = _explain_batch(explainer, name, batch, mask_settings)
    scores, valid = _word_tensors(words)
    probabilities_with = probabilities_with_words(explainer, encoding)
    targets = targets.cpu()
    fractions, curve = metrics.deletion_curve(probabilities_with, scores, targets, valid)
    totals = {
        "aopc_comprehensiveness": float(
            metrics.aopc_comprehensiveness(probabilities_with, scores, targets, valid).sum()),
        "aopc_sufficiency": float(
            metrics.aopc_sufficiency(probabilities_with, scores, targets, valid).sum()),
        "deletion_auc": float(metrics.area_under_curve(fractions, curve).sum()),
        "delta_accuracy": len(batch) * metrics.delta_accuracy(
            probabilities_with, scores, labels, DELTA_ACCURACY_FRACTION, valid),
        "seconds_per_example": elapsed,
    }
    return {"totals": totals, "words": [_to_json(word) for word in words]}


def compare_methods(
    explainer: TextExplainer,
    texts: Sequence[str],
    labels: Sequence[int],
    methods: Sequence[str] = PEERS,
    batch_size: int = 8,
    progress: Optional[Callable[[str], None]] = None,
    keep_attributions: int = 0,
    checkpoint: Optional[Union[str, Path]] = None,
    seed: int = 0,
    mask_settings: Optional[Mapping[str, Any]] = None,
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
        checkpoint: a JSON-lines file to resume from and append finished batches to
            (see the module's docstring); None keeps nothing.
        seed: mixed into each batch's seed.
        mask_settings: keyword arguments of ``LayerMaskOptimization.attribute`` that
            override :data:`~captum_maskopt.text.TEXT_SETTINGS` for MaskOptimization.

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
    log = _BatchLog(checkpoint, explainer, seed)
    for name in methods:
        logged_name = _logged_name(name, mask_settings)
        totals = dict.fromkeys(METRICS, 0.0)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            batch_labels = label_tensor[start : start + len(batch)]
            key = _batch_key("compare", logged_name, batch, batch_labels.tolist())
            result = log.get(key)
            if result is None:
                with _batch_seed(seed, key):
                    result = _score_batch(explainer, name, batch, batch_labels, mask_settings)
                log.add(key, dict(result, method=logged_name))
            for metric in METRICS:
                totals[metric] += result["totals"][metric]
            for offset, word in enumerate(result["words"]):
                if start + offset < len(kept):
                    kept[start + offset][name] = _from_json(word)
            if progress is not None:
                progress(name)
        results[name] = {metric: value / len(texts) for metric, value in totals.items()}
    return results, kept


def first_rank_rate(
    explainer: TextExplainer, texts: Sequence[str], word: str, methods: Sequence[str] = PEERS,
    batch_size: int = 8, checkpoint: Optional[Union[str, Path]] = None, seed: int = 0,
    mask_settings: Optional[Mapping[str, Any]] = None,
) -> Dict[str, float]:
    """For each method, the share of ``texts`` whose top-scored word is ``word``
    (case-insensitive), e.g. a planted shortcut token. ``checkpoint``, ``seed`` and
    ``mask_settings`` as in :func:`compare_methods`."""
    log = _BatchLog(checkpoint, explainer, seed)
    rates = {}
    for name in methods:
        logged_name = _logged_name(name, mask_settings)
        hits = 0
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            key = _batch_key(f"first rank of {word.lower()}", logged_name, batch)
            result = log.get(key)
            if result is None:
                with _batch_seed(seed, key):
                    _, words, _, _ = _explain_batch(explainer, name, batch, mask_settings)
                result = {"examples": len(batch), "hits": sum(
                    a.words[int(a.scores.argmax())].lower() == word.lower() for a in words
                )}
                log.add(key, dict(result, method=logged_name))
            hits += result["hits"]
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
