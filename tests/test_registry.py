"""Names find their objects through one kind of registry, with one error for an
unknown name."""

import pytest

from captum_maskopt.objective import OBJECTIVE_TERMS
from captum_maskopt.parametrizations import PARAMETRIZATIONS
from captum_maskopt.registry import Registry


def test_entries_keep_their_order_and_unknown_names_are_refused():
    registry: Registry[int] = Registry("colour")
    registry.register("red")(1)
    registry.register("blue")(2)
    assert registry.names == ("red", "blue") and list(registry) == ["red", "blue"]
    assert registry["blue"] == 2 and "red" in registry and len(registry) == 2
    with pytest.raises(ValueError, match="unknown colour 'green'; choose from red, blue"):
        registry["green"]
    with pytest.raises(ValueError, match="colour 'red' is registered already"):
        registry.register("red")(3)


def test_the_packages_registries():
    assert PARAMETRIZATIONS.names == ("logits", "gaussian1d", "smooth2d")
    assert OBJECTIVE_TERMS.names == (
        "sufficiency", "comprehensiveness", "compactness", "smoothness", "total_variation",
    )


def test_text_and_image_peers_are_registries_of_one_shape():
    pytest.importorskip("transformers")
    pytest.importorskip("torchvision")
    from captum_maskopt.text.peers import PEERS as TEXT_PEERS
    from captum_maskopt.vision.peers import PEERS as IMAGE_PEERS

    for peers in (TEXT_PEERS, IMAGE_PEERS):
        assert isinstance(peers, Registry) and "MaskOptimization" in peers
        assert all(callable(peers[name]) for name in peers)
