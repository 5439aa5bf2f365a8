"""The CPU allocator a measuring worker runs with. glibc's malloc hands large blocks
to ``mmap`` and trims its heap on free, so a block that allocates big temporaries on
every call pays the kernel to fault fresh pages in every time — on this VM, half of
NL's time at 64×64 and up. A worker can keep freed memory instead (the steady state a
caching allocator gives), and back its heap with transparent huge pages; which
allocator a record was measured with is in its ``allocator`` column.
"""

from __future__ import annotations

import os
from pathlib import Path

#: glibc malloc tunables that keep freed memory for reuse: never return the heap's top
#: to the kernel (trim threshold 1 TiB) and never ``mmap`` a block (each mmap'd block
#: is page-faulted in afresh on every call and unmapped after it). Measured here: nl at
#: 64×64 took 0.104 s per forward with glibc's defaults, 0.049 s retaining (the rest was
#: the kernel faulting 128 MiB of N×N buffers in); at 128×128, 2.0 s against 0.96 s.
RETAIN_TUNABLES = "glibc.malloc.trim_threshold=1099511627776:glibc.malloc.mmap_max=0"
#: glibc (≥ 2.35) tunable that madvises the heap for transparent huge pages (2 MiB).
#: On a VM each 4 KiB fault is a trip to the host too: measured on 2026-12-02, a fresh
#: worker's first nl 128×128 forward+backward round faulted 1,048,620 pages in and took
#: 34 s; with huge pages 1,068 faults and 16–18 s, and the steady forward ran in 1.81 s
#: against 2.18–2.29 s (fewer TLB misses over the 1 GiB N×N buffers).
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
ALLOCATOR_DEFAULT = "glibc malloc, default tunables"
#: Where Linux says whether (and when) it backs memory with transparent huge pages.
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def worker_environment(retain_freed_memory: bool, huge_pages: bool) -> dict[str, str]:
    """Environment overrides for a measuring worker (GLIBC_TUNABLES must be set
    before the process starts; glibc reads it once)."""
    tunables = [RETAIN_TUNABLES] * retain_freed_memory + [HUGE_PAGES_TUNABLE] * huge_pages
    return {"GLIBC_TUNABLES": ":".join(tunables)} if tunables else {}


def transparent_huge_pages_mode(mode_file: Path | None = None) -> str | None:
    """The kernel's THP mode (``always``, ``madvise`` or ``never``: the bracketed word
    of ``mode_file``, by default :data:`THP_MODE_FILE`), or None where the kernel does
    not say."""
    try:
        text = (mode_file or THP_MODE_FILE).read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def describe_allocator() -> str:
    """The allocator this process runs with, as recorded beside each measurement: the
    glibc tunables it was started with and, where huge pages were asked for, whether
    the kernel grants them (mode ``never`` ignores the request)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if not tunables:
        return ALLOCATOR_DEFAULT
    description = f"glibc malloc, GLIBC_TUNABLES={tunables}"
    if HUGE_PAGES_TUNABLE in tunables.split(":"):
        description += f"; transparent huge pages: {transparent_huge_pages_mode() or 'not reported by the kernel'}"
    return description
