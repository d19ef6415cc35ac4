"""Captum's methods as word-level peers of mask optimization on a text classifier.

Every method explains the same tokenization and the same class, and yields token
scores ``(N, T)`` that :class:`~captum_maskopt.text.TextExplainer` turns into word
scores. Gradient methods run as Captum's layer methods on the embedding layer; the
perturbation methods that Captum only offers on inputs (``FeatureAblation``, ``Lime``,
``KernelShap``, ``ShapleyValueSampling``) run on the embedding layer's *output*,
through a forward function that substitutes it, with the words as features and the
pad-token embeddings as baseline, the same removal that mask optimization uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from captum_maskopt.attr import LayerMaskOptimization
from captum_maskopt.attr._mase import LayerMASE
from captum_maskopt.text.integration import TextEncoding, TextExplainer, _with_text_settings

__all__ = ["EmbeddingSpace", "embedding_space", "PEERS", "token_scores"]


@dataclass
class EmbeddingSpace:
    """A text batch seen from the embedding layer's output.

    Attributes:
        forward: ``forward(embeddings, attention_mask) -> logits``, running the model
            with the embedding layer's output replaced by ``embeddings``.
        embeddings: ``(N, T, D)`` the layer's output for the texts.
        baselines: ``(N, T, D)`` its output for all-pad ids.
        feature_mask: ``(N, T, 1)`` word groups (0: special tokens and padding).
    """

    forward: Callable[[Tensor, Tensor], Tensor]
    embeddings: Tensor
    baselines: Tensor
    feature_mask: Tensor


def embedding_space(explainer: TextExplainer, encoding: TextEncoding) -> EmbeddingSpace:
    """Record the embedding layer's outputs and build a forward from embeddings."""
    recorded = {}

    def record(module: torch.nn.Module, args: object, output: Tensor) -> None:
        recorded["output"] = output.detach()

    handle = explainer.layer.register_forward_hook(record)
    try:
        with torch.no_grad():
            explainer.forward(encoding.input_ids, encoding.attention_mask)
            embeddings = recorded["output"]
            explainer.forward(torch.full_like(encoding.input_ids, explainer.pad_id), encoding.attention_mask)
            baselines = recorded["output"]
    finally:
        handle.remove()
    ids = encoding.input_ids

    def forward(inputs: Tensor, attention_mask: Tensor) -> Tensor:
        def substitute(module: torch.nn.Module, args: object, output: Tensor) -> Tensor:
            return inputs

        hook = explainer.layer.register_forward_hook(substitute)
        try:
            rows = inputs.shape[0]
            # The ids only feed the substituted layer; repeat the first row's shape.
            dummy = ids[:1].expand(rows, -1)
            return explainer.forward(dummy, attention_mask)
        finally:
            hook.remove()

    return EmbeddingSpace(forward, embeddings, baselines, encoding.feature_mask())


def _layer_method(
    factory: Callable[..., object], uses_baselines: bool = True, **kwargs: object
) -> Callable[..., Tensor]:
    def run(explainer: TextExplainer, encoding: TextEncoding, targets: Tensor) -> Tensor:
        method = factory(explainer.forward, explainer.layer)
        if uses_baselines:
            kwargs["baselines"] = torch.full_like(encoding.input_ids, explainer.pad_id)
        attributions = method.attribute(  # type: ignore[attr-defined]
            encoding.input_ids,
            target=targets,
            additional_forward_args=(encoding.attention_mask,),
            **kwargs,
        )
        return attributions.detach().sum(-1)

    return run


def _perturbation_method(
    factory: Callable[..., object], per_example: bool, **kwargs: object
) -> Callable[..., Tensor]:
    def run(explainer: TextExplainer, encoding: TextEncoding, targets: Tensor) -> Tensor:
        space = embedding_space(explainer, encoding)
        method = factory(space.forward)
        rows = range(len(targets)) if per_example else [slice(None)]
        scores = []
        for row in rows:
            index = slice(row, row + 1) if isinstance(row, int) else row
            attributions = method.attribute(  # type: ignore[attr-defined]
                space.embeddings[index],
                baselines=space.baselines[index],
                target=targets[index],
                additional_forward_args=(encoding.attention_mask[index],),
                feature_mask=space.feature_mask[index],
                **kwargs,
            )
            # One value per word, repeated over D and over the word's pieces.
            scores.append(attributions.detach()[..., 0])
        return torch.cat(scores)

    return run


def _mask_optimization(
    explainer: TextExplainer, encoding: TextEncoding, targets: Tensor,
    settings: Mapping[str, Any],
) -> Tensor:
    attributions = LayerMaskOptimization(explainer.forward, explainer.layer).attribute(
        encoding.input_ids,
        baselines=torch.full_like(encoding.input_ids, explainer.pad_id),
        target=targets,
        additional_forward_args=(encoding.attention_mask,),
        feature_mask=encoding.feature_mask(),
        pinned_features=encoding.special.unsqueeze(-1),
        **settings,
    )
    return attributions[..., 0]


def _peers(
    mask_settings: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Tuple[Callable[..., Tensor], str]]:
    from captum import attr

    mask_optimization = partial(_mask_optimization, settings=_with_text_settings(mask_settings))
    return {
        "MaskOptimization": (mask_optimization, "mean"),
        "IntegratedGradients": (_layer_method(attr.LayerIntegratedGradients, n_steps=50), "sum"),
        "InputXGradient": (_layer_method(attr.LayerGradientXActivation, uses_baselines=False), "sum"),
        "FeatureAblation": (
            _perturbation_method(attr.FeatureAblation, per_example=True, perturbations_per_eval=16),
            "mean",
        ),
        "Lime": (
            _perturbation_method(attr.Lime, per_example=True, n_samples=200, perturbations_per_eval=32),
            "mean",
        ),
        "KernelShap": (
            _perturbation_method(attr.KernelShap, per_example=True, n_samples=200, perturbations_per_eval=32),
            "mean",
        ),
        "ShapleyValueSampling": (
            _perturbation_method(
                attr.ShapleyValueSampling, per_example=True, n_samples=10, perturbations_per_eval=32
            ),
            "mean",
        ),
        "MASE": (_layer_method(LayerMASE, uses_baselines=False, n_samples=128), "sum"),
    }


PEERS: Tuple[str, ...] = (
    "MaskOptimization", "IntegratedGradients", "InputXGradient", "FeatureAblation",
    "Lime", "KernelShap", "ShapleyValueSampling", "MASE",
)


def token_scores(
    name: str, explainer: TextExplainer, encoding: TextEncoding, targets: Tensor,
    mask_settings: Optional[Mapping[str, Any]] = None,
) -> Tuple[Tensor, str]:
    """Token scores ``(N, T)`` of method ``name`` and how to pool them into words
    (``"mean"`` when every piece carries the word's value, ``"sum"`` otherwise).
    ``mask_settings`` are keyword arguments of ``LayerMaskOptimization.attribute`` that
    override :data:`TEXT_SETTINGS` for ``"MaskOptimization"``."""
    methods = _peers(mask_settings)
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; choose from {PEERS}")
    run, reduce = methods[name]
    return run(explainer, encoding, targets), reduce
