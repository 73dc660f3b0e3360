"""Which WebUI runs the extension, decided once at import: AUTOMATIC1111 or Forge.

Forge (``lllyasviel/stable-diffusion-webui-forge``) is A1111 with a new backend; what it has
and A1111 has not is the ``modules_forge`` package beside ``modules``. The modules that
differ per host (:mod:`.sampling`, :mod:`.ui_inputs`) read :data:`FORGE`; nothing else does.
"""

from __future__ import annotations

import importlib.util

#: True inside Forge, False in A1111 (and in the unit tests, which run without a host).
FORGE: bool = importlib.util.find_spec("modules_forge") is not None
#: Display name of the host, for logs and the version route.
NAME = "Forge" if FORGE else "AUTOMATIC1111"
