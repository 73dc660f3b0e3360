"""Sub-step strength on the oracle: ``python -m differential.oracle.substep_benchmark``.

For each schedule, step count, Denoising strength ``D`` and sampler, the horizontal gradient map
of ``shared/docs/oracle.md`` is run with the whole-step rule and with sub-step strength, and
compared with the **continuous-strength ideal**: for a column of strength ``s``, plain img2img
started exactly at the continuous level of ``s`` (the full schedule interpolated log-linearly
at position ``total - 1 - s * total``), one extra first step from there, then the schedule's
remaining levels. Printed per method: the reliability ``R``, the correlation of its paired trend
with the ideal's, and **banding**: the largest jump of the paired trend between neighbouring
latent columns divided by the trend's range (a staircase of ``k`` levels is about ``1 / k``).

Where ``D * steps`` is not whole, the strongest columns (above ``t_enc / steps``) start above the
job's first level in the ideal: no method that keeps an all-white map equal to plain img2img at
``D`` can do that. The **reachable ideal** starts those columns at the job's first level (the rest
as the ideal); the correlation with it is printed too (the ideal's otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..schedule import img2img_steps
from ..substep import MULTISTEP_FUNCTIONS, SUBSTEP_FUNCTIONS, substep_release
from . import reliability as rel
from .benchmark import Protocol, Setup
from .runner import K_SAMPLERS, Job
from .schedules import SCHEDULERS, sampler_sigmas

SAMPLERS = ("Euler", "Euler a", "Heun", "DPM++ 2M", "DPM++ SDE", "LCM")
#: Measured on Karras only, to decide which samplers get sub-step strength by default.
EXTRA_SAMPLERS = ("LMS", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M SDE", "DPM++ 3M SDE")
METHODS = ("whole", "substep", "ideal")
UNIFORM_SAMPLERS = ("Euler", "Heun", "DPM++ 2M", "Euler a")


@dataclass(frozen=True)
class Case:
    schedule: str
    steps: int
    strength: float
    sampler: str

    @property
    def job(self) -> Job:
        return Job(self.sampler, self.steps, self.strength, schedule=self.schedule)


def banding(trend: np.ndarray) -> float:
    """Largest jump between neighbouring columns over the trend's range (0 = smooth)."""
    span = float(trend.max() - trend.min())
    return float(np.abs(np.diff(trend)).max() / span) if span > 0 else 0.0


def column_reliability(trend: np.ndarray) -> float:
    """The paper's reliability R of a paired trend: its correlation with the column index."""
    return float(rel.pearson(trend, np.arange(trend.shape[-1], dtype=np.float64)))


def continuous_levels(full: torch.Tensor, strength: float, first: int = 0) -> torch.Tensor:
    """Levels of plain img2img started at the continuous level of ``strength``.

    ``full`` is the full schedule (``total + 1`` levels ending at 0). Position
    ``p = total - 1 - strength * total`` (at least ``first``: nothing starts above the schedule's
    top, or above the job's first level for the reachable ideal);
    the first level is interpolated log-linearly between ``full[floor(p)]`` and ``full[ceil(p)]``,
    then ``full[ceil(p):]``.
    """
    total = len(full) - 1
    position = max(total - 1 - strength * total, float(first))
    upper, lower = math.floor(position), math.ceil(position)
    if upper == lower:
        return full[upper:]
    fraction = lower - position  # 1 at the upper level, 0 at the lower one
    start = full[upper].double() ** fraction * full[lower].double() ** (1.0 - fraction)
    return torch.cat([start.reshape(1).to(full.dtype), full[lower:]])


