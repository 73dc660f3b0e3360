"""Run by A1111 when the extension is installed or the WebUI starts.

Nothing to install: the extension needs only torch, numpy, Pillow and gradio, which A1111
provides. Kept as a no-op on purpose (idempotent, instant).
"""
