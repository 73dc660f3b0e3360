"""Upscaler extensions in the real-WebUI suite (Ultimate SD Upscale, Tiled Diffusion): found and linked per run.

Each is named by an environment variable holding a checkout of its public repository at the commit
the suite was proven with; when it is set, the ``webui`` fixture links it into the run's own
``<data-dir>/extensions`` (the WebUI checkout is never written to). Without it, its tests are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server import dir_from_env


@dataclass(frozen=True)
class UpscalerExtension:
    env: str
    repository: str
    commit: str
    dirname: str
    marker: str  # a file that identifies the checkout

    @property
    def path(self) -> Path | None:
        return dir_from_env(self.env)

    def problem(self) -> str | None:
        """Why it cannot be linked for this run (None when it can)."""
        path = self.path
        if path is None:
            return f"set {self.env} to a checkout of {self.repository} ({self.commit}) to run these tests"
        if not (path / self.marker).is_file():
            return f"{self.env}={path} is not a {self.repository} checkout (no {self.marker})"
        return None

    def install(self, extensions: Path) -> None:
        if self.problem() is None:
            extensions.mkdir(parents=True, exist_ok=True)
            (extensions / self.dirname).symlink_to(self.path, target_is_directory=True)


ULTIMATE_SD_UPSCALE = UpscalerExtension(
    "DD_USDU_DIR",
    "Coyote-A/ultimate-upscale-for-automatic1111",
    "2322caa",
    "ultimate-upscale-for-automatic1111",
    "scripts/ultimate-upscale.py",
)
TILED_DIFFUSION = UpscalerExtension(
    "DD_TILED_DIFFUSION_DIR",
    "pkuliyi2015/multidiffusion-upscaler-for-automatic1111",
    "22798f6",
    "multidiffusion-upscaler-for-automatic1111",
    "scripts/tilediffusion.py",
)
ALL = (ULTIMATE_SD_UPSCALE, TILED_DIFFUSION)
