"""Integration tests against a real AUTOMATIC1111 WebUI (v1.10.1) running on the CPU.

The suite is skipped unless ``DD_WEBUI_DIR`` names an A1111 checkout whose ``repositories/`` are prepared.

Environment:
    DD_WEBUI_DIR         A1111 checkout (required)
    DD_WEBUI_PYTHON      its Python (default: $DD_WEBUI_DIR/venv/bin/python, else $DD_WEBUI_DIR/../venv/bin/python)
    DD_HF_HOME           HF cache with the CLIP ViT-L/14 config and tokenizer, copied for the run
                         (default: <repo>/../shared/fixtures/hf-clip-vit-large-patch14)
    DD_WEBUI_NOWEBUI=1   start with --nowebui (API only; by default the Gradio UI runs too)
    DD_WEBUI_EXTRA_ARGS  more launch.py arguments, e.g. "--opt-sdp-attention"
    DD_WEBUI_UNET_HEADS  attention heads in the test checkpoint yaml (default 1, 3x faster on CPU; SD1.5 has 8)
    DD_WEBUI_LINK=root   link the repository root itself as the extension (default: a directory of links)
    DD_WEBUI_KEEP=1      keep the generated checkpoint after the run (the log is always kept)
    DD_WEBUI_START_TIMEOUT  seconds to wait for the server (default 240)
    DD_CONTROLNET_DIR    a Mikubill/sd-webui-controlnet checkout (v1.1.455): installed for the run with a random
                         narrow ControlNet (see controlnet_setup.py); without it test_controlnet.py is skipped
    DD_USDU_DIR          a Coyote-A/ultimate-upscale-for-automatic1111 checkout (2322caa), linked for the run
    DD_TILED_DIFFUSION_DIR  a pkuliyi2015/multidiffusion-upscaler-for-automatic1111 checkout (22798f6), linked
                         for the run; without them their tests in test_upscaler_extensions.py are skipped

Each session gets a fresh data dir (``--data-dir``): models/, extensions/, config.json, cache, outputs all
live there, so the WebUI checkout is not written to. The extension is the repository these tests live in,
linked into ``<data-dir>/extensions/sd-webui-differential-diffusion`` (see ``server.link_extension``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import controlnet_setup  # noqa: E402
import upscaler_extensions  # noqa: E402
from helpers import CHECKPOINT_NAME, WebUI, b64_png, img2img_payload, make_init_image, prime  # noqa: E402
from server import (  # noqa: E402
    dir_from_env,
    free_port,
    hf_source,
    host_python,
    link_extension,
    make_writable,
    serve,
    server_env,
)

# WebUI settings for the run (written to <data-dir>/config.json before start-up)
WEBUI_SETTINGS = {
    # live previews would load models/VAE-approx from the (empty) data dir, and cost CPU time
    "live_previews_enable": False,
    # one progress bar per job in the log, not two
    "multiple_tqdm": False,
}

SKIP_REASON = "set DD_WEBUI_DIR to an A1111 v1.10.1 checkout to run the WebUI integration tests"
_SUMMARY: list[str] = []

# --------------------------------------------------------------------------------------------- config


def _webui_dir() -> Path | None:
    return dir_from_env("DD_WEBUI_DIR")


def _webui_python(webui_dir: Path) -> Path:
    return host_python("DD_WEBUI_PYTHON", webui_dir)


def _check_setup(webui_dir: Path) -> list[str]:
    problems = []
    if not (webui_dir / "launch.py").is_file() or not (webui_dir / "modules" / "paths_internal.py").is_file():
        problems.append(f"{webui_dir} is not an A1111 checkout (no launch.py / modules/)")
    for repo in ("stable-diffusion-stability-ai", "k-diffusion", "stable-diffusion-webui-assets"):
        if not (webui_dir / "repositories" / repo).is_dir():
            problems.append(f"{webui_dir}/repositories/{repo} is missing (prepare the repositories first)")
    python = _webui_python(webui_dir)
    if not python.exists():
        problems.append(f"no Python for the WebUI at {python} (set DD_WEBUI_PYTHON)")
    if not (hf_source() / "hub").is_dir():
        problems.append(f"no HF cache at {hf_source()} (set DD_HF_HOME)")
    return problems


@pytest.fixture(autouse=True)
def _require_webui():
    """Skip every test in tests/webui unless DD_WEBUI_DIR is set."""
    if _webui_dir() is None:
        pytest.skip(SKIP_REASON)


def _make_checkpoint(python: Path, webui_dir: Path, models_dir: Path, env: dict, log: Path) -> Path:
    out = models_dir / "Stable-diffusion" / f"{CHECKPOINT_NAME}.safetensors"
    cmd = [str(python), str(HERE / "make_checkpoint.py"), "--webui", str(webui_dir), "--out", str(out)]
    cmd += ["--heads", os.environ.get("DD_WEBUI_UNET_HEADS", "1")]
    with open(log, "w") as f:
        result = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=300, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"make_checkpoint.py failed ({result.returncode}):\n{log.read_text()[-4000:]}")
    return out


@pytest.fixture(scope="session")
def webui(tmp_path_factory) -> Iterator[WebUI]:
    """Start a WebUI with a random tiny checkpoint and this extension; stop it at the end of the session."""
    webui_dir = _webui_dir()
    if webui_dir is None:
        pytest.skip(SKIP_REASON)
    problems = _check_setup(webui_dir)
    if problems:
        pytest.fail("WebUI setup incomplete:\n" + "\n".join(problems), pytrace=False)

    t0 = time.monotonic()
    data_dir = tmp_path_factory.mktemp("webui")
    hf_home = data_dir / "hf_home"
    shutil.copytree(hf_source(), hf_home, symlinks=False)
    make_writable(hf_home)  # the fixture is read-only; the hub library may write locks or refs
    env = server_env(hf_home)
    python = _webui_python(webui_dir)

    checkpoint = _make_checkpoint(python, webui_dir, data_dir / "models", env, data_dir / "make_checkpoint.log")
    extension_dir = link_extension(data_dir / "extensions")
    # the test-only probe (never shipped): what reaches the model, and the final latents
    (data_dir / "extensions" / "dd-probe").symlink_to(HERE / "probe_extension", target_is_directory=True)
    (data_dir / "extensions" / "dd-exact-denoiser").symlink_to(
        HERE / "exact_denoiser_extension", target_is_directory=True
    )
    if controlnet_setup.problem(controlnet_setup.controlnet_dir()) is None:
        controlnet_setup.install(data_dir, python, webui_dir, env)
    for extension in upscaler_extensions.ALL:
        extension.install(data_dir / "extensions")
    # test-only: records what inpainting checkpoints are shown (loads after the extension, by name)
    (data_dir / "extensions" / "zz-dd-inpaint-probe").symlink_to(
        HERE / "inpaint_probe_extension", target_is_directory=True
    )
    (data_dir / "config.json").write_text(json.dumps(WEBUI_SETTINGS, indent=2))

    port = free_port()
    ui = os.environ.get("DD_WEBUI_NOWEBUI", "") != "1"
    args = [
        "--skip-prepare-environment",
        "--skip-install",
        "--skip-torch-cuda-test",
        "--use-cpu",
        "all",
        "--no-half",
        "--precision",
        "full",
        "--no-download-sd-model",
        "--api",
        "--server-name",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if not ui:
        args.append("--nowebui")
    args += shlex.split(os.environ.get("DD_WEBUI_EXTRA_ARGS", ""))

    server = WebUI(
        url=f"http://127.0.0.1:{port}",
        pid=0,
        log_path=data_dir / "webui.log",
        data_dir=data_dir,
        extension_dir=extension_dir,
        checkpoint=checkpoint,
        ui=ui,
        startup_seconds=time.monotonic() - t0,
    )
    timeout = float(os.environ.get("DD_WEBUI_START_TIMEOUT", "240"))
    try:
        with serve(server, python, webui_dir, args, env, timeout) as running:
            _SUMMARY.append(
                f"WebUI {running.url} (pid {running.pid}) ready after {running.startup_seconds:.1f}s; "
                f"log: {running.log_path}"
            )
            yield running
    finally:
        _SUMMARY.append(f"WebUI {server.extra.get('stop', 'not started')}")
        if os.environ.get("DD_WEBUI_KEEP", "") != "1":
            shutil.rmtree(data_dir / "models", ignore_errors=True)


@pytest.fixture(scope="session")
def init_b64() -> str:
    """The default 256x256 init image (make_init_image seed 0), PNG base64."""
    return b64_png(make_init_image(256, 256, seed=0))


@pytest.fixture(scope="session")
def primed_webui(webui: WebUI, init_b64: str) -> WebUI:
    """The server after one default img2img request, so that the next identical requests repeat exactly."""
    prime(webui, img2img_payload(init_b64))
    return webui


def pytest_terminal_summary(terminalreporter):
    from helpers import MEASUREMENTS

    for line in _SUMMARY + MEASUREMENTS:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def midas_weights(webui: WebUI) -> Path:
    """A random MiDaS DPT-Hybrid weights file where A1111 keeps it (``<models>/midas``)."""
    webui_dir = _webui_dir()
    out = webui.data_dir / "models" / "midas" / "dpt_hybrid-midas-501f0c75.pt"
    cmd = [str(_webui_python(webui_dir)), str(HERE / "make_midas.py"), "--webui", str(webui_dir), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"make_midas.py failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
        )
    return out
