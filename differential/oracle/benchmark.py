"""Oracle reliability benchmark: ``python -m differential.oracle.benchmark``.

Runs the protocol of ``shared/docs/oracle.md`` with the real k-diffusion samplers (and
A1111's DDIM) and prints, for each sampler and step count, the paired reliability score R
with its bootstrap interval for: plain img2img's ideal curve, a binary mask at 0.5, and
differential diffusion with each blend variant; the paired difference to the binary mask
and the correlation of each trend with the ideal curve. ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..geometry import area_downsample
from ..schedule import img2img_steps, release_steps
from . import reliability as rel
from .codec import PoolCodec
from .images import REFERENCE_PHOTOS, TEST_PHOTOS, random_patches
from .mixture import GaussianMixtureDenoiser
from .runner import SAMPLERS, VARIANTS, Job, OracleImg2Img

DEFAULT_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M", "Heun", "DDIM")


@dataclass
class Setup:
    """The oracle setting (defaults: oracle.md's calibration setup)."""

    tests: int = 172
    references: int = 256
    patch: int = 64
    factor: int = 4
    std: float = 1.0
    strength: float = 1.0
    bootstrap: int = 2000
    seed: int = 0
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    steps: tuple[int, ...] = (30, 8)
    variants: tuple[str, ...] = VARIANTS
    extra: dict = field(default_factory=dict)


class Protocol:
    """Data, model and maps of one oracle setting; :meth:`measure` runs one sampler."""

    def __init__(self, setup: Setup):
        self.setup = setup
        references = random_patches(REFERENCE_PHOTOS, setup.references, setup.patch, seed=setup.seed)
        self.images = random_patches(TEST_PHOTOS, setup.tests, setup.patch, seed=setup.seed + 1).to(torch.float64)
        self.codec = PoolCodec(setup.factor, references)
        self.denoiser = GaussianMixtureDenoiser(self.codec.encode(references), setup.std)
        self.runner = OracleImg2Img(self.denoiser)
        self.init = self.codec.encode(self.images)
        generator = torch.Generator().manual_seed(setup.seed + 2)
        self.noise = torch.randn(self.init.shape, generator=generator, dtype=torch.float64)
        grid = self.init.shape[-1]
        gradient = rel.horizontal_gradient(setup.patch, setup.patch)
        self.latent_map = torch.from_numpy(area_downsample(gradient, grid, grid)).to(torch.float64)
        self.binary_map = (self.latent_map >= 0.5).to(torch.float64)

    def _norms(self, latents: torch.Tensor) -> np.ndarray:
        return rel.column_norms(self.codec.decode(latents, self.images), self.images)

    def _release(self, job: Job, latent_map: torch.Tensor) -> torch.Tensor:
        total, t_enc = img2img_steps(job.steps, job.strength, job.fix_steps)
        return release_steps(job.strength * latent_map, total, t_enc)[None, None]

    def run(self, job: Job, latent_map: torch.Tensor | None = None, variant: str = "after") -> torch.Tensor:
        release = None if latent_map is None else self._release(job, latent_map)
        return self.runner.run(job, self.init, self.noise, release, variant=variant, seed=self.setup.seed + 3)

    def per_column(self, job: Job, run_at: Callable[[float], torch.Tensor]) -> torch.Tensor:
        """Latents whose every column comes from its own run: ``run_at(s)`` at the column's strength
        ``s = D * map`` (one run per distinct strength; strength 0 is the init latent)."""
        out = torch.empty_like(self.init)
        cache: dict[float, torch.Tensor] = {}
        for column, strength in enumerate((job.strength * self.latent_map[0]).tolist()):
            if strength not in cache:
                cache[strength] = self.init if strength <= 0 else run_at(strength)
            out[..., column] = cache[strength][..., column]
        return out

    def ideal(self, job: Job) -> torch.Tensor:
        """Plain img2img at each latent column's own strength, column by column."""
        return self.per_column(job, lambda strength: self.run(Job(job.sampler, job.steps, strength, job.fix_steps)))

    def measure(self, sampler: str, steps: int) -> dict:
        """R, intervals, paired differences and ideal-curve correlations for one sampler."""
        job = Job(sampler, steps, self.setup.strength)
        allchange = self._norms(self.run(job))
        norms = {"ideal": self._norms(self.ideal(job)), "binary": self._norms(self.run(job, self.binary_map))}
        for variant in self.setup.variants:
            norms[variant] = self._norms(self.run(job, self.latent_map, variant))
        weights = rel.bootstrap_weights(self.setup.tests, self.setup.bootstrap, self.setup.seed + 4)
        ideal_trend = rel.trend(norms["ideal"], allchange)
        binary_boot = rel.reliability(norms["binary"], allchange, weights)
        results = {}
        for method, values in norms.items():
            boot = rel.reliability(values, allchange, weights)
            method_trend = rel.trend(values, allchange)
            point = float(rel.reliability(values, allchange))
            results[method] = {
                "R": point,
                "R_interval": rel.interval(boot),
                "minus_binary": point - float(rel.reliability(norms["binary"], allchange)),
                "minus_binary_interval": rel.interval(boot - binary_boot),
                "corr_ideal": float(rel.pearson(method_trend, ideal_trend)),
                "trend": method_trend.tolist(),
            }
        return results


def run_benchmark(setup: Setup, log=print) -> dict:
    """Measure every sampler and step count of ``setup``; returns the JSON-ready report."""
    protocol = Protocol(setup)
    report = {"setup": {k: v for k, v in setup.__dict__.items() if k != "extra"}, "results": {}}
    for steps in setup.steps:
        for sampler in setup.samplers:
            started = time.perf_counter()
            report["results"].setdefault(str(steps), {})[sampler] = protocol.measure(sampler, steps)
            log(f"  measured {sampler}, {steps} steps in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return report


def format_table(report: dict) -> str:
    """Markdown table: R [95% interval] per method, and trend correlation with the ideal."""
    variants = [v for v in report["setup"]["variants"]]
    head = (
        ["steps", "sampler", "binary 0.5"]
        + [f"DD {v}" for v in variants]
        + ["ideal", "DD after - binary", "corr(after, ideal)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for steps, samplers in report["results"].items():
        for sampler, res in samplers.items():

            def cell(method: str, res: dict = res) -> str:
                low, high = res[method]["R_interval"]
                return f"{res[method]['R']:.3f} [{low:.3f}, {high:.3f}]"

            low, high = res["after"]["minus_binary_interval"] if "after" in res else (float("nan"),) * 2
            diff = f"{res['after']['minus_binary']:+.3f} [{low:+.3f}, {high:+.3f}]" if "after" in res else "-"
            corr = f"{res['after']['corr_ideal']:.4f}" if "after" in res else "-"
            row = [steps, sampler, cell("binary")] + [cell(v) for v in variants] + [cell("ideal"), diff, corr]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--steps", nargs="+", type=int, default=[30, 8])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--tests", type=int, default=172, help="test patches (edited images)")
    parser.add_argument("--references", type=int, default=256, help="mixture components")
    parser.add_argument("--std", type=float, default=1.0, help="mixture component std s (latent units)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 for repeatable timing)")
    parser.add_argument("--json", default="oracle-benchmark.json", help="where to write the report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    setup = Setup(
        tests=args.tests,
        references=args.references,
        std=args.std,
        bootstrap=args.bootstrap,
        seed=args.seed,
        samplers=tuple(args.samplers),
        steps=tuple(args.steps),
        variants=tuple(args.variants),
    )
    started = time.perf_counter()
    report = run_benchmark(setup)
    report["seconds"] = time.perf_counter() - started
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=1)
    print(
        f"Oracle reliability, s = {setup.std}, D = {setup.strength}, Karras (DDIM: A1111 timesteps), "
        f"{setup.tests} test patches, {setup.references} references; R [95% bootstrap interval]"
    )
    print(format_table(report))
    print(f"wrote {args.json} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
