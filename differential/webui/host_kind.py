"""Which WebUI runs the extension, decided once at import: AUTOMATIC1111, Forge or Forge Neo.

Forge (``lllyasviel/stable-diffusion-webui-forge``) is A1111 with a new backend; what it has
and A1111 has not is the ``modules_forge`` package beside ``modules``. Forge Neo
(``Haoming02/sd-webui-forge-classic``, branch ``neo``) keeps that package and Forge's extension
API over a rewritten backend; its ``modules_forge.forge_version.version`` is ``"neo"``. The
modules that differ per host (:mod:`.sampling`, :mod:`.ui_inputs`) read :data:`FORGE`, which is
true on both: every difference measured on Neo so far is one Forge has too.
"""

from __future__ import annotations

import importlib
import importlib.util

#: True inside Forge and Forge Neo, False in A1111 (and in the unit tests, which run without a host).
FORGE: bool = importlib.util.find_spec("modules_forge") is not None


def _forge_version() -> str:
    """``modules_forge.forge_version.version`` (empty outside Forge, or where a fork lacks it)."""
    if not FORGE:
        return ""
    try:
        return str(getattr(importlib.import_module("modules_forge.forge_version"), "version", ""))
    except ImportError:
        return ""


#: True inside Forge Neo.
NEO: bool = _forge_version() == "neo"
#: Display name of the host, for logs and the version route.
NAME = "Forge Neo" if NEO else "Forge" if FORGE else "AUTOMATIC1111"
