"""Differential Diffusion engine: per-pixel img2img strength from a change map.

Host-agnostic (torch, numpy, Pillow only). Polarity everywhere: map value 1 (white) = full
change (the img2img Denoising strength D), 0 (black) = keep; a pixel of value v gets
strength ``D * v``.

* :mod:`differential.maps` -- load a change map from any image input.
* :mod:`differential.adjust` -- invert, feather, levels, strength range.
* :mod:`differential.geometry` -- A1111's resize modes and crop, latent-grid averaging.
* :mod:`differential.schedule` -- release steps and the step of each model evaluation.
* :mod:`differential.blend` -- the per-step blend.
* :mod:`differential.oracle` -- exact-denoiser evaluation (dev tooling).
"""

__version__ = "0.1.0"

#: The blend shipped by default, chosen by the oracle benchmark (docs/how-it-works.md, "Choosing the blend").
DEFAULT_BLEND = "after"
