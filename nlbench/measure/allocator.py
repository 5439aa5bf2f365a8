"""The CPU allocator a measuring worker runs with. glibc's malloc hands large blocks
to ``mmap`` and trims its heap on free, so a block that allocates big temporaries on
every call pays the kernel to fault fresh pages in every time — on this VM, half of
NL's time at 64×64 and up. A worker can keep freed memory instead (the steady state a
caching allocator gives); which one a record was measured with is in its
``allocator`` column.
"""

from __future__ import annotations

import os

#: glibc malloc tunables that keep freed memory for reuse: never return the heap's top
#: to the kernel (trim threshold 1 TiB) and never ``mmap`` a block (each mmap'd block
#: is page-faulted in afresh on every call and unmapped after it). Measured here: nl at
#: 64×64 took 0.104 s per forward with glibc's defaults, 0.049 s retaining (the rest was
#: the kernel faulting 128 MiB of N×N buffers in); at 128×128, 2.0 s against 0.96 s.
RETAIN_TUNABLES = "glibc.malloc.trim_threshold=1099511627776:glibc.malloc.mmap_max=0"
ALLOCATOR_DEFAULT = "glibc malloc, default tunables"
ALLOCATOR_RETAIN = f"glibc malloc, GLIBC_TUNABLES={RETAIN_TUNABLES}"


def worker_environment(retain_freed_memory: bool) -> dict[str, str]:
    """Environment overrides for a measuring worker (GLIBC_TUNABLES must be set
    before the process starts; glibc reads it once)."""
    return {"GLIBC_TUNABLES": RETAIN_TUNABLES} if retain_freed_memory else {}


def describe_allocator() -> str:
    """The allocator this process runs with, as recorded beside each measurement."""
    return ALLOCATOR_RETAIN if os.environ.get("GLIBC_TUNABLES") == RETAIN_TUNABLES else ALLOCATOR_DEFAULT
