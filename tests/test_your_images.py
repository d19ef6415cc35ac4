"""The user's own image classifier and photos: model loading, the explain and compare
commands, resume, Quantus."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")

from captum_maskopt.cli import main  # noqa: E402
from captum_maskopt.output import read_rows  # noqa: E402
from captum_maskopt.tables import InputError  # noqa: E402
from captum_maskopt.vision.files import image_files, load_image_model  # noqa: E402

SMALL = ["--resize", "32", "--crop", "32"]


def test_torchscript_model_with_explicit_preprocessing(image_folder):
    model_file, photos = image_folder
    loaded = load_image_model(str(model_file), resize=32, crop=24, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    from PIL import Image

    with Image.open(photos / "p1.png") as photo:
        tensor = loaded.preprocess(photo)
    assert tensor.shape == (3, 24, 24)
    # to_rgb undoes the normalisation: back to [0, 1] pixels.
    assert torch.allclose(loaded.to_rgb(torch.zeros(3, 2, 2)), torch.full((3, 2, 2), 0.5))
    assert loaded.layer is None and loaded.categories is None


def test_torchvision_model_from_a_local_state_dict(tmp_path):
    import torchvision

    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.get_model("resnet18", weights=None, num_classes=5).state_dict(), weights)
    loaded = load_image_model("torchvision:resnet18", weights)
    assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 5)
    assert isinstance(loaded.layer, torch.nn.Conv2d)
    # The weights' own transforms: 256 then a 224 crop, ImageNet normalisation.
    from PIL import Image

    assert loaded.preprocess(Image.new("RGB", (300, 280))).shape == (3, 224, 224)
    # Five classes are not ImageNet's thousand: no category names are made up.
    assert loaded.categories is None
    with pytest.raises(InputError, match="needs --weights"):
        load_image_model("torchvision:resnet18")
    with pytest.raises(InputError, match="has no model 'resnet7'"):
        load_image_model("torchvision:resnet7", weights)
    torch.save({"fc.weight": torch.zeros(5, 3)}, tmp_path / "wrong.pt")
    with pytest.raises(InputError, match="does not fit torchvision:resnet18"):
        load_image_model("torchvision:resnet18", tmp_path / "wrong.pt")
    with pytest.raises(FileNotFoundError, match="no file"):
        load_image_model(str(tmp_path / "none.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a TorchScript file"):
        load_image_model(str(tmp_path / "junk.pt"))


def test_image_files_lists_folders_and_files(image_folder, tmp_path):
    _, photos = image_folder
    assert [p.name for p in image_files([photos])] == ["broken.jpg", "p0.png", "p1.png", "p2.png"]
    assert image_files([photos / "p2.png"]) == [photos / "p2.png"]
    with pytest.raises(InputError, match="no photos"):
        image_files([tmp_path])


def test_photos_are_read_as_a_viewer_shows_them(tmp_path):
    # A 16-bit grey photo (PIL's convert("RGB") clips it at 255: all white) and a photo
    # stored sideways with an EXIF orientation (a phone's portrait) give the model what
    # their 8-bit, upright versions give.
    from PIL import Image

    from captum_maskopt.vision.files import read_image
    from captum_maskopt.vision.models import preprocess

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(40, 60), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    torch.testing.assert_close(
        read_image(tmp_path / "grey16.png", preprocess), read_image(tmp_path / "grey8.png", preprocess)
    )
    upright = rng.integers(0, 256, size=(60, 40, 3), dtype=np.uint8)
    Image.fromarray(upright).save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    Image.fromarray(np.rot90(upright).copy()).save(tmp_path / "sideways.png", exif=exif)
    torch.testing.assert_close(
        read_image(tmp_path / "sideways.png", preprocess), read_image(tmp_path / "upright.png", preprocess)
    )


def test_explain_image_command_writes_rows_masks_and_overlays(image_folder, tmp_path, capsys):
    model_file, photos = image_folder
    out, overlays = tmp_path / "out.jsonl", tmp_path / "overlays"
    command = ["explain", "image", "--model", str(model_file), "--images", str(photos), "--output", str(out),
               "--overlays", str(overlays), *SMALL, "--mask-setting", "n_steps=5", "--quiet"]
    assert main(command) == 0
    rows = read_rows(out)
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["error"].startswith("cannot read broken.jpg")
    for row in rows[1:]:
        assert row["error"] is None and row["method"] == "MaskOptimization"
        mask = np.load(row["mask"])
        assert mask.shape == (32, 32) and mask.dtype == np.float32 and np.isfinite(mask).all()
        assert (overlays / row["overlay"].split("/")[-1]).exists()
        assert row["settings"]["n_steps"] == 5 and 0 < row["target_probability"] <= 1
    # Run again: every row is done, nothing is explained twice.
    main(command)
    assert "resuming" in capsys.readouterr().err
    assert [row["id"] for row in read_rows(out)] == [0, 1, 2, 3]


def test_explain_image_with_a_peer_and_a_fixed_target(image_folder, tmp_path):
    model_file, photos = image_folder
    out = tmp_path / "out.jsonl"
    main(["explain", "image", "--model", str(model_file), "--images", str(photos / "p0.png"),
          "--output", str(out), *SMALL, "--method", "IntegratedGradients", "--target", "2", "--quiet"])
    [row] = read_rows(out)
    assert row["method"] == "IntegratedGradients" and row["target"] == 2
    with pytest.raises(SystemExit, match="out of range for 3 classes"):
        main(["explain", "image", "--model", str(model_file), "--images", str(photos / "p0.png"),
              "--output", str(tmp_path / "o2.jsonl"), *SMALL, "--target", "7", "--quiet"])
    with pytest.raises(SystemExit, match="LayerGradCam needs a convolution layer"):
        main(["explain", "image", "--model", str(model_file), "--images", str(photos / "p0.png"),
              "--output", str(tmp_path / "o3.jsonl"), *SMALL, "--method", "LayerGradCam", "--quiet"])


def test_compare_image_on_your_model_and_photos_with_quantus(image_folder, tmp_path, capsys):
    pytest.importorskip("quantus")
    model_file, photos = image_folder
    out = tmp_path / "results.json"
    main(["compare", "image", "--model", str(model_file), "--images", str(photos / "p0.png"), str(photos / "p2.png"),
          *SMALL, "--methods", "MaskOptimization,IntegratedGradients", "--mask-steps", "5",
          "--infidelity-samples", "0", "--sensitivity-samples", "0", "--quantus", "--json", str(out), "--quiet"])
    results = json.loads(out.read_text())
    for method in ("MaskOptimization", "IntegratedGradients"):
        computed = set(results["methods"][method]) | set(results["quantus_not_computed"].get(method, {}))
        assert {"quantus_FaithfulnessCorrelation", "quantus_PixelFlipping", "quantus_MaxSensitivity"} <= computed
    assert "quantus_PixelFlipping" in capsys.readouterr().out


def test_quantus_metrics_accept_our_explain_func_on_the_packaged_model():
    quantus = pytest.importorskip("quantus")
    pytest.importorskip("efficientnet_lite_pytorch")
    from captum_maskopt.vision.data import load_photos
    from captum_maskopt.vision.models import load_efficientnet_lite0, preprocess
    from captum_maskopt.vision.quantus_metrics import explain_func, quantus_scores

    model = load_efficientnet_lite0()
    images = torch.stack([preprocess(photo.image) for photo in load_photos()[:1]])
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    kwargs = {"method": "MaskOptimization", "mask_options": {"n_steps": 10}}
    maps = explain_func(model, images.numpy(), targets.numpy(), **kwargs)
    assert maps.shape == (1, 1, 224, 224) and maps.dtype == np.float32
    # Quantus's own metric objects, called as their docs show, on our explain_func.
    np.random.seed(0)
    correlation = quantus.FaithfulnessCorrelation(nr_runs=8, subset_size=784, disable_warnings=True,
                                                  display_progressbar=False)(
        model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=maps,
        explain_func=explain_func, explain_func_kwargs=kwargs, device="cpu")
    assert len(correlation) == 1 and np.isfinite(correlation[0])
    scores, refused = quantus_scores(model, images, targets, ["MaskOptimization", "IntegratedGradients"],
                                     mask_options={"n_steps": 10}, sensitivity_samples=1)
    for method in ("MaskOptimization", "IntegratedGradients"):
        assert set(scores[method]) | set(refused.get(method, {})) == {
            "quantus_FaithfulnessCorrelation", "quantus_PixelFlipping", "quantus_MaxSensitivity"}
        assert all(np.isfinite(value) for value in scores[method].values())
    # A pixel-flipping area is a mean probability: in [0, 1].
    assert 0 <= scores["MaskOptimization"]["quantus_PixelFlipping"] <= 1
