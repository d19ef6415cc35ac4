"""Pictures of image attributions: heat map, blended overlay and the masked image, per
method, side by side for several methods and several photos in one figure.

Heat maps and overlays are drawn by Captum's ``visualize_image_attr``; the masked
image is drawn here, since it shows what the model sees when the attribution is used
as a mask: ``m * image + (1 - m) * baseline``. For MaskOptimization, whose attribution
*is* a mask in [0, 1], that is exactly its keep view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the module
    from matplotlib.figure import Figure

__all__ = ["KINDS", "soft_mask", "masked_image", "attribution_figure"]

#: The pictures per method: Captum's heat map and blended overlay, and the masked image.
KINDS = ("heat_map", "blended_heat_map", "masked_image")

ImageLike = Union[Tensor, np.ndarray]


def _as_hwc(image: ImageLike, argument: str) -> np.ndarray:
    """An RGB image as float ``(H, W, 3)`` in [0, 1]: from a uint8 or float array
    ``(H, W, 3)`` or a float tensor ``(3, H, W)``."""
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{argument}: a tensor image must be (3, H, W), got {tuple(image.shape)}")
        image = image.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{argument}: an array image must be (H, W, 3), got {shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _as_map(values: Union[Tensor, np.ndarray], shape: Sequence[int], argument: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != tuple(shape):
        raise ValueError(f"{argument} must be a per-pixel map of shape {tuple(shape)}, got {values.shape}")
    return values


def soft_mask(attribution: Union[Tensor, np.ndarray], quantile: float = 0.99) -> np.ndarray:
    """A per-pixel map as a mask in [0, 1]: the positive part divided by its
    ``quantile`` (so that a few extreme pixels do not darken everything else), clipped
    at 1; all zeros when nothing is positive.

    Args:
        attribution: ``(H, W)`` scores.
        quantile: the share of positive scores below the value that maps to 1.
            Default: 0.99
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    values = np.asarray(
        attribution.detach().cpu().double().numpy() if isinstance(attribution, Tensor) else attribution,
        dtype=np.float64,
    )
    positive = np.maximum(values, 0.0)
    nonzero = positive[positive > 0]
    if nonzero.size == 0:
        return np.zeros_like(positive)
    result: np.ndarray = np.clip(positive / np.quantile(nonzero, quantile), 0.0, 1.0)
    return result


def masked_image(
    image: ImageLike, mask: Union[Tensor, np.ndarray], baseline: Optional[ImageLike] = None
) -> np.ndarray:
    """What the model sees under a mask: ``mask * image + (1 - mask) * baseline``, as
    an RGB array ``(H, W, 3)`` in [0, 1].

    Args:
        image: the photo, RGB ``(H, W, 3)`` (uint8 or float in [0, 1]) or a float
            tensor ``(3, H, W)`` in [0, 1].
        mask: ``(H, W)`` values in [0, 1] (see :func:`soft_mask`).
        baseline: what removed pixels become, an image like ``image``.
            Default: None (black)
    """
    rgb = _as_hwc(image, "image")
    m = _as_map(mask, rgb.shape[:2], "mask")
    if m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must lie in [0, 1]; use soft_mask for attributions")
    fill = np.zeros_like(rgb) if baseline is None else _as_hwc(baseline, "baseline")
    if fill.shape != rgb.shape:
        raise ValueError(f"baseline has shape {fill.shape}, the image {rgb.shape}")
    result: np.ndarray = m[..., None] * rgb + (1.0 - m[..., None]) * fill
    return result


