"""The registry of non-local blocks and the public API to it.

Importing this package registers the built-in blocks (class definitions only: no
tensors are made until :func:`create_block` is called).
"""

from nlbench.blocks import registry
from nlbench.blocks.registry import (
    BlockError,
    BlockSpec,
    ClaimedComplexity,
    Implementation,
    create_block,
    get_spec,
    list_blocks,
    load_plugin,
    register_block,
    resolve_blocks,
    resolve_options,
    unregister_block,
)
from nlbench.blocks import baselines, cgnl, criss_cross, double_attention, nonlocal_block, snl, spectral_residual  # noqa: F401,E402  (registers)

__all__ = [
    "BlockError",
    "BlockSpec",
    "ClaimedComplexity",
    "Implementation",
    "create_block",
    "get_spec",
    "list_blocks",
    "load_plugin",
    "register_block",
    "resolve_blocks",
    "resolve_options",
    "unregister_block",
]
