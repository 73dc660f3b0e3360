"""The harness itself: a WebUI starts with the test checkpoint, and plain img2img is repeatable.

Nothing here depends on what the extension does; extension tests build on these fixtures and helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from helpers import CHECKPOINT_NAME, EXTENSION_DIRNAME, img2img_payload, log_errors, to_array


def test_server_is_running(webui):
    os.kill(webui.pid, 0)  # raises if the process is gone
    status, options = webui.get("/sdapi/v1/options")
    assert status == 200, options
    assert options["sd_model_checkpoint"].startswith(CHECKPOINT_NAME), options["sd_model_checkpoint"]
    if webui.ui:
        status, page = webui.get("/")
        assert status == 200
        assert "<html" in str(page).lower()


def test_generated_checkpoint_is_listed(webui):
    status, models = webui.get("/sdapi/v1/sd-models")
    assert status == 200, models
    # test_families.py adds its checkpoints to the same session's models folder
    (model,) = [m for m in models if m["model_name"] == CHECKPOINT_NAME]
    assert os.path.samefile(model["filename"], webui.checkpoint)
    # the .yaml beside the checkpoint (narrow UNet/VAE) is the config A1111 uses for it
    assert model["config"] and os.path.samefile(model["config"], webui.checkpoint.with_suffix(".yaml"))


def test_extension_dir_is_linked(webui):
    """The extension under test is this repository, linked into the run's own extensions dir."""
    ext = webui.extension_dir
    assert ext == webui.data_dir / "extensions" / EXTENSION_DIRNAME
    repo = Path(__file__).resolve().parents[2]
    assert (ext / "differential").resolve() == repo / "differential"
    assert (ext / "scripts").resolve() == repo / "scripts"


def test_startup_log_has_no_errors_outside_the_extension(webui):
    """No errors or tracebacks up to readiness, except any that concern the extension (tested elsewhere)."""
    blocks = log_errors(webui.log_path, keywords=("error", "traceback"), end=webui.ready_log_size)
    others = [b for b in blocks if "differential" not in b.lower()]
    assert not others, "\n\n".join(others)
    assert "Model loaded in" in webui.log_text()


def test_log_errors_finds_extension_messages(tmp_path):
    """The log helper groups A1111's error reports with their tracebacks (no server needed)."""
    log = tmp_path / "webui.log"
    log.write_text(
        "Startup line\n"
        "*** Error loading script: dd.py\n"
        "    Traceback (most recent call last):\n"
        f'      File "/x/extensions/{EXTENSION_DIRNAME}/scripts/dd.py", line 3, in <module>\n'
        "        import nope\n"
        "    ModuleNotFoundError: No module named 'nope'\n"
        "\n"
        "---\n"
        "/venv/lib/site-packages/foo.py:1: UserWarning: something else\n"
        "  warnings.warn(\n"
        "Traceback (most recent call last):\n"
        '  File "/work/x/differential/webui/core.py", line 1, in f\n'
        "ValueError: bad map\n"
        "Model loaded in 1.0s\n"
    )
    hits = log_errors(log, EXTENSION_DIRNAME)
    assert len(hits) == 1 and "ModuleNotFoundError" in hits[0] and hits[0].startswith("*** Error loading script")
    assert [h.splitlines()[-1] for h in log_errors(log, "differential")] == [
        "    ModuleNotFoundError: No module named 'nope'",
        "ValueError: bad map",
    ]
    assert len(log_errors(log, "foo.py")) == 1
    assert log_errors(log, "foo.py", keywords=("error", "traceback")) == []
    assert log_errors(log, until="Startup") == []


def test_plain_img2img_is_repeatable(primed_webui, init_b64):
    payload = img2img_payload(init_b64)
    primed_webui.img2img(payload)  # earlier tests may have left the global RNG at another seed
    (first,), info = primed_webui.img2img(payload)
    (second,), _ = primed_webui.img2img(payload)
    assert first.size == (256, 256)
    assert info["seed"] == 1234
    a, b = to_array(first), to_array(second)
    assert np.array_equal(a, b), f"max difference {np.abs(a - b).max()}"
    # the random model still produces a real image: not flat and not saturated
    assert a.std() > 10
    assert (a == 0).mean() < 0.5 and (a == 255).mean() < 0.5
