"""The checkpoints the real-Forge suite writes, by the titles Forge lists them under (no pytest here)."""

#: The full-size random SD1.5 checkpoint (``make_checkpoint.py``): Forge's default model in the suite.
CHECKPOINT_NAME = "dd-test-sd15-full"
#: The narrow random checkpoints of the other families (``make_narrow_checkpoint.py``), by kind, in a
#: subfolder so that the SD1.5 checkpoint stays the default one.
NARROW = {kind: f"narrow/dd-test-{kind}.safetensors" for kind in ("sdxl", "flux-dev", "flux-schnell")}
#: Forge Neo's narrow random checkpoints (its rewritten backend loads them through its own shim), by kind.
NEO_NARROW = {
    kind: f"narrow/dd-test-{kind}.safetensors"
    for kind in ("sdxl", "flux-dev", "zimage-turbo", "chroma", "qwen-image", "flux2-klein", "lumina2", "anima")
}


def narrow_models(neo: bool) -> dict[str, str]:
    """The narrow checkpoints the suite writes for the host (Forge or Forge Neo), by kind."""
    return NEO_NARROW if neo else NARROW
