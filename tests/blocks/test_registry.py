"""The registry's public API: listing, wildcards, errors, and users' own blocks."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from nlbench.blocks import (
    BlockError,
    ClaimedComplexity,
    create_block,
    get_spec,
    list_blocks,
    load_plugin,
    register_block,
    registry,
    resolve_blocks,
    unregister_block,
)


def test_wildcards_select_families() -> None:
    assert list_blocks("srl_*") == ["srl_fft", "srl_lo"]
    assert list_blocks("nl,srl_*") == ["nl", "srl_fft", "srl_lo"]
    assert list_blocks("*") == list_blocks()
    assert list_blocks("nothing*") == []


def test_resolve_keeps_order_and_expands() -> None:
    assert resolve_blocks("srl_lo,nl,srl_*") == ["srl_lo", "nl", "srl_fft"]
    assert resolve_blocks(["all"]) == list_blocks()


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(BlockError, match=r"unknown block 'srl_ftt'.*Did you mean 'srl_fft'"):
        get_spec("srl_ftt")
    with pytest.raises(BlockError, match="Did you mean"):
        resolve_blocks("cgn")


def test_unknown_option_names_it_and_the_valid_ones() -> None:
    with pytest.raises(BlockError, match=r"no option 'modee'.*valid options: .*mode.*sub_sample"):
        create_block("nl", 16, modee="dot_product")


def test_missing_spatial_size_is_a_clear_error() -> None:
    with pytest.raises(BlockError, match="needs spatial_size"):
        create_block("srl_lo", 16)


def test_spec_is_frozen_and_has_machine_readable_claim() -> None:
    spec = get_spec("nl")
    assert spec.claimed.n_exponent == 2.0 and spec.claimed.c_exponent == 1.0
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.default_options["mode"] = "x"  # type: ignore[index]
    assert get_spec("srl_fft").claimed.n_log_power == 1


class _ScaledIdentity(nn.Module):
    def __init__(self, channels: int, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_user_block_registers_lists_and_builds() -> None:
    register_block(
        "test_user_scaled",
        family="user",
        paper="tests",
        claimed=ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0),
    )(_ScaledIdentity)
    try:
        assert dict(get_spec("test_user_scaled").default_options) == {"scale": 1.0}, "read from __init__"
        assert "test_user_scaled" in list_blocks("test_user_*")
        block = create_block("test_user_scaled", 4, scale=2.0)
        assert torch.equal(block(torch.ones(1, 4, 2, 2)), torch.full((1, 4, 2, 2), 2.0))
        with pytest.raises(BlockError, match="already registered"):
            register_block("nl", family="x", paper="x", claimed=ClaimedComplexity("O(1)", 0, 0))(_ScaledIdentity)
    finally:
        unregister_block("test_user_scaled")
    assert "test_user_scaled" not in list_blocks()


PLUGIN_SOURCE = textwrap.dedent(
    """
    from torch import nn
    from nlbench.blocks import ClaimedComplexity, register_block

    @register_block("{name}", family="user", paper="plugin test",
                    claimed=ClaimedComplexity("O(C·HW)", n_exponent=1.0, c_exponent=1.0))
    class PluginBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 1)

        def forward(self, x):
            return x + self.conv(x)
    """
)


def test_plugin_module_by_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "nlbench_test_plugin.py").write_text(PLUGIN_SOURCE.format(name="test_plugin_block"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_plugin("nlbench_test_plugin")
        assert "test_plugin_block" in list_blocks()
        assert get_spec("test_plugin_block").source == "nlbench_test_plugin"
    finally:
        unregister_block("test_plugin_block")
        sys.modules.pop("nlbench_test_plugin", None)


def test_missing_plugin_module_is_a_clear_error() -> None:
    with pytest.raises(BlockError, match="cannot load plugin module 'no_such_module_xyz'"):
        load_plugin("no_such_module_xyz")


def test_entry_point_group_is_loaded(tmp_path, monkeypatch) -> None:
    (tmp_path / "nlbench_test_ep.py").write_text(PLUGIN_SOURCE.format(name="test_ep_block"))
    dist = tmp_path / "nlbench_test_ep-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nlbench-test-ep\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nlbench.blocks]\ntest_ep = nlbench_test_ep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert "test_ep_block" in list_blocks()
    finally:
        unregister_block("test_ep_block")
        sys.modules.pop("nlbench_test_ep", None)
