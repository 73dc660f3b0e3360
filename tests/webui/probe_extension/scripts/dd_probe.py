"""Test-only extension (never shipped): how far held cells are from the re-noised original, per model call.

For the cells that Differential Diffusion holds through the whole job (strength 0), every
model call's input ``x`` at noise level ``sigma`` should be the original latent re-noised:
``x = init + sigma * eps`` (flow models: ``(1 - sigma) * init + sigma * eps``) with the same
``eps`` at every call of a deterministic sampler
(the sampler's start noise for k-diffusion samplers; for the DDIM family, which noises the
init latent one schedule step above its first call, the ``eps`` implied at that first call).
A1111's timestep samplers give ``x_t`` and a timestep; they are brought to that frame here
(``x_t / sqrt(a)``, ``sigma = sqrt((1 - a) / a)``); Forge already calls back in it.

Each finished job appends one JSON line to ``<data dir>/dd_probe.jsonl``: the sampler and, per
call, sigma and the largest deviations over the held cells of each batch row; and, per batch
row, the final latent's mean absolute change from the init latent in each latent column
(``column_change``, from the samples before decoding; not for a Hires. fix pass, whose samples
A1111 decodes before ``post_sample``). txt2img: the Hires. fix pass is recorded, with a hash of
its input latent (the upscaled first pass: ``hr_input_sha256``).
"""

import hashlib
import importlib.util
import json
from pathlib import Path

from modules import paths_internal, script_callbacks, scripts, shared

FORGE = importlib.util.find_spec("modules_forge") is not None
RECORDS = Path(paths_internal.data_path) / "dd_probe.jsonl"
_job: dict = {}


class ProbeScript(scripts.Script):
    def title(self):
        return "DD probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process_before_every_sampling(self, p, *args, **kwargs):
        if not hasattr(p, "init_images") and not getattr(p, "is_hr_pass", False):
            _job.clear()  # txt2img's first pass: only its result (the Hires. fix pass's input) is recorded
            return
        _job.clear()
        _job.update(p=p, init=kwargs["x"].double().cpu(), noise=kwargs["noise"].double().cpu(), calls=[])
        if getattr(p, "is_hr_pass", False):
            _job["hr_input_sha256"] = hashlib.sha256(kwargs["x"].float().cpu().numpy().tobytes()).hexdigest()

    def post_sample(self, p, ps, *args):
        if _job.get("p") is p and not getattr(ps.samples, "already_decoded", False):
            change = (ps.samples.double().cpu() - _job["init"]).abs().mean(dim=(1, 2))
            _job.setdefault("column_change", []).extend(change.tolist())

    def postprocess(self, p, processed, *args):
        if _job.get("p") is p:
            record = {"sampler": p.sampler_name, "scheduler": getattr(p, "scheduler", None), "calls": _job["calls"]}
            record["column_change"] = _job.get("column_change", [])
            if "hr_input_sha256" in _job:
                record["hr_input_sha256"] = _job["hr_input_sha256"]
            with open(RECORDS, "a") as f:
                f.write(json.dumps(record) + "\n")
        _job.clear()


def _is_flow() -> bool:
    """Flow-matching models (A1111: SD3's ``add_noise_to_latent``; Forge: a Flow/Flux predictor)."""
    model = shared.sd_model
    if FORGE:
        predictor = type(model.forge_objects.unet.model.predictor).__name__
        return "Flow" in predictor or "Flux" in predictor
    return hasattr(model, "add_noise_to_latent")


def _held(p):
    state = getattr(p, "differential_diffusion", None)
    blend = getattr(state, "blend", None)
    return None if blend is None else (blend.release > blend.t_enc).cpu()  # never released: strength 0


def on_cfg_denoiser(params):
    p = getattr(params.denoiser, "p", None)
    if not _job or p is not _job["p"]:
        return
    held = _held(p)
    if held is None:
        return
    from modules import sd_samplers_timesteps

    init, noise = _job["init"], _job["noise"]
    x = params.x[-init.shape[0] :].double().cpu()
    sigma = float(params.sigma[-1])
    if isinstance(p.sampler, sd_samplers_timesteps.CompVisSampler) and not FORGE:  # timestep, x_t
        alpha = float(shared.sd_model.alphas_cumprod[int(round(sigma))])
        x, sigma = x / alpha**0.5, ((1 - alpha) / alpha) ** 0.5
    # the noise implied by the input: x = init + sigma * eps (flow models: x = (1 - sigma) * init + sigma * eps)
    eps = (x - (1.0 - sigma) * init) / sigma if _is_flow() else (x - init) / sigma
    if "first" not in _job:
        _job["first"] = eps
    rows = []
    for row in range(init.shape[0]):
        mask = held[min(row, held.shape[0] - 1), 0].expand_as(eps[row])
        if not mask.any():
            rows.append(None)
            continue
        held_eps = eps[row][mask]
        rows.append(
            {
                "noise": float((held_eps - noise[row][mask]).abs().max()),
                "first": float((held_eps - _job["first"][row][mask]).abs().max()),
                "abs": float(held_eps.abs().max()),
            }
        )
    _job["calls"].append({"sigma": sigma, "rows": rows, "x_rows": int(params.x.shape[0])})


script_callbacks.on_cfg_denoiser(on_cfg_denoiser, name="dd_probe")
