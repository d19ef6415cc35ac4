"""Faithfulness and agreement metrics for attributions over features (tokens, words,
pixels, regions), from any attribution method.

The faithfulness metrics ask the model: they take ``probabilities_with(keep)``, a
function from a bool tensor ``(N, F)`` (True: the feature is present, False: removed,
however the caller removes it, e.g. by a pad token or a blurred patch) to the model's
class probabilities ``(N, C)``. ``attributions`` are ``(N, F)`` scores, higher meaning
more important; ``valid`` ``(N, F)`` marks the features that may be ranked (e.g. not
padding or special tokens) and defaults to all.

Definitions (DeYoung et al. 2020, ERASER; Petsiuk et al. 2018, RISE; the MASE paper for
delta accuracy), with ``j`` the class explained and ``r`` the rationale:

* comprehensiveness ``p_j(x) - p_j(x without r)``; sufficiency ``p_j(x) - p_j(r alone)``;
  their AOPC averages over rationales of the top 1, 5, 10, 20 and 50 % of features;
  the authors' protocol (Brinner & Zarrieß's later evaluation) averages the same two over
  5, 10, ..., 95 % (:data:`PROTOCOL_FRACTIONS`);
* deletion / insertion: remove (insert) features in attribution order and take the
  normalised area under ``p_j``;
* delta accuracy: accuracy on the full inputs minus accuracy with the top features
  removed;
* agreement with human rationales: token F1, IOU F1 (spans matching at IoU >= 0.5) and
  AUPRC;
* localisation: the share of positive attribution inside a known region (the object
  of an image, the evidence of a text), the "energy" pointing game of Wang et al. 2020.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    "AOPC_FRACTIONS",
    "PROTOCOL_FRACTIONS",
    "top_fraction_mask",
    "rationale_size",
    "comprehensiveness",
    "sufficiency",
    "aopc_comprehensiveness",
    "aopc_sufficiency",
    "deletion_curve",
    "insertion_curve",
    "area_under_curve",
    "delta_accuracy",
    "token_f1",
    "iou_f1",
    "auprc",
    "share_inside",
]

ProbabilitiesWith = Callable[[Tensor], Tensor]
AOPC_FRACTIONS: Tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.50)
"""The rationale sizes ERASER's AOPC averages over."""
PROTOCOL_FRACTIONS: Tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""5, 10, ..., 95 %: the sizes the authors' later evaluation averages comprehensiveness
and sufficiency over (pass as ``fractions`` to the AOPC functions)."""


def _valid_or_all(attributions: Tensor, valid: Optional[Tensor]) -> Tensor:
    if attributions.dim() != 2:
        raise ValueError(
            f"attributions must be (N, F) scores per feature, got shape {tuple(attributions.shape)}"
        )
    if valid is None:
        return torch.ones_like(attributions, dtype=torch.bool)
    if valid.shape != attributions.shape or valid.dtype != torch.bool:
        raise ValueError("valid must be a bool tensor shaped like attributions")
    return valid


def _ranking(attributions: Tensor, valid: Tensor) -> Tensor:
    """Feature indices from most to least important; invalid features last."""
    scores = attributions.detach().to(torch.float64).masked_fill(~valid, float("-inf"))
    return scores.argsort(dim=1, descending=True, stable=True)


def rationale_size(valid_counts: Tensor, fraction: float) -> Tensor:
    """How many features the top ``fraction`` keeps of each example's
    ``valid_counts``: ``round(fraction * count)``, at least one when any is valid."""
    counts = (valid_counts.to(torch.float64) * fraction).round().clamp_min(1).long()
    return torch.minimum(counts, valid_counts.long())


def top_fraction_mask(
    attributions: Tensor, fraction: float, valid: Optional[Tensor] = None
) -> Tensor:
    """The rationale of the top ``fraction`` of each example's valid features, as a
    bool ``(N, F)`` mask: ``round(fraction * valid count)`` features, at least one
    when any is valid."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    valid = _valid_or_all(attributions, valid)
    counts = rationale_size(valid.sum(dim=1), fraction)
    order = _ranking(attributions, valid)
    positions = torch.arange(attributions.shape[1], device=attributions.device).expand_as(order)
    chosen = positions < counts.unsqueeze(1)
    return torch.zeros_like(valid).scatter(1, order, chosen)


def _class_probability(probabilities_with: ProbabilitiesWith, keep: Tensor, target: Tensor) -> Tensor:
    probabilities = probabilities_with(keep)
    return probabilities.gather(1, target.view(-1, 1)).squeeze(1)


