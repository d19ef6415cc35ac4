"""The user's own image classifier and photos: loading them, and explaining a folder.

:func:`load_image_model` reads ``--model`` of the image commands: ``packaged`` (the
EfficientNet-Lite0 of :mod:`captum_maskopt.vision.models`), a TorchScript file, or
``torchvision:NAME`` with a local state dict. Its preprocessing comes with it: the
torchvision weights' own transforms for ``torchvision:NAME``, and explicit resize /
crop / mean / std (default: ImageNet's 256 / 224 / mean / std) otherwise.
:func:`image_files` lists the photos of folders and files; :func:`explain_images`
explains them batch by batch and yields one JSON-ready row per photo, with the mask
saved beside the output.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from captum_maskopt.settings import resolve_settings
from captum_maskopt.tables import InputError
from captum_maskopt.vision.metrics import pixel_map
from captum_maskopt.vision.peers import PEERS

__all__ = ["IMAGE_SUFFIXES", "ImageModel", "load_image_model", "image_files", "read_image", "explain_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""The file suffixes read as photos."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageModel:
    """A classifier with the preprocessing its inputs need.

    Attributes:
        model: ``(N, 3, H, W)`` to logits, in evaluation mode.
        preprocess: a PIL image to the model input ``(3, H, W)``.
        to_rgb: model inputs back to RGB in [0, 1], for overlays.
        categories: the class names by index, when known.
        layer: the layer Grad-CAM reads, when known (never for TorchScript).
        description: what was loaded, for the output's records.
    """

    model: nn.Module
    preprocess: Callable[[Image.Image], Tensor]
    to_rgb: Callable[[Tensor], Tensor]
    categories: Optional[List[str]] = None
    layer: Optional[nn.Module] = None
    description: Dict[str, Any] = field(default_factory=dict)


def _normalising(resize: int, crop: int, mean: Sequence[float], std: Sequence[float]) -> Tuple[
    Callable[[Image.Image], Tensor], Callable[[Tensor], Tensor]
]:
    from torchvision import transforms

    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise InputError(f"--mean and --std take 3 values each, std > 0; got {list(mean)} and {list(std)}")
    transform = transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)

    def to_rgb(inputs: Tensor) -> Tensor:
        return (inputs * std_t.to(inputs) + mean_t.to(inputs)).clamp(0.0, 1.0)

    def preprocess(image: Image.Image) -> Tensor:
        result: Tensor = transform(image.convert("RGB"))
        return result

    return preprocess, to_rgb


def _last_convolution(model: nn.Module) -> Optional[nn.Module]:
    found = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            found = module
    return found


def load_image_model(
    spec: str,
    weights: Optional[Union[str, Path]] = None,
    resize: Optional[int] = None,
    crop: Optional[int] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
) -> ImageModel:
    """The classifier that ``spec`` names, with its preprocessing.

    Args:
        spec: ``"packaged"``, the path of a TorchScript file (``torch.jit.save``), or
            ``"torchvision:NAME"`` (a ``torchvision.models`` architecture).
        weights: for ``torchvision:NAME``, the local state-dict file (required:
            nothing is downloaded).
        resize: the shorter side the photo is resized to. With any of ``resize``,
            ``crop``, ``mean`` and ``std`` given, these four replace the model's own
            preprocessing (the torchvision weights' transforms); the ones not given
            are 256, 224 and ImageNet's mean and std.
        crop: the side of the centre crop.
        mean: the per-channel mean of [0, 1] pixels that is subtracted.
        std: the per-channel standard deviation they are divided by.

    Raises:
        FileNotFoundError: for a missing file.
        InputError: for an unknown architecture, a missing ``weights`` or a state dict
            that does not fit it.
    """
    explicit = resize is not None or crop is not None or mean is not None or std is not None
    normalising = _normalising(resize or 256, crop or 224, mean or IMAGENET_MEAN, std or IMAGENET_STD)
    if spec == "packaged":
        from captum_maskopt.vision import models

        if explicit:
            raise InputError("the packaged model has its own preprocessing: leave out --resize/--crop/--mean/--std")
        model = models.load_efficientnet_lite0()
        return ImageModel(model, models.preprocess, models.to_rgb, models.imagenet_categories(),
                          models.gradcam_layer(model), {"model": "packaged EfficientNet-Lite0"})
    if spec.startswith("torchvision:"):
        return _torchvision_model(spec.partition(":")[2], weights, normalising if explicit else None)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"--model: no file {path}; expected 'packaged', a TorchScript file or torchvision:NAME"
        )
    if weights is not None:
        raise InputError("--weights is for torchvision:NAME models; a TorchScript file holds its weights")
    try:
        with warnings.catch_warnings():
            # torch.jit's deprecation notice: a TorchScript file is what the user has.
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except RuntimeError as error:
        raise InputError(f"--model: {path} is not a TorchScript file ({str(error).splitlines()[0]})") from None
    preprocess, to_rgb = normalising
    return ImageModel(scripted.eval(), preprocess, to_rgb, None, None,
                      {"model": str(path.resolve()), "format": "torchscript"})


def _torchvision_model(
    name: str, weights: Optional[Union[str, Path]],
    normalising: Optional[Tuple[Callable[[Image.Image], Tensor], Callable[[Tensor], Tensor]]],
) -> ImageModel:
    import torchvision

    if name not in torchvision.models.list_models():
        raise InputError(f"--model: torchvision has no model {name!r}; see torchvision.models.list_models()")
    if weights is None:
        raise InputError(f"--model torchvision:{name} needs --weights FILE (a state dict); nothing is downloaded")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--weights: no file {weights}")
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        known = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        known = None
    classes = None
    if isinstance(state, dict):
        heads = [value for key, value in state.items() if key.endswith("weight") and getattr(value, "dim", lambda: 0)() == 2]
        classes = int(heads[-1].shape[0]) if heads else None
    model = torchvision.models.get_model(name, weights=None, **({"num_classes": classes} if classes else {}))
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"--weights: {weights} does not fit torchvision:{name} ({str(error).splitlines()[0]})") from None
    categories = None
    if known is not None and classes == len(known.meta.get("categories", [])):
        categories = list(known.meta["categories"])
    if normalising is None and known is not None:
        transform = known.transforms()
        mean, std = tuple(transform.mean), tuple(transform.std)
        preprocess, to_rgb = _normalising(int(transform.resize_size[0]), int(transform.crop_size[0]), mean, std)
    else:
        preprocess, to_rgb = normalising or _normalising(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    return ImageModel(model.eval(), preprocess, to_rgb, categories, _last_convolution(model),
                      {"model": f"torchvision:{name}", "weights": str(Path(weights).resolve())})


def image_files(paths: Sequence[Union[str, Path]]) -> List[Path]:
    """The photos of ``paths``: each folder's image files (sorted, not recursive) and
    each file as given.

    Raises:
        FileNotFoundError: for a path that does not exist.
        InputError: when no photo is found.
    """
    found: List[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif entry.exists():
            found.append(entry)
        else:
            raise FileNotFoundError(f"--images: no such file or folder: {entry}")
    if not found:
        raise InputError(f"--images: no photos ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return found


def read_image(path: Path, preprocess: Callable[[Image.Image], Tensor]) -> Tensor:
    """The model input for the photo at ``path``.

    Raises:
        InputError: when the file is not a photo PIL can read.
    """
    try:
        with Image.open(path) as image:
            return preprocess(_as_shown(image))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path.name}: {error}") from None


#: Grey modes of more than 8 bits, which PIL's ``convert("RGB")`` clips at 255 (a
#: 16-bit photo turns white) rather than scales.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _as_shown(image: Image.Image) -> Image.Image:
    """``image`` in RGB as a viewer shows it: turned by its EXIF orientation (a phone's
    portrait photo), and a grey image of more than 8 bits scaled to 8: 16-bit modes
    by 65535/255, 32-bit integer and float ones by the largest range their values fit
    (1, 255, 65535, or their maximum)."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode not in _WIDE_GREY_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0
    else:
        largest = float(values.max()) if values.size else 0.0
        top = next((limit for limit in (1.0, 255.0, 65535.0) if largest <= limit), largest)
    grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def explain_images(
    loaded: ImageModel,
    files: Sequence[Path],
    output_folder: Union[str, Path],
    method: str = "MaskOptimization",
    target: Union[None, int, str] = None,
    batch_size: int = 4,
    mask_options: Optional[Mapping[str, Any]] = None,
    overlays: Optional[Union[str, Path]] = None,
    skip: Sequence[int] = (),
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
) -> Iterator[List[Dict[str, Any]]]:
    """Explain the photos batch by batch, yielding each batch's rows in input order.

    Each photo's per-pixel map (:func:`~captum_maskopt.vision.metrics.pixel_map`,
    the input's crop) is saved in ``output_folder`` as ``<id>-<name>.npy`` (float32)
    and ``.png`` (scaled to 0-255), and, with ``overlays``, the photo with the map laid
    over it as ``<id>-<name>.png`` there.

    Args:
        loaded: the model and its preprocessing (:func:`load_image_model`).
        files: the photos.
        output_folder: where the masks go.
        method: a name of :data:`~captum_maskopt.vision.peers.PEERS`.
        target: None (each photo's predicted class), a class index, or a category name.
        batch_size: photos per attribution call.
        mask_options: MaskOptimization settings over its defaults.
        overlays: a folder for the overlays; None makes none.
        skip: ids (positions in ``files``) not to explain.
        seed: the methods' seed.
        progress: called with the number of photos done after each batch.

    Yields:
        lists of rows ``{"id", "file", "predicted", "predicted_label", "probability",
        "target", "target_label", "target_probability", "mask", "mask_png", "overlay",
        "method", "settings", "seconds", "error"}``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    explain = PEERS[method]
    if method == "LayerGradCam" and loaded.layer is None:
        raise InputError("LayerGradCam needs a convolution layer to read; this model exposes none (TorchScript)")
    options = dict(mask_options or {})
    settings = _settings(method, options)
    fixed = _target_index(loaded, target)
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    if overlays is not None:
        Path(overlays).mkdir(parents=True, exist_ok=True)
    skipped = set(skip)
    todo = [i for i in range(len(files)) if i not in skipped]
    for start in range(0, len(todo), batch_size):
        ids = todo[start:start + batch_size]
        rows: Dict[int, Dict[str, Any]] = {}
        inputs: List[Tuple[int, Tensor]] = []
        for i in ids:
            try:
                inputs.append((i, read_image(files[i], loaded.preprocess)))
            except InputError as error:
                rows[i] = _failed(str(error))
        if inputs:
            rows.update(_explain_batch(loaded, files, inputs, explain, fixed, options, folder, overlays, seed))
        yield [{"id": i, "file": str(files[i]), **rows[i], "method": method, "settings": settings} for i in ids]
        if progress is not None:
            progress(len(ids))


def _settings(method: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    if method != "MaskOptimization":
        return {}
    return resolve_settings(image=True, **options).as_record()


def _target_index(loaded: ImageModel, target: Union[None, int, str]) -> Optional[int]:
    if target is None or target == "predicted":
        return None
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, int):
        return target
    if loaded.categories and target in loaded.categories:
        return loaded.categories.index(target)
    raise InputError(f"--target: expected 'predicted', a class index or a category name of the model, got {target!r}")


def _failed(error: str) -> Dict[str, Any]:
    return {"predicted": None, "predicted_label": None, "probability": None, "target": None,
            "target_label": None, "target_probability": None, "mask": None, "mask_png": None,
            "overlay": None, "seconds": 0.0, "error": error}


def _explain_batch(
    loaded: ImageModel, files: Sequence[Path], inputs: List[Tuple[int, Tensor]], explain: Any,
    fixed: Optional[int], options: Mapping[str, Any], folder: Path, overlays: Optional[Union[str, Path]],
    seed: int,
) -> Dict[int, Dict[str, Any]]:
    ids = [i for i, _ in inputs]

    def one_at_a_time() -> Dict[int, Dict[str, Any]]:
        rows: Dict[int, Dict[str, Any]] = {}
        for one in inputs:
            rows.update(_explain_batch(loaded, files, [one], explain, fixed, options, folder, overlays, seed))
        return rows

    if len({tuple(tensor.shape) for _, tensor in inputs}) > 1:
        # Photos that the preprocessing leaves at different sizes go one at a time.
        return one_at_a_time()
    images = torch.stack([tensor for _, tensor in inputs])
    begun = time.perf_counter()
    try:
        with torch.no_grad():
            probabilities = torch.softmax(loaded.model(images), dim=1)
        predicted = probabilities.argmax(dim=1)
        n_classes = probabilities.shape[1]
        if fixed is not None and not 0 <= fixed < n_classes:
            raise InputError(f"--target: class {fixed} is out of range for {n_classes} classes")
        targets = predicted if fixed is None else torch.full_like(predicted, fixed)
        maps = pixel_map(explain(loaded.model, loaded.layer, images, targets, seed, options).detach())
    except InputError:
        raise
    except Exception as error:
        if len(inputs) > 1:
            return one_at_a_time()
        return {ids[0]: _failed(f"{type(error).__name__}: {error}")}
    share = (time.perf_counter() - begun) / len(inputs)
    rows: Dict[int, Dict[str, Any]] = {}
    names = loaded.categories
    for row, i in enumerate(ids):
        values = maps[row].float().cpu().numpy()
        if not np.isfinite(values).all():
            rows[i] = _failed("the method returned non-finite scores")
            continue
        stem = f"{i:06d}-{files[i].stem}"
        np.save(folder / f"{stem}.npy", values.astype(np.float32))
        _save_png(values, folder / f"{stem}.png")
        overlay = None
        if overlays is not None:
            overlay = str(Path(overlays) / f"{stem}.png")
            _save_overlay(loaded.to_rgb(images[row]), values, Path(overlay))
        p, t = int(predicted[row]), int(targets[row])
        rows[i] = {
            "predicted": p, "predicted_label": names[p] if names else None,
            "probability": float(probabilities[row, p]),
            "target": t, "target_label": names[t] if names else None,
            "target_probability": float(probabilities[row, t]),
            "mask": str(folder / f"{stem}.npy"), "mask_png": str(folder / f"{stem}.png"),
            "overlay": overlay, "seconds": share, "error": None,
        }
    return rows


def _scaled(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else 1.0
    result: np.ndarray = ((values - low) / span * 255.0).round().astype(np.uint8)
    return result


def _save_png(values: np.ndarray, path: Path) -> None:
    Image.fromarray(_scaled(values)).save(path)


def _save_overlay(rgb: Tensor, values: np.ndarray, path: Path) -> None:
    from captum_maskopt.vision.figures import masked_image, soft_mask

    shown = masked_image(rgb, soft_mask(values), baseline=(rgb * 0.25))
    Image.fromarray((shown * 255.0).round().astype(np.uint8)).save(path)