class SubstepProtocol(Protocol):
    """:class:`Protocol` with the whole-step rule, sub-step strength and the continuous ideal."""

    def job_latents(self, case: Case, substep: bool) -> torch.Tensor:
        job = case.job
        total, t_enc, levels = self.runner.schedule(job)
        multistep = K_SAMPLERS[job.sampler][0] in MULTISTEP_FUNCTIONS
        release, weight = substep_release(job.strength * self.latent_map, total, t_enc, levels, multistep)
        return self.runner.run(
            job,
            self.init,
            self.noise,
            release[None, None],
            seed=self.setup.seed + 3,
            boundary_weight=weight[None, None] if substep else None,
        )

    def continuous_ideal(self, case: Case, reachable: bool = False) -> torch.Tensor:
        job = case.job
        total, t_enc = img2img_steps(job.steps, job.strength)
        first = total - 1 - t_enc if reachable else 0
        full = sampler_sigmas(job.sampler, case.schedule, total, self.runner.alphas_cumprod)

        def run_at(strength: float) -> torch.Tensor:
            levels = continuous_levels(full, strength, first)
            return self.runner.run_levels(job.sampler, levels, self.init, self.noise, seed=self.setup.seed + 3)

        return self.per_column(job, run_at)

    def measure_case(self, case: Case) -> dict:
        allchange = self._norms(self.run(case.job))
        latents = {
            "whole": self.job_latents(case, substep=False),
            "substep": self.job_latents(case, substep=True),
            "ideal": self.continuous_ideal(case),
        }
        total, t_enc = img2img_steps(case.steps, case.strength)
        if abs(case.strength * total - t_enc) > 1e-9:  # the strongest columns are out of the job's reach
            latents["reachable"] = self.continuous_ideal(case, reachable=True)
        trends = {name: rel.trend(self._norms(value), allchange) for name, value in latents.items()}
        reachable = trends.get("reachable", trends["ideal"])
        return {
            name: {
                "R": column_reliability(trend),
                "corr_ideal": float(rel.pearson(trend, trends["ideal"])),
                "corr_reachable": float(rel.pearson(trend, reachable)),
                "banding": banding(trend),
                "trend": trend.tolist(),
            }
            for name, trend in trends.items()
        }


#: The samplers sub-step strength is on for, by display name (``SUBSTEP_FUNCTIONS``).
SUBSTEP_SAMPLERS = tuple(name for name, (function, _) in K_SAMPLERS.items() if function in SUBSTEP_FUNCTIONS)


def scan_case(protocol: SubstepProtocol, case: Case) -> dict:
    """Whole steps against sub-step strength, without the ideal (cheap enough for every scheduler):
    R, banding, and ``beyond``: the largest column change past the all-white job's, over the
    trend's range (0 = no column changes more than a fully changed one)."""
    allchange = protocol._norms(protocol.run(case.job))
    result = {}
    for name, substep in (("whole", False), ("substep", True)):
        trend = rel.trend(protocol._norms(protocol.job_latents(case, substep)), allchange)
        span = float(trend.max() - trend.min())
        result[name] = {
            "R": column_reliability(trend),
            "banding": banding(trend),
            "beyond": max(float(trend.max()), 0.0) / span if span > 0 else 0.0,
        }
    return result


def scheduler_scan(setup: Setup, case_list: list[Case]) -> list[dict]:
    protocol = SubstepProtocol(setup)
    return [{"case": case.__dict__, "methods": scan_case(protocol, case)} for case in case_list]


