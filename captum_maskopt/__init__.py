"""captum_maskopt: explanations by input mask optimization, as Captum attributions.

``MaskOptimization`` and ``LayerMaskOptimization`` are drop-ins for Captum's
``IntegratedGradients`` and ``LayerIntegratedGradients``: the same arguments, the same
shapes out, usable with Captum's ``NoiseTunnel``, metrics and visualization.
"""

from captum_maskopt.attr import LayerMaskOptimization, MaskOptimization
from captum_maskopt.optimization import OptimizationRecord

__version__ = "0.1.0"

__all__ = ["MaskOptimization", "LayerMaskOptimization", "OptimizationRecord", "__version__"]
