"""The evaluation metrics on hand-checked cases.

The toy model: class 1's probability is the summed weight of the present features,
with weights 0.5, 0.3, 0.2, 0, 0 (so 1.0 on the full input)."""

import math

import pytest
import torch

from captum_maskopt import metrics

WEIGHTS = torch.tensor([0.5, 0.3, 0.2, 0.0, 0.0], dtype=torch.float64)


def probabilities_with(keep):
    s = (keep.double() * WEIGHTS).sum(dim=1)
    return torch.stack([1 - s, s], dim=1)


PERFECT = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
REVERSED = -PERFECT
TARGET = torch.tensor([1])


def test_top_fraction_mask_rounds_and_keeps_at_least_one():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [1.0, 2.0, 3.0, 4.0]])
    assert metrics.top_fraction_mask(scores, 0.5).tolist() == [
        [False, True, False, True], [False, False, True, True]
    ]
    assert metrics.top_fraction_mask(scores, 0.01).sum(dim=1).tolist() == [1, 1]
    valid = torch.tensor([[True, False, True, True], [True] * 4])
    assert metrics.top_fraction_mask(scores, 0.34, valid)[0].tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="fraction"):
        metrics.top_fraction_mask(scores, 0.0)



def test_rationale_size_rounds_keeps_one_and_never_more_than_there_are():
    counts = torch.tensor([0, 1, 12, 20, 230])
    assert metrics.rationale_size(counts, 0.05).tolist() == [0, 1, 1, 1, 12]
    assert metrics.rationale_size(counts, 0.2).tolist() == [0, 1, 2, 4, 46]
    assert metrics.rationale_size(counts, 1.0).tolist() == counts.tolist()

def test_comprehensiveness_and_sufficiency():
    rationale = torch.tensor([[True, False, False, False, False]])
    assert metrics.comprehensiveness(probabilities_with, rationale, TARGET).item() == pytest.approx(0.5)
    assert metrics.sufficiency(probabilities_with, rationale, TARGET).item() == pytest.approx(0.5)
    both = torch.tensor([[True, True, False, False, False]])
    assert metrics.comprehensiveness(probabilities_with, both, TARGET).item() == pytest.approx(0.8)
    assert metrics.sufficiency(probabilities_with, both, TARGET).item() == pytest.approx(0.2)


def test_aopc_over_fractions():
    # Top 20 % and 40 % of 5 features: 1 and 2 features.
    comp = metrics.aopc_comprehensiveness(probabilities_with, PERFECT, TARGET, fractions=(0.2, 0.4))
    suff = metrics.aopc_sufficiency(probabilities_with, PERFECT, TARGET, fractions=(0.2, 0.4))
    assert comp.item() == pytest.approx((0.5 + 0.8) / 2)
    assert suff.item() == pytest.approx((0.5 + 0.2) / 2)
    worse = metrics.aopc_comprehensiveness(probabilities_with, REVERSED, TARGET, fractions=(0.2, 0.4))
    assert worse.item() == pytest.approx(0.0)


def test_aopc_asks_the_model_for_the_full_input_once():
    # A comparison scores long documents at 19 protocol levels: one pass per level, not two.
    calls = []

    def counting(keep):
        calls.append(keep.clone())
        return probabilities_with(keep)

    comp = metrics.aopc_comprehensiveness(counting, PERFECT, TARGET, fractions=(0.2, 0.4, 0.6))
    assert len(calls) == 4 and calls[0].all()
    assert comp.item() == pytest.approx((0.5 + 0.8 + 1.0) / 3)


def test_the_authors_protocol_averages_over_five_to_ninety_five_percent():
    assert metrics.PROTOCOL_FRACTIONS == tuple(k / 100 for k in range(5, 100, 5))
    protocol = metrics.aopc_comprehensiveness(probabilities_with, PERFECT, TARGET, fractions=metrics.PROTOCOL_FRACTIONS)
    each = [metrics.comprehensiveness(probabilities_with, metrics.top_fraction_mask(PERFECT, f), TARGET)
            for f in metrics.PROTOCOL_FRACTIONS]
    assert protocol.item() == pytest.approx(float(torch.stack(each).mean()))
    sufficiency = metrics.aopc_sufficiency(probabilities_with, PERFECT, TARGET, fractions=metrics.PROTOCOL_FRACTIONS)
    assert sufficiency.item() < metrics.aopc_sufficiency(
        probabilities_with, REVERSED, TARGET, fractions=metrics.PROTOCOL_FRACTIONS).item()


def test_deletion_and_insertion_areas():
    fractions, deletion = metrics.deletion_curve(probabilities_with, PERFECT, TARGET, n_points=6)
    assert deletion[0].tolist() == pytest.approx([1.0, 0.5, 0.2, 0.0, 0.0, 0.0])
    assert metrics.area_under_curve(fractions, deletion).item() == pytest.approx(0.24)
    fractions, insertion = metrics.insertion_curve(probabilities_with, PERFECT, TARGET, n_points=6)
    assert insertion[0].tolist() == pytest.approx([0.0, 0.5, 0.8, 1.0, 1.0, 1.0])
    assert metrics.area_under_curve(fractions, insertion).item() == pytest.approx(0.76)
    _, reversed_deletion = metrics.deletion_curve(probabilities_with, REVERSED, TARGET, n_points=6)
    assert metrics.area_under_curve(fractions, reversed_deletion).item() > 0.24


def test_delta_accuracy():
    labels = torch.tensor([1])
    # Removing the top 20 % (feature 0) leaves p = 0.5: argmax picks class 0, a miss.
    assert metrics.delta_accuracy(probabilities_with, PERFECT, labels, 0.2) == pytest.approx(1.0)
    assert metrics.delta_accuracy(probabilities_with, REVERSED, labels, 0.2) == pytest.approx(0.0)


def test_token_f1():
    predicted = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    gold = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert metrics.token_f1(predicted, gold).tolist() == pytest.approx([0.5, 1.0])


def test_iou_f1():
    gold = torch.tensor([[1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    overlapping = torch.tensor([[1, 1, 0, 0, 0, 0]], dtype=torch.bool)  # IoU 2/3
    small = torch.tensor([[1, 0, 0, 0, 0, 1]], dtype=torch.bool)  # IoUs 1/3 and 0
    assert metrics.iou_f1(overlapping, gold) == pytest.approx(1.0)
    assert metrics.iou_f1(small, gold) == pytest.approx(0.0)
    # Two predicted spans, one matching: precision 1/2, recall 1 -> F1 2/3.
    two = torch.tensor([[1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    assert metrics.iou_f1(two, gold) == pytest.approx(2 / 3)


def test_auprc():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.5, 0.5, 0.5, 0.5], [0.3, 0.2, 0.1, 0.0]])
    gold = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    result = metrics.auprc(scores, gold)
    assert result[0].item() == pytest.approx(1 / 2 + (2 / 3) / 2)
    assert result[1].item() == pytest.approx(0.25)  # all tied: one threshold, precision 1/4
    assert math.isnan(result[2].item())


def test_metrics_accept_attributions_from_captum_methods():
    from captum.attr import FeatureAblation

    def model(x):
        return probabilities_with(x > 0.5)

    x = torch.ones(1, 5, dtype=torch.float64)
    attributions = FeatureAblation(model).attribute(x, target=1, baselines=0.0)
    comp = metrics.aopc_comprehensiveness(probabilities_with, attributions, TARGET, fractions=(0.2,))
    assert comp.item() == pytest.approx(0.5)
