"""Test-only extension (never shipped): sd-webui-controlnet builds SD1.x ControlNets at their file's width.

``Mikubill/sd-webui-controlnet`` (v1.1.455) builds every SD1.x ControlNet from a fixed config at 320
channels (``scripts/controlnet_model_guess.py``) and loads the weights with ``strict=False``, so the
narrow random ControlNet the suite generates (``tests/webui/make_controlnet.py``, 32 channels, to match
the suite's narrow checkpoint) would not fit. At start-up this wraps ``PlugableControlModel.__init__``
(``scripts/cldm.py``): a state dict narrower than the config is built at its own width (one attention
head per 40 channels, as SD1.5's 320 / 8, at least one) and loaded with ``strict=True``, so a key or
shape the generator got wrong fails the job loudly. Full-size ControlNets are built as before.
"""

import sys

from modules import script_callbacks

WIDTH_KEY = "input_blocks.0.0.weight"


def _patch() -> None:
    cldm = sys.modules.get("scripts.cldm")
    if cldm is None:
        print("[dd-controlnet-shim] sd-webui-controlnet's scripts.cldm is not loaded: nothing patched", file=sys.stderr)
        return
    plugable = cldm.PlugableControlModel
    if getattr(plugable, "_dd_width_shim", False):
        return
    original = plugable.__init__

    def __init__(self, config, state_dict=None):
        width = None if state_dict is None or WIDTH_KEY not in state_dict else int(state_dict[WIDTH_KEY].shape[0])
        if width is None or width == config.get("model_channels"):
            return original(self, config, state_dict)
        config = dict(config, model_channels=width, num_heads=max(1, width // 40))
        original(self, config, None)
        self.control_model.load_state_dict(state_dict, strict=True)
        print(f"[dd-controlnet-shim] ControlNet built at {width} channels", file=sys.stderr)

    plugable.__init__ = __init__
    plugable._dd_width_shim = True
    print("[dd-controlnet-shim] ControlNets are built at their state dict's width", file=sys.stderr)


script_callbacks.on_app_started(lambda *args: _patch())
