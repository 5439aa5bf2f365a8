"""Exact alternative forms against the dense ones, and our blocks against reference
formulations: forward latency, same process, one thread, interleaved rounds.

    .venv/bin/python benchmarks/exact_forms.py [--sizes 32,64,96] [--rounds 7] [--out docs/exact-forms.json]

Every variant of a comparison is timed once per round, in an order that rotates from
round to round, so drift and a neighbour's load fall on all of them alike; a round's
time is the median of back-to-back calls lasting at least ``--min-time`` seconds, and a
comparison's ratio is the median over rounds of the per-round ratios (with its range).
Run it on a quiet machine: nothing else may be measuring or compiling meanwhile.

The A² and CGNL references follow the layout of their authors' code (A²: the MXNet
block's reshapes, softmaxes and two batched dots; CGNL: a loop over groups, the Taylor
terms stacked, two batched products); they take our weights, and their outputs are
checked equal to ours before timing. The CCNet reference is written here from the
approach of the authors' pure-PyTorch criss-cross attention (column and row energies as batched products over B·W and B·H,
the self position masked by adding a −inf diagonal, one softmax over the H + W
entries, aggregation by batched products); it takes its weights from our block, and
its output is checked equal to ours before timing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from nlbench.blocks import create_block
from nlbench.blocks.criss_cross import RCCABlock


class CCNetStyleCCA(nn.Module):
    """Criss-cross attention in the CCNet authors' pure-PyTorch layout, with our weights."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        self.query, self.key, self.value, self.gamma = ours.query, ours.key, ours.value, ours.gamma

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)
        q_h = q.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h).permute(0, 2, 1)
        q_w = q.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w).permute(0, 2, 1)
        k_h = k.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h)
        k_w = k.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w)
        v_h = v.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h)
        v_w = v.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w)
        minus_inf_diagonal = torch.diag(torch.full((h,), float("-inf"), device=x.device)).unsqueeze(0)
        energy_h = (torch.bmm(q_h, k_h) + minus_inf_diagonal).view(b, w, h, h).permute(0, 2, 1, 3)
        energy_w = torch.bmm(q_w, k_w).view(b, h, w, w)
        joint = torch.softmax(torch.cat([energy_h, energy_w], 3), dim=3)
        att_h = joint[:, :, :, 0:h].permute(0, 2, 1, 3).contiguous().view(b * w, h, h)
        att_w = joint[:, :, :, h:h + w].contiguous().view(b * h, w, w)
        out_h = torch.bmm(v_h, att_h.permute(0, 2, 1)).view(b, w, -1, h).permute(0, 2, 3, 1)
        out_w = torch.bmm(v_w, att_w.permute(0, 2, 1)).view(b, h, -1, w).permute(0, 2, 1, 3)
        return self.gamma * (out_h + out_w) + x


class CCNetStyleRCCA(nn.Module):
    """Our RCCA block with its attention step swapped for the CCNet-style one."""

    def __init__(self, ours: RCCABlock) -> None:
        super().__init__()
        self.ours, self.cca = ours, CCNetStyleCCA(ours.cca)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ours.conv_a(x)
        for _ in range(self.ours.recurrence):
            h = self.cca(h)
        return x + self.ours.conv_b(h)


