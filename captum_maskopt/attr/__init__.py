"""The attribution classes, and the layer switch they and the integrations use to
feed new values into a model's own forward pass."""

from captum_maskopt.attr._layer_mask_optimization import LayerMaskOptimization
from captum_maskopt.attr._layer_switch import LayerSwitch
from captum_maskopt.attr._mask_optimization import MaskOptimization

__all__ = ["MaskOptimization", "LayerMaskOptimization", "LayerSwitch"]
