"""Depth estimators already on the user's disk, for the Depth map source. Nothing is downloaded.

The estimator is MiDaS DPT-Hybrid, the model A1111 itself uses for SD 2 depth checkpoints, run
with A1111's own MiDaS code (``ldm.modules.midas``). Its weights file is looked for where A1111
keeps it (``models/midas``) and where the ControlNet extension keeps the same file (its
annotator models folder, ``midas/``). When none is found, :func:`missing_message` says exactly
what to put where. The model, once loaded, stays in memory (on the CPU between uses) until the
WebUI stops; the last few estimates are kept so the preview does not recompute them.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"
MODEL_TYPE = "dpt_hybrid"

#: Depth estimates kept (by weights file and image content), oldest dropped first.
CACHED_ESTIMATES = 4

_lock = threading.Lock()
_loaded: dict[str, torch.nn.Module] = {}
_estimates: dict[tuple, np.ndarray] = {}


def _controlnet_folders() -> list[Path]:
    """ControlNet's annotator models folders (setting, command-line flag, default)."""
    from modules import extensions, paths, shared

    folders = []
    configured = shared.opts.data.get("control_net_modules_path") or getattr(
        shared.cmd_opts, "controlnet_annotator_models_path", None
    )
    if configured:
        folder = Path(configured)
        folders.append(folder if folder.is_absolute() else Path(paths.data_path) / folder)
    for extension in extensions.active():
        if "controlnet" in extension.name.lower():
            folders.append(Path(extension.path) / "annotator" / "downloads")
    return folders


def candidate_files() -> dict[str, Path]:
    """Estimator name -> where its weights file would be, in the order they are preferred."""
    from modules import paths

    candidates = {"MiDaS DPT-Hybrid (models/midas)": Path(paths.models_path) / "midas" / MIDAS_FILE}
    for folder in _controlnet_folders():
        candidates.setdefault("MiDaS DPT-Hybrid (ControlNet)", folder / "midas" / MIDAS_FILE)
    return candidates


def available() -> dict[str, Path]:
    """The estimators whose weights file exists."""
    return {name: path for name, path in candidate_files().items() if path.is_file()}


def missing_message() -> str:
    """What the Depth source needs, when no estimator is found."""
    from modules import paths

    target = Path(paths.models_path) / "midas" / MIDAS_FILE
    return (
        f"no depth estimator found: put the MiDaS DPT-Hybrid weights file {MIDAS_FILE} in {target.parent} "
        "(the file A1111 uses for SD 2 depth models; ControlNet users have it in the annotator "
        "folder's midas/ and it is found there too). Nothing is downloaded"
    )


def _load(path: Path) -> torch.nn.Module:
    from ldm.modules.midas.midas.dpt_depth import DPTDepthModel

    model = DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and "optimizer" in state:
        state = state["model"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def resolve(name: str = "") -> tuple[str, Path]:
    """``(name, weights file)`` of the estimator ``name`` (empty = the first available).

    Raises ``LookupError`` with :func:`missing_message`, or with the names available.
    """
    found = available()
    if not found:
        raise LookupError(missing_message())
    if name and name not in found:
        raise LookupError(f"no depth estimator {name!r}; available: {', '.join(found)}")
    name = name or next(iter(found))
    return name, found[name]


def estimator(name: str = ""):
    """A callable RGB image -> relative inverse depth ``[H, W]`` (larger = nearer).

    ``name`` picks one of :func:`available` (empty = the first); see :func:`resolve`.
    """
    _, path = resolve(name)

    def estimate(image: Image.Image) -> np.ndarray:
        from ldm.modules.midas.api import load_midas_transform
        from modules import devices

        rgb = np.asarray(image.convert("RGB"))
        key = (str(path), rgb.shape, hashlib.sha256(rgb.tobytes()).hexdigest())
        with _lock:
            if key in _estimates:  # the preview asks again for every control change
                return _estimates[key]
            model = _loaded.get(str(path))
            if model is None:
                _loaded.clear()  # one estimator in memory at a time
                model = _loaded[str(path)] = _load(path)
            sample = load_midas_transform(MODEL_TYPE)({"image": rgb.astype(np.float32) / 255.0})["image"]
            device = devices.get_optimal_device()
            model.to(device)
            with torch.no_grad():
                depth = model(torch.from_numpy(sample)[None].to(device)).float().cpu()[0].numpy()
            model.to("cpu")
            while len(_estimates) >= CACHED_ESTIMATES:
                _estimates.pop(next(iter(_estimates)))
            _estimates[key] = depth
        return depth  # at the network's resolution; generate_map brings it to the image's

    return estimate
