"""Receptive-field probe: the identity block reaches exactly the backbone's window,
a local block a slightly larger one, a global block the whole image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlbench.blocks import list_blocks
from nlbench.probes.network import backbone_receptive_field, build_probe_net
from nlbench.probes.receptive_field import receptive_field_probe, save_heatmap


def _window(centre: tuple[int, int], size: int, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    half = size // 2
    mask[centre[0] - half : centre[0] + half + 1, centre[1] - half : centre[1] + half + 1] = True
    return mask


def test_identity_reaches_exactly_the_backbone_receptive_field() -> None:
    rf = backbone_receptive_field(1).size
    result = receptive_field_probe("identity", seed=0)
    window = _window(result.centre, rf)
    assert result.centre == (16, 16) and result.backbone_rf == rf
    assert not (result.reached & ~window).any(), "nothing outside the stem's 7×7 window"
    assert result.reached[window].mean() > 0.8
    assert result.fraction_reached <= rf * rf / 1024
    assert result.reach_radius == rf // 2
    assert result.erf_radius <= (rf // 2) * np.sqrt(2)


def test_local_block_reaches_a_small_window_only() -> None:
    rf = backbone_receptive_field(1)
    result = receptive_field_probe("local", seed=0)
    # a 3×3 conv on the stride-2 feature map widens the window by 2·2 pixels
    wider = rf.size + 2 * rf.stride
    assert not (result.reached & ~_window(result.centre, wider)).any()
    assert (result.reached & ~_window(result.centre, rf.size)).any(), "the block adds reach"
    assert result.fraction_reached <= wider * wider / 1024 < 0.15


def test_features_target_and_trained_model_path() -> None:
    net = build_probe_net("local", in_channels=1, num_classes=2, channels=32, image_size=32)
    before = [p.detach().clone() for p in net.parameters()]
    result = receptive_field_probe("local", model=net, target="features")
    # an untouched fresh local block is the identity: the backbone window again
    assert not (result.reached & ~_window(result.centre, 7)).any()
    assert all((a == b).all() for a, b in zip(before, net.parameters())), "the model is not modified"
    with pytest.raises(ValueError, match="target"):
        receptive_field_probe("identity", target="logits")


@pytest.mark.skipif("nl" not in list_blocks(), reason="the 'nl' block is not registered yet")
def test_nonlocal_block_reaches_every_position() -> None:
    result = receptive_field_probe("nl", seed=0)
    assert result.fraction_reached > 0.95
    assert result.erf_radius > 8


def test_heatmap_png_is_written(tmp_path: Path) -> None:
    result = receptive_field_probe("identity")
    path = save_heatmap(result, tmp_path / "rf" / "identity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.to_record()["fraction_reached"] == result.fraction_reached
