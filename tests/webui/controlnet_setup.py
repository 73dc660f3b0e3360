"""ControlNet (``Mikubill/sd-webui-controlnet``) in the real-WebUI suite: found, installed per run; no pytest here.

``DD_CONTROLNET_DIR`` names a checkout of that extension (tested: v1.1.455, commit ``56cec5b``) whose
imports work in the WebUI's Python (it imports ``controlnet_aux``: install that with ``--no-deps``, its
dependencies would replace the WebUI's numpy and OpenCV). When it is set, the ``webui`` fixture links it
into the run's ``<data-dir>/extensions`` beside the test-only shim ``controlnet_shim/`` (builds a
ControlNet at its file's width) and generates a narrow random ControlNet into ``<data-dir>/models/ControlNet``
(``make_controlnet.py``). Nothing is downloaded: the tests use the "none" and "inpaint_only" preprocessors.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from server import dir_from_env

HERE = Path(__file__).resolve().parent
ENV = "DD_CONTROLNET_DIR"
EXTENSION_DIRNAME = "sd-webui-controlnet"
SHIM_DIRNAME = "dd-controlnet-shim"
MODEL_NAME = "dd-test-controlnet-sd15"
NOT_SET = (
    f"set {ENV} to a checkout of Mikubill/sd-webui-controlnet (v1.1.455) to run the ControlNet tests "
    "(controlnet_aux installed in the WebUI's Python with --no-deps)"
)


def controlnet_dir() -> Path | None:
    return dir_from_env(ENV)


def problem(path: Path | None) -> str | None:
    """Why ControlNet cannot be installed for this run (None when it can)."""
    if path is None:
        return NOT_SET
    if not (path / "scripts" / "controlnet.py").is_file() or not (path / "scripts" / "cldm.py").is_file():
        return f"{ENV}={path} is not a sd-webui-controlnet checkout (no scripts/controlnet.py, scripts/cldm.py)"
    return None


def install(data_dir: Path, python: Path, webui_dir: Path, env: dict) -> Path:
    """Link ControlNet and the shim into ``<data_dir>/extensions``; write the random ControlNet; return its path."""
    source = controlnet_dir()
    assert source is not None and problem(source) is None
    extensions = data_dir / "extensions"
    extensions.mkdir(parents=True, exist_ok=True)
    (extensions / EXTENSION_DIRNAME).symlink_to(source, target_is_directory=True)
    (extensions / SHIM_DIRNAME).symlink_to(HERE / "controlnet_shim", target_is_directory=True)
    out = data_dir / "models" / "ControlNet" / f"{MODEL_NAME}.safetensors"
    cmd = [str(python), str(HERE / "make_controlnet.py"), "--webui", str(webui_dir), "--out", str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"make_controlnet.py failed ({result.returncode}):\n{result.stdout}{result.stderr[-4000:]}")
    return out
