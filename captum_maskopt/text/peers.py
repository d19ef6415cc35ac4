"""Captum's methods as word-level peers of mask optimization on a text classifier.

:data:`PEERS` is the registry of the methods a text comparison can run, each a
function ``(explainer, texts, targets, mask_settings) -> [WordAttribution]``. Every
one goes through the explainer's own entry points, so all see the same tokenization,
word grouping and class:

* ``MaskOptimization``: :meth:`TextExplainer.explain` (its settings,
  :data:`~captum_maskopt.text.TEXT_SETTINGS` with ``mask_settings`` on top);
* ``LayerMaskOptimization``: the token-level call a Captum user makes in place of
  ``LayerIntegratedGradients``, at ``attribute()``'s own defaults (``mask_settings`` on
  top), through :meth:`TextExplainer.explain_with`; run by ``--level token``;
* ``MaskOptimization (paper)``: :meth:`TextExplainer.explain` with the ``"paper"``
  preset (the paper's settings, ``mask_settings`` ignored): the reference row, run only
  when named, at many times the defaults' seconds;
* gradient methods and MASE: Captum layer methods on the embedding layer, through
  :meth:`TextExplainer.explain_with`, with the pad token at the words as baseline
  where they take one (the special tokens kept: mask optimization's removal);
* the perturbation methods that Captum only offers on inputs (``FeatureAblation``,
  ``Lime``, ``KernelShap``, ``ShapleyValueSampling``): on the embedding layer's
  output, through :meth:`TextExplainer.explain_with_perturbation`, with the words as
  features and the pad-token embeddings at the words as baseline (the special tokens
  kept), the same removal as mask optimization's.

A new peer is one registered function.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeAlias

from torch import Tensor

from captum_maskopt.registry import Registry
from captum_maskopt.text.integration import TextExplainer, WordAttribution
from captum_maskopt.attr import LayerMaskOptimization
from captum_maskopt.text.mase import LayerMASE

__all__ = ["MASK_METHODS", "OPT_IN_PEERS", "OURS", "PAPER_PEER", "PEERS", "PEER_SETTINGS", "TOKEN_LEVEL_PEERS"]

TextPeer: TypeAlias = Callable[[TextExplainer, Sequence[str], Optional[Tensor], Mapping[str, Any]], List[WordAttribution]]
"""``peer(explainer, texts, targets, mask_settings)``: word attributions of ``texts``
for the classes ``targets`` (None: the predicted ones); ``mask_settings`` only concern
MaskOptimization."""
PEERS: Registry[TextPeer] = Registry("text method")
"""The methods of the text comparison, by name."""
PEER_SETTINGS: Dict[str, Dict[str, Any]] = {}
"""The keywords each of Captum's methods is called with, by name (MaskOptimization's
settings are :data:`~captum_maskopt.text.TEXT_SETTINGS`)."""


def _layer_method(name: str, factory: Callable[..., Any], pad_baselines: bool = True, **kwargs: Any) -> None:
    def explain(
        explainer: TextExplainer, texts: Sequence[str], targets: Optional[Tensor], mask_settings: Mapping[str, Any]
    ) -> List[WordAttribution]:
        return explainer.explain_with(factory, texts, targets, name, pad_baselines, keep_special_tokens=True,
                                      **kwargs)

    PEERS.register(name)(explain)
    baselines = "pad token at words, special tokens kept" if pad_baselines else None
    PEER_SETTINGS[name] = {**kwargs, "baselines": baselines}


def _perturbation_method(name: str, factory: Callable[..., Any], **kwargs: Any) -> None:
    def explain(
        explainer: TextExplainer, texts: Sequence[str], targets: Optional[Tensor], mask_settings: Mapping[str, Any]
    ) -> List[WordAttribution]:
        return explainer.explain_with_perturbation(factory, texts, targets, name, **kwargs)

    PEERS.register(name)(explain)
    PEER_SETTINGS[name] = {**kwargs, "baselines": "pad-token embeddings at words, special tokens kept",
                           "features": "words"}


@PEERS.register("MaskOptimization")
def _mask_optimization(
    explainer: TextExplainer, texts: Sequence[str], targets: Optional[Tensor], mask_settings: Mapping[str, Any]
) -> List[WordAttribution]:
    return explainer.explain(texts, targets, **mask_settings)


@PEERS.register("LayerMaskOptimization")
def _layer_mask_optimization(
    explainer: TextExplainer, texts: Sequence[str], targets: Optional[Tensor], mask_settings: Mapping[str, Any]
) -> List[WordAttribution]:
    # What a Captum user gets by swapping the class for LayerIntegratedGradients: the
    # token-level call with attribute()'s own defaults, no word groups. A mask value is
    # a kept share, not an additive part of the output: a word's score is its pieces'
    # mean, as for the word-level masks (a sum would rank a word by its piece count).
    return explainer.explain_with(
        LayerMaskOptimization, texts, targets, "LayerMaskOptimization", True, reduce="mean",
        **mask_settings,
    )


#: The name of the row with the paper's settings (the ``"paper"`` preset).
PAPER_PEER = "MaskOptimization (paper)"


@PEERS.register(PAPER_PEER)
def _mask_optimization_paper(
    explainer: TextExplainer, texts: Sequence[str], targets: Optional[Tensor], mask_settings: Mapping[str, Any]
) -> List[WordAttribution]:
    # The paper's settings as published: mask_settings tune the defaults' row only.
    return explainer.explain(texts, targets, settings="paper")


#: The peers that only ``--level token`` comparisons run unless named: the token-level
#: call of the method at its own defaults.
TOKEN_LEVEL_PEERS = ("LayerMaskOptimization",)

#: The peers a comparison runs only when ``--methods`` names them: the token-level call
#: (the default of ``--level token``) and the paper's settings (up to 900 steps).
OPT_IN_PEERS = TOKEN_LEVEL_PEERS + (PAPER_PEER,)

#: This package's method at its defaults, at word and at token level: the rows that
#: ``mask_settings`` tune and that the comparisons pair with every other method (not
#: the paper's row, a reference).
OURS = ("MaskOptimization", "LayerMaskOptimization")

#: The peers that are this package's method.
MASK_METHODS = OURS + (PAPER_PEER,)


def _register_captum_methods() -> None:
    from captum import attr

    _layer_method("IntegratedGradients", attr.LayerIntegratedGradients, n_steps=50)
    _layer_method("InputXGradient", attr.LayerGradientXActivation, pad_baselines=False)
    _perturbation_method("FeatureAblation", attr.FeatureAblation, perturbations_per_eval=16)
    _perturbation_method("Lime", attr.Lime, n_samples=200, perturbations_per_eval=32)
    _perturbation_method("KernelShap", attr.KernelShap, n_samples=200, perturbations_per_eval=32)
    _perturbation_method(
        "ShapleyValueSampling", attr.ShapleyValueSampling, n_samples=10, perturbations_per_eval=32
    )
    _layer_method("MASE", LayerMASE, pad_baselines=False, n_samples=128)


_register_captum_methods()