def comprehensiveness(
    probabilities_with: ProbabilitiesWith, rationale: Tensor, target: Tensor,
    valid: Optional[Tensor] = None,
) -> Tensor:
    """``p_j(x) - p_j(x without the rationale)`` per example."""
    present = _valid_or_all(rationale.float(), valid)
    return _with_rationale(probabilities_with, present, [rationale], target, kept=False)[0]


def sufficiency(
    probabilities_with: ProbabilitiesWith, rationale: Tensor, target: Tensor,
    valid: Optional[Tensor] = None,
) -> Tensor:
    """``p_j(x) - p_j(the rationale alone)`` per example; lower is better."""
    present = _valid_or_all(rationale.float(), valid)
    return _with_rationale(probabilities_with, present, [rationale], target, kept=True)[0]


def _with_rationale(
    probabilities_with: ProbabilitiesWith, present: Tensor, rationales: Sequence[Tensor],
    target: Tensor, kept: bool,
) -> List[Tensor]:
    """``p_j(x) - p_j(x reduced)`` for each rationale, ``x`` reduced to the rationale
    (``kept``) or to the rest; the full input is asked for once."""
    full = _class_probability(probabilities_with, present, target)
    return [
        full - _class_probability(probabilities_with, present & (r if kept else ~r), target)
        for r in rationales
    ]


def _aopc(
    kept: bool, probabilities_with: ProbabilitiesWith, attributions: Tensor,
    target: Tensor, valid: Optional[Tensor], fractions: Sequence[float],
) -> Tensor:
    present = _valid_or_all(attributions, valid)
    rationales = [top_fraction_mask(attributions, f, present) for f in fractions]
    return torch.stack(_with_rationale(probabilities_with, present, rationales, target, kept)).mean(dim=0)


def aopc_comprehensiveness(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, target: Tensor,
    valid: Optional[Tensor] = None, fractions: Sequence[float] = AOPC_FRACTIONS,
) -> Tensor:
    """Comprehensiveness averaged over the top-``fractions`` rationales, per example."""
    return _aopc(False, probabilities_with, attributions, target, valid, fractions)


def aopc_sufficiency(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, target: Tensor,
    valid: Optional[Tensor] = None, fractions: Sequence[float] = AOPC_FRACTIONS,
) -> Tensor:
    """Sufficiency averaged over the top-``fractions`` rationales, per example."""
    return _aopc(True, probabilities_with, attributions, target, valid, fractions)


def _curve(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, target: Tensor,
    valid: Optional[Tensor], n_points: int, insert: bool,
) -> Tuple[Tensor, Tensor]:
    valid = _valid_or_all(attributions, valid)
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}")
    order = _ranking(attributions, valid)
    n_valid = valid.sum(dim=1, keepdim=True).to(torch.float64)
    positions = torch.arange(attributions.shape[1], device=attributions.device).expand_as(order)
    fractions = torch.linspace(0, 1, n_points, dtype=torch.float64)
    curve = []
    for fraction in fractions:
        count = (n_valid * fraction).round().long()
        changed = torch.zeros_like(valid).scatter(1, order, positions < count)
        keep = (valid & changed) if insert else (valid & ~changed)
        curve.append(_class_probability(probabilities_with, keep, target))
    return fractions.to(attributions.device), torch.stack(curve, dim=1)


def deletion_curve(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, target: Tensor,
    valid: Optional[Tensor] = None, n_points: int = 11,
) -> Tuple[Tensor, Tensor]:
    """``p_j`` as the top features are removed: ``(fractions (P,), probabilities (N, P))``."""
    return _curve(probabilities_with, attributions, target, valid, n_points, insert=False)


def insertion_curve(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, target: Tensor,
    valid: Optional[Tensor] = None, n_points: int = 11,
) -> Tuple[Tensor, Tensor]:
    """``p_j`` as the top features are inserted into an all-removed input."""
    return _curve(probabilities_with, attributions, target, valid, n_points, insert=True)


def area_under_curve(fractions: Tensor, values: Tensor) -> Tensor:
    """Trapezoidal area under ``values`` ``(N, P)`` over ``fractions`` in [0, 1], per
    example: lower is better for deletion, higher for insertion."""
    return torch.trapezoid(values.to(torch.float64), fractions.to(values.device, torch.float64), dim=1)


def delta_accuracy(
    probabilities_with: ProbabilitiesWith, attributions: Tensor, labels: Tensor,
    fraction: float, valid: Optional[Tensor] = None,
) -> float:
    """Accuracy on the full inputs minus accuracy with the top ``fraction`` of features
    removed; higher means the attributions found what the predictions rest on."""
    present = _valid_or_all(attributions, valid)
    full = probabilities_with(present).argmax(dim=1)
    rationale = top_fraction_mask(attributions, fraction, valid)
    reduced = probabilities_with(present & ~rationale).argmax(dim=1)
    return float((full == labels).double().mean() - (reduced == labels).double().mean())


