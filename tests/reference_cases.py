"""Fixed attribution calls whose results were recorded before the core redesign
(``tests/data/reference_attributions.pt``, written by
``python scripts/record_reference_attributions.py``) and must not change with it.

Each case is a function returning ``{name: tensor}``: the attributions and the fields of
the optimization record. The calls use keyword settings, the call form that
worked before the redesign and must keep working after it, over :data:`BEFORE`, the
defaults of the time (the defaults have changed since). The cases cover the
packaged text classifier (token level, word groups, windows), the packaged image
classifier, tuple inputs, layer inputs and outputs, and every parametrization;
``tie_break_removal_and_gradient``, recorded when the removal tie break was added,
pins both final rankings.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from captum_maskopt import LayerMaskOptimization, MaskOptimization
from captum_maskopt.settings import MaskOptimizationSettings

Result = Dict[str, Tensor]
#: The defaults when these were recorded; each call's keywords override them.
BEFORE = MaskOptimizationSettings(
    n_steps=200, comprehensiveness="log", target_kept_fraction=None, path_average=False,
    parametrization="paper", tie_break_weight=0.0,
)
RECORD_FIELDS = ("steps", "converged", "keep_probability", "remove_probability", "kept_fraction", "loss")


def _flatten(attributions: object, record: object, prefix: str = "") -> Result:
    result: Result = {}
    parts = attributions if isinstance(attributions, tuple) else (attributions,)
    for i, part in enumerate(parts):
        assert isinstance(part, Tensor)
        result[f"{prefix}attributions[{i}]"] = part.detach().clone()
    for name in RECORD_FIELDS:
        result[f"{prefix}record.{name}"] = getattr(record, name).detach().clone()
    return result


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(3, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor, y: Tensor, scale: float = 1.0) -> Tensor:
        return self.head(torch.tanh(self.a(x) + self.b(y))) * scale


class _Sequence(nn.Module):
    """(N, T, D) -> logits, order-sensitive."""

    def __init__(self, length: int = 9, width: int = 4) -> None:
        super().__init__()
        self.mix = nn.Linear(width, 6)
        self.head = nn.Linear(6 * length, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.mix(x)).flatten(1))


class _TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(20, 6)
        self.encoder = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, ids: Tensor, attention: Tensor) -> Tensor:
        hidden = torch.tanh(self.encoder(self.embeddings(ids))) * attention.unsqueeze(-1)
        return self.head(hidden.sum(1) / attention.sum(1, keepdim=True))


class _PairLayer(nn.Module):
    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return x[:, :4] * 2.0, x[:, 4:] - 1.0


class _PairModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.split = _PairLayer()
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        left, right = self.split(x)
        return self.head(torch.cat([torch.sin(left), right], dim=1))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ).eval()


def tuple_inputs_logits() -> Result:
    torch.manual_seed(1)
    model = _TwoInputs().eval()
    x, y = torch.randn(4, 5), torch.randn(4, 3)
    mask = (torch.tensor([[0, 0, 1, 2, 3]]), torch.tensor([[3, 4, 4]]))
    attributions, record = MaskOptimization(model).attribute(
        (x, y), baselines=(0.0, torch.zeros(1, 3)), target=[0, 1, 2, 1],
        additional_forward_args=(2.0,), feature_mask=mask, n_steps=30, check_every=5,
        internal_batch_size=3, settings=BEFORE, return_record=True, seed=3,
    )
    return _flatten(attributions, record)


def tuple_inputs_default_groups_several_baselines() -> Result:
    torch.manual_seed(2)
    model = _TwoInputs().eval()
    x, y = torch.randn(3, 5), torch.randn(3, 3)
    attributions, record = MaskOptimization(model).attribute(
        (x, y), baselines=[(0.0, 0.0), (torch.ones(1, 5), -1.0)], target=2, n_steps=25,
        comprehensiveness="hinge", target_kept_fraction=0.3, path_average=True,
        settings=BEFORE, return_record=True,
    )
    return _flatten(attributions, record)


def sequence_gaussian1d_and_logits() -> Result:
    torch.manual_seed(3)
    model = _Sequence().eval()
    x = torch.randn(3, 9, 4)
    pins = torch.zeros(3, 9, 1, dtype=torch.bool)
    pins[:, 0] = True
    result: Result = {}
    for parametrization in ("auto", "gaussian1d", "logits"):
        attributions, record = MaskOptimization(model).attribute(
            x, target=torch.tensor([0, 1, 0]), n_steps=40,
            # "paper" is what "auto" chose for sequences when these were recorded.
            parametrization="paper" if parametrization == "auto" else parametrization,
            pinned_features=pins, learning_rate=0.05, smoothness_weight=0.8, settings=BEFORE, return_record=True,
        )
        result.update(_flatten(attributions, record, f"{parametrization}."))
    return result


def image_smooth2d_and_logits() -> Result:
    torch.manual_seed(4)
    model = _cnn()
    x = torch.rand(2, 3, 20, 20)
    result: Result = {}
    for parametrization, options in (
        ("auto", {"mask_cell_size": 4}),
        ("smooth2d", {"mask_cell_size": 5, "total_variation_weight": 2.0, "path_average": True}),
        ("logits", {"total_variation_weight": 1.0}),
    ):
        attributions, record = MaskOptimization(model).attribute(
            x, baselines=[0.0, 1.0], target=1, n_steps=25, parametrization=parametrization,
            settings=BEFORE, return_record=True, **options,
        )
        result.update(_flatten(attributions, record, f"{parametrization}."))
    return result


def probability_forms() -> Result:
    torch.manual_seed(5)
    single = nn.Sequential(nn.Linear(6, 1)).eval()
    x = torch.randn(4, 6)
    result: Result = {}
    attributions, record = MaskOptimization(single).attribute(
        x, n_steps=20, probability="sigmoid", noise_std=0.0, flip_fraction=0.0,
        settings=BEFORE, return_record=True, seed=7,
    )
    result.update(_flatten(attributions, record, "sigmoid."))
    probabilities = nn.Sequential(nn.Linear(6, 3), nn.Softmax(dim=1)).eval()
    attributions, record = MaskOptimization(probabilities).attribute(
        x, target=(2,), n_steps=20, probability="identity", compactness_weight=0.5,
        sufficiency_weight=2.0, comprehensiveness_weight=0.0, tolerance=0.0,
        settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "identity."))
    return result


def layer_tokens_default_and_word_groups() -> Result:
    torch.manual_seed(6)
    model = _TokenModel().eval()
    ids = torch.randint(2, 20, (3, 7))
    attention = torch.ones(3, 7, dtype=torch.long)
    attention[2, 5:] = 0
    ids[2, 5:] = 0
    pad = torch.zeros_like(ids)
    result: Result = {}
    method = LayerMaskOptimization(model, model.embeddings)
    attributions, record = method.attribute(
        ids, baselines=pad, target=1, additional_forward_args=(attention,), n_steps=30,
        settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "tokens."))
    words = torch.tensor([[0, 1, 1, 2, 3, 3, 4]]).expand(3, 7).unsqueeze(-1)
    attributions, record = method.attribute(
        ids, baselines=pad, target=[0, 1, 1], additional_forward_args=(attention,),
        feature_mask=words, pinned_features=(ids == 0).unsqueeze(-1), n_steps=30,
        target_kept_fraction=0.2, path_average=True, comprehensiveness="hinge",
        internal_batch_size=2, settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "words."))
    return result


def layer_input_and_tuple_output() -> Result:
    torch.manual_seed(7)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x = torch.randn(3, 6)
    result: Result = {}
    attributions, record = LayerMaskOptimization(mlp, mlp[2]).attribute(
        x, target=0, n_steps=25, attribute_to_layer_input=True, settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "input."))
    pair = _PairModel().eval()
    attributions, record = LayerMaskOptimization(pair, pair.split).attribute(
        torch.randn(3, 8), target=2, n_steps=25, settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "tuple."))
    return result


def tie_break_removal_and_gradient() -> Result:
    torch.manual_seed(8)
    mlp = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 3)).eval()
    x = torch.randn(4, 10)
    x[1, 3] = 0.0  # equal to the baseline: pinned
    result: Result = {}
    for tie_break in ("removal", "gradient"):
        attributions, record = MaskOptimization(mlp).attribute(
            x, target=[0, 1, 2, 1], n_steps=40, tie_break=tie_break, tie_break_weight=0.8,
            internal_batch_size=3, return_record=True,
        )
        result.update(_flatten(attributions, record, f"{tie_break}."))
    return result


def packaged_text_classifier() -> Result:
    from captum_maskopt.text import TextExplainer, load_sentiment_classifier, load_snippets

    model, tokenizer = load_sentiment_classifier()
    texts = [d.text for d in load_snippets("test")[:3]]
    result: Result = {}
    explainer = TextExplainer(model, tokenizer)
    # The text settings of the recording, given explicitly: TEXT_SETTINGS have moved on.
    recorded = dict(n_steps=15, target_kept_fraction=0.05, tie_break_weight=0.0)
    for row, word in enumerate(explainer.explain(texts, **recorded)):
        result[f"explain[{row}]"] = word.scores.clone()
        for name, value in word.extra["record"].items():
            result[f"explain[{row}].{name}"] = torch.tensor(value)
    windows = TextExplainer(model, tokenizer, max_length=16, window_overlap=4)
    for row, word in enumerate(windows.explain(texts[:2], **recorded)):
        result[f"windows[{row}]"] = word.scores.clone()
    encoding = explainer.encode(texts)
    attributions, record = LayerMaskOptimization(explainer.forward, explainer.layer).attribute(
        encoding.input_ids, baselines=torch.full_like(encoding.input_ids, explainer.pad_id),
        target=1, additional_forward_args=(encoding.attention_mask,), n_steps=15,
        settings=BEFORE, return_record=True,
    )
    result.update(_flatten(attributions, record, "tokens."))
    return result


def packaged_image_classifier() -> Result:
    from captum_maskopt.vision import load_efficientnet_lite0, load_photo, preprocess

    model = load_efficientnet_lite0()
    image = preprocess(load_photo("coffee").image).unsqueeze(0)
    attributions, record = MaskOptimization(model).attribute(
        image, target=967, n_steps=8, settings=BEFORE, return_record=True,
    )
    # The mask is shared over the channels: one channel holds all of it.
    return _flatten(attributions[:, :1], record)


CASES: Dict[str, Callable[[], Result]] = {
    case.__name__: case
    for case in (
        tuple_inputs_logits,
        tuple_inputs_default_groups_several_baselines,
        sequence_gaussian1d_and_logits,
        image_smooth2d_and_logits,
        probability_forms,
        layer_tokens_default_and_word_groups,
        layer_input_and_tuple_output,
        tie_break_removal_and_gradient,
        packaged_text_classifier,
        packaged_image_classifier,
    )
}
#: Cases that need the text or the vision extra.
NEEDS = {"packaged_text_classifier": "text", "packaged_image_classifier": "vision"}
