"""Every setting is defined once, in MaskOptimizationSettings: validation, docstrings,
the settings page's table and the CLI's names all come from its fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from captum_maskopt import LayerMaskOptimization, MaskOptimization
from captum_maskopt.settings import (
    PRESETS,
    SETTING_NAMES,
    MaskOptimizationSettings,
    resolve_settings,
    settings_table,
)

FIELDS = dataclasses.fields(MaskOptimizationSettings)
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_setting_has_a_doc_a_check_and_a_valid_default(field):
    assert field.metadata["doc"].strip()
    field.metadata["check"](field.name, field.default)  # the default passes its own check


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_an_invalid_value_is_refused_with_the_settings_name(field):
    with pytest.raises((ValueError, TypeError), match=rf"^{field.name} must be "):
        MaskOptimizationSettings(**{field.name: object() if field.name != "parametrization" else 3.5})


@pytest.mark.parametrize("method", [MaskOptimization.attribute, LayerMaskOptimization.attribute])
def test_the_docstrings_list_every_setting_with_its_default(method):
    doc = method.__doc__
    assert "{settings}" not in doc
    for field in FIELDS:
        default = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
        assert f"{field.name} (" in doc, field.name
        entry = doc[doc.index(f"{field.name} ("):]
        assert f"Default: {default}" in entry[: entry.index("Default:") + len(default) + 9]


def test_the_settings_page_shows_the_table_derived_from_the_fields(tmp_path):
    from conftest import load_script

    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    built = load_script("build_docs_tables").fill_markers(page, tmp_path)
    assert settings_table() in built and "settings-table" not in built
    assert len(settings_table().splitlines()) == len(FIELDS) + 2
    for field in FIELDS:
        assert f"| `{field.name}` |" in settings_table()


def test_unknown_keywords_are_refused_naming_the_settings(mlp):
    x = torch.randn(2, 8)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'learnin_rate'.*learning_rate"):
        MaskOptimization(mlp).attribute(x, target=0, learnin_rate=0.1)


def test_a_settings_object_a_preset_and_keywords_are_one_thing(mlp):
    x = torch.randn(3, 8)
    method = MaskOptimization(mlp)
    by_keywords = method.attribute(x, target=1, n_steps=12, learning_rate=0.05, path_average=True)
    chosen = MaskOptimizationSettings(n_steps=12, learning_rate=0.05, path_average=True)
    assert torch.equal(method.attribute(x, target=1, settings=chosen), by_keywords)
    # Keywords and n_steps override single fields of a settings object.
    base = MaskOptimizationSettings(learning_rate=0.05, path_average=True)
    assert torch.equal(method.attribute(x, target=1, n_steps=12, settings=base), by_keywords)
    paper = method.attribute(x, target=1, settings="paper", n_steps=12)
    assert torch.equal(paper, method.attribute(x, target=1, settings=PRESETS["paper"], n_steps=12))
    assert not torch.equal(paper, method.attribute(x, target=1, n_steps=12))


def test_n_steps_none_means_the_settings_value():
    assert resolve_settings(None, n_steps=None).n_steps == MaskOptimizationSettings().n_steps
    assert resolve_settings("paper", n_steps=None).n_steps == PRESETS["paper"].n_steps
    assert resolve_settings("paper", n_steps=7).n_steps == 7


@pytest.mark.parametrize("settings, error", [("papers", ValueError), (3, TypeError)])
def test_unknown_presets_are_refused(settings, error):
    with pytest.raises(error, match="settings must be"):
        resolve_settings(settings)


def test_the_cli_takes_the_settings_names_from_the_fields():
    from captum_maskopt.cli import _mask_settings

    import json

    defaults = MaskOptimizationSettings().as_dict()
    pairs = [f"{name}={json.dumps(value)}" for name, value in defaults.items()]
    assert list(_mask_settings(pairs)) == list(SETTING_NAMES)
    # JSON has no tuples: the settings object makes the list of budgets a tuple again.
    assert MaskOptimizationSettings(**_mask_settings(pairs)).as_dict() == defaults
    with pytest.raises(SystemExit, match="--mask-setting"):
        _mask_settings(["internal_batch_size=2"])
    # A value is checked when the option is read, by the field's own check.
    with pytest.raises(SystemExit, match="--mask-setting: n_steps must be an integer >= 1, got 0"):
        _mask_settings(["n_steps=0"])


@pytest.mark.parametrize("grid, expected", [((224, 224), 8), ((64, 80), 8), ((32, 32), 4), ((14, 14), 1), ((3, 40), 1)])
def test_the_default_cell_size_keeps_eight_cells_per_side(grid, expected):
    assert MaskOptimizationSettings().cell_size_for(grid) == expected
    assert MaskOptimizationSettings(mask_cell_size=5).cell_size_for(grid) == 5


def test_target_kept_fraction_takes_one_share_or_a_tuple_of_them():
    assert MaskOptimizationSettings(target_kept_fraction=0.2).target_kept_fraction == 0.2
    assert MaskOptimizationSettings(target_kept_fraction=[0.05, 0.5]).target_kept_fraction == (0.05, 0.5)
    for bad in ([], (0.1, 1.5), (0.0,), "0.1"):
        with pytest.raises(ValueError, match="target_kept_fraction must be None, a number in"):
            MaskOptimizationSettings(target_kept_fraction=bad)


class _Tokens(torch.nn.Module):
    """(N, T, D) -> logits, order-sensitive."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(6 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(x).flatten(1))