def token_f1(predicted: Tensor, gold: Tensor) -> Tensor:
    """Per-example F1 between a predicted and a human rationale, both bool ``(N, F)``;
    1 when both are empty."""
    predicted, gold = predicted.bool(), gold.bool()
    overlap = (predicted & gold).sum(dim=1).double()
    size = predicted.sum(dim=1).double() + gold.sum(dim=1).double()
    return torch.where(size > 0, 2 * overlap / size.clamp_min(1), torch.ones_like(size))


def _spans(row: Tensor) -> List[Tuple[int, int]]:
    """Contiguous runs of True as half-open ``(start, end)`` pairs."""
    spans, start = [], None
    for i, value in enumerate(row.tolist() + [False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            spans.append((start, i))
            start = None
    return spans


def iou_f1(predicted: Tensor, gold: Tensor, threshold: float = 0.5) -> float:
    """ERASER's IOU F1 over a data set: a predicted span (a contiguous run of selected
    features) matches when its IoU with some human span is at least ``threshold``;
    precision and recall count matches over all predicted and human spans."""
    matched_predicted = matched_gold = n_predicted = n_gold = 0
    for p_row, g_row in zip(predicted.bool().cpu(), gold.bool().cpu()):
        p_spans, g_spans = _spans(p_row), _spans(g_row)
        n_predicted, n_gold = n_predicted + len(p_spans), n_gold + len(g_spans)

        def iou(a: Tuple[int, int], b: Tuple[int, int]) -> float:
            inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
            return inter / (max(a[1], b[1]) - min(a[0], b[0]))

        matched_predicted += sum(any(iou(p, g) >= threshold for g in g_spans) for p in p_spans)
        matched_gold += sum(any(iou(p, g) >= threshold for p in p_spans) for g in g_spans)
    precision = matched_predicted / n_predicted if n_predicted else 0.0
    recall = matched_gold / n_gold if n_gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def auprc(attributions: Tensor, gold: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Per-example area under the precision-recall curve (average precision) of the
    scores against a human rationale; nan for an example without gold features."""
    valid = _valid_or_all(attributions, valid)
    results = []
    for scores, labels, ok in zip(attributions.detach().double(), gold.bool(), valid):
        scores, labels = scores[ok], labels[ok]
        positives = int(labels.sum())
        if positives == 0:
            results.append(float("nan"))
            continue
        order = scores.argsort(descending=True, stable=True)
        sorted_scores, hits = scores[order], labels[order].double()
        # Tied scores form one threshold: precision/recall are read at each block's end.
        last_of_block = torch.ones_like(hits, dtype=torch.bool)
        last_of_block[:-1] = sorted_scores[1:] != sorted_scores[:-1]
        true_positives = hits.cumsum(0)[last_of_block]
        ranks = torch.arange(1, len(hits) + 1, dtype=torch.float64)[last_of_block]
        precision = true_positives / ranks
        recall_gain = torch.diff(true_positives, prepend=torch.zeros(1, dtype=torch.float64)) / positives
        results.append(float((precision * recall_gain).sum()))
    return torch.tensor(results, dtype=torch.float64)


def share_inside(attributions: Tensor, region: Tensor) -> Tensor:
    """Per example, the share of the positive attribution that falls inside ``region``:
    ``sum(relu(a) inside) / sum(relu(a))``, in [0, 1]; nan for an example without
    positive attribution. A uniform attribution scores the region's share of the
    features, so a score above that means the attribution concentrates on the region.

    Args:
        attributions: ``(N, F)`` scores, higher meaning more important.
        region: bool ``(N, F)`` (or ``(F,)``, the same region for every example).
    """
    if attributions.dim() != 2:
        raise ValueError(
            f"attributions must be (N, F) scores per feature, got shape {tuple(attributions.shape)}"
        )
    if region.dtype != torch.bool or region.shape[-1] != attributions.shape[1] or region.dim() > 2:
        raise ValueError(
            f"region must be a bool tensor of shape (N, F) or (F,) with F = {attributions.shape[1]}, "
            f"got dtype {region.dtype} and shape {tuple(region.shape)}"
        )
    positive = attributions.detach().to(torch.float64).clamp_min(0.0)
    total = positive.sum(dim=1)
    inside = (positive * region.to(positive.device, torch.float64)).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
