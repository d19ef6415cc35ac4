"""MaskOptimization: attributions by optimizing a soft mask over the input."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_maskopt._features import FeatureGroups, build_feature_groups, check_feature_mask
from captum_maskopt.attr import _common as common
from captum_maskopt.attr._run import masks_to_attributions, optimize_chunk
from captum_maskopt.baselines import format_baselines
from captum_maskopt.optimization import OptimizationRecord

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]


class MaskOptimization(PerturbationAttribution):
    r"""
    Input mask optimization (Brinner & Zarrieß, Findings of ACL 2023).

    For each example, a soft mask ``m`` in [0, 1] over the input's feature groups is
    optimized by gradient descent through the model so that

    * the kept part alone still yields the target (sufficiency):
      ``x_keep = m * x + (1 - m) * b`` keeps ``p_y`` high;
    * the removed part alone does not (comprehensiveness):
      ``x_rem = (1 - m) * x + m * b`` drives ``p_y`` down;
    * the mask keeps little, in few contiguous pieces (compactness and smoothness).

    ``b`` is the baseline: what a removed feature becomes. The optimized mask is the
    attribution: a value in [0, 1] per input element (shared within a feature group),
    where 1 means "needed for the prediction". No explainer model is trained and the
    model is only evaluated, never changed.

    Both views go through the model in one batched forward pass per step; gradients
    are taken with respect to the mask parameters only. Every example is optimized
    independently (its own loss, stopping and noise), so an example's attribution does
    not depend on the batch it shares.

    The method is a drop-in for Captum's attribution methods: the attributions have
    the inputs' structure and shapes and work with Captum's ``NoiseTunnel``, metrics
    and visualization.

    Examples::

        >>> # was: IntegratedGradients(model).attribute(images, target=labels)
        >>> attributions = MaskOptimization(model).attribute(images, target=labels)
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        r"""
        Args:
            forward_func (Callable or torch.nn.Module): the model or any function that
                        maps the inputs (and ``additional_forward_args``) to class
                        scores, batch in dimension 0.
        """
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        # The attribution is the mask itself, not mask times input.
        return False

    @log_usage()
    @common.with_settings_doc
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: common.TargetForm = None,
        additional_forward_args: Any = None,
        feature_mask: Optional[TensorOrTuple] = None,
        n_steps: int = common.DEFAULT_N_STEPS,
        *,
        pinned_features: Optional[TensorOrTuple] = None,
        mask_cell_size: int = 8,
        internal_batch_size: Optional[int] = None,
        return_record: bool = False,
        show_progress: bool = False,
        learning_rate: float = 0.1,
        parametrization: str = "auto",
        probability: str = "softmax",
        sufficiency_weight: float = 1.0,
        comprehensiveness_weight: float = 1.0,
        comprehensiveness: str = "log",
        comprehensiveness_margin: float = 0.1,
        compactness_weight: float = 1.0,
        target_kept_fraction: Optional[float] = None,
        smoothness_weight: float = 1.2,
        total_variation_weight: Optional[float] = None,
        noise_std: float = 0.03,
        flip_fraction: float = 0.05,
        check_every: int = 10,
        tolerance: float = 0.01,
        path_average: bool = False,
        seed: Optional[int] = 0,
        autocast: bool = False,
    ) -> Union[TensorOrTuple, Tuple[TensorOrTuple, OptimizationRecord]]:
        r"""
        Optimize one mask per example and return it as the attribution.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the input(s) to explain, floating
                        point, batch in dimension 0. Tuple inputs share one mask over
                        their feature groups.
            baselines (scalar, Tensor, tuple or list, optional): what a removed feature
                        becomes. As in Captum: ``None`` (zeros), a number, a tensor
                        broadcastable to the input (batch dimension 1 or N), or a tuple
                        of those for tuple inputs. A *list* of such baselines uses all
                        of them at once, averaging the objective over them (e.g. black,
                        white and the mean colour for images, see
                        :func:`captum_maskopt.baselines.gaussian_blur` for a blur).
                        Default: None
            target (int, tuple, Tensor or list, optional): the output index to explain
                        per example, in any form Captum accepts. May be None only when
                        the model returns one value per example (then use
                        ``probability="sigmoid"`` or ``"identity"``). Default: None
            additional_forward_args (Any, optional): further arguments to
                        ``forward_func`` after the inputs. Tensors with a batch
                        dimension must have the inputs' batch size; they are expanded
                        with the views. Default: None
            feature_mask (Tensor or tuple[Tensor, ...], optional): integer group ids
                        ``0 .. G-1`` with the input's number of dimensions, each
                        dimension 1 or the input's size (batch 1 or N); elements with
                        the same id share one mask value, also across tuple inputs.
                        Default: one group per pixel location for ``(N, C, H, W)``
                        inputs, per position for ``(N, T, D)``, per element otherwise.
            n_steps (int, optional): the maximum number of optimization steps; an
                        example stops earlier once its mask has settled.
                        Default: {n_steps}
            pinned_features (bool Tensor or tuple, optional): broadcastable to the
                        inputs; a group whose elements are all True is fixed to
                        "removed" (attribution 0) and never optimized, e.g. padding.
                        Groups equal to every baseline are pinned automatically, since
                        masking them changes nothing. Default: None
            mask_cell_size (int, optional): pixels per side of a cell of the smooth
                        2-D mask; larger cells give blobbier masks. Default: 8
            internal_batch_size (int, optional): optimize at most this many examples
                        at a time to bound memory; results do not change.
                        Default: None (the whole batch)
            return_record (bool, optional): also return an
                        :class:`~captum_maskopt.OptimizationRecord` with each
                        example's steps, keep/remove target probabilities and kept
                        fraction. Default: False
            show_progress (bool, optional): show a progress bar over the steps.
                        Default: False
{settings}

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, or
            (attributions, record) when ``return_record``:
            - **attributions**: the optimized masks, with exactly the structure and
              shapes of ``inputs``, values in [0, 1].
            - **record** (:class:`~captum_maskopt.OptimizationRecord`): see above.

        Examples::

            >>> mo = MaskOptimization(model)
            >>> attributions = mo.attribute(images, target=labels)
            >>> # several baselines at once: black, white and the mean colour
            >>> attributions = mo.attribute(
            ...     images, baselines=[0.0, 1.0, images.mean((2, 3), keepdim=True)],
            ...     target=labels)
        """
        inputs_tuple, is_tuple = common.format_tensor_tuple(inputs, "inputs")
        n = common.check_inputs(inputs_tuple, "inputs", floating=True)
        baseline_list = format_baselines(baselines, inputs_tuple)
        masks = common.format_optional_like(feature_mask, inputs_tuple, "feature_mask")
        pins = common.format_pinned(pinned_features, inputs_tuple)
        args = common.format_additional_forward_args(additional_forward_args, n)
        uses_grid = (
            masks is None
            and len(inputs_tuple) == 1
            and inputs_tuple[0].dim() == 4
            and parametrization in ("auto", "smooth2d")
        )
        objective, optimizer = common.settings_from_arguments(
            uses_grid=uses_grid, **common.settings_of(locals())
        )
        if masks is not None:
            check_feature_mask(masks, inputs_tuple)
        chunks = common.chunk_rows(n, internal_batch_size)

        results: List[Tuple[Tensor, FeatureGroups]] = []
        records: List[OptimizationRecord] = []
        target_index: Optional[Tensor] = None
        with common.preserved_caller_state(self.forward_func), common.progress_bar(
            show_progress, n_steps * len(chunks), "MaskOptimization"
        ) as progress:
            for number, chunk in enumerate(chunks):
                chunk_inputs = common.slice_batch(inputs_tuple, n, chunk)
                chunk_args = common.slice_batch(args, n, chunk)
                with torch.no_grad():
                    original = self.forward_func(*chunk_inputs, *chunk_args)
                if number == 0:
                    target_index = common.format_target(target, n, original.shape)
                chunk_target = common.chunk_target(target_index, chunk, original)
                common.check_output(original, chunk_inputs[0].shape[0], chunk_target, probability)
                chunk_baselines = [common.slice_batch(b, n, chunk) for b in baseline_list]
                groups = build_feature_groups(
                    chunk_inputs,
                    None if masks is None else common.slice_batch(masks, n, chunk),
                    chunk_baselines,
                    None if pins is None else common.slice_batch(pins, n, chunk),
                )

                def run_views(
                    views: Tuple[Tensor, ...], rows: Optional[Tensor], copies: int,
                    expand_args: common.BatchExpander = common.BatchExpander(chunk_args),
                ) -> Tensor:
                    return self.forward_func(*views, *expand_args(rows, copies))

                mask, record = optimize_chunk(
                    chunk_inputs, chunk_baselines, groups, run_views, chunk_target,
                    parametrization, mask_cell_size, objective, optimizer, probability,
                    autocast, progress,
                )
                results.append((mask, groups))
                records.append(record)
        attributions = masks_to_attributions(results, inputs_tuple)
        output = attributions if is_tuple else attributions[0]
        if return_record:
            return output, OptimizationRecord.concatenate(records)
        return output