def test_without_settings_images_get_the_image_preset_and_the_rest_the_defaults(cnn):
    images = torch.rand(2, 3, 16, 16)
    method = MaskOptimization(cnn)
    plain = method.attribute(images, target=0, n_steps=6)
    assert torch.equal(plain, method.attribute(images, target=0, n_steps=6, settings="image"))
    assert not torch.allclose(plain, method.attribute(images, target=0, n_steps=6, settings="default"))
    # With a feature_mask the groups are not the pixel grid: the defaults apply.
    cells = (torch.arange(16).view(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)).expand(1, 3, 16, 16)
    grouped = method.attribute(images, target=0, n_steps=6, feature_mask=cells)
    assert torch.equal(grouped, method.attribute(images, target=0, n_steps=6, feature_mask=cells, settings="default"))
    tokens = torch.randn(3, 6, 4)
    sequence = MaskOptimization(_Tokens())
    assert torch.equal(sequence.attribute(tokens, target=1, n_steps=6),
                       sequence.attribute(tokens, target=1, n_steps=6, settings="default"))
    # A keyword overrides the preset the input chose.
    _, record = method.attribute(images, target=0, n_steps=3, return_record=True)
    assert (record.steps <= 3).all()


def test_auto_gives_tokens_free_logits_and_paper_the_gaussian_kernels():
    tokens = torch.randn(3, 6, 4)
    method = MaskOptimization(_Tokens())
    call = {"target": 1, "n_steps": 6}
    assert torch.equal(method.attribute(tokens, parametrization="auto", **call),
                       method.attribute(tokens, parametrization="logits", **call))
    assert torch.equal(method.attribute(tokens, parametrization="paper", **call),
                       method.attribute(tokens, parametrization="gaussian1d", **call))
    assert PRESETS["paper"].parametrization == "paper"


def test_the_docstrings_and_the_table_give_the_image_defaults_where_they_differ():
    table = settings_table()
    steps = f"{PRESETS['default'].n_steps} (images: {PRESETS['image'].n_steps})"
    assert PRESETS["default"].n_steps != PRESETS["image"].n_steps
    assert f"`{steps}`" in table
    assert '`"hinge" (images: "log")`' in table
    assert "`0.03`" in table  # noise_std: the same for images, one value
    assert f"Default: {steps}" in " ".join(MaskOptimization.attribute.__doc__.split())


def test_tie_break_auto_resolves_by_the_number_of_groups():
    from captum_maskopt.settings import MAX_REMOVAL_GROUPS

    auto = MaskOptimizationSettings()
    assert auto.tie_break_for(MAX_REMOVAL_GROUPS) == "bands"
    assert auto.tie_break_for(MAX_REMOVAL_GROUPS + 1) == "gradient"
    assert MaskOptimizationSettings(tie_break="removal").tie_break_for(10**6) == "removal"
    assert PRESETS["image"].tie_break_for(10) == "path"
