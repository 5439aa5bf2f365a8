"""Would instruction counts make a steadier time tier here? Counts a block's forward
under valgrind's callgrind (``torch.utils.benchmark.Timer.collect_callgrind``: setup
excluded, 1 thread) several times, in separate valgrind processes, and prints the
counts, their spread and what the collection cost in wall time. Run on a quiet machine:

    .venv/bin/python benchmarks/callgrind_probe.py --blocks local,nl,srl_fft --size 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

SETUP = """
import torch
from nlbench.case import Case
torch.set_num_threads(1)
case = Case({block!r}, {channels}, {size}, {size})
module = case.build().eval()
x = case.make_input()
torch.set_grad_enabled(False)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", default="local,nl,srl_fft")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="separate valgrind processes per block")
    parser.add_argument("--number", type=int, default=5, help="forward calls counted per process")
    args = parser.parse_args()
    from torch.utils.benchmark import Timer

    found = {}
    for block in args.blocks.split(","):
        counts, walls = [], []
        for _ in range(args.repeats):
            timer = Timer("module(x)", setup=SETUP.format(block=block, channels=args.channels, size=args.size),
                          num_threads=1)
            start = time.perf_counter()
            stats = timer.collect_callgrind(number=args.number, repeats=1)[0]
            walls.append(time.perf_counter() - start)
            counts.append(stats.counts(denoise=True) / args.number)
        spread = (max(counts) - min(counts)) / statistics.median(counts)
        found[block] = {"instructions_per_call": counts, "relative_spread": spread, "wall_s": walls}
        print(f"{block}: {statistics.median(counts):,.0f} instructions per forward, spread {spread:.4%} "
              f"over {args.repeats} processes, {statistics.median(walls):.0f} s per collection", flush=True)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
