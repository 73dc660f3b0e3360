"""Test-only extension (never shipped): what an inpainting checkpoint is shown, per model evaluation.

For every img2img job on a model whose conditioning is spatial (the 9-channel inpainting checkpoints;
other models get A1111's ``[B, 5, 1, 1]`` placeholder and are not recorded), it keeps:

* ``static``: A1111's own conditioning of the job (``p.image_conditioning``, computed in ``p.init``);
* ``init``: the init latent the sampler starts from;
* ``evaluations``: the ``image_cond`` of every CFG model evaluation, as it reaches the model (all
  rows: cond rows, then uncond rows) with the evaluation's noise level, in call order;
* ``samples``: the job's final latent (after every extension's ``post_sample``: this extension is
  linked as ``zz-dd-inpaint-probe``, so it loads, and runs, after the one under test).

The last job is written to ``<data dir>/dd_inpaint_probe.pt`` (``torch.save``) when it ends.
Its ``on_cfg_denoiser`` callback is registered after the tested extension's, so it sees
``params.image_cond`` after that extension changed it.
"""

from pathlib import Path

import torch
from modules import paths_internal, script_callbacks, scripts

RECORD = Path(paths_internal.data_path) / "dd_inpaint_probe.pt"
_job: dict = {}


def _spatial(image_cond) -> bool:
    return torch.is_tensor(image_cond) and image_cond.dim() == 4 and image_cond.shape[-1] > 1


class InpaintProbeScript(scripts.Script):
    def title(self):
        return "DD inpaint probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible if is_img2img else False

    def process_before_every_sampling(self, p, *args, **kwargs):
        _job.clear()
        static = getattr(p, "image_conditioning", None)
        if _spatial(static):
            _job.update(p=p, static=static.detach().cpu().clone(), init=kwargs["x"].detach().cpu().clone())
            _job["evaluations"] = []

    def post_sample(self, p, ps, *args):
        if _job.get("p") is p:
            _job["samples"] = ps.samples.detach().cpu().clone()

    def postprocess(self, p, processed, *args):
        if _job.get("p") is p:
            record = {key: value for key, value in _job.items() if key != "p"}
            record["sampler"] = p.sampler_name
            torch.save(record, RECORD)
        _job.clear()


def on_cfg_denoiser(params):
    if not _job or getattr(params.denoiser, "p", None) is not _job["p"] or not _spatial(params.image_cond):
        return
    _job["evaluations"].append(
        {"sigma": float(params.sigma[-1]), "image_cond": params.image_cond.detach().cpu().clone()}
    )


script_callbacks.on_cfg_denoiser(on_cfg_denoiser, name="dd_inpaint_probe")
