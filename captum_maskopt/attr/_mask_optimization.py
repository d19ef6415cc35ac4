"""MaskOptimization: attributions by optimizing a soft mask over the input."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_maskopt.attr._views import build_predict, masks_to_attributions
from captum_maskopt.baselines import format_baselines
from captum_maskopt.features import FeatureGroups, build_feature_groups, checked_feature_mask, default_group_index
from captum_maskopt.formatting import (
    BatchExpander,
    TargetForm,
    TensorOrTuple,
    check_inputs,
    check_finite_output,
    check_output,
    check_output_type,
    chunk_rows,
    chunk_target,
    format_additional_forward_args,
    format_feature_mask,
    format_pinned,
    format_target,
    format_tensor_tuple,
    resolve_probability,
    select_target,
    slice_batch,
)
from captum_maskopt.guard import outside_inference_mode, preserved_caller_state, progress_bar
from captum_maskopt.objective import Objective, class_probabilities, saturated, warn_of_saturation
from captum_maskopt.optimization import NonFiniteViewsError, OptimizationRecord, optimize_masks
from captum_maskopt.parametrizations import SmoothMask2D, resolve_parametrization
from captum_maskopt.settings import (
    MaskOptimizationSettings,
    SettingsChoice,
    resolve_seed,
    resolve_settings,
    with_settings_doc,
)

AttributionResult = Union[TensorOrTuple, Tuple[TensorOrTuple, OptimizationRecord]]


@dataclass
class _Problem:
    """One call's formatted arguments: the tensors that are masked, the baselines
    (a list of one tuple per baseline), the target as given, the arguments that follow
    the masked tensors in a forward call, and the optional groups and pins."""

    masked: Tuple[Tensor, ...]
    baselines: List[Tuple[Tensor, ...]]
    target: TargetForm
    additional_forward_args: Tuple[Any, ...]
    feature_mask: Optional[Tuple[Tensor, ...]]
    pinned: Optional[Tuple[Tensor, ...]]


def settings_of(problem: _Problem, settings: SettingsChoice, **overrides: Any) -> MaskOptimizationSettings:
    """The settings of a call on ``problem``: with no ``settings`` given, the ``"image"``
    preset when the groups are the pixel locations of one image tensor (where
    ``parametrization="auto"`` picks the smooth 2-D mask), the defaults otherwise."""
    image = (
        problem.feature_mask is None and len(problem.masked) == 1
        and default_group_index(problem.masked[0].shape)[1] is not None
    )
    return resolve_settings(settings, image=image, **overrides)


def check_multiply_by_inputs(multiply_by_inputs: Any) -> None:
    """Accept Captum's ``multiply_by_inputs`` keyword where it means what the method
    does (``False``); refuse ``True`` with the reason."""
    if multiply_by_inputs is not False:
        raise TypeError(
            f"multiply_by_inputs={multiply_by_inputs!r}: mask optimization's attributions "
            "are the optimized mask's values (in [0, 1]), not gradients that could be "
            "multiplied by (inputs - baselines); leave it False"
        )


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
    independently (its own loss, stopping and noise), so an example's attribution
    depends on the batch it shares only through float32 rounding, which the steps can
    amplify on a deep model (see ``internal_batch_size``). A prediction, or a view's
    output, that is nan or inf raises an error naming the examples; nothing
    non-finite is returned.

    The method is a drop-in for Captum's attribution methods: the attributions have
    the inputs' structure and shapes and work with Captum's ``NoiseTunnel``, metrics
    and visualization.

    Examples::

        >>> # was: IntegratedGradients(model).attribute(images, target=labels)
        >>> attributions = MaskOptimization(model).attribute(images, target=labels)
    """

    def __init__(self, forward_func: Callable[..., Tensor], multiply_by_inputs: bool = False) -> None:
        r"""
        Args:
            forward_func (Callable or torch.nn.Module): the model or any function that
                        maps the inputs (and ``additional_forward_args``) to class
                        scores, batch in dimension 0.
            multiply_by_inputs (bool, optional): accepted as ``False`` only, so that
                        ``IntegratedGradients(model, multiply_by_inputs=False)`` can be
                        swapped for this class: the attributions are mask values, with
                        no gradient to scale by the inputs (``True`` raises a
                        ``TypeError`` saying so). Default: False
        """
        check_multiply_by_inputs(multiply_by_inputs)
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        # The attribution is the mask itself, not mask times input.
        return False

    @log_usage()
    @with_settings_doc
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetForm = None,
        additional_forward_args: Any = None,
        feature_mask: Optional[TensorOrTuple] = None,
        n_steps: Optional[int] = None,
        *,
        settings: SettingsChoice = None,
        pinned_features: Optional[TensorOrTuple] = None,
        internal_batch_size: Optional[int] = None,
        return_record: bool = False,
        show_progress: bool = False,
        **setting_overrides: Any,
    ) -> AttributionResult:
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
                        the model returns one value per example (a single-logit
                        classifier: ``probability="auto"`` then takes its sigmoid).
                        Default: None
            additional_forward_args (Any, optional): further arguments to
                        ``forward_func`` after the inputs. Tensors with a batch
                        dimension must have the inputs' batch size; they are expanded
                        with the views. Default: None
            feature_mask (Tensor or tuple[Tensor, ...], optional): integer group ids
                        ``>= 0`` with the input's number of dimensions, each
                        dimension 1 or the input's size (batch 1 or N); elements with
                        the same id share one mask value, also across tuple inputs.
                        As in Captum's ``FeatureAblation``, the ids need not be
                        consecutive (superpixel labels from 1, say).
                        Default: one group per pixel location for ``(N, C, H, W)``
                        inputs, per position for ``(N, T, D)``, per element otherwise
                        (also for ``(N, 1, L)`` and ``(N, C, 1, 1)``, which would
                        otherwise be one group).
            settings (str or MaskOptimizationSettings, optional): the method's
                        settings as one object, or the name of a preset of
                        :data:`~captum_maskopt.settings.PRESETS` (``"default"``,
                        ``"paper"``); ``n_steps`` and the keyword settings below
                        override single fields of it. Default: None (the defaults)
            pinned_features (bool Tensor or tuple, optional): broadcastable to the
                        inputs; a group whose elements are all True is fixed to
                        "removed" (attribution 0) and never optimized: the model sees
                        its baseline in the kept view and its input in the removed
                        one, e.g. padding. Groups equal to every baseline are pinned
                        automatically, since masking them changes nothing: a baseline
                        equal to the input where the input must stay as it is (special
                        tokens) keeps it in both views. Default: None
            internal_batch_size (int, optional): optimize at most this many examples
                        at a time to bound memory. An example's result depends on its
                        chunk or batch only through float32 rounding: the model's
                        batched arithmetic rounds differently, and the steps carry it
                        on. On Captum's generic test models that stays within 1e-4;
                        on a deep CNN the image preset's many steps amplify it into
                        another mask (EfficientNet-Lite0, four images: a map in a batch
                        of four and alone correlate by 0.62 to 0.90). ``1`` gives every
                        example exactly what it gets alone (on a deterministic device).
                        Default: None (the whole batch)
            return_record (bool, optional): also return an
                        :class:`~captum_maskopt.OptimizationRecord` with each
                        example's steps, keep/remove target probabilities and kept
                        fraction (not under ``NoiseTunnel``, which averages tensors
                        only). Default: False
            show_progress (bool, optional): show a progress bar over the steps.
                        Default: False
            **setting_overrides: any setting of
                        :class:`~captum_maskopt.settings.MaskOptimizationSettings` by
                        name, listed below with ``n_steps``; they override the fields
                        of ``settings``.

        Other Parameters:
{settings}

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**, or
            (attributions, record) when ``return_record``:
            - **attributions**: the optimized masks times the final ranking of
              ``tie_break`` to the power ``tie_break_weight`` (by default each
              group's removal effect at the hard rationales next to its rank; the
              image preset: the gradient and the path's slopes, squared), with
              exactly the structure and shapes of ``inputs``, values in [0, 1], in
              the inputs' dtype. Float16 and bfloat16 inputs are optimized in
              float32 (Adam's steps vanish in half precision) and the masks
              returned in the inputs' dtype, where ``IntegratedGradients`` returns
              float32.
            - **record** (:class:`~captum_maskopt.OptimizationRecord`): see above.

        Examples::

            >>> mo = MaskOptimization(model)
            >>> attributions = mo.attribute(images, target=labels)
            >>> # several baselines at once: black, white and the mean colour
            >>> attributions = mo.attribute(
            ...     images, baselines=[0.0, 1.0, images.mean((2, 3), keepdim=True)],
            ...     target=labels)
            >>> # the paper's settings, with fewer steps
            >>> attributions = mo.attribute(images, target=labels, settings="paper", n_steps=300)
        """
        inputs_tuple, is_tuple = format_tensor_tuple(inputs, "inputs")
        n = check_inputs(inputs_tuple, "inputs", floating=True)
        masks = format_feature_mask(feature_mask, inputs_tuple)
        if masks is not None:
            masks = checked_feature_mask(masks, inputs_tuple)
        problem = _Problem(
            masked=inputs_tuple,
            baselines=format_baselines(baselines, inputs_tuple),
            target=target,
            additional_forward_args=format_additional_forward_args(additional_forward_args, n),
            feature_mask=masks,
            pinned=format_pinned(pinned_features, inputs_tuple),
        )
        chosen = settings_of(problem, settings, n_steps=n_steps, **setting_overrides)
        with preserved_caller_state(self.forward_func):
            attributions, record = self._attribute_problem(
                problem, chosen, internal_batch_size, show_progress
            )
        output = attributions if is_tuple else attributions[0]
        return (output, record) if return_record else output

    def _attribute_problem(
        self,
        problem: _Problem,
        settings: MaskOptimizationSettings,
        internal_batch_size: Optional[int],
        show_progress: bool,
        description: str = "MaskOptimization",
    ) -> Tuple[Tuple[Tensor, ...], OptimizationRecord]:
        """The chunk loop: optimize the masks of ``problem``'s examples, a chunk of at
        most ``internal_batch_size`` at a time; ``forward_func`` receives the views of
        the masked tensors followed by the additional forward arguments."""
        n = problem.masked[0].shape[0]
        problem = _Problem(*(outside_inference_mode(getattr(problem, f.name)) for f in fields(_Problem)))
        # Drawn once, so every chunk of the call sees the same noise.
        settings = settings.with_overrides(seed=resolve_seed(settings.seed))
        chunks = chunk_rows(n, internal_batch_size)
        results: List[Tuple[Tensor, FeatureGroups]] = []
        records: List[OptimizationRecord] = []
        target_index: Optional[Tensor] = None
        probability = settings.probability
        saturated_examples: List[int] = []
        with progress_bar(show_progress, settings.n_steps * len(chunks), description) as progress:
            for number, chunk in enumerate(chunks):
                masked = slice_batch(problem.masked, n, chunk)
                args = slice_batch(problem.additional_forward_args, n, chunk)
                with torch.no_grad():
                    original = check_output_type(self.forward_func(*masked, *args))
                if number == 0:
                    target_index = format_target(problem.target, n, original.shape)
                    probability = resolve_probability(settings.probability, original)
                rows_target = chunk_target(target_index, chunk, original)
                check_output(original, masked[0].shape[0], rows_target, probability)
                check_finite_output(original, chunk.start)
                on_input = select_target(
                    class_probabilities(original.to(torch.promote_types(original.dtype, torch.float32)), probability),
                    rows_target,
                )
                saturated_examples += (saturated(on_input).nonzero().squeeze(1) + chunk.start).tolist()
                baselines = [slice_batch(b, n, chunk) for b in problem.baselines]
                groups = build_feature_groups(
                    masked,
                    None if problem.feature_mask is None else slice_batch(problem.feature_mask, n, chunk),
                    baselines,
                    None if problem.pinned is None else slice_batch(problem.pinned, n, chunk),
                )
                parametrization = resolve_parametrization(settings.parametrization, groups, settings)
                objective = Objective(settings, isinstance(parametrization, SmoothMask2D))

                def run_views(
                    views: Tuple[Tensor, ...], rows: Optional[Tensor], copies: int,
                    expand: BatchExpander = BatchExpander(args),
                ) -> Tensor:
                    output: Tensor = self.forward_func(*views, *expand(rows, copies))
                    return output

                predict = build_predict(
                    masked, baselines, groups, run_views, rows_target,
                    probability, settings.autocast,
                )
                try:
                    mask, record = optimize_masks(
                        predict, parametrization, groups, objective, settings, progress
                    )
                except NonFiniteViewsError as error:
                    raise error.shifted(chunk.start) from None
                record.probability = probability
                results.append((mask, groups))
                records.append(record)
        if saturated_examples:
            warn_of_saturation(saturated_examples)
        return masks_to_attributions(results, problem.masked), OptimizationRecord.concatenate(records)
