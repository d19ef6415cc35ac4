"""The attribution classes."""

from captum_maskopt.attr._layer_mask_optimization import LayerMaskOptimization
from captum_maskopt.attr._mask_optimization import MaskOptimization

__all__ = ["MaskOptimization", "LayerMaskOptimization"]