class DoubleAttentionReference(nn.Module):
    """A² as the authors' code computes it (Chen et al.'s MXNet block): reshape each map to
    (B, c, N), softmax B over the positions and V over c_n, then two batched dots —
    written here with our weights."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        self.ours = ours

    def forward(self, x: Tensor) -> Tensor:
        o = self.ours
        b, _, h, w = x.shape
        a = o.conv_a(x).view(b, o.c_m, h * w)
        maps = torch.softmax(o.conv_b(x).view(b, o.c_n, h * w), dim=-1)
        vectors = torch.softmax(o.conv_v(x).view(b, o.c_n, h * w), dim=1)
        descriptors = torch.matmul(a, maps.permute(0, 2, 1))
        z = torch.matmul(descriptors, vectors).view(b, o.c_m, h, w)
        return x + o.norm(o.conv_out(z))


class CGNLReference(nn.Module):
    """CGNL as the authors' PyTorch code lays it out: a Python loop over the groups; per
    group the Taylor terms of θ and φ stacked into (B, P+1, L) and two batched products
    (att = Φ·g, then att·Θ) — written here with our weights and coefficients."""

    def __init__(self, ours: nn.Module) -> None:
        super().__init__()
        self.ours = ours

    def forward(self, x: Tensor) -> Tensor:
        from nlbench.blocks.cgnl import taylor_coefficients

        o = self.ours
        b, _, h, w = x.shape
        coefficients = taylor_coefficients(o.order, o.gamma)
        outs = []
        for t, p, g in zip(*(conv(x).chunk(o.groups, dim=1) for conv in (o.theta, o.phi, o.g))):
            c = t.shape[1]
            t, p, g = t.reshape(b, 1, c * h * w), p.reshape(b, 1, c * h * w), g.reshape(b, c * h * w, 1)
            t_taylor = torch.cat([t**k * alpha for k, alpha in enumerate(coefficients)], dim=1)
            p_taylor = torch.cat([p**k * alpha for k, alpha in enumerate(coefficients)], dim=1)
            att = torch.bmm(p_taylor, g)  # (B, P+1, 1)
            outs.append(torch.bmm(att.view(b, 1, len(coefficients)), t_taylor).view(b, c, h, w))
        return x + o.norm(o.conv_out(torch.cat(outs, dim=1)))


@dataclass(frozen=True)
class Comparison:
    """One candidate against one reference at one size: the median per-round ratio."""

    name: str
    candidate: str
    reference: str
    size: int
    candidate_ms: float
    reference_ms: float
    ratio: float
    ratio_low: float
    ratio_high: float
    rounds: int
    max_abs_difference: float


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def _pair_blocks(name: str, options: dict, impl: str | None, reference: tuple[str, dict] | None,
                 channels: int) -> tuple[nn.Module, nn.Module]:
    """(candidate, reference) sharing weights where they are the same block."""
    if reference is None:  # an impl against the same block's dense form
        dense = _randomised(create_block(name, channels, **options), 0)
        alternative = create_block(name, channels, impl=impl, **options).eval()
        alternative.load_state_dict(dense.state_dict())
        return alternative, dense
    ref_name, ref_options = reference
    return (_randomised(create_block(name, channels, **options), 0),
            _randomised(create_block(ref_name, channels, **ref_options), 0))


def _round_ms(fn: Callable[[], object], min_time_s: float) -> float:
    """Median per-call time of back-to-back calls lasting at least ``min_time_s``."""
    samples = []
    started = time.perf_counter()
    while time.perf_counter() - started < min_time_s or len(samples) < 3:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def compare(name: str, candidate: nn.Module, reference: nn.Module, label: tuple[str, str], size: int,
            channels: int, rounds: int, min_time_s: float, check_equal: bool) -> Comparison:
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (candidate(x) - reference(x)).abs().max().item() if check_equal else math.nan
        if check_equal and not difference < 1e-3:
            raise AssertionError(f"{name} at {size}: the candidate differs from the reference by {difference}")
        calls = {"candidate": lambda: candidate(x), "reference": lambda: reference(x)}
        for fn in calls.values():  # warm-up: allocations and first-call paths
            _round_ms(fn, min_time_s / 2)
        per_round: dict[str, list[float]] = {key: [] for key in calls}
        for index in range(rounds):
            order = list(calls) if index % 2 == 0 else list(reversed(calls))
            for key in order:
                per_round[key].append(_round_ms(calls[key], min_time_s))
    ratios = sorted(c / r for c, r in zip(per_round["candidate"], per_round["reference"]))
    return Comparison(name, label[0], label[1], size, statistics.median(per_round["candidate"]),
                      statistics.median(per_round["reference"]), statistics.median(ratios), ratios[0],
                      ratios[-1], rounds, difference)


# (name, block, options, impl, reference block or None for its own dense form, check equal)
COMPARISONS = [
    ("snl factorized / snl dense", "snl", {}, "factorized", None, True),
    ("nl dot_product factorized / dense", "nl", {"mode": "dot_product"}, "factorized", None, True),
    ("nl sdpa / nl dense", "nl", {}, "sdpa", None, True),
    ("ns sdpa / ns dense", "ns", {}, "sdpa", None, True),
    ("snl dense / nl dense", "snl", {}, None, ("nl", {}), False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="32,64,96")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of back-to-back calls per round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[Comparison] = []
    for size in sizes:
        for name, block, options, impl, reference, check in COMPARISONS:
            candidate, ref = _pair_blocks(block, options, impl, reference, args.channels)
            results.append(compare(name, candidate, ref, (f"{block} {impl or 'dense'}", reference[0] if reference
                                   else f"{block} dense"), size, args.channels, args.rounds, args.min_time, check))
            print(_line(results[-1]), flush=True)
        for name, block, reference in (("a2 (ours) / authors' layout", "a2", DoubleAttentionReference),
                                       ("cgnl (ours) / authors' layout", "cgnl", CGNLReference)):
            ours = _randomised(create_block(block, args.channels), 0)
            results.append(compare(name, ours, reference(ours).eval(), (block, "authors' layout"), size,
                                   args.channels, args.rounds, args.min_time, True))
            print(_line(results[-1]), flush=True)
        if size <= 64:
            ours = _randomised(create_block("rcca", args.channels), 0)
            with torch.no_grad():
                ours.cca.gamma.fill_(0.7)
            results.append(compare("rcca (ours) / CCNet-style", ours, CCNetStyleRCCA(ours), ("rcca", "ccnet-style"),
                                   size, args.channels, args.rounds, args.min_time, True))
            print(_line(results[-1]), flush=True)
    if args.out:
        payload = {"torch": torch.__version__, "threads": torch.get_num_threads(), "channels": args.channels,
                   "rounds": args.rounds, "min_time_s": args.min_time, "comparisons": [asdict(r) for r in results]}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")


def _line(r: Comparison) -> str:
    return (f"{r.name:<36} {r.size:>3}×{r.size:<3} {r.candidate_ms:9.2f} ms / {r.reference_ms:9.2f} ms = "
            f"{r.ratio:6.3f} [{r.ratio_low:.3f}, {r.ratio_high:.3f}]  max|Δ| {r.max_abs_difference:.1e}")


if __name__ == "__main__":
    main()