def format_scan(rows: list[dict]) -> str:
    head = "| sampler | schedule | steps | D | R whole | R sub-step | banding whole | banding sub-step "
    lines = [head + "| beyond whole | beyond sub-step |", "|" + "---|" * 10]
    for row in rows:
        case, m = row["case"], row["methods"]
        cells = [case["sampler"], case["schedule"], str(case["steps"]), f"{case['strength']:g}"]
        cells += [f"{m[method][key]:.3f}" for key in ("R", "banding", "beyond") for method in ("whole", "substep")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Uniform maps measured against continuous-level img2img: (steps, D, v), D * v * steps not whole.
UNIFORM_CASES = ((12, 0.8, 0.5), (4, 1.0, 0.55), (8, 0.6, 0.7), (12, 0.75, 0.9))


def uniform_distances(protocol: SubstepProtocol, samplers) -> list[dict]:
    """RMS latent distance of a uniform map, sub-step and whole-step, to plain img2img started at
    the continuous level of ``D * v`` (Karras), and to plain img2img at ``D * v`` (A1111's)."""
    rows = []
    for sampler in samplers:
        for steps, strength, value in UNIFORM_CASES:
            job = Job(sampler, steps, strength)
            total, t_enc, levels = protocol.runner.schedule(job)
            cells = torch.full(protocol.init.shape[-2:], strength * value, dtype=torch.float64)[None, None]
            multistep = K_SAMPLERS[sampler][0] in MULTISTEP_FUNCTIONS
            release, weight = substep_release(cells, total, t_enc, levels, multistep)
            seed = protocol.setup.seed + 3
            runs = {
                "substep": protocol.runner.run(
                    job, protocol.init, protocol.noise, release, seed=seed, boundary_weight=weight
                ),
                "whole": protocol.runner.run(job, protocol.init, protocol.noise, release, seed=seed),
            }
            continuous = continuous_levels(
                sampler_sigmas(sampler, "Karras", total, protocol.runner.alphas_cumprod), strength * value
            )
            ideal = protocol.runner.run_levels(sampler, continuous, protocol.init, protocol.noise, seed=seed)
            plain = protocol.runner.run(Job(sampler, steps, strength * value), protocol.init, protocol.noise, seed=seed)

            def rms(a: torch.Tensor, b: torch.Tensor) -> float:
                return float((a - b).pow(2).mean().sqrt())

            rows.append(
                {
                    "sampler": sampler,
                    "steps": steps,
                    "D": strength,
                    "v": value,
                    **{f"{name} to continuous": rms(run, ideal) for name, run in runs.items()},
                    **{f"{name} to plain": rms(run, plain) for name, run in runs.items()},
                }
            )
    return rows


def format_uniform(rows: list[dict]) -> str:
    head = (
        "| sampler | steps | D x v | sub-step to continuous | whole to continuous "
        "| sub-step to plain D*v | whole to plain D*v |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['sampler']} | {row['steps']} | {row['D']:g} x {row['v']:g} | {row['substep to continuous']:.3f} | "
            f"{row['whole to continuous']:.3f} | {row['substep to plain']:.3f} | {row['whole to plain']:.3f} |"
        )
    return "\n".join(lines)


def cases(schedules, steps, strengths, samplers) -> list[Case]:
    return [Case(sc, st, d, sa) for sc in schedules for st in steps for d in strengths for sa in samplers]


def run_substep_benchmark(setup: Setup, case_list: list[Case], log=print) -> dict:
    protocol = SubstepProtocol(setup)
    results = []
    for case in case_list:
        started = time.perf_counter()
        results.append({"case": case.__dict__, "methods": protocol.measure_case(case)})
        log(f"  {case} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return {"setup": {k: v for k, v in setup.__dict__.items() if k != "extra"}, "results": results}


def format_table(report: dict) -> str:
    head = [
        "schedule",
        "steps",
        "D",
        "sampler",
        "R whole",
        "R sub-step",
        "R ideal",
        "corr whole",
        "corr sub-step",
        "reachable: corr whole",
        "reachable: corr sub-step",
        "banding whole",
        "banding sub-step",
        "banding ideal",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in report["results"]:
        case, m = entry["case"], entry["methods"]
        row = [case["schedule"], str(case["steps"]), f"{case['strength']:g}", case["sampler"]]
        row += [f"{m[k]['R']:.3f}" for k in METHODS]
        row += [f"{m[k]['corr_ideal']:.3f}" for k in ("whole", "substep")]
        row += [f"{m[k]['corr_reachable']:.3f}" for k in ("whole", "substep")]
        row += [f"{m[k]['banding']:.3f}" for k in METHODS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--extra-samplers", nargs="*", default=list(EXTRA_SAMPLERS), help="Karras rows only")
    parser.add_argument("--schedules", nargs="+", default=["Automatic", "Karras", "SGM Uniform"], choices=SCHEDULERS)
    parser.add_argument(
        "--scan-schedulers",
        nargs="*",
        default=list(SCHEDULERS),
        choices=SCHEDULERS,
        help="whole vs sub-step for every sub-step sampler with these schedulers (no ideal)",
    )
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 8])
    parser.add_argument("--strengths", nargs="+", type=float, default=[1.0, 0.6])
    parser.add_argument("--long-steps", nargs="*", type=int, default=[25], help="rows for comparison (Karras, D=1)")
    parser.add_argument("--tests", type=int, default=172)
    parser.add_argument("--references", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default="oracle-substep.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    setup = Setup(tests=args.tests, references=args.references)
    case_list = cases(args.schedules, args.steps, args.strengths, args.samplers)
    case_list += cases(["Karras"], args.steps, args.strengths, args.extra_samplers)
    case_list += cases(["Karras"], args.long_steps, [1.0], args.samplers)
    started = time.perf_counter()
    report = run_substep_benchmark(setup, case_list)
    report["uniform"] = uniform_distances(SubstepProtocol(setup), [s for s in args.samplers if s in UNIFORM_SAMPLERS])
    report["scan"] = scheduler_scan(setup, cases(args.scan_schedulers, args.steps, args.strengths, SUBSTEP_SAMPLERS))
    report["seconds"] = time.perf_counter() - started
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=1)
    print(
        f"Sub-step strength on the oracle (s = {setup.std}, {setup.tests} test patches, gradient map); "
        "corr = correlation of the paired trend with the continuous-strength ideal's"
    )
    print(format_table(report))
    print("Uniform maps (D * v * steps not whole): RMS latent distance (latents of unit std)")
    print(format_uniform(report["uniform"]))
    print("Every sub-step sampler x scheduler (A1111's defaults resolved): whole steps vs sub-step strength")
    print(format_scan(report["scan"]))
    print(f"wrote {args.json} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
