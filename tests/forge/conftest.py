"""Integration tests against a real Stable Diffusion WebUI Forge (``dfdcbab``) or Forge Neo running on the CPU.

Skipped unless ``DD_FORGE_DIR`` names a Forge checkout (``launch.py`` and ``modules_forge``). A Forge Neo
checkout (``modules_forge/forge_version.py`` says ``neo``; seen at ``nolanlane/sd-webui-forge-classic``
``3df257ae``) runs the same suite, started with ``--cpu`` and ``NEO_SETTINGS``; ``test_neo_families.py`` is
Neo's, ``test_forge_families.py`` classic Forge's.

Environment:
    DD_FORGE_DIR         Forge or Forge Neo checkout (required)
    DD_FORGE_PYTHON      its Python (default: $DD_FORGE_DIR/venv/bin/python, else $DD_FORGE_DIR/../venv/bin/python)
    DD_FORGE_CHECKPOINT  a checkpoint made earlier by ``tests/forge/make_checkpoint.py`` to reuse (it is
                         deterministic); by default the suite generates it (2 GiB) in its data dir
    DD_HF_HOME           as for the A1111 suite (the CLIP tokenizer cache, copied for the run)
    DD_USDU_DIR          as for the A1111 suite: Ultimate SD Upscale, linked for the run (else its test is skipped)
    DD_WEBUI_START_TIMEOUT  seconds to wait for the server (default 600)

Both hosts build their networks from fixed configs, so the default checkpoint is a full-size random SD1.5 one.
For the other families (Forge: SDXL, Flux dev, Flux schnell; Neo: SDXL, Flux dev, Z-Image-Turbo) the suite
writes narrow random checkpoints (``make_narrow_checkpoint.py``) into ``models/Stable-diffusion/narrow/``, and a
test-only extension (``narrow_shim_extension`` on Forge, ``neo_shim_extension`` on Neo, whose backend is
rewritten) lets the host's loader build those networks at the checkpoints' own sizes (it changes nothing for a
full-size checkpoint). The server runs on the CPU on 127.0.0.1 with a fresh ``--data-dir``, this repository
linked in as the extension beside the test-only probe extension (``tests/webui/probe_extension``), live
previews off, and is stopped at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WEBUI_TESTS = HERE.parent / "webui"
if str(WEBUI_TESTS) not in sys.path:
    sys.path.insert(0, str(WEBUI_TESTS))

import upscaler_extensions  # noqa: E402
from forge_models import CHECKPOINT_NAME, narrow_models  # noqa: E402
from helpers import WebUI  # noqa: E402
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

SETTINGS = {
    "live_previews_enable": False,
    "multiple_tqdm": False,
    "sd_model_checkpoint": f"{CHECKPOINT_NAME}.safetensors",
}
SKIP_REASON = "set DD_FORGE_DIR to a Forge checkout to run the Forge integration tests"
_SUMMARY: list[str] = []


def _forge_dir() -> Path | None:
    return dir_from_env("DD_FORGE_DIR")


def _forge_python(forge_dir: Path) -> Path:
    return host_python("DD_FORGE_PYTHON", forge_dir)


#: Forge Neo (``Haoming02/sd-webui-forge-classic``, branch ``neo``) runs the same suite with these settings:
#: its launcher waits for Enter without ``VERSION_UID``, and at its default Clip skip 2 a random checkpoint's
#: prompt conditioning is all zero (its emphasis then divides 0 by 0: black images with HTTP 200).
NEO_SETTINGS = {"VERSION_UID": "PY313", "CLIP_stop_at_last_layers": 1}


def is_neo(forge_dir: Path) -> bool:
    """Whether the checkout is Forge Neo (its ``modules_forge/forge_version.py`` says ``neo``)."""
    version = forge_dir / "modules_forge" / "forge_version.py"
    return version.is_file() and '"neo"' in version.read_text()


@pytest.fixture(autouse=True)
def _require_forge():
    if _forge_dir() is None:
        pytest.skip(SKIP_REASON)


def _checkpoint(python: Path, forge_dir: Path, models_dir: Path, env: dict, log: Path) -> Path:
    out = models_dir / "Stable-diffusion" / f"{CHECKPOINT_NAME}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    reuse = os.environ.get("DD_FORGE_CHECKPOINT", "").strip()
    if reuse:
        out.symlink_to(Path(reuse).resolve())
        return out
    cmd = [str(python), str(HERE / "make_checkpoint.py"), "--forge", str(forge_dir), "--out", str(out)]
    with open(log, "w") as f:
        result = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900, check=False)
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"make_checkpoint.py failed ({result.returncode}):\n{log.read_text()[-4000:]}")
    return out


def _narrow_checkpoints(python: Path, forge_dir: Path, models_dir: Path, env: dict, neo: bool) -> dict[str, Path]:
    """Write the host's narrow checkpoints (SDXL, Flux; Neo: Z-Image-Turbo; 15-60 MiB, seconds each)."""
    written = {}
    for kind, title in narrow_models(neo).items():
        out = models_dir / "Stable-diffusion" / title
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(python), str(HERE / "make_narrow_checkpoint.py"), "--forge", str(forge_dir), "--kind", kind]
        result = subprocess.run(
            [*cmd, "--out", str(out)], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0 or not out.exists():
            raise RuntimeError(f"make_narrow_checkpoint.py {kind} failed:\n{result.stdout}{result.stderr[-4000:]}")
        _SUMMARY.append(result.stdout.strip().splitlines()[0])
        written[kind] = out
    return written


@pytest.fixture(scope="session")
def forge(tmp_path_factory) -> Iterator[WebUI]:
    """Start Forge with a random full-size SD1.5 checkpoint, this extension and the probe; stop it at the end."""
    forge_dir = _forge_dir()
    if forge_dir is None:  # session fixtures are set up before the autouse skip above runs
        pytest.skip(SKIP_REASON)
    if not (forge_dir / "launch.py").is_file() or not (forge_dir / "modules_forge").is_dir():
        pytest.fail(f"{forge_dir} is not a Forge checkout (no launch.py / modules_forge)", pytrace=False)
    t0 = time.monotonic()
    data_dir = tmp_path_factory.mktemp("forge")
    hf_home = data_dir / "hf_home"
    shutil.copytree(hf_source(), hf_home, symlinks=False)
    make_writable(hf_home)
    env = server_env(hf_home)
    python = _forge_python(forge_dir)
    checkpoint = _checkpoint(python, forge_dir, data_dir / "models", env, data_dir / "make_checkpoint.log")
    neo = is_neo(forge_dir)
    extension_dir = link_extension(data_dir / "extensions")
    (data_dir / "extensions" / "dd-probe").symlink_to(WEBUI_TESTS / "probe_extension", target_is_directory=True)
    _narrow_checkpoints(python, forge_dir, data_dir / "models", env, neo)
    # test-only: the host builds the narrow networks at the checkpoints' own sizes (see the shims; Neo's
    # backend is rewritten, so it has its own)
    shim = "neo_shim_extension" if neo else "narrow_shim_extension"
    (data_dir / "extensions" / "dd-narrow-shim").symlink_to(HERE / shim, target_is_directory=True)
    upscaler_extensions.ULTIMATE_SD_UPSCALE.install(data_dir / "extensions")  # when DD_USDU_DIR names it
    settings = {**SETTINGS, **(NEO_SETTINGS if neo else {})}
    (data_dir / "config.json").write_text(json.dumps(settings, indent=2))
    port = free_port()
    args = [
        "--skip-prepare-environment",
        "--skip-install",
        "--skip-torch-cuda-test",
        "--cpu" if neo else "--always-cpu",
        "--api",
        "--server-name",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        # Forge lets gradio serve files only from the data dir: with a separate one, its own script.js and
        # javascript/ would be refused (403) and the page would run without them
        "--gradio-allowed-path",
        str(forge_dir),
    ]
    server = WebUI(
        url=f"http://127.0.0.1:{port}",
        pid=0,
        log_path=data_dir / "forge.log",
        data_dir=data_dir,
        extension_dir=extension_dir,
        checkpoint=checkpoint,
        startup_seconds=time.monotonic() - t0,
        extra={"neo": neo},
    )
    timeout = float(os.environ.get("DD_WEBUI_START_TIMEOUT", "600"))
    try:
        with serve(server, python, forge_dir, args, env, timeout, loaded="Startup time") as running:
            _SUMMARY.append(f"Forge {running.url} (pid {running.pid}) ready after {running.startup_seconds:.1f}s")
            yield running
    finally:
        _SUMMARY.append(f"Forge {server.extra.get('stop', 'not started')}; log: {server.log_path}")
        if not os.environ.get("DD_FORGE_CHECKPOINT"):
            shutil.rmtree(data_dir / "models", ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    from helpers import MEASUREMENTS

    for line in _SUMMARY + MEASUREMENTS:
        terminalreporter.write_line(line)
