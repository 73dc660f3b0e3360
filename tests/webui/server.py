"""Start and stop a WebUI process (A1111 or Forge) for the real-host suites; no pytest here.

Used by ``tests/webui/conftest.py`` and ``tests/forge/conftest.py``: the server runs in its own
process group on 127.0.0.1 with a fresh ``--data-dir``, this repository linked in as the
extension, and is killed with everything it started when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from helpers import EXTENSION_DIRNAME, WebUI

REPO = Path(__file__).resolve().parents[2]
#: The offline CLIP tokenizer cache the WebUIs read (copied per run); ``DD_HF_HOME`` overrides it.
HF_FIXTURE = REPO.parent / "shared" / "fixtures" / "hf-clip-vit-large-patch14"
READY_PATH = "/sdapi/v1/sd-models"
# top-level entries of the repo not linked into the extension dir (see link_extension)
NOT_LINKED = {".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis", "__pycache__", "demo-output", "tests"}


def dir_from_env(name: str) -> Path | None:
    """The folder an environment variable names (resolved), or None when it is unset."""
    value = os.environ.get(name, "").strip()
    return Path(value).resolve() if value else None


def host_python(variable: str, host_dir: Path) -> Path:
    """The host's Python: ``$variable``, else ``<host>/venv/bin/python``, else ``<host>/../venv/bin/python``."""
    value = os.environ.get(variable, "").strip()
    if value:
        return Path(value)
    inside = host_dir / "venv" / "bin" / "python"
    return inside if inside.exists() else host_dir.parent / "venv" / "bin" / "python"


def hf_source() -> Path:
    value = os.environ.get("DD_HF_HOME", "").strip()
    return Path(value) if value else HF_FIXTURE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def server_env(hf_home: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        # COMMANDLINE_ARGS is appended to launch.py's argv; the others would leak the test venv into the server
        if k not in {"COMMANDLINE_ARGS", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST"}
        and not k.startswith("SD_WEBUI_")
    }
    env.update(
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def die_with_parent():
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def kill_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after ``grace`` seconds, then reap the server.

    The server is reaped only at the end: while it is unreaped its PID (= the group ID) cannot be reused,
    so the signals cannot reach an unrelated process group.
    """
    if proc.returncode is not None:  # already reaped (it died during start-up)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        # has it exited? (WNOWAIT: look, but leave it unreaped)
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server if it is still up, and anything it started
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def link_extension(extensions_dir: Path) -> Path:
    """Make the repository visible as ``<extensions>/sd-webui-differential-diffusion``.

    A real directory holding one symlink per top-level entry of the repository, without ``.git`` (and
    caches, venvs, tests). Linking the repository root itself would also work, but then A1111 reads the
    extension's git data; this checkout has no ``origin`` remote, so building the Extensions tab logs
    "Failed reading extension data from Git repository (sd-webui-differential-diffusion)" with a
    traceback, which is about the checkout, not the extension.
    """
    target = extensions_dir / EXTENSION_DIRNAME
    extensions_dir.mkdir(parents=True, exist_ok=True)
    if os.environ.get("DD_WEBUI_LINK", "") == "root":
        target.symlink_to(REPO, target_is_directory=True)
        return target
    target.mkdir()
    for entry in sorted(REPO.iterdir()):
        if entry.name not in NOT_LINKED:
            (target / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return target


def wait_ready(server: WebUI, proc: subprocess.Popen, timeout: float, loaded: str = "Model loaded in") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the WebUI exited with {proc.returncode} during start-up:\n{server.log_tail(80)}")
        log = server.log_text()
        if "Stable diffusion model failed to load" in log:
            raise RuntimeError(f"the WebUI could not load the test checkpoint:\n{server.log_tail(80)}")
        if loaded in log:
            try:
                status, _ = server.get(READY_PATH, timeout=10)
            except OSError:
                status = None
            if status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the WebUI was not ready after {timeout:.0f}s:\n{server.log_tail(80)}")
        time.sleep(0.5)


@contextlib.contextmanager
def serve(
    server: WebUI, python: Path, cwd: Path, args: list[str], env: dict, timeout: float, loaded: str = "Model loaded in"
) -> Iterator[WebUI]:
    """Run ``python launch.py *args`` in ``cwd`` until the context exits; yield ``server`` once it answers."""
    with open(server.log_path, "w") as log:
        log.write(f"$ {python} launch.py {shlex.join(args)}\n")
        log.flush()
        proc = subprocess.Popen(
            [str(python), "launch.py", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: teardown kills the server and its children
            preexec_fn=die_with_parent,
        )
    server.pid = proc.pid
    atexit.register(kill_group, proc, 5.0)  # last resort if the session is torn down abnormally
    try:
        t0 = time.monotonic()
        wait_ready(server, proc, timeout, loaded)
        server.startup_seconds += time.monotonic() - t0
        server.ready_log_size = len(server.log_text())
        yield server
    finally:
        t1 = time.monotonic()
        kill_group(proc)
        atexit.unregister(kill_group)
        server.extra["stop"] = f"stopped in {time.monotonic() - t1:.1f}s (exit code {proc.returncode})"
