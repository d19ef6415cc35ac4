"""LayerMASE: a MASE-style baseline (Model-agnostic Saliency Estimation by normalized
linear Gaussian perturbations of a layer's output), used like Captum's
``LayerIntegratedGradients``."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from captum.attr import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_maskopt import formatting as common
from captum_maskopt.attr import LayerSwitch
from captum_maskopt.guard import preserved_caller_state
from captum_maskopt.settings import resolve_seed
from captum_maskopt.objective import class_probabilities

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]


class LayerMASE(LayerAttribution):
    r"""
    A MASE-style saliency estimate at a layer (Yang et al., "MASE: Interpretable NLP
    Models via Model-Agnostic Saliency Estimation", arXiv 2512.04386): the layer's output
    ``e`` of shape ``(N, T, ...)``, e.g. an embedding layer's ``(N, T, D)``, is perturbed
    with normalized Gaussian noise of a random magnitude per token, and a linear model
    of the target probability on the magnitudes says which tokens matter.

    For each example and sample ``s`` the layer's output is replaced, through a forward
    hook, by ``e_t + a[s, t] * noise_scale * ||e_t|| / sqrt(D) * eps[s, t]`` with
    ``eps[s, t] ~ N(0, I_D)`` and ``a[s, t] ~ |N(0, 1)|``, so each token is perturbed by
    its own amount relative to its own scale. With ``p_s`` the target's softmax
    probability for sample ``s``, a ridge-regularized least-squares fit
    ``p_s ~ b0 + sum_t beta_t * a[s, t]`` is made per example, and the attribution of
    token ``t`` is ``-beta_t``: a token whose perturbation lowers the target probability
    is important. The value is repeated over the layer's other dimensions, so the
    attributions have the layer output's shape, as with Captum's layer methods.

    By default the samples come in antithetic pairs (the same magnitudes, noise ``eps``
    and ``-eps``), which cancels the noise's zero-mean first-order effect on ``p``; the
    fit then sees how the perturbation's size, not its direction, moves the target.

    Only forward passes are used (no gradients). The noise of an example is drawn on
    the layer's device from its own generator seeded with ``seed``, so its result does
    not depend on the other examples in the batch nor on ``internal_batch_size`` (it
    does depend on the device type, whose generators differ).

    Examples::

        >>> # was: LayerIntegratedGradients(model, model.bert.embeddings)
        >>> mase = LayerMASE(forward, model.bert.embeddings)
        >>> attributions = mase.attribute(input_ids, target=1,
        ...                               additional_forward_args=(attention_mask,))
        >>> token_scores = attributions[..., 0]
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable or torch.nn.Module): the model or any function that
                        maps the inputs (and ``additional_forward_args``) to class
                        scores, batch in dimension 0.
            layer (torch.nn.Module): the layer whose output is perturbed, e.g. the
                        embedding module of a transformer. Its output must be one
                        floating point tensor with the batch in dimension 0 and the
                        tokens in dimension 1.
            device_ids (list[int], optional): the devices of a ``DataParallel``
                        ``forward_func``, so that each replica receives its chunk of
                        the perturbed outputs; taken from ``forward_func`` when it is a
                        ``DataParallel`` module. Default: None
        """
        device_ids = LayerSwitch.check_layer(layer, forward_func, device_ids)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: common.TargetForm = None,
        additional_forward_args: Any = None,
        n_samples: int = 64,
        noise_scale: float = 0.5,
        seed: Optional[int] = 0,
        internal_batch_size: Optional[int] = None,
        *,
        ridge: float = 0.1,
        antithetic: bool = True,
    ) -> Tensor:
        r"""
        Estimate one saliency value per token of the layer's output.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the model inputs, e.g. token ids,
                        batch in dimension 0. They need not be floating point.
            baselines (Any, optional): not used; accepted so that the call can replace
                        one to ``LayerIntegratedGradients``. Default: None
            target (int, tuple, Tensor or list, optional): the output index to explain
                        per example, in any form Captum accepts. Default: None
            additional_forward_args (Any, optional): further arguments to
                        ``forward_func`` after the inputs, e.g. an attention mask;
                        batched tensors are repeated with the samples. Default: None
            n_samples (int, optional): perturbed forward passes per example (the rows
                        of each example's regression). Default: 64
            noise_scale (float, optional): the noise's standard deviation per element
                        relative to the token's root-mean-square value,
                        ``||e_t|| / sqrt(D)``, before the random magnitude
                        ``a ~ |N(0, 1)|``. Default: 0.5
            seed (int, optional): seed of every example's noise generator; the same
                        seed gives the same attribution whatever the batch. None draws
                        one. Default: 0
            internal_batch_size (int, optional): at most this many perturbed rows
                        (and, for the unperturbed pass, examples) in one forward pass.
                        Default: None (all ``N * n_samples`` rows at once)
            ridge (float, optional): the ridge penalty relative to the mean variance
                        of the magnitudes times ``n_samples``; it keeps the fit defined
                        when there are more tokens than samples. Default: 0.1
            antithetic (bool, optional): pair the samples: sample ``2k + 1`` reuses
                        the magnitudes of sample ``2k`` with the noise ``-eps``. The
                        noise's first-order effect on ``p``, which has mean zero and
                        only adds variance to the fit, then cancels within each pair;
                        every sample is still a draw of the same distribution.
                        Default: True

        Returns:
            *Tensor* of **attributions** shaped like the layer's output, ``-beta_t``
            repeated over every dimension after the tokens'.
        """
        inputs_tuple, _ = common.format_tensor_tuple(inputs, "inputs")
        n = common.check_inputs(inputs_tuple, "inputs", floating=False)
        args = common.format_additional_forward_args(additional_forward_args, n)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
        for name, value in (("noise_scale", noise_scale), ("ridge", ridge)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(antithetic, bool):
            raise TypeError(f"antithetic must be True or False, got {antithetic!r}")
        seed = resolve_seed(seed)
        example_chunks = common.chunk_rows(n, internal_batch_size)
        row_chunks = common.chunk_rows(n * n_samples, internal_batch_size)

        switch = LayerSwitch(self.layer, False, self.device_ids)
        try:
            with preserved_caller_state(self.forward_func), torch.no_grad():
                outputs, layer_parts = [], []
                for chunk in example_chunks:
                    chunk_inputs = common.slice_batch(inputs_tuple, n, chunk)
                    chunk_args = common.slice_batch(args, n, chunk)
                    output, recorded = switch.record(
                        lambda: self.forward_func(*chunk_inputs, *chunk_args)
                    )
                    size = chunk_inputs[0].shape[0]
                    if not isinstance(output, Tensor):
                        common.check_output(output, size, None, "softmax")  # raises
                    layer_parts.append(self._check_layer_output(recorded, switch.was_tuple, size))
                    outputs.append(output)
                embedded = torch.cat(layer_parts)
                target_index = common.format_target(target, n, outputs[0].shape)
                for chunk, output in zip(example_chunks, outputs):
                    common.check_output(
                        output, chunk.stop - chunk.start,
                        common.chunk_target(target_index, chunk, output), "softmax",
                    )
                magnitudes, probabilities = self._sample(
                    embedded, inputs_tuple, args, target_index, switch, row_chunks,
                    n_samples, float(noise_scale), seed, antithetic,
                )
        finally:
            switch.replacement = None
            switch.remove()
        beta = self._ridge_fit(magnitudes, probabilities, float(ridge))
        scores = (-beta).to(device=embedded.device, dtype=embedded.dtype)
        shape = (n, embedded.shape[1]) + (1,) * (embedded.dim() - 2)
        return scores.reshape(shape).expand(embedded.shape).contiguous()

    def _sample(
        self,
        embedded: Tensor,
        inputs: Tuple[Tensor, ...],
        args: Tuple[Any, ...],
        target_index: Optional[Tensor],
        switch: LayerSwitch,
        row_chunks: List[slice],
        n_samples: int,
        noise_scale: float,
        seed: int,
        antithetic: bool,
    ) -> Tuple[Tensor, Tensor]:
        """Run the perturbed forward passes: the magnitudes ``(N, S, T)`` and the
        target probabilities ``(N, S)``, both float32 on the layer's device."""
        n, tokens = embedded.shape[:2]
        rest = tuple(embedded.shape[2:])
        device = embedded.device
        width = max(1, math.prod(rest))
        # The token's root-mean-square value sets its noise's scale ("normalized").
        token_norm = embedded.float().reshape(n, tokens, -1).norm(dim=2)
        token_scale = noise_scale * token_norm / math.sqrt(width)
        generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(n)]
        last_draw: Dict[int, Tuple[Tensor, Tensor]] = {}
        magnitudes = torch.empty(n * n_samples, tokens, device=device)
        probabilities = torch.empty(n * n_samples, device=device)
        for chunk in row_chunks:
            rows = torch.arange(chunk.start, chunk.stop)
            examples = rows // n_samples
            draws_a, draws_eps = [], []
            # Rows go example by example and sample by sample, so each example's
            # generator yields the same draws whatever the chunking and the batch.
            for row, example in zip(rows.tolist(), examples.tolist()):
                if antithetic and row % n_samples % 2 == 1:
                    a_row, eps_row = last_draw.pop(example)
                    eps_row = -eps_row
                else:
                    generator = generators[example]
                    a_row = torch.randn(tokens, generator=generator, device=device).abs()
                    eps_row = torch.randn((tokens,) + rest, generator=generator, device=device)
                    if antithetic:
                        last_draw[example] = (a_row, eps_row)
                draws_a.append(a_row)
                draws_eps.append(eps_row)
            a = torch.stack(draws_a)
            eps = torch.stack(draws_eps)
            scale = (a * token_scale[examples.to(device)]).reshape(a.shape + (1,) * len(rest))
            perturbed = (embedded[examples.to(device)].float() + scale * eps).to(embedded.dtype)
            row_inputs = tuple(x[examples.to(x.device)] for x in inputs)
            row_args = common.expand_additional_forward_args(args, examples, 1)
            switch.replacement = (perturbed,)
            try:
                output = self.forward_func(*row_inputs, *row_args)
            finally:
                switch.replacement = None
            row_target = None if target_index is None else target_index[examples]
            common.check_output(output, len(rows), row_target, "softmax")
            p = common.select_target(
                class_probabilities(output.float(), "softmax"),
                None if row_target is None else row_target.to(output.device),
            )
            magnitudes[chunk] = a
            probabilities[chunk] = p.to(device)
        return magnitudes.reshape(n, n_samples, tokens), probabilities.reshape(n, n_samples)

    @staticmethod
    def _ridge_fit(magnitudes: Tensor, probabilities: Tensor, ridge: float) -> Tensor:
        """Per example, the slopes ``beta`` ``(N, T)`` of the ridge fit of
        ``p ~ b0 + a @ beta`` (the intercept not penalized), in float64."""
        if magnitudes.device.type == "mps":  # no float64 there
            magnitudes, probabilities = magnitudes.cpu(), probabilities.cpu()
        a = magnitudes.double()
        p = probabilities.double()
        a = a - a.mean(dim=1, keepdim=True)
        p = p - p.mean(dim=1, keepdim=True)
        gram = a.transpose(1, 2) @ a  # (N, T, T)
        tokens = gram.shape[-1]
        penalty = ridge * gram.diagonal(dim1=1, dim2=2).mean(dim=1)  # (N,)
        eye = torch.eye(tokens, dtype=gram.dtype, device=gram.device)
        system = gram + penalty[:, None, None] * eye
        right = (a.transpose(1, 2) @ p.unsqueeze(-1)).squeeze(-1)
        # The system is symmetric positive definite (a Gram matrix plus a positive
        # ridge): Cholesky is the solver for it, and it avoids the batched LU whose
        # pivoting fails inside oneMKL for some batches of long padded texts.
        factor = torch.linalg.cholesky(system)
        result: Tensor = torch.cholesky_solve(right.unsqueeze(-1), factor).squeeze(-1)
        return result

    @staticmethod
    def _check_layer_output(recorded: Tuple[Tensor, ...], was_tuple: bool, n: int) -> Tensor:
        if was_tuple or len(recorded) != 1:
            raise TypeError(
                f"the layer returns {len(recorded)} tensors; LayerMASE perturbs one "
                "(N, T, ...) tensor: pass the module that produces the embeddings"
            )
        e = recorded[0]
        if not e.is_floating_point():
            raise TypeError(f"the layer's output has dtype {e.dtype}; it must be floating point")
        if e.dim() < 2 or e.shape[0] != n:
            raise ValueError(
                f"the layer's output has shape {tuple(e.shape)}; expected (N, T, ...) with "
                f"the batch size {n} in dim 0 and tokens in dim 1"
            )
        return e
