"""From mask values to the model: the keep and remove views of one chunk of a batch,
their target probabilities, and the group masks expanded back to the tensors' shapes."""

from __future__ import annotations

import contextlib
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from captum_maskopt.features import FeatureGroups
from captum_maskopt.formatting import select_target
from captum_maskopt.objective import class_probabilities
from captum_maskopt.optimization import Predict

# run_views(views, rows, copies) -> model output for the stacked views. ``views`` has
# one tensor per masked tensor, ``copies * n`` rows each (copy-major); ``rows`` selects
# the examples still being optimized (None: all of them).
RunViews = Callable[[Tuple[Tensor, ...], Optional[Tensor], int], Tensor]


def build_predict(
    masked: Tuple[Tensor, ...],
    baselines: List[Tuple[Tensor, ...]],
    groups: FeatureGroups,
    run_views: RunViews,
    target: Optional[Tensor],
    probability: str,
    autocast: bool,
) -> Predict:
    """The function from mask values to keep/remove target probabilities."""
    n_baselines = len(baselines)
    copies = 2 * n_baselines
    # x_keep = b + m * (x - b) and x_rem = x - m * (x - b): the difference is fixed, so
    # it is computed once instead of at every step.
    differences = [tuple(x - b for x, b in zip(masked, baseline)) for baseline in baselines]
    device_type = masked[0].device.type
    whole_batch_target = None if target is None else target.repeat(copies, 1)

    def predict(mask: Tensor, rows: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        n = mask.shape[0]
        views = []
        for i, x in enumerate(masked):
            m = groups.expand(mask, i, rows).to(x.dtype)
            x_rows = x if rows is None else x[rows]
            keeps, removes = [], []
            for baseline, difference in zip(baselines, differences):
                b = baseline[i] if rows is None or baseline[i].shape[0] == 1 else baseline[i][rows]
                d = difference[i] if rows is None else difference[i][rows]
                masked_difference = m * d
                keeps.append(b + masked_difference)
                removes.append(x_rows - masked_difference)
            views.append(torch.cat(keeps + removes))
        context = (
            torch.autocast(device_type=device_type) if autocast else contextlib.nullcontext()
        )
        with context:
            output = run_views(tuple(views), rows, copies)
        probabilities = class_probabilities(output.to(mask.dtype), probability)
        row_target = whole_batch_target
        if target is not None and rows is not None:
            row_target = target[rows].repeat(copies, 1)
        selected = select_target(probabilities, row_target).view(copies, n)
        return selected[:n_baselines], selected[n_baselines:]

    return predict


def masks_to_attributions(
    results: List[Tuple[Tensor, FeatureGroups]], like: Tuple[Tensor, ...]
) -> Tuple[Tensor, ...]:
    """Expand each chunk's group masks to the shapes of ``like`` and join the chunks."""
    attributions = []
    for i, x in enumerate(like):
        parts = []
        for mask, groups in results:
            values = groups.expand(mask, i, None)
            parts.append(values.expand((mask.shape[0],) + tuple(x.shape[1:])))
        attributions.append(torch.cat(parts).to(x.dtype).contiguous())
    return tuple(attributions)
