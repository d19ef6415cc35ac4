"""LayerMaskOptimization: mask optimization on a layer's output (or input), for models
whose inputs cannot be interpolated, such as token ids."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union, cast

from captum.attr import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_maskopt.attr._layer_switch import LayerSwitch, LayerSwitches
from captum_maskopt.attr._mask_optimization import MaskOptimization, _Problem, check_multiply_by_inputs, settings_of
from captum_maskopt.baselines import format_baselines
from captum_maskopt.features import checked_feature_mask
from captum_maskopt.formatting import (
    TargetForm,
    TensorOrTuple,
    check_inputs,
    format_additional_forward_args,
    format_feature_mask,
    format_pinned,
    format_tensor_tuple,
    warn_caller,
)
from captum_maskopt.guard import preserved_caller_state
from captum_maskopt.optimization import OptimizationRecord
from captum_maskopt.settings import SettingsChoice, resolve_settings, with_settings_doc


#: What ``attribute`` returns: the attributions (a list of them, one per layer, for a
#: list of layers), with the record when asked.
LayerAttributions = Union[TensorOrTuple, List[TensorOrTuple]]
LayerAttributionResult = Union[LayerAttributions, Tuple[LayerAttributions, OptimizationRecord]]


class LayerMaskOptimization(LayerAttribution):
    r"""
    Input mask optimization applied at a layer: the mask mixes the layer's output for
    the inputs with its output for the baselines, inside the model's own forward pass.

    This is the form for token-id models: baselines are given in input space (e.g. pad
    token ids) and run through the model to get the layer's baseline output, exactly as
    Captum's ``LayerIntegratedGradients`` does, so position and type embeddings stay
    right. Hooks replace the layer's output with the keep and remove views at every step
    and are removed afterwards, also when an error occurs.

    It is :class:`~captum_maskopt.MaskOptimization` run over the layer's recorded
    tensors, with a forward function that feeds the views into the model through a
    :class:`~captum_maskopt.attr.LayerSwitch`: the objective, parametrizations and
    settings are the same, and so is the choice of mask for the layer's tensor (the
    smooth 2-D mask for the ``(N, C, H, W)`` output of a convolution, one free logit
    per position of an ``(N, T, D)`` sequence, and with ``settings="paper"`` the
    paper's Gaussian-kernel mask there). The attributions have the
    shape of the layer's output (or input), one mask value per group (by default per
    position) repeated over the rest.

    Given a list of layers, as ``LayerIntegratedGradients`` takes, one mask is
    optimized over the tensors of all of them together (as over the tensors of a tuple
    input) and the attributions come back as a list, one entry per layer. The layers
    must not feed one another: a call where one layer's tensors change with another's
    raises a ``ValueError`` (Captum's method only warns).

    Examples::

        >>> # was: LayerIntegratedGradients(model, model.bert.embeddings)
        >>> lmo = LayerMaskOptimization(model, model.bert.embeddings)
        >>> attributions = lmo.attribute(input_ids, baselines=pad_ids, target=1,
        ...                              additional_forward_args=(attention_mask,))
        >>> token_scores = attributions.mean(-1)
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: Union[nn.Module, List[nn.Module]],
        device_ids: Optional[List[int]] = None,
        multiply_by_inputs: bool = False,
    ) -> None:
        r"""
        Args:
            forward_func (Callable or torch.nn.Module): the model or any function that
                        maps the inputs (and ``additional_forward_args``) to class
                        scores, batch in dimension 0.
            layer (torch.nn.Module): the layer whose output (or input) is masked, e.g.
                        the embedding module of a transformer: a tensor or a tuple of
                        tensors (``None`` entries are left alone; tensors nested
                        deeper, as in an LSTM's ``(output, (h, c))``, raise a
                        ``TypeError``), from one call of the layer per forward pass;
                        or a list of such layers, none of them computed from another's
                        tensors, masked together.
            device_ids (list[int], optional): the devices of a ``DataParallel``
                        ``forward_func``, so that each replica receives its chunk of
                        the masked views; taken from ``forward_func`` when it is a
                        ``DataParallel`` module. Default: None
            multiply_by_inputs (bool, optional): ``False`` only, as in
                        :class:`MaskOptimization`: the attributions are mask values,
                        not gradients to scale by the layer's activations. Default:
                        False
        """
        check_multiply_by_inputs(multiply_by_inputs)
        if not (isinstance(layer, nn.Module) or (isinstance(layer, list) and layer)):
            got = "an empty list" if isinstance(layer, list) else type(layer).__name__
            raise TypeError(f"layer must be a torch.nn.Module or a non-empty list of them, got {got}")
        layers = layer if isinstance(layer, list) else [layer]
        names = _layer_names(layer)
        for one, name in zip(layers, names):
            device_ids = LayerSwitch.check_layer(one, forward_func, device_ids, name)
        repeated = [name for k, name in enumerate(names) if any(layers[k] is other for other in layers[:k])]
        if repeated:
            raise ValueError(f"layer lists a module twice ({', '.join(repeated)}): list each layer once")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    @property
    def multiplies_by_inputs(self) -> bool:
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
        attribute_to_layer_input: bool = False,
        pinned_features: Optional[TensorOrTuple] = None,
        internal_batch_size: Optional[int] = None,
        return_record: bool = False,
        show_progress: bool = False,
        **setting_overrides: Any,
    ) -> LayerAttributionResult:
        r"""
        Optimize one mask per example over the layer's tensor and return it.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the model inputs, e.g. token ids,
                        batch in dimension 0. They need not be floating point.
            baselines (scalar, Tensor, tuple or list, optional): baselines *in input
                        space* (e.g. the pad token id, or ids with [CLS]/[SEP] kept),
                        in any form Captum accepts; they are run through the model to
                        get the layer's baseline tensors (whole numbers for integer
                        inputs: a fraction raises a ``ValueError`` rather than being
                        truncated into another token). A list uses several at once.
                        Default: None (zeros)
            target (int, tuple, Tensor or list, optional): the output index to explain
                        per example, in any form Captum accepts. Default: None
            additional_forward_args (Any, optional): further arguments to
                        ``forward_func`` after the inputs, e.g. an attention mask;
                        batched tensors are expanded with the views. Default: None
            feature_mask (Tensor or tuple[Tensor, ...], optional): integer group ids
                        (``>= 0``, not necessarily consecutive, as in
                        :class:`MaskOptimization`) over the *layer's* tensor(s), with
                        their number of dimensions, each dimension 1 or the tensor's
                        size, e.g. ``(N, T, 1)`` word ids to group word pieces.
                        Default: one group per position of an ``(N, T, D)`` tensor, per
                        location of an ``(N, C, H, W)`` one, per element otherwise
                        (also for ``(N, 1, D)`` and ``(N, C, 1, 1)``, e.g. a pooled
                        feature map, which would otherwise be one group). For a list
                        of layers, a tuple over all their tensors in the layers'
                        order; group ids shared across tensors make one group.
            settings (str or MaskOptimizationSettings, optional): the settings as one
                        object or a preset name, as in
                        :meth:`MaskOptimization.attribute`. Default: None
            attribute_to_layer_input (bool, optional): mask the layer's (floating
                        point) input instead of its output, as in Captum's layer
                        methods. Default: False
            pinned_features (bool Tensor or tuple, optional): broadcastable to the
                        layer's tensor(s), e.g. ``(N, T, 1)``; groups whose elements
                        are all True are fixed to "removed": their baseline in the
                        kept view, their input in the removed one. Groups whose layer
                        values equal every baseline's are pinned automatically and so
                        stay as they are in both views: padding when the baseline is
                        padding, and ``[CLS]`` and ``[SEP]`` when the baseline keeps
                        them (as in Captum's BERT tutorial), which a model that reads
                        the ``[CLS]`` token needs. For a list of layers, a tuple
                        over all their tensors, as ``feature_mask``. Default: None
            internal_batch_size (int, optional): optimize at most this many examples
                        at a time; the layer's tensors are recorded for the whole
                        batch in one pass without gradients. Default: None
            return_record (bool, optional): also return the
                        :class:`~captum_maskopt.OptimizationRecord` (not under
                        ``NoiseTunnel``, which averages tensors only). Default: False
            show_progress (bool, optional): show a progress bar. Default: False
            **setting_overrides: any setting by name, as in
                        :meth:`MaskOptimization.attribute`; listed below.

        Other Parameters:
{settings}

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions** shaped like the layer's
            output (a tuple when the layer returns one), or its input with
            ``attribute_to_layer_input``; for a list of layers, a list of those, one per
            layer in its order (as ``LayerIntegratedGradients`` returns them); with
            ``return_record``, a pair (attributions, record).
        """
        # Checked before any work; resolved again once the layer's tensors are known.
        resolve_settings(settings, n_steps=n_steps, **setting_overrides)
        inputs_tuple, _ = format_tensor_tuple(inputs, "inputs")
        n = check_inputs(inputs_tuple, "inputs", floating=False)
        baseline_list = format_baselines(baselines, inputs_tuple)
        args = format_additional_forward_args(additional_forward_args, n)
        forward_func = _uncompiled(self.forward_func)
        layers = self.layer if isinstance(self.layer, list) else [self.layer]
        switches = LayerSwitches(layers, _layer_names(self.layer), attribute_to_layer_input, self.device_ids)
        try:
            with preserved_caller_state(forward_func):
                _, masked = switches.record(lambda: forward_func(*inputs_tuple, *args))
                for switch, part in zip(switches.switches, switches.split(masked)):
                    self._check_layer_tensors(part, n, switch.name, attribute_to_layer_input)
                switches.check_independent(lambda: forward_func(*inputs_tuple, *args))
                layer_baselines = []
                for baseline in baseline_list:
                    full = tuple(b.expand_as(x) for b, x in zip(baseline, inputs_tuple))
                    layer_baselines.append(switches.record(lambda: forward_func(*full, *args))[1])
                masks = format_feature_mask(feature_mask, masked)
                if masks is not None:
                    masks = checked_feature_mask(masks, masked)
                problem = _Problem(
                    masked=masked,
                    baselines=layer_baselines,
                    target=target,
                    additional_forward_args=inputs_tuple + args,
                    feature_mask=masks,
                    pinned=format_pinned(pinned_features, masked),
                )
                chosen = settings_of(problem, settings, n_steps=n_steps, **setting_overrides)
                attributions, record = MaskOptimization(
                    switches.substituting(forward_func)
                )._attribute_problem(
                    problem, chosen, internal_batch_size, show_progress, "LayerMaskOptimization"
                )
        finally:
            switches.remove()
        per_layer: List[TensorOrTuple] = [
            part if switch.was_tuple else part[0]
            for switch, part in zip(switches.switches, switches.split(attributions))
        ]
        output: LayerAttributions = per_layer if isinstance(self.layer, list) else per_layer[0]
        return (output, record) if return_record else output

    @staticmethod
    def _check_layer_tensors(tensors: Tuple[Tensor, ...], n: int, name: str, to_input: bool) -> None:
        where = "input" if to_input else "output"
        for i, t in enumerate(tensors):
            if not t.is_floating_point():
                hint = (
                    " (attribute_to_layer_input=True on an embedding layer would mask token "
                    "ids: mask its output with attribute_to_layer_input=False)"
                    if to_input
                    else ""
                )
                raise TypeError(
                    f"{name}'s {where} tensor {i} has dtype {t.dtype}; only floating "
                    f"point tensors can be masked{hint}"
                )
            if t.dim() == 0 or t.shape[0] != n:
                raise ValueError(
                    f"{name}'s {where} tensor {i} has shape {tuple(t.shape)}; expected the "
                    f"batch size {n} in dim 0"
                )


def _uncompiled(forward_func: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The module that ``torch.compile`` wrapped, where ``forward_func`` is one: a
    compiled graph cached before the layer's hooks were registered runs without them
    (the hooks are not among its guards), which would leave the layer unrecorded or,
    worse, the views unfed."""
    original = getattr(forward_func, "_orig_mod", None)
    if isinstance(forward_func, nn.Module) and isinstance(original, nn.Module):
        warn_caller(
            "forward_func is compiled by torch.compile, whose cached graphs can skip the "
            "hooks that feed the layer's views: the call runs the uncompiled module "
            "(forward_func._orig_mod); pass it yourself to silence this"
        )
        return cast(Callable[..., Tensor], original)
    return forward_func


def _layer_names(layer: Union[nn.Module, List[nn.Module]]) -> List[str]:
    """How errors name the layers: ``layer``, or ``layer[k]`` in a list."""
    return [f"layer[{k}]" for k in range(len(layer))] if isinstance(layer, list) else ["layer"]
