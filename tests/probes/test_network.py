"""The probe network: backbone geometry and shapes."""

from __future__ import annotations

import pytest
import torch

from nlbench.probes.network import backbone_receptive_field, build_probe_net, feature_size


def test_backbone_receptive_field_and_feature_size() -> None:
    assert backbone_receptive_field(1) == backbone_receptive_field()
    assert (backbone_receptive_field(1).size, backbone_receptive_field(1).stride) == (7, 2)
    assert (backbone_receptive_field(2).size, backbone_receptive_field(2).stride) == (11, 4)
    assert feature_size(32, 1) == 16 and feature_size(32, 2) == 8
    net = build_probe_net("identity", in_channels=1, num_classes=2, channels=32, image_size=32)
    assert net.block_output(torch.zeros(2, 1, 32, 32)).shape == (2, 32, 16, 16)
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(ValueError, match="stage"):
        backbone_receptive_field(3)
    with pytest.raises(ValueError, match="stage"):
        feature_size(32, 3)


def test_input_channels_and_classes_are_the_network_s() -> None:
    net = build_probe_net("identity", in_channels=3, num_classes=10, channels=8, image_size=32, stage=2)
    assert net.in_channels == 3 and net.stage == 2
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert net.block_output(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 8, 8)
