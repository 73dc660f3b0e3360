"""The checkpoints the real-Forge suite writes, by the titles Forge lists them under (no pytest here)."""

#: The full-size random SD1.5 checkpoint (``make_checkpoint.py``): Forge's default model in the suite.
CHECKPOINT_NAME = "dd-test-sd15-full"
#: The narrow random checkpoints of the other families (``make_narrow_checkpoint.py``), by kind, in a
#: subfolder so that the SD1.5 checkpoint stays the default one.
NARROW = {kind: f"narrow/dd-test-{kind}.safetensors" for kind in ("sdxl", "flux-dev", "flux-schnell")}