def attribution_figure(
    images: Sequence[ImageLike],
    attributions: Sequence[Mapping[str, Union[Tensor, np.ndarray]]],
    kinds: Sequence[str] = KINDS,
    titles: Optional[Sequence[str]] = None,
    baselines: Optional[Sequence[Optional[ImageLike]]] = None,
    outlines: Optional[Sequence[Optional[np.ndarray]]] = None,
    mask_methods: Collection[str] = ("MaskOptimization",),
    cell_size: float = 1.8,
) -> "Figure":
    """One figure of several methods' attributions on several images.

    Each image gets one row per kind of picture; the first column shows the image
    (with the object's outline, if given), the others one method each, in the order
    of the first image's mapping.

    Args:
        images: the photos as the model saw them, RGB ``(H, W, 3)`` (uint8 or float in
            [0, 1]) or float tensors ``(3, H, W)`` in [0, 1].
        attributions: per image, ``{method: (H, W) per-pixel scores}``.
        kinds: pictures per method, from :data:`KINDS`: ``"heat_map"`` and
            ``"blended_heat_map"`` (Captum's, all signs, colour scale at the 98th
            percentile of magnitudes) and ``"masked_image"`` (see
            :func:`masked_image`). Default: all three
        titles: a title per image (e.g. its name and predicted class).
            Default: None
        baselines: per image, what removed pixels become in the masked image, like
            the image. Default: None (black)
        outlines: per image, an object outline ``(P, 2)`` of ``(x, y)`` pixel
            coordinates to draw on the image, or None. Default: None
        mask_methods: methods whose attributions are masks in [0, 1], used as they
            are for the masked image; the others go through :func:`soft_mask`.
            Default: ("MaskOptimization",)
        cell_size: width and height of one picture in inches. Default: 1.8

    Returns:
        a ``matplotlib.figure.Figure`` (not attached to pyplot); save it with
        ``figure.savefig(path)``.
    """
    from captum.attr import visualization
    from matplotlib.figure import Figure

    if len(images) != len(attributions) or not images:
        raise ValueError("images and attributions must be non-empty and of the same length")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got {list(kinds)}")
    for argument, values in (("titles", titles), ("baselines", baselines), ("outlines", outlines)):
        if values is not None and len(values) != len(images):
            raise ValueError(f"{argument} must give one entry per image ({len(images)}), got {len(values)}")
    methods: List[str] = list(attributions[0])
    if not methods:
        raise ValueError("attributions[0] has no methods")
    for number, per_method in enumerate(attributions):
        if list(per_method) != methods:
            raise ValueError(f"attributions[{number}] has methods {list(per_method)}, the first image {methods}")

    rows, columns = len(images) * len(kinds), len(methods) + 1
    figure = Figure(figsize=(cell_size * columns, cell_size * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for number, (image, per_method) in enumerate(zip(images, attributions)):
        rgb = _as_hwc(image, f"images[{number}]")
        substrate = None if baselines is None else baselines[number]
        for k, kind in enumerate(kinds):
            row = number * len(kinds) + k
            ax = axes[row, 0]
            ax.imshow(rgb)
            if k == 0 and outlines is not None and outlines[number] is not None:
                outline = np.asarray(outlines[number])
                closed = np.vstack([outline, outline[:1]])
                ax.plot(closed[:, 0], closed[:, 1], color="yellow", linewidth=1)
                # The outline may leave the crop; the picture keeps the image's bounds.
                ax.set_xlim(-0.5, rgb.shape[1] - 0.5)
                ax.set_ylim(rgb.shape[0] - 0.5, -0.5)
            label = titles[number] if titles is not None and k == 0 else ""
            ax.set_title(label, fontsize=7)
            ax.set_ylabel(kind.replace("_", " "), fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            for column, method in enumerate(methods, start=1):
                ax = axes[row, column]
                pixel_values = _as_map(per_method[method], rgb.shape[:2], f"attributions[{number}][{method!r}]")
                if kind == "masked_image":
                    mask = np.clip(pixel_values, 0.0, 1.0) if method in mask_methods else soft_mask(pixel_values)
                    ax.imshow(masked_image(rgb, mask, substrate))
                elif np.abs(pixel_values).max() == 0:
                    # Captum cannot scale an all-zero map: draw what it would show for
                    # one, no colour (over the grey image for the overlay).
                    plain = rgb.mean(axis=2) if kind == "blended_heat_map" else np.ones(rgb.shape[:2])
                    ax.imshow(plain, cmap="gray", vmin=0, vmax=1)
                else:
                    visualization.visualize_image_attr(
                        pixel_values[..., None], rgb, method=kind, sign="all",
                        plt_fig_axis=(figure, ax), use_pyplot=False,
                    )
                ax.set_title(method if row == 0 else "", fontsize=7)
                ax.axis("off")
    figure.tight_layout()
    return figure
